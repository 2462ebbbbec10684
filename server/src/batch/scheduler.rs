//! The clustered scheduler: every instance polls `job_schedules` every `job_poll_ms`, and a
//! firing is acquired by one conditional UPDATE that moves `next_fire_at` on only if it still
//! holds the value this instance read. Of N instances that see the same due row, one UPDATE
//! matches and N-1 match nothing. The run row is inserted in the same transaction, and
//! `uq_job_runs_fire (job, scheduled_at)` makes a second run of one firing a constraint
//! violation even if the UPDATE's guard were wrong.
//!
//! Fire times come from the database clock (`NOW(6)`, sessions in UTC): instances' clocks
//! drift, the database's is one.
//!
//! **When a runner dies mid-run** (SIGKILL, or a pause longer than `job_lease_s`): its run
//! row stays `running` and its lease (`lease_until`, renewed every third of the lease while
//! alive) runs out. Nothing waits for it: the next firing is acquired as usual by any
//! instance, and whoever acquires a firing of that job first marks its expired runs
//! `abandoned`. A runner that was only stalled and wakes later finds its row no longer
//! `running` and cannot overwrite the verdict. While a run's lease is live, a new firing of
//! the same job is recorded as `skipped` rather than run alongside it.
//!
//! **Misfires**: when a firing is acquired more than `job_misfire_threshold_ms` after its fire
//! time (every instance was down), it runs once, as `trigger_kind = 'misfire'` with the number
//! of fire times it covered in `missed`, and the next fire time is computed from now: a
//! recovery is one run, not a burst of catch-ups. Lateness within the threshold (a slow poll)
//! fires normally and keeps the schedule, so a busy machine does not leave gaps.
//!
//! **The control group** (`SERVER_JOB_SCHEDULER=local`): every instance fires every due time
//! of every job on its own clock, as Spring's `@Scheduled` does on each of several instances,
//! and records each run with the moment it fired (its own phase), so N instances leave N runs
//! per period. The poll still steers the embed pool (pause, wake) but acquires nothing; a
//! manual trigger does nothing. Never for production: scenarios/job-fires-once.toml must
//! catch it.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use sqlx::MySqlPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::config::SchedulerMode;
use super::embed_job::PoolControl;
use super::jobs::JobRunner;
use super::schedule::Schedule;
use super::{JobName, JobSpec};

/// Counting the fire times a misfire skipped stops here (an `every 1s` job down for days).
const MISSED_COUNT_CAP: u32 = 100_000;

pub struct Scheduler {
    pub db: MySqlPool,
    pub instance_id: String,
    pub specs: Vec<JobSpec>,
    pub poll: Duration,
    pub job_lease: Duration,
    pub misfire_threshold: Duration,
    pub mode: SchedulerMode,
    pub runner: Arc<JobRunner>,
    /// The embed pool on this instance, steered by the `embed-posts` row.
    pub pool: PoolControl,
}

/// One `job_schedules` row as read by a poll, with the database's now.
#[derive(Debug, sqlx::FromRow)]
struct Due {
    name: String,
    paused: bool,
    next_fire_at: NaiveDateTime,
    last_fire_at: Option<NaiveDateTime>,
    trigger_requested: bool,
    now: NaiveDateTime,
}

/// How a firing came about (`job_runs.trigger_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Schedule,
    Misfire,
    Manual,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Schedule => "schedule",
            Kind::Misfire => "misfire",
            Kind::Manual => "manual",
        }
    }
}

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut running = JoinSet::new();
        if this.mode == SchedulerMode::Local {
            for spec in &this.specs {
                if let Some(schedule) = spec.schedule.clone() {
                    running.spawn(this.clone().fire_locally(spec.name, schedule, shutdown.clone()));
                }
            }
        }
        let mut seen_embed_fire: Option<NaiveDateTime> = None;
        loop {
            if let Err(e) = this.poll_once(&mut running, &mut seen_embed_fire, &shutdown).await {
                tracing::warn!(error = %e, "scheduler poll failed");
            }
            while running.try_join_next().is_some() {}
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(this.poll) => {}
            }
        }
        // Runs in progress see the cancellation and record themselves `abandoned`.
        while running.join_next().await.is_some() {}
    }

    async fn poll_once(
        self: &Arc<Self>,
        running: &mut JoinSet<()>,
        seen_embed_fire: &mut Option<NaiveDateTime>,
        shutdown: &CancellationToken,
    ) -> sqlx::Result<()> {
        let rows: Vec<Due> = sqlx::query_as(
            "SELECT name, paused, next_fire_at, last_fire_at, trigger_requested, CAST(NOW(6) AS DATETIME(6)) AS now \
             FROM job_schedules",
        )
        .fetch_all(&self.db)
        .await?;
        for row in rows {
            let Some(spec) = self.specs.iter().find(|s| s.name.as_str() == row.name) else { continue };
            let Some(schedule) = &spec.schedule else { continue };
            if spec.name == JobName::EmbedPosts {
                self.pool.paused.send_if_modified(|p| std::mem::replace(p, row.paused) != row.paused);
                // A firing anywhere in the cluster (seen as a new last_fire_at) wakes this
                // instance's idle workers.
                if row.last_fire_at.is_some() && row.last_fire_at != *seen_embed_fire {
                    *seen_embed_fire = row.last_fire_at;
                    self.pool.wake();
                }
            }
            let due = row.next_fire_at <= row.now && (!row.paused || row.trigger_requested);
            if !due || self.mode == SchedulerMode::Local {
                continue;
            }
            let late = (row.now - row.next_fire_at).to_std().unwrap_or_default();
            let (kind, base, missed) = if row.trigger_requested {
                (Kind::Manual, row.now, 0)
            } else if late > self.misfire_threshold {
                (Kind::Misfire, row.now, schedule.count_between(row.next_fire_at, row.now, MISSED_COUNT_CAP))
            } else {
                (Kind::Schedule, row.next_fire_at, 0)
            };
            let next = schedule.next_after(base).unwrap_or(row.now + chrono::Duration::days(3650));
            if let Some(run_id) = self.acquire(spec.name, &row, kind, next, missed).await? {
                let (this, job, shutdown) = (self.clone(), spec.name, shutdown.clone());
                running.spawn(async move { this.execute(run_id, job, shutdown).await });
            }
        }
        Ok(())
    }

    /// Tries to take the firing at `row.next_fire_at`. `Some(run id)` when this instance won
    /// it and should run it now; `None` when another instance won, or the firing was
    /// recorded as `skipped`.
    async fn acquire(
        &self,
        job: JobName,
        row: &Due,
        kind: Kind,
        next: NaiveDateTime,
        missed: u32,
    ) -> sqlx::Result<Option<u64>> {
        let mut tx = self.db.begin().await?;
        // The guard: the row must still hold what this poll read. `trigger_requested` is part
        // of it so a trigger arriving after the read is not cleared unseen; `paused` so a
        // pause arriving after the read wins.
        let won = sqlx::query(
            "UPDATE job_schedules SET next_fire_at = ?, last_fire_at = ?, trigger_requested = FALSE \
             WHERE name = ? AND next_fire_at = ? AND trigger_requested = ? AND (paused = FALSE OR trigger_requested)",
        )
        .bind(next)
        .bind(row.next_fire_at)
        .bind(job.as_str())
        .bind(row.next_fire_at)
        .bind(row.trigger_requested)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won {
            tx.rollback().await?;
            return Ok(None);
        }
        // Runs whose runner stopped renewing: whoever acquires next says so.
        sqlx::query(
            "UPDATE job_runs SET outcome = 'abandoned', ended_at = NOW(6), \
             detail = 'lease expired without an end: the runner died or stalled' \
             WHERE job = ? AND outcome = 'running' AND lease_until < NOW(6)",
        )
        .bind(job.as_str())
        .execute(&mut *tx)
        .await?;
        let live: Option<String> = sqlx::query_scalar(
            "SELECT instance_id FROM job_runs WHERE job = ? AND outcome = 'running' ORDER BY id DESC LIMIT 1",
        )
        .bind(job.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let (outcome, detail) = match &live {
            Some(other) => ("skipped", Some(format!("the previous run on {other} is still running"))),
            None => ("running", (kind == Kind::Misfire).then(|| format!("misfire: {missed} fire time(s) skipped"))),
        };
        let inserted = sqlx::query(
            "INSERT INTO job_runs (job, scheduled_at, trigger_kind, missed, instance_id, lease_until, outcome, \
             ended_at, detail) VALUES (?, ?, ?, ?, ?, NOW(6) + INTERVAL ? SECOND, ?, IF(? = 'skipped', NOW(6), NULL), ?)",
        )
        .bind(job.as_str())
        .bind(row.next_fire_at)
        .bind(kind.as_str())
        .bind(missed)
        .bind(&self.instance_id)
        .bind(self.job_lease.as_secs())
        .bind(outcome)
        .bind(outcome)
        .bind(detail)
        .execute(&mut *tx)
        .await;
        let run_id = match inserted {
            Ok(r) => r.last_insert_id(),
            // Unreachable while the guard holds; if it ever does not, the constraint refuses
            // the second run and this firing is simply not ours.
            Err(e) if crate::error::violated_constraint(&e).as_deref() == Some("uq_job_runs_fire") => {
                tracing::error!(job = job.as_str(), "a second run of one firing was refused by uq_job_runs_fire");
                tx.rollback().await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        tx.commit().await?;
        tracing::debug!(job = job.as_str(), run_id, kind = kind.as_str(), "firing acquired");
        Ok(live.is_none().then_some(run_id))
    }

    /// `SERVER_JOB_SCHEDULER=local`: fires `job` on this instance's own timing, whatever the
    /// other instances do, one run after the other; the next due time is counted from the end
    /// of the run (as `@Scheduled(fixedDelay)` does), so each instance keeps its own phase.
    async fn fire_locally(self: Arc<Self>, job: JobName, schedule: Schedule, shutdown: CancellationToken) {
        let mut next = schedule.next_after(chrono::Utc::now().naive_utc());
        while let Some(at) = next {
            let wait = (at - chrono::Utc::now().naive_utc()).to_std().unwrap_or_default();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match self.record_local_run(job).await {
                Ok(run_id) => self.clone().execute(run_id, job, shutdown.clone()).await,
                Err(e) => tracing::warn!(job = job.as_str(), error = %e, "a local firing could not be recorded"),
            }
            // From the end of the run, so a stall (a frozen process) brings no burst either.
            next = schedule.next_after(at.max(chrono::Utc::now().naive_utc()));
        }
    }

    /// The run row of a local firing, with the database's now as its fire time: each
    /// instance's own phase, so the runs of one period on several instances are several rows.
    async fn record_local_run(&self, job: JobName) -> sqlx::Result<u64> {
        let insert = || {
            sqlx::query(
                "INSERT INTO job_runs (job, scheduled_at, trigger_kind, missed, instance_id, lease_until, outcome, detail) \
                 VALUES (?, NOW(6), 'schedule', 0, ?, NOW(6) + INTERVAL ? SECOND, 'running', \
                 'fired by this instance''s own clock (SERVER_JOB_SCHEDULER=local)')",
            )
            .bind(job.as_str())
            .bind(&self.instance_id)
            .bind(self.job_lease.as_secs())
            .execute(&self.db)
        };
        match insert().await {
            Ok(r) => Ok(r.last_insert_id()),
            // Two instances in the same microsecond: the second is a microsecond later.
            Err(e) if crate::error::violated_constraint(&e).as_deref() == Some("uq_job_runs_fire") => {
                tokio::time::sleep(Duration::from_micros(10)).await;
                Ok(insert().await?.last_insert_id())
            }
            Err(e) => Err(e),
        }
    }

    async fn execute(self: Arc<Self>, run_id: u64, job: JobName, shutdown: CancellationToken) {
        let work = self.runner.run(job);
        tokio::pin!(work);
        let mut renew = tokio::time::interval((self.job_lease / 3).max(Duration::from_millis(100)));
        renew.tick().await;
        let result = loop {
            tokio::select! {
                result = &mut work => break Some(result),
                _ = shutdown.cancelled() => break None,
                _ = renew.tick() => {
                    let renewed = sqlx::query(
                        "UPDATE job_runs SET lease_until = NOW(6) + INTERVAL ? SECOND WHERE id = ? AND outcome = 'running'",
                    )
                    .bind(self.job_lease.as_secs())
                    .bind(run_id)
                    .execute(&self.db)
                    .await;
                    if matches!(renewed, Ok(r) if r.rows_affected() == 0) {
                        tracing::warn!(job = job.as_str(), run_id, "run was marked abandoned while still running");
                    }
                }
            }
        };
        let (outcome, detail) = match result {
            Some(Ok(detail)) => ("ok", detail),
            Some(Err(e)) => {
                tracing::warn!(job = job.as_str(), error = format!("{e:#}"), "job failed");
                ("failed", format!("{e:#}"))
            }
            None => ("abandoned", "the instance shut down mid-run".to_string()),
        };
        // `AND outcome = 'running'`: a run already declared abandoned keeps that verdict.
        let ended = sqlx::query(
            "UPDATE job_runs SET outcome = ?, ended_at = NOW(6), detail = ? WHERE id = ? AND outcome = 'running'",
        )
        .bind(outcome)
        .bind(detail.chars().take(1000).collect::<String>())
        .bind(run_id)
        .execute(&self.db)
        .await;
        if let Err(e) = ended {
            tracing::warn!(job = job.as_str(), run_id, error = %e, "could not record the end of a run");
        }
    }
}
