//! Notification runs, `fanout` and `capacity`: deliveries per (recipient, cause), the
//! database's word on what was stored, and a capacity run's ramp.

use crate::report::StrategyResult;
use crate::report::columns::{self, Chart, View};
use crate::report::limits::{self, Limit, Value, at_most};
use crate::report::table::{Cell, Column, Table};

pub fn fanout() -> View {
    View {
        tables: |r| vec![notifications(r, false)],
        charts: &[Chart::Latency, Chart::Loss, Chart::Deliveries],
        limits: FANOUT,
        violations: View::NO_VIOLATIONS,
    }
}

pub fn capacity() -> View {
    View {
        tables: |r| {
            std::iter::once(notifications(r, true))
                .chain(r.iter().filter_map(|s| columns::ramp(s, "events", "notifications")))
                .collect()
        },
        charts: &[Chart::Ramp, Chart::Latency, Chart::Loss, Chart::Deliveries],
        limits: CAPACITY,
        violations: View::NO_VIOLATIONS,
    }
}

static FANOUT: &[&[Limit]] = &[
    limits::DELIVERIES,
    STORED,
    limits::RESUMES,
    GIVEN_UP,
    limits::DELIVERY_P99,
    limits::DELIVERED_PER_S,
    limits::LOSS_RATIOS,
    RECOVERY,
    WINDOW,
    FAILED_REQUESTS,
];

/// Causing requests that failed (after retrying a refused connection on another instance).
static FAILED_REQUESTS: &[Limit] = &[Limit {
    key: "max_failed_requests",
    value: Value::Count,
    judge: |max, r| at_most("causing requests failed", r.failed_requests, max),
}];

/// The worst window of the load (see [`crate::report::window`]).
static WINDOW: &[Limit] =
    &[Limit { key: crate::report::window::KEY, value: Value::Window, judge: crate::report::window::judge }];

/// The slowest come-back after a fault (see [`crate::report::recovery`]).
static RECOVERY: &[Limit] = &[Limit {
    key: "max_recovery_s",
    value: Value::NonNegative,
    judge: |max, r| {
        if r.recoveries.is_empty() {
            return (false, "no fault with a pre-fault level to come back to: nothing to judge".to_string());
        }
        if let Some(never) = r.recoveries.iter().find(|x| x.recovered_after_s.is_none()) {
            return (
                false,
                format!(
                    "not back at the pre-fault level before the load ended after {} at {} s",
                    never.fault, never.at_s
                ),
            );
        }
        let worst =
            r.recoveries.iter().filter_map(|x| x.recovered_after_s.map(|s| (s, x))).max_by(|a, b| a.0.total_cmp(&b.0));
        match worst {
            Some((s, x)) => {
                let passed = s <= max;
                let op = if passed { "<=" } else { ">" };
                (passed, format!("slowest recovery {s} s {op} {max} s (after {} at {} s)", x.fault, x.at_s))
            }
            None => (false, "no recovery measured".to_string()),
        }
    },
}];

/// Browser clients (`reconnect = "browser"`) whose stream ended for good.
static GIVEN_UP: &[Limit] =
    &[Limit { key: "max_given_up", value: Value::Count, judge: |max, r| at_most("gave up", r.given_up, max) }];

static CAPACITY: &[&[Limit]] = &[limits::DELIVERIES, STORED, limits::DELIVERY_P99, SUSTAINED, limits::LOSS_RATIOS];

/// What SQL finds stored after the run, and what a client was sent twice.
static STORED: &[Limit] = &[
    Limit {
        key: "max_stored_twice",
        value: Value::Count,
        judge: |max, r| at_most("stored twice", r.stored_twice, max),
    },
    Limit {
        key: "max_same_id_twice",
        value: Value::Count,
        judge: |max, r| at_most("same id twice", r.same_id_twice, max),
    },
];

static SUSTAINED: &[Limit] = &[
    Limit {
        key: "min_sustained_delivered_per_s",
        value: Value::NonNegative,
        judge: |min, r| match &r.sustained {
            Some(s) => {
                let passed = s.delivered_per_s >= min;
                let op = if passed { ">=" } else { "<" };
                (
                    passed,
                    format!("sustained {:.1}/s (at {:.0} events/s) {op} {min}/s", s.delivered_per_s, s.events_per_s),
                )
            }
            None => (false, "no step of the ramp was sustained".to_string()),
        },
    },
    Limit {
        key: "min_single_instance_share_pct",
        value: Value::NonNegative,
        judge: |min, r| match r.single_instance_share_pct {
            Some(pct) => {
                let passed = pct >= min;
                let op = if passed { ">=" } else { "<" };
                (passed, format!("sustained {pct:.1}% of the single-instance ceiling {op} {min}%"))
            }
            None => (
                false,
                "no share of the single-instance ceiling to judge: the yardstick was not measured (ramp.yardstick = \
             false, or an external deployment) or found no limit (raise ramp.max_rate_per_s)"
                    .to_string(),
            ),
        },
    },
];

/// Every notification strategy's counts and latencies; a capacity run's also its sustained rate
/// and that rate's share of the single-instance yardstick (so that repeated runs give their
/// medians).
fn notifications(results: &[StrategyResult], capacity: bool) -> Table {
    let mut columns = vec![
        Column::text("strategy"),
        Column::count("expected", "expected"),
        Column::count("delivered", "delivered"),
        Column::count("lost", "lost").violation(),
        Column::figure("lost %"),
        Column::count("duplicated", "duplicated").violation(),
        Column::count("same id twice", "same_id_twice").violation(),
        Column::count("inversions", "inversions").violation(),
        Column::count("unexpected", "unexpected").violation(),
        Column::count("misrouted", "misrouted").violation(),
        Column::count("stored twice", "stored_twice").violation(),
        Column::count("resumes", "resumes"),
        Column::count("gave up", "given_up").violation(),
        Column::figure("throughput/s").higher_is_better(),
        Column::figure("p50 ms").lower_is_better(),
        Column::figure("p90 ms").lower_is_better(),
        Column::figure("p99 ms").lower_is_better(),
        Column::figure("p99.9 ms").lower_is_better(),
        Column::figure("max ms").lower_is_better(),
    ];
    if capacity {
        columns.push(Column::figure("sustained/s").higher_is_better());
        columns.push(Column::figure("% of one instance").higher_is_better());
    }
    columns.push(Column::text("verdict"));
    let mut t = Table::new("", columns);
    for (i, s) in results.iter().enumerate() {
        let l = &s.latency_us;
        let mut cells = vec![
            columns::strategy(s),
            Cell::Count(s.expected),
            Cell::Count(s.delivered),
            Cell::Count(s.lost),
            Cell::Percent(s.lost, s.expected),
            Cell::Count(s.duplicated),
            Cell::Count(s.same_id_twice),
            Cell::Count(s.inversions),
            Cell::Count(s.unexpected),
            Cell::Count(s.misrouted),
            Cell::Count(s.stored_twice),
            Cell::Count(s.resumes),
            Cell::Count(s.given_up),
            Cell::Number(s.throughput_per_s, 1),
            Cell::Micros(l.p50),
            Cell::Micros(l.p90),
            Cell::Micros(l.p99),
            Cell::Micros(l.p999),
            Cell::Micros(l.max),
        ];
        if capacity {
            let dash = || Cell::Text("-".into());
            cells.push(s.sustained.as_ref().map_or_else(dash, |x| Cell::Number(x.delivered_per_s, 1)));
            cells.push(s.single_instance_share_pct.map_or_else(dash, |pct| Cell::Number(pct, 1)));
        }
        cells.push(Cell::Verdict(s.passed));
        t.push(Some(i), cells);
    }
    t
}
