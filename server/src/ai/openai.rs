//! An OpenAI-compatible chat-completions client (`POST {base}/chat/completions`), with a
//! timeout per attempt and retries with exponential backoff on transient failures.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use super::{CommentGenerator, DiaryPrompt, GenerateError, is_mostly_korean};

#[derive(Debug, Clone)]
pub struct OpenAiGenerator {
    client: reqwest::Client,
    endpoint: url::Url,
    model: String,
    api_key: String,
    max_retries: u32,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    content: String,
}

impl OpenAiGenerator {
    pub fn new(
        base_url: url::Url,
        model: String,
        api_key: String,
        timeout: Duration,
        max_retries: u32,
    ) -> anyhow::Result<Self> {
        let mut base = base_url;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self {
            client: reqwest::Client::builder().timeout(timeout).build()?,
            endpoint: base.join("chat/completions")?,
            model,
            api_key,
            max_retries,
        })
    }

    fn body(&self, diary: &DiaryPrompt) -> serde_json::Value {
        let language =
            if is_mostly_korean(&format!("{} {}", diary.title, diary.content)) { "Korean" } else { "English" };
        json!({
            "model": self.model,
            "temperature": 0.7,
            "max_tokens": 200,
            "messages": [
                {"role": "system", "content": format!(
                    "You answer a person's diary entry with a short, warm, empathic comment of two or three \
                     sentences. Write in {language}. Do not give medical advice. The diary's emotion is {}.",
                    diary.emotion.as_str())},
                {"role": "user", "content": format!("{}\n\n{}", diary.title, diary.content)},
            ],
        })
    }

    async fn attempt(&self, body: &serde_json::Value) -> Result<String, GenerateError> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .bearer_auth(&self.api_key)
            .json(body)
            .send()
            .await
            .map_err(|e| GenerateError::Transient(format!("request failed: {e}")))?;
        let status = response.status();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(GenerateError::Transient(format!("provider answered {status}")));
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(GenerateError::Permanent(format!("provider answered {status}: {}", truncate(&text, 300))));
        }
        let completion: Completion =
            response.json().await.map_err(|e| GenerateError::Permanent(format!("unreadable completion: {e}")))?;
        let text =
            completion.choices.into_iter().next().map(|c| c.message.content.trim().to_string()).unwrap_or_default();
        if text.is_empty() {
            return Err(GenerateError::Permanent("the completion had no text".into()));
        }
        Ok(truncate(&text, crate::diary::comments::CONTENT_MAX).to_string())
    }
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl CommentGenerator for OpenAiGenerator {
    fn generate<'a>(&'a self, diary: &'a DiaryPrompt) -> BoxFuture<'a, Result<String, GenerateError>> {
        Box::pin(async move {
            let body = self.body(diary);
            let mut delay = Duration::from_millis(200);
            let mut attempt = 0;
            loop {
                match self.attempt(&body).await {
                    Err(GenerateError::Transient(why)) if attempt < self.max_retries => {
                        tracing::warn!(attempt, why, "AI provider failed; retrying");
                        // Full jitter keeps many workers from retrying in lockstep.
                        tokio::time::sleep(delay.mul_f64(0.5 + rand::random::<f64>() / 2.0)).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }

    fn name(&self) -> &'static str {
        "openai"
    }
}
