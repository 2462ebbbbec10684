//! Scenario files (`scenarios/*.toml`): the schema, parsed into types and validated before
//! anything runs. `scenarios/README.md` documents every field.
//!
//! A scenario that loads is runnable: every rule a runner would otherwise trip over mid-run
//! (a fault after the end, `instance:4` of three, a threshold for a strategy not compared) is
//! refused here, with the file, the field path and what is wrong.
//!
//! The file is read as a [`ScenarioFile`] (every section optional), validated, and turned into
//! a [`Scenario`] whose [`Workload`] is one variant per kind, holding that kind's section and
//! its own strategy enum: a runner is handed exactly what it reads.
//!
//! # Adding a kind
//!
//! Everything a kind knows about itself lives in its own files; outside them it is named in
//! three places, and the compiler points at each once the first exists:
//!
//! 1. `kinds.rs`: its [`Kind`] value (and, if it compares new strategies, their [`Strategy`]
//!    values and a `strategies_of!` enum: which kinds compare a strategy follows from it).
//! 2. `scenario/<kind>.rs`: its section type, its [`Section`] impl (the sections it reads, its
//!    timeline, whether faults apply, its strategy enum) and its `validate::Rules` impl; then
//!    one line in the `workloads!` list of `workload.rs`, which makes the [`Workload`] variant
//!    and every dispatch from the kind to its section type. A new section is also a field of
//!    [`ScenarioFile`] (listed in `ScenarioFile::sections`): the file's schema is declared in
//!    one struct, so the parser refuses unknown keys and names their line.
//! 3. `run/<kind>.rs`: the runner, taking its section and one strategy (read-only SQL in
//!    `run/truth.rs`); one arm in `run::run`.
//! 4. `report/kinds/<kind>.rs`: its view (tables, charts, invariant violations) and its
//!    limits, which validation and judging both read; one arm in `columns::view`. Its counts
//!    are a field of `StrategyResult`, the wire struct of `report.json`, declared in one place
//!    because it is the users' contract (add fields, never rename them).
//! 5. `scenarios/<name>.toml` and `scenarios/ci/<name>.toml`, documented in
//!    `scenarios/README.md`, and the CI variant run by `server/tests/scenarios.rs`.

mod chat;
mod error;
mod kinds;
mod sections;
mod validate;
mod workload;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use chat::{ChatLoad, ChatSection};
pub use error::{Problem, ScenarioError};
pub use kinds::{
    BookingMode, ClaimMode, Delivery, EmbedPath, FaultAction, FaultTarget, JobsMode, Kind, PausePoint, Reconnect,
    Relay, Spread, Strategy, UnknownValue,
};
pub use sections::{ApiLoad, ApiMix, BookingLoad, ClaimLoad, EmbedLoad, JobsLoad};
pub use workload::{CapacitySection, FanoutSection, Faults, Plan, Section, Workload};

/// A scenario file as written: every kind's section optional, strategies by name. Validation
/// checks it; [`Scenario::parse`] turns it into a [`Scenario`] whose [`Workload`] holds
/// exactly its kind's section and strategies.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// `[a-z0-9-]+`; names the report directory and the JUnit suite.
    pub name: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seeds the friend graph, the event choice and the instance choice, so a run reproduces.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Compared in this order, each in its own run of the same load and faults.
    pub strategies: Vec<Strategy>,
    pub cluster: Cluster,
    /// fanout and capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<Load>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimLoad>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking: Option<BookingLoad>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobsLoad>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiLoad>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatLoad>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<EmbedLoad>,
    /// Only for `kind = "capacity"`: how the rate rises from `load.rate_per_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
    /// Keyed by strategy name or `all`; see [`Scenario::thresholds_for`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub thresholds: BTreeMap<String, Thresholds>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Server instances, 1..=16.
    pub instances: u32,
    /// Extra environment for every instance, on top of what the runner sets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server_env: BTreeMap<String, String>,
    /// Who runs the instances: the harness (`process`, the default) or a deployment named by
    /// a targets file (`external`).
    #[serde(default, skip_serializing_if = "Runner::is_process")]
    pub runner: Runner,
    /// The targets file of `runner = "external"`, relative to the scenario file (or
    /// `loadtest run --targets FILE`, which also selects `external`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<std::path::PathBuf>,
    /// RabbitMQ nodes, clustered (1..=5; 1: a single broker). The instances get every node's
    /// URL and `broker-node-kill` faults act on one of them (`rabbitmq:N`).
    #[serde(default = "one_node", skip_serializing_if = "is_one_node")]
    pub rabbitmq_nodes: u32,
}

fn one_node() -> u32 {
    1
}

fn is_one_node(n: &u32) -> bool {
    *n == 1
}

/// The largest RabbitMQ cluster a scenario may ask for (each node is a container of ~150 MiB).
pub const MAX_RABBITMQ_NODES: u32 = 5;

/// Who runs a scenario's server instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runner {
    /// The harness starts the `server` binary as processes on this machine.
    #[default]
    Process,
    /// A deployment the harness did not start, reached and controlled through a targets file.
    External,
}

impl Runner {
    fn is_process(&self) -> bool {
        *self == Runner::Process
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    pub users: u32,
    /// Random friends per user (undirected, seeded); a diary notifies its writer's friends.
    pub friends_per_user: u32,
    /// Users that hold an SSE stream, one client each.
    pub sse_clients: u32,
    #[serde(default = "default_spread")]
    pub spread: Spread,
    /// Causing events per second, over all instances.
    pub rate_per_s: f64,
    #[serde(default)]
    pub mix: Mix,
    /// How long events are caused, after the warm-up.
    pub duration_s: f64,
    /// Clients connect; no events are caused yet.
    #[serde(default = "default_warmup_s")]
    pub warmup_s: f64,
    /// Wait after the last event before anything not received counts as lost.
    #[serde(default = "default_drain_s")]
    pub drain_s: f64,
    #[serde(default = "default_reconnect")]
    pub reconnect: Reconnect,
    /// A hard cap on events caused, so the load loop is bounded whatever the rate.
    #[serde(default = "default_max_events")]
    pub max_events: u64,
}

/// Relative weights of the events caused: a diary notifies the writer's friends, a comment
/// notifies the diary's owner.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default)]
    pub diary: f64,
    #[serde(default)]
    pub comment: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Self { diary: 0.7, comment: 0.3 }
    }
}

impl Mix {
    /// The share of diaries among events caused, in 0..=1.
    pub fn diary_share(&self) -> f64 {
        self.diary / (self.diary + self.comment)
    }
}

/// A capacity ramp: steps of `load.duration_s` each, the first at `load.rate_per_s`, each
/// next one `factor` times faster, until a step loses a notification, its p99 passes
/// `max_p99_ms`, the driver cannot offer the rate, or `max_rate_per_s` / `max_steps` is reached.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    pub factor: f64,
    pub max_rate_per_s: f64,
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Wait after each step before its missing notifications count as lost.
    #[serde(default = "default_step_drain_s")]
    pub step_drain_s: f64,
    /// A step whose delivery p99 is above this is not sustained, even without loss.
    pub max_p99_ms: f64,
    /// Keep ramping after the first step that is not sustained (a strategy that loses at every
    /// rate, like `local`, is then still measured at each rate).
    #[serde(default)]
    pub continue_after_failure: bool,
    /// After the first step not sustained, at most this many steps halve the gap between the
    /// last sustained rate and it, until the gap is within 5% of the sustained rate: the x1.5
    /// steps alone cannot tell apart strategies within 30% of each other.
    #[serde(default = "default_bisect_steps")]
    pub bisect_steps: u32,
    /// Capacity runs: also ramp one instance with `local` delivery (nothing crosses an
    /// instance, nothing is lost), the yardstick that each strategy's ceiling is a share of.
    /// Default: true for capacity; chat takes no yardstick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yardstick: Option<bool>,
}

fn default_bisect_steps() -> u32 {
    4
}

/// How close to the limit a bisection gets: the gap between the sustained rate and the next
/// one that failed, as a share of the sustained one.
pub const BISECT_PRECISION: f64 = 0.05;

/// One fault, at a time measured from the start of the warm-up.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub at_s: f64,
    pub action: FaultAction,
    pub target: FaultTarget,
    /// Undo the fault after this long (restart, resume, start, unpause); see
    /// [`FaultAction::undo`]. Absent: the fault stays until another fault undoes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// `client-churn` only: each client drops its stream once every `[min, max]` seconds (drawn
    /// uniformly, seeded) while the churn lasts. The default, when `drop_after_event` is not
    /// given either, is `[2, 8]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_s: Option<[f64; 2]>,
    /// `client-churn` only: the chance that a client drops its stream right after an event
    /// arrives, so that it resumes with that event's id while later ones are in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_after_event: Option<f64>,
    /// `rolling-restart` only: seconds between one instance being ready again and the next
    /// one's SIGTERM (default [`DEFAULT_ROLLING_PAUSE_S`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_s: Option<f64>,
    /// `pause-instance` only (claim scenarios): at `at_s` the instance's pause point is armed,
    /// and it stops itself when one of its workers reaches that point; `duration_s` counts
    /// from then. Absent: SIGSTOP at `at_s`, wherever the instance is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<PausePoint>,
}

/// The pause between two instances of a `rolling-restart` when it names none.
pub const DEFAULT_ROLLING_PAUSE_S: f64 = 2.0;

/// What a `client-churn` fault asks of every SSE client while it lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    /// Drop the stream once every `min..=max` seconds (uniform); `None`: not on a timer.
    pub every_s: Option<(f64, f64)>,
    /// Drop the stream right after an event with this chance (0: never).
    pub drop_after_event: f64,
}

/// The churn period when a `client-churn` fault names neither `every_s` nor `drop_after_event`.
pub const DEFAULT_CHURN_EVERY_S: [f64; 2] = [2.0, 8.0];

impl Fault {
    /// The churn this fault starts; `None` unless it is a `client-churn`.
    pub fn churn(&self) -> Option<Churn> {
        if self.action != FaultAction::ClientChurn {
            return None;
        }
        let every = match (self.every_s, self.drop_after_event) {
            (Some([min, max]), _) => Some((min, max)),
            (None, Some(_)) => None,
            (None, None) => Some((DEFAULT_CHURN_EVERY_S[0], DEFAULT_CHURN_EVERY_S[1])),
        };
        Some(Churn { every_s: every, drop_after_event: self.drop_after_event.unwrap_or(0.0) })
    }
}

/// Limits that fail a run, by key (`max_lost = 0`); absent limits pass. Which keys a kind
/// accepts and how a result is judged is its view's list ([`crate::report::limits::of`]).
pub type Thresholds = BTreeMap<String, Bound>;

/// The value of one limit: a number (`max_lost = 0`), or for a windowed limit a table
/// (`max_p99_ms_window = { window_s = 5, max = 200 }`: the worst 5-second window must pass).
/// Which form a key takes is its limit's [`Value`](crate::report::limits::Value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Number(f64),
    Window { window_s: f64, max: f64 },
}

impl Bound {
    /// The limit itself: the number, or a window's `max`.
    pub fn limit(self) -> f64 {
        match self {
            Bound::Number(v) | Bound::Window { max: v, .. } => v,
        }
    }
}

impl Serialize for Bound {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match *self {
            Bound::Number(v) => s.serialize_f64(v),
            Bound::Window { window_s, max } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("window_s", &window_s)?;
                m.serialize_entry("max", &max)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Bound {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Bound;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, or for a windowed limit a table such as { window_s = 5, max = 200 }")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Bound, E> {
                Ok(Bound::Number(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Bound, E> {
                Ok(Bound::Number(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Bound, E> {
                Ok(Bound::Number(v as f64))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Bound, A::Error> {
                use serde::de::Error;
                let (mut window_s, mut max) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "window_s" => window_s = Some(map.next_value::<Number>()?.0),
                        "max" => max = Some(map.next_value::<Number>()?.0),
                        other => {
                            return Err(A::Error::custom(format!(
                                "unknown key `{other}` in a window: expected window_s and max"
                            )));
                        }
                    }
                }
                match (window_s, max) {
                    (Some(window_s), Some(max)) => Ok(Bound::Window { window_s, max }),
                    (None, _) => Err(A::Error::custom("a window needs `window_s`, its length in seconds")),
                    (_, None) => Err(A::Error::custom("a window needs `max`, the limit every window must pass")),
                }
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A TOML number, integer or float.
struct Number(f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Bound::deserialize(d)? {
            Bound::Number(v) => Ok(Number(v)),
            Bound::Window { .. } => Err(serde::de::Error::custom("expected a number, found a table")),
        }
    }
}

/// The key of `[thresholds.all]`, whose limits apply to every strategy.
pub const ALL_STRATEGIES: &str = "all";

/// One scenario, validated: what runs, under which load and faults, and what makes it fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// `[a-z0-9-]+`; names the report directory and the JUnit suite.
    pub name: String,
    pub description: Option<String>,
    /// Seeds the friend graph, the event choice and the instance choice, so a run reproduces.
    pub seed: u64,
    pub cluster: Cluster,
    pub workload: Workload,
    pub faults: Vec<Fault>,
    /// Keyed by strategy name or `all`; see [`Scenario::thresholds_for`].
    pub thresholds: BTreeMap<String, Thresholds>,
    /// How long one strategy's run takes at most, in seconds (see [`ScenarioFile::total_s`]).
    total_s: f64,
    /// (warm-up, duration, drain) of its sections (see [`ScenarioFile::timeline`]).
    timeline: (f64, f64, f64),
}

impl Scenario {
    /// Reads, parses and validates a scenario file; errors name `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::Read { origin: origin.clone(), cause: e.to_string() })?;
        Self::parse(&text, &origin)
    }

    /// Parses and validates scenario text; `origin` names it in errors (usually the path).
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| ScenarioError::from_toml(origin, text, String::new(), e))?;
        let file: ScenarioFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            ScenarioError::from_toml(origin, text, path, e.into_inner())
        })?;
        let problems = validate::problems(&file);
        if !problems.is_empty() {
            return Err(ScenarioError::Invalid { origin: origin.to_string(), problems });
        }
        let (total_s, timeline) = (file.total_s(), file.timeline());
        let workload = Workload::from_file(&file)
            .map_err(|p| ScenarioError::Invalid { origin: origin.to_string(), problems: vec![p] })?;
        Ok(Scenario {
            name: file.name,
            description: file.description,
            seed: file.seed,
            cluster: file.cluster,
            workload,
            faults: file.faults,
            thresholds: file.thresholds,
            total_s,
            timeline,
        })
    }

    pub fn kind(&self) -> Kind {
        self.workload.kind()
    }

    /// The strategies compared, in order, by name.
    pub fn strategies(&self) -> Vec<Strategy> {
        self.workload.strategies()
    }

    /// How long one strategy's run takes at most, in seconds, start-up aside.
    pub fn total_s(&self) -> f64 {
        self.total_s
    }

    /// (warm-up, duration, drain) in seconds: the load runs from warm-up to warm-up + duration
    /// on the run's clock.
    pub fn timeline(&self) -> (f64, f64, f64) {
        self.timeline
    }

    /// The limits for `strategy`: `[thresholds.all]`, each overridden by the strategy's own.
    pub fn thresholds_for(&self, strategy: &str) -> Thresholds {
        let mut limits = self.thresholds.get(ALL_STRATEGIES).cloned().unwrap_or_default();
        if let Some(specific) = self.thresholds.get(strategy) {
            limits.extend(specific.iter().map(|(k, v)| (k.clone(), *v)));
        }
        limits
    }
}

impl ScenarioFile {
    /// How long one strategy's run takes at most, in seconds, start-up aside: warm-up +
    /// duration + drain, or for a capacity ramp, warm-up + every step with its drain; 0 when
    /// the kind's sections are missing (validation reports that).
    pub fn total_s(&self) -> f64 {
        (workload::facts(self.kind).timeline)(self).map_or(0.0, |(_, total)| total)
    }

    /// (warm-up, duration, drain) of the sections the kind reads; zeros when they are missing
    /// (validation reports that).
    pub fn timeline(&self) -> (f64, f64, f64) {
        (workload::facts(self.kind).timeline)(self).map_or((0.0, 0.0, 0.0), |(timeline, _)| timeline)
    }

    /// Every optional section of the file by name, with its rules when present.
    fn sections(&self) -> [(&'static str, Option<&dyn validate::Rules>); 8] {
        fn rules<T: validate::Rules>(section: &Option<T>) -> Option<&dyn validate::Rules> {
            section.as_ref().map(|s| s as &dyn validate::Rules)
        }
        [
            ("load", rules(&self.load)),
            ("ramp", rules(&self.ramp)),
            ("claim", rules(&self.claim)),
            ("booking", rules(&self.booking)),
            ("jobs", rules(&self.jobs)),
            ("api", rules(&self.api)),
            ("chat", rules(&self.chat)),
            ("embed", rules(&self.embed)),
        ]
    }
}

fn default_seed() -> u64 {
    1
}

pub(super) fn default_spread() -> Spread {
    Spread::RoundRobin
}

pub(super) fn default_warmup_s() -> f64 {
    3.0
}

pub(super) fn default_drain_s() -> f64 {
    5.0
}

fn default_reconnect() -> Reconnect {
    Reconnect::LastEventId
}

fn default_max_steps() -> u32 {
    8
}

fn default_step_drain_s() -> f64 {
    3.0
}

fn default_max_events() -> u64 {
    1_000_000
}
