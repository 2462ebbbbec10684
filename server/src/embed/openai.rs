//! An OpenAI-compatible embeddings client (`POST {base}/embeddings`), asking for [`DIM`]
//! dimensions, on the shared [`crate::provider::Provider`] (timeout per attempt, retries on
//! transient failures).

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use super::{DIM, EmbedError, Embedder, normalize};
use crate::provider::{Provider, ProviderError};
use crate::secret::Secret;

/// OpenAI accepts at most 2048 inputs in one request; longer lists go in several.
const MAX_INPUTS_PER_REQUEST: usize = 2048;

#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    provider: Provider,
    model: String,
}

#[derive(Deserialize)]
struct EmbeddingList {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    /// The position of the input this vector belongs to: the specification does not promise
    /// that `data` comes in input order, so order by this.
    index: usize,
}

impl From<ProviderError> for EmbedError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Transient(why) => EmbedError::Transient(why),
            ProviderError::Permanent(why) => EmbedError::Permanent(why),
        }
    }
}

impl OpenAiEmbedder {
    pub fn new(
        base_url: url::Url,
        model: String,
        api_key: Secret,
        timeout: Duration,
        max_retries: u32,
    ) -> anyhow::Result<Self> {
        Ok(Self { provider: Provider::new("embeddings provider", base_url, api_key, timeout, max_retries)?, model })
    }

    async fn with_retries(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // `dimensions` shortens text-embedding-3-* vectors to what the VECTOR column holds;
        // `encoding_format: float` rules out base64 answers.
        let body = json!({ "model": self.model, "input": texts, "dimensions": DIM, "encoding_format": "float" });
        let list: EmbeddingList = self.provider.post("embeddings", &body).await?;
        in_input_order(list, texts.len())
    }
}

/// One unit vector of [`DIM`] finite floats per input, in input order, or why not.
fn in_input_order(list: EmbeddingList, inputs: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    if list.data.len() != inputs {
        return Err(EmbedError::Permanent(format!(
            "the embeddings answer has {} vectors for {inputs} inputs",
            list.data.len()
        )));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; inputs];
    for item in list.data {
        if item.embedding.len() != DIM {
            return Err(EmbedError::Permanent(format!(
                "the embeddings answer has a vector of {} dimensions, not {DIM}: does the model support \
                 `dimensions` (text-embedding-3-*), or does it natively give {DIM}?",
                item.embedding.len()
            )));
        }
        if !item.embedding.iter().all(|x| x.is_finite()) {
            return Err(EmbedError::Permanent("the embeddings answer has a non-finite value".into()));
        }
        match out.get_mut(item.index) {
            Some(slot @ None) => {
                let mut v = item.embedding;
                normalize(&mut v);
                *slot = Some(v);
            }
            Some(Some(_)) => {
                return Err(EmbedError::Permanent(format!("the embeddings answer repeats index {}", item.index)));
            }
            None => {
                return Err(EmbedError::Permanent(format!(
                    "the embeddings answer has index {} for {inputs} inputs",
                    item.index
                )));
            }
        }
    }
    // Every slot is filled: as many items as inputs, each index in range, none repeated.
    Ok(out.into_iter().flatten().collect())
}

impl Embedder for OpenAiEmbedder {
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(MAX_INPUTS_PER_REQUEST) {
                out.extend(self.with_retries(chunk).await?);
            }
            Ok(out)
        })
    }

    fn name(&self) -> &'static str {
        "openai"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: usize, first: f32) -> EmbeddingItem {
        let mut embedding = vec![0.0; DIM];
        embedding[0] = first;
        embedding[1] = 1.0;
        EmbeddingItem { embedding, index }
    }

    #[test]
    fn vectors_are_put_in_input_order_and_normalised() {
        let list = EmbeddingList { data: vec![item(1, 2.0), item(0, 0.0)] };
        let out = in_input_order(list, 2).unwrap();
        assert_eq!(out[0][0], 0.0);
        assert!((out[1][0] - 2.0 / 5f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn a_missing_repeated_or_out_of_range_index_is_permanent() {
        for data in [vec![item(0, 1.0)], vec![item(0, 1.0), item(0, 1.0)], vec![item(0, 1.0), item(2, 1.0)]] {
            let err = in_input_order(EmbeddingList { data }, 2).unwrap_err();
            assert!(matches!(err, EmbedError::Permanent(_)), "{err}");
        }
    }
}
