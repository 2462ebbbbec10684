//! The outcome of a run, as files: `report.json` (the contract CI parses), `report.md`,
//! `report.html` (self-contained, inline SVG charts, no scripts) and `junit.xml`.
//!
//! Field names of [`RunReport`] and everything inside it are a public schema: rename nothing,
//! only add fields.

mod charts;
pub mod columns;
pub mod database;
mod html;
mod junit;
pub mod kinds;
pub mod limits;
pub mod machine;
mod markdown;
pub mod recovery;
pub mod spread;
mod summary;
pub mod table;
pub mod text;
pub mod thresholds;
pub mod window;

#[cfg(test)]
pub(crate) mod tests;

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ledger::LedgerSummary;
pub use crate::ledger::Percentiles;
use crate::scenario::Kind;

/// One scenario run: every strategy compared, the faults injected, the thresholds judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub scenario: String,
    pub kind: Kind,
    pub instances: u32,
    /// Wall-clock seconds of the whole run, all strategies.
    pub duration_s: f64,
    /// Every threshold passed and the run itself did not fail.
    pub passed: bool,
    /// RFC 3339.
    pub started_at: String,
    /// The command line that produced this report, so it can be run again.
    pub command: String,
    /// Which images ran RabbitMQ, Redis and MariaDB: official, debian or external.
    pub image_set: String,
    pub faults: Vec<FaultRecord>,
    pub thresholds: Vec<ThresholdResult>,
    pub results: Vec<StrategyResult>,
    /// Measurements that put the results in context, e.g. the raw broker fan-out rate
    /// measured in the same run. Free-form.
    pub baseline: Option<serde_json::Value>,
    /// External runs: the targets file the instances were named by (none: the harness ran
    /// them as processes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<String>,
    /// `--repeat N`: every round's results, the first being `results` (whose `passed` says
    /// whether the strategy passed in every round). Empty for one run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repeats: Vec<Vec<StrategyResult>>,
    /// `--repeat N`: each strategy's figures over the rounds: median, min, max.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<spread::Spread>,
    /// The load generators' own CPU: one per shard of a merged run. A saturated one is
    /// flagged: its latencies describe the generator, not the system under test.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generators: Vec<Generator>,
}

/// One load generator (a shard's machine) and its CPU over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    pub name: String,
    pub cpu: crate::run::cpu::CpuProfile,
}

/// A fault as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Seconds since the strategy run's start (the start of its warm-up).
    pub at_s: f64,
    pub action: String,
    pub target: String,
    /// The strategy whose run it happened in.
    pub strategy: String,
    /// `ok`, or what went wrong injecting it.
    pub outcome: String,
    /// External runs: the adapter command that injected it, its exit status and output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<crate::cluster::AdapterRun>,
    /// What the step measured, e.g. `exited 0.4 s after SIGTERM, ready again after 2.1 s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One limit judged against one strategy's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// `<strategy>.<limit>`, e.g. `rabbitmq.max_lost`.
    pub name: String,
    pub strategy: String,
    pub passed: bool,
    /// The measured value against the limit, e.g. `lost 3 > 0`.
    pub detail: String,
}

/// One strategy's run, counted by the ledger (see [`crate::ledger`] for the definitions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyResult {
    pub strategy: String,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub misrouted: u64,
    /// Receipts for causes whose request failed or timed out for the driver but committed
    /// (found by SQL after the run): neither expected nor unexpected.
    #[serde(default)]
    pub indeterminate: u64,
    /// The old name of `same_id_twice`, kept for readers of earlier reports.
    pub redelivered_same_id: u64,
    /// Receipts of a notification id the same client had already received: a browser shows
    /// it twice unless the page de-duplicates.
    #[serde(default)]
    pub same_id_twice: u64,
    /// New notifications received below an event id the client had already been sent: each
    /// is a loss for a client that resumes at the wrong moment (see [`crate::ledger`]).
    #[serde(default)]
    pub inversions: u64,
    /// Streams reopened with `Last-Event-ID` (after a churn drop, a broken stream or a dead
    /// instance).
    #[serde(default)]
    pub resumes: u64,
    /// Streams of `reconnect = "browser"` clients ended for good by an answer other than 200,
    /// as a browser's `EventSource` ends: what they miss afterwards is lost.
    #[serde(default)]
    pub given_up: u64,
    /// A run merged from shards: deliveries caused on one load machine and received on
    /// another, counted but not timed (two clocks).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cross_shard: u64,
    /// (recipient, cause) pairs stored as more than one row, from SQL after the run.
    pub stored_twice: u64,
    /// Notification runs: causing requests that failed for the driver (nothing is expected
    /// of them), after any retries.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_requests: u64,
    /// Notification runs: causing requests sent again to another instance because the first
    /// refused the connection or closed it before any answer (shutting down or dead), as a
    /// browser sends them again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retried_requests: u64,
    /// Diaries and comments the driver created.
    pub events_caused: u64,
    /// Delivered pairs per second of the load's duration.
    pub throughput_per_s: f64,
    pub latency_us: Percentiles,
    /// Every threshold of this strategy passed.
    pub passed: bool,
    /// First receipts per whole second since the run's start.
    pub deliveries_per_second: Vec<u64>,
    /// The p99 latency (µs) of each second's first receipts, per second like
    /// `deliveries_per_second` (0: nothing timed that second).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p99_per_second_us: Vec<u64>,
    /// The first lost (recipient, cause) pairs, e.g. `user 12: diary 7`.
    pub lost_examples: Vec<String>,
    pub notes: Vec<String>,
    /// Capacity runs: every step of the ramp, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ramp: Vec<RampStep>,
    /// Capacity runs: the fastest step delivered without loss within the ramp's p99 limit
    /// (`None`: not even the first step was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustained: Option<Sustained>,
    /// Capacity runs whose single-instance yardstick found its limit (in the same round): the
    /// sustained notification rate as a percentage of the yardstick's (0 when no step was
    /// sustained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_instance_share_pct: Option<f64>,
    /// Claim runs (fields at this level: `items`, `double_processed`, `stuck`, ...).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimCounts>,
    /// Booking runs.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub booking: Option<BookingCounts>,
    /// Jobs runs.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobCounts>,
    /// API runs (goose): requests per endpoint. `throughput_per_s` of the result is requests
    /// per second, `latency_us` the latency of every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiCounts>,
    /// Chat runs: what was sent and confirmed; `expected`, `delivered`, `lost`, `duplicated`
    /// (a seq received twice by one subscription), `unexpected`, `inversions` (a seq below
    /// one the subscription already had) and `latency_us` (due time to receipt by each
    /// member) are at the top level, counted per receiving subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatCounts>,
    /// Embed runs: the posts written and when each became searchable. `latency_us` of the
    /// result is `POST /rentals` from its intended start, `throughput_per_s` posts answered 201
    /// per second of the run's duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<EmbedCounts>,
    /// Every process's CPU and memory, second by second, on the run's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    /// What the database did over the load and its drain, per event caused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<database::DatabaseWork>,
    /// What every process's CPU did over the load and its drain, per event caused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<machine::MachineWork>,
    /// Notification runs with faults: how long the run took to come back to its pre-fault
    /// deliveries and p99 after each fault (see [`recovery`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recoveries: Vec<recovery::Recovery>,
    /// Runs judged by `max_p99_ms_window`: the p99 of every window of the load (see
    /// [`window`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_windows: Option<window::Windows>,
    /// Every timed latency (µs) by the second its cause was sent in, sorted within each: what
    /// `p99_windows` is taken from. In memory only.
    #[serde(skip)]
    pub latency_per_second_us: Vec<Vec<u64>>,
}

/// What every process did during one strategy's run, one sample per second: the server
/// instances the harness runs (from `/proc`), the infrastructure's containers (the Docker
/// engine's stats) and the harness. `t_s[i]` is the end of the second that the `i`-th value
/// of every series covers, in seconds on the run's clock (the clock of `faults[].at_s` and
/// `deliveries_per_second`; negative before it starts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub t_s: Vec<f64>,
    /// CPU per process, in % of one core (200 = two cores busy).
    pub cpu_pct: Vec<Series>,
    /// Resident memory per process, in MB (a container: its cgroup's usage).
    pub rss_mb: Vec<Series>,
}

/// One process's values, one per `Timeline::t_s`; `null` where it could not be read (an
/// instance that was down, a restarted process's first second).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// `harness`, `instance-1`, ..., `rabbitmq`, `redis`, `mariadb`.
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// An embed run: every post of the schedule, what `POST /rentals` answered, and when search
/// first found the post by meaning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedCounts {
    /// Posts the schedule sent.
    pub posts: u64,
    /// Answered 201.
    pub created: u64,
    /// Answered anything else, or not in time.
    pub failed: u64,
    /// Sent more than 100 ms after their time (the harness fell behind its schedule; their
    /// latency still counts from the intended start).
    pub late_starts: u64,
    /// Answered with `embed_status` DONE: embedded before the answer.
    pub embedded_in_request: u64,
    /// Found by meaning (a `vector` hit) through `GET /rentals/search`.
    pub searchable: u64,
    /// Created, but not found by meaning by the end of the drain.
    pub unsearchable: u64,
    /// Created, but not DONE in the database after the drain (read-only SQL).
    pub not_embedded: u64,
    /// (post, content version) pairs with more than one committed embedding (read-only SQL).
    pub embedded_twice: u64,
    /// Search requests the probe sent, and those that did not answer 200.
    pub searches: u64,
    pub search_failures: u64,
    /// From a post's intended start to the first search that found it by meaning.
    pub searchable_us: Percentiles,
    /// From the post's row to its embedding's row, both on the database's clock.
    pub embedded_after_us: Percentiles,
}

/// A chat run's sends, receipts and the database's word on them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCounts {
    pub rooms: u64,
    /// STOMP connections, one per member of every room.
    pub clients: u64,
    /// Messages due by the schedule.
    pub due: u64,
    /// Messages written to the socket.
    pub sent: u64,
    /// Due messages not sent: the sender was disconnected or its queue was full.
    pub not_sent: u64,
    /// Sent later than `late_ms` after their due time.
    pub late: u64,
    /// Sent messages whose RECEIPT arrived (stored and handed to the relay).
    pub confirmed: u64,
    /// Sent messages with no RECEIPT (the connection dropped, or the server refused).
    pub unconfirmed: u64,
    /// Receipts of messages whose SEND got no RECEIPT (stored anyway, and relayed).
    pub recovered: u64,
    /// SEND to RECEIPT.
    pub receipt_latency_us: Percentiles,
    /// Messages the database holds for the run's rooms, by read-only SQL after the run.
    pub stored: u64,
    /// Receipts or RECEIPTs that disagree with the database: a seq it does not hold, or holds
    /// with another body.
    pub history_mismatches: u64,
    /// Subscriptions resumed with `last-seq` after a drop.
    pub resumes: u64,
}

/// An API run, from goose's metrics after its run: the measured part only (goose resets its
/// metrics once every user is running).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiCounts {
    /// Goose users that ran.
    pub users: u64,
    pub requests: u64,
    /// Requests that failed: a transport error, a timeout or an unexpected status.
    pub failures: u64,
    /// Seconds goose measured.
    pub measured_s: f64,
    /// Per endpoint (`METHOD name`), in name order.
    pub endpoints: Vec<EndpointStats>,
    /// Status codes of the failures, e.g. `{"503": 2}`; `0` is no answer at all.
    pub failures_by_status: std::collections::BTreeMap<String, u64>,
    /// Goose's own HTML report of this strategy's run, beside report.html; empty for an
    /// open-loop run (goose does not drive it).
    pub goose_report: String,
    /// Closed loop: goose's coordinated-omission mitigation (`average`); the percentiles of
    /// the result and of every endpoint are then corrected by its back-filled requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub co_mitigation: Option<String>,
    /// Closed loop: requests goose back-filled (timed, never sent).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub synthetic_requests: u64,
    /// Closed loop: the percentiles of the requests actually sent, uncorrected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncorrected_latency_us: Option<Percentiles>,
    /// Open loop: requests started per second on the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_rate_per_s: Option<f64>,
    /// Open loop: requests that started later than [`LATE_START_MS`] after their intended
    /// start (every in-flight slot taken, or the harness behind); their latency still counts
    /// from the intended start.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub late_starts: u64,
}

/// An open-loop request that starts this much after its intended time is late.
pub const LATE_START_MS: u64 = 10;

/// One endpoint of an API run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointStats {
    /// Goose's request name, e.g. `POST /diaries`.
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    pub requests_per_s: f64,
    pub latency_us: Percentiles,
}

impl ApiCounts {
    /// failures / requests, 0 when nothing was requested.
    pub fn error_ratio(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.failures as f64 / self.requests as f64 }
    }
}

/// A claim run, per post, from read-only SQL on the server's side-effect log after the run.
/// `throughput_per_s` of the result is posts embedded per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimCounts {
    /// Posts created for the run.
    pub items: u64,
    /// Posts DONE at the end.
    pub done: u64,
    /// (post, content version) pairs whose embedding was committed more than once.
    pub double_processed: u64,
    /// Posts not DONE after the drain.
    pub stuck: u64,
    /// Claims that saw candidates and got none of them (lost every one to another worker).
    pub wasted_claims: u64,
    /// Claims that saw candidates (idle polls of an empty queue are not counted).
    pub claims: u64,
    /// Calls of the embedder, failed ones included.
    pub embed_calls: u64,
    /// Embed calls that failed (injected failures).
    pub failed_calls: u64,
    /// Final writes refused because the claim had passed to another worker.
    pub fenced: u64,
}

/// A booking run: what the API answered to the approvals, and what the database holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BookingCounts {
    pub requests: u64,
    /// Approvals sent.
    pub approvals: u64,
    /// Approvals answered 2xx.
    pub approved: u64,
    /// Approvals answered 409.
    pub conflicts: u64,
    /// Approvals answered anything else, or not at all.
    pub errors: u64,
    /// Pairs of approved reservations of one item whose dates overlap (read-only SQL).
    pub overlaps: u64,
    /// Reservations whose approval the API and the database disagree on.
    pub disagreements: u64,
    /// The most approvals the requests allowed: per item, a maximum set of non-overlapping
    /// requests (interval scheduling), summed. Approving fewer is allowed (a lost race is
    /// answered 409); approving more is impossible without an overlap.
    pub max_possible: u64,
}

/// A jobs run: the heartbeat job's history, from read-only SQL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobCounts {
    /// Firings due between the first and the last run seen.
    pub firings: u64,
    pub runs: u64,
    /// Due firings with no run.
    pub missed_firings: u64,
    /// Firings that ran more than once.
    pub double_firings: u64,
    /// The longest time between two consecutive runs' scheduled times, in seconds.
    pub max_gap_s: f64,
    /// Runs per instance.
    pub runs_by_instance: std::collections::BTreeMap<String, u64>,
}

/// One step of a capacity ramp, counted over the expectations of the requests sent in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RampStep {
    /// Events per second the driver was asked to cause.
    pub offered_per_s: f64,
    /// Causing requests sent; fewer than offered × seconds when the server fell behind.
    pub sent: u64,
    /// Ticks skipped because too many requests were in flight.
    pub skipped: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Notifications delivered per second of the step.
    pub delivered_per_s: f64,
    pub latency_us: Percentiles,
    /// No loss, no duplicate, p99 within the limit, the rate offered in full.
    pub sustained: bool,
    /// Why the step is not sustained; empty when it is.
    pub verdict: String,
    /// A step between the last sustained rate and the first failed one, narrowing the limit
    /// down (`[ramp] bisect_steps`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bisect: bool,
}

/// The highest step of a ramp that was sustained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sustained {
    pub events_per_s: f64,
    pub delivered_per_s: f64,
    pub p99_us: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StrategyResult {
    /// The result of one strategy's run. `run_seconds` is the time over which events were
    /// caused (the load's `duration_s`); it divides `delivered` into `throughput_per_s`.
    /// `passed` starts true: [`thresholds::evaluate`] decides it.
    pub fn from_summary(
        strategy: &str,
        summary: &LedgerSummary,
        events_caused: u64,
        stored_twice: u64,
        run_seconds: f64,
    ) -> Self {
        let throughput_per_s = if run_seconds > 0.0 { summary.delivered as f64 / run_seconds } else { 0.0 };
        StrategyResult {
            strategy: strategy.to_string(),
            expected: summary.expected,
            delivered: summary.delivered,
            lost: summary.lost,
            duplicated: summary.duplicated,
            unexpected: summary.unexpected,
            misrouted: summary.misrouted,
            indeterminate: summary.indeterminate,
            redelivered_same_id: summary.redelivered_same_id,
            same_id_twice: summary.redelivered_same_id,
            inversions: summary.inversions,
            resumes: 0,
            given_up: 0,
            cross_shard: summary.cross_clock,
            stored_twice,
            failed_requests: 0,
            retried_requests: 0,
            events_caused,
            throughput_per_s,
            latency_us: summary.latency_us,
            passed: true,
            deliveries_per_second: summary.deliveries_per_second.clone(),
            p99_per_second_us: summary.p99_per_second_us.clone(),
            lost_examples: summary.lost_examples.iter().map(|(user, cause)| format!("user {user}: {cause}")).collect(),
            notes: Vec::new(),
            ramp: Vec::new(),
            sustained: None,
            single_instance_share_pct: None,
            claim: None,
            booking: None,
            jobs: None,
            api: None,
            chat: None,
            embed: None,
            timeline: None,
            database: None,
            machine: None,
            recoveries: Vec::new(),
            p99_windows: None,
            latency_per_second_us: summary.latency_per_second_us.clone(),
        }
    }

    /// A result with no notifications in it, for the kinds that count something else.
    pub fn without_notifications(strategy: &str, throughput_per_s: f64, latency_us: Percentiles) -> Self {
        let mut r = Self::from_summary(strategy, &LedgerSummary::default(), 0, 0, 0.0);
        r.throughput_per_s = throughput_per_s;
        r.latency_us = latency_us;
        r
    }

    /// lost / expected, 0 when nothing was expected.
    pub fn lost_ratio(&self) -> f64 {
        if self.expected == 0 { 0.0 } else { self.lost as f64 / self.expected as f64 }
    }
}

/// The plain-text summary printed on the terminal at the end of a run.
pub fn to_text(report: &RunReport) -> String {
    summary::render(report)
}

/// The Markdown report, e.g. for a CI job summary.
pub fn to_markdown(report: &RunReport) -> String {
    markdown::render(report)
}

/// The self-contained HTML report.
pub fn to_html(report: &RunReport) -> String {
    html::render(report)
}

/// The JUnit XML: one test suite, one test case per threshold.
pub fn to_junit(report: &RunReport) -> String {
    junit::render(report)
}

/// Faults as the reports show them: one row per fault, with the strategies whose runs it
/// hit, since every strategy's run repeats the same faults at (almost) the same times.
#[derive(Debug, Clone, PartialEq)]
struct FaultRow {
    at_s: f64,
    action: String,
    target: String,
    outcome: String,
    strategies: Vec<String>,
}

/// Groups faults by time (to 0.1 s: each run injects them at slightly different instants),
/// action, target and outcome, in time order.
fn fault_rows(faults: &[FaultRecord]) -> Vec<FaultRow> {
    let tenths = |s: f64| (s * 10.0).round() as i64;
    let mut rows: Vec<FaultRow> = Vec::new();
    for f in faults {
        let outcome = match &f.detail {
            Some(detail) => format!("{} ({detail})", f.outcome),
            None => f.outcome.clone(),
        };
        let same = |r: &&mut FaultRow| {
            tenths(r.at_s) == tenths(f.at_s) && r.action == f.action && r.target == f.target && r.outcome == outcome
        };
        match rows.iter_mut().find(|r| same(r)) {
            Some(row) if !row.strategies.contains(&f.strategy) => row.strategies.push(f.strategy.clone()),
            Some(_) => {}
            None => rows.push(FaultRow {
                at_s: tenths(f.at_s) as f64 / 10.0,
                action: f.action.clone(),
                target: f.target.clone(),
                outcome,
                strategies: vec![f.strategy.clone()],
            }),
        }
    }
    rows.sort_by(|a, b| a.at_s.total_cmp(&b.at_s).then_with(|| a.action.cmp(&b.action)));
    rows
}

impl FaultRow {
    /// `all` when the fault hit every strategy's run, else the strategies it hit.
    fn strategies_label(&self, results: &[StrategyResult]) -> String {
        if !results.is_empty() && results.iter().all(|r| self.strategies.contains(&r.strategy)) {
            "all".to_string()
        } else {
            self.strategies.join(", ")
        }
    }
}

/// Where [`write`] put each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPaths {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub junit: PathBuf,
}

/// Writes `report.json`, `report.md`, `report.html` and `junit.xml` into `dir` (created if
/// missing), replacing earlier ones.
pub fn write(dir: &Path, report: &RunReport) -> io::Result<ReportPaths> {
    std::fs::create_dir_all(dir)?;
    let paths = ReportPaths {
        json: dir.join("report.json"),
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
        junit: dir.join("junit.xml"),
    };
    let json = serde_json::to_string_pretty(report).map_err(io::Error::other)?;
    std::fs::write(&paths.json, json + "\n")?;
    std::fs::write(&paths.markdown, markdown::render(report))?;
    std::fs::write(&paths.html, html::render(report))?;
    std::fs::write(&paths.junit, junit::render(report))?;
    Ok(paths)
}
