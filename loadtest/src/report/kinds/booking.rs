//! Booking runs: overlapping reservations approved at once, and what the database holds.

use crate::report::StrategyResult;
use crate::report::columns::{self, Chart, View};
use crate::report::limits::{self, Limit, Value, at_least, at_most};
use crate::report::table::{Cell, Column, Table};

pub fn view() -> View {
    View {
        tables: |r| vec![bookings(r)],
        charts: &[Chart::Violations, Chart::Latency],
        limits: LIMITS,
        violations: |s| {
            let b = s.booking.unwrap_or_default();
            vec![("overlapping approvals", b.overlaps), ("disagreements", b.disagreements)]
        },
    }
}

static LIMITS: &[&[Limit]] = &[limits::REQUEST_P99, BOOKING];

static BOOKING: &[Limit] = &[
    Limit {
        key: "max_overlaps",
        value: Value::Count,
        judge: |max, r| at_most("overlapping approvals", r.booking.unwrap_or_default().overlaps, max),
    },
    // For a control group: the load must be able to produce a double booking.
    Limit {
        key: "min_overlaps",
        value: Value::Count,
        judge: |min, r| at_least("overlapping approvals", r.booking.unwrap_or_default().overlaps, min),
    },
];

fn bookings(results: &[StrategyResult]) -> Table {
    let mut t = Table::new(
        "",
        vec![
            Column::text("strategy"),
            Column::count("requests", "requests"),
            Column::count("approvals", "approvals"),
            Column::count("approved", "approved"),
            Column::count("most possible", "max_possible"),
            Column::count("409", "conflicts"),
            Column::count("errors", "errors").violation(),
            Column::count("overlaps", "overlaps").violation(),
            Column::count("disagreements", "disagreements").violation(),
            Column::figure("approvals/s").higher_is_better(),
            Column::figure("p50 ms").lower_is_better(),
            Column::figure("p99 ms").lower_is_better(),
            Column::figure("max ms").lower_is_better(),
            Column::text("verdict"),
        ],
    );
    for (i, s) in results.iter().enumerate() {
        let b = s.booking.unwrap_or_default();
        let l = &s.latency_us;
        t.push(
            Some(i),
            vec![
                columns::strategy(s),
                Cell::Count(b.requests),
                Cell::Count(b.approvals),
                Cell::Count(b.approved),
                Cell::Count(b.max_possible),
                Cell::Count(b.conflicts),
                Cell::Count(b.errors),
                Cell::Count(b.overlaps),
                Cell::Count(b.disagreements),
                Cell::Number(s.throughput_per_s, 1),
                Cell::Micros(l.p50),
                Cell::Micros(l.p99),
                Cell::Micros(l.max),
                Cell::Verdict(s.passed),
            ],
        );
    }
    t
}
