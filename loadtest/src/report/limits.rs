//! Every limit a scenario's `[thresholds]` may set, in one table: which kinds it applies to,
//! what values it takes, and how a result is judged against it. Validation reads the table to
//! accept or refuse a key; judging reads it to say pass or fail and by how much. A kind that
//! adds a limit adds one row here.

use super::StrategyResult;
use super::text;
use crate::scenario::Kind;

/// One limit.
pub struct Limit {
    /// The key in `[thresholds.<strategy>]`.
    pub key: &'static str,
    /// The kinds whose results it can judge.
    pub kinds: &'static [Kind],
    /// What a valid value is: a count (a whole number >= 0), a rate or time (>= 0), or a ratio
    /// (0..=1).
    pub value: Value,
    /// Pass or fail, and the measured value against the limit (`lost 3 > 0`).
    pub judge: fn(limit: f64, r: &StrategyResult) -> (bool, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Count,
    NonNegative,
    Ratio,
}

impl Value {
    /// Why `v` is not a valid value, if it is not.
    pub fn problem(self, v: f64) -> Option<String> {
        match self {
            _ if !v.is_finite() => Some(format!("{v} is not a finite number")),
            Value::Count if v < 0.0 || v.fract() != 0.0 => Some(format!("{v} is not a count: a whole number >= 0")),
            Value::NonNegative if v < 0.0 => Some(format!("{v} is negative: a rate or a time is >= 0")),
            Value::Ratio if !(0.0..=1.0).contains(&v) => Some(format!("{v} is out of range: a ratio is 0..=1")),
            _ => None,
        }
    }
}

const NOTIFY: &[Kind] = &[Kind::Fanout, Kind::Capacity];

/// Kinds that count deliveries per receiver: lost, duplicated, unexpected, out of order.
const DELIVERIES: &[Kind] = &[Kind::Fanout, Kind::Capacity, Kind::Chat];

/// `what value <= max`, or `>` when it is not.
fn at_most(what: &str, value: u64, max: f64) -> (bool, String) {
    let passed = value as f64 <= max;
    (passed, format!("{what} {value} {} {max}", if passed { "<=" } else { ">" }))
}

/// `what value >= min`, or `<` when it is not.
fn at_least(what: &str, value: u64, min: f64) -> (bool, String) {
    let passed = value as f64 >= min;
    (passed, format!("{what} {value} {} {min}", if passed { ">=" } else { "<" }))
}

/// A rate: `label 12.0/s >= 10/s`.
fn rate_at_least(label: &str, value: f64, min: f64) -> (bool, String) {
    let passed = value >= min;
    (passed, format!("{label} {value:.1}/s {} {min}/s", if passed { ">=" } else { "<" }))
}

pub static LIMITS: &[Limit] = &[
    Limit { key: "max_lost", kinds: DELIVERIES, value: Value::Count, judge: |max, r| at_most("lost", r.lost, max) },
    Limit {
        key: "max_duplicated",
        kinds: DELIVERIES,
        value: Value::Count,
        judge: |max, r| at_most("duplicated", r.duplicated, max),
    },
    Limit {
        key: "max_unexpected",
        kinds: DELIVERIES,
        value: Value::Count,
        judge: |max, r| at_most("unexpected", r.unexpected, max),
    },
    Limit {
        key: "max_stored_twice",
        kinds: NOTIFY,
        value: Value::Count,
        judge: |max, r| at_most("stored twice", r.stored_twice, max),
    },
    Limit {
        key: "max_same_id_twice",
        kinds: NOTIFY,
        value: Value::Count,
        judge: |max, r| at_most("same id twice", r.same_id_twice, max),
    },
    Limit {
        key: "max_inversions",
        kinds: DELIVERIES,
        value: Value::Count,
        judge: |max, r| at_most("inversions", r.inversions, max),
    },
    Limit {
        key: "min_resumes",
        kinds: &[Kind::Fanout, Kind::Chat],
        value: Value::Count,
        judge: |min, r| at_least("resumes", r.resumes, min),
    },
    Limit {
        key: "max_p99_ms",
        kinds: &[Kind::Fanout, Kind::Capacity, Kind::Booking, Kind::Api, Kind::Chat],
        value: Value::NonNegative,
        judge: |max, r| {
            // Notification kinds measure delivery latency; booking and api runs, request latency.
            let measured = if r.booking.is_some() || r.api.is_some() { r.latency_us.max > 0 } else { r.delivered > 0 };
            if !measured {
                return (false, "nothing measured: no p99 to compare".to_string());
            }
            let passed = r.latency_us.p99 as f64 / 1000.0 <= max;
            let op = if passed { "<=" } else { ">" };
            (passed, format!("p99 {} ms {op} {max} ms", text::ms(r.latency_us.p99)))
        },
    },
    Limit {
        key: "min_delivered_per_s",
        kinds: &[Kind::Fanout, Kind::Chat],
        value: Value::NonNegative,
        judge: |min, r| rate_at_least("throughput", r.throughput_per_s, min),
    },
    Limit {
        key: "min_lost_ratio",
        kinds: DELIVERIES,
        value: Value::Ratio,
        judge: |min, r| {
            // A baseline that loses nothing because nothing was expected proves nothing.
            if r.expected == 0 {
                return (false, "nothing expected: no loss ratio to compare".to_string());
            }
            let passed = r.lost_ratio() >= min;
            let op = if passed { ">=" } else { "<" };
            (passed, format!("lost {}% {op} {}%", text::percent(r.lost, r.expected), min * 100.0))
        },
    },
    Limit {
        key: "max_lost_ratio",
        kinds: DELIVERIES,
        value: Value::Ratio,
        judge: |max, r| {
            let passed = r.lost_ratio() <= max;
            let op = if passed { "<=" } else { ">" };
            (passed, format!("lost {}% {op} {}%", text::percent(r.lost, r.expected), max * 100.0))
        },
    },
    Limit {
        key: "min_sustained_delivered_per_s",
        kinds: &[Kind::Capacity],
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
        key: "max_double_processed",
        kinds: &[Kind::Claim],
        value: Value::Count,
        judge: |max, r| at_most("double processed", r.claim.unwrap_or_default().double_processed, max),
    },
    Limit {
        key: "min_double_processed",
        kinds: &[Kind::Claim],
        value: Value::Count,
        judge: |min, r| {
            let (passed, detail) = at_least("double processed", r.claim.unwrap_or_default().double_processed, min);
            (passed, format!("{detail} (this strategy is expected to double-process: the ledger must see it)"))
        },
    },
    Limit {
        key: "max_stuck",
        kinds: &[Kind::Claim],
        value: Value::Count,
        judge: |max, r| at_most("stuck", r.claim.unwrap_or_default().stuck, max),
    },
    Limit {
        key: "min_items_per_s",
        kinds: &[Kind::Claim],
        value: Value::NonNegative,
        judge: |min, r| {
            let passed = r.throughput_per_s >= min;
            let op = if passed { ">=" } else { "<" };
            (passed, format!("{:.1} posts/s {op} {min}/s", r.throughput_per_s))
        },
    },
    Limit {
        key: "max_overlaps",
        kinds: &[Kind::Booking],
        value: Value::Count,
        judge: |max, r| at_most("overlapping approvals", r.booking.unwrap_or_default().overlaps, max),
    },
    Limit {
        key: "max_missed_firings",
        kinds: &[Kind::Jobs],
        value: Value::Count,
        judge: |max, r| at_most("missed firings", r.jobs.as_ref().map_or(0, |j| j.missed_firings), max),
    },
    Limit {
        key: "max_double_firings",
        kinds: &[Kind::Jobs],
        value: Value::Count,
        judge: |max, r| at_most("firings run twice", r.jobs.as_ref().map_or(0, |j| j.double_firings), max),
    },
    Limit {
        key: "max_gap_s",
        kinds: &[Kind::Jobs],
        value: Value::NonNegative,
        judge: |max, r| {
            let gap = r.jobs.as_ref().map_or(0.0, |j| j.max_gap_s);
            let passed = gap <= max;
            let op = if passed { "<=" } else { ">" };
            (passed, format!("longest gap between runs {gap:.1} s {op} {max} s"))
        },
    },
    Limit {
        key: "max_history_mismatches",
        kinds: &[Kind::Chat],
        value: Value::Count,
        judge: |max, r| at_most("history mismatches", r.chat.as_ref().map_or(0, |c| c.history_mismatches), max),
    },
    Limit {
        key: "max_unconfirmed",
        kinds: &[Kind::Chat],
        value: Value::Count,
        judge: |max, r| at_most("unconfirmed sends", r.chat.as_ref().map_or(0, |c| c.unconfirmed), max),
    },
    Limit {
        key: "max_late",
        kinds: &[Kind::Chat],
        value: Value::Count,
        judge: |max, r| at_most("late sends", r.chat.as_ref().map_or(0, |c| c.late), max),
    },
    Limit {
        key: "max_error_ratio",
        kinds: &[Kind::Api],
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
        kinds: &[Kind::Api],
        value: Value::NonNegative,
        judge: |min, r| {
            let passed = r.throughput_per_s >= min;
            let op = if passed { ">=" } else { "<" };
            (passed, format!("{:.1} requests/s {op} {min}/s", r.throughput_per_s))
        },
    },
];

/// The limit named `key`, if there is one.
pub fn find(key: &str) -> Option<&'static Limit> {
    LIMITS.iter().find(|l| l.key == key)
}

/// The keys a kind accepts, for messages.
pub fn keys_for(kind: Kind) -> Vec<&'static str> {
    LIMITS.iter().filter(|l| l.kinds.contains(&kind)).map(|l| l.key).collect()
}
