//! What an embedding costs: one short search query (latency) for MiniLM and hashing, and
//! rental descriptions of ~30 words in batches of 1, 8 and 32 (texts per second) for MiniLM.
//! Needs the model: `scripts/fetch-model.sh`.

use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use server::embed::Embedder;
use server::embed::hashing::HashingEmbedder;
use server::embed::minilm::MiniLmEmbedder;

const MODEL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/all-MiniLM-L6-v2");

/// Rental listings as people write them: ~30 words, English and Korean, one per line; the same
/// file feeds the reference comparison (`scripts/bench-embed-reference.sh`).
const DESCRIPTIONS: &str = include_str!("reference/descriptions.txt");

fn batch(n: usize) -> Vec<String> {
    DESCRIPTIONS.lines().cycle().take(n).map(str::to_string).collect()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let minilm = MiniLmEmbedder::load(Path::new(MODEL_DIR))
        .unwrap_or_else(|e| panic!("the benchmark needs the model in {MODEL_DIR}: run scripts/fetch-model.sh ({e:#})"));
    let query = vec!["camping tent for the weekend".to_string()];

    let mut latency = c.benchmark_group("query");
    latency.bench_function("minilm", |b| b.to_async(&runtime).iter(|| minilm.embed(&query)));
    latency.bench_function("hashing", |b| b.to_async(&runtime).iter(|| HashingEmbedder.embed(&query)));
    latency.finish();

    let mut throughput = c.benchmark_group("descriptions");
    throughput.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in [1usize, 8, 32] {
        let texts = batch(n);
        throughput.throughput(Throughput::Elements(n as u64));
        throughput.bench_with_input(BenchmarkId::new("minilm", n), &texts, |b, texts| {
            b.to_async(&runtime).iter(|| minilm.embed(texts))
        });
    }
    throughput.finish();
}

criterion_group!(embed, benches);
criterion_main!(embed);
