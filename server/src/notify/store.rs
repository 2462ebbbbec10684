//! The `notifications` table: inserts that assign each recipient's sequence in commit order,
//! replay after a seq, listing, read marks.

use std::collections::{HashMap, HashSet};

use sqlx::{MySqlConnection, MySqlPool};

use super::{Kind, NewNotification, Notification};
use crate::pagination::{Page, Paged};

#[derive(sqlx::FromRow)]
struct Row {
    id: u64,
    recipient_id: u64,
    seq: u64,
    kind: String,
    cause_id: u64,
    actor_id: u64,
    created_at: chrono::NaiveDateTime,
    read_at: Option<chrono::NaiveDateTime>,
}

impl From<Row> for Notification {
    fn from(r: Row) -> Self {
        Notification {
            id: r.id,
            recipient_id: r.recipient_id,
            seq: r.seq,
            kind: Kind::parse(&r.kind).unwrap_or(Kind::Diary),
            cause_id: r.cause_id,
            actor_id: r.actor_id,
            created_at: r.created_at.and_utc(),
            read_at: r.read_at.map(|t| t.and_utc()),
        }
    }
}

const COLUMNS: &str = "id, recipient_id, seq, kind, cause_id, actor_id, created_at, read_at";

/// Whether the outbox relay still has to publish the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    Pending,
    NotNeeded,
}

/// Stores the batch and returns the stored rows of the whole batch: the new ones and the ones a
/// redelivery found already stored, in (recipient, seq) order.
///
/// **`tx` must be inside a transaction**, committed by the caller: each recipient's
/// `notification_streams` row is locked from the moment its next seq is taken until that
/// commit, so seqs become visible in the order they were assigned (see the migration
/// `20261202000001_notification_seq.sql`). Rows are locked in recipient order, so two batches
/// never wait for each other in a cycle. A (recipient, kind, cause) already stored is a
/// redelivery: it keeps its row and its seq, and takes no new one.
pub async fn insert_batch(
    tx: &mut MySqlConnection,
    batch: &[NewNotification],
    relay: Relay,
) -> sqlx::Result<Vec<Notification>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut recipients: Vec<u64> = batch.iter().map(|n| n.recipient_id).collect();
    recipients.sort_unstable();
    recipients.dedup();
    let mut last_seq = lock_streams(tx, &recipients).await?;
    if last_seq.len() < recipients.len() {
        // A user whose row is missing (created by hand, not by sign-up): create it, then lock.
        let missing: Vec<u64> = recipients.iter().copied().filter(|r| !last_seq.contains_key(r)).collect();
        let mut create = sqlx::QueryBuilder::new("INSERT IGNORE INTO notification_streams (recipient_id) ");
        create.push_values(&missing, |mut row, r| {
            row.push_bind(*r);
        });
        create.build().execute(&mut *tx).await?;
        last_seq = lock_streams(tx, &recipients).await?;
    }
    // Read under the locks: a concurrent store of the same pair waits for them, so it cannot
    // commit between this read and our insert.
    let mut stored = by_causes(tx, batch).await?;
    let mut seen: HashSet<(u64, Kind, u64)> = stored.iter().map(|n| (n.recipient_id, n.kind, n.cause_id)).collect();
    let mut fresh: Vec<(u64, &NewNotification)> = Vec::new();
    for n in batch {
        if seen.insert((n.recipient_id, n.kind, n.cause_id)) {
            let seq = last_seq.entry(n.recipient_id).or_default();
            *seq += 1;
            fresh.push((*seq, n));
        }
    }
    if !fresh.is_empty() {
        let relayed = match relay {
            Relay::Pending => "NULL",
            Relay::NotNeeded => "CURRENT_TIMESTAMP(6)",
        };
        // One statement that inserts and returns the rows. sqlx sees no columns in a prepared
        // INSERT ... RETURNING on MariaDB, so it goes as text; every value in it is a number
        // or a kind's fixed name, nothing a user wrote.
        let values: Vec<String> = fresh
            .iter()
            .map(|(seq, n)| {
                format!("({}, {seq}, '{}', {}, {}, {relayed})", n.recipient_id, n.kind.as_str(), n.cause_id, n.actor_id)
            })
            .collect();
        let insert = format!(
            "INSERT INTO notifications (recipient_id, seq, kind, cause_id, actor_id, relayed_at) VALUES {} \
             RETURNING {COLUMNS}",
            values.join(", ")
        );
        let rows = sqlx::Executor::fetch_all(&mut *tx, insert.as_str()).await?;
        let rows = rows.iter().map(<Row as sqlx::FromRow<_>>::from_row).collect::<Result<Vec<Row>, _>>()?;
        stored.extend(rows.into_iter().map(Notification::from));
        let mut advance = sqlx::QueryBuilder::new("UPDATE notification_streams SET last_seq = CASE recipient_id");
        let mut touched: Vec<u64> = fresh.iter().map(|(_, n)| n.recipient_id).collect();
        touched.sort_unstable();
        touched.dedup();
        for r in &touched {
            advance.push(" WHEN ").push_bind(*r).push(" THEN ").push_bind(last_seq[r]);
        }
        advance.push(" END WHERE recipient_id IN ");
        advance.push_tuples(&touched, |mut t, r| {
            t.push_bind(*r);
        });
        advance.build().execute(&mut *tx).await?;
    }
    stored.sort_unstable_by_key(|n| (n.recipient_id, n.seq));
    Ok(stored)
}

/// Locks the sequence rows of `recipients` (sorted) in that order; returns their last seqs.
async fn lock_streams(tx: &mut MySqlConnection, recipients: &[u64]) -> sqlx::Result<HashMap<u64, u64>> {
    let mut q =
        sqlx::QueryBuilder::new("SELECT recipient_id, last_seq FROM notification_streams WHERE recipient_id IN ");
    q.push_tuples(recipients, |mut t, r| {
        t.push_bind(*r);
    });
    q.push(" ORDER BY recipient_id FOR UPDATE");
    let rows: Vec<(u64, u64)> = q.build_query_as().fetch_all(&mut *tx).await?;
    Ok(rows.into_iter().collect())
}

/// The stored rows of these (recipient, kind, cause) pairs.
async fn by_causes(conn: &mut MySqlConnection, batch: &[NewNotification]) -> sqlx::Result<Vec<Notification>> {
    let mut select = sqlx::QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM notifications WHERE (recipient_id, kind, cause_id) IN "
    ));
    select.push_tuples(batch, |mut t, n| {
        t.push_bind(n.recipient_id).push_bind(n.kind.as_str()).push_bind(n.cause_id);
    });
    let rows: Vec<Row> = select.build_query_as().fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

/// The oldest `limit` rows the outbox relay has not published yet and no other relay holds,
/// locked until the caller's transaction ends (`FOR UPDATE SKIP LOCKED`: concurrent relays
/// take disjoint rows and never wait for each other), in id order.
pub async fn claim_unrelayed(tx: &mut MySqlConnection, limit: u32) -> sqlx::Result<Vec<Notification>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE relayed_at IS NULL ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED"
    ))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

/// The recipient's highest committed seq, 0 when there is none: where a stream that starts
/// now resumes from.
pub async fn latest_seq(db: &MySqlPool, recipient: u64) -> sqlx::Result<u64> {
    let seq: Option<u64> = sqlx::query_scalar("SELECT MAX(seq) FROM notifications WHERE recipient_id = ?")
        .bind(recipient)
        .fetch_one(db)
        .await?;
    Ok(seq.unwrap_or(0))
}

/// The recipient's notifications with `after < seq <= upto`, in seq order, at most `limit`.
pub async fn between(
    db: &MySqlPool,
    recipient: u64,
    after: u64,
    upto: u64,
    limit: u32,
) -> sqlx::Result<Vec<Notification>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE recipient_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
    ))
    .bind(recipient)
    .bind(after)
    .bind(upto)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

/// Newest first.
pub async fn list(db: &MySqlPool, recipient: u64, unread_only: bool, page: Page) -> sqlx::Result<Paged<Notification>> {
    let unread = if unread_only { "AND read_at IS NULL" } else { "" };
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE recipient_id = ? AND id < ? {unread} ORDER BY id DESC LIMIT ?"
    ))
    .bind(recipient)
    .bind(page.after.unwrap_or(u64::MAX))
    .bind(page.limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Paged::from_rows(rows.into_iter().map(Notification::from).collect(), page, |n| n.id))
}

/// Marks one of the recipient's notifications read; false when it is not theirs or absent.
pub async fn mark_read(db: &MySqlPool, recipient: u64, id: u64) -> sqlx::Result<bool> {
    let found: Option<u64> = sqlx::query_scalar("SELECT id FROM notifications WHERE id = ? AND recipient_id = ?")
        .bind(id)
        .bind(recipient)
        .fetch_optional(db)
        .await?;
    if found.is_none() {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE notifications SET read_at = COALESCE(read_at, CURRENT_TIMESTAMP(6)) WHERE id = ? AND recipient_id = ?",
    )
    .bind(id)
    .bind(recipient)
    .execute(db)
    .await?;
    Ok(true)
}

pub async fn mark_all_read(db: &MySqlPool, recipient: u64) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE notifications SET read_at = CURRENT_TIMESTAMP(6) WHERE recipient_id = ? AND read_at IS NULL",
    )
    .bind(recipient)
    .execute(db)
    .await?
    .rows_affected())
}
