//! Jobs runs: each firing of a job run once, missed or twice.

use crate::report::StrategyResult;
use crate::report::columns::{self, Chart, View};
use crate::report::limits::{Limit, Value, at_least, at_most};
use crate::report::table::{Cell, Column, Table};

pub fn view() -> View {
    View {
        tables: |r| vec![jobs(r)],
        charts: &[Chart::Violations],
        limits: LIMITS,
        violations: |s| {
            let j = s.jobs.clone().unwrap_or_default();
            vec![("missed firings", j.missed_firings), ("firings run twice", j.double_firings)]
        },
    }
}

static LIMITS: &[&[Limit]] = &[JOBS];

static JOBS: &[Limit] = &[
    Limit {
        key: "max_missed_firings",
        value: Value::Count,
        judge: |max, r| at_most("missed firings", r.jobs.as_ref().map_or(0, |j| j.missed_firings), max),
    },
    Limit {
        key: "max_double_firings",
        value: Value::Count,
        judge: |max, r| at_most("firings run twice", r.jobs.as_ref().map_or(0, |j| j.double_firings), max),
    },
    // For the control group: the load must be able to show a firing run twice.
    Limit {
        key: "min_double_firings",
        value: Value::Count,
        judge: |min, r| at_least("firings run twice", r.jobs.as_ref().map_or(0, |j| j.double_firings), min),
    },
    Limit {
        key: "max_gap_s",
        value: Value::NonNegative,
        judge: |max, r| {
            let gap = r.jobs.as_ref().map_or(0.0, |j| j.max_gap_s);
            let passed = gap <= max;
            let op = if passed { "<=" } else { ">" };
            (passed, format!("longest gap between runs {gap:.1} s {op} {max} s"))
        },
    },
];

fn jobs(results: &[StrategyResult]) -> Table {
    let mut t = Table::new(
        "",
        vec![
            Column::text("strategy"),
            Column::count("firings due", "firings"),
            Column::count("runs", "runs"),
            Column::count("missed", "missed_firings").violation(),
            Column::count("run twice", "double_firings").violation(),
            Column::figure("longest gap s").lower_is_better(),
            Column::text("verdict"),
        ],
    );
    for (i, s) in results.iter().enumerate() {
        let j = s.jobs.clone().unwrap_or_default();
        t.push(
            Some(i),
            vec![
                columns::strategy(s),
                Cell::Count(j.firings),
                Cell::Count(j.runs),
                Cell::Count(j.missed_firings),
                Cell::Count(j.double_firings),
                Cell::Number(j.max_gap_s, 1),
                Cell::Verdict(s.passed),
            ],
        );
    }
    t
}
