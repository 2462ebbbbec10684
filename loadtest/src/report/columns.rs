//! How results are shown, kind by kind: each kind's [`View`] (its tables, charts, limits and
//! invariant violations) lives in its own file under [`super::kinds`]; [`view`] is the one
//! place that maps a kind to it. Every format renders the tables alike: the renderers know
//! tables, not kinds.

use super::kinds;
use super::limits::Limit;
use super::table::{Cell, Column, Table};
use super::{RunReport, StrategyResult};
use crate::scenario::Kind;

/// How a kind's results are shown and judged.
pub struct View {
    /// The main table (one row per strategy), then the kind's detail tables (a capacity
    /// ramp's steps, an API run's endpoints).
    pub tables: fn(&[StrategyResult]) -> Vec<Table>,
    /// The charts of the HTML report, in order.
    pub charts: &'static [Chart],
    /// The limits `[thresholds]` may set for this kind, in groups, in judging order.
    pub limits: &'static [&'static [Limit]],
    /// The kind's invariant violations of one result, for [`Chart::Violations`].
    pub violations: fn(&StrategyResult) -> Vec<(&'static str, u64)>,
}

impl View {
    /// A view with no violations chart data.
    pub const NO_VIOLATIONS: fn(&StrategyResult) -> Vec<(&'static str, u64)> = |_| Vec::new();
}

/// A kind's view.
pub fn view(kind: Kind) -> View {
    match kind {
        Kind::Fanout => kinds::notify::fanout(),
        Kind::Capacity => kinds::notify::capacity(),
        Kind::Claim => kinds::claim::view(),
        Kind::Booking => kinds::booking::view(),
        Kind::Jobs => kinds::jobs::view(),
        Kind::Api => kinds::api::view(),
        Kind::Chat => kinds::chat::view(),
        Kind::Embed => kinds::embed::view(),
    }
}

/// What a kind's `latency_us` times, for the latency chart's title.
pub fn latency_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Fanout | Kind::Capacity | Kind::Chat => "Delivery latency",
        Kind::Booking => "Approval latency",
        Kind::Api => "Request latency",
        Kind::Embed => "POST /rentals latency",
        Kind::Claim | Kind::Jobs => "Latency",
    }
}

/// The tables of a report's results, rendered alike by every format: the kind's, then the
/// figures over every round of a repeated run.
pub fn tables(report: &RunReport) -> Vec<Table> {
    let mut tables = (view(report.kind).tables)(&report.results);
    tables.extend(super::database::table(&report.results));
    tables.extend(super::machine::table(&report.results));
    tables.extend(super::spread::table(&report.spread));
    tables
}

/// The charts a report draws, in order: its kind's, without a ramp chart when no result has a
/// ramp (a chat run without `[ramp]`).
pub fn charts(report: &RunReport) -> Vec<Chart> {
    let ramped = report.results.iter().any(|r| !r.ramp.is_empty());
    view(report.kind).charts.iter().copied().filter(|c| *c != Chart::Ramp || ramped).collect()
}

/// How a report's kind counts the invariant violations of one result.
pub fn violations(report: &RunReport) -> fn(&StrategyResult) -> Vec<(&'static str, u64)> {
    view(report.kind).violations
}

/// The strategy's name, the first cell of every main table.
pub(crate) fn strategy(s: &StrategyResult) -> Cell {
    Cell::Text(s.strategy.clone())
}

/// One ramp's steps, titled with what it sustained; `None` for a run without a ramp. `offered`
/// and `delivered` name what a step offers and what it counts (`events`, `notifications`).
pub(crate) fn ramp(s: &StrategyResult, offered: &str, delivered: &str) -> Option<Table> {
    if s.ramp.is_empty() {
        return None;
    }
    let sustained = match &s.sustained {
        Some(x) => format!(
            "sustained without loss: {:.0} {offered}/s = {:.1} {delivered}/s (p99 {} ms)",
            x.events_per_s,
            x.delivered_per_s,
            super::text::ms(x.p99_us)
        ),
        None => "no step sustained".to_string(),
    };
    let mut t = Table::new(
        format!("{}: {sustained}", s.strategy),
        vec![
            Column::figure(&format!("offered {offered}/s")),
            Column::figure("sent"),
            Column::figure("skipped"),
            Column::figure("expected"),
            Column::figure("delivered"),
            Column::figure("lost"),
            Column::figure("duplicated"),
            Column::figure("delivered/s"),
            Column::figure("p50 ms"),
            Column::figure("p99 ms"),
            Column::figure("max ms"),
            Column::text("how"),
            Column::text("step"),
        ],
    )
    .in_section("Capacity ramp", "Each step is judged on the notifications of its own requests.");
    for step in &s.ramp {
        let l = &step.latency_us;
        t.push(
            None,
            vec![
                Cell::Number(step.offered_per_s, 1),
                Cell::Count(step.sent),
                Cell::Count(step.skipped),
                Cell::Count(step.expected),
                Cell::Count(step.delivered),
                Cell::Count(step.lost),
                Cell::Count(step.duplicated),
                Cell::Number(step.delivered_per_s, 1),
                Cell::Micros(l.p50),
                Cell::Micros(l.p99),
                Cell::Micros(l.max),
                Cell::Text(if step.bisect { "bisect" } else { "ramp" }.to_string()),
                Cell::Judged(step.sustained, step.verdict.clone()),
            ],
        );
    }
    Some(t)
}

/// A chart of `report.html`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    /// Delivered notifications per second at each step of a ramp.
    Ramp,
    /// Latency percentiles per strategy.
    Latency,
    /// Lost notifications per strategy.
    Loss,
    /// Deliveries per second over the run, faults marked.
    Deliveries,
    /// The kind's invariant violations per strategy.
    Violations,
}
