//! An OpenAI-compatible chat-completions client (`POST {base}/chat/completions`), on the shared
//! [`crate::provider::Provider`] (timeout per attempt, retries on transient failures).

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use super::{CommentGenerator, DiaryPrompt, GenerateError, is_mostly_korean};
use crate::provider::{Provider, ProviderError, truncate};
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct OpenAiGenerator {
    provider: Provider,
    model: String,
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

impl From<ProviderError> for GenerateError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Transient(why) => GenerateError::Transient(why),
            ProviderError::Permanent(why) => GenerateError::Permanent(why),
        }
    }
}

impl OpenAiGenerator {
    pub fn new(
        base_url: url::Url,
        model: String,
        api_key: Secret,
        timeout: Duration,
        max_retries: u32,
    ) -> anyhow::Result<Self> {
        Ok(Self { provider: Provider::new("AI provider", base_url, api_key, timeout, max_retries)?, model })
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
}

impl CommentGenerator for OpenAiGenerator {
    fn generate<'a>(&'a self, diary: &'a DiaryPrompt) -> BoxFuture<'a, Result<String, GenerateError>> {
        Box::pin(async move {
            let completion: Completion = self.provider.post("chat/completions", &self.body(diary)).await?;
            let text =
                completion.choices.into_iter().next().map(|c| c.message.content.trim().to_string()).unwrap_or_default();
            if text.is_empty() {
                return Err(GenerateError::Permanent("the completion had no text".into()));
            }
            Ok(truncate(&text, crate::diary::comments::CONTENT_MAX).to_string())
        })
    }

    fn name(&self) -> &'static str {
        "openai"
    }
}
