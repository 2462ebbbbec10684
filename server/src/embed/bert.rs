//! BERT's encoder for inference on a CPU, shaped for a text or a few at a time: the same
//! arithmetic as `candle_transformers::models::bert::BertModel` (checked in the tests below),
//! with less work around the matrix products, which at 40 tokens are small enough that each
//! one's hand-off to rayon's threads costs a noticeable share of it:
//!
//! * the query, key and value projections are one product (weights stacked at load), with the
//!   attention scale 1/sqrt(head size) folded into the query's weights and bias;
//! * tokens stay one `(texts x tokens, hidden)` matrix between layers, so every projection is
//!   one 2-D product rather than a batch of them;
//! * softmax is one kernel over each row (its maximum, exponentials, then scaling) and GELU one
//!   pass over the tensor ([`super::kernels`]), their exponentials vectorised, where candle's
//!   `softmax` runs five tensor ops and its `gelu_erf` a scalar `erf` per element;
//! * the padding mask is added only when a pass has padding (never for one text).
//!
//! Dropout is absent: this is inference only.

use candle_core::{DType, Tensor};
use candle_nn::{LayerNorm, Module, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};

use super::kernels;

/// `x W^T + b` with `W^T` stored transposed and contiguous.
struct Linear {
    weight_t: Tensor,
    bias: Tensor,
}

impl Linear {
    fn from(weight: &Tensor, bias: &Tensor) -> candle_core::Result<Linear> {
        Ok(Linear { weight_t: weight.t()?.contiguous()?, bias: bias.clone() })
    }

    fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Linear> {
        Linear::from(&vb.get((outputs, inputs), "weight")?, &vb.get(outputs, "bias")?)
    }

    /// `x`: (rows, inputs) -> (rows, outputs).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight_t)?.broadcast_add(&self.bias)
    }
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    up: Linear,
    down: Linear,
    output_norm: LayerNorm,
}

pub struct Bert {
    word: Tensor,
    position: Tensor,
    /// Token type 0's row: every text here is one segment.
    token_type: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_size: usize,
    hidden: usize,
}

fn layer_norm(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
    candle_nn::layer_norm(size, eps, vb)
}

impl Bert {
    /// Loads a BERT checkpoint's encoder, its weights named as Hugging Face's `BertModel` saves
    /// them (with or without a `bert.` prefix; not the `gamma`/`beta` of older checkpoints);
    /// only `hidden_act: gelu` (exact GELU), the one BERT and MiniLM use, is accepted.
    pub fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Bert> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        if config.hidden_act != HiddenAct::Gelu {
            candle_core::bail!("hidden_act {:?} is not supported: only `gelu` (BERT's exact GELU)", config.hidden_act);
        }
        let (hidden, heads) = (config.hidden_size, config.num_attention_heads);
        if heads == 0 || hidden % heads != 0 {
            candle_core::bail!("hidden_size {hidden} does not split into {heads} attention heads");
        }
        let head_size = hidden / heads;
        let eps = config.layer_norm_eps;
        let e = vb.pp("embeddings");
        let word = e.pp("word_embeddings").get((config.vocab_size, hidden), "weight")?;
        let position = e.pp("position_embeddings").get((config.max_position_embeddings, hidden), "weight")?;
        let token_type =
            e.pp("token_type_embeddings").get((config.type_vocab_size, hidden), "weight")?.get(0)?.contiguous()?;
        let embedding_norm = layer_norm(e.pp("LayerNorm"), hidden, eps)?;
        let scale = 1.0 / (head_size as f64).sqrt();
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                let part = |name: &str| -> candle_core::Result<(Tensor, Tensor)> {
                    let p = a.pp("self").pp(name);
                    Ok((p.get((hidden, hidden), "weight")?, p.get(hidden, "bias")?))
                };
                let (qw, qb) = part("query")?;
                let (kw, kb) = part("key")?;
                let (vw, vb_) = part("value")?;
                let qkv = Linear::from(
                    &Tensor::cat(&[(qw * scale)?, kw, vw], 0)?,
                    &Tensor::cat(&[(qb * scale)?, kb, vb_], 0)?,
                )?;
                Ok(Layer {
                    qkv,
                    attention_out: Linear::load(a.pp("output").pp("dense"), hidden, hidden)?,
                    attention_norm: layer_norm(a.pp("output").pp("LayerNorm"), hidden, eps)?,
                    up: Linear::load(l.pp("intermediate").pp("dense"), hidden, config.intermediate_size)?,
                    down: Linear::load(l.pp("output").pp("dense"), config.intermediate_size, hidden)?,
                    output_norm: layer_norm(l.pp("output").pp("LayerNorm"), hidden, eps)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Bert { word, position, token_type, embedding_norm, layers, heads, head_size, hidden })
    }

    /// The last hidden state, `(texts, tokens, hidden)`, of `ids` `(texts, tokens)` (u32), with
    /// `mask` `(texts, tokens)` (1 for a token, 0 for padding) when the texts were padded.
    pub fn forward(&self, ids: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (texts, tokens) = ids.dims2()?;
        let rows = texts * tokens;
        let words = self.word.index_select(&ids.flatten_all()?, 0)?.reshape((texts, tokens, self.hidden))?;
        let positions = self.position.narrow(0, 0, tokens)?;
        let x = words.broadcast_add(&positions)?.broadcast_add(&self.token_type)?.reshape((rows, self.hidden))?;
        let mut x = self.embedding_norm.forward(&x)?;
        // 0 for a token, f32::MIN for padding, added to every score of that key: (texts, 1, 1, tokens).
        let mask = match mask {
            Some(m) => Some(
                ((m.to_dtype(DType::F32)? - 1.0)? * f64::from(-f32::MIN))?
                    .reshape((texts, 1, 1, tokens))?
                    .contiguous()?,
            ),
            None => None,
        };
        for layer in &self.layers {
            x = self.layer(layer, &x, texts, tokens, mask.as_ref())?;
        }
        x.reshape((texts, tokens, self.hidden))
    }

    fn layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        texts: usize,
        tokens: usize,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let qkv = layer.qkv.forward(x)?; // (rows, 3 x hidden)
        // (texts, heads, tokens, head_size), each from its third of the columns.
        let split = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(1, i * self.hidden, self.hidden)?
                .reshape((texts, tokens, self.heads, self.head_size))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = q.matmul(&k.t()?)?; // (texts, heads, tokens, tokens), already scaled
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let context = kernels::softmax_last_dim(&scores)?.matmul(&v)?; // (texts, heads, tokens, head_size)
        let context = context.transpose(1, 2)?.contiguous()?.reshape((texts * tokens, self.hidden))?;
        let attended = layer.attention_norm.forward(&(layer.attention_out.forward(&context)? + x)?)?;
        let inner = kernels::gelu_erf(&layer.up.forward(&attended)?)?;
        layer.output_norm.forward(&(layer.down.forward(&inner)? + &attended)?)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use candle_core::Device;
    use candle_transformers::models::bert::BertModel;

    use super::*;

    /// The model `scripts/fetch-model.sh` fetches, as the other MiniLM tests use it.
    fn load() -> (Bert, BertModel) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2");
        let config: Config = serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("config")).unwrap();
        let weights = std::fs::read(dir.join("model.safetensors")).expect("weights (run scripts/fetch-model.sh)");
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu).unwrap();
        (Bert::load(vb.clone(), &config).unwrap(), BertModel::load(vb, &config).unwrap())
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn hidden_states_match_candles_bert_model_with_and_without_padding() -> candle_core::Result<()> {
        let (ours, theirs) = load();
        // [CLS] ... [SEP] of two texts, the second padded with [PAD] (0) to the first's length.
        let long: Vec<u32> = vec![101, 7592, 2088, 1010, 2023, 2003, 1037, 3231, 1997, 14324, 1012, 102];
        let short: Vec<u32> = vec![101, 3424, 4524, 102];
        let one = Tensor::new(long.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let want = theirs.forward(&one, &one.zeros_like()?, None)?;
        let got = ours.forward(&one, None)?;
        assert_eq!(got.dims(), want.dims());
        let d = max_diff(&got, &want);
        assert!(d < 1e-4, "one text: largest difference {d}");

        let mut padded = short.clone();
        padded.resize(long.len(), 0);
        let width = long.len();
        let ids = Tensor::from_vec([long.clone(), padded].concat(), (2, width), &Device::Cpu)?;
        let mask: Vec<u32> =
            [width, short.len()].iter().flat_map(|&n| (0..width).map(move |i| u32::from(i < n))).collect();
        let mask = Tensor::from_vec(mask, (2, width), &Device::Cpu)?;
        let want = theirs.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        let got = ours.forward(&ids, Some(&mask))?;
        // Padding rows' states are never pooled: compare the real tokens only.
        let d = max_diff(&got.get(0)?, &want.get(0)?);
        assert!(d < 1e-4, "padded pass, first text: {d}");
        let d = max_diff(&got.get(1)?.narrow(0, 0, short.len())?, &want.get(1)?.narrow(0, 0, short.len())?);
        assert!(d < 1e-4, "padded pass, second text: {d}");
        // And the padded text's states equal its own pass without padding.
        let alone = ours.forward(&Tensor::new(short.as_slice(), &Device::Cpu)?.unsqueeze(0)?, None)?;
        let d = max_diff(&got.get(1)?.narrow(0, 0, short.len())?, &alone.get(0)?);
        assert!(d < 1e-4, "padded against alone: {d}");
        Ok(())
    }
}
