//! Chat runs: deliveries to every member of a message's room, the sends and their RECEIPTs,
//! the room histories, and a ramp when the scenario has one.

use crate::report::StrategyResult;
use crate::report::columns::{self, Chart, View};
use crate::report::limits::{self, Limit, Value, at_most};
use crate::report::table::{Cell, Column, Table};

pub fn view() -> View {
    View {
        tables: |r| {
            std::iter::once(chat(r))
                .chain(r.iter().filter_map(|s| columns::ramp(s, "messages", "deliveries")))
                .collect()
        },
        charts: &[Chart::Ramp, Chart::Latency, Chart::Loss, Chart::Deliveries],
        limits: LIMITS,
        violations: View::NO_VIOLATIONS,
    }
}

static LIMITS: &[&[Limit]] =
    &[limits::DELIVERIES, limits::RESUMES, limits::DELIVERY_P99, limits::DELIVERED_PER_S, limits::LOSS_RATIOS, CHAT];

static CHAT: &[Limit] = &[
    Limit {
        key: "max_history_mismatches",
        value: Value::Count,
        judge: |max, r| at_most("history mismatches", r.chat.as_ref().map_or(0, |c| c.history_mismatches), max),
    },
    Limit {
        key: "max_unconfirmed",
        value: Value::Count,
        judge: |max, r| at_most("unconfirmed sends", r.chat.as_ref().map_or(0, |c| c.unconfirmed), max),
    },
    Limit {
        key: "max_late",
        value: Value::Count,
        judge: |max, r| at_most("late sends", r.chat.as_ref().map_or(0, |c| c.late), max),
    },
];

/// Chat: per strategy, deliveries to each member of a message's room, then the sends.
fn chat(results: &[StrategyResult]) -> Table {
    let mut t = Table::new(
        "",
        vec![
            Column::text("strategy"),
            Column::count("expected", "expected"),
            Column::count("delivered", "delivered"),
            Column::count("lost", "lost").violation(),
            Column::figure("lost %"),
            Column::count("duplicated", "duplicated").violation(),
            Column::count("out of order", "inversions").violation(),
            Column::count("unexpected", "unexpected").violation(),
            Column::count("sent", "sent"),
            Column::count("not sent", "not_sent").violation(),
            Column::count("late", "late").violation(),
            Column::count("confirmed", "confirmed"),
            Column::count("unconfirmed", "unconfirmed").violation(),
            Column::count("recovered", "recovered"),
            Column::count("resumes", "resumes"),
            Column::count("history mismatches", "history_mismatches").violation(),
            Column::figure("delivered/s").higher_is_better(),
            Column::figure("p50 ms").lower_is_better(),
            Column::figure("p99 ms").lower_is_better(),
            Column::figure("max ms").lower_is_better(),
            Column::figure("receipt p99 ms").lower_is_better(),
            Column::text("verdict"),
        ],
    );
    for (i, s) in results.iter().enumerate() {
        let c = s.chat.clone().unwrap_or_default();
        let l = &s.latency_us;
        t.push(
            Some(i),
            vec![
                columns::strategy(s),
                Cell::Count(s.expected),
                Cell::Count(s.delivered),
                Cell::Count(s.lost),
                Cell::Percent(s.lost, s.expected),
                Cell::Count(s.duplicated),
                Cell::Count(s.inversions),
                Cell::Count(s.unexpected),
                Cell::Count(c.sent),
                Cell::Count(c.not_sent),
                Cell::Count(c.late),
                Cell::Count(c.confirmed),
                Cell::Count(c.unconfirmed),
                Cell::Count(c.recovered),
                Cell::Count(c.resumes),
                Cell::Count(c.history_mismatches),
                Cell::Number(s.throughput_per_s, 1),
                Cell::Micros(l.p50),
                Cell::Micros(l.p99),
                Cell::Micros(l.max),
                Cell::Micros(c.receipt_latency_us.p99),
                Cell::Verdict(s.passed),
            ],
        );
    }
    t
}
