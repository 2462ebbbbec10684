//! What each clustered job does when its firing is acquired. Each returns a one-line detail
//! for `job_runs.detail`, or an error (the run is recorded `failed`).
//!
//! Deletes and updates run in bounded statements (`LIMIT 1000`), looping up to a cap per
//! run: a long DELETE would hold its locks and its undo log for the whole statement and
//! stall the writers of the same table; what is left over goes to the next firing.

use sqlx::MySqlPool;

use super::JobName;

/// Rows per statement.
const CHUNK: u64 = 1000;
/// Statements per table per run (so at most 20,000 rows of one table per run).
const MAX_CHUNKS: u32 = 20;
/// AI comment jobs that failed for transient reasons are re-queued only this long after the
/// diary was written: a provider that stays down for a day is an incident, not a retry.
const AI_RETRY_MAX_AGE_H: u32 = 24;

pub struct JobRunner {
    pub db: MySqlPool,
    pub notifications_retention_days: u32,
    pub history_retention_days: u32,
}

impl JobRunner {
    pub async fn run(&self, job: JobName) -> anyhow::Result<String> {
        match job {
            JobName::EmbedPosts => self.embed_posts().await,
            JobName::Cleanup => self.cleanup().await,
            JobName::AiRetry => self.ai_retry().await,
            // Nothing but its run row: a scenario counts these to prove each firing ran once.
            JobName::Heartbeat => Ok("alive".to_string()),
        }
    }

    /// The work itself is done by the embed workers of every instance (they are woken by
    /// this firing, see `super::embed_job`); the run records where the backlog stands.
    async fn embed_posts(&self) -> anyhow::Result<String> {
        let (wait, pending, expired, done): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(CASE WHEN embed_status = 'WAIT' THEN 1 END), \
             COUNT(CASE WHEN embed_status = 'PENDING' THEN 1 END), \
             COUNT(CASE WHEN embed_status = 'PENDING' AND claimed_until < NOW(6) THEN 1 END), \
             COUNT(CASE WHEN embed_status = 'DONE' THEN 1 END) FROM rental_items",
        )
        .fetch_one(&self.db)
        .await?;
        Ok(format!("wait={wait} pending={pending} (lease expired: {expired}) done={done}"))
    }

    /// Repeats `sql` (which must end in `LIMIT ?`, bound last) until a statement deletes fewer
    /// than [`CHUNK`] rows or [`MAX_CHUNKS`] ran. Returns (rows, whether the cap stopped it).
    async fn chunked(&self, sql: &str, days: u32) -> sqlx::Result<(u64, bool)> {
        let mut total = 0;
        for _ in 0..MAX_CHUNKS {
            let n = sqlx::query(sql).bind(days).bind(CHUNK).execute(&self.db).await?.rows_affected();
            total += n;
            if n < CHUNK {
                return Ok((total, false));
            }
        }
        Ok((total, true))
    }

    /// Deletes old read notifications and old batch history.
    ///
    /// Not here, on purpose: sessions live in Redis with a TTL (`session_ttl_s`), so Redis
    /// expires them itself; and reservations keep no temporary data (an ended reservation is
    /// history, kept like the point log).
    async fn cleanup(&self) -> anyhow::Result<String> {
        let mut parts = Vec::new();
        let mut capped = false;
        let steps: [(&str, String, u32); 4] = [
            (
                "notifications",
                "DELETE FROM notifications WHERE read_at IS NOT NULL AND created_at < NOW(6) - INTERVAL ? DAY LIMIT ?"
                    .into(),
                self.notifications_retention_days,
            ),
            (
                "job_runs",
                "DELETE FROM job_runs WHERE ended_at < NOW(6) - INTERVAL ? DAY LIMIT ?".into(),
                self.history_retention_days,
            ),
            (
                "embed_claims",
                "DELETE FROM embed_claims WHERE at < NOW(6) - INTERVAL ? DAY LIMIT ?".into(),
                self.history_retention_days,
            ),
            (
                "embed_attempts",
                "DELETE FROM embed_attempts WHERE at < NOW(6) - INTERVAL ? DAY LIMIT ?".into(),
                self.history_retention_days,
            ),
        ];
        for (table, sql, days) in steps {
            let (n, hit_cap) = self.chunked(&sql, days).await?;
            capped |= hit_cap;
            parts.push(format!("{table}={n}"));
        }
        let mut detail = format!("deleted {}", parts.join(" "));
        if capped {
            detail.push_str("; capped, the rest goes to the next run");
        }
        Ok(detail)
    }

    /// Re-queues AI comment jobs that are worth another try. The AI worker itself already
    /// retries transient failures with backoff (up to its attempt limit) and reclaims jobs
    /// whose lease ran out; what it never revisits:
    ///
    /// * `running` jobs whose lease expired: set back to `waiting` so they show as waiting
    ///   (and any instance's worker takes them, not only one that polls for expired leases).
    ///   A worker that was only stalled cannot finish them twice: its final update matches on
    ///   `claimed_by`, cleared here, and the `ai_for_diary` key refuses a second comment.
    /// * `failed` jobs whose last error was transient (they ran out of attempts while the
    ///   provider was down), with a fresh attempt budget, if younger than a day.
    async fn ai_retry(&self) -> anyhow::Result<String> {
        let expired = sqlx::query(
            "UPDATE ai_comment_jobs SET status = 'waiting', claimed_by = NULL, claim_expires = NULL, \
             run_after = NOW(6), last_error = 'lease expired; re-queued by ai-retry' \
             WHERE status = 'running' AND claim_expires < NOW(6) LIMIT ?",
        )
        .bind(CHUNK)
        .execute(&self.db)
        .await?
        .rows_affected();
        let failed = sqlx::query(
            "UPDATE ai_comment_jobs SET status = 'waiting', attempts = 0, run_after = NOW(6), finished_at = NULL \
             WHERE status = 'failed' AND last_error LIKE 'transient:%' AND created_at > NOW(6) - INTERVAL ? HOUR \
             LIMIT ?",
        )
        .bind(AI_RETRY_MAX_AGE_H)
        .bind(CHUNK)
        .execute(&self.db)
        .await?
        .rows_affected();
        Ok(format!("re-queued: lease expired={expired} failed transiently={failed}"))
    }
}
