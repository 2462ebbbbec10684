//! What the AI comment worker is configured with (read by `crate::settings`).

use std::time::Duration;

use crate::secret::Secret;

/// Which AI generator writes empathic comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AiGeneratorSetting {
    /// Built in, no network: answers in the diary's language and fits its emotion.
    Offline { latency: Duration },
    /// An OpenAI-compatible chat-completions endpoint.
    OpenAi { base_url: url::Url, model: String, api_key: Secret },
}

#[derive(Debug, Clone)]
pub struct AiSettings {
    /// Off: diaries get no AI comment (load tests that measure notifications alone).
    pub enabled: bool,
    pub generator: AiGeneratorSetting,
    pub timeout: Duration,
    pub max_retries: u32,
    pub worker_poll: Duration,
    /// A claimed job whose worker died becomes claimable again after this long.
    pub job_lease: Duration,
}
