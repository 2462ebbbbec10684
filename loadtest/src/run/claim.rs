//! The claim-contention scenario for one claim strategy: rental posts created through the
//! API while the `embed-posts` job is paused, then every instance's workers released at once
//! to race over them, with faults on the scenario's clock. The ledger is the server's own
//! side-effect log, read with read-only SQL after the run: every embed call, every claim and
//! every committed embedding, per post and content version.

use std::time::{Duration, Instant};

use futures::StreamExt;

use super::stage::Stage;
use super::{RunContext, StrategyRun};
use crate::infra::unique_name;
use crate::probe::api::ApiClient;
use crate::report::{Percentiles, StrategyResult};
use crate::scenario::{ClaimLoad, ClaimMode, Strategy};

/// Requests in flight while creating posts.
const SETUP_CONCURRENCY: usize = 32;
/// The clustered job whose workers embed posts.
const EMBED_JOB: &str = "embed-posts";

/// The server's claim strategy (`SERVER_EMBED_CLAIM_STRATEGY`) and fencing for a mode.
fn server_claim(mode: ClaimMode) -> (&'static str, bool) {
    match mode {
        ClaimMode::Naive => ("naive", true),
        ClaimMode::Version => ("version", true),
        ClaimMode::SkipLocked => ("skip-locked", true),
        ClaimMode::VersionUnfenced => ("version", false),
        ClaimMode::SkipLockedUnfenced => ("skip-locked", false),
    }
}

pub async fn run(ctx: &RunContext<'_>, claim: &ClaimLoad, mode: ClaimMode) -> anyhow::Result<StrategyRun> {
    let strategy = Strategy::from(mode);
    let (claim_strategy, fencing) = server_claim(mode);
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
    let mut settings = vec![
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
    ];
    // A pause that must land at a point: the instances listen for the signal that arms it.
    if let Some(point) = ctx.scenario.faults.iter().find_map(|f| f.point) {
        settings.push(("SERVER_PAUSE_POINT", point.as_str()));
    }
    let stage = Stage::start(ctx, strategy, &settings).await?;
    let bases = stage.bases.clone();
    let api = ApiClient::new(reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?);

    // An admin, the way an operator makes one: sign up, then `server grant-admin`; the
    // session opened after the grant carries the role.
    api.signup_and_login(&bases[0], &admin_email, "admin").await?;
    stage.operator_command(&["grant-admin", &admin_email]).await?;
    let admin = api.login(&bases[0], &admin_email).await?;
    // Posts first, with the workers held back, so that they all start racing at one instant.
    api.job_command(&bases[0], &admin, EMBED_JOB, "pause").await?;
    eprintln!("[{}] creating {} posts", strategy.as_str(), claim.posts);
    create_posts(&api, &bases, &tag, claim).await?;

    let t0 = Instant::now();
    let faults = stage.start_faults(ctx, t0, None);
    tokio::time::sleep(Duration::from_secs_f64(claim.warmup_s)).await;
    let truth = stage.truth.clone();
    let released_at = truth.now().await?;
    api.job_command(&bases[0], &admin, EMBED_JOB, "resume").await?;
    let released = Instant::now();

    // Until every post is DONE (and every fault step happened), or the duration is up.
    let deadline = t0 + Duration::from_secs_f64(claim.warmup_s + claim.duration_s);
    let mut last_report = Instant::now();
    loop {
        let done = truth.posts_done().await.unwrap_or(0);
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

    let ledger = truth.claim_ledger(released_at, u64::from(claim.posts)).await?;
    let timeline = stage.stop().await?;

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
    result.timeline = Some(timeline);
    Ok(StrategyRun { result, faults: fault_records })
}

async fn create_posts(api: &ApiClient, bases: &[String], tag: &str, claim: &ClaimLoad) -> anyhow::Result<()> {
    let owners = super::world::sign_up(api, bases, &format!("owner-{tag}"), claim.owners as usize).await?;
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
