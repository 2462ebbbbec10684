//! How long a notification run took to come back after each of its faults, from its second-by-
//! second deliveries and p99 (`deliveries_per_second`, `p99_per_second_us`).
//!
//! The pre-fault level is the median of the seconds of load before the run's first fault:
//! deliveries per second, and the p99 of the seconds that timed something. After a fault at
//! `t`, the run has recovered at the first whole second from `t` on that starts
//! [`STEADY_S`] seconds in a row, all within the load, each delivering at least
//! [`MIN_SHARE`] of the pre-fault deliveries with a p99 of at most [`P99_FACTOR`] times the
//! pre-fault p99 (and never less than [`P99_SLACK_US`] above it). A run that has not come back
//! before its load ends has not recovered.

use serde::{Deserialize, Serialize};

use super::{FaultRecord, StrategyResult};

/// Seconds in a row at the pre-fault level that count as recovered.
pub const STEADY_S: usize = 3;
/// Deliveries in a recovered second, as a share of the pre-fault median.
pub const MIN_SHARE: f64 = 0.8;
/// A recovered second's p99, as a multiple of the pre-fault median p99 at most.
pub const P99_FACTOR: f64 = 2.0;
/// ... but never stricter than the pre-fault p99 plus this (a 5 ms p99 doubled is still noise).
pub const P99_SLACK_US: u64 = 50_000;

/// One fault of a strategy's run and how long the run took to come back from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// `kill-instance instance:2`.
    pub fault: String,
    /// On the run's clock, as `faults[].at_s`.
    pub at_s: f64,
    /// Seconds from the fault until deliveries and p99 were back at the pre-fault level;
    /// `None`: not before the load ended.
    pub recovered_after_s: Option<f64>,
    /// With `max_p99_ms_window`: the worst window's p99 (µs) among those that start from this
    /// fault until the next one (see [`super::window`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_p99_window_us: Option<u64>,
}

/// The pre-fault level: median deliveries per second and median p99 (µs) of the load's seconds
/// before `first_fault_s`; `None` when no such second delivered anything.
pub fn pre_fault_level(r: &StrategyResult, load_from_s: f64, first_fault_s: f64) -> Option<(f64, u64)> {
    let seconds = (load_from_s.ceil() as usize)..(first_fault_s.floor() as usize).min(r.deliveries_per_second.len());
    let delivered: Vec<f64> = r.deliveries_per_second.get(seconds.clone())?.iter().map(|d| *d as f64).collect();
    let p99s: Vec<f64> =
        seconds.filter_map(|s| r.p99_per_second_us.get(s).copied()).filter(|p| *p > 0).map(|p| p as f64).collect();
    let level = super::spread::median(&delivered);
    (level > 0.0 && !p99s.is_empty()).then(|| (level, super::spread::median(&p99s) as u64))
}

/// Every fault of `faults` that happened in `r`'s run, with how long it took to come back;
/// empty when the run has no pre-fault level to come back to.
pub fn of(r: &StrategyResult, faults: &[FaultRecord], load_from_s: f64, load_to_s: f64) -> Vec<Recovery> {
    let mine: Vec<&FaultRecord> = faults.iter().filter(|f| f.strategy == r.strategy).collect();
    let Some(first) = mine.iter().map(|f| f.at_s).min_by(f64::total_cmp) else { return Vec::new() };
    let Some((level, p99)) = pre_fault_level(r, load_from_s, first) else { return Vec::new() };
    let p99_max = (p99 as f64 * P99_FACTOR).max((p99 + P99_SLACK_US) as f64);
    let last = (load_to_s.floor() as usize).min(r.deliveries_per_second.len());
    let steady = |s: usize| {
        r.deliveries_per_second[s] as f64 >= MIN_SHARE * level
            && r.p99_per_second_us.get(s).is_some_and(|p| *p > 0 && *p as f64 <= p99_max)
    };
    mine.iter()
        .map(|f| {
            let from = f.at_s.floor() as usize;
            let back = (from..last.saturating_sub(STEADY_S - 1)).find(|&s| (s..s + STEADY_S).all(steady));
            Recovery {
                fault: format!("{} {}", f.action, f.target),
                at_s: f.at_s,
                recovered_after_s: back.map(|s| ((s as f64 - f.at_s).max(0.0) * 10.0).round() / 10.0),
                worst_p99_window_us: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::result;

    fn fault(at_s: f64, action: &str) -> FaultRecord {
        FaultRecord {
            at_s,
            action: action.into(),
            target: "instance:2".into(),
            strategy: "rabbitmq".into(),
            outcome: "ok".into(),
            adapter: None,
            detail: None,
        }
    }

    #[test]
    fn a_run_has_recovered_once_three_seconds_in_a_row_are_back_at_the_pre_fault_level() {
        let mut r = result("rabbitmq");
        // Load from 2 s: 100/s at p99 10 ms; a fault at 6.5 s halves the deliveries for 3 s
        // and the p99 stays high one second longer; then back.
        r.deliveries_per_second = vec![0, 0, 100, 100, 100, 100, 100, 50, 40, 60, 95, 100, 100, 100, 30];
        r.p99_per_second_us = vec![
            0, 0, 10_000, 9_000, 11_000, 10_000, 10_000, 900_000, 800_000, 700_000, 400_000, 12_000, 15_000, 9_000,
            5_000,
        ];
        let faults = [fault(6.5, "kill-instance"), fault(9.0, "restart-instance")];
        assert_eq!(pre_fault_level(&r, 2.0, 6.5), Some((100.0, 10_000)));
        let got = of(&r, &faults, 2.0, 14.0);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].fault.as_str(), got[0].recovered_after_s), ("kill-instance instance:2", Some(4.5)));
        assert_eq!(got[1].recovered_after_s, Some(2.0));
        // Three steady seconds must fit before the load ends.
        assert_eq!(of(&r, &faults, 2.0, 13.0)[0].recovered_after_s, None);
    }

    #[test]
    fn no_pre_fault_level_means_nothing_to_judge_and_other_strategies_faults_are_not_ours() {
        let mut r = result("rabbitmq");
        r.deliveries_per_second = vec![0, 0, 100, 100];
        r.p99_per_second_us = vec![0, 0, 10_000, 10_000];
        assert!(of(&r, &[fault(1.0, "kill-instance")], 2.0, 4.0).is_empty(), "the fault came before any delivery");
        let mut theirs = fault(3.0, "kill-instance");
        theirs.strategy = "outbox".into();
        assert!(of(&r, &[theirs], 2.0, 4.0).is_empty());
    }
}
