//! The API capacity run for one delivery strategy, driven by goose: accounts and a friend
//! graph are built through the API, rental items are listed, then goose users (each logged
//! in as one account, on one instance) run the scenario's weighted transactions for
//! `duration_s`. Goose's metrics, reset once every user runs, give requests, failures and
//! latency per endpoint; goose also writes its own HTML report beside ours.
//!
//! The strategy matters to the write path: `POST /diaries` stores the friends' notifications
//! and hands them to the delivery strategy (in the transaction for `outbox`, after the commit
//! for the others), so the same load shows what each costs the API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use goose::GooseAttack;
use goose::config::GooseConfiguration;
use goose::goose::TransactionResult;
use goose::goose::{
    GooseMethod, GooseRequest, GooseUser, Scenario, Transaction, TransactionError, TransactionFunction,
};
use goose::metrics::{GooseMetrics, GooseRequestMetricAggregate};
use serde_json::json;

use super::stage::Stage;
use super::world::World;
use super::{RunContext, StrategyRun};
use crate::infra::unique_name;
use crate::ledger::{latency_histogram, percentiles};
use crate::probe::api::ApiClient;
use crate::report::{ApiCounts, EndpointStats, Percentiles, StrategyResult};
use crate::scenario::{ApiLoad, Delivery, Strategy};

const SETUP_CONCURRENCY: usize = 16;

/// Words of the items listed and of the search queries, so searches find something.
const WORDS: [&str; 12] = [
    "tent",
    "drill",
    "camera",
    "bicycle",
    "projector",
    "ladder",
    "stroller",
    "kayak",
    "guitar",
    "speaker",
    "캠핑",
    "드릴",
];

/// What one goose user knows: its account's token, on its instance.
#[derive(Debug, Clone)]
struct Session {
    token: String,
}

/// An account and the instance its goose user talks to.
#[derive(Debug, Clone)]
struct Login {
    token: String,
    base: String,
}

pub async fn run(ctx: &RunContext<'_>, load: &ApiLoad, delivery: Delivery) -> anyhow::Result<StrategyRun> {
    let scn = ctx.scenario;
    let strategy = Strategy::from(delivery);
    let settings =
        [("SERVER_NOTIFY_DELIVERY", strategy.as_str()), ("SERVER_AI_ENABLED", "false"), ("SERVER_EMBEDDER", "hashing")];
    let stage = Stage::start(ctx, strategy, &settings).await?;
    let bases = stage.bases.clone();
    let api = ApiClient::new(reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?);
    eprintln!(
        "[{}] {} accounts, {} friends each, {} items; then {} goose users for {} s",
        strategy.as_str(),
        load.accounts,
        load.friends_per_user,
        load.items,
        load.users,
        load.duration_s
    );
    let tag = unique_name(strategy.as_str());
    let world =
        World::build(&api, &bases, &tag, load.accounts as usize, load.friends_per_user as usize, 0, scn.seed).await?;
    list_items(&api, &bases, &world, load.items).await?;
    let logins: Arc<Vec<Login>> = Arc::new(
        world
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| Login { token: u.token.clone(), base: bases[i % bases.len()].clone() })
            .collect(),
    );

    let goose_report = format!("goose-{}.html", strategy.as_str());
    let metrics = attack(load, &bases[0], logins, &ctx.report_dir.join(&goose_report)).await;
    let timeline = stage.stop().await?;
    let metrics = metrics?;
    let mut result = summarize(strategy, load, &metrics, goose_report);
    let counts = result.api.as_ref().expect("summarize sets the api counts");
    eprintln!(
        "[{}] {} requests, {} failed, {:.1}/s, p99 {:.1} ms",
        strategy.as_str(),
        counts.requests,
        counts.failures,
        result.throughput_per_s,
        result.latency_us.p99 as f64 / 1000.0
    );
    result.timeline = Some(timeline);
    Ok(StrategyRun { result, faults: Vec::new() })
}

/// Items owned by the first accounts, titled with [`WORDS`] so that searches find them.
async fn list_items(api: &ApiClient, bases: &[String], world: &World, items: u32) -> anyhow::Result<()> {
    let made = futures::stream::iter(0..items as usize)
        .map(|i| {
            let owner = &world.users[i % world.users.len()];
            let base = &bases[i % bases.len()];
            let word = WORDS[i % WORDS.len()];
            async move { api.create_rental(base, owner, &format!("{word} {i}"), &format!("A {word} to lend")).await }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    made.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

/// Runs goose: one scenario of the weighted transactions, every user logged in on start.
async fn attack(
    load: &ApiLoad,
    host: &str,
    logins: Arc<Vec<Login>>,
    goose_report: &std::path::Path,
) -> anyhow::Result<GooseMetrics> {
    let users = load.users.to_string();
    let rate = load.users_per_s.unwrap_or(f64::from(load.users)).to_string();
    let run_time = load.duration_s.to_string();
    let timeout = load.request_timeout_s.to_string();
    let report = goose_report.display().to_string();
    let args = [
        "--host",
        host,
        "--users",
        &users,
        "--increase-rate",
        &rate,
        "--run-time",
        &run_time,
        "--timeout",
        &timeout,
        "--report-file",
        &report,
        "--co-mitigation",
        "disabled",
        "--no-telnet",
        "--no-print-metrics",
        "--quiet",
    ];
    let config = GooseConfiguration::parse_args_default(&args)?;

    let mut scenario = Scenario::new("member")
        .register_transaction(Transaction::new(log_in(logins)).set_name("log in").set_on_start());
    for (name, weight) in load.mix.weighted() {
        let transaction = Transaction::new(transaction(name)).set_name(name).set_weight(weight as usize)?;
        scenario = scenario.register_transaction(transaction);
    }
    if load.think_max_ms > 0 {
        scenario = scenario
            .set_wait_time(Duration::from_millis(load.think_min_ms), Duration::from_millis(load.think_max_ms))?;
    }
    Ok(GooseAttack::initialize_with_config(config)?.register_scenario(scenario).execute().await?)
}

/// Goose user k takes account k mod accounts, and that account's instance.
fn log_in(logins: Arc<Vec<Login>>) -> TransactionFunction {
    Arc::new(move |user: &mut GooseUser| {
        let logins = logins.clone();
        Box::pin(async move {
            let login = &logins[user.weighted_users_index % logins.len()];
            user.set_base_url(&login.base)?;
            user.set_session_data(Session { token: login.token.clone() });
            Ok(())
        })
    })
}

/// Every request of a transaction carries the user's bearer token, and fails on any status
/// other than `expect`. Goose counts it under "METHOD name", e.g. `GET /diaries`.
async fn call(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &str,
    body: Option<serde_json::Value>,
    expect: u16,
) -> TransactionResult {
    let token = match user.get_session_data::<Session>() {
        Some(s) => s.token.clone(),
        None => return Err(Box::new(TransactionError::Custom("the user never logged in".to_string()))),
    };
    let mut builder = user.get_request_builder(&method, path)?.bearer_auth(token);
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .set_request_builder(builder)
        .expect_status_code(expect)
        .build();
    user.request(request).await?;
    Ok(())
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn transaction(name: &'static str) -> TransactionFunction {
    Arc::new(move |user: &mut GooseUser| {
        Box::pin(async move {
            let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            match name {
                "write_diary" => {
                    let body = json!({
                        "title": format!("goose {n}"),
                        "content": "a day under load",
                        "emotion": "calm",
                        "visibility": "friends",
                    });
                    call(user, GooseMethod::Post, "/diaries", "/diaries", Some(body), 201).await
                }
                "read_diaries" => {
                    call(user, GooseMethod::Get, "/diaries?scope=friends&limit=20", "/diaries", None, 200).await
                }
                "notifications" => {
                    call(user, GooseMethod::Get, "/notifications?limit=20", "/notifications", None, 200).await
                }
                _ => {
                    let word = WORDS[n as usize % WORDS.len()];
                    let path = format!("/rentals/search?q={}&limit=10", urlencode(word));
                    call(user, GooseMethod::Get, &path, "/rentals/search", None, 200).await
                }
            }
        })
    })
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Goose's metrics as the report's result: every endpoint, and all requests together.
fn summarize(strategy: Strategy, load: &ApiLoad, metrics: &GooseMetrics, goose_report: String) -> StrategyResult {
    let seconds = (metrics.duration as f64).max(1.0);
    // Goose keys requests by "METHOD name"; in that order, so that reports line up.
    let mut endpoints: Vec<(&String, &GooseRequestMetricAggregate)> = metrics.requests.iter().collect();
    endpoints.sort_by_key(|(key, _)| key.as_str());
    let mut all = latency_histogram();
    let mut counts =
        ApiCounts { users: metrics.maximum_users as u64, measured_s: seconds, goose_report, ..Default::default() };
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for (key, r) in endpoints {
        let requests = (r.success_count + r.fail_count) as u64;
        counts.requests += requests;
        counts.failures += r.fail_count as u64;
        for (&bucket, &n) in r.raw_data.times_us.iter() {
            all.saturating_record_n(bucket_middle(bucket).max(1), n as u64);
        }
        for (status, n) in &r.status_code_counts {
            if !(200..300).contains(status) {
                *by_status.entry(status.to_string()).or_default() += *n as u64;
            }
        }
        counts.endpoints.push(EndpointStats {
            name: key.clone(),
            requests,
            failures: r.fail_count as u64,
            requests_per_s: requests as f64 / seconds,
            latency_us: Percentiles {
                p50: r.raw_data.percentile_us(0.5),
                p90: r.raw_data.percentile_us(0.9),
                p99: r.raw_data.percentile_us(0.99),
                p999: r.raw_data.percentile_us(0.999),
                max: r.raw_data.maximum_time_us,
            },
        });
    }
    counts.failures_by_status = by_status;
    let latency = percentiles(&all);
    let mut result =
        StrategyResult::without_notifications(strategy.as_str(), counts.requests as f64 / seconds, latency);
    let mix: Vec<String> = load.mix.weighted().iter().map(|(name, w)| format!("{name} {w}")).collect();
    result.notes.push(format!(
        "{} goose users for {} s over {} accounts; mix {}",
        counts.users,
        load.duration_s,
        load.accounts,
        mix.join(", ")
    ));
    if !counts.failures_by_status.is_empty() {
        result.notes.push(format!("failed requests by status (0: no answer): {:?}", counts.failures_by_status));
    }
    result.api = Some(counts);
    result
}

/// The middle of the goose time bucket whose lowest time is `floor`: goose keeps microsecond
/// times in log-linear buckets, 64 per power of two (exact below 128 µs), and reports a
/// bucket by its middle, at most 0.78% from any time in it.
fn bucket_middle(floor: u64) -> u64 {
    let width_bits = if floor < 128 { 0 } else { 63 - floor.leading_zeros() - 6 };
    floor + ((1u64 << width_bits) >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_middles_follow_goose_buckets() {
        assert_eq!(bucket_middle(5), 5, "exact below 128 µs");
        assert_eq!(bucket_middle(128), 129, "2 µs wide from 128 µs");
        assert_eq!(bucket_middle(10_240), 10_304, "128 µs wide around 10 ms");
    }

    #[test]
    fn only_weighted_transactions_run_and_search_words_are_encoded() {
        let mix = crate::scenario::ApiMix { write_diary: 2, read_diaries: 0, notifications: 1, search: 0 };
        assert_eq!(mix.weighted(), vec![("write_diary", 2), ("notifications", 1)]);
        assert_eq!(urlencode("캠핑"), "%EC%BA%A0%ED%95%91");
        assert_eq!(urlencode("tent"), "tent");
    }
}
