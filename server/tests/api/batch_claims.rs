//! Embedding claims: 3 instances x 4 workers race over one backlog. `version` and
//! `skip-locked` commit every item once; `naive` commits some twice (that is its point). A
//! claim whose lease ran out is taken over, and the late write of the old claim is fenced.

use std::time::{Duration, Instant};

use server::batch::claim::{ClaimStrategy, Claimer, Outcome};
use server::embed::hashing::HashingEmbedder;
use sqlx::MySqlPool;

use crate::batch::admin_session;
use crate::helpers::{TestResult, World};

/// An owner and `n` items waiting for an embedding; returns the owner's id.
async fn seed_items(db: &MySqlPool, n: usize) -> u64 {
    let owner =
        sqlx::query("INSERT INTO users (email, display_name, password_hash) VALUES ('owner@example.test', 'o', 'x')")
            .execute(db)
            .await
            .unwrap()
            .last_insert_id();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let values = vec!["(?, ?, ?, 'camping', 1000, 0, '[]')"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO rental_items (owner_id, title, description, category, price_per_day, deposit, photo_urls) \
             VALUES {values}"
        );
        let mut q = sqlx::query(&sql);
        for i in chunk {
            q = q.bind(owner).bind(format!("Tent number {i}")).bind(format!("A tent for {i} people, barely used"));
        }
        q.execute(db).await.unwrap();
    }
    owner
}

/// A database migrated by the server's own migrations, without a running instance.
async fn migrated(world: &World) -> MySqlPool {
    server::db::connect_and_migrate(&world.database_url, 4).await.expect("migrations apply")
}

async fn unfinished(db: &MySqlPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM rental_items WHERE embed_status <> 'DONE'").fetch_one(db).await.unwrap()
}

async fn double_commits(db: &MySqlPool) -> usize {
    let rows: Vec<(u64, u64)> = sqlx::query_as(
        "SELECT item_id, content_version FROM embed_audit GROUP BY item_id, content_version HAVING COUNT(*) > 1",
    )
    .fetch_all(db)
    .await
    .unwrap();
    rows.len()
}

/// Runs 3 instances x 4 workers over 500 items until none is left; returns double commits.
async fn race(strategy: &str, delay_ms: &str) -> usize {
    let world = World::new().await;
    let db = migrated(&world).await;
    seed_items(&db, 500).await;
    let settings = [
        ("SERVER_EMBED_CLAIM_STRATEGY", strategy),
        ("SERVER_EMBED_WORKERS", "4"),
        ("SERVER_EMBED_DELAY_MS", delay_ms),
        ("SERVER_JOB_EMBED_SCHEDULE", "every 1s"),
        ("SERVER_JOB_POLL_MS", "100"),
        ("SERVER_AI_ENABLED", "false"),
    ];
    let _apps = [world.spawn(&settings).await, world.spawn(&settings).await, world.spawn(&settings).await];

    let started = Instant::now();
    while unfinished(&db).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(90), "{strategy}: {} items left", unfinished(&db).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let embedded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rental_embeddings").fetch_one(&db).await.unwrap();
    assert_eq!(embedded, 500, "{strategy}: every item has its vector");
    let committed: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT item_id) FROM embed_audit").fetch_one(&db).await.unwrap();
    assert_eq!(committed, 500, "{strategy}: every item committed");
    let claims: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM embed_claims").fetch_one(&db).await.unwrap();
    assert!(claims > 0, "claims are recorded");
    double_commits(&db).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_claim_commits_every_item_exactly_once() {
    assert_eq!(race("version", "0").await, 0, "double commits under the version claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_skip_locked_claim_commits_every_item_exactly_once() {
    assert_eq!(race("skip-locked", "0").await, 0, "double commits under the skip-locked claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_naive_claim_double_commits_under_contention() {
    assert!(race("naive", "20").await > 0, "naive workers that read the same rows should both commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_row_whose_lease_expired_is_reclaimed_and_finished() -> TestResult {
    let world = World::new().await;
    let db = migrated(&world).await;
    seed_items(&db, 1).await;
    // A worker of a dead instance claimed it a minute ago.
    sqlx::query(
        "UPDATE rental_items SET embed_status = 'PENDING', claim_token = 'foreign', claimed_by = 'dead', \
         claimed_until = NOW(6) - INTERVAL 1 MINUTE",
    )
    .execute(&db)
    .await?;

    let _app = world.spawn(&[("SERVER_EMBED_CLAIM_STRATEGY", "version"), ("SERVER_AI_ENABLED", "false")]).await;
    let started = Instant::now();
    while unfinished(&db).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(15), "the expired claim was not taken over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let tokens: Vec<String> = sqlx::query_scalar("SELECT claim_token FROM embed_audit").fetch_all(&db).await?;
    assert_eq!(tokens.len(), 1);
    assert_ne!(tokens[0], "foreign");
    Ok(())
}

fn claimer(db: &MySqlPool, instance: &str, fencing: bool) -> Claimer {
    Claimer {
        db: db.clone(),
        strategy: ClaimStrategy::SkipLocked,
        lease: Duration::from_secs(30),
        fencing,
        instance_id: instance.into(),
    }
}

/// The old claim's worker stalls past its lease, a second claim takes the item over and
/// commits, then the stalled worker wakes up and writes. Returns the late write's outcome.
async fn late_write_after_take_over(db: &MySqlPool, fencing: bool) -> Outcome {
    let (stalled, live) = (claimer(db, "stalled", fencing), claimer(db, "live", fencing));
    let old = stalled.claim(0, 1).await.unwrap();
    assert_eq!(old.items.len(), 1);
    let item = old.items[0].clone();
    sqlx::query("UPDATE rental_items SET claimed_until = NOW(6) - INTERVAL 1 SECOND WHERE id = ?")
        .bind(item.id)
        .execute(db)
        .await
        .unwrap();
    let new = live.claim(0, 1).await.unwrap();
    assert_eq!(new.items, vec![item.clone()], "the expired claim is claimable again");
    let vector = HashingEmbedder::embed_one(&item.text);
    assert_eq!(live.commit(0, &new.token, &item, "hashing", &vector).await.unwrap(), Outcome::Committed);
    stalled.commit(0, &old.token, &item, "hashing", &vector).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_write_with_an_old_token_is_fenced_and_commits_twice_without_fencing() -> TestResult {
    let world = World::new().await;
    let db = migrated(&world).await;
    seed_items(&db, 1).await;

    assert_eq!(late_write_after_take_over(&db, true).await, Outcome::Fenced);
    assert_eq!(double_commits(&db).await, 0);
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM embed_attempts ORDER BY id").fetch_all(&db).await?;
    assert_eq!(outcomes, ["committed", "fenced"]);

    // The same story with fencing off: the stalled worker's write lands too.
    sqlx::query("UPDATE rental_items SET embed_status = 'WAIT', content_version = content_version + 1")
        .execute(&db)
        .await?;
    assert_eq!(late_write_after_take_over(&db, false).await, Outcome::Committed);
    assert_eq!(double_commits(&db).await, 1, "without fencing the take-over commits twice");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_item_is_stale_and_a_failed_claim_goes_back_to_wait() -> TestResult {
    let world = World::new().await;
    let db = migrated(&world).await;
    seed_items(&db, 2).await;
    let worker = claimer(&db, "w", true);

    let claim = worker.claim(0, 1).await?;
    let item = claim.items[0].clone();
    sqlx::query("UPDATE rental_items SET content_version = content_version + 1, embed_status = 'WAIT' WHERE id = ?")
        .bind(item.id)
        .execute(&db)
        .await?;
    let vector = HashingEmbedder::embed_one(&item.text);
    assert_eq!(worker.commit(0, &claim.token, &item, "hashing", &vector).await?, Outcome::Stale);

    let claim = worker.claim(0, 2).await?;
    assert_eq!(claim.items.len(), 2);
    worker.release(0, &claim, "transient: injected").await?;
    let waiting: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM rental_items WHERE embed_status = 'WAIT' AND claim_token IS NULL")
            .fetch_one(&db)
            .await?;
    assert_eq!(waiting, 2);
    let failed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM embed_attempts WHERE outcome = 'failed'").fetch_one(&db).await?;
    assert_eq!(failed, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_embed_posts_stops_the_workers_and_resuming_restarts_them() -> TestResult {
    let world = World::new().await;
    let settings = [("SERVER_JOB_POLL_MS", "50"), ("SERVER_AI_ENABLED", "false")];
    let app = world.spawn(&settings).await;
    let admin = admin_session(&world, &app).await;
    let (status, body) = app.call("POST", "/admin/jobs/embed-posts/pause", Some(&admin), None).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    seed_items(&world.db, 20).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(unfinished(&world.db).await, 20, "a paused pool claimed");

    let (status, body) = app.call("POST", "/admin/jobs/embed-posts/resume", Some(&admin), None).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let started = Instant::now();
    while unfinished(&world.db).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the resumed pool did not finish the backlog");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// One claim's items are written in one transaction, and each gets its own outcome: the one
/// still held commits, the one whose content changed is stale, the one taken over is fenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_commit_judges_each_item_on_its_own() -> TestResult {
    let world = World::new().await;
    let db = migrated(&world).await;
    seed_items(&db, 3).await;
    let worker = claimer(&db, "w", true);
    let claim = worker.claim(0, 3).await?;
    let [held, changed, taken] = [&claim.items[0], &claim.items[1], &claim.items[2]];
    sqlx::query("UPDATE rental_items SET content_version = content_version + 1, embed_status = 'WAIT' WHERE id = ?")
        .bind(changed.id)
        .execute(&db)
        .await?;
    sqlx::query("UPDATE rental_items SET claim_token = 'another claim' WHERE id = ?")
        .bind(taken.id)
        .execute(&db)
        .await?;

    let vectors: Vec<Vec<f32>> = claim.items.iter().map(|i| HashingEmbedder::embed_one(&i.text)).collect();
    let items: Vec<_> = claim.items.iter().zip(&vectors).map(|(i, v)| (i, v.as_slice())).collect();
    let outcomes = worker.commit_batch(0, &claim.token, &items, "hashing").await?;

    assert_eq!(outcomes, [Outcome::Committed, Outcome::Stale, Outcome::Fenced]);
    let audited: Vec<u64> = sqlx::query_scalar("SELECT item_id FROM embed_audit").fetch_all(&db).await?;
    assert_eq!(audited, [held.id]);
    let done: Vec<u64> =
        sqlx::query_scalar("SELECT id FROM rental_items WHERE embed_status = 'DONE'").fetch_all(&db).await?;
    assert_eq!(done, [held.id]);
    let recorded: Vec<(u64, String)> =
        sqlx::query_as("SELECT item_id, outcome FROM embed_attempts ORDER BY item_id").fetch_all(&db).await?;
    assert_eq!(recorded, [(held.id, "committed".into()), (changed.id, "stale".into()), (taken.id, "fenced".into())]);
    Ok(())
}
