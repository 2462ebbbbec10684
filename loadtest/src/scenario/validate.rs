//! The rules a parsed scenario must follow before it runs; every broken rule is reported,
//! not only the first, so one edit fixes a file.

use std::collections::BTreeSet;

use super::workload::{self, Faults};
use super::{
    ALL_STRATEGIES, ApiLoad, BookingLoad, ClaimLoad, EmbedLoad, Fault, FaultAction, FaultTarget, JobsLoad, Kind, Load,
    Problem, Ramp, ScenarioFile, Strategy,
};
use crate::report::limits;

const MAX_INSTANCES: u32 = 16;
const MAX_RATE_PER_S: f64 = 10_000.0;

/// The rules of one section's values, checked whenever the section is present.
pub(super) trait Rules {
    /// Adds a problem for every rule broken; `file` is the whole scenario, for rules across sections.
    fn check(&self, file: &ScenarioFile, p: &mut Vec<Problem>);
}

pub(super) fn problems(s: &ScenarioFile) -> Vec<Problem> {
    let mut p = Vec::new();
    let facts = workload::facts(s.kind);
    name(&mut p, &s.name);
    strategies(&mut p, s);
    cluster(&mut p, s);
    sections(&mut p, s, facts.reads, facts.may_read);
    for rules in s.sections().into_iter().filter_map(|(_, rules)| rules) {
        rules.check(s, &mut p);
    }
    match facts.faults {
        Faults::Refused(reason) if !s.faults.is_empty() => p.push(Problem::new("faults", reason)),
        Faults::Refused(_) => {}
        Faults::Allowed { clients } => {
            for (i, fault) in s.faults.iter().enumerate() {
                fault_rules(&mut p, s, i, fault, clients);
            }
        }
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

fn strategies(p: &mut Vec<Problem>, s: &ScenarioFile) {
    if s.strategies.is_empty() {
        p.push(Problem::new("strategies", "is empty: list at least one strategy to run"));
    }
    for (i, strategy) in s.strategies.iter().enumerate() {
        if !s.kind.compares(*strategy) {
            let fits: Vec<&str> = Strategy::for_kind(s.kind).into_iter().map(Strategy::as_str).collect();
            p.push(Problem::new(
                format!("strategies[{i}]"),
                format!(
                    "`{strategy}` is not compared by {} {} scenario: expected one of {}",
                    article(s.kind),
                    s.kind,
                    fits.join(", ")
                ),
            ));
        }
        if let Some(first) = s.strategies[..i].iter().position(|x| x == strategy) {
            p.push(Problem::new(
                format!("strategies[{i}]"),
                format!("`{strategy}` is listed twice (also strategies[{first}]): each strategy runs once"),
            ));
        }
    }
}

fn cluster(p: &mut Vec<Problem>, s: &ScenarioFile) {
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
    let nodes = s.cluster.rabbitmq_nodes;
    if !(1..=super::MAX_RABBITMQ_NODES).contains(&nodes) {
        p.push(Problem::new(
            "cluster.rabbitmq_nodes",
            format!("{nodes} is out of range: between 1 and {}", super::MAX_RABBITMQ_NODES),
        ));
    } else if nodes > 1 && (s.cluster.runner == super::Runner::External || s.cluster.targets.is_some()) {
        p.push(Problem::new(
            "cluster.rabbitmq_nodes",
            "applies to the harness's own containers, not to an external deployment's broker: remove it",
        ));
    }
    if s.cluster.targets.is_some() && s.cluster.runner != super::Runner::External {
        p.push(Problem::new(
            "cluster.targets",
            "is read by the external runner only: set runner = \"external\", or remove it",
        ));
    }
}

/// Each kind reads its own sections (`wanted`, and `optional` ones when present); any other
/// would be silently ignored, so it is refused.
fn sections(p: &mut Vec<Problem>, s: &ScenarioFile, wanted: &[&str], optional: &[&str]) {
    let reads = wanted.iter().map(|w| format!("[{w}]")).collect::<Vec<_>>().join(" and ");
    for (section, rules) in s.sections() {
        let is_there = rules.is_some();
        if wanted.contains(&section) && !is_there {
            p.push(Problem::new(section, format!("is missing: {} {} scenario needs {reads}", article(s.kind), s.kind)));
        } else if !wanted.contains(&section) && !optional.contains(&section) && is_there {
            p.push(Problem::new(
                section,
                format!("does not apply to {} {} scenario, which reads {reads}: remove it", article(s.kind), s.kind),
            ));
        }
    }
}

impl Rules for ClaimLoad {
    fn check(&self, _: &ScenarioFile, p: &mut Vec<Problem>) {
        let c = self;
        if !(1..=1_000_000).contains(&c.posts) {
            p.push(Problem::new("claim.posts", format!("{} is out of range: between 1 and 1000000", c.posts)));
        }
        if !(1..=1_000).contains(&c.owners) {
            p.push(Problem::new("claim.owners", format!("{} is out of range: between 1 and 1000", c.owners)));
        }
        if !(1..=64).contains(&c.workers_per_instance) {
            p.push(Problem::new(
                "claim.workers_per_instance",
                format!("{} is out of range: between 1 and 64", c.workers_per_instance),
            ));
        }
        if !(1..=1_000).contains(&c.batch_size) {
            p.push(Problem::new("claim.batch_size", format!("{} is out of range: between 1 and 1000", c.batch_size)));
        }
        positive(p, "claim.lease_s", c.lease_s, "a claim must last some time");
        if c.embed_delay_ms > 60_000 {
            p.push(Problem::new("claim.embed_delay_ms", format!("{} is above 60000 ms per call", c.embed_delay_ms)));
        }
        if !(0.0..=1.0).contains(&c.embed_fail_rate) {
            p.push(Problem::new(
                "claim.embed_fail_rate",
                format!("{} is out of range: a share of calls, 0..=1", c.embed_fail_rate),
            ));
        }
        if c.embed_fail_rate >= 1.0 {
            p.push(Problem::new("claim.embed_fail_rate", "1 fails every call: no post could ever be embedded"));
        }
        non_negative(p, "claim.warmup_s", c.warmup_s, "a wait must be >= 0");
        positive(p, "claim.duration_s", c.duration_s, "the workers need some time");
        non_negative(p, "claim.drain_s", c.drain_s, "a wait must be >= 0");
    }
}

impl Rules for EmbedLoad {
    fn check(&self, _: &ScenarioFile, p: &mut Vec<Problem>) {
        let e = self;
        positive(p, "embed.posts_per_s", e.posts_per_s, "posts must arrive at some rate");
        if e.posts_per_s > 1_000.0 {
            p.push(Problem::new("embed.posts_per_s", format!("{} is above 1000 posts per second", e.posts_per_s)));
        }
        positive(p, "embed.duration_s", e.duration_s, "posts need some time to arrive");
        if e.posts_per_s.is_finite() && e.duration_s.is_finite() && e.posts() > 100_000 {
            p.push(Problem::new(
                "embed.duration_s",
                format!("posts_per_s x duration_s = {} is above 100000 posts", e.posts()),
            ));
        }
        if e.embed_delay_ms > 60_000 {
            p.push(Problem::new("embed.embed_delay_ms", format!("{} is above 60000 ms per call", e.embed_delay_ms)));
        }
        if !(1..=1_000).contains(&e.owners) {
            p.push(Problem::new("embed.owners", format!("{} is out of range: between 1 and 1000", e.owners)));
        }
        if !(1..=64).contains(&e.workers_per_instance) {
            p.push(Problem::new(
                "embed.workers_per_instance",
                format!("{} is out of range: between 1 and 64 (a post only an inline embed can finish is lost when it fails)", e.workers_per_instance),
            ));
        }
        if !(1..=1_000).contains(&e.batch_size) {
            p.push(Problem::new("embed.batch_size", format!("{} is out of range: between 1 and 1000", e.batch_size)));
        }
        if !(100..=3_600_000).contains(&e.batch_period_ms) {
            p.push(Problem::new(
                "embed.batch_period_ms",
                format!("{} is out of range: between 100 and 3600000 ms", e.batch_period_ms),
            ));
        }
        if !(50..=60_000).contains(&e.search_every_ms) {
            p.push(Problem::new(
                "embed.search_every_ms",
                format!(
                    "{} is out of range: between 50 and 60000 ms (faster would load the servers it measures)",
                    e.search_every_ms
                ),
            ));
        }
        if !(1..=600).contains(&e.request_timeout_s) {
            p.push(Problem::new(
                "embed.request_timeout_s",
                format!("{} is out of range: between 1 and 600 seconds", e.request_timeout_s),
            ));
        }
        non_negative(p, "embed.warmup_s", e.warmup_s, "a wait must be >= 0");
        non_negative(p, "embed.drain_s", e.drain_s, "a wait must be >= 0");
    }
}

impl Rules for BookingLoad {
    fn check(&self, _: &ScenarioFile, p: &mut Vec<Problem>) {
        let b = self;
        for (field, value, max) in [
            ("booking.items", b.items, 10_000),
            ("booking.requesters", b.requesters, 10_000),
            ("booking.requests_per_item", b.requests_per_item, 1_000),
            ("booking.window_days", b.window_days, 300),
            ("booking.in_flight", b.in_flight, 1_000),
        ] {
            if !(1..=max).contains(&value) {
                p.push(Problem::new(field, format!("{value} is out of range: between 1 and {max}")));
            }
        }
        if !(1..=90).contains(&b.max_days) {
            p.push(Problem::new(
                "booking.max_days",
                format!("{} is out of range: between 1 and 90 (the longest reservation the server takes)", b.max_days),
            ));
        }
        if u64::from(b.items) * u64::from(b.requests_per_item) > 100_000 {
            p.push(Problem::new(
                "booking.requests_per_item",
                format!(
                    "items x requests_per_item = {} is above 100000 requests",
                    u64::from(b.items) * u64::from(b.requests_per_item)
                ),
            ));
        }
    }
}

impl Rules for JobsLoad {
    fn check(&self, _: &ScenarioFile, p: &mut Vec<Problem>) {
        let j = self;
        if !(1..=3_600).contains(&j.every_s) {
            p.push(Problem::new("jobs.every_s", format!("{} is out of range: between 1 and 3600 seconds", j.every_s)));
        }
        positive(p, "jobs.lease_s", j.lease_s, "a run's lease must last some time");
        non_negative(p, "jobs.warmup_s", j.warmup_s, "a wait must be >= 0");
        positive(p, "jobs.duration_s", j.duration_s, "the job must have time to fire");
        non_negative(p, "jobs.drain_s", j.drain_s, "a wait must be >= 0");
        if j.duration_s.is_finite() && j.duration_s < 2.0 * f64::from(j.every_s) {
            p.push(Problem::new(
                "jobs.duration_s",
                format!("{} s is shorter than two firings every {} s: nothing to compare", j.duration_s, j.every_s),
            ));
        }
    }
}

impl Rules for ApiLoad {
    fn check(&self, _: &ScenarioFile, p: &mut Vec<Problem>) {
        let a = self;
        for (field, value, min, max) in [
            ("api.accounts", a.accounts, 2, 10_000),
            ("api.users", a.users, 1, 1_000),
            ("api.duration_s", a.duration_s, 1, 3_600),
            ("api.items", a.items, 0, 10_000),
            ("api.request_timeout_s", a.request_timeout_s, 1, 300),
        ] {
            if !(min..=max).contains(&value) {
                p.push(Problem::new(field, format!("{value} is out of range: between {min} and {max}")));
            }
        }
        if a.friends_per_user == 0 || a.friends_per_user >= a.accounts.max(1) {
            p.push(Problem::new(
                "api.friends_per_user",
                format!(
                    "{} is out of range: between 1 and accounts - 1 ({})",
                    a.friends_per_user,
                    a.accounts.saturating_sub(1)
                ),
            ));
        }
        if let Some(rate) = a.users_per_s {
            positive(p, "api.users_per_s", rate, "goose users are started at a rate > 0");
        }
        if let Some(rate) = a.arrival_rate_per_s {
            positive(p, "api.arrival_rate_per_s", rate, "requests start at a rate > 0");
            if rate > 10_000.0 {
                p.push(Problem::new("api.arrival_rate_per_s", format!("{rate} is above 10000 requests/s")));
            } else if rate * f64::from(a.duration_s) > 1_000_000.0 {
                p.push(Problem::new(
                    "api.arrival_rate_per_s",
                    format!(
                        "{rate}/s for {} s is {} requests, above 1000000: shorten duration_s or lower the rate",
                        a.duration_s,
                        rate * f64::from(a.duration_s)
                    ),
                ));
            }
            if a.users_per_s.is_some() {
                p.push(Problem::new(
                    "api.users_per_s",
                    "applies to goose's users, not to an open loop (arrival_rate_per_s): remove one of them",
                ));
            }
            if a.think_max_ms > 0 {
                p.push(Problem::new(
                    "api.think_max_ms",
                    "an open loop (arrival_rate_per_s) has no think time: requests start on the schedule; remove it",
                ));
            }
        }
        if a.think_max_ms < a.think_min_ms {
            p.push(Problem::new(
                "api.think_max_ms",
                format!("{} is below think_min_ms ({}): the range would be empty", a.think_max_ms, a.think_min_ms),
            ));
        }
        if a.think_max_ms > 60_000 {
            p.push(Problem::new("api.think_max_ms", format!("{} is above 60000 ms", a.think_max_ms)));
        }
        if a.mix.weighted().is_empty() {
            p.push(Problem::new(
                "api.mix",
                "every weight is 0: at least one of write_diary, read_diaries, notifications, search must be > 0",
            ));
        }
        if a.mix.search > 0 && a.items == 0 {
            p.push(Problem::new(
                "api.items",
                "0 items, but api.mix.search > 0: list some items for the search to find",
            ));
        }
    }
}

impl Rules for Load {
    fn check(&self, _: &ScenarioFile, p: &mut Vec<Problem>) {
        let l = self;
        if l.users < 2 {
            p.push(Problem::new(
                "load.users",
                format!("{} is too few: at least 2 users are needed to be friends", l.users),
            ));
        }
        if l.friends_per_user == 0 || l.friends_per_user >= l.users.max(1) {
            p.push(Problem::new(
                "load.friends_per_user",
                format!(
                    "{} is out of range: between 1 and users - 1 ({})",
                    l.friends_per_user,
                    l.users.saturating_sub(1)
                ),
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
}

/// A wall-clock bound on a capacity ramp, per strategy.
const MAX_RAMP_S: f64 = 3_600.0;

impl Rules for Ramp {
    fn check(&self, s: &ScenarioFile, p: &mut Vec<Problem>) {
        let r = self;
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
                format!(
                    "{} is above {MAX_RATE_PER_S} events per second: the driver cannot cause more",
                    r.max_rate_per_s
                ),
            ));
        }
        let start = match (&s.load, &s.chat) {
            (Some(load), _) => Some(("load.rate_per_s", load.rate_per_s)),
            (None, Some(chat)) => Some(("chat.rate_per_s", chat.rate_per_s)),
            (None, None) => None,
        };
        if let Some((field, rate)) = start
            && r.max_rate_per_s.is_finite()
            && r.max_rate_per_s < rate
        {
            p.push(Problem::new(
                "ramp.max_rate_per_s",
                format!("{} is below {field} ({rate}), where the ramp starts", r.max_rate_per_s),
            ));
        }
        if !(1..=30).contains(&r.max_steps) {
            p.push(Problem::new("ramp.max_steps", format!("{} is out of range: between 1 and 30", r.max_steps)));
        }
        non_negative(p, "ramp.step_drain_s", r.step_drain_s, "a wait must be >= 0");
        positive(p, "ramp.max_p99_ms", r.max_p99_ms, "a step above this latency is not sustained");
        if r.bisect_steps > 10 {
            p.push(Problem::new(
                "ramp.bisect_steps",
                format!("{} is out of range: 0 to 10 (4 narrow a x1.5 step to within 5%)", r.bisect_steps),
            ));
        }
        if r.yardstick.is_some() && s.kind != Kind::Capacity {
            p.push(Problem::new(
                "ramp.yardstick",
                format!("applies to capacity scenarios only, not {}: remove it", s.kind),
            ));
        }
        if s.total_s() > MAX_RAMP_S {
            p.push(Problem::new(
            "ramp.max_steps",
            format!(
                "{} steps of {} s + {} s drain take {:.0} s per strategy, above {MAX_RAMP_S} s: use fewer or shorter steps",
                r.max_steps,
                s.timeline().1,
                r.step_drain_s,
                s.total_s()
            ),
        ));
        }
    }
}

/// `clients`: whether the kind has SSE clients for faults to act on.
fn fault_rules(p: &mut Vec<Problem>, s: &ScenarioFile, i: usize, f: &Fault, clients: bool) {
    let at = format!("faults[{i}].at_s");
    non_negative(p, &at, f.at_s, "a fault time counts from the start of the warm-up");
    let (warmup, duration, _) = s.timeline();
    let end = warmup + duration;
    if f.at_s >= end {
        p.push(Problem::new(
            at,
            format!(
                "{} is at or after the end of the load (warm-up {warmup} s + duration {duration} s = {end} s): a \
                 fault must happen while the load runs",
                f.at_s
            ),
        ));
    }
    let target = format!("faults[{i}].target");
    let acts_on = |action: FaultAction| {
        if action.on_all_instances() {
            "every instance in turn: use instances"
        } else if action.on_instance() {
            "a server instance: use instance:N"
        } else if action.on_clients() {
            "the run's clients (SSE streams, chat connections): use clients"
        } else if action.on_broker_node() {
            "a node of the RabbitMQ cluster: use rabbitmq:N"
        } else {
            "a service: use rabbitmq, redis or mariadb"
        }
    };
    let fits = match f.target {
        FaultTarget::Instance(_) => f.action.on_instance(),
        FaultTarget::Instances => f.action.on_all_instances(),
        FaultTarget::Clients => f.action.on_clients(),
        FaultTarget::BrokerNode(_) => f.action.on_broker_node(),
        FaultTarget::Service(_) => {
            !f.action.on_instance()
                && !f.action.on_clients()
                && !f.action.on_all_instances()
                && !f.action.on_broker_node()
        }
    };
    let what = match f.target {
        FaultTarget::Instance(_) => "an instance",
        FaultTarget::Instances => "every instance",
        FaultTarget::Clients => "the clients",
        FaultTarget::Service(_) => "a service",
        FaultTarget::BrokerNode(_) => "a RabbitMQ node",
    };
    if !fits {
        p.push(Problem::new(
            target,
            format!("`{}` is {what}, but {} acts on {}", f.target, f.action, acts_on(f.action)),
        ));
    } else if let Some(n) = f.target.instance()
        && (n == 0 || n > s.cluster.instances)
    {
        p.push(Problem::new(
            target,
            format!("instance {n} does not exist: instances are numbered 1 to {}", s.cluster.instances),
        ));
    } else if let FaultTarget::BrokerNode(n) = f.target
        && fits
        && (n == 0 || n > s.cluster.rabbitmq_nodes)
    {
        p.push(Problem::new(
            target,
            format!(
                "RabbitMQ node {n} does not exist: this scenario runs {} node(s), numbered from 1 (set [cluster] \
                 rabbitmq_nodes)",
                s.cluster.rabbitmq_nodes
            ),
        ));
    }
    if f.action.on_broker_node() && (s.cluster.runner == super::Runner::External || s.cluster.targets.is_some()) {
        p.push(Problem::new(
            format!("faults[{i}].action"),
            format!(
                "{} acts on a node of the harness's own RabbitMQ cluster, which an external deployment does not \
                 have: fault its broker with stop-service rabbitmq and its adapter",
                f.action
            ),
        ));
    }
    if f.action.on_clients() && !clients {
        p.push(Problem::new(
            format!("faults[{i}].action"),
            format!(
                "{} acts on the run's clients, which only fanout and chat scenarios have, not {} {}",
                f.action,
                article(s.kind),
                s.kind
            ),
        ));
    }
    churn_rules(p, i, f);
    if let Some(pause) = f.pause_s {
        let field = format!("faults[{i}].pause_s");
        if f.action != FaultAction::RollingRestart {
            p.push(Problem::new(field, format!("only applies to rolling-restart, not {}: remove it", f.action)));
        } else {
            non_negative(p, &field, pause, "the pause between two instances is >= 0 s");
        }
    }
    if let Some(point) = f.point {
        let field = format!("faults[{i}].point");
        if f.action != FaultAction::PauseInstance {
            p.push(Problem::new(field, format!("only applies to pause-instance, not {}: remove it", f.action)));
        } else if s.kind != Kind::Claim {
            p.push(Problem::new(
                field,
                format!(
                    "{point} is reached by embed workers, which only claim scenarios race: remove it, or use kind \
                     = \"claim\""
                ),
            ));
        }
    }
    if let Some(duration) = f.duration_s {
        let field = format!("faults[{i}].duration_s");
        non_negative(p, &field, duration, "a fault lasts >= 0 s");
        if !f.action.takes_duration() {
            p.push(Problem::new(
                field,
                format!(
                    "{} happens at once and is not undone: duration_s only applies to kill-instance, \
                     pause-instance, stop-service, pause-service, client-churn and broker-node-kill",
                    f.action
                ),
            ));
        }
    }
}

/// `every_s` and `drop_after_event` shape a `client-churn` and mean nothing elsewhere.
fn churn_rules(p: &mut Vec<Problem>, i: usize, f: &Fault) {
    let churn = f.action == FaultAction::ClientChurn;
    if let Some([min, max]) = f.every_s {
        let field = format!("faults[{i}].every_s");
        if !churn {
            p.push(Problem::new(field.clone(), format!("only applies to client-churn, not {}: remove it", f.action)));
        }
        positive(p, &field, min, "a client keeps its stream for some time between drops");
        if min.is_finite() && max.is_finite() && max < min {
            p.push(Problem::new(field.clone(), format!("[{min}, {max}] is empty: write [min, max] with min <= max")));
        }
        if max.is_finite() && max > 3_600.0 {
            p.push(Problem::new(field, format!("{max} s is above an hour between drops: no churn would happen")));
        }
    }
    if let Some(chance) = f.drop_after_event {
        let field = format!("faults[{i}].drop_after_event");
        if !churn {
            p.push(Problem::new(field.clone(), format!("only applies to client-churn, not {}: remove it", f.action)));
        }
        if !(chance.is_finite() && chance > 0.0 && chance <= 1.0) {
            p.push(Problem::new(field, format!("{chance} is out of range: a chance per event, above 0 and at most 1")));
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

fn thresholds(p: &mut Vec<Problem>, s: &ScenarioFile) {
    let listed: BTreeSet<&str> = s.strategies.iter().map(|s| s.as_str()).collect();
    for (key, t) in &s.thresholds {
        if key != ALL_STRATEGIES && !listed.contains(key.as_str()) {
            let known: Vec<&str> = s.strategies.iter().map(|s| s.as_str()).chain([ALL_STRATEGIES]).collect();
            p.push(Problem::new(
                format!("thresholds.{key}"),
                format!("`{key}` is not a strategy of this scenario: expected one of {}", known.join(", ")),
            ));
        }
        for (name, value) in t {
            let field = format!("thresholds.{key}.{name}");
            let Some(limit) = limits::find(s.kind, name) else {
                let takers = limits::kinds_taking(name);
                let problem = if takers.is_empty() {
                    format!(
                        "is not a limit {} {} scenario takes: expected one of {}",
                        article(s.kind),
                        s.kind,
                        limits::keys_for(s.kind).join(", ")
                    )
                } else {
                    let names: Vec<&str> = takers.iter().map(|k| k.as_str()).collect();
                    format!("does not apply to {} {} scenario: only to {}", article(s.kind), s.kind, names.join(", "))
                };
                p.push(Problem::new(field, problem));
                continue;
            };
            if let Some(problem) = limit.value.problem(*value) {
                p.push(Problem::new(field, problem));
            }
        }
        if let (Some(min), Some(max)) =
            (t.get("min_lost_ratio").map(|b| b.limit()), t.get("max_lost_ratio").map(|b| b.limit()))
            && min > max
        {
            p.push(Problem::new(
                format!("thresholds.{key}.min_lost_ratio"),
                format!("{min} is above max_lost_ratio {max}: no run can pass both"),
            ));
        }
    }
}

/// "a" or "an" before a kind's name in messages.
fn article(kind: Kind) -> &'static str {
    if matches!(kind, Kind::Api | Kind::Embed) { "an" } else { "a" }
}

pub(super) fn non_negative(p: &mut Vec<Problem>, field: &str, v: f64, meaning: &str) {
    if !v.is_finite() {
        p.push(Problem::new(field, format!("{v} is not a finite number: {meaning}")));
    } else if v < 0.0 {
        p.push(Problem::new(field, format!("{v} is negative: {meaning}")));
    }
}

pub(super) fn positive(p: &mut Vec<Problem>, field: &str, v: f64, meaning: &str) {
    if !v.is_finite() {
        p.push(Problem::new(field, format!("{v} is not a finite number: {meaning}")));
    } else if v < 0.0 {
        p.push(Problem::new(field, format!("{v} is negative: {meaning}")));
    } else if v == 0.0 {
        p.push(Problem::new(field, format!("{v} is zero: {meaning}")));
    }
}
