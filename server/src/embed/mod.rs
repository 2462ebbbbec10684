//! Text embedders behind one trait: what rental posts and search queries are turned into
//! before they meet MariaDB's `VECTOR(384)` column.
//!
//! * [`hashing::HashingEmbedder`]: deterministic feature hashing, microseconds per text, no
//!   model: for load tests in which model cost must not dominate.
//! * [`minilm::MiniLmEmbedder`]: all-MiniLM-L6-v2 run locally with candle, from a folder on
//!   disk (`scripts/fetch-model.sh`).
//! * [`openai::OpenAiEmbedder`]: an OpenAI-compatible `/embeddings` endpoint.
//!
//! Every embedder returns L2-normalised vectors of [`DIM`] floats, so cosine distance and
//! dot product rank alike.

pub mod bert;
pub mod config;
pub mod hashing;
mod kernels;
pub mod minilm;
pub mod openai;

use std::sync::Arc;

use futures::future::BoxFuture;

pub use config::EmbedderSetting;

/// Dimensions of every vector this server stores (all-MiniLM-L6-v2's output size).
pub const DIM: usize = 384;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// Worth retrying later (timeouts, 429, 5xx, connection errors).
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying will not help (bad input, bad key, unreadable answer, wrong dimensions).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Turns texts into unit vectors of [`DIM`] floats, one per text, in order.
pub trait Embedder: Send + Sync {
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
    /// Short name for logs, metrics and the search response.
    fn name(&self) -> &'static str;
}

/// The embedder the settings ask for. Loading MiniLM reads ~90 MB from disk: call this once
/// at start-up, not per request.
pub fn from_settings(setting: &EmbedderSetting) -> anyhow::Result<Arc<dyn Embedder>> {
    Ok(match setting {
        EmbedderSetting::Hashing => Arc::new(hashing::HashingEmbedder),
        EmbedderSetting::MiniLm { model_dir } => Arc::new(minilm::MiniLmEmbedder::load(model_dir)?),
        EmbedderSetting::OpenAi { base_url, model, api_key, timeout, max_retries } => Arc::new(
            openai::OpenAiEmbedder::new(base_url.clone(), model.clone(), api_key.clone(), *timeout, *max_retries)?,
        ),
    })
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// MariaDB's binary VECTOR format: little-endian float32s, bound as a BLOB parameter.
pub fn to_vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
