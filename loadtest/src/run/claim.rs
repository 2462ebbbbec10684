//! The claim-contention scenario for one claim strategy: rental posts created through the
//! API while the `embed-posts` job is paused, then every instance's workers released at once
//! to race over them, with faults on the scenario's clock. The ledger is the server's own
//! side-effect log, read with read-only SQL after the run: every embed call, every claim and
//! every committed embedding, per post and content version.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::Connection;
use tokio::sync::Mutex;

use super::faults::{FaultTargets, run_faults};
use super::rig::{server_env, start_cluster};
use super::{RunContext, StrategyRun};
use crate::infra::unique_name;
use crate::probe::api::{ApiClient, User};
use crate::report::{ClaimCounts, Percentiles, StrategyResult};
use crate::scenario::{ClaimLoad, Strategy};

/// Requests in flight while creating posts.
const SETUP_CONCURRENCY: usize = 32;
/// The clustered job whose workers embed posts.
const EMBED_JOB: &str = "embed-posts";

/// The server's claim strategy and fencing for a scenario strategy.
fn server_claim(strategy: Strategy) -> anyhow::Result<(&'static str, bool)> {
    Ok(match strategy {
        Strategy::Naive => ("naive", true),
        Strategy::Version => ("version", true),
        Strategy::SkipLocked => ("skip-locked", true),
        Strategy::VersionUnfenced => ("version", false),
        Strategy::SkipLockedUnfenced => ("skip-locked", false),
        other => anyhow::bail!("`{other}` is not a claim strategy"),
    })
}

pub async fn run(ctx: &RunContext<'_>, strategy: Strategy) -> anyhow::Result<StrategyRun> {
    let scn = ctx.scenario;
    let claim = scn.claim.ok_or_else(|| anyhow::anyhow!("scenario {}: kind claim needs [claim]", scn.name))?;
    let (claim_strategy, fencing) = server_claim(strategy)?;
    let database_url = ctx.infra.fresh_database(&format!("{}_{}", scn.name, strategy.as_str())).await?;
    let tag = unique_name(strategy.as_str());
    let admin_email = format!("admin-{tag}@load.test");
    // The server refuses a lease that is not longer than a batch may take.
    let batch_timeout_ms = format!("{}", (claim.lease_s.ceil().max(1.0) * 500.0) as u64);
    let (workers, batch, lease, delay, fail) = (
        claim.workers_per_instance.to_string(),
        claim.batch_size.to_string(),
        format!("{}", claim.lease_s.ceil().max(1.0) as u64),
        claim.embed_delay_ms.to_string(),
        claim.embed_fail_rate.to_string(),
    );
    let env = server_env(
        ctx,
        &database_url,
        &[
            ("SERVER_AI_ENABLED", "false"),
            ("SERVER_EMBEDDER", "hashing"),
            ("SERVER_EMBED_CLAIM_STRATEGY", claim_strategy),
            ("SERVER_EMBED_FENCING", if fencing { "true" } else { "false" }),
            ("SERVER_EMBED_WORKERS", &workers),
            ("SERVER_EMBED_BATCH_SIZE", &batch),
            ("SERVER_EMBED_LEASE_S", &lease),
            ("SERVER_EMBED_BATCH_TIMEOUT_MS", &batch_timeout_ms),
            ("SERVER_EMBED_DELAY_MS", &delay),
            ("SERVER_EMBED_FAIL_RATE", &fail),
        ],
    );
    let cluster = start_cluster(ctx, strategy, env).await?;
    let bases = cluster.urls();
    let api = ApiClient::new(reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?);

    // An admin, the way an operator makes one: sign up, then `server grant-admin`; the
    // session opened after the grant carries the role.
    api.signup_and_login(&bases[0], &admin_email, "admin").await?;
    cluster.operator_command(&["grant-admin", &admin_email]).await?;
    let admin = api.login(&bases[0], &admin_email).await?;
    // Posts first, with the workers held back, so that they all start racing at one instant.
    api.job_command(&bases[0], &admin, EMBED_JOB, "pause").await?;
    eprintln!("[{}] creating {} posts", strategy.as_str(), claim.posts);
    create_posts(&api, &bases, &tag, &claim).await?;

    let t0 = Instant::now();
    let cluster = Arc::new(Mutex::new(cluster));
    let alive = Arc::new((0..bases.len()).map(|_| std::sync::atomic::AtomicBool::new(true)).collect::<Vec<_>>());
    let targets = FaultTargets { cluster: cluster.clone(), infra: ctx.infra.clone(), alive, churn: None };
    let faults = tokio::spawn(run_faults(scn.faults.clone(), strategy.as_str().to_string(), t0, targets));
    tokio::time::sleep(Duration::from_secs_f64(claim.warmup_s)).await;
    let released_at = db_now(&database_url).await?;
    api.job_command(&bases[0], &admin, EMBED_JOB, "resume").await?;
    let released = Instant::now();

    // Until every post is DONE (and every fault step happened), or the duration is up.
    let deadline = t0 + Duration::from_secs_f64(claim.warmup_s + claim.duration_s);
    let mut last_report = Instant::now();
    loop {
        let done = count_done(&database_url).await.unwrap_or(0);
        if last_report.elapsed() >= Duration::from_secs(2) {
            eprintln!("[{}] {:>5.1}s  done {done} of {}", strategy.as_str(), t0.elapsed().as_secs_f64(), claim.posts);
            last_report = Instant::now();
        }
        if (done >= u64::from(claim.posts) && faults.is_finished()) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let fault_records = faults.await.unwrap_or_default();
    tokio::time::sleep(Duration::from_secs_f64(claim.drain_s)).await;
    let elapsed = released.elapsed().as_secs_f64();

    let ledger = read_ledger(&database_url, &released_at, u64::from(claim.posts)).await?;
    let cluster =
        Arc::try_unwrap(cluster).map_err(|_| anyhow::anyhow!("the fault task still holds the cluster"))?.into_inner();
    cluster.stop(Duration::from_secs(10)).await;

    let throughput = if ledger.busy_s > 0.0 { ledger.counts.done as f64 / ledger.busy_s } else { 0.0 };
    let mut result = StrategyResult::without_notifications(strategy.as_str(), throughput, Percentiles::default());
    result.notes.push(format!(
        "server claim strategy `{claim_strategy}`, fencing {}; {} instances x {} workers, batches of {}, lease {} s",
        if fencing { "on" } else { "off" },
        bases.len(),
        claim.workers_per_instance,
        claim.batch_size,
        lease
    ));
    result.notes.push(format!(
        "{} of {} posts DONE; {:.1} s from release to the last commit ({:.1} s waited)",
        ledger.counts.done, claim.posts, ledger.busy_s, elapsed
    ));
    if !ledger.double_examples.is_empty() {
        result.notes.push(format!(
            "double-processed, first ones (post@version x commits): {}",
            ledger.double_examples.join(", ")
        ));
    }
    result.claim = Some(ledger.counts);
    let c = &ledger.counts;
    eprintln!(
        "[{}] posts {} done {} double processed {} stuck {} embed calls {} wasted claims {} fenced {} ({:.0} posts/s)",
        strategy.as_str(),
        c.items,
        c.done,
        c.double_processed,
        c.stuck,
        c.embed_calls,
        c.wasted_claims,
        c.fenced,
        throughput
    );
    Ok(StrategyRun { result, faults: fault_records })
}

async fn create_posts(api: &ApiClient, bases: &[String], tag: &str, claim: &ClaimLoad) -> anyhow::Result<()> {
    let owners: Vec<User> = futures::stream::iter(0..claim.owners)
        .map(|i| {
            let base = bases[i as usize % bases.len()].clone();
            async move { api.signup_and_login(&base, &format!("owner{i}-{tag}@load.test"), &format!("owner {i}")).await }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let created = futures::stream::iter(0..claim.posts)
        .map(|i| {
            let base = bases[i as usize % bases.len()].clone();
            let owner = &owners[i as usize % owners.len()];
            async move {
                let title = format!("Item {i}: {}", ITEMS[i as usize % ITEMS.len()]);
                api.create_rental(&base, owner, &title, "Well kept, lent for short trips; pick-up near the station.")
                    .await
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let failed = created.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = created.into_iter().find(|r| r.is_err()) {
        anyhow::bail!("{failed} of {} posts could not be created, e.g.: {e}", claim.posts);
    }
    Ok(())
}

const ITEMS: &[&str] = &["camping tent", "sleeping bag", "electric drill", "projector", "bicycle", "kayak", "camera"];

/// The database's clock, as text MariaDB compares with its DATETIME(6) columns.
async fn db_now(database_url: &str) -> anyhow::Result<String> {
    let mut conn = sqlx::MySqlConnection::connect(database_url).await?;
    let now: String = sqlx::query_scalar("SELECT CAST(NOW(6) AS CHAR)").fetch_one(&mut conn).await?;
    let _ = conn.close().await;
    Ok(now)
}

async fn count_done(database_url: &str) -> anyhow::Result<u64> {
    let mut conn = sqlx::MySqlConnection::connect(database_url).await?;
    let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rental_items WHERE embed_status = 'DONE'")
        .fetch_one(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(done as u64)
}

struct ClaimLedger {
    counts: ClaimCounts,
    /// Seconds from the release of the workers to the last committed embedding.
    busy_s: f64,
    double_examples: Vec<String>,
}

/// Read-only SQL over the server's side-effect log: `embed_audit` (one row per committed
/// embedding), `embed_attempts` (one row per embed call, with its outcome), `embed_claims`
/// (one row per claim, with how many posts it got).
async fn read_ledger(database_url: &str, released_at: &str, items: u64) -> anyhow::Result<ClaimLedger> {
    let mut conn = sqlx::MySqlConnection::connect(database_url).await?;
    let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rental_items WHERE embed_status = 'DONE'")
        .fetch_one(&mut conn)
        .await?;
    let doubles: Vec<(u64, u64, i64)> = sqlx::query_as(
        "SELECT item_id, content_version, COUNT(*) FROM embed_audit GROUP BY item_id, content_version \
         HAVING COUNT(*) > 1 ORDER BY item_id",
    )
    .fetch_all(&mut conn)
    .await?;
    let outcomes: Vec<(String, i64)> =
        sqlx::query_as("SELECT outcome, COUNT(*) FROM embed_attempts GROUP BY outcome").fetch_all(&mut conn).await?;
    let (claims, wasted): (i64, i64) =
        // Polls that saw no candidate are idleness, not contention: a wasted claim is one
        // that saw candidates and lost every one of them to another worker.
        sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(claimed = 0), 0) AS SIGNED) FROM embed_claims WHERE candidates > 0",
        )
            .fetch_one(&mut conn)
            .await?;
    let busy_s: Option<f64> = sqlx::query_scalar(
        "SELECT TIMESTAMPDIFF(MICROSECOND, CAST(? AS DATETIME(6)), MAX(committed_at)) / 1e6 FROM embed_audit",
    )
    .bind(released_at)
    .fetch_one(&mut conn)
    .await?;
    let _ = conn.close().await;
    let count = |name: &str| outcomes.iter().filter(|(o, _)| o == name).map(|(_, n)| *n as u64).sum::<u64>();
    Ok(ClaimLedger {
        counts: ClaimCounts {
            items,
            done: done as u64,
            double_processed: doubles.len() as u64,
            stuck: items.saturating_sub(done as u64),
            wasted_claims: wasted as u64,
            claims: claims as u64,
            embed_calls: outcomes.iter().map(|(_, n)| *n as u64).sum(),
            failed_calls: count("failed"),
            fenced: count("fenced"),
        },
        busy_s: busy_s.unwrap_or(0.0).max(0.0),
        double_examples: doubles.iter().take(10).map(|(item, v, n)| format!("{item}@{v} x{n}")).collect(),
    })
}
