//! Feature hashing: every lower-cased word and every character trigram of a word adds ±1 to
//! one of [`DIM`] buckets (FNV-1a, fixed seeds, so every instance and every run agree). Texts
//! that share words or word pieces land close; it knows nothing of meaning.

use futures::future::BoxFuture;

use super::{DIM, EmbedError, Embedder, normalize};

#[derive(Debug, Clone, Copy, Default)]
pub struct HashingEmbedder;

impl HashingEmbedder {
    pub fn embed_one(text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; DIM];
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let word = word.to_lowercase();
            add(&mut v, word.as_bytes(), 1.0);
            let chars: Vec<char> = format!("<{word}>").chars().collect();
            for gram in chars.windows(3) {
                let gram: String = gram.iter().collect();
                add(&mut v, gram.as_bytes(), 0.5);
            }
        }
        normalize(&mut v);
        v
    }
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn add(v: &mut [f32], feature: &[u8], weight: f32) {
    let h = fnv1a(feature, 0);
    let sign = if fnv1a(feature, 0x9e37_79b9_7f4a_7c15) & 1 == 0 { 1.0 } else { -1.0 };
    v[(h % DIM as u64) as usize] += sign * weight;
}

impl Embedder for HashingEmbedder {
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move { Ok(texts.iter().map(|t| Self::embed_one(t)).collect()) })
    }

    fn name(&self) -> &'static str {
        "hashing"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_are_unit_length_deterministic_and_dim_wide() {
        let a = HashingEmbedder::embed_one("Camping tent for two");
        assert_eq!(a.len(), DIM);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        assert_eq!(a, HashingEmbedder::embed_one("Camping tent for two"));
        assert!(HashingEmbedder::embed_one("").iter().all(|x| *x == 0.0));
    }

    #[test]
    fn shared_words_score_higher_than_unrelated_text() {
        let q = HashingEmbedder::embed_one("tent");
        let tent = HashingEmbedder::embed_one("Two-person camping tent");
        let dryer = HashingEmbedder::embed_one("Hair dryer, 1800 W");
        assert!(cos(&q, &tent) > cos(&q, &dryer) + 0.1);
        let ko = HashingEmbedder::embed_one("캠핑 텐트 빌려드려요");
        assert!(cos(&HashingEmbedder::embed_one("텐트"), &ko) > 0.2);
    }
}
