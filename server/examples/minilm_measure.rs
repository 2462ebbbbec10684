//! The candle side of `scripts/bench-embed-reference.sh`: all-MiniLM-L6-v2 as the server runs
//! it, on the texts of a file (one per line). Prints JSON: texts per second for batches of 1, 8
//! and 32 (the median of 5 rounds), and the vector of every text embedded alone, for the
//! reference implementation to compare with.
//!
//! cargo run --release -p server --example minilm_measure -- MODEL_DIR TEXTS_FILE [SECONDS_PER_BATCH]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use server::embed::Embedder;
use server::embed::minilm::MiniLmEmbedder;

const ROUNDS: usize = 5;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: minilm_measure MODEL_DIR TEXTS_FILE [SECONDS_PER_BATCH]";
    let model_dir = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let texts_file = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let seconds: f64 = match args.next() {
        Some(s) => s.parse().map_err(|_| anyhow::anyhow!("SECONDS_PER_BATCH `{s}` is not a number: {usage}"))?,
        None => 10.0,
    };
    let texts: Vec<String> = std::fs::read_to_string(&texts_file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", texts_file.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    anyhow::ensure!(!texts.is_empty(), "{} has no text", texts_file.display());
    let model = MiniLmEmbedder::load(&model_dir)?;

    let mut throughput = Vec::new();
    for n in [1usize, 8, 32] {
        let batch: Vec<String> = texts.iter().cycle().take(n).cloned().collect();
        model.embed(&batch).await?; // warm-up
        let round = Duration::from_secs_f64(seconds / ROUNDS as f64);
        let mut rates = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let (start, mut done) = (Instant::now(), 0usize);
            while start.elapsed() < round {
                model.embed(&batch).await?;
                done += n;
            }
            rates.push(done as f64 / start.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        throughput.push(serde_json::json!({ "batch": n, "texts_per_s": rates[ROUNDS / 2], "rounds": rates }));
    }
    let mut vectors = Vec::with_capacity(texts.len());
    for text in &texts {
        vectors.push(model.embed(std::slice::from_ref(text)).await?.remove(0));
    }
    let out = serde_json::json!({
        "implementation": "candle (server::embed::minilm)",
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "throughput": throughput,
        "vectors": vectors,
    });
    println!("{out}");
    Ok(())
}
