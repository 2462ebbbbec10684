//! The p99 of a notification run's delivery latency over sliding windows of its load, for
//! `max_p99_ms_window = { window_s = 5, max = 200 }`: a run whose whole-run p99 passes can
//! still have stalled for five seconds after a fault, and that window is what a user saw.
//!
//! A window is `window_s` whole seconds of the run's clock (the clock of `faults[].at_s` and
//! `deliveries_per_second`), counting every delivery whose cause was sent in them, timed to its
//! first receipt: a stall counts in the window it began in, even when its late deliveries
//! arrive after the load (lost ones are judged by `max_lost`); windows start at
//! every whole second of the load from its start until the last one that fits (a load shorter
//! than a window is one window). Its p99 is the nearest-rank 99th percentile of all those
//! latencies, not a mean of per-second p99s.

use serde::{Deserialize, Serialize};

use super::StrategyResult;
use super::recovery::Recovery;
use crate::ledger::p99_of;
use crate::scenario::{Bound, Scenario};

/// The limit's key in `[thresholds]`.
pub const KEY: &str = "max_p99_ms_window";

/// Every window of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    pub window_s: u32,
    /// The start of the first window, in seconds on the run's clock; `p99_us[i]` is the
    /// window that starts at `from_s + i`.
    pub from_s: u32,
    /// The p99 (µs) of each window; 0 when it timed nothing.
    pub p99_us: Vec<u64>,
    /// The worst window: its start on the run's clock, and its p99 (µs).
    pub worst_from_s: u32,
    pub worst_p99_us: u64,
}

/// The windows of `window_s` seconds of the load `[load_from_s, load_to_s)`, from each
/// second's latencies; `None` when the load timed nothing.
pub fn of(latency_per_second: &[Vec<u64>], window_s: u32, load_from_s: f64, load_to_s: f64) -> Option<Windows> {
    let w = window_s.max(1) as usize;
    let first = load_from_s.max(0.0).ceil() as usize;
    let end = (load_to_s.max(0.0).floor() as usize).max(first + 1);
    let last_start = end.saturating_sub(w).max(first);
    let p99_us: Vec<u64> = (first..=last_start)
        .map(|s| {
            let mut all: Vec<u64> =
                latency_per_second.get(s..(s + w).min(end).min(latency_per_second.len())).unwrap_or(&[]).concat();
            p99_of(&mut all)
        })
        .collect();
    // The first of equally bad windows: the one nearest the cause.
    let (worst, worst_p99_us) =
        p99_us.iter().copied().enumerate().fold(None, |best: Option<(usize, u64)>, (i, p)| match best {
            Some((_, b)) if b >= p => best,
            _ => Some((i, p)),
        })?;
    (worst_p99_us > 0).then(|| Windows {
        window_s: w as u32,
        from_s: first as u32,
        worst_from_s: (first + worst) as u32,
        worst_p99_us,
        p99_us,
    })
}

/// The worst window that starts between `from_s` (inclusive) and `to_s` (exclusive).
pub fn worst_between(w: &Windows, from_s: f64, to_s: f64) -> Option<u64> {
    (0..w.p99_us.len())
        .filter(|i| {
            let start = (w.from_s as usize + i) as f64;
            start >= from_s.floor() && start < to_s
        })
        .map(|i| w.p99_us[i])
        .max()
}

/// For every result whose limits include [`KEY`]: its windows over the scenario's load, and
/// after each of its faults the worst window that starts before the next one.
pub fn apply(scenario: &Scenario, r: &mut StrategyResult) {
    let Some(Bound::Window { window_s, .. }) = scenario.thresholds_for(&r.strategy).get(KEY).copied() else {
        return;
    };
    let (warmup, duration, _) = scenario.timeline();
    r.p99_windows = of(&r.latency_per_second_us, window_s as u32, warmup, warmup + duration);
    let Some(w) = &r.p99_windows else { return };
    let starts: Vec<f64> = r.recoveries.iter().map(|x| x.at_s).collect();
    let mut after = Vec::new();
    for x in r.recoveries.iter_mut() {
        let next = starts.iter().copied().filter(|s| *s > x.at_s).fold(f64::INFINITY, f64::min);
        x.worst_p99_window_us = worst_between(w, x.at_s, next);
        if let Some(p99) = x.worst_p99_window_us {
            after.push(format!("after {} at {} s: {} ms", x.fault, x.at_s, super::text::ms(p99)));
        }
    }
    let mut note =
        format!("worst {} s window p99 {} ms, from {} s", w.window_s, super::text::ms(w.worst_p99_us), w.worst_from_s);
    if !after.is_empty() {
        note.push_str(&format!("; worst window {}", after.join("; ")));
    }
    r.notes.push(note);
}

/// Judges the worst window against `max` (ms).
pub fn judge(max: f64, r: &StrategyResult) -> (bool, String) {
    let Some(w) = &r.p99_windows else {
        return (false, "nothing timed in the load: no window to compare".to_string());
    };
    let passed = w.worst_p99_us as f64 / 1000.0 <= max;
    let op = if passed { "<=" } else { ">" };
    let after = r
        .recoveries
        .iter()
        .filter(|x| x.at_s.floor() <= w.worst_from_s as f64)
        .max_by(|a, b| a.at_s.total_cmp(&b.at_s))
        .map(|x: &Recovery| format!(", after {} at {} s", x.fault, x.at_s))
        .unwrap_or_default();
    (
        passed,
        format!(
            "worst {} s window p99 {} ms (from {} s{after}) {op} {max} ms",
            w.window_s,
            super::text::ms(w.worst_p99_us),
            w.worst_from_s
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_takes_the_p99_of_all_its_latencies_and_the_worst_one_is_named() {
        // Load 2..10 s: 100 fast deliveries a second, except seconds 5 and 6, whose 10 slow
        // ones are 5% of a 2-second window but 2% of a 5-second window.
        let mut seconds: Vec<Vec<u64>> = (0..10).map(|s| if s < 2 { Vec::new() } else { vec![1_000; 100] }).collect();
        for s in [5, 6] {
            seconds[s][..10].fill(900_000);
            seconds[s].sort_unstable();
        }
        let two = of(&seconds, 2, 2.0, 10.0).unwrap();
        assert_eq!((two.from_s, two.p99_us.len()), (2, 7), "windows start at 2..=8");
        assert_eq!((two.worst_from_s, two.worst_p99_us), (4, 900_000), "the first window holding a slow second");
        assert_eq!(two.p99_us[0], 1_000);
        let five = of(&seconds, 5, 2.0, 10.0).unwrap();
        assert_eq!(five.p99_us.len(), 4, "windows start at 2..=5");
        // 20 slow of 500: the 99th percentile (rank 495) is slow.
        assert_eq!(five.worst_p99_us, 900_000);
        let mut mostly_fast = seconds.clone();
        mostly_fast[6] = vec![1_000; 100];
        // 10 slow of 500 = 2%: still slow at p99; 4 slow of 500 is not.
        mostly_fast[5] = [vec![900_000; 4], vec![1_000; 96]].concat();
        assert_eq!(of(&mostly_fast, 5, 2.0, 10.0).unwrap().worst_p99_us, 1_000);
        assert_eq!(worst_between(&two, 2.0, 5.0), Some(900_000), "the window from 4 s holds second 5");
        assert_eq!(worst_between(&two, 7.0, f64::INFINITY), Some(1_000));
    }

    #[test]
    fn a_load_shorter_than_a_window_is_one_window_and_nothing_timed_is_none() {
        let seconds = vec![vec![], vec![2_000; 10], vec![3_000; 10]];
        let w = of(&seconds, 5, 1.0, 3.0).unwrap();
        assert_eq!((w.p99_us.len(), w.worst_p99_us), (1, 3_000));
        assert!(of(&[vec![], vec![]], 5, 0.0, 2.0).is_none());
    }
}
