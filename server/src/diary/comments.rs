//! Comments on diaries: only those who may see a diary may read or write its comments.

use serde::Serialize;
use sqlx::MySqlPool;

use super::{get_visible, text_field};
use crate::error::ApiError;
use crate::notify::Notifier;
use crate::pagination::{Page, Paged};
use crate::points::{self, Reason};

pub const CONTENT_MAX: usize = 2_000;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Comment {
    pub id: u64,
    pub diary_id: u64,
    /// `null` for the AI's comment.
    pub author_id: Option<u64>,
    pub content: String,
    #[sqlx(rename = "is_ai")]
    pub ai: bool,
    #[serde(serialize_with = "crate::time::serialize_utc")]
    pub created_at: chrono::NaiveDateTime,
}

const COLUMNS: &str = "id, diary_id, author_id, content, (ai_for_diary IS NOT NULL) AS is_ai, created_at";

/// Posts a comment and the commenter's point award in one transaction, then notifies the
/// diary's owner. A comment on one's own diary earns nothing; earnings are capped per day.
#[tracing::instrument(skip(db, notifier, content), fields(user_id = author))]
pub async fn create(
    db: &MySqlPool,
    notifier: &Notifier,
    author: u64,
    diary_id: u64,
    content: &str,
    reward: i64,
    daily_cap: i64,
) -> Result<Comment, ApiError> {
    let content = text_field("content", content, CONTENT_MAX)?;
    let diary = get_visible(db, author, diary_id).await?;
    // Its time is set here, to the microsecond the column keeps: the answer is what was
    // written, not read back after the commit.
    let created_at = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6).naive_utc();
    let mut tx = db.begin().await?;
    let id = sqlx::query("INSERT INTO comments (diary_id, author_id, content, created_at) VALUES (?, ?, ?, ?)")
        .bind(diary_id)
        .bind(author)
        .bind(&content)
        .bind(created_at)
        .execute(&mut *tx)
        .await?
        .last_insert_id();
    if reward > 0 && diary.author_id != author {
        points::award(&mut tx, author, reward, Reason::CommentWritten, Some(id), daily_cap)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    let batch = Notifier::for_comment(diary.author_id, author, id);
    notifier.commit(tx, batch).await?;
    Ok(Comment { id, diary_id, author_id: Some(author), content, ai: false, created_at })
}

/// Posts the AI's comment on `diary_id`; `Ok(None)` when it already has one (a retried job)
/// or the diary was deleted while the comment was being written.
pub async fn create_ai(db: &MySqlPool, diary_id: u64, content: &str) -> sqlx::Result<Option<u64>> {
    let result =
        sqlx::query("INSERT INTO comments (diary_id, author_id, content, ai_for_diary) VALUES (?, NULL, ?, ?)")
            .bind(diary_id)
            .bind(content)
            .bind(diary_id)
            .execute(db)
            .await;
    match result {
        Ok(done) => Ok(Some(done.last_insert_id())),
        Err(e) if crate::error::violated_constraint(&e).as_deref() == Some("uq_comments_ai_for_diary") => Ok(None),
        // The diary is gone (its job row went with it): nothing to comment on, not a failure.
        Err(e) if crate::error::violated_constraint(&e).as_deref() == Some("fk_comments_diary") => {
            tracing::debug!(diary_id, "diary deleted while its AI comment was written");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn fetch(db: &MySqlPool, id: u64) -> sqlx::Result<Option<Comment>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM comments WHERE id = ?")).bind(id).fetch_optional(db).await
}

fn not_found(id: u64) -> ApiError {
    ApiError::not_found("comment_not_found", format!("no comment {id} that you can see"))
}

/// Oldest first, like a conversation.
pub async fn list(db: &MySqlPool, viewer: u64, diary_id: u64, page: Page) -> Result<Paged<Comment>, ApiError> {
    get_visible(db, viewer, diary_id).await?;
    let rows: Vec<Comment> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM comments WHERE diary_id = ? AND id > ? ORDER BY id ASC LIMIT ?"
    ))
    .bind(diary_id)
    .bind(page.after.unwrap_or(0))
    .bind(page.limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Paged::from_rows(rows, page, |c| c.id))
}

/// The comment's author or the diary's owner may delete it.
#[tracing::instrument(skip(db), fields(user_id = viewer))]
pub async fn delete(db: &MySqlPool, viewer: u64, id: u64) -> Result<(), ApiError> {
    let comment = fetch(db, id).await?.ok_or_else(|| not_found(id))?;
    let diary = get_visible(db, viewer, comment.diary_id).await.map_err(|_| not_found(id))?;
    if comment.author_id != Some(viewer) && diary.author_id != viewer {
        return Err(ApiError::Forbidden(format!(
            "comment {id} is someone else's: only its author or the diary's owner may delete it"
        )));
    }
    // The comment and the points it earned its author go together.
    let mut tx = db.begin().await?;
    let deleted = sqlx::query("DELETE FROM comments WHERE id = ?").bind(id).execute(&mut *tx).await?.rows_affected();
    if let (true, Some(author)) = (deleted > 0, comment.author_id) {
        points::take_back(&mut tx, author, Reason::CommentWritten, id, Reason::CommentDeleted)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    tx.commit().await?;
    Ok(())
}
