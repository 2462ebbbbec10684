//! The kind-specific sections of a scenario besides `[load]`: `[claim]`, `[booking]`, `[jobs]`,
//! `[api]` and `[embed]`. Each kind reads exactly one of them; validation refuses the others.

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

/// `kind = "api"`: goose drives virtual users through the REST API of every instance (write
/// a diary, read friends' diaries, read notifications, search rentals) for `duration_s`, and
/// the report gives requests per second, failures and latency per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiLoad {
    /// Accounts signed up (with a seeded friend graph) before goose starts.
    pub accounts: u32,
    #[serde(default = "default_api_friends")]
    pub friends_per_user: u32,
    /// Goose users (concurrent virtual users); user k logs in as account k mod `accounts`
    /// and talks to instance k mod `instances`.
    pub users: u32,
    /// Goose users started per second (goose's `--increase-rate`); metrics are reset once
    /// all are running, so the start-up is not measured. Default: all in one second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_per_s: Option<f64>,
    /// Whole seconds of measured load (goose's `--run-time`).
    pub duration_s: u32,
    /// Think time between two transactions of one user, drawn from this range.
    #[serde(default)]
    pub think_min_ms: u64,
    #[serde(default)]
    pub think_max_ms: u64,
    #[serde(default)]
    pub mix: ApiMix,
    /// Rental items listed before the run, for the search transaction to find.
    #[serde(default = "default_api_items")]
    pub items: u32,
    /// A request slower than this fails (goose's `--timeout`).
    #[serde(default = "default_request_timeout_s")]
    pub request_timeout_s: u32,
    /// Open loop: requests started per second on a fixed schedule instead of goose's closed
    /// loop of users; `users` is then the most requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_rate_per_s: Option<f64>,
}

/// Relative weights of the transactions of an API run; 0 leaves one out.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiMix {
    /// `POST /diaries`: notifies the writer's friends through the strategy compared.
    #[serde(default)]
    pub write_diary: u32,
    /// `GET /diaries?scope=friends`.
    #[serde(default)]
    pub read_diaries: u32,
    /// `GET /notifications`.
    #[serde(default)]
    pub notifications: u32,
    /// `GET /rentals/search?q=…`: vector search (the hashing embedder) with the text fallback.
    #[serde(default)]
    pub search: u32,
}

impl Default for ApiMix {
    fn default() -> Self {
        Self { write_diary: 1, read_diaries: 3, notifications: 2, search: 1 }
    }
}

impl ApiMix {
    /// (goose transaction name, weight) of every transaction with a weight above 0.
    pub fn weighted(&self) -> Vec<(&'static str, u32)> {
        [
            ("write_diary", self.write_diary),
            ("read_diaries", self.read_diaries),
            ("notifications", self.notifications),
            ("search", self.search),
        ]
        .into_iter()
        .filter(|(_, w)| *w > 0)
        .collect()
    }
}

/// `kind = "embed"`: rental posts written through the API at a steady rate, an open loop (each
/// post is sent at its time, whatever the earlier ones are doing), while the embedder takes
/// `embed_delay_ms` per call. The strategy says whether `POST /rentals` embeds the post before
/// answering (`inline`) or the claim workers do it after (`batch`). Measured: the POST's latency
/// from its intended start, and the time from that start until `GET /rentals/search` finds the
/// post by meaning.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedLoad {
    /// Posts per second over all instances (round robin).
    pub posts_per_s: f64,
    /// Seconds of posting.
    pub duration_s: f64,
    /// Added to every embed call of a post (`SERVER_EMBED_DELAY_MS`): the seed saw 3-5 s per
    /// post. Search queries are embedded without it.
    pub embed_delay_ms: u64,
    /// Users writing the posts.
    #[serde(default = "default_owners")]
    pub owners: u32,
    /// Claim workers per instance (`SERVER_EMBED_WORKERS`); in `inline` they embed only what
    /// an inline embed failed to.
    #[serde(default = "default_embed_workers")]
    pub workers_per_instance: u32,
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// The batch period: how often the `embed-posts` job wakes the workers
    /// (`SERVER_JOB_EMBED_SCHEDULE`).
    #[serde(default = "default_batch_period_ms")]
    pub batch_period_ms: u64,
    /// How often a post not found by meaning yet is searched for again.
    #[serde(default = "default_search_every_ms")]
    pub search_every_ms: u64,
    #[serde(default = "default_embed_warmup_s")]
    pub warmup_s: f64,
    /// After the last post, how long posts get to become searchable; one not found by then is
    /// unsearchable.
    #[serde(default = "default_embed_drain_s")]
    pub drain_s: f64,
    /// A POST slower than this fails.
    #[serde(default = "default_embed_request_timeout_s")]
    pub request_timeout_s: u32,
}

impl EmbedLoad {
    /// Posts the run writes.
    pub fn posts(&self) -> u64 {
        (self.posts_per_s * self.duration_s).round() as u64
    }
}

fn default_embed_workers() -> u32 {
    1
}

fn default_batch_period_ms() -> u64 {
    1_000
}

fn default_search_every_ms() -> u64 {
    250
}

fn default_embed_warmup_s() -> f64 {
    1.0
}

fn default_embed_drain_s() -> f64 {
    30.0
}

fn default_embed_request_timeout_s() -> u32 {
    30
}

fn default_api_friends() -> u32 {
    4
}

fn default_api_items() -> u32 {
    50
}

fn default_request_timeout_s() -> u32 {
    10
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
