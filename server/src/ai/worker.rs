//! The durable AI comment queue: `ai_comment_jobs` rows are written in the diary's own
//! transaction, and a worker on every instance claims due jobs with `FOR UPDATE SKIP LOCKED`
//! and a lease. Nothing is lost on a restart: a job whose worker died is claimable again when
//! its lease ends, and the unique `ai_for_diary` key makes a second run post nothing.

use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{CommentGenerator, DiaryPrompt, GenerateError};
use crate::diary::{Emotion, comments};

/// Attempts before a job is marked `failed` (kept for inspection, not retried).
const MAX_ATTEMPTS: i32 = 8;
const BATCH: u32 = 8;

#[derive(Clone)]
pub struct AiWorker {
    db: MySqlPool,
    generator: Arc<dyn CommentGenerator>,
    instance_id: String,
    lease: Duration,
    poll: Duration,
    /// Woken when this instance enqueues a job, so a local diary is answered without
    /// waiting for the next poll; jobs from other instances are found by polling.
    wake: Arc<Notify>,
}

/// What one pass of the worker did (for tests and metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub claimed: usize,
    pub posted: usize,
    pub retried: usize,
    pub failed: usize,
}

impl AiWorker {
    pub fn new(
        db: MySqlPool,
        generator: Arc<dyn CommentGenerator>,
        instance_id: String,
        lease: Duration,
        poll: Duration,
    ) -> Self {
        Self { db, generator, instance_id, lease, poll, wake: Arc::new(Notify::new()) }
    }

    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs passes until `shutdown`; errors are logged and the loop goes on (the database
    /// may be restarting).
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(generator = self.generator.name(), "AI comment worker started");
        loop {
            // A pass in flight is abandoned on shutdown rather than awaited: a slow provider
            // must not hold the process, and the lease hands the job to another worker.
            let pass = tokio::select! {
                _ = shutdown.cancelled() => break,
                pass = self.run_once() => pass,
            };
            match pass {
                Ok(pass) if pass.claimed > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "AI comment pass failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        tracing::info!("AI comment worker stopped");
    }

    /// Claims due jobs (or jobs whose lease ran out) and processes them.
    pub async fn run_once(&self) -> sqlx::Result<Pass> {
        let claimed = self.claim().await?;
        let mut pass = Pass { claimed: claimed.len(), ..Pass::default() };
        for (diary_id, attempts) in claimed {
            match self.process(diary_id).await {
                Ok(()) => pass.posted += 1,
                Err(JobError::Generate(GenerateError::Transient(why))) if attempts < MAX_ATTEMPTS => {
                    self.release(diary_id, attempts, &why).await?;
                    pass.retried += 1;
                }
                Err(e) => {
                    self.fail(diary_id, &e.to_string()).await?;
                    pass.failed += 1;
                }
            }
        }
        Ok(pass)
    }

    async fn claim(&self) -> sqlx::Result<Vec<(u64, i32)>> {
        let mut tx = self.db.begin().await?;
        let due: Vec<(u64, i32)> = sqlx::query_as(
            "SELECT diary_id, attempts FROM ai_comment_jobs \
             WHERE (status = 'waiting' AND run_after <= CURRENT_TIMESTAMP(6)) \
                OR (status = 'running' AND claim_expires < CURRENT_TIMESTAMP(6)) \
             ORDER BY run_after LIMIT ? FOR UPDATE SKIP LOCKED",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        for (diary_id, _) in &due {
            sqlx::query(
                "UPDATE ai_comment_jobs SET status = 'running', attempts = attempts + 1, claimed_by = ?, \
                 claim_expires = CURRENT_TIMESTAMP(6) + INTERVAL ? SECOND WHERE diary_id = ?",
            )
            .bind(&self.instance_id)
            .bind(self.lease.as_secs())
            .bind(diary_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(due.into_iter().map(|(id, attempts)| (id, attempts + 1)).collect())
    }

    async fn process(&self, diary_id: u64) -> Result<(), JobError> {
        let diary: Option<(String, String, String)> =
            sqlx::query_as("SELECT title, content, emotion FROM diaries WHERE id = ?")
                .bind(diary_id)
                .fetch_optional(&self.db)
                .await?;
        let Some((title, content, emotion)) = diary else {
            // Deleted meanwhile: the cascade removes the job row too; nothing to post.
            return Ok(());
        };
        let prompt =
            DiaryPrompt { diary_id, title, content, emotion: Emotion::parse(&emotion).unwrap_or(Emotion::Calm) };
        let text = self.generator.generate(&prompt).await.map_err(JobError::Generate)?;
        comments::create_ai(&self.db, diary_id, &text).await?;
        sqlx::query(
            "UPDATE ai_comment_jobs SET status = 'done', finished_at = CURRENT_TIMESTAMP(6), claim_expires = NULL \
             WHERE diary_id = ? AND claimed_by = ?",
        )
        .bind(diary_id)
        .bind(&self.instance_id)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn release(&self, diary_id: u64, attempts: i32, why: &str) -> sqlx::Result<()> {
        let backoff_s = 2u64.saturating_pow(attempts.clamp(0, 10) as u32).min(300);
        sqlx::query(
            "UPDATE ai_comment_jobs SET status = 'waiting', claimed_by = NULL, claim_expires = NULL, last_error = ?, \
             run_after = CURRENT_TIMESTAMP(6) + INTERVAL ? SECOND WHERE diary_id = ? AND claimed_by = ?",
        )
        .bind(truncate_error(why))
        .bind(backoff_s)
        .bind(diary_id)
        .bind(&self.instance_id)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn fail(&self, diary_id: u64, why: &str) -> sqlx::Result<()> {
        tracing::error!(diary_id, why, "AI comment job failed for good");
        sqlx::query(
            "UPDATE ai_comment_jobs SET status = 'failed', finished_at = CURRENT_TIMESTAMP(6), last_error = ? \
             WHERE diary_id = ? AND claimed_by = ?",
        )
        .bind(truncate_error(why))
        .bind(diary_id)
        .bind(&self.instance_id)
        .execute(&self.db)
        .await?;
        Ok(())
    }
}

fn truncate_error(why: &str) -> String {
    why.chars().take(500).collect()
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Generate(GenerateError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}
