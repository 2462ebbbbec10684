//! AI empathic comments: when a diary is written, a reply is generated and posted as a
//! comment, asynchronously and durably (see [`worker`]).

pub mod config;
pub mod offline;
pub mod openai;
pub mod worker;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::diary::Emotion;
pub use config::{AiGeneratorSetting, AiSettings};

/// What a generator sees of a diary.
#[derive(Debug, Clone)]
pub struct DiaryPrompt {
    pub diary_id: u64,
    pub title: String,
    pub content: String,
    pub emotion: Emotion,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Worth retrying later (timeouts, 429, 5xx, connection errors).
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying will not help (bad request, bad key, unreadable answer).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Writes an empathic comment for a diary.
pub trait CommentGenerator: Send + Sync {
    fn generate<'a>(&'a self, diary: &'a DiaryPrompt) -> BoxFuture<'a, Result<String, GenerateError>>;
    /// Short name for logs and metrics.
    fn name(&self) -> &'static str;
}

pub fn from_settings(settings: &AiSettings) -> anyhow::Result<Arc<dyn CommentGenerator>> {
    Ok(match &settings.generator {
        AiGeneratorSetting::Offline { latency } => Arc::new(offline::OfflineGenerator::new(*latency)),
        AiGeneratorSetting::OpenAi { base_url, model, api_key } => Arc::new(openai::OpenAiGenerator::new(
            base_url.clone(),
            model.clone(),
            api_key.clone(),
            settings.timeout,
            settings.max_retries,
        )?),
    })
}

/// True when most letters of `text` are Hangul: answer in Korean.
pub fn is_mostly_korean(text: &str) -> bool {
    let (mut hangul, mut letters) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if matches!(c, '\u{AC00}'..='\u{D7A3}' | '\u{1100}'..='\u{11FF}' | '\u{3130}'..='\u{318F}') {
            hangul += 1;
        }
    }
    letters > 0 && hangul * 2 >= letters
}
