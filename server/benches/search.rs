//! Search latency on 100,000 embedded items in MariaDB 11.8: the database time of one search
//! (the query is embedded beforehand with the hashing embedder), for
//!
//! * `vector`: nearest items through the VECTOR INDEX, no filters;
//! * `vector_filtered`: a category and a price range (~4% of the items kept: the planner
//!   chooses the exact path, see `server::search::vector`);
//! * `vector_category`: a category alone (~12.5% kept: the index path, over-fetching);
//! * `vector_price`: a price range alone (~30% kept: the index path);
//! * `exact_filtered`: the exact path alone, with the category and price range;
//! * `exact_category`: the exact path alone, a category alone (what the index path saves);
//! * `text`: the text fallback over every item (`LIKE` per word: a full scan);
//! * `api`: everything `GET /rentals/search` does besides HTTP: embed, vector, text of the
//!   not-yet-embedded items, merge.
//!
//! Criterion reports each distribution; the bench also times 200 queries of varied text per
//! case itself and prints p50/p99, and for every vector case its recall@20 against the exact
//! answer (the same filters, every distance computed) over 50 queries: a hit counts when its
//! distance is within the exact 20th's, so ties are not misses; and for the category and the
//! price range, in how many of 50 queries the first round of the index path came back with
//! fewer than 20 passing, at the plan's `k` and at half of it. Run:
//! `cargo bench -p server --bench search`.
//! Set `BENCH_MYSQL_URL=mysql://user:pass@host:port` to use a running MariaDB instead of a
//! container; `BENCH_ITEMS` to change the item count.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use server::embed::hashing::HashingEmbedder;
use server::embed::to_vector_bytes;
use server::rental::Category;
use server::rental::embedding::embedding_text;
use server::search::text::{self, Scope};
use server::search::{self as search_api, SearchFilter, SearchRequest, Selectivity, vector};
use sqlx::MySqlPool;

const ITEM_ROWS_PER_INSERT: usize = 1_000;
const VECTOR_ROWS_PER_INSERT: usize = 250;
const TIMED_QUERIES: usize = 200;
const RECALL_QUERIES: usize = 50;
const LIMIT: u32 = 20;

const ADJECTIVES: &[&str] = &[
    "compact",
    "large",
    "lightweight",
    "waterproof",
    "electric",
    "cordless",
    "vintage",
    "portable",
    "foldable",
    "professional",
    "kids",
    "family",
    "outdoor",
    "wireless",
    "heavy-duty",
    "새",
    "튼튼한",
    "가벼운",
    "접이식",
    "전동",
];
const NOUNS: &[&str] = &[
    "tent",
    "drill",
    "camera",
    "bicycle",
    "stroller",
    "projector",
    "ladder",
    "kayak",
    "speaker",
    "sleeping bag",
    "drone",
    "saw",
    "guitar",
    "tripod",
    "cooler",
    "snowboard",
    "lamp",
    "vacuum",
    "suit",
    "dress",
    "텐트",
    "드릴",
    "카메라",
    "자전거",
    "유모차",
    "캠핑의자",
    "노트북",
    "청소기",
];
const EXTRAS: &[&str] = &[
    "with carrying case",
    "barely used",
    "for weekend trips",
    "pick up near the station",
    "batteries included",
    "great for beginners",
    "주말 대여 가능",
    "상태 좋아요",
    "직거래만 가능",
    "설명서 포함",
];

fn phrase(rng: &mut StdRng) -> String {
    let pick = |rng: &mut StdRng, list: &[&'static str]| list[rng.random_range(0..list.len())];
    format!("{} {}", pick(rng, ADJECTIVES), pick(rng, NOUNS))
}

struct Item {
    title: String,
    description: String,
    category: Category,
    price: u32,
}

fn item(rng: &mut StdRng) -> Item {
    let title = phrase(rng);
    let description = format!("{title} {} {}", EXTRAS[rng.random_range(0..EXTRAS.len())], phrase(rng));
    Item {
        title,
        description,
        category: Category::ALL[rng.random_range(0..8)],
        price: rng.random_range(0..100) * 1_000,
    }
}

async fn database() -> (MySqlPool, Option<loadtest::infra::Service>) {
    let (server_url, service) = match std::env::var("BENCH_MYSQL_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let opts = loadtest::infra::ProvisionOptions::from_env().expect("LOADTEST_* settings");
            let service = loadtest::infra::Infra::provision_one(loadtest::infra::ServiceKind::MariaDb, &opts)
                .await
                .expect("a MariaDB container");
            (service.url().to_string(), Some(service))
        }
    };
    let name = loadtest::infra::unique_name("bench_search");
    let mut admin: sqlx::MySqlConnection = sqlx::Connection::connect(&server_url).await.expect("connect");
    sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        .execute(&mut admin)
        .await
        .expect("create the database");
    // The HNSW graph of 100k x 384 floats is ~170 MB; MariaDB's default cache (16 MB) would
    // make every insert and search read the graph back from the table.
    sqlx::query("SET GLOBAL mhnsw_max_cache_size = 512 * 1024 * 1024").execute(&mut admin).await.expect("cache size");
    // The vectors alone are 154 MB (100k x 384 floats), more than InnoDB's default buffer pool
    // (128 MB): with the default, an exact scan of a category's 12,500 vectors read most of
    // them from disk (p50 522 ms) and the index path's category case had p99 69 ms.
    sqlx::query("SET GLOBAL innodb_buffer_pool_size = 1024 * 1024 * 1024")
        .execute(&mut admin)
        .await
        .expect("buffer pool size");
    let url = format!("{}/{name}", server_url.trim_end_matches('/'));
    let pool = server::db::connect_and_migrate(&url, 4).await.expect("migrations");
    (pool, service)
}

async fn fill(db: &MySqlPool, count: usize) {
    let started = Instant::now();
    let owner = sqlx::query("INSERT INTO users (email, display_name, password_hash) VALUES ('o@bench', 'o', 'x')")
        .execute(db)
        .await
        .expect("a user")
        .last_insert_id();
    let mut rng = StdRng::seed_from_u64(7);
    let items: Vec<Item> = (0..count).map(|_| item(&mut rng)).collect();
    for chunk in items.chunks(ITEM_ROWS_PER_INSERT) {
        let values = vec!["(?, ?, ?, ?, ?, 0, '', '[]', 'DONE')"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO rental_items (owner_id, title, description, category, price_per_day, deposit, location, \
             photo_urls, embed_status) VALUES {values}"
        );
        let mut q = sqlx::query(&sql);
        for it in chunk {
            q = q.bind(owner).bind(&it.title).bind(&it.description).bind(it.category.as_str()).bind(it.price);
        }
        q.execute(db).await.expect("insert items");
    }
    let items_done = started.elapsed();
    let ids: Vec<u64> = sqlx::query_scalar("SELECT id FROM rental_items ORDER BY id").fetch_all(db).await.expect("ids");
    for (chunk_ids, chunk) in ids.chunks(VECTOR_ROWS_PER_INSERT).zip(items.chunks(VECTOR_ROWS_PER_INSERT)) {
        let values = vec!["(?, 1, 'hashing', ?)"; chunk.len()].join(", ");
        let sql =
            format!("INSERT INTO rental_embeddings (item_id, content_version, embedder, embedding) VALUES {values}");
        let mut q = sqlx::query(&sql);
        for (id, it) in chunk_ids.iter().zip(chunk) {
            let text = embedding_text(&it.title, it.category.as_str(), &it.description);
            q = q.bind(*id).bind(to_vector_bytes(&HashingEmbedder::embed_one(&text)));
        }
        q.execute(db).await.expect("insert vectors");
    }
    println!(
        "filled {count} items in {:.1} s (rows {:.1} s, vectors with index {:.1} s)",
        started.elapsed().as_secs_f64(),
        items_done.as_secs_f64(),
        (started.elapsed() - items_done).as_secs_f64()
    );
}

fn percentiles(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |p: f64| times[((times.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    println!(
        "{name:>16}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        times.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}

fn filtered() -> SearchFilter {
    SearchFilter { category: Some(Category::Tools), min_price: Some(10_000), max_price: Some(40_000), available: None }
}

fn category() -> SearchFilter {
    SearchFilter { category: Some(Category::Tools), ..SearchFilter::default() }
}

fn price() -> SearchFilter {
    SearchFilter { min_price: Some(10_000), max_price: Some(40_000), ..SearchFilter::default() }
}

#[derive(Clone, Copy)]
enum Case {
    Vector,
    VectorFiltered,
    VectorCategory,
    VectorPrice,
    ExactFiltered,
    ExactCategory,
    Text,
    Api,
}

impl Case {
    /// The filters of a vector case, for its exact answer; `None` for the others.
    fn filter(self) -> Option<SearchFilter> {
        match self {
            Case::Vector => Some(SearchFilter::default()),
            Case::VectorFiltered | Case::ExactFiltered => Some(filtered()),
            Case::VectorCategory | Case::ExactCategory => Some(category()),
            Case::VectorPrice => Some(price()),
            Case::Text | Case::Api => None,
        }
    }
}

/// The bench's one database's counts for search plans, as an instance of the server keeps them.
fn selectivity() -> &'static Arc<Selectivity> {
    static SELECTIVITY: OnceLock<Arc<Selectivity>> = OnceLock::new();
    SELECTIVITY.get_or_init(Selectivity::new)
}

async fn hits(db: &MySqlPool, case: Case, q: &str) -> Vec<server::search::SearchHit> {
    let v = HashingEmbedder::embed_one(q);
    let hits = match case {
        Case::Vector | Case::VectorFiltered | Case::VectorCategory | Case::VectorPrice => {
            vector::search(db, selectivity(), "hashing", &v, &case.filter().unwrap_or_default(), LIMIT).await
        }
        Case::ExactFiltered => vector::exact(db, "hashing", &to_vector_bytes(&v), &filtered(), LIMIT).await,
        Case::ExactCategory => vector::exact(db, "hashing", &to_vector_bytes(&v), &category(), LIMIT).await,
        Case::Text => text::search(db, Scope::All, q, &SearchFilter::default(), LIMIT).await,
        Case::Api => {
            let req = SearchRequest { q: q.to_string(), filter: SearchFilter::default(), limit: LIMIT };
            return search_api::search(db, selectivity(), &HashingEmbedder, &req).await.expect("search").hits;
        }
    };
    hits.expect("search")
}

async fn run(db: &MySqlPool, case: Case, q: &str) -> usize {
    hits(db, case, q).await.len()
}

/// Mean recall@20 of `case` over `queries` against the exact answer with the same filters.
async fn recall(db: &MySqlPool, case: Case, queries: &[String]) -> Option<f64> {
    let filter = case.filter()?;
    let mut sum = 0.0;
    for q in queries {
        let v = to_vector_bytes(&HashingEmbedder::embed_one(q));
        let truth = vector::exact(db, "hashing", &v, &filter, LIMIT).await.expect("exact");
        let Some(kth) = truth.last().map(|h| 1.0 - h.score) else {
            sum += 1.0;
            continue;
        };
        let got = hits(db, case, q).await;
        let good = got.iter().filter(|h| 1.0 - h.score <= kth + 1e-6).count().min(truth.len());
        sum += good as f64 / truth.len() as f64;
    }
    Some(sum / queries.len().max(1) as f64)
}

async fn explain(db: &MySqlPool) {
    use sqlx::Row;
    let v = to_vector_bytes(&HashingEmbedder::embed_one("portable camera"));
    let rows = sqlx::query(
        "EXPLAIN SELECT item_id, VEC_DISTANCE_COSINE(embedding, ?) AS distance FROM rental_embeddings \
         ORDER BY distance LIMIT 200",
    )
    .bind(v)
    .fetch_all(db)
    .await
    .expect("explain");
    for r in rows {
        let col = |name: &str| r.try_get::<Option<String>, _>(name).ok().flatten().unwrap_or_default();
        println!("EXPLAIN candidates: type={} key={}", col("type"), col("key"));
    }
    let sql = format!(
        "EXPLAIN SELECT e.item_id, VEC_DISTANCE_COSINE(e.embedding, ?) AS distance FROM rental_items i JOIN \
         rental_embeddings e ON e.item_id = i.id WHERE e.content_version = i.content_version AND i.embed_status = \
         'DONE' AND e.embedder = 'hashing'{} ORDER BY distance, e.item_id LIMIT 20",
        filtered().sql()
    );
    let q = sqlx::query(&sql).bind(to_vector_bytes(&HashingEmbedder::embed_one("portable camera")));
    for r in filtered().bind(q).fetch_all(db).await.expect("explain") {
        let col = |name: &str| r.try_get::<Option<String>, _>(name).ok().flatten().unwrap_or_default();
        println!(
            "EXPLAIN exact: table={} type={} key={} extra={}",
            col("table"),
            col("type"),
            col("key"),
            col("Extra")
        );
    }
    for (name, filter) in [
        ("none", SearchFilter::default()),
        ("category+price", filtered()),
        ("category", category()),
        ("price", price()),
    ] {
        println!("plan for {name}: {:?}", vector::plan(db, selectivity(), &filter, LIMIT).await.expect("plan"));
    }
}

/// How many of `queries` find fewer than [`LIMIT`] items passing `filter` among their `k`
/// nearest candidates from the index: the searches whose first round comes back short.
async fn short_first_rounds(db: &MySqlPool, filter: &SearchFilter, k: u32, queries: &[String]) -> usize {
    let mut short = 0;
    for q in queries {
        let ids: Vec<(u64,)> =
            sqlx::query_as("SELECT item_id FROM rental_embeddings ORDER BY VEC_DISTANCE_COSINE(embedding, ?) LIMIT ?")
                .bind(to_vector_bytes(&HashingEmbedder::embed_one(q)))
                .bind(k)
                .fetch_all(db)
                .await
                .expect("candidates");
        let placeholders = vec!["?"; ids.len()].join(", ");
        let sql = format!("SELECT COUNT(*) FROM rental_items i WHERE i.id IN ({placeholders}){}", filter.sql());
        let mut count = sqlx::query_as::<_, (i64,)>(&sql);
        for (id,) in &ids {
            count = count.bind(*id);
        }
        let (passed,) = filter.bind_as(count).fetch_one(db).await.expect("count");
        short += usize::from(passed < i64::from(LIMIT));
    }
    short
}

fn main() {
    server::install_crypto_provider();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    // The container handle removes its container on drop, which needs a runtime context.
    let _entered = rt.enter();
    let count: usize = std::env::var("BENCH_ITEMS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let (db, _service) = rt.block_on(database());
    rt.block_on(fill(&db, count));
    rt.block_on(explain(&db));

    let mut rng = StdRng::seed_from_u64(42);
    let queries: Vec<String> = (0..TIMED_QUERIES).map(|_| phrase(&mut rng)).collect();
    let cases = [
        ("vector", Case::Vector),
        ("vector_filtered", Case::VectorFiltered),
        ("vector_category", Case::VectorCategory),
        ("vector_price", Case::VectorPrice),
        ("exact_filtered", Case::ExactFiltered),
        ("exact_category", Case::ExactCategory),
        ("text", Case::Text),
        ("api", Case::Api),
    ];
    // Warm the caches (InnoDB pages, MariaDB's HNSW graph cache) with every query of every case,
    // so that the timed runs measure a warm server, as the criterion samples after them do.
    for (_, case) in cases {
        for q in &queries {
            rt.block_on(run(&db, case, q));
        }
    }
    for (name, case) in cases {
        let mut times = Vec::with_capacity(queries.len());
        let mut empty = 0;
        for q in &queries {
            let t = Instant::now();
            let n = rt.block_on(run(&db, case, q));
            times.push(t.elapsed());
            empty += usize::from(n == 0);
        }
        percentiles(name, times);
        if empty > 0 {
            println!("{name:>16}: {empty} of {} queries found nothing", queries.len());
        }
    }
    // The plan's over-fetch against half of it (what a share estimated at twice the truth gives).
    for (name, filter) in [("category", category()), ("price", price())] {
        if let Ok(vector::Plan::Index { k }) = rt.block_on(vector::plan(&db, selectivity(), &filter, LIMIT)) {
            let sample = &queries[..RECALL_QUERIES];
            let at_k = rt.block_on(short_first_rounds(&db, &filter, k, sample));
            let at_half = rt.block_on(short_first_rounds(&db, &filter, k / 2, sample));
            println!(
                "{name:>16}: first round short of {LIMIT} in {at_k} of {} queries at k {k}, {at_half} at k {}",
                sample.len(),
                k / 2
            );
        }
    }
    for (name, case) in cases {
        if let Some(r) = rt.block_on(recall(&db, case, &queries[..RECALL_QUERIES])) {
            println!("{name:>16}: recall@{LIMIT} {r:.3} over {RECALL_QUERIES} queries");
        }
    }

    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut group = criterion.benchmark_group("search_100k");
    group.sampling_mode(SamplingMode::Flat);
    for (name, case) in cases {
        let mut n = 0usize;
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                n += 1;
                let q = queries[n % queries.len()].clone();
                let db = db.clone();
                async move { run(&db, case, &q).await }
            })
        });
    }
    group.finish();
    criterion.final_summary();
}
