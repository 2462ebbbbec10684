//! all-MiniLM-L6-v2 run locally on the CPU with candle, loaded from a folder on disk
//! (`scripts/fetch-model.sh` puts one in `models/all-MiniLM-L6-v2`). It gives the same vectors
//! as sentence-transformers: BERT, mean pooling over the attention mask, L2 normalisation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use futures::future::BoxFuture;
use tokenizers::{Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

use super::bert::Bert;
use super::{DIM, EmbedError, Embedder, normalize};

/// The files a model folder must hold; the settings check them at start-up.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// sentence-transformers' `max_seq_length` for this model: longer texts are cut, as it does
/// (the tokenizer.json it ships says 128, but sentence-transformers overrides that).
pub const MAX_TOKENS: usize = 256;

/// Texts per forward pass. Each pass pads to its longest text, so texts are sorted by length
/// first; 32 keeps the padded activations small (32 x 256 x 1536 floats at worst, 50 MB).
const BATCH: usize = 32;

pub struct MiniLmEmbedder {
    model: Arc<Model>,
    /// One forward pass at a time. candle's matrix products already use every core (rayon),
    /// so two passes at once would only fight for them and both finish later. Waiting here,
    /// in async code, rather than on a lock inside `spawn_blocking`, keeps queued requests
    /// from holding blocking threads.
    passes: Arc<Semaphore>,
    dir: PathBuf,
}

/// `Bert` and `Tokenizer` are `Sync` and their forward/encode take `&self`, so the model is
/// shared without a lock; the semaphore above only paces it.
struct Model {
    bert: Bert,
    tokenizer: Tokenizer,
    pad_id: u32,
}

impl fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MiniLmEmbedder").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl MiniLmEmbedder {
    /// Reads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`: blocking
    /// file I/O of ~90 MB, done once at start-up.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let hint = "run scripts/fetch-model.sh, or point SERVER_EMBED_MODEL_DIR at an all-MiniLM-L6-v2 folder";
        for file in REQUIRED_FILES {
            let path = dir.join(file);
            anyhow::ensure!(path.is_file(), "{} is missing: {hint}", path.display());
        }
        let config_path = dir.join("config.json");
        let config: Config = serde_json::from_slice(
            &std::fs::read(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?,
        )
        .with_context(|| format!("{} is not a BERT config: {hint}", config_path.display()))?;
        anyhow::ensure!(
            config.hidden_size == DIM,
            "{} says hidden_size {}, but this server stores {DIM}-dimensional vectors: use all-MiniLM-L6-v2",
            config_path.display(),
            config.hidden_size
        );

        // Read into memory rather than mmap: mmap needs `unsafe`, which this workspace forbids,
        // and 90 MB read once at start-up costs well under a second.
        let weights_path = dir.join("model.safetensors");
        let weights =
            std::fs::read(&weights_path).with_context(|| format!("cannot read {}", weights_path.display()))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .with_context(|| format!("{} is not a safetensors file: {hint}", weights_path.display()))?;
        let bert = Bert::load(vb, &config)
            .with_context(|| format!("{} does not hold BERT weights: {hint}", weights_path.display()))?;

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| anyhow::anyhow!("{} is not a tokenizer.json ({e}): {hint}", tokenizer_path.display()))?;
        // Padding is done per batch below (after sorting by length), not by the tokenizer,
        // whose file asks for a fixed 128.
        let pad_id = tokenizer.get_padding().map_or(0, |p| p.pad_id);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| anyhow::anyhow!("cannot set truncation on {}: {e}", tokenizer_path.display()))?;

        Ok(Self {
            model: Arc::new(Model { bert, tokenizer, pad_id }),
            passes: Arc::new(Semaphore::new(1)),
            dir: dir.to_path_buf(),
        })
    }
}

/// Splits length-sorted `order` into forward passes of at most [`BATCH`] texts, starting a new
/// one when a text is more than 1.25x the length of its pass's first: on a CPU batching
/// saves little, and padding a 40-token English text to a 128-token Korean one (Hangul
/// becomes jamo, ~3x the tokens) would cost 3x its compute.
fn batches(order: &[usize], len: impl Fn(usize) -> usize) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in 1..=order.len() {
        let full = end - start == BATCH;
        let last = end == order.len();
        if last || full || len(order[end]) * 4 > len(order[start]) * 5 {
            out.push(&order[start..end]);
            start = end;
        }
    }
    out
}

impl Model {
    /// Tokenises all texts, runs them in length-sorted batches, returns vectors in input order.
    fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| EmbedError::Permanent(format!("minilm: cannot tokenise: {e}")))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());

        let mut out = vec![Vec::new(); texts.len()];
        for chunk in batches(&order, |i| encodings[i].get_ids().len()) {
            let ids: Vec<&[u32]> = chunk.iter().map(|&i| encodings[i].get_ids()).collect();
            // On one of rayon's threads, not this blocking thread: candle's ~50 matrix products
            // per pass each go to rayon, and from outside the pool each one would wake a worker
            // and then sleep until woken back (two futex wakes per product; 28% of the CPU
            // samples for one text, 13% from inside). A/B in one process, one text: 42.8 vs
            // 38.2 texts/s (reports/README.md).
            let vectors = rayon::scope(|_| self.forward(&ids))
                .map_err(|e| EmbedError::Permanent(format!("minilm: inference failed: {e}")))?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One forward pass over token ids padded to the longest; mean pooling over the real
    /// tokens (the attention mask), then unit length, as sentence-transformers does.
    fn forward(&self, ids: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let rows = ids.len();
        let width = ids.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let mut flat_ids = Vec::with_capacity(rows * width);
        let mut flat_mask = Vec::with_capacity(rows * width);
        for t in ids {
            flat_ids.extend_from_slice(t);
            flat_ids.extend(std::iter::repeat_n(self.pad_id, width - t.len()));
            flat_mask.extend(std::iter::repeat_n(1u32, t.len()));
            flat_mask.extend(std::iter::repeat_n(0u32, width - t.len()));
        }
        let input_ids = Tensor::from_vec(flat_ids, (rows, width), &Device::Cpu)?;
        let padded = ids.iter().any(|t| t.len() < width);
        let mask = Tensor::from_vec(flat_mask, (rows, width), &Device::Cpu)?;
        let hidden = self.bert.forward(&input_ids, padded.then_some(&mask))?; // (rows, width, DIM)
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, width, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (rows, DIM)
        // Every text has at least [CLS] and [SEP], so no count is zero; the clamp mirrors
        // sentence-transformers' guard all the same.
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (rows, 1)
        let mut vectors: Vec<Vec<f32>> = summed.broadcast_div(&counts)?.to_vec2()?;
        vectors.iter_mut().for_each(|v| normalize(v));
        Ok(vectors)
    }
}

impl Embedder for MiniLmEmbedder {
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let permit = self
                .passes
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| EmbedError::Permanent("minilm: the embedder was shut down".into()))?;
            let model = self.model.clone();
            let texts = texts.to_vec();
            // Inference is CPU-bound for milliseconds to seconds: off the async workers. The
            // permit moves in, so a caller that stops waiting still frees it only when the
            // pass really ends.
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                model.embed_blocking(&texts)
            })
            .await
            .map_err(|e| EmbedError::Permanent(format!("minilm: the inference task failed: {e}")))?
        })
    }

    fn name(&self) -> &'static str {
        "minilm"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;

    const MODEL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/all-MiniLM-L6-v2");

    /// Loaded once per test binary; a missing model fails loudly, never skips.
    fn model() -> &'static MiniLmEmbedder {
        static MODEL: OnceLock<MiniLmEmbedder> = OnceLock::new();
        MODEL.get_or_init(|| {
            MiniLmEmbedder::load(Path::new(MODEL_DIR)).unwrap_or_else(|e| {
                panic!("the MiniLM tests need the model in {MODEL_DIR}: run scripts/fetch-model.sh first ({e:#})")
            })
        })
    }

    async fn embed(texts: &[&str]) -> Vec<Vec<f32>> {
        let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        model().embed(&texts).await.unwrap()
    }

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    const CATALOGUE: [&str; 8] = [
        "Camping tent for four people, waterproof, easy to pitch",
        "Warm sleeping bag rated to minus five degrees",
        "Hair dryer, 1800 W, with a diffuser",
        "Electric drill with a set of bits",
        "City bicycle with a basket, 7 gears",
        "Full HD projector with HDMI, for movie nights",
        "캠핑용 4인 텐트 대여합니다",
        "전동 드릴 빌려드려요",
    ];

    /// Catalogue indices from the most to the least similar to `query`.
    async fn ranking(query: &str) -> (Vec<usize>, Vec<f32>) {
        let items = embed(&CATALOGUE).await;
        let q = &embed(&[query]).await[0];
        let scores: Vec<f32> = items.iter().map(|v| cos(q, v)).collect();
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        (order, scores)
    }

    #[test]
    fn passes_group_texts_of_similar_length() {
        let lens = [3, 3, 4, 10, 11, 40];
        let order: Vec<usize> = (0..lens.len()).collect();
        let got: Vec<Vec<usize>> = batches(&order, |i| lens[i]).into_iter().map(<[usize]>::to_vec).collect();
        assert_eq!(got, vec![vec![0, 1], vec![2], vec![3, 4], vec![5]]);
        let many: Vec<usize> = (0..70).collect();
        let sizes: Vec<usize> = batches(&many, |_| 7).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![32, 32, 6]);
        assert!(batches(&[], |_| 1).is_empty());
    }

    #[tokio::test]
    async fn gear_for_sleeping_outdoors_ranks_the_tent_and_sleeping_bag_above_the_hair_dryer() {
        let (order, scores) = ranking("gear for sleeping outdoors").await;
        let rank = |i: usize| order.iter().position(|&j| j == i).unwrap();
        assert!(rank(0) < rank(2), "tent below hair dryer: {order:?} {scores:?}");
        assert!(rank(1) < rank(2), "sleeping bag below hair dryer: {order:?} {scores:?}");
        assert!(order[..2].contains(&1), "the sleeping bag should be in the top two: {order:?} {scores:?}");
    }

    /// all-MiniLM-L6-v2 is an English model: its uncased BERT normaliser decomposes Hangul into
    /// jamo (NFD), which it knows little of. A Korean query does find Korean listings before
    /// English ones, but it does NOT tell the Korean tent from the Korean drill: cosine 0.694
    /// vs 0.707 here, and the same in an independent numpy run of the model. Korean search
    /// that understands meaning needs a multilingual model (or the `openai` embedder).
    #[tokio::test]
    async fn a_korean_query_ranks_korean_listings_above_english_ones() {
        let (order, scores) = ranking("캠핑 텐트").await;
        assert!(order[..2].contains(&6) && order[..2].contains(&7), "{order:?} {scores:?}");
        assert!(scores[6] > scores[2] + 0.3, "Korean tent vs hair dryer: {scores:?}");
    }

    #[tokio::test]
    async fn vectors_have_384_unit_length_dimensions_even_for_an_empty_text() {
        for v in embed(&["Camping tent", "", "   ", "캠핑"]).await {
            assert_eq!(v.len(), DIM);
            assert!((cos(&v, &v) - 1.0).abs() < 1e-4, "norm² = {}", cos(&v, &v));
            assert!(v.iter().all(|x| x.is_finite()));
        }
        assert!(embed(&[]).await.is_empty());
    }

    #[tokio::test]
    async fn a_batch_gives_the_same_vectors_as_one_text_at_a_time() {
        // Different lengths, so the short ones are padded inside the batch.
        let texts = ["tent", CATALOGUE[0], CATALOGUE[5], CATALOGUE[6], ""];
        let batch = embed(&texts).await;
        for (text, b) in texts.iter().zip(&batch) {
            let single = &embed(&[text]).await[0];
            assert!(cos(single, b) > 0.999, "{text:?}: cosine {}", cos(single, b));
        }
    }

    #[tokio::test]
    async fn texts_longer_than_the_model_window_are_truncated_not_refused() {
        // ~400 tokens: what follows the first 256 is cut, so appending changes nothing.
        let long = CATALOGUE[..6].join(". ").repeat(5);
        let v = embed(&[&long, &format!("{long} hair dryer electric drill"), CATALOGUE[0]]).await;
        assert_eq!(v[0].len(), DIM);
        assert!(cos(&v[0], &v[1]) > 0.9999, "{}", cos(&v[0], &v[1]));
        assert!(cos(&v[0], &v[2]) < 0.99);
    }

    #[tokio::test]
    async fn similar_sentences_score_as_sentence_transformers_does() {
        // The sentences of the sentence-transformers documentation. The expected values come
        // from an independent numpy implementation of the same pipeline (BERT, mean pooling,
        // L2) over the same weights and tokenizer: cosines 0.7553 and 0.2474, and the first
        // components of the first vector.
        let v =
            embed(&["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]).await;
        let (close, far) = (cos(&v[0], &v[1]), cos(&v[0], &v[2]));
        assert!((close - 0.7553).abs() < 1e-3, "paraphrases: {close}");
        assert!((far - 0.2474).abs() < 1e-3, "other topic: {far}");
        for (got, want) in v[0].iter().zip([0.033242f32, 0.004406, -0.006277, 0.048379]) {
            assert!((got - want).abs() < 1e-4, "{:?}", &v[0][..4]);
        }
    }

    #[tokio::test]
    async fn concurrent_calls_each_get_their_own_answers() {
        let m = model();
        let (tent, dryer) = (vec!["tent".to_string()], vec!["hair dryer".to_string()]);
        let (a, b) = tokio::join!(m.embed(&tent), m.embed(&dryer));
        let (a, b) = (a.unwrap(), b.unwrap());
        let tent = &embed(&["tent"]).await[0];
        assert!(cos(&a[0], tent) > 0.999);
        assert!(cos(&b[0], tent) < 0.9);
    }
}
