//! What a limit of `[thresholds]` is: its key, the values it takes, and how a result is
//! judged against it. Each kind lists the limits it takes in its own file under
//! [`super::kinds`] (its [`View`](super::columns::View)); the groups below are the limits
//! several kinds share. Validation reads a kind's list to accept or refuse a key; judging
//! reads the same list to say pass or fail and by how much.

use super::StrategyResult;
use super::columns;
use super::text;
use crate::scenario::{Bound, Kind};

/// One limit.
pub struct Limit {
    /// The key in `[thresholds.<strategy>]`.
    pub key: &'static str,
    /// What a valid value is: a count (a whole number >= 0), a rate or time (>= 0), a ratio
    /// (0..=1), or a window (`{ window_s = 5, max = 200 }`).
    pub value: Value,
    /// Pass or fail, and the measured value against the limit (`lost 3 > 0`).
    pub judge: fn(limit: f64, r: &StrategyResult) -> (bool, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Count,
    NonNegative,
    Ratio,
    /// A table `{ window_s, max }`: whole seconds >= 1, and a time >= 0 that every window of
    /// that length must pass. The judge is handed `max`.
    Window,
}

impl Value {
    /// Why `bound` is not a valid value, if it is not.
    pub fn problem(self, bound: Bound) -> Option<String> {
        let v = match (self, bound) {
            (Value::Window, Bound::Window { window_s, max }) => {
                return if !window_s.is_finite() || window_s < 1.0 || window_s.fract() != 0.0 {
                    Some(format!("window_s {window_s} is not a window length: whole seconds >= 1"))
                } else {
                    Value::NonNegative.problem(Bound::Number(max)).map(|p| format!("max {p}"))
                };
            }
            (Value::Window, Bound::Number(v)) => {
                return Some(format!("{v} is a number: this limit takes a window, e.g. {{ window_s = 5, max = {v} }}"));
            }
            (_, Bound::Window { .. }) => return Some("is a window: this limit takes a number".to_string()),
            (_, Bound::Number(v)) => v,
        };
        match self {
            _ if !v.is_finite() => Some(format!("{v} is not a finite number")),
            Value::Count if v < 0.0 || v.fract() != 0.0 => Some(format!("{v} is not a count: a whole number >= 0")),
            Value::NonNegative if v < 0.0 => Some(format!("{v} is negative: a rate or a time is >= 0")),
            Value::Ratio if !(0.0..=1.0).contains(&v) => Some(format!("{v} is out of range: a ratio is 0..=1")),
            _ => None,
        }
    }
}

/// `what value <= max`, or `>` when it is not.
pub(super) fn at_most(what: &str, value: u64, max: f64) -> (bool, String) {
    let passed = value as f64 <= max;
    (passed, format!("{what} {value} {} {max}", if passed { "<=" } else { ">" }))
}

/// `what value >= min`, or `<` when it is not.
pub(super) fn at_least(what: &str, value: u64, min: f64) -> (bool, String) {
    let passed = value as f64 >= min;
    (passed, format!("{what} {value} {} {min}", if passed { ">=" } else { "<" }))
}

/// A rate: `label 12.0/s >= 10/s`.
pub(super) fn rate_at_least(label: &str, value: f64, min: f64) -> (bool, String) {
    let passed = value >= min;
    (passed, format!("{label} {value:.1}/s {} {min}/s", if passed { ">=" } else { "<" }))
}

/// Kinds that count deliveries per receiver: lost, duplicated, unexpected, out of order.
pub static DELIVERIES: &[Limit] = &[
    Limit { key: "max_lost", value: Value::Count, judge: |max, r| at_most("lost", r.lost, max) },
    Limit { key: "max_duplicated", value: Value::Count, judge: |max, r| at_most("duplicated", r.duplicated, max) },
    Limit { key: "max_unexpected", value: Value::Count, judge: |max, r| at_most("unexpected", r.unexpected, max) },
    Limit { key: "max_inversions", value: Value::Count, judge: |max, r| at_most("inversions", r.inversions, max) },
];

/// The same kinds: the share of expected deliveries lost.
pub static LOSS_RATIOS: &[Limit] = &[
    Limit {
        key: "min_lost_ratio",
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
        value: Value::Ratio,
        judge: |max, r| {
            let passed = r.lost_ratio() <= max;
            let op = if passed { "<=" } else { ">" };
            (passed, format!("lost {}% {op} {}%", text::percent(r.lost, r.expected), max * 100.0))
        },
    },
];

/// Kinds whose clients resume after a drop.
pub static RESUMES: &[Limit] =
    &[Limit { key: "min_resumes", value: Value::Count, judge: |min, r| at_least("resumes", r.resumes, min) }];

/// Kinds that deliver at a steady rate.
pub static DELIVERED_PER_S: &[Limit] = &[Limit {
    key: "min_delivered_per_s",
    value: Value::NonNegative,
    judge: |min, r| rate_at_least("throughput", r.throughput_per_s, min),
}];

/// The p99 of delivery latency (cause to receipt).
pub static DELIVERY_P99: &[Limit] =
    &[Limit { key: "max_p99_ms", value: Value::NonNegative, judge: |max, r| p99(max, r, r.delivered > 0) }];

/// The p99 of request latency.
pub static REQUEST_P99: &[Limit] =
    &[Limit { key: "max_p99_ms", value: Value::NonNegative, judge: |max, r| p99(max, r, r.latency_us.max > 0) }];

fn p99(max: f64, r: &StrategyResult, measured: bool) -> (bool, String) {
    if !measured {
        return (false, "nothing measured: no p99 to compare".to_string());
    }
    let passed = r.latency_us.p99 as f64 / 1000.0 <= max;
    let op = if passed { "<=" } else { ">" };
    (passed, format!("p99 {} ms {op} {max} ms", text::ms(r.latency_us.p99)))
}

/// Every limit `kind` takes, in judging order.
pub fn of(kind: Kind) -> impl Iterator<Item = &'static Limit> {
    columns::view(kind).limits.iter().flat_map(|group| group.iter())
}

/// The limit named `key` that `kind` takes, if it takes one.
pub fn find(kind: Kind, key: &str) -> Option<&'static Limit> {
    of(kind).find(|l| l.key == key)
}

/// The keys a kind accepts, for messages.
pub fn keys_for(kind: Kind) -> Vec<&'static str> {
    of(kind).map(|l| l.key).collect()
}

/// The kinds that take a limit named `key`, for messages.
pub fn kinds_taking(key: &str) -> Vec<Kind> {
    Kind::ALL.iter().copied().filter(|k| find(*k, key).is_some()).collect()
}
