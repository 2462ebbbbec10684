//! What each kind's results look like: its tables, built once from the results of a run and
//! rendered alike by every format. A kind that adds a column changes its function here and
//! nothing else.

use super::table::{Cell, Column, Table};
use super::{RunReport, StrategyResult};
use crate::scenario::Kind;

/// How a kind's results are shown: its tables and its charts.
struct View {
    /// The main table (one row per strategy), then the kind's detail tables (a capacity
    /// ramp's steps, an API run's endpoints).
    tables: fn(&[StrategyResult]) -> Vec<Table>,
    /// The charts of the HTML report, in order.
    charts: &'static [Chart],
}

fn view(kind: Kind) -> View {
    match kind {
        Kind::Fanout => {
            View { tables: |r| vec![notifications(r)], charts: &[Chart::Latency, Chart::Loss, Chart::Deliveries] }
        }
        Kind::Capacity => View {
            tables: |r| std::iter::once(notifications(r)).chain(r.iter().filter_map(ramp)).collect(),
            charts: &[Chart::Ramp, Chart::Latency, Chart::Loss, Chart::Deliveries],
        },
        Kind::Claim => View { tables: |r| vec![claims(r)], charts: &[Chart::Violations] },
        Kind::Booking => View { tables: |r| vec![bookings(r)], charts: &[Chart::Violations, Chart::Latency] },
        Kind::Jobs => View { tables: |r| vec![jobs(r)], charts: &[Chart::Violations] },
        Kind::Api => View {
            tables: |r| std::iter::once(api(r)).chain(r.iter().filter_map(endpoints)).collect(),
            charts: &[Chart::Violations, Chart::Latency],
        },
        Kind::Chat => View {
            tables: |r| std::iter::once(chat(r)).chain(r.iter().filter_map(ramp)).collect(),
            charts: &[Chart::Ramp, Chart::Latency, Chart::Loss, Chart::Deliveries],
        },
    }
}

/// The tables of a report's results, rendered alike by every format.
pub fn tables(report: &RunReport) -> Vec<Table> {
    (view(report.kind).tables)(&report.results)
}

/// The charts a report draws, in order: its kind's, without a ramp chart when no result has a
/// ramp (a chat run without `[ramp]`).
pub fn charts(report: &RunReport) -> Vec<Chart> {
    let ramped = report.results.iter().any(|r| !r.ramp.is_empty());
    view(report.kind).charts.iter().copied().filter(|c| *c != Chart::Ramp || ramped).collect()
}

fn strategy(s: &StrategyResult) -> Cell {
    Cell::Text(s.strategy.clone())
}

fn notifications(results: &[StrategyResult]) -> Table {
    let mut t = Table::new(
        "",
        vec![
            Column::text("strategy"),
            Column::count("expected", "expected"),
            Column::count("delivered", "delivered"),
            Column::count("lost", "lost"),
            Column::figure("lost %"),
            Column::count("duplicated", "duplicated"),
            Column::count("same id twice", "same_id_twice"),
            Column::count("inversions", "inversions"),
            Column::count("unexpected", "unexpected"),
            Column::count("misrouted", "misrouted"),
            Column::count("stored twice", "stored_twice"),
            Column::count("resumes", "resumes"),
            Column::figure("throughput/s"),
            Column::figure("p50 ms"),
            Column::figure("p90 ms"),
            Column::figure("p99 ms"),
            Column::figure("p99.9 ms"),
            Column::figure("max ms"),
            Column::text("verdict"),
        ],
    );
    for (i, s) in results.iter().enumerate() {
        let l = &s.latency_us;
        t.push(
            Some(i),
            vec![
                strategy(s),
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
                Cell::Number(s.throughput_per_s, 1),
                Cell::Micros(l.p50),
                Cell::Micros(l.p90),
                Cell::Micros(l.p99),
                Cell::Micros(l.p999),
                Cell::Micros(l.max),
                Cell::Verdict(s.passed),
            ],
        );
    }
    t
}

/// Chat: per strategy, deliveries to each member of a message's room, then the sends.
fn chat(results: &[StrategyResult]) -> Table {
    let mut t = Table::new(
        "",
        vec![
            Column::text("strategy"),
            Column::count("expected", "expected"),
            Column::count("delivered", "delivered"),
            Column::count("lost", "lost"),
            Column::figure("lost %"),
            Column::count("duplicated", "duplicated"),
            Column::count("out of order", "inversions"),
            Column::count("unexpected", "unexpected"),
            Column::count("sent", "sent"),
            Column::count("not sent", "not_sent"),
            Column::count("late", "late"),
            Column::count("confirmed", "confirmed"),
            Column::count("unconfirmed", "unconfirmed"),
            Column::count("recovered", "recovered"),
            Column::count("resumes", "resumes"),
            Column::count("history mismatches", "history_mismatches"),
            Column::figure("delivered/s"),
            Column::figure("p50 ms"),
            Column::figure("p99 ms"),
            Column::figure("max ms"),
            Column::figure("receipt p99 ms"),
            Column::text("verdict"),
        ],
    );
    for (i, s) in results.iter().enumerate() {
        let c = s.chat.clone().unwrap_or_default();
        let l = &s.latency_us;
        t.push(
            Some(i),
            vec![
                strategy(s),
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

/// One capacity ramp's steps, titled with what it sustained.
fn ramp(s: &StrategyResult) -> Option<Table> {
    if s.ramp.is_empty() {
        return None;
    }
    // A chat ramp offers messages and counts deliveries to members; a notification ramp offers
    // events and counts notifications.
    let (offered, delivered) = if s.chat.is_some() { ("messages", "deliveries") } else { ("events", "notifications") };
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
                Cell::Judged(step.sustained, step.verdict.clone()),
            ],
        );
    }
    Some(t)
}

fn claims(results: &[StrategyResult]) -> Table {
    let mut t = Table::new(
        "",
        vec![
            Column::text("strategy"),
            Column::count("posts", "posts"),
            Column::count("done", "done"),
            Column::count("double processed", "double_processed"),
            Column::count("stuck", "stuck"),
            Column::count("embed calls", "embed_calls"),
            Column::count("failed calls", "failed_calls"),
            Column::count("fenced", "fenced"),
            Column::count("claims", "claims"),
            Column::count("wasted claims", "wasted_claims"),
            Column::figure("posts/s"),
            Column::text("verdict"),
        ],
    );
    for (i, s) in results.iter().enumerate() {
        let c = s.claim.unwrap_or_default();
        t.push(
            Some(i),
            vec![
                strategy(s),
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
            Column::count("errors", "errors"),
            Column::count("overlaps", "overlaps"),
            Column::count("disagreements", "disagreements"),
            Column::figure("approvals/s"),
            Column::figure("p50 ms"),
            Column::figure("p99 ms"),
            Column::figure("max ms"),
            Column::text("verdict"),
        ],
    );
    for (i, s) in results.iter().enumerate() {
        let b = s.booking.unwrap_or_default();
        let l = &s.latency_us;
        t.push(
            Some(i),
            vec![
                strategy(s),
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

fn jobs(results: &[StrategyResult]) -> Table {
    let mut t = Table::new(
        "",
        vec![
            Column::text("strategy"),
            Column::count("firings due", "firings"),
            Column::count("runs", "runs"),
            Column::count("missed", "missed_firings"),
            Column::count("run twice", "double_firings"),
            Column::figure("longest gap s"),
            Column::text("verdict"),
        ],
    );
    for (i, s) in results.iter().enumerate() {
        let j = s.jobs.clone().unwrap_or_default();
        t.push(
            Some(i),
            vec![
                strategy(s),
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

fn api(results: &[StrategyResult]) -> Table {
    let mut t = Table::new(
        "",
        vec![
            Column::text("strategy"),
            Column::count("goose users", "users"),
            Column::count("requests", "requests"),
            Column::count("failed", "failures"),
            Column::figure("requests/s"),
            Column::figure("p50 ms"),
            Column::figure("p90 ms"),
            Column::figure("p99 ms"),
            Column::figure("p99.9 ms"),
            Column::figure("max ms"),
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
                strategy(s),
                Cell::Count(a.users),
                Cell::Count(a.requests),
                Cell::Count(a.failures),
                Cell::Number(s.throughput_per_s, 1),
                Cell::Micros(l.p50),
                Cell::Micros(l.p90),
                Cell::Micros(l.p99),
                Cell::Micros(l.p999),
                Cell::Micros(l.max),
                Cell::Link(a.goose_report.clone()),
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
