//! The rules a parsed scenario must follow before it runs; every broken rule is reported,
//! not only the first, so one edit fixes a file.

use std::collections::BTreeSet;

use super::{ALL_STRATEGIES, Fault, Kind, Problem, Scenario, Thresholds};

const MAX_INSTANCES: u32 = 16;
const MAX_RATE_PER_S: f64 = 10_000.0;

pub(super) fn problems(s: &Scenario) -> Vec<Problem> {
    let mut p = Vec::new();
    name(&mut p, &s.name);
    strategies(&mut p, s);
    cluster(&mut p, s);
    load(&mut p, s);
    ramp(&mut p, s);
    for (i, fault) in s.faults.iter().enumerate() {
        fault_rules(&mut p, s, i, fault);
    }
    overlapping_faults(&mut p, &s.faults);
    thresholds(&mut p, s);
    p
}

fn name(p: &mut Vec<Problem>, name: &str) {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if name.is_empty() || !name.chars().all(allowed) {
        p.push(Problem::new(
            "name",
            format!("{name:?} is not a valid name: use lowercase letters, digits and `-` (it names files)"),
        ));
    }
}

fn strategies(p: &mut Vec<Problem>, s: &Scenario) {
    if s.strategies.is_empty() {
        p.push(Problem::new("strategies", "is empty: list at least one strategy to run"));
    }
    for (i, strategy) in s.strategies.iter().enumerate() {
        if let Some(first) = s.strategies[..i].iter().position(|x| x == strategy) {
            p.push(Problem::new(
                format!("strategies[{i}]"),
                format!("`{strategy}` is listed twice (also strategies[{first}]): each strategy runs once"),
            ));
        }
    }
}

fn cluster(p: &mut Vec<Problem>, s: &Scenario) {
    let n = s.cluster.instances;
    if !(1..=MAX_INSTANCES).contains(&n) {
        p.push(Problem::new("cluster.instances", format!("{n} is out of range: between 1 and {MAX_INSTANCES}")));
    }
    for key in s.cluster.server_env.keys() {
        let valid = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            p.push(Problem::new(
                format!("cluster.server_env.{key}"),
                "is not an environment variable name: use letters, digits and `_`, not starting with a digit",
            ));
        }
    }
}

fn load(p: &mut Vec<Problem>, s: &Scenario) {
    let l = &s.load;
    if l.users < 2 {
        p.push(Problem::new(
            "load.users",
            format!("{} is too few: at least 2 users are needed to be friends", l.users),
        ));
    }
    if l.friends_per_user == 0 || l.friends_per_user >= l.users.max(1) {
        p.push(Problem::new(
            "load.friends_per_user",
            format!("{} is out of range: between 1 and users - 1 ({})", l.friends_per_user, l.users.saturating_sub(1)),
        ));
    }
    if l.sse_clients == 0 || l.sse_clients > l.users {
        p.push(Problem::new(
            "load.sse_clients",
            format!("{} is out of range: between 1 and users ({}), one client per user", l.sse_clients, l.users),
        ));
    }
    positive(p, "load.rate_per_s", l.rate_per_s, "events per second must be > 0");
    if l.rate_per_s.is_finite() && l.rate_per_s > MAX_RATE_PER_S {
        p.push(Problem::new(
            "load.rate_per_s",
            format!("{} is above {MAX_RATE_PER_S} events per second: the driver cannot cause more", l.rate_per_s),
        ));
    }
    non_negative(p, "load.mix.diary", l.mix.diary, "a weight must be >= 0");
    non_negative(p, "load.mix.comment", l.mix.comment, "a weight must be >= 0");
    let weights = l.mix.diary + l.mix.comment;
    if weights.is_nan() || weights <= 0.0 {
        p.push(Problem::new("load.mix", "weights sum to 0: at least one of diary, comment must be > 0"));
    }
    positive(p, "load.duration_s", l.duration_s, "events must be caused for some time");
    non_negative(p, "load.warmup_s", l.warmup_s, "a wait must be >= 0");
    non_negative(p, "load.drain_s", l.drain_s, "a wait must be >= 0");
    if l.max_events == 0 {
        p.push(Problem::new("load.max_events", "0 is not > 0: a run must cause at least one event"));
    }
}

/// A wall-clock bound on a capacity ramp, per strategy.
const MAX_RAMP_S: f64 = 3_600.0;

fn ramp(p: &mut Vec<Problem>, s: &Scenario) {
    let Some(r) = &s.ramp else {
        if s.kind == Kind::Capacity {
            p.push(Problem::new(
                "ramp",
                "is missing: a capacity scenario needs [ramp] (factor, max_rate_per_s, max_p99_ms)",
            ));
        }
        return;
    };
    if s.kind != Kind::Capacity {
        p.push(Problem::new("ramp", format!("only applies to kind = \"capacity\", not `{}`: remove it", s.kind)));
    }
    if !(r.factor.is_finite() && r.factor > 1.0 && r.factor <= 10.0) {
        p.push(Problem::new(
            "ramp.factor",
            format!("{} is out of range: each step multiplies the rate by more than 1 and at most 10", r.factor),
        ));
    }
    positive(p, "ramp.max_rate_per_s", r.max_rate_per_s, "the ramp stops at this rate");
    if r.max_rate_per_s.is_finite() && r.max_rate_per_s > MAX_RATE_PER_S {
        p.push(Problem::new(
            "ramp.max_rate_per_s",
            format!("{} is above {MAX_RATE_PER_S} events per second: the driver cannot cause more", r.max_rate_per_s),
        ));
    }
    if r.max_rate_per_s.is_finite() && r.max_rate_per_s < s.load.rate_per_s {
        p.push(Problem::new(
            "ramp.max_rate_per_s",
            format!("{} is below load.rate_per_s ({}), where the ramp starts", r.max_rate_per_s, s.load.rate_per_s),
        ));
    }
    if !(1..=30).contains(&r.max_steps) {
        p.push(Problem::new("ramp.max_steps", format!("{} is out of range: between 1 and 30", r.max_steps)));
    }
    non_negative(p, "ramp.step_drain_s", r.step_drain_s, "a wait must be >= 0");
    positive(p, "ramp.max_p99_ms", r.max_p99_ms, "a step above this latency is not sustained");
    if s.total_s() > MAX_RAMP_S {
        p.push(Problem::new("ramp.max_steps", format!("{} steps of {} s + {} s drain take {:.0} s per strategy, above {MAX_RAMP_S} s: use fewer or shorter steps", r.max_steps, s.load.duration_s, r.step_drain_s, s.total_s())));
    }
    if !s.faults.is_empty() {
        p.push(Problem::new(
            "faults",
            "a capacity ramp measures rates without faults: move the faults to a fanout scenario",
        ));
    }
}

fn fault_rules(p: &mut Vec<Problem>, s: &Scenario, i: usize, f: &Fault) {
    let at = format!("faults[{i}].at_s");
    non_negative(p, &at, f.at_s, "a fault time counts from the start of the warm-up");
    let end = s.load.warmup_s + s.load.duration_s;
    if f.at_s >= end {
        p.push(Problem::new(
            at,
            format!(
                "{} is at or after the end of the load (warm-up {} s + duration {} s = {end} s): a fault must \
                 happen while events are caused",
                f.at_s, s.load.warmup_s, s.load.duration_s
            ),
        ));
    }
    let target = format!("faults[{i}].target");
    match (f.action.on_instance(), f.target.instance()) {
        (true, None) => p.push(Problem::new(
            target,
            format!("`{}` is a service, but {} acts on a server instance: use instance:N", f.target, f.action),
        )),
        (false, Some(_)) => p.push(Problem::new(
            target,
            format!(
                "`{}` is an instance, but {} acts on a service: use rabbitmq, redis or mariadb",
                f.target, f.action
            ),
        )),
        (true, Some(n)) if n == 0 || n > s.cluster.instances => p.push(Problem::new(
            target,
            format!("instance {n} does not exist: instances are numbered 1 to {}", s.cluster.instances),
        )),
        _ => {}
    }
    if let Some(duration) = f.duration_s {
        let field = format!("faults[{i}].duration_s");
        non_negative(p, &field, duration, "a fault lasts >= 0 s");
        if !f.action.takes_duration() {
            p.push(Problem::new(
                field,
                format!(
                    "{} happens at once and is not undone: duration_s only applies to kill-instance, \
                     pause-instance, stop-service and pause-service",
                    f.action
                ),
            ));
        }
    }
}

/// Two faults on one target at once (a kill while it is paused, a start while it is stopped
/// for a while) have no well-defined outcome: refuse them rather than guess an order.
fn overlapping_faults(p: &mut Vec<Problem>, faults: &[Fault]) {
    let window = |f: &Fault| (f.at_s, f.at_s + f.duration_s.unwrap_or(0.0));
    for (j, later) in faults.iter().enumerate() {
        let (start_j, end_j) = window(later);
        let clash = faults[..j].iter().enumerate().find(|(_, earlier)| {
            let (start_i, end_i) = window(earlier);
            earlier.target == later.target && start_j <= end_i && start_i <= end_j
        });
        if let Some((i, earlier)) = clash {
            let (start_i, end_i) = window(earlier);
            p.push(Problem::new(
                format!("faults[{j}].at_s"),
                format!(
                    "{} on {} at {start_j} s overlaps faults[{i}] ({} from {start_i} s to {end_i} s): one fault \
                     at a time per target",
                    later.action, later.target, earlier.action
                ),
            ));
        }
    }
}

fn thresholds(p: &mut Vec<Problem>, s: &Scenario) {
    let listed: BTreeSet<&str> = s.strategies.iter().map(|s| s.as_str()).collect();
    for (key, t) in &s.thresholds {
        if key != ALL_STRATEGIES && !listed.contains(key.as_str()) {
            let known: Vec<&str> = s.strategies.iter().map(|s| s.as_str()).chain([ALL_STRATEGIES]).collect();
            p.push(Problem::new(
                format!("thresholds.{key}"),
                format!("`{key}` is not a strategy of this scenario: expected one of {}", known.join(", ")),
            ));
        }
        threshold_values(p, key, t);
        if t.min_sustained_delivered_per_s.is_some() && s.kind != Kind::Capacity {
            p.push(Problem::new(
                format!("thresholds.{key}.min_sustained_delivered_per_s"),
                "only applies to kind = \"capacity\": a fanout run offers one rate; use min_delivered_per_s",
            ));
        }
    }
}

fn threshold_values(p: &mut Vec<Problem>, key: &str, t: &Thresholds) {
    let field = |name: &str| format!("thresholds.{key}.{name}");
    if let Some(v) = t.max_p99_ms {
        non_negative(p, &field("max_p99_ms"), v, "a latency is >= 0 ms");
    }
    if let Some(v) = t.min_delivered_per_s {
        non_negative(p, &field("min_delivered_per_s"), v, "a rate is >= 0");
    }
    if let Some(v) = t.min_sustained_delivered_per_s {
        non_negative(p, &field("min_sustained_delivered_per_s"), v, "a rate is >= 0");
    }
    for (name, value) in [("min_lost_ratio", t.min_lost_ratio), ("max_lost_ratio", t.max_lost_ratio)] {
        if let Some(v) = value
            && !(0.0..=1.0).contains(&v)
        {
            p.push(Problem::new(field(name), format!("{v} is out of range: a ratio of lost to expected is 0..=1")));
        }
    }
    if let (Some(min), Some(max)) = (t.min_lost_ratio, t.max_lost_ratio)
        && min > max
    {
        p.push(Problem::new(
            field("min_lost_ratio"),
            format!("{min} is above max_lost_ratio {max}: no run can pass both"),
        ));
    }
}

fn non_negative(p: &mut Vec<Problem>, field: &str, v: f64, meaning: &str) {
    if !v.is_finite() {
        p.push(Problem::new(field, format!("{v} is not a finite number: {meaning}")));
    } else if v < 0.0 {
        p.push(Problem::new(field, format!("{v} is negative: {meaning}")));
    }
}

fn positive(p: &mut Vec<Problem>, field: &str, v: f64, meaning: &str) {
    if !v.is_finite() {
        p.push(Problem::new(field, format!("{v} is not a finite number: {meaning}")));
    } else if v < 0.0 {
        p.push(Problem::new(field, format!("{v} is negative: {meaning}")));
    } else if v == 0.0 {
        p.push(Problem::new(field, format!("{v} is zero: {meaning}")));
    }
}
