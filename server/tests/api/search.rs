//! Search: vector ranking once the worker embedded items, filters, the text fallback for items
//! not embedded (yet, or any more), and bad parameters.

use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::batch::embed_job::embed_waiting;
use server::embed::hashing::HashingEmbedder;

use crate::helpers::{Session, TestApp, TestResult, World, assert_error};
use crate::rentals::create;

/// Waits until the worker stored the embedding of `version` of item `id`.
pub async fn wait_until_embedded(app: &TestApp, who: &Session, id: u64, version: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, item) = app.call("GET", &format!("/rentals/{id}"), Some(&who.token), None).await;
        if item["embed_status"] == "DONE" && item["content_version"] == version {
            return;
        }
        assert!(Instant::now() < deadline, "item {id} not embedded at version {version}: {item}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn search(app: &TestApp, who: &Session, query: &[(&str, &str)]) -> (StatusCode, Value) {
    let qs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    app.call("GET", &format!("/rentals/search?{}", qs.join("&")), Some(&who.token), None).await
}

fn item(title: &str, description: &str, category: &str, price: u32) -> Value {
    json!({"title": title, "description": description, "category": category, "price_per_day": price})
}

fn ids(results: &Value) -> Vec<u64> {
    results["hits"].as_array().unwrap().iter().map(|h| h["item"]["id"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_items_are_ranked_by_vector_with_scores_and_filters() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_JOB_EMBED_SCHEDULE", "every 100ms"), ("SERVER_EMBEDDER", "hashing")]).await;
    let (owner, user) = (app.signup("owner").await, app.signup("user").await);
    let tent = create(&app, &owner, item("Camping tent", "A two-person camping tent", "camping", 15000)).await;
    let stove = create(&app, &owner, item("Camping stove", "Gas stove for camping trips", "camping", 30000)).await;
    let drill = create(&app, &owner, item("Electric drill", "Cordless drill with bits", "tools", 5000)).await;
    let (tent, stove, drill) =
        (tent["id"].as_u64().unwrap(), stove["id"].as_u64().unwrap(), drill["id"].as_u64().unwrap());
    for id in [tent, stove, drill] {
        wait_until_embedded(&app, &owner, id, 1).await;
    }

    let (status, found) = search(&app, &user, &[("q", "camping tent")]).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!((found["mode"].as_str(), found["embedder"].as_str()), (Some("vector"), Some("hashing")));
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(ids(&found)[0], tent, "{found}");
    assert!(hits.iter().all(|h| h["matched_by"] == "vector"));
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(scores[0] > 0.5 && scores[0] <= 1.0 + 1e-6, "{scores:?}");

    let (_, tools) = search(&app, &user, &[("q", "camping tent"), ("category", "tools")]).await;
    assert_eq!(ids(&tools), vec![drill]);
    let (_, cheap) = search(&app, &user, &[("q", "camping"), ("max_price", "20000")]).await;
    assert!(!ids(&cheap).contains(&stove) && ids(&cheap).contains(&tent), "{cheap}");
    let (_, pricey) = search(&app, &user, &[("q", "camping"), ("min_price", "20000"), ("limit", "1")]).await;
    assert_eq!(ids(&pricey), vec![stove]);

    // An approved reservation makes the tent unavailable on its days, and only on them.
    let day = |n| Utc::now().date_naive().checked_add_days(Days::new(n)).unwrap().to_string();
    let (status, r) = app
        .call(
            "POST",
            &format!("/rentals/{tent}/reservations"),
            Some(&user.token),
            Some(json!({"start_date": day(10), "end_date": day(12)})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let (status, _) = app.call("POST", &format!("/reservations/{}/approve", r["id"]), Some(&owner.token), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, busy) =
        search(&app, &user, &[("q", "camping tent"), ("available_from", &day(12)), ("available_to", &day(14))]).await;
    assert!(!ids(&busy).contains(&tent) && ids(&busy).contains(&stove), "{busy}");
    let (_, free) = search(&app, &user, &[("q", "camping tent"), ("available_from", &day(13))]).await;
    assert_eq!(ids(&free)[0], tent, "{free}");

    // The plan of each: a category or a price range keeps few items here, counted over their
    // index and searched exactly; so is a small catalogue with no filter, or availability
    // alone. Past 5,000 embedded items those go through the vector index, over-fetching by the
    // share of the items the filter keeps, from the instance's own counts.
    use server::rental::Category;
    use server::search::vector::{EXACT_MAX_ROWS, FILTERED_MIN_OVERFETCH, Plan, UNFILTERED_OVERFETCH, plan};
    use server::search::{SearchFilter, Selectivity};
    let counted_first = Selectivity::new();
    let camping = SearchFilter { category: Some(Category::Camping), ..SearchFilter::default() };
    assert_eq!(plan(&world.db, &counted_first, &camping, 20).await?, Plan::Exact { rows: 2 });
    let cheap = SearchFilter { max_price: Some(20_000), ..SearchFilter::default() };
    assert_eq!(plan(&world.db, &counted_first, &cheap, 20).await?, Plan::Exact { rows: 2 });
    let today = Utc::now().date_naive();
    let range = server::rental::reservations::DateRange { start: today, end: today };
    let free = SearchFilter { available: Some(range), ..SearchFilter::default() };
    let done = |db: sqlx::MySqlPool, sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(&db).await.map(|n| n as u64)
    };
    let all = "SELECT COUNT(*) FROM rental_items WHERE embed_status = 'DONE'";
    let n = done(world.db.clone(), all).await?;
    assert_eq!(plan(&world.db, &counted_first, &SearchFilter::default(), 20).await?, Plan::Exact { rows: n });
    assert_eq!(plan(&world.db, &counted_first, &free, 20).await?, Plan::Exact { rows: n });

    // Items marked DONE (the plan counts items, not vectors): 15,000 `other` at 1,000 a day and
    // EXACT_MAX_ROWS + 1 `tools` at 50,000, a catalogue four times past the exact limit.
    let filler = |category: &'static str, price: u32, count: u64| {
        let (db, owner_id) = (world.db.clone(), owner.id);
        async move {
            for chunk in (0..count).collect::<Vec<_>>().chunks(1_000) {
                let values = vec!["(?, 'filler', '', ?, ?, 0, '[]', 'DONE')"; chunk.len()].join(", ");
                let sql = format!(
                    "INSERT INTO rental_items (owner_id, title, description, category, price_per_day, deposit, \
                     photo_urls, embed_status) VALUES {values}"
                );
                let mut q = sqlx::query(&sql);
                for _ in chunk {
                    q = q.bind(owner_id).bind(category).bind(price);
                }
                q.execute(&db).await?;
            }
            Ok::<_, sqlx::Error>(())
        }
    };
    filler("other", 1_000, 15_000).await?;
    filler("tools", 50_000, EXACT_MAX_ROWS + 1).await?;
    let n = done(world.db.clone(), all).await?;
    let tools =
        done(world.db.clone(), "SELECT COUNT(*) FROM rental_items WHERE embed_status = 'DONE' AND category = 'tools'")
            .await?;
    let pricey = done(
        world.db.clone(),
        "SELECT COUNT(*) FROM rental_items WHERE embed_status = 'DONE' AND price_per_day >= 40000",
    )
    .await?;
    let by_share =
        |kept: u64| Plan::Index { k: (2 * 20 * n).div_ceil(kept).max(u64::from(20 * FILTERED_MIN_OVERFETCH)) as u32 };

    // An instance that counts now: the share a filter keeps sizes its over-fetch (a quarter of
    // the catalogue: 160 for 20, over the floor of 120).
    let counted_now = Selectivity::new();
    let tools_only = SearchFilter { category: Some(Category::Tools), ..SearchFilter::default() };
    let from_40k = SearchFilter { min_price: Some(40_000), ..SearchFilter::default() };
    let cheap_tools = SearchFilter { max_price: Some(20_000), ..tools_only.clone() };
    for selectivity in [&counted_now, &counted_first] {
        assert_eq!(
            plan(&world.db, selectivity, &SearchFilter::default(), 20).await?,
            Plan::Index { k: 20 * UNFILTERED_OVERFETCH }
        );
        assert_eq!(plan(&world.db, selectivity, &free, 20).await?, Plan::Index { k: 20 * FILTERED_MIN_OVERFETCH });
        assert_eq!(
            plan(&world.db, selectivity, &camping, 20).await?,
            Plan::Exact { rows: 2 },
            "a category still counts its own"
        );
        assert_eq!(plan(&world.db, selectivity, &cheap_tools, 20).await?, Plan::Exact { rows: 1 }, "the drill alone");
    }
    let floor = 20 * FILTERED_MIN_OVERFETCH;
    assert!(matches!(by_share(tools), Plan::Index { k } if k > floor), "{n} items, {tools} tools: over the floor");
    assert_eq!(plan(&world.db, &counted_now, &tools_only, 20).await?, by_share(tools));
    assert_eq!(plan(&world.db, &counted_now, &from_40k, 20).await?, by_share(pricey));
    // An instance whose counts predate the fillers still counts before any exact scan: the
    // index, sized by its older shares.
    assert!(matches!(plan(&world.db, &counted_first, &tools_only, 20).await?, Plan::Index { .. }));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_not_embedded_are_found_by_text() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_EMBED_WORKERS", "0")]).await;
    let (owner, user) = (app.signup("owner").await, app.signup("user").await);
    let tent = create(&app, &owner, item("2인용 캠핑텐트", "방수 텐트를 빌려드려요", "camping", 15000)).await;
    create(&app, &owner, item("전동 드릴", "충전식", "tools", 5000)).await;

    let (status, found) = search(&app, &user, &[("q", "텐트")]).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["mode"], "text", "{found}");
    assert_eq!(ids(&found), vec![tent["id"].as_u64().unwrap()]);
    assert_eq!(found["hits"][0]["matched_by"], "text");
    assert_eq!(found["hits"][0]["item"]["embed_status"], "WAIT");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_and_waiting_items_answer_together_as_hybrid() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_EMBED_WORKERS", "0")]).await;
    let (owner, user) = (app.signup("owner").await, app.signup("user").await);
    let old =
        create(&app, &owner, item("Camping tent", "Tent for two", "camping", 15000)).await["id"].as_u64().unwrap();
    assert_eq!(embed_waiting(&world.db, std::sync::Arc::new(HashingEmbedder), 10).await?, 1);
    let new = create(&app, &owner, item("Large tent", "Family tent", "camping", 25000)).await["id"].as_u64().unwrap();

    let (_, found) = search(&app, &user, &[("q", "tent")]).await;
    assert_eq!(found["mode"], "hybrid", "{found}");
    let by: Vec<(u64, &str)> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["item"]["id"].as_u64().unwrap(), h["matched_by"].as_str().unwrap()))
        .collect();
    assert!(by.contains(&(old, "vector")) && by.contains(&(new, "text")), "{found}");

    // A content change makes the stored vector stale: the item is found by its new words.
    let (status, _) = app
        .call("PATCH", &format!("/rentals/{old}"), Some(&owner.token), Some(json!({"title": "Hiking backpack"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, found) = search(&app, &user, &[("q", "backpack")]).await;
    assert_eq!((found["mode"].as_str(), ids(&found)), (Some("text"), vec![old]), "{found}");
    assert_eq!(embed_waiting(&world.db, std::sync::Arc::new(HashingEmbedder), 10).await?, 2);
    let (_, found) = search(&app, &user, &[("q", "backpack")]).await;
    assert_eq!((found["mode"].as_str(), ids(&found)[0]), (Some("vector"), old), "{found}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_search_parameters_are_422_naming_the_parameter() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_EMBED_WORKERS", "0")]).await;
    let user = app.signup("user").await;
    let long = "x".repeat(10_000);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "q"),
        (vec![("q", "")], "q"),
        (vec![("q", &long)], "q"),
        (vec![("q", "tent"), ("limit", "1000000")], "limit"),
        (vec![("q", "tent"), ("available_from", "2030-01-10"), ("available_to", "2030-01-01")], "available_to"),
        (vec![("q", "tent"), ("min_price", "9"), ("max_price", "1")], "max_price"),
        (vec![("q", "tent"), ("category", "spaceships")], "category"),
        (vec![("q", "tent"), ("available_from", "soon")], "available_from"),
    ];
    for (query, field) in cases {
        let (status, body) = search(&app, &user, &query).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert_eq!(body["field"], field, "{body}");
    }
    // Punctuation only: nothing to embed and no word to match, but no error either.
    let (status, body) = search(&app, &user, &[("q", "?!")]).await;
    assert_eq!((status, body["hits"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{body}");
    Ok(())
}

/// Stands in for another model: vectors that must not be compared with the hashing ones.
struct OtherModel;

impl server::embed::Embedder for OtherModel {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<Vec<Vec<f32>>, server::embed::EmbedError>> {
        Box::pin(async move { Ok(texts.iter().map(|t| HashingEmbedder::embed_one(&format!("other {t}"))).collect()) })
    }

    fn name(&self) -> &'static str {
        "other"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_of_another_embedder_are_never_compared_and_get_re_embedded() -> TestResult {
    let world = World::new().await;
    let idle = world.spawn(&[("SERVER_EMBED_WORKERS", "0")]).await;
    let (owner, user) = (idle.signup("owner").await, idle.signup("user").await);
    let id =
        create(&idle, &owner, item("Camping tent", "Tent for two", "camping", 15000)).await["id"].as_u64().unwrap();
    assert_eq!(embed_waiting(&world.db, std::sync::Arc::new(OtherModel), 10).await?, 1);
    let (_, found) = search(&idle, &user, &[("q", "tent")]).await;
    assert_eq!((found["mode"].as_str(), found["hits"].as_array().map(Vec::len)), (Some("vector"), Some(0)), "{found}");

    // A worker of the hashing embedder starts: it requeues the item and embeds it again.
    let worker = world.spawn(&[("SERVER_JOB_EMBED_SCHEDULE", "every 100ms")]).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let embedder: String = sqlx::query_scalar("SELECT embedder FROM rental_embeddings WHERE item_id = ?")
            .bind(id)
            .fetch_one(&world.db)
            .await?;
        if embedder == "hashing" {
            break;
        }
        assert!(Instant::now() < deadline, "item {id} still embedded by {embedder}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until_embedded(&worker, &owner, id, 1).await;
    let (_, found) = search(&worker, &user, &[("q", "tent")]).await;
    assert_eq!((found["mode"].as_str(), ids(&found)), (Some("vector"), vec![id]), "{found}");
    Ok(())
}

/// The real model end to end: a seeded catalogue is embedded by the server's own claim workers
/// with all-MiniLM-L6-v2 and searched over HTTP. The model must be in models/ (scripts/setup.sh
/// fetches it); a missing model fails this test, it never skips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_real_model_outdoor_sleeping_gear_outranks_a_hair_dryer_and_korean_finds_korean() -> TestResult {
    let model_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/all-MiniLM-L6-v2");
    let world = World::new().await;
    let app = world
        .spawn(&[
            ("SERVER_EMBEDDER", "minilm"),
            ("SERVER_EMBED_MODEL_DIR", model_dir),
            ("SERVER_JOB_EMBED_SCHEDULE", "every 100ms"),
        ])
        .await;
    let (owner, user) = (app.signup("owner").await, app.signup("user").await);
    let catalogue = [
        ("Camping tent", "Waterproof tent for four people, easy to pitch", "camping"),
        ("Hair dryer", "1800 W hair dryer with a diffuser", "home"),
        ("Electric drill", "Cordless drill with a set of bits", "tools"),
        ("Projector", "Full HD projector with HDMI, for movie nights", "electronics"),
        ("캠핑 텐트", "4인용 방수 텐트를 빌려드려요", "camping"),
        ("전동 드릴", "충전식 전동 드릴 대여합니다", "tools"),
    ];
    let mut listed = Vec::new();
    for (title, description, category) in catalogue {
        listed.push(create(&app, &owner, item(title, description, category, 10000)).await["id"].as_u64().unwrap());
    }
    for &id in &listed {
        wait_until_embedded(&app, &owner, id, 1).await;
    }
    let rank = |found: &Value, id: u64| ids(found).iter().position(|&x| x == id);

    let (status, found) = search(&app, &user, &[("q", "gear for sleeping outdoors")]).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!((found["mode"].as_str(), found["embedder"].as_str()), (Some("vector"), Some("minilm")), "{found}");
    let (tent, dryer) = (rank(&found, listed[0]), rank(&found, listed[1]));
    assert!(tent.is_some() && (dryer.is_none() || tent < dryer), "tent {tent:?} vs hair dryer {dryer:?}: {found}");

    // all-MiniLM-L6-v2 is an English model: a Korean query finds the Korean listings before
    // every English one, but scores the Korean tent and drill alike (see embed::minilm's tests).
    let (_, found) = search(&app, &user, &[("q", "캠핑 텐트")]).await;
    assert_eq!(found["mode"].as_str(), Some("vector"), "{found}");
    let top_two: Vec<u64> = ids(&found).into_iter().take(2).collect();
    assert!(top_two.contains(&listed[4]) && top_two.contains(&listed[5]), "Korean listings first: {found}");
    Ok(())
}

/// A row locked by another transaction (a frozen instance's, in the claim-contention
/// scenario) is skipped, not waited for: an instance starting meanwhile is not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeueing_another_embedders_items_skips_rows_locked_by_a_frozen_peer() -> TestResult {
    use sqlx::{Connection, Executor};
    let world = World::new().await;
    let idle = world.spawn(&[("SERVER_EMBED_WORKERS", "0")]).await;
    let owner = idle.signup("owner").await;
    let mut listed = Vec::new();
    for title in ["Camping tent", "Electric drill", "Projector"] {
        listed.push(create(&idle, &owner, item(title, "to lend", "other", 1000)).await["id"].as_u64().unwrap());
    }
    assert_eq!(embed_waiting(&world.db, std::sync::Arc::new(OtherModel), 10).await?, 3);

    let mut peer = sqlx::MySqlConnection::connect(&world.database_url).await?;
    peer.execute("BEGIN").await?;
    sqlx::query("SELECT id FROM rental_items WHERE id = ? FOR UPDATE").bind(listed[0]).execute(&mut peer).await?;

    // The old single UPDATE waited for the lock (innodb_lock_wait_timeout, 50 s by default).
    let requeued = tokio::time::timeout(
        Duration::from_secs(10),
        server::rental::embedding::requeue_other_embedders(&world.db, "hashing"),
    )
    .await
    .expect("the requeue must not wait for the locked row")?;
    assert_eq!(requeued, 2, "the two unlocked items");

    peer.execute("COMMIT").await?;
    assert_eq!(server::rental::embedding::requeue_other_embedders(&world.db, "hashing").await?, 1);
    Ok(())
}
