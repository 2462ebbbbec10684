//! Claim runs: posts embedded once, twice or never, and the claims it took.

use crate::report::StrategyResult;
use crate::report::columns::{self, Chart, View};
use crate::report::limits::{Limit, Value, at_least, at_most};
use crate::report::table::{Cell, Column, Table};

pub fn view() -> View {
    View {
        tables: |r| vec![claims(r)],
        charts: &[Chart::Violations],
        limits: LIMITS,
        violations: |s| {
            let c = s.claim.unwrap_or_default();
            vec![("double processed", c.double_processed), ("stuck", c.stuck)]
        },
    }
}

static LIMITS: &[&[Limit]] = &[CLAIM];

static CLAIM: &[Limit] = &[
    Limit {
        key: "max_double_processed",
        value: Value::Count,
        judge: |max, r| at_most("double processed", r.claim.unwrap_or_default().double_processed, max),
    },
    Limit {
        key: "min_double_processed",
        value: Value::Count,
        judge: |min, r| {
            let (passed, detail) = at_least("double processed", r.claim.unwrap_or_default().double_processed, min);
            (passed, format!("{detail} (this strategy is expected to double-process: the ledger must see it)"))
        },
    },
    Limit {
        key: "max_stuck",
        value: Value::Count,
        judge: |max, r| at_most("stuck", r.claim.unwrap_or_default().stuck, max),
    },
    Limit {
        key: "min_items_per_s",
        value: Value::NonNegative,
        judge: |min, r| {
            let passed = r.throughput_per_s >= min;
            let op = if passed { ">=" } else { "<" };
            (passed, format!("{:.1} posts/s {op} {min}/s", r.throughput_per_s))
        },
    },
];

fn claims(results: &[StrategyResult]) -> Table {
    let mut t = Table::new(
        "",
        vec![
            Column::text("strategy"),
            Column::count("posts", "posts"),
            Column::count("done", "done"),
            Column::count("double processed", "double_processed").violation(),
            Column::count("stuck", "stuck").violation(),
            Column::count("embed calls", "embed_calls"),
            Column::count("failed calls", "failed_calls"),
            Column::count("fenced", "fenced"),
            Column::count("claims", "claims"),
            Column::count("wasted claims", "wasted_claims").lower_is_better(),
            Column::figure("posts/s").higher_is_better(),
            Column::text("verdict"),
        ],
    );
    for (i, s) in results.iter().enumerate() {
        let c = s.claim.unwrap_or_default();
        t.push(
            Some(i),
            vec![
                columns::strategy(s),
                Cell::Count(c.items),
                Cell::Count(c.done),
                Cell::Count(c.double_processed),
                Cell::Count(c.stuck),
                Cell::Count(c.embed_calls),
                Cell::Count(c.failed_calls),
                Cell::Count(c.fenced),
                Cell::Count(c.claims),
                Cell::Count(c.wasted_claims),
                Cell::Number(s.throughput_per_s, 1),
                Cell::Verdict(s.passed),
            ],
        );
    }
    t
}
