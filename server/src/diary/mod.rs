//! Diaries: an entry with an emotion, private or shared with friends.

pub mod comments;

use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

use crate::error::ApiError;
use crate::notify::Notifier;
use crate::pagination::{Page, Paged};
use crate::points::{self, Reason};

pub const TITLE_MAX: usize = 200;
pub const CONTENT_MAX: usize = 10_000;

/// The fixed set of emotions a diary can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Emotion {
    Joy,
    Calm,
    Gratitude,
    Sadness,
    Anxiety,
    Anger,
    Tiredness,
}

impl Emotion {
    pub const ALL: [Emotion; 7] = [
        Emotion::Joy,
        Emotion::Calm,
        Emotion::Gratitude,
        Emotion::Sadness,
        Emotion::Anxiety,
        Emotion::Anger,
        Emotion::Tiredness,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Emotion::Joy => "joy",
            Emotion::Calm => "calm",
            Emotion::Gratitude => "gratitude",
            Emotion::Sadness => "sadness",
            Emotion::Anxiety => "anxiety",
            Emotion::Anger => "anger",
            Emotion::Tiredness => "tiredness",
        }
    }

    pub fn parse(s: &str) -> Option<Emotion> {
        Emotion::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Friends,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Friends => "friends",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "private" => Some(Visibility::Private),
            "friends" => Some(Visibility::Friends),
            _ => None,
        }
    }
}

/// A diary as the API serves it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Diary {
    pub id: u64,
    pub author_id: u64,
    pub title: String,
    pub content: String,
    pub emotion: Emotion,
    pub visibility: Visibility,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(sqlx::FromRow)]
struct DiaryRow {
    id: u64,
    author_id: u64,
    title: String,
    content: String,
    emotion: String,
    visibility: String,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

impl From<DiaryRow> for Diary {
    fn from(r: DiaryRow) -> Self {
        Diary {
            id: r.id,
            author_id: r.author_id,
            title: r.title,
            content: r.content,
            // Only values that passed `Emotion::parse` are ever written.
            emotion: Emotion::parse(&r.emotion).unwrap_or(Emotion::Calm),
            visibility: Visibility::parse(&r.visibility).unwrap_or(Visibility::Private),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
        }
    }
}

const COLUMNS: &str = "id, author_id, title, content, emotion, visibility, created_at, updated_at";

/// The body of `POST /diaries` and `PATCH /diaries/{id}`, as sent.
// Emotion and visibility stay strings here so that an unknown value is a 422 naming the
// field rather than a serde 400; the OpenAPI schema still lists the accepted values.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiaryInput {
    /// Required to create.
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// Required to create.
    #[schema(min_length = 1, max_length = 10000)]
    pub content: Option<String>,
    /// Required to create.
    #[schema(value_type = Option<Emotion>)]
    pub emotion: Option<String>,
    /// `friends` when not given at creation.
    #[schema(value_type = Option<Visibility>)]
    pub visibility: Option<String>,
}

/// What `POST /diaries` requires, for the OpenAPI document: the body is [`DiaryInput`] (whose
/// fields are all optional, as an update takes them), but creating one needs these.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only: nothing reads its fields
pub struct NewDiary {
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    #[schema(min_length = 1, max_length = 10000)]
    content: String,
    emotion: Emotion,
    /// `friends` when not given.
    visibility: Option<Visibility>,
}

/// Validated fields; `None` means "not given" (for updates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiaryFields {
    pub title: Option<String>,
    pub content: Option<String>,
    pub emotion: Option<Emotion>,
    pub visibility: Option<Visibility>,
}

pub fn text_field(field: &'static str, value: &str, max: usize) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    let chars = trimmed.chars().count();
    if chars > max {
        return Err(ApiError::invalid(field, format!("is {chars} characters long; at most {max} are allowed")));
    }
    Ok(trimmed.to_string())
}

impl DiaryInput {
    pub fn parse(&self) -> Result<DiaryFields, ApiError> {
        Ok(DiaryFields {
            title: self.title.as_deref().map(|t| text_field("title", t, TITLE_MAX)).transpose()?,
            content: self.content.as_deref().map(|c| text_field("content", c, CONTENT_MAX)).transpose()?,
            emotion: self
                .emotion
                .as_deref()
                .map(|e| {
                    Emotion::parse(e).ok_or_else(|| {
                        let all: Vec<_> = Emotion::ALL.iter().map(|e| e.as_str()).collect();
                        ApiError::invalid("emotion", format!("unknown emotion `{e}`: use one of {}", all.join(", ")))
                    })
                })
                .transpose()?,
            visibility: self
                .visibility
                .as_deref()
                .map(|v| {
                    Visibility::parse(v).ok_or_else(|| {
                        ApiError::invalid("visibility", format!("unknown visibility `{v}`: use private or friends"))
                    })
                })
                .transpose()?,
        })
    }
}

/// Rewards and follow-up work that writing a diary triggers.
#[derive(Debug, Clone, Copy)]
pub struct OnWrite {
    pub points: i64,
    /// What the author may earn per UTC day in all.
    pub daily_cap: i64,
    pub ai_comment: bool,
}

/// Writes a diary, its point award, its AI comment job and (for the outbox strategy) its
/// notifications in one transaction: either all exist or none does. Friends are notified
/// after the commit.
#[tracing::instrument(skip_all, fields(user_id = author))]
pub async fn create(
    db: &MySqlPool,
    notifier: &Notifier,
    author: u64,
    fields: DiaryFields,
    on_write: OnWrite,
) -> Result<Diary, ApiError> {
    let title = fields.title.ok_or_else(|| ApiError::invalid("title", "is required"))?;
    let content = fields.content.ok_or_else(|| ApiError::invalid("content", "is required"))?;
    let emotion = fields.emotion.ok_or_else(|| ApiError::invalid("emotion", "is required"))?;
    let visibility = fields.visibility.unwrap_or(Visibility::Friends);
    // The row's times are set here, to the microsecond the column keeps, so that the answer
    // is built from what was written rather than read back after the commit.
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
    let mut tx = db.begin().await?;
    let id = sqlx::query(
        "INSERT INTO diaries (author_id, title, content, emotion, visibility, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(author)
    .bind(&title)
    .bind(&content)
    .bind(emotion.as_str())
    .bind(visibility.as_str())
    .bind(now.naive_utc())
    .bind(now.naive_utc())
    .execute(&mut *tx)
    .await?
    .last_insert_id();
    if on_write.points > 0 {
        points::award(&mut tx, author, on_write.points, Reason::DiaryWritten, Some(id), on_write.daily_cap)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    if on_write.ai_comment {
        sqlx::query("INSERT INTO ai_comment_jobs (diary_id) VALUES (?)").bind(id).execute(&mut *tx).await?;
    }
    let batch = match visibility {
        Visibility::Friends => Notifier::for_diary(&mut tx, author, id).await?,
        Visibility::Private => Vec::new(),
    };
    notifier.commit(tx, batch).await?;
    Ok(Diary { id, author_id: author, title, content, emotion, visibility, created_at: now, updated_at: now })
}

async fn fetch(db: &MySqlPool, id: u64) -> sqlx::Result<Option<Diary>> {
    let row: Option<DiaryRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM diaries WHERE id = ?")).bind(id).fetch_optional(db).await?;
    Ok(row.map(Diary::from))
}

fn not_found(id: u64) -> ApiError {
    ApiError::not_found("diary_not_found", format!("no diary {id} that you can see"))
}

#[derive(sqlx::FromRow)]
struct SeenRow {
    #[sqlx(flatten)]
    diary: DiaryRow,
    /// 1 when the viewer is a friend of the author.
    friend: i64,
}

/// The diary if `viewer` may see it (its author, or a friend of the author when shared);
/// 404 alike for "absent" and "not yours to see". One statement: the friendship is read
/// with the diary.
#[tracing::instrument(skip(db), fields(user_id = viewer))]
pub async fn get_visible(db: &MySqlPool, viewer: u64, id: u64) -> Result<Diary, ApiError> {
    let row: Option<SeenRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, CAST(EXISTS(SELECT 1 FROM friendships f WHERE f.user_id = ? AND f.friend_id = d.author_id) \
         AS SIGNED) AS friend FROM diaries d WHERE d.id = ?"
    ))
    .bind(viewer)
    .bind(id)
    .fetch_optional(db)
    .await?;
    let Some(SeenRow { diary, friend }) = row else { return Err(not_found(id)) };
    let diary = Diary::from(diary);
    let visible = diary.author_id == viewer || (diary.visibility == Visibility::Friends && friend == 1);
    if visible { Ok(diary) } else { Err(not_found(id)) }
}

/// The diary if `viewer` wrote it: 404 when they cannot see it, 403 when they can but it
/// is a friend's.
async fn get_own(db: &MySqlPool, viewer: u64, id: u64) -> Result<Diary, ApiError> {
    let diary = get_visible(db, viewer, id).await?;
    if diary.author_id != viewer {
        return Err(ApiError::Forbidden(format!("diary {id} is a friend's: only its author may change it")));
    }
    Ok(diary)
}

#[tracing::instrument(skip(db, fields), fields(user_id = viewer))]
pub async fn update(db: &MySqlPool, viewer: u64, id: u64, fields: DiaryFields) -> Result<Diary, ApiError> {
    let current = get_own(db, viewer, id).await?;
    if fields == DiaryFields::default() {
        return Err(ApiError::invalid(
            "title",
            "nothing to change: send at least one of title, content, emotion, visibility",
        ));
    }
    // The server's clock, as at creation (never before the creation time it set).
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
    sqlx::query(
        "UPDATE diaries SET title = ?, content = ?, emotion = ?, visibility = ?, updated_at = GREATEST(?, created_at) \
         WHERE id = ? AND author_id = ?",
    )
    .bind(fields.title.unwrap_or(current.title))
    .bind(fields.content.unwrap_or(current.content))
    .bind(fields.emotion.unwrap_or(current.emotion).as_str())
    .bind(fields.visibility.unwrap_or(current.visibility).as_str())
    .bind(now.naive_utc())
    .bind(id)
    .bind(viewer)
    .execute(db)
    .await?;
    fetch(db, id).await?.ok_or_else(|| not_found(id))
}

#[tracing::instrument(skip(db), fields(user_id = viewer))]
pub async fn delete(db: &MySqlPool, viewer: u64, id: u64) -> Result<(), ApiError> {
    get_own(db, viewer, id).await?;
    // The diary and the points it earned go together: write-and-delete earns nothing.
    let mut tx = db.begin().await?;
    let deleted = sqlx::query("DELETE FROM diaries WHERE id = ? AND author_id = ?")
        .bind(id)
        .bind(viewer)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted > 0 {
        points::take_back(&mut tx, viewer, Reason::DiaryWritten, id, Reason::DiaryDeleted)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    tx.commit().await?;
    Ok(())
}

/// One's own diaries, newest first.
pub async fn list_own(db: &MySqlPool, user: u64, page: Page) -> sqlx::Result<Paged<Diary>> {
    let rows: Vec<DiaryRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM diaries WHERE author_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
    ))
    .bind(user)
    .bind(page.after.unwrap_or(u64::MAX))
    .bind(page.limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Paged::from_rows(rows.into_iter().map(Diary::from).collect(), page, |d| d.id))
}

/// Friends' shared diaries, newest first.
pub async fn list_friends(db: &MySqlPool, user: u64, page: Page) -> sqlx::Result<Paged<Diary>> {
    let rows: Vec<DiaryRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM diaries WHERE visibility = 'friends' AND id < ? \
         AND author_id IN (SELECT friend_id FROM friendships WHERE user_id = ?) ORDER BY id DESC LIMIT ?"
    ))
    .bind(page.after.unwrap_or(u64::MAX))
    .bind(user)
    .bind(page.limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Paged::from_rows(rows.into_iter().map(Diary::from).collect(), page, |d| d.id))
}
