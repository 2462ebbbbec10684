//! The embed scenario for one embed path: rental posts written through the API on an open-loop
//! schedule while the embedder takes `embed_delay_ms` per call, with the post embedded inside
//! `POST /rentals` (`inline`) or by the claim workers after it (`batch`).
//!
//! Each post is sent at its time whatever the earlier ones are doing, and its latency counts
//! from that time (a post sent late because the harness fell behind is counted as a late
//! start, never hidden). Once answered, the post is searched for by its own words through
//! `GET /rentals/search` on another instance, every `search_every_ms`, until it comes back as
//! a hit by meaning (`matched_by` vector, not the text fallback): the time a user waits until
//! the post can be found, to within one search period. Read-only SQL afterwards gives the
//! exact time from the post's row to its embedding's row and what was embedded twice or never.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::stage::Stage;
use super::{RunContext, StrategyRun};
use crate::infra::unique_name;
use crate::ledger::{latency_histogram, percentiles};
use crate::probe::api::{ApiClient, User};
use crate::report::{EmbedCounts, StrategyResult};
use crate::scenario::{EmbedLoad, EmbedPath, Strategy};

/// A post sent later than this after its time is a late start.
const LATE: Duration = Duration::from_millis(100);
/// Hits asked of each search: the post's own three made-up words put it first by far.
const SEARCH_LIMIT: u32 = 10;
const DESCRIPTION: &str = "Well kept, lent for short trips; pick-up near the station.";
const ITEMS: &[&str] = &["tent", "sleeping bag", "drill", "projector", "bicycle", "kayak", "camera"];

/// The server's `SERVER_EMBED_MODE` for a path.
fn server_mode(path: EmbedPath) -> &'static str {
    match path {
        EmbedPath::Inline => "inline",
        EmbedPath::Batch => "batch",
    }
}

/// What the schedule and the probes share.
struct Probe {
    api: ApiClient,
    bases: Vec<String>,
    owners: Vec<User>,
    titles: Vec<String>,
    search_every: Duration,
    /// No search starts after this: a post not found by then is unsearchable.
    search_until: Instant,
}

/// One post's fate.
#[derive(Debug)]
struct PostOutcome {
    /// The id and whether it was answered DONE, or the failure's kind.
    posted: Result<(u64, bool), String>,
    latency: Duration,
    late: bool,
    /// From the post's time to the first search that found it by meaning.
    searchable: Option<Duration>,
    searches: u64,
    search_failures: u64,
}

pub async fn run(ctx: &RunContext<'_>, load: &EmbedLoad, path: EmbedPath) -> anyhow::Result<StrategyRun> {
    let strategy = Strategy::from(path);
    let mode = server_mode(path);
    // The server refuses a lease that is not longer than an embed call may take.
    let batch_timeout_ms = (2 * load.embed_delay_ms + 1_000).max(10_000);
    let (workers, batch, delay, timeout, lease, period) = (
        load.workers_per_instance.to_string(),
        load.batch_size.to_string(),
        load.embed_delay_ms.to_string(),
        batch_timeout_ms.to_string(),
        (batch_timeout_ms / 1_000 + 10).to_string(),
        format!("every {}ms", load.batch_period_ms),
    );
    let stage = Stage::start(
        ctx,
        strategy,
        &[
            ("SERVER_AI_ENABLED", "false"),
            ("SERVER_EMBEDDER", "hashing"),
            ("SERVER_EMBED_MODE", mode),
            ("SERVER_EMBED_CLAIM_STRATEGY", "skip-locked"),
            ("SERVER_EMBED_WORKERS", &workers),
            ("SERVER_EMBED_BATCH_SIZE", &batch),
            ("SERVER_EMBED_DELAY_MS", &delay),
            ("SERVER_EMBED_BATCH_TIMEOUT_MS", &timeout),
            ("SERVER_EMBED_LEASE_S", &lease),
            ("SERVER_JOB_EMBED_SCHEDULE", &period),
        ],
    )
    .await?;
    let bases = stage.bases.clone();
    let api = ApiClient::new(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(u64::from(load.request_timeout_s)))
            .pool_max_idle_per_host(64)
            .build()?,
    );
    let tag = unique_name(strategy.as_str());
    let owners = super::world::sign_up(&api, &bases, &format!("owner-{tag}"), load.owners as usize).await?;
    let posts = load.posts();
    let mut rng = StdRng::seed_from_u64(ctx.scenario.seed);
    let titles: Vec<String> = (0..posts).map(|n| title(&mut rng, n)).collect();
    eprintln!(
        "[{}] {posts} posts at {}/s, embedder delay {} ms, {} instances x {} workers every {} ms",
        strategy.as_str(),
        load.posts_per_s,
        load.embed_delay_ms,
        bases.len(),
        load.workers_per_instance,
        load.batch_period_ms
    );

    let t0 = Instant::now();
    let faults = stage.start_faults(ctx, t0, None);
    let start = t0 + Duration::from_secs_f64(load.warmup_s);
    let probe = Arc::new(Probe {
        api,
        bases: bases.clone(),
        owners,
        titles,
        search_every: Duration::from_millis(load.search_every_ms),
        search_until: start + Duration::from_secs_f64(load.duration_s + load.drain_s),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..posts {
        let due = start + Duration::from_secs_f64(n as f64 / load.posts_per_s);
        tasks.spawn(one_post(probe.clone(), n as usize, due));
    }
    let mut outcomes = Vec::with_capacity(posts as usize);
    let mut progress = tokio::time::interval(Duration::from_secs(5));
    progress.tick().await;
    while !tasks.is_empty() {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(outcome)) => outcomes.push(outcome),
                Some(Err(e)) => anyhow::bail!("a post's task ended abnormally: {e}"),
                None => break,
            },
            _ = progress.tick() => eprintln!(
                "[{}] {:>5.1}s  {} of {posts} posts settled",
                strategy.as_str(),
                t0.elapsed().as_secs_f64(),
                outcomes.len()
            ),
        }
    }
    let fault_records = faults.await.unwrap_or_default();
    let ids: Vec<u64> = outcomes.iter().filter_map(|o| o.posted.as_ref().ok().map(|(id, _)| *id)).collect();
    let ledger = stage.truth.embed_ledger(&ids).await?;
    let timeline = stage.stop().await?;

    let (mut latency, mut searchable, mut after) = (latency_histogram(), latency_histogram(), latency_histogram());
    let mut counts = EmbedCounts { posts, ..Default::default() };
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    for o in &outcomes {
        latency.saturating_record(o.latency.as_micros() as u64);
        counts.late_starts += u64::from(o.late);
        counts.searches += o.searches;
        counts.search_failures += o.search_failures;
        match &o.posted {
            Ok((_, done)) => {
                counts.created += 1;
                counts.embedded_in_request += u64::from(*done);
                match o.searchable {
                    Some(t) => {
                        counts.searchable += 1;
                        searchable.saturating_record(t.as_micros() as u64);
                    }
                    None => counts.unsearchable += 1,
                }
            }
            Err(kind) => {
                counts.failed += 1;
                *failures.entry(kind.clone()).or_default() += 1;
            }
        }
    }
    for us in &ledger.embedded_after_us {
        after.saturating_record(*us);
    }
    counts.searchable_us = percentiles(&searchable);
    counts.embedded_after_us = percentiles(&after);
    counts.not_embedded = ledger.not_embedded;
    counts.embedded_twice = ledger.embedded_twice;

    let mut result = StrategyResult::without_notifications(
        strategy.as_str(),
        counts.created as f64 / load.duration_s.max(1e-9),
        percentiles(&latency),
    );
    result.notes.push(format!(
        "SERVER_EMBED_MODE={mode}; the embedder takes {} ms more per call; {} instances x {} workers, batches of up \
         to {}, woken every {} ms",
        load.embed_delay_ms,
        bases.len(),
        load.workers_per_instance,
        load.batch_size,
        load.batch_period_ms
    ));
    result.notes.push(format!(
        "POST latency from each post's intended start (open loop, {}/s); searchable: from that start to the first \
         search (every {} ms, from another instance) that found the post by meaning",
        load.posts_per_s, load.search_every_ms
    ));
    if !failures.is_empty() {
        let kinds: Vec<String> = failures.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        result.notes.push(format!("posts not created: {}", kinds.join(", ")));
    }
    if counts.search_failures > 0 {
        result.notes.push(format!("{} of {} searches failed", counts.search_failures, counts.searches));
    }
    let e = &counts;
    eprintln!(
        "[{}] created {} failed {} in-request {} POST p99 {} ms; searchable {} (p99 {:.2} s) unsearchable {} \
         not embedded {} embedded twice {}",
        strategy.as_str(),
        e.created,
        e.failed,
        e.embedded_in_request,
        crate::report::text::ms(result.latency_us.p99),
        e.searchable,
        e.searchable_us.p99 as f64 / 1e6,
        e.unsearchable,
        e.not_embedded,
        e.embedded_twice
    );
    result.embed = Some(counts);
    result.timeline = Some(timeline);
    Ok(StrategyRun { result, faults: fault_records })
}

/// Sends post `n` at `due`, then searches for it until it is found by meaning.
async fn one_post(p: Arc<Probe>, n: usize, due: Instant) -> PostOutcome {
    tokio::time::sleep_until(due.into()).await;
    let late = due.elapsed() > LATE;
    let owner = &p.owners[n % p.owners.len()];
    let answer = p.api.post_rental(&p.bases[n % p.bases.len()], owner, &p.titles[n], DESCRIPTION).await;
    let latency = due.elapsed();
    let mut outcome =
        PostOutcome { posted: Err(String::new()), latency, late, searchable: None, searches: 0, search_failures: 0 };
    let id = match answer {
        Ok((id, status)) => {
            outcome.posted = Ok((id, status == "DONE"));
            id
        }
        Err(e) => {
            outcome.posted = Err(e.kind());
            return outcome;
        }
    };
    // Searched from the other instances in turn: a reader is rarely on the writer's instance.
    for k in 1.. {
        outcome.searches += 1;
        let base = &p.bases[(n + k) % p.bases.len()];
        match p.api.search_by_meaning(base, owner, &p.titles[n], SEARCH_LIMIT).await {
            Ok(hits) if hits.contains(&id) => {
                outcome.searchable = Some(due.elapsed());
                break;
            }
            Ok(_) => {}
            Err(_) => outcome.search_failures += 1,
        }
        let next = Instant::now() + p.search_every;
        if next > p.search_until {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
    }
    outcome
}

/// A title no other post shares: an item and three made-up words, which the hashing embedder
/// puts far from every other post's.
fn title(rng: &mut StdRng, n: u64) -> String {
    let word = |rng: &mut StdRng| -> String {
        const CONSONANTS: &[u8] = b"bcdfghjklmnpqrstvwxz";
        const VOWELS: &[u8] = b"aeiou";
        (0..6)
            .map(|i| {
                let set = if i % 2 == 0 { CONSONANTS } else { VOWELS };
                set[rng.random_range(0..set.len())] as char
            })
            .collect()
    };
    let item = ITEMS[n as usize % ITEMS.len()];
    format!("{item} {} {} {}", word(rng), word(rng), word(rng))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_reproducible_and_distinct() {
        let make = || {
            let mut rng = StdRng::seed_from_u64(7);
            (0..500).map(|n| title(&mut rng, n)).collect::<Vec<_>>()
        };
        let titles = make();
        assert_eq!(titles, make());
        let distinct: std::collections::HashSet<&String> = titles.iter().collect();
        assert_eq!(distinct.len(), titles.len());
        assert!(titles[1].starts_with("sleeping bag "), "{}", titles[1]);
    }
}
