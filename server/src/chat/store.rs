//! Messages: stored once, numbered per room in commit order, read back by seq range.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{MySqlPool, Row};

use super::ChatMessage;

/// The outcome of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message: ChatMessage,
    /// True when the idempotency key had been used by this sender in this room already:
    /// `message` is the one stored then, and nothing was stored now.
    pub duplicate: bool,
}

fn millis(at: NaiveDateTime) -> i64 {
    at.and_utc().timestamp_millis()
}

/// Stores `body` in `room_id` from `sender_id` with the next seq; `None` when the room does
/// not exist. With `key`, a second send of the same key by the same sender in the same room
/// stores nothing and answers the first.
///
/// Taking the seq (`UPDATE ... LAST_INSERT_ID(last_seq + 1)`) locks the room row until the
/// commit, so seqs commit in order: when seq n is visible, every seq below it is too. A send
/// whose key was used already fails its INSERT on the key's unique index and rolls back,
/// handing its seq on. Three statements: the seq, the row, the commit. The caller has checked
/// membership.
#[tracing::instrument(skip(db, body), fields(room_id, sender_id))]
pub async fn send(
    db: &MySqlPool,
    room_id: u64,
    sender_id: u64,
    body: &str,
    key: Option<&str>,
) -> Result<Option<Sent>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let bumped = sqlx::query("UPDATE chat_rooms SET last_seq = LAST_INSERT_ID(last_seq + 1) WHERE id = ?")
        .bind(room_id)
        .execute(&mut *tx)
        .await?;
    if bumped.rows_affected() == 0 {
        return Ok(None);
    }
    let seq = bumped.last_insert_id();
    // Microseconds, as the column keeps them, so the value read back later is the same.
    let now = DateTime::<Utc>::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_default().naive_utc();
    let inserted = sqlx::query(
        "INSERT INTO chat_messages (room_id, seq, sender_id, body, client_key, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(room_id)
    .bind(seq)
    .bind(sender_id)
    .bind(body)
    .bind(key)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {
            tx.commit().await?;
            let message = ChatMessage { room_id, seq, sender_id, body: body.to_string(), sent_at_ms: millis(now) };
            Ok(Some(Sent { message, duplicate: false }))
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() && key.is_some() => {
            tx.rollback().await?;
            let row = sqlx::query(
                "SELECT seq, body, created_at FROM chat_messages WHERE room_id = ? AND sender_id = ? AND client_key = ?",
            )
            .bind(room_id)
            .bind(sender_id)
            .bind(key)
            .fetch_one(db)
            .await?;
            let message = ChatMessage {
                room_id,
                seq: row.try_get("seq")?,
                sender_id,
                body: row.try_get("body")?,
                sent_at_ms: millis(row.try_get("created_at")?),
            };
            Ok(Some(Sent { message, duplicate: true }))
        }
        Err(e) => Err(e),
    }
}

fn message(room_id: u64, row: &sqlx::mysql::MySqlRow) -> Result<ChatMessage, sqlx::Error> {
    Ok(ChatMessage {
        room_id,
        seq: row.try_get("seq")?,
        sender_id: row.try_get("sender_id")?,
        body: row.try_get("body")?,
        sent_at_ms: millis(row.try_get("created_at")?),
    })
}

/// Messages of `room_id` with `after < seq <= up_to` (no upper bound when `None`), in seq
/// order, at most `limit`.
pub async fn after(
    db: &MySqlPool,
    room_id: u64,
    after: u64,
    up_to: Option<u64>,
    limit: u32,
) -> Result<Vec<ChatMessage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, sender_id, body, created_at FROM chat_messages \
         WHERE room_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
    )
    .bind(room_id)
    .bind(after)
    .bind(up_to.unwrap_or(u64::MAX >> 1))
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(|row| message(room_id, row)).collect()
}

/// Messages of `room_id` with seq below `before`, newest first, at most `limit`.
pub async fn before(db: &MySqlPool, room_id: u64, before: u64, limit: u32) -> Result<Vec<ChatMessage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, sender_id, body, created_at FROM chat_messages \
         WHERE room_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
    )
    .bind(room_id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(|row| message(room_id, row)).collect()
}

/// The last seq of each room in `rooms` that exists.
pub async fn last_seqs(db: &MySqlPool, rooms: &[u64]) -> Result<Vec<(u64, u64)>, sqlx::Error> {
    let mut out = Vec::with_capacity(rooms.len());
    for chunk in rooms.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!("SELECT id, last_seq FROM chat_rooms WHERE id IN ({marks})");
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(db).await? {
            out.push((row.try_get("id")?, row.try_get("last_seq")?));
        }
    }
    Ok(out)
}
