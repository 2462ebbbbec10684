//! API runs: goose's requests, per strategy and per endpoint.

use crate::report::StrategyResult;
use crate::report::columns::{self, Chart, View};
use crate::report::limits::{self, Limit, Value};
use crate::report::table::{Cell, Column, Table};

pub fn view() -> View {
    View {
        tables: |r| std::iter::once(api(r)).chain(r.iter().filter_map(endpoints)).collect(),
        charts: &[Chart::Violations, Chart::Latency],
        limits: LIMITS,
        violations: |s| vec![("failed requests", s.api.as_ref().map_or(0, |a| a.failures))],
    }
}

static LIMITS: &[&[Limit]] = &[limits::REQUEST_P99, API];

static API: &[Limit] = &[
    Limit {
        key: "max_error_ratio",
        value: Value::Ratio,
        judge: |max, r| {
            let a = r.api.clone().unwrap_or_default();
            if a.requests == 0 {
                return (false, "no request was measured".to_string());
            }
            let passed = a.error_ratio() <= max;
            let op = if passed { "<=" } else { ">" };
            let pct = a.error_ratio() * 100.0;
            (passed, format!("failed {} of {} requests ({pct:.2}%) {op} {}%", a.failures, a.requests, max * 100.0))
        },
    },
    Limit {
        key: "min_requests_per_s",
        value: Value::NonNegative,
        judge: |min, r| {
            let passed = r.throughput_per_s >= min;
            let op = if passed { ">=" } else { "<" };
            (passed, format!("{:.1} requests/s {op} {min}/s", r.throughput_per_s))
        },
    },
];

fn api(results: &[StrategyResult]) -> Table {
    let mut t = Table::new(
        "",
        vec![
            Column::text("strategy"),
            Column::count("users", "users"),
            Column::count("requests", "requests"),
            Column::count("late starts", "late_starts"),
            Column::count("failed", "failures").violation(),
            Column::figure("requests/s").higher_is_better(),
            Column::figure("p50 ms").lower_is_better(),
            Column::figure("p90 ms").lower_is_better(),
            Column::figure("p99 ms").lower_is_better(),
            Column::figure("p99.9 ms").lower_is_better(),
            Column::figure("max ms").lower_is_better(),
            Column::text("goose report"),
            Column::text("verdict"),
        ],
    );
    for (i, s) in results.iter().enumerate() {
        let a = s.api.clone().unwrap_or_default();
        let l = &s.latency_us;
        t.push(
            Some(i),
            vec![
                columns::strategy(s),
                Cell::Count(a.users),
                Cell::Count(a.requests),
                Cell::Count(a.late_starts),
                Cell::Count(a.failures),
                Cell::Number(s.throughput_per_s, 1),
                Cell::Micros(l.p50),
                Cell::Micros(l.p90),
                Cell::Micros(l.p99),
                Cell::Micros(l.p999),
                Cell::Micros(l.max),
                if a.goose_report.is_empty() {
                    Cell::Text("open loop".into())
                } else {
                    Cell::Link(a.goose_report.clone())
                },
                Cell::Verdict(s.passed),
            ],
        );
    }
    t
}

/// One API run's endpoints.
fn endpoints(s: &StrategyResult) -> Option<Table> {
    let a = s.api.as_ref()?;
    let mut t = Table::new(
        format!("{} per endpoint", s.strategy),
        vec![
            Column::text("endpoint"),
            Column::figure("requests"),
            Column::figure("failed"),
            Column::figure("requests/s"),
            Column::figure("p50 ms"),
            Column::figure("p90 ms"),
            Column::figure("p99 ms"),
            Column::figure("max ms"),
        ],
    )
    .in_section("Endpoints", "");
    for e in &a.endpoints {
        let l = &e.latency_us;
        t.push(
            None,
            vec![
                Cell::Text(e.name.clone()),
                Cell::Count(e.requests),
                Cell::Count(e.failures),
                Cell::Number(e.requests_per_s, 1),
                Cell::Micros(l.p50),
                Cell::Micros(l.p90),
                Cell::Micros(l.p99),
                Cell::Micros(l.max),
            ],
        );
    }
    Some(t)
}
