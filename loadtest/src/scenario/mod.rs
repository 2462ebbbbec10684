//! Scenario files (`scenarios/*.toml`): the schema, parsed into types and validated before
//! anything runs. `scenarios/README.md` documents every field.
//!
//! A scenario that loads is runnable: every rule a runner would otherwise trip over mid-run
//! (a fault after the end, `instance:4` of three, a threshold for a strategy not compared) is
//! refused here, with the file, the field path and what is wrong.

mod error;
mod kinds;
mod sections;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use error::{Problem, ScenarioError};
pub use kinds::{FaultAction, FaultTarget, Kind, Reconnect, Spread, Strategy, UnknownValue};
pub use sections::{ApiLoad, ApiMix, BookingLoad, ClaimLoad, JobsLoad};

/// One scenario: what runs, under which load and faults, and what makes it fail.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
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
    /// Server processes, 1..=16.
    pub instances: u32,
    /// Extra environment for every instance, on top of what the runner sets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server_env: BTreeMap<String, String>,
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
}

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
}

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

/// Limits that fail a run. Absent limits pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lost: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duplicated: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unexpected: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stored_twice: Option<u64>,
    /// A client received one notification id more than once: a browser shows it twice
    /// unless the page de-duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_same_id_twice: Option<u64>,
    /// A client received a new event whose id is below one it had already been sent: a
    /// client that resumes from the last id it holds would skip what is still below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_inversions: Option<u64>,
    /// Streams resumed with `Last-Event-ID` must be at least this many: proves a churn or a
    /// fault really exercised the resume path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_resumes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_delivered_per_s: Option<f64>,
    /// For baselines expected to lose (`local`): lost / expected must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lost_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lost_ratio: Option<f64>,
    /// Capacity runs: the highest sustained step must have delivered at least this many
    /// notifications per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sustained_delivered_per_s: Option<f64>,
    /// Claim runs: (post, content version) pairs committed more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_double_processed: Option<u64>,
    /// Claim runs expected to double-process (`naive`): proves the ledger can see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_double_processed: Option<u64>,
    /// Claim runs: posts not DONE after the drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stuck: Option<u64>,
    /// Claim runs: posts embedded per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items_per_s: Option<f64>,
    /// Booking runs: pairs of approved reservations of one item whose dates overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_overlaps: Option<u64>,
    /// Jobs runs: scheduled firings with no run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_missed_firings: Option<u64>,
    /// Jobs runs: firings that ran more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_double_firings: Option<u64>,
    /// Jobs runs: the longest time between two consecutive runs, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gap_s: Option<f64>,
    /// API runs: failed requests / requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_ratio: Option<f64>,
    /// API runs: requests per second over all endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests_per_s: Option<f64>,
}

impl Thresholds {
    /// Each limit of `specific` that is set, else the one of `self`.
    pub fn overridden_by(self, specific: Thresholds) -> Thresholds {
        Thresholds {
            max_lost: specific.max_lost.or(self.max_lost),
            max_duplicated: specific.max_duplicated.or(self.max_duplicated),
            max_unexpected: specific.max_unexpected.or(self.max_unexpected),
            max_stored_twice: specific.max_stored_twice.or(self.max_stored_twice),
            max_same_id_twice: specific.max_same_id_twice.or(self.max_same_id_twice),
            max_inversions: specific.max_inversions.or(self.max_inversions),
            min_resumes: specific.min_resumes.or(self.min_resumes),
            max_p99_ms: specific.max_p99_ms.or(self.max_p99_ms),
            min_delivered_per_s: specific.min_delivered_per_s.or(self.min_delivered_per_s),
            min_lost_ratio: specific.min_lost_ratio.or(self.min_lost_ratio),
            max_lost_ratio: specific.max_lost_ratio.or(self.max_lost_ratio),
            min_sustained_delivered_per_s: specific
                .min_sustained_delivered_per_s
                .or(self.min_sustained_delivered_per_s),
            max_double_processed: specific.max_double_processed.or(self.max_double_processed),
            min_double_processed: specific.min_double_processed.or(self.min_double_processed),
            max_stuck: specific.max_stuck.or(self.max_stuck),
            min_items_per_s: specific.min_items_per_s.or(self.min_items_per_s),
            max_overlaps: specific.max_overlaps.or(self.max_overlaps),
            max_missed_firings: specific.max_missed_firings.or(self.max_missed_firings),
            max_double_firings: specific.max_double_firings.or(self.max_double_firings),
            max_gap_s: specific.max_gap_s.or(self.max_gap_s),
            max_error_ratio: specific.max_error_ratio.or(self.max_error_ratio),
            min_requests_per_s: specific.min_requests_per_s.or(self.min_requests_per_s),
        }
    }
}

/// The key of `[thresholds.all]`, whose limits apply to every strategy.
pub const ALL_STRATEGIES: &str = "all";

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
        let scenario: Scenario = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            ScenarioError::from_toml(origin, text, path, e.into_inner())
        })?;
        let problems = validate::problems(&scenario);
        if problems.is_empty() {
            Ok(scenario)
        } else {
            Err(ScenarioError::Invalid { origin: origin.to_string(), problems })
        }
    }

    /// How long one strategy's run takes at most, in seconds, start-up aside: warm-up +
    /// duration + drain, or for a capacity ramp, warm-up + every step with its drain. A booking
    /// run is bounded by its counts, not by a clock: 0.
    pub fn total_s(&self) -> f64 {
        let (warmup, duration, drain) = self.timeline();
        match (&self.ramp, &self.load) {
            (Some(ramp), Some(load)) => warmup + f64::from(ramp.max_steps) * (load.duration_s + ramp.step_drain_s),
            _ => warmup + duration + drain,
        }
    }

    /// (warm-up, duration, drain) of the section the kind reads; zeros when it is missing
    /// (validation reports that).
    pub fn timeline(&self) -> (f64, f64, f64) {
        match self.kind {
            Kind::Fanout | Kind::Capacity => self.load.as_ref().map(|l| (l.warmup_s, l.duration_s, l.drain_s)),
            Kind::Claim => self.claim.as_ref().map(|c| (c.warmup_s, c.duration_s, c.drain_s)),
            Kind::Jobs => self.jobs.as_ref().map(|j| (j.warmup_s, j.duration_s, j.drain_s)),
            Kind::Api => self.api.as_ref().map(|a| (0.0, f64::from(a.duration_s), 0.0)),
            Kind::Booking => None,
        }
        .unwrap_or((0.0, 0.0, 0.0))
    }

    /// The `[load]` section of a fanout or capacity scenario.
    pub fn fanout_load(&self) -> anyhow::Result<&Load> {
        self.load.as_ref().ok_or_else(|| anyhow::anyhow!("scenario {}: kind {} needs [load]", self.name, self.kind))
    }

    /// The limits for `strategy`: `[thresholds.all]`, each overridden by the strategy's own.
    pub fn thresholds_for(&self, strategy: &str) -> Thresholds {
        let all = self.thresholds.get(ALL_STRATEGIES).copied().unwrap_or_default();
        match self.thresholds.get(strategy) {
            Some(specific) => all.overridden_by(*specific),
            None => all,
        }
    }
}

fn default_seed() -> u64 {
    1
}

fn default_spread() -> Spread {
    Spread::RoundRobin
}

fn default_warmup_s() -> f64 {
    3.0
}

fn default_drain_s() -> f64 {
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
