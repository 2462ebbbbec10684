//! The truth after the fact: read-only SQL on the database of a run, the one place the
//! harness looks past the server's wire protocols. Every runner's queries live here, so what
//! the harness reads (and that it only reads) is one file to review.

use std::collections::HashSet;

use chrono::NaiveDateTime;
use sqlx::{Connection, MySqlConnection};

use crate::ledger::Cause;
use crate::report::ClaimCounts;

/// See [`Truth::of_users`].
#[derive(Debug, Clone, Default)]
pub struct UsersTruth {
    pub causes: Vec<Cause>,
    pub notifications: u64,
    pub stored_twice: u64,
}

/// A run's database, read with one short-lived connection per question.
#[derive(Debug, Clone)]
pub struct Truth {
    database_url: String,
}

/// What the claim side-effect log says.
#[derive(Debug, Clone)]
pub struct ClaimLedger {
    pub counts: ClaimCounts,
    /// Seconds from the release of the workers to the last committed embedding.
    pub busy_s: f64,
    /// The first (post, content version) pairs committed more than once, as `post@version xN`.
    pub double_examples: Vec<String>,
}

/// What the database says after an embed run; see [`Truth::embed_ledger`].
#[derive(Debug, Clone, Default)]
pub struct EmbedLedger {
    pub not_embedded: u64,
    pub embedded_twice: u64,
    pub embedded_after_us: Vec<u64>,
}

/// One run of a job, from its run history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub fire_at: NaiveDateTime,
    pub instance: String,
    pub outcome: String,
}

impl Truth {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self { database_url: database_url.into() }
    }

    async fn connect(&self) -> anyhow::Result<MySqlConnection> {
        Ok(MySqlConnection::connect(&self.database_url).await?)
    }

    /// The database's clock, to compare with its `DATETIME(6)` columns.
    pub async fn now(&self) -> anyhow::Result<NaiveDateTime> {
        let mut conn = self.connect().await?;
        let now: NaiveDateTime = sqlx::query_scalar("SELECT CAST(NOW(6) AS DATETIME(6))").fetch_one(&mut conn).await?;
        let _ = conn.close().await;
        Ok(now)
    }

    /// The database server's counters of [`crate::report::database::counters`], by name; they
    /// count the work of every database on the server since it started.
    pub async fn server_counters(&self) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
        let mut conn = self.connect().await?;
        let mut show = sqlx::QueryBuilder::new("SHOW GLOBAL STATUS WHERE Variable_name IN ");
        show.push_tuples(crate::report::database::counters(), |mut t, name| {
            t.push_bind(name);
        });
        let rows: Vec<(String, String)> = show.build_query_as().fetch_all(&mut conn).await?;
        let _ = conn.close().await;
        Ok(rows.into_iter().filter_map(|(name, value)| value.parse().ok().map(|v| (name, v))).collect())
    }

    /// Every chat message stored: (room id, seq) -> body.
    pub async fn chat_messages(&self) -> anyhow::Result<std::collections::HashMap<(u64, u64), String>> {
        let mut conn = self.connect().await?;
        let rows: Vec<(u64, u64, String)> =
            sqlx::query_as("SELECT room_id, seq, body FROM chat_messages").fetch_all(&mut conn).await?;
        let _ = conn.close().await;
        Ok(rows.into_iter().map(|(room, seq, body)| ((room, seq), body)).collect())
    }

    /// Every diary and comment that exists.
    pub async fn committed_causes(&self) -> anyhow::Result<Vec<Cause>> {
        let mut conn = self.connect().await?;
        let diaries: Vec<u64> = sqlx::query_scalar("SELECT id FROM diaries").fetch_all(&mut conn).await?;
        let comments: Vec<u64> = sqlx::query_scalar("SELECT id FROM comments").fetch_all(&mut conn).await?;
        let _ = conn.close().await;
        Ok(diaries.into_iter().map(Cause::diary).chain(comments.into_iter().map(Cause::comment)).collect())
    }

    /// What a world's users did and got, in a database that may hold other runs too (a
    /// deployment's own): the diaries and comments `users` wrote, the notification rows stored
    /// for the first `streaming` of them, and their (recipient, cause) pairs stored twice.
    pub async fn of_users(&self, users: &[u64], streaming: usize) -> anyhow::Result<UsersTruth> {
        let mut conn = self.connect().await?;
        let mut truth = UsersTruth::default();
        for (k, chunk) in users.chunks(1_000).enumerate() {
            // Whole numbers only: nothing to escape.
            let list = chunk.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            let diaries: Vec<u64> = sqlx::query_scalar(&format!("SELECT id FROM diaries WHERE author_id IN ({list})"))
                .fetch_all(&mut conn)
                .await?;
            let comments: Vec<u64> =
                sqlx::query_scalar(&format!("SELECT id FROM comments WHERE author_id IN ({list})"))
                    .fetch_all(&mut conn)
                    .await?;
            truth.causes.extend(diaries.into_iter().map(Cause::diary).chain(comments.into_iter().map(Cause::comment)));
            let first = k * 1_000;
            let streamers = &chunk[..streaming.saturating_sub(first).min(chunk.len())];
            if streamers.is_empty() {
                continue;
            }
            let list = streamers.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            let stored: i64 =
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM notifications WHERE recipient_id IN ({list})"))
                    .fetch_one(&mut conn)
                    .await?;
            let twice: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM notifications WHERE recipient_id IN ({list}) \
                 GROUP BY recipient_id, kind, cause_id HAVING COUNT(*) > 1) t"
            ))
            .fetch_one(&mut conn)
            .await?;
            truth.notifications += stored as u64;
            truth.stored_twice += twice as u64;
        }
        let _ = conn.close().await;
        Ok(truth)
    }

    /// (recipient, cause) pairs stored as more than one row.
    pub async fn stored_twice(&self) -> anyhow::Result<u64> {
        let mut conn = self.connect().await?;
        let twice: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM notifications GROUP BY recipient_id, kind, cause_id HAVING COUNT(*) > 1) t",
        )
        .fetch_one(&mut conn)
        .await?;
        let _ = conn.close().await;
        Ok(twice as u64)
    }

    /// Rental posts whose embedding is DONE.
    pub async fn posts_done(&self) -> anyhow::Result<u64> {
        let mut conn = self.connect().await?;
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rental_items WHERE embed_status = 'DONE'")
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok(done as u64)
    }

    /// The claim side-effect log: `embed_audit` (one row per committed embedding),
    /// `embed_attempts` (one row per embed call, with its outcome), `embed_claims` (one row per
    /// claim, with how many posts it got), for `items` posts released at `released_at`.
    pub async fn claim_ledger(&self, released_at: NaiveDateTime, items: u64) -> anyhow::Result<ClaimLedger> {
        let done = self.posts_done().await?;
        let mut conn = self.connect().await?;
        let doubles: Vec<(u64, u64, i64)> = sqlx::query_as(
            "SELECT item_id, content_version, COUNT(*) FROM embed_audit GROUP BY item_id, content_version \
             HAVING COUNT(*) > 1 ORDER BY item_id",
        )
        .fetch_all(&mut conn)
        .await?;
        let outcomes: Vec<(String, i64)> =
            sqlx::query_as("SELECT outcome, COUNT(*) FROM embed_attempts GROUP BY outcome")
                .fetch_all(&mut conn)
                .await?;
        // Polls that saw no candidate are idleness, not contention: a wasted claim is one that
        // saw candidates and lost every one of them to another worker.
        let (claims, wasted): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(claimed = 0), 0) AS SIGNED) FROM embed_claims WHERE candidates > 0",
        )
        .fetch_one(&mut conn)
        .await?;
        let busy_s: Option<f64> =
            sqlx::query_scalar("SELECT TIMESTAMPDIFF(MICROSECOND, ?, MAX(committed_at)) / 1e6 FROM embed_audit")
                .bind(released_at)
                .fetch_one(&mut conn)
                .await?;
        let _ = conn.close().await;
        let count = |name: &str| outcomes.iter().filter(|(o, _)| o == name).map(|(_, n)| *n as u64).sum::<u64>();
        Ok(ClaimLedger {
            counts: ClaimCounts {
                items,
                done,
                double_processed: doubles.len() as u64,
                stuck: items.saturating_sub(done),
                wasted_claims: wasted as u64,
                claims: claims as u64,
                embed_calls: outcomes.iter().map(|(_, n)| *n as u64).sum(),
                failed_calls: count("failed"),
                fenced: count("fenced"),
            },
            busy_s: busy_s.unwrap_or(0.0).max(0.0),
            double_examples: doubles.iter().take(10).map(|(item, v, n)| format!("{item}@{v} x{n}")).collect(),
        })
    }

    /// After an embed run, for the posts `ids` it created: those not DONE, the (post, version)
    /// pairs committed more than once, and for every embedded post the microseconds from its
    /// row to its embedding's row, both on the database's clock.
    pub async fn embed_ledger(&self, ids: &[u64]) -> anyhow::Result<EmbedLedger> {
        let mut conn = self.connect().await?;
        let mut ledger = EmbedLedger::default();
        for chunk in ids.chunks(1_000) {
            let list = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT i.embed_status = 'DONE', TIMESTAMPDIFF(MICROSECOND, i.created_at, e.created_at) \
                 FROM rental_items i LEFT JOIN rental_embeddings e \
                 ON e.item_id = i.id AND e.content_version = i.content_version WHERE i.id IN ({list})"
            );
            let mut q = sqlx::query_as::<_, (bool, Option<i64>)>(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            let rows = q.fetch_all(&mut conn).await?;
            // A post missing from the table (deleted) is not embedded either.
            ledger.not_embedded += (chunk.len() - rows.len()) as u64;
            for (done, after) in rows {
                match (done, after) {
                    (true, Some(us)) => ledger.embedded_after_us.push(us.max(0) as u64),
                    _ => ledger.not_embedded += 1,
                }
            }
            let sql = format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM embed_audit WHERE item_id IN ({list}) \
                 GROUP BY item_id, content_version HAVING COUNT(*) > 1) t"
            );
            let mut q = sqlx::query_scalar::<_, i64>(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            ledger.embedded_twice += q.fetch_one(&mut conn).await? as u64;
        }
        let _ = conn.close().await;
        Ok(ledger)
    }

    /// The runs of `job` fired by its schedule with a fire time in `[from, to)`.
    pub async fn job_runs(&self, job: &str, from: NaiveDateTime, to: NaiveDateTime) -> anyhow::Result<Vec<JobRun>> {
        let mut conn = self.connect().await?;
        let rows: Vec<(NaiveDateTime, String, String)> = sqlx::query_as(
            "SELECT scheduled_at, instance_id, outcome FROM job_runs \
             WHERE job = ? AND trigger_kind <> 'manual' AND scheduled_at >= ? AND scheduled_at < ? ORDER BY scheduled_at",
        )
        .bind(job)
        .bind(from)
        .bind(to)
        .fetch_all(&mut conn)
        .await?;
        let _ = conn.close().await;
        Ok(rows.into_iter().map(|(fire_at, instance, outcome)| JobRun { fire_at, instance, outcome }).collect())
    }

    /// Pairs of approved reservations of one item whose days overlap, and the approved ones.
    pub async fn approvals(&self) -> anyhow::Result<(u64, HashSet<u64>)> {
        let mut conn = self.connect().await?;
        let overlaps: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM rental_reservations a JOIN rental_reservations b \
             ON a.item_id = b.item_id AND a.id < b.id \
             WHERE a.status = 'approved' AND b.status = 'approved' \
             AND a.start_date <= b.end_date AND b.start_date <= a.end_date",
        )
        .fetch_one(&mut conn)
        .await?;
        let approved: Vec<u64> = sqlx::query_scalar("SELECT id FROM rental_reservations WHERE status = 'approved'")
            .fetch_all(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok((overlaps as u64, approved.into_iter().collect()))
    }
}
