//! One client for OpenAI-compatible HTTP APIs (chat completions for AI comments, embeddings
//! for search): `POST {base}/{path}` with a bearer key, a timeout per attempt, and retries
//! with exponential backoff on transient failures.
//!
//! Transient: the request did not complete, the provider answered 429 or 5xx, or the answer
//! was cut short by the timeout. Anything else (4xx, an unreadable answer) is permanent:
//! retrying cannot help.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

#[derive(Debug, Clone)]
pub struct Provider {
    client: reqwest::Client,
    /// Ends in `/`, so that joining a path keeps the base's own path (`…/v1/` + `embeddings`).
    base: url::Url,
    api_key: Secret,
    max_retries: u32,
    /// Names the provider in errors and logs, e.g. `embeddings provider`.
    what: &'static str,
}

/// The first backoff; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Provider {
    pub fn new(
        what: &'static str,
        base_url: url::Url,
        api_key: Secret,
        timeout: Duration,
        max_retries: u32,
    ) -> anyhow::Result<Self> {
        let mut base = base_url;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self { client: reqwest::Client::builder().timeout(timeout).build()?, base, api_key, max_retries, what })
    }

    /// Posts `body` to `path` and reads the answer as `T`, retrying transient failures.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T, ProviderError> {
        let endpoint = self
            .base
            .join(path)
            .map_err(|e| ProviderError::Permanent(format!("{} endpoint {path}: {e}", self.what)))?;
        let mut delay = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            match self.attempt(&endpoint, body).await {
                Err(ProviderError::Transient(why)) if attempt < self.max_retries => {
                    tracing::warn!(attempt, why, provider = self.what, "provider failed; retrying");
                    // Equal jitter: half the delay fixed, half random, so that many workers
                    // failing together do not retry in lockstep.
                    tokio::time::sleep(delay.mul_f64(0.5 + rand::random::<f64>() / 2.0)).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        endpoint: &url::Url,
        body: &serde_json::Value,
    ) -> Result<T, ProviderError> {
        let what = self.what;
        let response = self
            .client
            .post(endpoint.clone())
            .bearer_auth(self.api_key.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| ProviderError::Transient(format!("{what} request failed: {e}")))?;
        let status = response.status();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(ProviderError::Transient(format!("{what} answered {status}")));
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(ProviderError::Permanent(format!("{what} answered {status}: {}", truncate(&text, 300))));
        }
        response.json().await.map_err(|e| {
            // A body cut short by the timeout is worth another try; a malformed one is not.
            if e.is_timeout() {
                ProviderError::Transient(format!("{what} answer timed out: {e}"))
            } else {
                ProviderError::Permanent(format!("unreadable {what} answer: {e}"))
            }
        })
    }
}

/// At most `max_chars` characters of `s`.
pub fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
