//! Guestbooks: anyone signed in may write on a user's guestbook; an entry may be deleted by
//! its author or by the guestbook's owner.

use serde::Serialize;
use sqlx::MySqlPool;

use crate::diary::text_field;
use crate::error::ApiError;
use crate::pagination::{Page, Paged};

pub const CONTENT_MAX: usize = 1_000;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = GuestbookEntry)]
pub struct Entry {
    pub id: u64,
    pub owner_id: u64,
    pub author_id: u64,
    pub content: String,
    #[serde(serialize_with = "crate::time::serialize_utc")]
    pub created_at: chrono::NaiveDateTime,
}

const COLUMNS: &str = "id, owner_id, author_id, content, created_at";

fn not_found(id: u64) -> ApiError {
    ApiError::not_found("guestbook_entry_not_found", format!("no guestbook entry {id}"))
}

async fn user_exists(db: &MySqlPool, id: u64) -> sqlx::Result<bool> {
    Ok(sqlx::query_scalar::<_, u64>("SELECT id FROM users WHERE id = ?").bind(id).fetch_optional(db).await?.is_some())
}

#[tracing::instrument(skip(db, content), fields(user_id = author))]
pub async fn write(db: &MySqlPool, author: u64, owner: u64, content: &str) -> Result<Entry, ApiError> {
    let content = text_field("content", content, CONTENT_MAX)?;
    if !user_exists(db, owner).await? {
        return Err(ApiError::not_found("user_not_found", format!("no user {owner}")));
    }
    let id = sqlx::query("INSERT INTO guestbook_entries (owner_id, author_id, content) VALUES (?, ?, ?)")
        .bind(owner)
        .bind(author)
        .bind(&content)
        .execute(db)
        .await?
        .last_insert_id();
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM guestbook_entries WHERE id = ?"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Newest first.
pub async fn list(db: &MySqlPool, owner: u64, page: Page) -> Result<Paged<Entry>, ApiError> {
    if !user_exists(db, owner).await? {
        return Err(ApiError::not_found("user_not_found", format!("no user {owner}")));
    }
    let rows: Vec<Entry> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM guestbook_entries WHERE owner_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
    ))
    .bind(owner)
    .bind(page.after.unwrap_or(u64::MAX))
    .bind(page.limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Paged::from_rows(rows, page, |e| e.id))
}

#[tracing::instrument(skip(db), fields(user_id = viewer))]
pub async fn delete(db: &MySqlPool, viewer: u64, id: u64) -> Result<(), ApiError> {
    let entry: Entry = sqlx::query_as(&format!("SELECT {COLUMNS} FROM guestbook_entries WHERE id = ?"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| not_found(id))?;
    if entry.author_id != viewer && entry.owner_id != viewer {
        return Err(ApiError::Forbidden(format!(
            "guestbook entry {id} is not yours: only its author or the guestbook's owner may delete it"
        )));
    }
    sqlx::query("DELETE FROM guestbook_entries WHERE id = ?").bind(id).execute(db).await?;
    Ok(())
}
