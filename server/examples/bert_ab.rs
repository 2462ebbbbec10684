//! A/B of BERT's forward pass in one process: candle-transformers' `BertModel` against this
//! server's `embed::bert::Bert`, on all-MiniLM-L6-v2, alternating short rounds so that both see
//! the same machine (separate runs on a shared 2-core machine differ by more than the change).
//! Each pass runs inside rayon's pool, as the server runs it. Prints texts/s per round and the
//! median ratio, for one text per pass and for passes of 8 (padded to the longest).
//!
//! cargo run --release -p server --example bert_ab -- MODEL_DIR TEXTS_FILE [ROUNDS] [SECONDS_PER_ROUND]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use server::embed::bert::Bert;
use tokenizers::Tokenizer;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bert_ab MODEL_DIR TEXTS_FILE [ROUNDS] [SECONDS_PER_ROUND]";
    let dir = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let texts_file = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let rounds: usize = args.next().map_or(Ok(12), |s| s.parse()).map_err(|_| anyhow::anyhow!(usage))?;
    let seconds: f64 = args.next().map_or(Ok(0.7), |s| s.parse()).map_err(|_| anyhow::anyhow!(usage))?;

    let config: Config = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
    let weights = std::fs::read(dir.join("model.safetensors"))?;
    let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)?;
    let theirs = BertModel::load(vb.clone(), &config)?;
    let ours = Bert::load(vb, &config)?;
    let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(anyhow::Error::msg)?;
    let texts: Vec<Vec<u32>> = std::fs::read_to_string(&texts_file)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| tokenizer.encode(l, true).map(|e| e.get_ids().to_vec()).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!texts.is_empty(), "{} has no text", texts_file.display());

    // (ids, mask) of passes of `n` texts, padded to each pass's longest.
    let passes = |n: usize| -> anyhow::Result<Vec<(Tensor, Tensor)>> {
        texts
            .chunks(n)
            .filter(|c| c.len() == n)
            .map(|chunk| {
                let width = chunk.iter().map(Vec::len).max().unwrap_or(1);
                let ids: Vec<u32> = chunk
                    .iter()
                    .flat_map(|t| t.iter().copied().chain(std::iter::repeat_n(0, width - t.len())))
                    .collect();
                let mask: Vec<u32> = chunk.iter().flat_map(|t| (0..width).map(|i| u32::from(i < t.len()))).collect();
                Ok((
                    Tensor::from_vec(ids, (n, width), &Device::Cpu)?,
                    Tensor::from_vec(mask, (n, width), &Device::Cpu)?,
                ))
            })
            .collect()
    };
    for n in [1usize, 8] {
        let passes = passes(n)?;
        let run = |which: usize, ids: &Tensor, mask: &Tensor| -> candle_core::Result<Tensor> {
            rayon::scope(|_| {
                if which == 0 {
                    theirs.forward(ids, &ids.zeros_like()?, Some(mask))
                } else {
                    ours.forward(ids, (n > 1).then_some(mask))
                }
            })
        };
        let mut rates = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            for which in [round % 2, 1 - round % 2] {
                let (start, mut done) = (Instant::now(), 0usize);
                let mut i = 0;
                while start.elapsed() < Duration::from_secs_f64(seconds) {
                    let (ids, mask) = &passes[i % passes.len()];
                    run(which, ids, mask)?;
                    done += n;
                    i += 1;
                }
                rates[which].push(done as f64 / start.elapsed().as_secs_f64());
            }
        }
        let ratios: Vec<f64> = rates[1].iter().zip(&rates[0]).map(|(b, a)| b / a).collect();
        println!(
            "batch {n}: BertModel median {:.1} texts/s, Bert median {:.1} texts/s, median ratio of rounds {:.3}",
            median(rates[0].clone()),
            median(rates[1].clone()),
            median(ratios.clone())
        );
        println!("  BertModel rounds {:?}", rates[0].iter().map(|r| (r * 10.0).round() / 10.0).collect::<Vec<_>>());
        println!("  Bert rounds      {:?}", rates[1].iter().map(|r| (r * 10.0).round() / 10.0).collect::<Vec<_>>());
    }
    Ok(())
}
