//! What the clustered jobs and the embed workers are configured with (read by `crate::settings`).

use std::time::Duration;

use super::claim::ClaimStrategy;
use super::schedule::Schedule;

/// The clustered jobs (`crate::batch::scheduler`) and the embed worker pool.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// How often each instance looks for due firings: well under the shortest interval, so a
    /// 1-second job fires within this much of its time.
    pub poll: Duration,
    /// A run not renewed for this long is taken for dead and marked `abandoned`.
    pub job_lease: Duration,
    /// A firing later than this (every instance was down) is a misfire: it runs once and the
    /// fire times it covered are skipped, not caught up one by one.
    pub misfire_threshold: Duration,
    /// Who fires a due time: the cluster once (the default) or every instance on its own clock.
    pub scheduler: SchedulerMode,
    /// `None`: the job is off.
    pub embed_schedule: Option<Schedule>,
    pub cleanup_schedule: Option<Schedule>,
    pub ai_retry_schedule: Option<Schedule>,
    pub heartbeat_schedule: Option<Schedule>,
    /// Read notifications older than this are deleted by `cleanup`.
    pub notifications_retention_days: u32,
    /// Job runs, embed claims and embed attempts older than this are deleted by `cleanup`.
    pub history_retention_days: u32,
    pub embed: EmbedClaimSettings,
}

/// Who fires a job's due times (`SERVER_JOB_SCHEDULER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerMode {
    /// Each firing is acquired through `job_schedules` by one instance of the cluster (see
    /// `crate::batch::scheduler`).
    Clustered,
    /// Every instance fires every due time on its own clock, as Spring's `@Scheduled` does on
    /// each of several instances: N instances run each firing N times. Kept only as the
    /// control group of scenarios/job-fires-once.toml, which must catch it.
    Local,
}

impl std::str::FromStr for SchedulerMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "clustered" => Ok(SchedulerMode::Clustered),
            "local" => Ok(SchedulerMode::Local),
            other => Err(format!("`{other}` is not one of clustered, local")),
        }
    }
}

/// When a post is embedded (`SERVER_EMBED_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedMode {
    /// By the claim workers after the post is written: `POST /rentals` answers at once and
    /// the post is found by meaning once a worker has embedded it (the seed's fix).
    Batch,
    /// Inside `POST /rentals` (and an edit of its content), before the answer: what the seed
    /// moved away from (3-5 s per post), kept to measure the difference
    /// (scenarios/embed-off-request-path.toml). The workers still embed what an inline embed
    /// failed to.
    Inline,
}

impl std::str::FromStr for EmbedMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "batch" => Ok(EmbedMode::Batch),
            "inline" => Ok(EmbedMode::Inline),
            other => Err(format!("`{other}` is not one of batch, inline")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmbedClaimSettings {
    pub mode: EmbedMode,
    /// Embed workers on this instance (0: none).
    pub workers: u32,
    pub strategy: ClaimStrategy,
    pub batch_size: u32,
    /// One embed call longer than this fails, and its rows go back to WAIT.
    pub batch_timeout: Duration,
    /// A PENDING row whose claim is older than this may be claimed again. Longer than
    /// `batch_timeout`, so a live worker's claim never runs out while it waits for the embedder.
    pub lease: Duration,
    /// Off only to show what a stalled worker does without it: commits twice.
    pub fencing: bool,
    /// Fault injection: the share of embed calls that fail transiently (0 to 1).
    pub fail_rate: f64,
    /// Added to every embed call of a post (by a worker or inline; never to a search query's),
    /// to model a slow model or provider. Off (0) unless set.
    pub delay: Duration,
}
