//! The closed loop: goose users, each sending its next request when the last one answered.
//! Goose's metrics, reset once every user runs, give requests, failures and latency per
//! endpoint; goose also writes its own HTML report beside ours.
//!
//! A closed loop under-reports a slow server: a user stalled on one slow answer does not send
//! the requests it would have sent meanwhile, so their waits are never measured (coordinated
//! omission). Goose runs with its mitigation ([`CO_MITIGATION`]): when a request takes longer
//! than its user's average cadence, goose back-fills the requests that cadence would have
//! sent, with the latencies they would have seen. The report's percentiles are those
//! corrected figures; the uncorrected ones and the number of back-filled requests are kept
//! beside them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use goose::GooseAttack;
use goose::config::GooseConfiguration;
use goose::goose::TransactionResult;
use goose::goose::{
    GooseMethod, GooseRequest, GooseUser, Scenario, Transaction, TransactionError, TransactionFunction,
};
use goose::metrics::{GooseMetrics, GooseRequestMetricAggregate, GooseRequestMetricTimingData};

use super::{Login, call_of};
use crate::ledger::{latency_histogram, percentiles};
use crate::report::{ApiCounts, EndpointStats, Percentiles, StrategyResult};
use crate::scenario::{ApiLoad, Strategy};

/// Goose's `--co-mitigation`: back-fill from each user's average cadence.
pub const CO_MITIGATION: &str = "average";

/// What one goose user knows: its account's token.
#[derive(Debug, Clone)]
struct Session {
    token: String,
}

/// Runs goose and turns its metrics into the strategy's result; goose's own report is
/// written to `report_dir/report_name`.
pub(super) async fn run(
    strategy: Strategy,
    load: &ApiLoad,
    host: &str,
    logins: Arc<Vec<Login>>,
    report_dir: &std::path::Path,
    report_name: String,
) -> anyhow::Result<StrategyResult> {
    let metrics = attack(load, host, logins, &report_dir.join(&report_name)).await?;
    Ok(summarize(strategy, load, &metrics, report_name))
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
        CO_MITIGATION,
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

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Every request of a transaction carries the user's bearer token, and fails on any status
/// other than the one its call expects. Goose counts it under "METHOD name", e.g.
/// `GET /diaries`.
fn transaction(name: &'static str) -> TransactionFunction {
    Arc::new(move |user: &mut GooseUser| {
        Box::pin(async move {
            let call = call_of(name, SEQUENCE.fetch_add(1, Ordering::Relaxed));
            let token = match user.get_session_data::<Session>() {
                Some(s) => s.token.clone(),
                None => return Err(Box::new(TransactionError::Custom("the user never logged in".to_string()))),
            };
            let method = if call.post { GooseMethod::Post } else { GooseMethod::Get };
            let mut builder = user.get_request_builder(&method, &call.path)?.bearer_auth(token);
            if let Some(body) = &call.body {
                builder = builder.json(body);
            }
            let request = GooseRequest::builder()
                .method(method)
                .path(call.path.as_str())
                .name(call.name)
                .set_request_builder(builder)
                .expect_status_code(call.expect)
                .build();
            user.request(request).await?;
            TransactionResult::Ok(())
        })
    })
}

/// Goose's metrics as the report's result: every endpoint, and all requests together, with
/// the latencies corrected for coordinated omission where goose back-filled any.
fn summarize(strategy: Strategy, load: &ApiLoad, metrics: &GooseMetrics, goose_report: String) -> StrategyResult {
    let seconds = (metrics.duration as f64).max(1.0);
    // Goose keys requests by "METHOD name"; in that order, so that reports line up.
    let mut endpoints: Vec<(&String, &GooseRequestMetricAggregate)> = metrics.requests.iter().collect();
    endpoints.sort_by_key(|(key, _)| key.as_str());
    let (mut corrected, mut raw) = (latency_histogram(), latency_histogram());
    let mut counts = ApiCounts {
        users: metrics.maximum_users as u64,
        measured_s: seconds,
        goose_report,
        co_mitigation: Some(CO_MITIGATION.to_string()),
        ..Default::default()
    };
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for (key, r) in endpoints {
        let requests = (r.success_count + r.fail_count) as u64;
        counts.requests += requests;
        counts.failures += r.fail_count as u64;
        let timed = r.coordinated_omission_data.as_ref().unwrap_or(&r.raw_data);
        record(&mut corrected, timed);
        record(&mut raw, &r.raw_data);
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
                p50: timed.percentile_us(0.5),
                p90: timed.percentile_us(0.9),
                p99: timed.percentile_us(0.99),
                p999: timed.percentile_us(0.999),
                max: timed.maximum_time_us,
            },
        });
    }
    counts.failures_by_status = by_status;
    counts.synthetic_requests = corrected.len().saturating_sub(raw.len());
    let latency = percentiles(&corrected);
    let uncorrected = percentiles(&raw);
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
    result.notes.push(format!(
        "closed loop: every percentile is corrected for coordinated omission (goose --co-mitigation {CO_MITIGATION}: \
         {} back-filled requests); uncorrected p50 {} ms, p99 {} ms",
        counts.synthetic_requests,
        crate::report::text::ms(uncorrected.p50),
        crate::report::text::ms(uncorrected.p99)
    ));
    counts.uncorrected_latency_us = Some(uncorrected);
    if !counts.failures_by_status.is_empty() {
        result.notes.push(format!("failed requests by status (0: no answer): {:?}", counts.failures_by_status));
    }
    result.api = Some(counts);
    result
}

/// Every time of goose's buckets, each at its bucket's middle.
fn record(h: &mut hdrhistogram::Histogram<u64>, data: &GooseRequestMetricTimingData) {
    for (&bucket, &n) in data.times_us.iter() {
        h.saturating_record_n(bucket_middle(bucket).max(1), n as u64);
    }
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
}
