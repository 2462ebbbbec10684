//! The fan-out scenario for one delivery strategy: a rig (fresh database, N instances, a
//! world of friends, SSE clients), events caused at a steady rate on random instances,
//! faults at their times, then a drain; every expected (recipient, cause) is checked against
//! what the clients received.

use std::time::Duration;

use super::rig::{MAX_IN_FLIGHT, Rig};
use super::{RunContext, StrategyRun};
use crate::report::StrategyResult;
use crate::report::database::DatabaseWork;
use crate::report::machine::MachineWork;
use crate::scenario::{Delivery, Load, Strategy};

pub async fn run(ctx: &RunContext<'_>, load: &Load, delivery: Delivery) -> anyhow::Result<StrategyRun> {
    let strategy = Strategy::from(delivery);
    let rig = Rig::start(ctx, load, delivery).await?;
    let faults = rig.start_faults(ctx);
    // Warm-up: streams connect; nothing is counted yet.
    rig.warm_up(Duration::from_secs_f64(load.warmup_s)).await;
    let counters_before = rig.stage.truth.server_counters().await;
    let measured_from_s = rig.t0.elapsed().as_secs_f64();
    let drive = rig.driver.drive(load.rate_per_s, Duration::from_secs_f64(load.duration_s), load.max_events).await;
    // The drain starts once the load has ended and the last fault step (a broker that takes
    // seconds to come back, say) is done: what arrives late is not lost.
    let fault_records = faults.await.unwrap_or_default();
    tokio::time::sleep(Duration::from_secs_f64(load.drain_s)).await;
    let measured_to_s = rig.t0.elapsed().as_secs_f64();
    let failures = rig.driver.failures();
    let retries = rig.driver.retries.load(std::sync::atomic::Ordering::Relaxed);
    let caused = rig.driver.caused.load(std::sync::atomic::Ordering::Relaxed);
    let reconnects = rig.stats.reconnects.load(std::sync::atomic::Ordering::Relaxed);
    let resumes = rig.stats.resumes.load(std::sync::atomic::Ordering::Relaxed);
    let churn_drops = rig.stats.churn_drops.load(std::sync::atomic::Ordering::Relaxed);
    let given_up = rig.stats.given_up.load(std::sync::atomic::Ordering::Relaxed);
    let truth = rig.stage.truth.clone();
    let database = match (counters_before, truth.server_counters().await) {
        (Ok(before), Ok(after)) => Ok(DatabaseWork::between(&before, &after, caused)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let repairs = rig.metric_totals(&["server_notify_gap_repairs_total", "server_notify_gap_repaired_total"]).await;
    let broker_messages = rig.metric_totals(&["server_notify_broker_messages_total"]).await;
    let stages = stage_means(&rig).await;
    let (ledger, uncertain, timeline) = rig.finish().await?;
    let summary = ledger.summary();

    let stored_twice = truth.stored_twice().await?;
    let mut result = StrategyResult::from_summary(strategy.as_str(), &summary, caused, stored_twice, drive.seconds);
    result.resumes = resumes;
    result.given_up = given_up;
    if given_up > 0 {
        result.notes.push(format!(
            "browser clients that gave up for good on an answer other than 200 (EventSource does): {given_up}"
        ));
    }
    result.notes.push(format!("stream reconnects: {reconnects} ({resumes} with Last-Event-ID)"));
    if let Some([repairs, repaired]) = repairs.as_deref()
        && *repairs > 0.0
    {
        result.notes.push(format!(
            "gaps the servers' streams filled from the database (the transport had not yet delivered an earlier \
             notification): {repairs:.0}, {repaired:.0} notifications read (from /metrics)"
        ));
    }
    if let Some([messages]) = broker_messages.as_deref()
        && *messages > 0.0
        && caused > 0
    {
        result.notes.push(format!(
            "messages the servers published to RabbitMQ: {messages:.0}, {:.2} per event (from /metrics)",
            messages / caused as f64
        ));
    }
    if let Some(stages) = stages {
        result.notes.push(format!(
            "mean time a batch spent in each stage of its path, on the servers' clocks (from /metrics): {stages}"
        ));
    }
    if churn_drops > 0 {
        result.notes.push(format!("streams dropped by the clients' churn: {churn_drops}"));
    }
    let failed: u64 = failures.values().sum();
    result.failed_requests = failed;
    result.retried_requests = retries;
    if retries > 0 {
        result.notes.push(format!(
            "causing requests sent again to another instance after a refused connection or one closed before any \
             answer: {retries}"
        ));
    }
    if failed > 0 {
        let by_kind: Vec<String> = failures.iter().map(|(kind, n)| format!("{kind}: {n}")).collect();
        result.notes.push(format!(
            "causing requests that failed (nothing expected of them): {failed} ({})",
            by_kind.join(", ")
        ));
    }
    if !uncertain.is_empty() {
        result.notes.push(format!(
            "causes committed although their request failed or timed out: {}; their {} receipts are indeterminate, not unexpected",
            uncertain.len(),
            summary.indeterminate
        ));
    }
    if drive.skipped > 0 {
        result.notes.push(format!("ticks skipped because {MAX_IN_FLIGHT} requests were in flight: {}", drive.skipped));
    }
    eprintln!(
        "[{}] expected {} delivered {} lost {} duplicated {} same id twice {} inversions {} unexpected {} resumes {} p99 {:.1} ms",
        strategy.as_str(),
        result.expected,
        result.delivered,
        result.lost,
        result.duplicated,
        result.same_id_twice,
        result.inversions,
        result.unexpected,
        result.resumes,
        result.latency_us.p99 as f64 / 1000.0
    );
    match database {
        Ok(work) => result.database = Some(work),
        Err(e) => result.notes.push(format!("the database's counters could not be read (SHOW GLOBAL STATUS): {e:#}")),
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    result.machine = Some(MachineWork::over(&timeline, measured_from_s, measured_to_s, caused, cores));
    result.timeline = Some(timeline);
    Ok(StrategyRun { result, faults: fault_records })
}

/// The stages of a notification's path the servers time (`notify_stage_seconds`), in path order.
const STAGES: [(&str, &str); 11] = [
    ("cause_commit", "the cause's commit"),
    ("store_queued", "waiting for the store publisher"),
    ("store_confirm", "store message to its confirm"),
    ("store_waiting", "delivered store message waiting for a store transaction"),
    ("store", "store transaction"),
    ("fanout_queued", "waiting for the fanout publisher"),
    ("relay_number", "relay numbering new rows"),
    ("relay_waiting", "outbox row waiting for a relay pass"),
    ("relay_claim", "relay's claim of the rows"),
    ("fanout_confirm", "fanout message to its confirm"),
    ("relay_mark", "relay marking the rows and committing"),
];

/// "store transaction 2.31 ms (1,204), ..." for the stages the strategy has; `None` when the
/// servers timed none (or could not be scraped).
async fn stage_means(rig: &Rig) -> Option<String> {
    let selectors: Vec<String> = STAGES
        .iter()
        .flat_map(|(stage, _)| {
            ["sum", "count"].map(|part| format!("server_notify_stage_seconds_{part}{{stage=\"{stage}\"}}"))
        })
        .collect();
    let names: Vec<&str> = selectors.iter().map(String::as_str).collect();
    let totals = rig.metric_totals(&names).await?;
    let parts: Vec<String> = STAGES
        .iter()
        .zip(totals.chunks(2))
        .filter(|(_, t)| t[1] > 0.0)
        .map(|((_, what), t)| format!("{what} {:.2} ms ({:.0})", t[0] / t[1] * 1e3, t[1]))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}
