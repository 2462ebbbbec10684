//! Clustered batch jobs and the embedding claim.
//!
//! Two kinds of background work, with different answers to "which instance runs it":
//!
//! * **Clustered jobs** ([`scheduler`], bodies in [`jobs`]): `embed-posts`, `cleanup`,
//!   `ai-retry`, `heartbeat`. Every instance polls `job_schedules`, but each firing is
//!   acquired by exactly one of them (a conditional UPDATE of `next_fire_at`) and recorded in
//!   `job_runs`, whose unique (job, scheduled_at) makes a second run of one firing impossible.
//!   This is what Quartz's cluster mode gave the seed project: cleanup deletes once, not N
//!   times, and history says who ran what.
//! * **Embed workers** ([`embed_job`], claims in [`claim`]): `embed_workers` per instance, on
//!   every instance. Embedding is row-by-row work, so it scales with workers rather than
//!   needing a single runner; what keeps two workers off one row is the claim, not the
//!   scheduler. That race is what the claim scenario measures, strategy by strategy. The
//!   `embed-posts` job is the pool's handle in the cluster: its firings wake idle workers on
//!   every instance, pausing it stops claims everywhere, triggering it wakes them now.

pub mod claim;
pub mod config;
pub mod embed_job;
pub mod jobs;
pub mod schedule;
pub mod scheduler;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::MySqlPool;

use crate::pagination::{Page, Paged};
use schedule::Schedule;

/// The jobs this server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobName {
    EmbedPosts,
    Cleanup,
    AiRetry,
    Heartbeat,
}

impl JobName {
    pub const ALL: [JobName; 4] = [JobName::EmbedPosts, JobName::Cleanup, JobName::AiRetry, JobName::Heartbeat];

    pub fn as_str(self) -> &'static str {
        match self {
            JobName::EmbedPosts => "embed-posts",
            JobName::Cleanup => "cleanup",
            JobName::AiRetry => "ai-retry",
            JobName::Heartbeat => "heartbeat",
        }
    }

    pub fn parse(s: &str) -> Option<JobName> {
        Self::ALL.into_iter().find(|j| j.as_str() == s)
    }
}

/// A job and its schedule on this instance (`None`: off here).
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub name: JobName,
    pub schedule: Option<Schedule>,
}

/// A job as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    #[schema(example = "cleanup")]
    pub name: &'static str,
    /// False when its schedule setting is empty: it never fires.
    pub enabled: bool,
    #[schema(example = "every 300s")]
    pub schedule: Option<String>,
    pub paused: bool,
    pub next_fire_at: Option<DateTime<Utc>>,
    /// A trigger was asked for and no instance has fired it yet.
    pub trigger_requested: bool,
    pub last_run: Option<JobRun>,
}

/// One row of `job_runs`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobRun {
    pub id: u64,
    pub job: String,
    /// The fire time this run is for.
    pub scheduled_at: DateTime<Utc>,
    /// `schedule`, `misfire` (late past the threshold: once for all missed fire times) or `manual`.
    pub trigger: String,
    /// Fire times a misfire skipped.
    pub missed: u32,
    pub instance_id: String,
    pub started_at: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `running`, `ok`, `failed`, `abandoned` (its runner died or stalled past the lease) or
    /// `skipped` (the previous run was still going).
    pub outcome: String,
    pub detail: Option<String>,
}

#[derive(sqlx::FromRow)]
struct JobRunRow {
    id: u64,
    job: String,
    scheduled_at: NaiveDateTime,
    trigger_kind: String,
    missed: u32,
    instance_id: String,
    started_at: NaiveDateTime,
    lease_until: NaiveDateTime,
    ended_at: Option<NaiveDateTime>,
    outcome: String,
    detail: Option<String>,
}

impl From<JobRunRow> for JobRun {
    fn from(r: JobRunRow) -> Self {
        JobRun {
            id: r.id,
            job: r.job,
            scheduled_at: r.scheduled_at.and_utc(),
            trigger: r.trigger_kind,
            missed: r.missed,
            instance_id: r.instance_id,
            started_at: r.started_at.and_utc(),
            lease_until: r.lease_until.and_utc(),
            ended_at: r.ended_at.map(|t| t.and_utc()),
            outcome: r.outcome,
            detail: r.detail,
        }
    }
}

const RUN_COLUMNS: &str =
    "id, job, scheduled_at, trigger_kind, missed, instance_id, started_at, lease_until, ended_at, outcome, detail";

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("no job named `{0}`")]
    Unknown(String),
    #[error("job `{0}` is off on this server: its schedule setting is empty")]
    Disabled(&'static str),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The jobs registry and what the admin API does with it.
#[derive(Debug, Clone)]
pub struct Jobs {
    pub db: MySqlPool,
    pub specs: Vec<JobSpec>,
}

impl Jobs {
    pub fn from_settings(db: MySqlPool, s: &config::BatchSettings) -> Jobs {
        let specs = vec![
            JobSpec { name: JobName::EmbedPosts, schedule: s.embed_schedule.clone() },
            JobSpec { name: JobName::Cleanup, schedule: s.cleanup_schedule.clone() },
            JobSpec { name: JobName::AiRetry, schedule: s.ai_retry_schedule.clone() },
            JobSpec { name: JobName::Heartbeat, schedule: s.heartbeat_schedule.clone() },
        ];
        Jobs { db, specs }
    }

    fn spec(&self, name: &str) -> Result<&JobSpec, JobsError> {
        let job = JobName::parse(name).ok_or_else(|| JobsError::Unknown(name.to_string()))?;
        self.specs.iter().find(|s| s.name == job).ok_or_else(|| JobsError::Unknown(name.to_string()))
    }

    fn enabled(&self, name: &str) -> Result<(JobName, &Schedule), JobsError> {
        let spec = self.spec(name)?;
        spec.schedule.as_ref().map(|s| (spec.name, s)).ok_or(JobsError::Disabled(spec.name.as_str()))
    }

    /// Creates the `job_schedules` row of every enabled job, or adopts the existing one. A
    /// changed schedule text restarts the job's timing; an unchanged one keeps next_fire_at,
    /// so instances starting one after another do not push the firing back.
    #[tracing::instrument(skip_all)]
    pub async fn register(&self) -> sqlx::Result<()> {
        let now: NaiveDateTime = sqlx::query_scalar("SELECT CAST(NOW(6) AS DATETIME(6))").fetch_one(&self.db).await?;
        for spec in &self.specs {
            let Some(schedule) = &spec.schedule else { continue };
            let first = schedule.next_after(now).unwrap_or(now);
            // MariaDB applies SET assignments left to right: next_fire_at is decided while
            // `schedule` still holds the old text.
            sqlx::query(
                "INSERT INTO job_schedules (name, schedule, next_fire_at) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE next_fire_at = IF(schedule = VALUES(schedule), next_fire_at, \
                 VALUES(next_fire_at)), schedule = VALUES(schedule)",
            )
            .bind(spec.name.as_str())
            .bind(schedule.text())
            .bind(first)
            .execute(&self.db)
            .await?;
        }
        Ok(())
    }

    /// Whether `job` is paused in the database (false when it has no row).
    pub async fn is_paused(&self, job: JobName) -> sqlx::Result<bool> {
        let paused: Option<bool> = sqlx::query_scalar("SELECT paused FROM job_schedules WHERE name = ?")
            .bind(job.as_str())
            .fetch_optional(&self.db)
            .await?;
        Ok(paused.unwrap_or(false))
    }

    pub async fn list(&self) -> sqlx::Result<Vec<JobStatus>> {
        let mut out = Vec::new();
        for spec in &self.specs {
            out.push(self.status(spec).await?);
        }
        Ok(out)
    }

    async fn status(&self, spec: &JobSpec) -> sqlx::Result<JobStatus> {
        let row: Option<(bool, NaiveDateTime, bool)> =
            sqlx::query_as("SELECT paused, next_fire_at, trigger_requested FROM job_schedules WHERE name = ?")
                .bind(spec.name.as_str())
                .fetch_optional(&self.db)
                .await?;
        let last: Option<JobRunRow> =
            sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM job_runs WHERE job = ? ORDER BY id DESC LIMIT 1"))
                .bind(spec.name.as_str())
                .fetch_optional(&self.db)
                .await?;
        let enabled = spec.schedule.is_some();
        Ok(JobStatus {
            name: spec.name.as_str(),
            enabled,
            schedule: spec.schedule.as_ref().map(|s| s.text().to_string()),
            paused: row.is_some_and(|r| r.0),
            next_fire_at: row.filter(|_| enabled).map(|r| r.1.and_utc()),
            trigger_requested: row.is_some_and(|r| r.2),
            last_run: last.map(JobRun::from),
        })
    }

    pub async fn get(&self, name: &str) -> Result<JobStatus, JobsError> {
        let spec = self.spec(name)?;
        Ok(self.status(spec).await?)
    }

    /// The job's runs, newest first.
    pub async fn runs(&self, name: &str, page: Page) -> Result<Paged<JobRun>, JobsError> {
        let spec = self.spec(name)?;
        let rows: Vec<JobRunRow> = sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM job_runs WHERE job = ? AND id < ? ORDER BY id DESC LIMIT ?"
        ))
        .bind(spec.name.as_str())
        .bind(page.after.unwrap_or(u64::MAX))
        .bind(page.limit + 1)
        .fetch_all(&self.db)
        .await?;
        Ok(Paged::from_rows(rows.into_iter().map(JobRun::from).collect(), page, |r| r.id))
    }

    /// Stops future firings on every instance (a run in progress finishes).
    pub async fn pause(&self, name: &str) -> Result<JobStatus, JobsError> {
        let (job, _) = self.enabled(name)?;
        sqlx::query("UPDATE job_schedules SET paused = TRUE WHERE name = ?")
            .bind(job.as_str())
            .execute(&self.db)
            .await?;
        self.get(name).await
    }

    /// Resumes from the next fire time after now: the firings missed while paused are not
    /// caught up (a paused job's next_fire_at is left in the past while it is paused).
    pub async fn resume(&self, name: &str) -> Result<JobStatus, JobsError> {
        let (job, schedule) = self.enabled(name)?;
        let now: NaiveDateTime = sqlx::query_scalar("SELECT CAST(NOW(6) AS DATETIME(6))").fetch_one(&self.db).await?;
        let next = schedule.next_after(now).unwrap_or(now);
        // Left to right: next_fire_at is reset only if the row was paused.
        sqlx::query(
            "UPDATE job_schedules SET next_fire_at = IF(paused, ?, next_fire_at), paused = FALSE WHERE name = ?",
        )
        .bind(next)
        .bind(job.as_str())
        .execute(&self.db)
        .await?;
        self.get(name).await
    }

    /// Asks for one firing now. It goes through the same acquisition as a scheduled one, so
    /// it runs once however many instances poll; a paused job can be triggered.
    pub async fn trigger(&self, name: &str) -> Result<JobStatus, JobsError> {
        let (job, _) = self.enabled(name)?;
        sqlx::query(
            "UPDATE job_schedules SET trigger_requested = TRUE, next_fire_at = LEAST(next_fire_at, NOW(6)) \
             WHERE name = ?",
        )
        .bind(job.as_str())
        .execute(&self.db)
        .await?;
        self.get(name).await
    }
}
