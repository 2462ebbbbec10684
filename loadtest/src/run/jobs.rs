//! The job-fires-once scenario: the clustered `heartbeat` job fires every `every_s` seconds
//! on N instances while the scenario's faults kill and restart them. The job's own run
//! history, read with read-only SQL, must show one run per due firing and no gap between
//! runs much longer than the lease.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::stage::Stage;
use super::truth::JobRun;
use super::{RunContext, StrategyRun};
use crate::report::{JobCounts, Percentiles, StrategyResult};
use crate::scenario::{JobsLoad, JobsMode, Strategy};

const JOB: &str = "heartbeat";

pub async fn run(ctx: &RunContext<'_>, jobs: &JobsLoad, mode: JobsMode) -> anyhow::Result<StrategyRun> {
    // Firings acquired through the database, or (the control group) fired by every instance.
    let (strategy, scheduler) = match mode {
        JobsMode::Clustered => (Strategy::Clustered, "clustered"),
        JobsMode::Naive => (Strategy::Naive, "local"),
    };
    let schedule = format!("every {}s", jobs.every_s);
    let lease = format!("{}", jobs.lease_s.ceil().max(1.0) as u64);
    let settings = [
        ("SERVER_AI_ENABLED", "false"),
        ("SERVER_JOB_HEARTBEAT_SCHEDULE", &schedule),
        ("SERVER_JOB_LEASE_S", &lease),
        ("SERVER_JOB_SCHEDULER", scheduler),
    ];
    let stage = Stage::start(ctx, strategy, &settings).await?;
    let n = stage.bases.len();
    let t0 = Instant::now();
    let faults = stage.start_faults(ctx, t0, None);
    tokio::time::sleep(Duration::from_secs_f64(jobs.warmup_s)).await;
    let truth = stage.truth.clone();
    let from = truth.now().await?;
    tokio::time::sleep_until((t0 + Duration::from_secs_f64(jobs.warmup_s + jobs.duration_s)).into()).await;
    let to = truth.now().await?;
    let fault_records = faults.await.unwrap_or_default();
    tokio::time::sleep(Duration::from_secs_f64(jobs.drain_s)).await;
    let runs = truth.job_runs(JOB, from, to).await?;
    let timeline = stage.stop().await?;

    let counts = judge(&runs, i64::from(jobs.every_s));
    let seconds = jobs.duration_s.max(f64::EPSILON);
    let mut result =
        StrategyResult::without_notifications(strategy.as_str(), counts.runs as f64 / seconds, Percentiles::default());
    result.notes.push(format!(
        "`{JOB}` every {} s with a {lease} s lease on {n} instances (`SERVER_JOB_SCHEDULER={scheduler}`); \
         runs by instance: {:?}",
        jobs.every_s, counts.runs_by_instance
    ));
    eprintln!(
        "[{}] firings {} runs {} missed {} run twice {} longest gap {:.1} s",
        strategy.as_str(),
        counts.firings,
        counts.runs,
        counts.missed_firings,
        counts.double_firings,
        counts.max_gap_s
    );
    result.jobs = Some(counts);
    result.timeline = Some(timeline);
    Ok(StrategyRun { result, faults: fault_records })
}

/// The runs are placed on the schedule's grid: due times every `every_s` seconds from the
/// first run seen, each run in the period whose due time is nearest its fire time. A period
/// with no run is a missed firing, one with more than one run a firing run twice; the gap is
/// the longest time between consecutive runs. Counting per period, not per distinct fire time,
/// is what catches instances that each fire on their own clock (each run has its own fire
/// time). A clustered scheduler's consecutive fire times are at least `every_s` apart (a
/// misfire restarts the schedule from its own late time), so each lands in its own period.
fn judge(runs: &[JobRun], every_s: i64) -> JobCounts {
    let mut by_instance: BTreeMap<String, u64> = BTreeMap::new();
    for r in runs {
        *by_instance.entry(format!("{} ({})", r.instance, r.outcome)).or_default() += 1;
    }
    let mut fires: Vec<NaiveDateTime> = runs.iter().map(|r| r.fire_at).collect();
    fires.sort_unstable();
    let (Some(first), Some(last)) = (fires.first().copied(), fires.last().copied()) else {
        return JobCounts { runs_by_instance: by_instance, ..JobCounts::default() };
    };
    let period_ms = (every_s.max(1) * 1000) as f64;
    let slot = |t: NaiveDateTime| {
        ((t - first).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0 / period_ms).round() as u64
    };
    let mut per_slot: BTreeMap<u64, u64> = BTreeMap::new();
    for t in &fires {
        *per_slot.entry(slot(*t)).or_default() += 1;
    }
    let firings = slot(last) + 1;
    let max_gap_s = fires.windows(2).map(|w| (w[1] - w[0]).num_milliseconds() as f64 / 1000.0).fold(0.0, f64::max);
    JobCounts {
        firings,
        runs: runs.len() as u64,
        missed_firings: firings.saturating_sub(per_slot.len() as u64),
        double_firings: per_slot.values().filter(|&&n| n > 1).count() as u64,
        max_gap_s,
        runs_by_instance: by_instance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(second: u32, instance: &str) -> JobRun {
        run_ms(second * 1000, instance)
    }

    fn run_ms(ms: u32, instance: &str) -> JobRun {
        let at =
            chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap().and_hms_milli_opt(0, 0, ms / 1000, ms % 1000).unwrap();
        JobRun { fire_at: at, instance: instance.to_string(), outcome: "ok".to_string() }
    }

    #[test]
    fn missed_and_doubled_firings_and_the_longest_gap_are_counted() {
        // Due at 0..=6; 3 and 4 missing (an instance died holding them), 5 ran twice.
        let runs = [run(0, "a"), run(1, "b"), run(2, "a"), run(5, "b"), run(5, "c"), run(6, "a")];
        let c = judge(&runs, 1);
        assert_eq!((c.firings, c.runs, c.missed_firings, c.double_firings), (7, 6, 2, 1));
        assert_eq!(c.max_gap_s, 3.0);
        assert_eq!(c.runs_by_instance["a (ok)"], 3);
        let none = judge(&[], 1);
        assert_eq!((none.firings, none.missed_firings), (0, 0));
    }

    #[test]
    fn instances_firing_on_their_own_clocks_are_caught_running_each_period_twice() {
        // Three instances, each every second at its own phase (0, 0.3 and 0.7 s): three runs a
        // period, each with its own fire time.
        let runs: Vec<JobRun> = (0..5)
            .flat_map(|s| [run_ms(s * 1000, "a"), run_ms(s * 1000 + 300, "b"), run_ms(s * 1000 + 700, "c")])
            .collect();
        let c = judge(&runs, 1);
        assert_eq!((c.runs, c.missed_firings), (15, 0));
        assert!(c.double_firings >= 4, "{c:?}");
    }

    #[test]
    fn a_misfire_that_restarts_the_schedule_late_is_a_gap_not_a_double() {
        // On time at 0, 1, 2; every instance down; one late run at 5.5 and the schedule from there.
        let runs = [run(0, "a"), run(1, "a"), run(2, "a"), run_ms(5500, "b"), run_ms(6500, "b"), run_ms(7500, "b")];
        let c = judge(&runs, 1);
        assert_eq!(c.double_firings, 0, "{c:?}");
        assert_eq!(c.missed_firings, 3, "periods 3, 4 and 5 had no run: {c:?}");
        assert_eq!(c.max_gap_s, 3.5);
    }
}
