//! The kind-specific sections of a scenario besides `[load]`: `[claim]`, `[booking]` and
//! `[jobs]`. Each kind reads exactly one of them; validation refuses the others.

use serde::{Deserialize, Serialize};

/// `kind = "claim"`: rental posts created through the API, then embedded by
/// `workers_per_instance` workers on every instance, racing under the strategy compared.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimLoad {
    /// Posts to embed, created before the workers start.
    pub posts: u32,
    /// Users owning the posts (created through the API).
    #[serde(default = "default_owners")]
    pub owners: u32,
    pub workers_per_instance: u32,
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// A claim older than this may be taken over: its worker is presumed dead.
    pub lease_s: f64,
    /// Time each embed call takes on top of the embedder's own (models a real model's cost,
    /// and widens the window between claim and commit that races hit).
    #[serde(default)]
    pub embed_delay_ms: u64,
    /// Share of embed calls that fail (a transient error: the post goes back to WAIT).
    #[serde(default)]
    pub embed_fail_rate: f64,
    /// Workers start after this; faults count from 0 like every kind.
    #[serde(default = "default_claim_warmup_s")]
    pub warmup_s: f64,
    /// The longest the workers get to finish every post (the run ends earlier when they do
    /// and every fault has happened).
    pub duration_s: f64,
    /// Waited after the end before posts that are not DONE count as stuck.
    #[serde(default = "default_drain_s")]
    pub drain_s: f64,
}

/// `kind = "booking"`: requesters ask for the same items on overlapping dates; then every
/// request is approved at once, spread over the instances.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BookingLoad {
    pub items: u32,
    /// Users requesting reservations (the items' owners are created apart).
    pub requesters: u32,
    pub requests_per_item: u32,
    /// Start dates fall within this many days from tomorrow.
    pub window_days: u32,
    /// Each reservation lasts 1..=max_days days.
    pub max_days: u32,
    /// Approvals in flight at once, over all instances.
    #[serde(default = "default_in_flight")]
    pub in_flight: u32,
}

/// `kind = "jobs"`: the `heartbeat` job fires every `every_s` seconds while instances are
/// killed and restarted; each firing must run once and none may be skipped for long.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobsLoad {
    /// Whole seconds between firings.
    pub every_s: u32,
    /// A run whose instance died is taken over after this long.
    pub lease_s: f64,
    #[serde(default = "default_jobs_warmup_s")]
    pub warmup_s: f64,
    pub duration_s: f64,
    #[serde(default = "default_drain_s")]
    pub drain_s: f64,
}

fn default_owners() -> u32 {
    10
}

fn default_batch_size() -> u32 {
    32
}

fn default_claim_warmup_s() -> f64 {
    1.0
}

fn default_jobs_warmup_s() -> f64 {
    2.0
}

fn default_drain_s() -> f64 {
    5.0
}

fn default_in_flight() -> u32 {
    64
}
