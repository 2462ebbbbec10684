//! The capacity ramp for one delivery strategy: the fan-out rig of [`super::fanout`], driven
//! in steps of rising rate. Each step is judged on its own requests (lost, duplicated, p99,
//! whether the driver could offer the rate at all); the fastest step that passes is the rate
//! the strategy sustains without loss on this machine.
//!
//! The driver is open loop (requests are due on a fixed schedule whatever the server's
//! answers), so a server that falls behind shows as requests in flight and skipped ticks, not
//! as a quietly lower rate: a closed-loop load generator would wait for each answer and
//! report the slower rate as if it had been offered.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::driver::Drive;
use super::ramp::Ramping;
use super::rig::{MAX_IN_FLIGHT, Rig};
use super::{RunContext, StrategyRun};
use crate::ledger::LedgerSummary;
use crate::report::{RampStep, StrategyResult, text};
use crate::scenario::{Delivery, Load, Ramp, Strategy};

pub async fn run(ctx: &RunContext<'_>, load: &Load, ramp: &Ramp, delivery: Delivery) -> anyhow::Result<StrategyRun> {
    let strategy = Strategy::from(delivery);
    let rig = Rig::start(ctx, load, delivery).await?;
    rig.warm_up(Duration::from_secs_f64(load.warmup_s)).await;
    let step_duration = Duration::from_secs_f64(load.duration_s);
    let mut ramping = Ramping::new(ramp, load.rate_per_s, strategy.as_str(), ("events", "notifications"));
    let mut load_seconds = 0.0;
    let mut events_left = load.max_events;
    let mut failed_before = 0u64;
    while let Some(rate) = ramping.next_rate() {
        if events_left == 0 {
            break;
        }
        let drive = rig.driver.drive(rate, step_duration, events_left).await;
        events_left = events_left.saturating_sub(drive.sent);
        load_seconds += drive.seconds;
        tokio::time::sleep(Duration::from_secs_f64(ramp.step_drain_s)).await;
        let summary = rig.window(drive.started, drive.ended).await?;
        let failed_now: u64 = rig.driver.failures().values().sum();
        let mut step = judge_step(rate, &drive, &summary, failed_now - failed_before, ramp);
        step.bisect = ramping.bisecting();
        ramping.record(step);
        failed_before = failed_now;
    }
    tokio::time::sleep(Duration::from_secs_f64(load.drain_s)).await;
    let caused = rig.driver.caused.load(Ordering::Relaxed);
    let truth = rig.stage.truth.clone();
    let (ledger, _uncertain, timeline) = rig.finish().await?;
    let summary = ledger.summary();
    let stored_twice = truth.stored_twice().await?;
    let mut result = StrategyResult::from_summary(strategy.as_str(), &summary, caused, stored_twice, load_seconds);
    result.notes.push(ramping.note());
    result.ramp = ramping.steps;
    result.sustained = ramping.sustained;
    result.timeline = Some(timeline);
    Ok(StrategyRun { result, faults: Vec::new() })
}

/// A step is sustained when every notification of its requests arrived once, within the p99
/// limit, and the driver offered the whole rate.
fn judge_step(rate: f64, drive: &Drive, s: &LedgerSummary, failed: u64, ramp: &Ramp) -> RampStep {
    let p99_ms = s.latency_us.p99 as f64 / 1000.0;
    let mut why = Vec::new();
    if s.expected == 0 {
        why.push("nothing expected (no request succeeded)".to_string());
    }
    if s.lost > 0 {
        why.push(format!("lost {} of {} ({}%)", s.lost, s.expected, text::percent(s.lost, s.expected)));
    }
    if s.duplicated > 0 {
        why.push(format!("duplicated {}", s.duplicated));
    }
    if p99_ms > ramp.max_p99_ms {
        why.push(format!("p99 {} ms > {} ms", text::ms(s.latency_us.p99), ramp.max_p99_ms));
    }
    if drive.skipped > 0 {
        why.push(format!(
            "the server fell behind: {} ticks skipped with {MAX_IN_FLIGHT} requests in flight",
            drive.skipped
        ));
    }
    if failed > 0 {
        why.push(format!("{failed} causing requests failed"));
    }
    RampStep {
        offered_per_s: rate,
        sent: drive.sent,
        skipped: drive.skipped,
        expected: s.expected,
        delivered: s.delivered,
        lost: s.lost,
        duplicated: s.duplicated,
        delivered_per_s: s.delivered as f64 / drive.seconds.max(f64::EPSILON),
        latency_us: s.latency_us,
        sustained: why.is_empty(),
        verdict: why.join("; "),
        bisect: false,
    }
}
