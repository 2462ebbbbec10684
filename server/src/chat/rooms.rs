//! Rooms and their members. A room is about one rental item, opened by a renter with the
//! item's owner; the owner may add more members. Only members see a room: to anyone else it
//! does not exist (404), so room ids leak nothing.

use serde::Serialize;
use sqlx::{MySqlPool, Row};

use super::ChatMessage;
use crate::error::ApiError;
use crate::pagination::{Page, Paged};

/// A room as a member sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Room {
    pub id: u64,
    pub item_id: u64,
    pub item_title: String,
    pub renter_id: u64,
    pub owner_id: u64,
    /// Every member's user id, ascending.
    pub members: Vec<u64>,
    /// The seq of the last message (0: none yet).
    pub last_seq: u64,
    /// Messages after the caller's last read one.
    pub unread: u64,
    pub last_message: Option<ChatMessage>,
    /// The STOMP destination to SUBSCRIBE and SEND to.
    pub destination: String,
}

fn not_found(room_id: u64) -> ApiError {
    ApiError::not_found("room_not_found", format!("no room {room_id} that you are a member of"))
}

/// Whether `user_id` is a member of `room_id` (false when the room does not exist).
pub async fn is_member(db: &MySqlPool, room_id: u64, user_id: u64) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT 1 FROM chat_members WHERE room_id = ? AND user_id = ?")
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

/// Opens the room about `item_id` between `renter_id` and the item's owner, or returns the one
/// already open (`false`). The owner cannot open a room with themselves.
#[tracing::instrument(skip(db))]
pub async fn open(db: &MySqlPool, renter_id: u64, item_id: u64) -> Result<(Room, bool), ApiError> {
    let owner: u64 = sqlx::query("SELECT owner_id FROM rental_items WHERE id = ?")
        .bind(item_id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| ApiError::not_found("rental_not_found", format!("no rental {item_id}")))?
        .try_get("owner_id")?;
    if owner == renter_id {
        return Err(ApiError::Forbidden(format!(
            "rental {item_id} is yours: a room is opened by someone who wants to rent it"
        )));
    }
    let mut tx = db.begin().await?;
    let inserted = sqlx::query("INSERT IGNORE INTO chat_rooms (item_id, renter_id, owner_id) VALUES (?, ?, ?)")
        .bind(item_id)
        .bind(renter_id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    let created = inserted.rows_affected() == 1;
    let room_id: u64 = if created {
        let id = inserted.last_insert_id();
        sqlx::query("INSERT INTO chat_members (room_id, user_id) VALUES (?, ?), (?, ?)")
            .bind(id)
            .bind(renter_id)
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        id
    } else {
        sqlx::query("SELECT id FROM chat_rooms WHERE item_id = ? AND renter_id = ?")
            .bind(item_id)
            .bind(renter_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?
    };
    tx.commit().await?;
    Ok((get(db, renter_id, room_id).await?, created))
}

/// Adds `user_id` to the room; only the item's owner may. Adding a member twice is no change.
#[tracing::instrument(skip(db))]
pub async fn add_member(db: &MySqlPool, caller: u64, room_id: u64, user_id: u64) -> Result<Room, ApiError> {
    let room = get(db, caller, room_id).await?;
    if room.owner_id != caller {
        return Err(ApiError::Forbidden(format!(
            "only the item's owner (user {}) adds members to a room",
            room.owner_id
        )));
    }
    let exists = sqlx::query("SELECT 1 FROM users WHERE id = ?").bind(user_id).fetch_optional(db).await?;
    if exists.is_none() {
        return Err(ApiError::not_found("user_not_found", format!("no user {user_id}")));
    }
    sqlx::query("INSERT IGNORE INTO chat_members (room_id, user_id) VALUES (?, ?)")
        .bind(room_id)
        .bind(user_id)
        .execute(db)
        .await?;
    get(db, caller, room_id).await
}

const ROOM_COLUMNS: &str = "r.id, r.item_id, i.title AS item_title, r.renter_id, r.owner_id, r.last_seq, \
    m.last_read_seq, lm.sender_id AS lm_sender, lm.body AS lm_body, lm.created_at AS lm_at";

const ROOM_FROM: &str = "FROM chat_members m \
    JOIN chat_rooms r ON r.id = m.room_id \
    JOIN rental_items i ON i.id = r.item_id \
    LEFT JOIN chat_messages lm ON lm.room_id = r.id AND lm.seq = r.last_seq";

async fn members(db: &MySqlPool, room_ids: &[u64]) -> Result<Vec<(u64, u64)>, sqlx::Error> {
    if room_ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; room_ids.len()].join(", ");
    let sql = format!("SELECT room_id, user_id FROM chat_members WHERE room_id IN ({marks}) ORDER BY room_id, user_id");
    let mut query = sqlx::query(&sql);
    for id in room_ids {
        query = query.bind(id);
    }
    query.fetch_all(db).await?.iter().map(|r| Ok((r.try_get("room_id")?, r.try_get("user_id")?))).collect()
}

async fn rooms_of(db: &MySqlPool, rows: Vec<sqlx::mysql::MySqlRow>) -> Result<Vec<Room>, ApiError> {
    let ids: Vec<u64> = rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
    let all_members = members(db, &ids).await?;
    let mut rooms = Vec::with_capacity(rows.len());
    for row in rows {
        let id: u64 = row.try_get("id")?;
        let last_seq: u64 = row.try_get("last_seq")?;
        let last_read: u64 = row.try_get("last_read_seq")?;
        let last_message = match row.try_get::<Option<u64>, _>("lm_sender")? {
            Some(sender_id) => Some(ChatMessage {
                room_id: id,
                seq: last_seq,
                sender_id,
                body: row.try_get("lm_body")?,
                sent_at_ms: row.try_get::<chrono::NaiveDateTime, _>("lm_at")?.and_utc().timestamp_millis(),
            }),
            None => None,
        };
        rooms.push(Room {
            id,
            item_id: row.try_get("item_id")?,
            item_title: row.try_get("item_title")?,
            renter_id: row.try_get("renter_id")?,
            owner_id: row.try_get("owner_id")?,
            members: all_members.iter().filter(|(room, _)| *room == id).map(|(_, user)| *user).collect(),
            last_seq,
            unread: last_seq.saturating_sub(last_read),
            last_message,
            destination: super::room_destination(id),
        });
    }
    Ok(rooms)
}

/// The room, if `user_id` is a member; 404 otherwise.
pub async fn get(db: &MySqlPool, user_id: u64, room_id: u64) -> Result<Room, ApiError> {
    let sql = format!("SELECT {ROOM_COLUMNS} {ROOM_FROM} WHERE m.user_id = ? AND m.room_id = ?");
    let rows = sqlx::query(&sql).bind(user_id).bind(room_id).fetch_all(db).await?;
    rooms_of(db, rows).await?.pop().ok_or_else(|| not_found(room_id))
}

/// The caller's rooms, the most recently opened first.
pub async fn list(db: &MySqlPool, user_id: u64, page: Page) -> Result<Paged<Room>, ApiError> {
    let sql = format!("SELECT {ROOM_COLUMNS} {ROOM_FROM} WHERE m.user_id = ? AND r.id < ? ORDER BY r.id DESC LIMIT ?");
    let rows = sqlx::query(&sql)
        .bind(user_id)
        .bind(page.after.unwrap_or(u64::MAX >> 1))
        .bind(page.limit + 1)
        .fetch_all(db)
        .await?;
    Ok(Paged::from_rows(rooms_of(db, rows).await?, page, |r| r.id))
}

/// Which messages of a room to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The newest `limit`, or those before this seq: newest first.
    Before(Option<u64>),
    /// Those after this seq: oldest first.
    After(u64),
}

/// A room's messages, for a member.
pub async fn history(
    db: &MySqlPool,
    user_id: u64,
    room_id: u64,
    window: Window,
    limit: u32,
) -> Result<Vec<ChatMessage>, ApiError> {
    if !is_member(db, room_id, user_id).await? {
        return Err(not_found(room_id));
    }
    Ok(match window {
        Window::Before(before) => super::store::before(db, room_id, before.unwrap_or(u64::MAX >> 1), limit).await?,
        Window::After(after) => super::store::after(db, room_id, after, None, limit).await?,
    })
}

/// Marks the room read up to `seq` (never backwards); returns the room.
pub async fn mark_read(db: &MySqlPool, user_id: u64, room_id: u64, seq: u64) -> Result<Room, ApiError> {
    let room = get(db, user_id, room_id).await?;
    if seq > room.last_seq {
        return Err(ApiError::invalid(
            "seq",
            format!("{seq} is beyond the room's last message (seq {}): mark read what you received", room.last_seq),
        ));
    }
    sqlx::query("UPDATE chat_members SET last_read_seq = GREATEST(last_read_seq, ?) WHERE room_id = ? AND user_id = ?")
        .bind(seq)
        .bind(room_id)
        .bind(user_id)
        .execute(db)
        .await?;
    get(db, user_id, room_id).await
}
