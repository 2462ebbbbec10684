//! Which embedder the server uses (read by `crate::settings`).

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// Which embedder turns rental posts and search queries into vectors (see `crate::embed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedderSetting {
    /// Deterministic feature hashing: no model, for load tests.
    Hashing,
    /// all-MiniLM-L6-v2 on the CPU, from a folder holding `config.json`, `model.safetensors`
    /// and `tokenizer.json` (checked at start-up; relative paths are from the working directory).
    MiniLm { model_dir: PathBuf },
    /// An OpenAI-compatible `/embeddings` endpoint, asked for 384 dimensions.
    OpenAi { base_url: url::Url, model: String, api_key: Secret, timeout: Duration, max_retries: u32 },
}
