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

/// Rental listings as people write them: ~30 words, English and Korean.
const DESCRIPTIONS: [&str; 8] = [
    "Four-person camping tent, waterproof with a rain fly, sets up in ten minutes. Used twice, \
     comes with pegs and a carry bag. Pick up near the station on weekends.",
    "Cordless electric drill with two batteries and a set of wood and metal bits. Good for \
     hanging shelves or assembling furniture. Please return it charged, thank you.",
    "Full HD projector with HDMI and a 100-inch screen, perfect for movie nights or a small \
     presentation. Remote included. Handle the lens with care and keep it dry.",
    "City bicycle with a front basket, seven gears and lights. Helmet available on request. \
     Great for exploring the river park; lock and key come with the rental.",
    "캠핑용 4인 텐트 대여합니다. 방수 잘 되고 설치가 쉬워요. 팩과 가방 포함이고 주말에 역 근처에서 \
     직접 전달 가능합니다. 깨끗하게 사용해 주세요.",
    "전동 드릴 빌려드려요. 배터리 두 개와 비트 세트 포함입니다. 선반 달기나 가구 조립에 좋아요. \
     사용 후 충전해서 돌려주시면 감사하겠습니다.",
    "Warm sleeping bag rated to minus five degrees, compresses small for hiking trips. Washed \
     after every rental. Add a camping mat for a few extra points per day.",
    "Hair dryer, 1800 W with a diffuser and a cool-shot button, quiet and light. Ideal for a \
     trip or guests staying over. Cleaned filter, cable in good condition.",
];

fn batch(n: usize) -> Vec<String> {
    DESCRIPTIONS.iter().cycle().take(n).map(|d| d.to_string()).collect()
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
