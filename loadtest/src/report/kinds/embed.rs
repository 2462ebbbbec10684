//! Embed runs: what a post costs the request that writes it, and how long until search finds
//! it by meaning, with the embedding inside the request (`inline`) or after it (`batch`).

use crate::report::columns::{self, Chart, View};
use crate::report::limits::{self, Limit, Value, at_most};
use crate::report::table::{Cell, Column, Table};
use crate::report::{EmbedCounts, StrategyResult, text};

pub fn view() -> View {
    View {
        tables: |r| vec![posts(r)],
        charts: &[Chart::Latency, Chart::Violations],
        limits: LIMITS,
        violations: |s| {
            let e = counts(s);
            vec![
                ("failed posts", e.failed),
                ("unsearchable", e.unsearchable),
                ("not embedded", e.not_embedded),
                ("embedded twice", e.embedded_twice),
            ]
        },
    }
}

fn counts(s: &StrategyResult) -> EmbedCounts {
    s.embed.clone().unwrap_or_default()
}

static LIMITS: &[&[Limit]] = &[limits::REQUEST_P99, EMBED];

static EMBED: &[Limit] = &[
    Limit {
        key: "min_p99_ms",
        value: Value::NonNegative,
        judge: |min, r| {
            if r.latency_us.max == 0 {
                return (false, "nothing measured: no p99 to compare".to_string());
            }
            let passed = r.latency_us.p99 as f64 / 1000.0 >= min;
            let op = if passed { ">=" } else { "<" };
            (
                passed,
                format!(
                    "p99 {} ms {op} {min} ms (this strategy is expected to be slow: the run must show it)",
                    text::ms(r.latency_us.p99)
                ),
            )
        },
    },
    Limit {
        key: "max_p50_ms",
        value: Value::NonNegative,
        judge: |max, r| {
            if r.latency_us.max == 0 {
                return (false, "nothing measured: no p50 to compare".to_string());
            }
            let passed = r.latency_us.p50 as f64 / 1000.0 <= max;
            let op = if passed { "<=" } else { ">" };
            (passed, format!("p50 {} ms {op} {max} ms", text::ms(r.latency_us.p50)))
        },
    },
    Limit {
        key: "max_embedded_in_request",
        value: Value::Count,
        judge: |max, r| at_most("embedded in the request", counts(r).embedded_in_request, max),
    },
    Limit {
        key: "max_searchable_s",
        value: Value::NonNegative,
        judge: |max, r| {
            let e = counts(r);
            if e.searchable == 0 {
                return (false, "no post was found by meaning: nothing to compare".to_string());
            }
            let slowest = e.searchable_us.max as f64 / 1e6;
            let passed = slowest <= max;
            let op = if passed { "<=" } else { ">" };
            (passed, format!("slowest post searchable after {slowest:.2} s {op} {max} s"))
        },
    },
    Limit {
        key: "max_unsearchable",
        value: Value::Count,
        judge: |max, r| at_most("unsearchable", counts(r).unsearchable, max),
    },
    Limit { key: "max_failed", value: Value::Count, judge: |max, r| at_most("failed posts", counts(r).failed, max) },
    Limit {
        key: "max_embedded_twice",
        value: Value::Count,
        judge: |max, r| at_most("embedded twice", counts(r).embedded_twice, max),
    },
];

fn posts(results: &[StrategyResult]) -> Table {
    let mut t = Table::new(
        "",
        vec![
            Column::text("strategy"),
            Column::count("posts", "posts"),
            Column::count("created", "created"),
            Column::count("failed", "failed").violation(),
            Column::count("late starts", "late_starts"),
            Column::count("embedded in request", "embedded_in_request"),
            Column::figure("POST p50 ms").lower_is_better(),
            Column::figure("POST p99 ms").lower_is_better(),
            Column::figure("POST max ms").lower_is_better(),
            Column::count("searchable", "searchable"),
            Column::count("unsearchable", "unsearchable").violation(),
            Column::figure("searchable p50 s").lower_is_better(),
            Column::figure("searchable p99 s").lower_is_better(),
            Column::figure("searchable max s").lower_is_better(),
            Column::figure("embedded after p50 s").lower_is_better(),
            Column::count("not embedded", "not_embedded").violation(),
            Column::count("embedded twice", "embedded_twice").violation(),
            Column::count("searches", "searches"),
            Column::text("verdict"),
        ],
    );
    let seconds = |us: u64| Cell::Number(us as f64 / 1e6, 2);
    for (i, s) in results.iter().enumerate() {
        let e = counts(s);
        let l = &s.latency_us;
        t.push(
            Some(i),
            vec![
                columns::strategy(s),
                Cell::Count(e.posts),
                Cell::Count(e.created),
                Cell::Count(e.failed),
                Cell::Count(e.late_starts),
                Cell::Count(e.embedded_in_request),
                Cell::Micros(l.p50),
                Cell::Micros(l.p99),
                Cell::Micros(l.max),
                Cell::Count(e.searchable),
                Cell::Count(e.unsearchable),
                seconds(e.searchable_us.p50),
                seconds(e.searchable_us.p99),
                seconds(e.searchable_us.max),
                seconds(e.embedded_after_us.p50),
                Cell::Count(e.not_embedded),
                Cell::Count(e.embedded_twice),
                Cell::Count(e.searches),
                Cell::Verdict(s.passed),
            ],
        );
    }
    t
}
