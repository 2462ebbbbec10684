//! The open loop: `arrival_rate_per_s` requests start every second on a fixed schedule,
//! whatever the server answers, as independent clients would; request `i` is due at
//! `t0 + i / rate`. At most `users` requests are in flight (the client fleet's connections):
//! a request that finds them all taken waits, and one that starts more than
//! [`LATE_START_MS`](crate::report::LATE_START_MS) after its due time is counted late. Its
//! latency counts from its due time either way, so a server that falls behind shows it in the
//! percentiles instead of slowing the load down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{Call, Login, call_of};
use crate::ledger::{latency_histogram, percentiles};
use crate::report::{ApiCounts, EndpointStats, LATE_START_MS, StrategyResult};
use crate::scenario::{ApiLoad, Strategy};

/// One endpoint's figures.
struct Endpoint {
    requests: u64,
    failures: u64,
    latency: Histogram<u64>,
}

#[derive(Default)]
struct Tally {
    endpoints: BTreeMap<String, Endpoint>,
    by_status: BTreeMap<String, u64>,
    late: u64,
}

pub(super) async fn run(
    strategy: Strategy,
    load: &ApiLoad,
    rate: f64,
    logins: Arc<Vec<Login>>,
    seed: u64,
) -> anyhow::Result<StrategyResult> {
    let timeout = Duration::from_secs(u64::from(load.request_timeout_s));
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(load.users as usize)
        .tcp_nodelay(true)
        .build()?;
    let total = (rate * f64::from(load.duration_s)).round() as u64;
    let slots = Arc::new(Semaphore::new(load.users as usize));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let weighted = load.mix.weighted();
    let weights: u32 = weighted.iter().map(|(_, w)| *w).sum();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0be7);
    let t0 = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let mut pick = rng.random_range(0..weights);
        let name = weighted
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map_or("search", |(n, _)| *n);
        let call = call_of(name, i);
        let login = logins[i as usize % logins.len()].clone();
        let (http, slots, tally) = (http.clone(), slots.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else { return };
            let late = due.elapsed() > Duration::from_millis(LATE_START_MS);
            let status = send(&http, &login, &call).await;
            let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
            let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
            t.late += u64::from(late);
            let key = format!("{} {}", if call.post { "POST" } else { "GET" }, call.name);
            let e = t.endpoints.entry(key).or_insert_with(|| Endpoint {
                requests: 0,
                failures: 0,
                latency: latency_histogram(),
            });
            e.requests += 1;
            e.latency.saturating_record(micros);
            if status != call.expect {
                e.failures += 1;
                *t.by_status.entry(status.to_string()).or_default() += 1;
            }
        }));
    }
    // Every request ends by its timeout; a little more for the slots still queued.
    let ended = tokio::time::timeout(timeout * 2 + Duration::from_secs(5), futures::future::join_all(tasks)).await;
    if ended.is_err() {
        anyhow::bail!("open-loop requests still running {} s after the schedule ended", (timeout * 2).as_secs() + 5);
    }
    let t = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(summarize(strategy, load, rate, t))
}

/// The status of one request; 0 when there was no answer (refused, reset, timed out).
async fn send(http: &reqwest::Client, login: &Login, call: &Call) -> u16 {
    let url = format!("{}{}", login.base, call.path);
    let mut request = if call.post { http.post(url) } else { http.get(url) }.bearer_auth(&login.token);
    if let Some(body) = &call.body {
        request = request.json(body);
    }
    match request.send().await {
        // The body is read, as a client would, before the request counts as answered.
        Ok(answer) => {
            let status = answer.status().as_u16();
            match answer.bytes().await {
                Ok(_) => status,
                Err(_) => 0,
            }
        }
        Err(_) => 0,
    }
}

fn summarize(strategy: Strategy, load: &ApiLoad, rate: f64, t: Tally) -> StrategyResult {
    let seconds = f64::from(load.duration_s);
    let mut all = latency_histogram();
    let mut counts = ApiCounts {
        users: u64::from(load.users),
        measured_s: seconds,
        arrival_rate_per_s: Some(rate),
        late_starts: t.late,
        failures_by_status: t.by_status,
        ..Default::default()
    };
    for (name, e) in t.endpoints {
        counts.requests += e.requests;
        counts.failures += e.failures;
        all.add(&e.latency).expect("histograms of the same bounds add");
        counts.endpoints.push(EndpointStats {
            name,
            requests: e.requests,
            failures: e.failures,
            requests_per_s: e.requests as f64 / seconds,
            latency_us: percentiles(&e.latency),
        });
    }
    let mut result =
        StrategyResult::without_notifications(strategy.as_str(), counts.requests as f64 / seconds, percentiles(&all));
    let mix: Vec<String> = load.mix.weighted().iter().map(|(name, w)| format!("{name} {w}")).collect();
    result.notes.push(format!(
        "open loop: {rate} requests/s for {} s on a fixed schedule, at most {} in flight, over {} accounts; mix {}; \
         latency from each request's due time; {} of {} started more than {LATE_START_MS} ms late",
        load.duration_s,
        load.users,
        load.accounts,
        mix.join(", "),
        counts.late_starts,
        counts.requests
    ));
    if !counts.failures_by_status.is_empty() {
        result.notes.push(format!("failed requests by status (0: no answer): {:?}", counts.failures_by_status));
    }
    result.api = Some(counts);
    result
}
