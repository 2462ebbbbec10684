//! The `notifications` table: idempotent inserts, replay after an id, listing, read marks.

use sqlx::{MySqlConnection, MySqlPool};

use super::{Kind, NewNotification, Notification};
use crate::pagination::{Page, Paged};

#[derive(sqlx::FromRow)]
struct Row {
    id: u64,
    recipient_id: u64,
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
            kind: Kind::parse(&r.kind).unwrap_or(Kind::Diary),
            cause_id: r.cause_id,
            actor_id: r.actor_id,
            created_at: r.created_at.and_utc(),
            read_at: r.read_at.map(|t| t.and_utc()),
        }
    }
}

const COLUMNS: &str = "id, recipient_id, kind, cause_id, actor_id, created_at, read_at";

/// Whether the outbox relay still has to publish the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    Pending,
    NotNeeded,
}

/// Inserts the batch, skipping (recipient, cause) pairs already stored, and returns the
/// stored rows of the whole batch: the new ones and the ones a redelivery found.
pub async fn insert_batch(
    conn: &mut MySqlConnection,
    batch: &[NewNotification],
    relay: Relay,
) -> sqlx::Result<Vec<Notification>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let relayed = match relay {
        Relay::Pending => "NULL",
        Relay::NotNeeded => "CURRENT_TIMESTAMP(6)",
    };
    let mut insert =
        sqlx::QueryBuilder::new("INSERT INTO notifications (recipient_id, kind, cause_id, actor_id, relayed_at) ");
    insert.push_values(batch, |mut row, n| {
        row.push_bind(n.recipient_id)
            .push_bind(n.kind.as_str())
            .push_bind(n.cause_id)
            .push_bind(n.actor_id)
            .push(relayed);
    });
    // A duplicate (recipient, kind, cause) is a redelivery: keep the first row.
    insert.push(" ON DUPLICATE KEY UPDATE id = id");
    insert.build().execute(&mut *conn).await?;
    let mut select = sqlx::QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM notifications WHERE (recipient_id, kind, cause_id) IN "
    ));
    select.push_tuples(batch, |mut t, n| {
        t.push_bind(n.recipient_id).push_bind(n.kind.as_str()).push_bind(n.cause_id);
    });
    let rows: Vec<Row> = select.build_query_as().fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

/// The rows with these ids, in id order.
pub async fn by_ids(conn: &mut MySqlConnection, ids: &[u64]) -> sqlx::Result<Vec<Notification>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut q = sqlx::QueryBuilder::new(format!("SELECT {COLUMNS} FROM notifications WHERE id IN "));
        q.push_tuples(chunk, |mut t, id| {
            t.push_bind(*id);
        });
        q.push(" ORDER BY id");
        let rows: Vec<Row> = q.build_query_as().fetch_all(&mut *conn).await?;
        out.extend(rows.into_iter().map(Notification::from));
    }
    Ok(out)
}

/// The recipient's highest stored notification id, 0 when there is none: where a stream that
/// starts now resumes from.
pub async fn latest_id(db: &MySqlPool, recipient: u64) -> sqlx::Result<u64> {
    let id: Option<u64> = sqlx::query_scalar("SELECT MAX(id) FROM notifications WHERE recipient_id = ?")
        .bind(recipient)
        .fetch_one(db)
        .await?;
    Ok(id.unwrap_or(0))
}

/// The recipient's notifications with id > `after`, oldest first, at most `limit`.
pub async fn after(db: &MySqlPool, recipient: u64, after: u64, limit: u32) -> sqlx::Result<Vec<Notification>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE recipient_id = ? AND id > ? ORDER BY id LIMIT ?"
    ))
    .bind(recipient)
    .bind(after)
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
