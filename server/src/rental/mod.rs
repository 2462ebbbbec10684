//! Rentals: items users lend to each other, their reservations, and the embedding state that
//! semantic search reads. Owns the `rental_*` tables and every query on them.

pub mod approval;
pub mod embedding;
pub mod input;
pub mod reservations;

use serde::Serialize;
use sqlx::{MySqlPool, Row};

use crate::error::ApiError;
use crate::pagination::{Page, Paged};

pub use input::{RentalFields, RentalInput};

/// The fixed set of categories an item is listed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Camping,
    Tools,
    Electronics,
    Sports,
    Kids,
    Home,
    Fashion,
    Other,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::Camping,
        Category::Tools,
        Category::Electronics,
        Category::Sports,
        Category::Kids,
        Category::Home,
        Category::Fashion,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Camping => "camping",
            Category::Tools => "tools",
            Category::Electronics => "electronics",
            Category::Sports => "sports",
            Category::Kids => "kids",
            Category::Home => "home",
            Category::Fashion => "fashion",
            Category::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Parses a request value; the error names `field` and lists the accepted values.
    pub fn parse_field(field: &'static str, s: &str) -> Result<Category, ApiError> {
        Category::parse(s).ok_or_else(|| {
            let all: Vec<_> = Category::ALL.iter().map(|c| c.as_str()).collect();
            ApiError::invalid(field, format!("unknown category `{s}`: use one of {}", all.join(", ")))
        })
    }
}

/// Where an item's embedding stands (the seed's WAIT -> PENDING -> DONE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum EmbedStatus {
    /// Needs an embedding of its current content.
    Wait,
    /// A worker claimed it and is embedding it.
    Pending,
    /// The embedding of `content_version` is stored; vector search can find it.
    Done,
}

impl EmbedStatus {
    fn parse(s: &str) -> EmbedStatus {
        match s {
            "DONE" => EmbedStatus::Done,
            "PENDING" => EmbedStatus::Pending,
            _ => EmbedStatus::Wait,
        }
    }
}

/// An item as the API serves it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rental {
    pub id: u64,
    pub owner_id: u64,
    pub title: String,
    pub description: String,
    pub category: Category,
    /// Whole currency units per day.
    pub price_per_day: u32,
    pub deposit: u32,
    pub location: String,
    pub photo_urls: Vec<String>,
    /// Bumped by every change of title, description or category.
    pub content_version: u64,
    pub embed_status: EmbedStatus,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The columns [`Rental::from_row`] reads, prefixed with the alias `i`. MariaDB's JSON is a
/// LONGTEXT with a binary collation, which sqlx sees as a BLOB: cast it to text.
pub const COLUMNS: &str = "i.id, i.owner_id, i.title, i.description, i.category, i.price_per_day, i.deposit, \
    i.location, CAST(i.photo_urls AS CHAR) AS photo_urls, i.content_version, CAST(i.embed_status AS CHAR) AS embed_status, i.created_at, \
    i.updated_at";

impl Rental {
    pub fn from_row(row: &sqlx::mysql::MySqlRow) -> sqlx::Result<Rental> {
        let photos: String = row.try_get("photo_urls")?;
        let category: String = row.try_get("category")?;
        let status: String = row.try_get("embed_status")?;
        Ok(Rental {
            id: row.try_get("id")?,
            owner_id: row.try_get("owner_id")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            // The CHECK constraint admits only the values of `Category`.
            category: Category::parse(&category).unwrap_or(Category::Other),
            price_per_day: row.try_get("price_per_day")?,
            deposit: row.try_get("deposit")?,
            location: row.try_get("location")?,
            photo_urls: serde_json::from_str(&photos).unwrap_or_default(),
            content_version: row.try_get("content_version")?,
            embed_status: EmbedStatus::parse(&status),
            created_at: row.try_get::<chrono::NaiveDateTime, _>("created_at")?.and_utc(),
            updated_at: row.try_get::<chrono::NaiveDateTime, _>("updated_at")?.and_utc(),
        })
    }
}

pub async fn fetch(db: &MySqlPool, id: u64) -> sqlx::Result<Option<Rental>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM rental_items i WHERE i.id = ?"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(Rental::from_row).transpose()
}

pub fn not_found(id: u64) -> ApiError {
    ApiError::not_found("rental_not_found", format!("no rental {id}"))
}

/// Any signed-in user may see every item: it is a marketplace.
pub async fn get(db: &MySqlPool, id: u64) -> Result<Rental, ApiError> {
    fetch(db, id).await?.ok_or_else(|| not_found(id))
}

/// 404 when absent; 403 when it is someone else's (items are public, so existence is no secret).
async fn get_own(db: &MySqlPool, viewer: u64, id: u64) -> Result<Rental, ApiError> {
    let item = get(db, id).await?;
    if item.owner_id != viewer {
        return Err(ApiError::Forbidden(format!("rental {id} is someone else's: only its owner may change it")));
    }
    Ok(item)
}

/// Lists an item, WAIT for the embed workers, or claimed under `hold` (see
/// [`embedding::Hold`]) for its writer to embed.
#[tracing::instrument(skip_all, fields(user_id = owner))]
pub async fn create(
    db: &MySqlPool,
    owner: u64,
    fields: RentalFields,
    hold: Option<&embedding::Hold>,
) -> Result<Rental, ApiError> {
    let title = fields.title.ok_or_else(|| ApiError::invalid("title", "is required"))?;
    let category = fields.category.ok_or_else(|| ApiError::invalid("category", "is required"))?;
    let price = fields.price_per_day.ok_or_else(|| ApiError::invalid("price_per_day", "is required"))?;
    let photos = fields.photo_urls.unwrap_or_default();
    let id = sqlx::query(
        "INSERT INTO rental_items (owner_id, title, description, category, price_per_day, deposit, location, \
         photo_urls, embed_status, claim_token, claimed_by, claimed_until) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, IF(? IS NULL, 'WAIT', 'PENDING'), ?, ?, NOW(6) + INTERVAL ? SECOND)",
    )
    .bind(owner)
    .bind(&title)
    .bind(fields.description.unwrap_or_default())
    .bind(category.as_str())
    .bind(price)
    .bind(fields.deposit.unwrap_or(0))
    .bind(fields.location.unwrap_or_default())
    .bind(serde_json::Value::from(photos).to_string())
    .bind(hold.map(|h| &h.token))
    .bind(hold.map(|h| &h.token))
    .bind(hold.map(|h| &h.instance_id))
    // NULL interval: NULL claimed_until, as an unclaimed row has.
    .bind(hold.map(|h| h.lease_s))
    .execute(db)
    .await?
    .last_insert_id();
    fetch(db, id).await?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("rental {id} vanished after insert")))
}

/// Changes the fields sent. A change of title, description or category is a new content
/// version: `content_version` goes up, `embed_status` back to WAIT and any claim is dropped,
/// so the worker embeds the new text and a worker still holding the old one writes nothing.
#[tracing::instrument(skip(db, fields), fields(user_id = viewer))]
pub async fn update(db: &MySqlPool, viewer: u64, id: u64, fields: RentalFields) -> Result<Rental, ApiError> {
    get_own(db, viewer, id).await?;
    if fields == RentalFields::default() {
        return Err(ApiError::invalid(
            "title",
            "nothing to change: send at least one of title, description, category, price_per_day, deposit, \
             location, photo_urls",
        ));
    }
    let mut tx = db.begin().await?;
    // Locked so that two edits cannot both decide "content unchanged" from the same read.
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM rental_items i WHERE i.id = ? FOR UPDATE"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let current = row.as_ref().map(Rental::from_row).transpose()?.ok_or_else(|| not_found(id))?;
    // Compared in Rust: the column collation would call `Tent` and `tent` equal.
    let content_changed = fields.title.as_ref().is_some_and(|t| *t != current.title)
        || fields.description.as_ref().is_some_and(|d| *d != current.description)
        || fields.category.is_some_and(|c| c != current.category);
    let photos = fields.photo_urls.unwrap_or(current.photo_urls);
    sqlx::query(
        "UPDATE rental_items SET title = ?, description = ?, category = ?, price_per_day = ?, deposit = ?, \
         location = ?, photo_urls = ?, content_version = content_version + ?, \
         embed_status = IF(?, 'WAIT', embed_status), claim_token = IF(?, NULL, claim_token), \
         claimed_by = IF(?, NULL, claimed_by), claimed_until = IF(?, NULL, claimed_until), \
         updated_at = CURRENT_TIMESTAMP(6) WHERE id = ?",
    )
    .bind(fields.title.unwrap_or(current.title))
    .bind(fields.description.unwrap_or(current.description))
    .bind(fields.category.unwrap_or(current.category).as_str())
    .bind(fields.price_per_day.unwrap_or(current.price_per_day))
    .bind(fields.deposit.unwrap_or(current.deposit))
    .bind(fields.location.unwrap_or(current.location))
    .bind(serde_json::Value::from(photos).to_string())
    .bind(u64::from(content_changed))
    .bind(content_changed)
    .bind(content_changed)
    .bind(content_changed)
    .bind(content_changed)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    get(db, id).await
}

/// Deletes the item with its reservations and embedding (a real delete: nothing refers to a
/// deleted item, and a soft-deleted one would have to be excluded by every query).
#[tracing::instrument(skip(db), fields(user_id = viewer))]
pub async fn delete(db: &MySqlPool, viewer: u64, id: u64) -> Result<(), ApiError> {
    get_own(db, viewer, id).await?;
    sqlx::query("DELETE FROM rental_items WHERE id = ? AND owner_id = ?").bind(id).bind(viewer).execute(db).await?;
    Ok(())
}

/// Filters of `GET /rentals`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListFilter {
    pub category: Option<Category>,
    pub owner_id: Option<u64>,
}

/// Items, newest first, one keyset page at a time.
pub async fn list(db: &MySqlPool, filter: ListFilter, page: Page) -> sqlx::Result<Paged<Rental>> {
    let mut sql = format!("SELECT {COLUMNS} FROM rental_items i WHERE i.id < ?");
    if filter.category.is_some() {
        sql.push_str(" AND i.category = ?");
    }
    if filter.owner_id.is_some() {
        sql.push_str(" AND i.owner_id = ?");
    }
    sql.push_str(" ORDER BY i.id DESC LIMIT ?");
    let mut query = sqlx::query(&sql).bind(page.after.unwrap_or(u64::MAX));
    if let Some(category) = filter.category {
        query = query.bind(category.as_str());
    }
    if let Some(owner) = filter.owner_id {
        query = query.bind(owner);
    }
    let rows = query.bind(page.limit + 1).fetch_all(db).await?;
    let items = rows.iter().map(Rental::from_row).collect::<sqlx::Result<Vec<_>>>()?;
    Ok(Paged::from_rows(items, page, |r| r.id))
}
