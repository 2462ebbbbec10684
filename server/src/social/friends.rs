//! Friend requests and friendships. A friendship is stored in both directions, so
//! "friends of x" and "are x and y friends" are single primary-key lookups.

use serde::Serialize;
use sqlx::MySqlPool;

use crate::error::{ApiError, violated_constraint};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FriendRequest {
    pub id: u64,
    pub from_user: u64,
    pub to_user: u64,
    #[serde(serialize_with = "crate::time::serialize_utc")]
    pub created_at: chrono::NaiveDateTime,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Friend {
    pub user_id: u64,
    pub display_name: String,
    #[serde(serialize_with = "crate::time::serialize_utc")]
    pub since: chrono::NaiveDateTime,
}

pub async fn are_friends(db: &MySqlPool, a: u64, b: u64) -> sqlx::Result<bool> {
    let found: Option<u64> =
        sqlx::query_scalar("SELECT friend_id FROM friendships WHERE user_id = ? AND friend_id = ?")
            .bind(a)
            .bind(b)
            .fetch_optional(db)
            .await?;
    Ok(found.is_some())
}

/// The friends of `user` (ids only), for fan-out.
pub async fn friend_ids(db: &MySqlPool, user: u64) -> sqlx::Result<Vec<u64>> {
    sqlx::query_scalar("SELECT friend_id FROM friendships WHERE user_id = ? ORDER BY friend_id")
        .bind(user)
        .fetch_all(db)
        .await
}

#[tracing::instrument(skip(db), fields(user_id = from))]
pub async fn request(db: &MySqlPool, from: u64, to: u64) -> Result<FriendRequest, ApiError> {
    if from == to {
        return Err(ApiError::invalid("user_id", "you cannot befriend yourself"));
    }
    let exists: Option<u64> =
        sqlx::query_scalar("SELECT id FROM users WHERE id = ?").bind(to).fetch_optional(db).await?;
    if exists.is_none() {
        return Err(ApiError::not_found("user_not_found", format!("no user {to}")));
    }
    if are_friends(db, from, to).await? {
        return Err(ApiError::conflict("already_friends", format!("you and user {to} are already friends")));
    }
    let pending_back: Option<u64> =
        sqlx::query_scalar("SELECT id FROM friend_requests WHERE from_user = ? AND to_user = ?")
            .bind(to)
            .bind(from)
            .fetch_optional(db)
            .await?;
    if let Some(id) = pending_back {
        return Err(ApiError::conflict(
            "request_pending_from_them",
            format!("user {to} already asked you (request {id}): accept it with POST /friends/requests/{id}/accept"),
        ));
    }
    let inserted = sqlx::query("INSERT INTO friend_requests (from_user, to_user) VALUES (?, ?)")
        .bind(from)
        .bind(to)
        .execute(db)
        .await;
    let id = match inserted {
        Ok(done) => done.last_insert_id(),
        Err(e) if violated_constraint(&e).as_deref() == Some("uq_friend_requests_pair") => {
            return Err(ApiError::conflict("request_exists", format!("you already asked user {to}")));
        }
        Err(e) => return Err(e.into()),
    };
    fetch_request(db, id).await?.ok_or_else(|| request_not_found(id))
}

async fn fetch_request(db: &MySqlPool, id: u64) -> sqlx::Result<Option<FriendRequest>> {
    sqlx::query_as("SELECT id, from_user, to_user, created_at FROM friend_requests WHERE id = ?")
        .bind(id)
        .fetch_optional(db)
        .await
}

fn request_not_found(id: u64) -> ApiError {
    ApiError::not_found("friend_request_not_found", format!("no friend request {id} addressed to or from you"))
}

/// Requests addressed to `user` (`incoming`) or sent by them.
pub async fn list_requests(db: &MySqlPool, user: u64, incoming: bool) -> sqlx::Result<Vec<FriendRequest>> {
    let column = if incoming { "to_user" } else { "from_user" };
    sqlx::query_as(&format!(
        "SELECT id, from_user, to_user, created_at FROM friend_requests WHERE {column} = ? ORDER BY id DESC LIMIT 500"
    ))
    .bind(user)
    .fetch_all(db)
    .await
}

/// The addressee accepts: the request becomes a friendship, both directions, atomically.
#[tracing::instrument(skip(db), fields(user_id = user))]
pub async fn accept(db: &MySqlPool, user: u64, request_id: u64) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let request: Option<(u64, u64)> =
        sqlx::query_as("SELECT from_user, to_user FROM friend_requests WHERE id = ? FOR UPDATE")
            .bind(request_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((from, to)) = request.filter(|(from, to)| *from == user || *to == user) else {
        return Err(request_not_found(request_id));
    };
    if to != user {
        return Err(ApiError::Forbidden(format!("request {request_id} is yours: only user {to} may accept it")));
    }
    sqlx::query("DELETE FROM friend_requests WHERE id = ?").bind(request_id).execute(&mut *tx).await?;
    sqlx::query("INSERT IGNORE INTO friendships (user_id, friend_id) VALUES (?, ?), (?, ?)")
        .bind(from)
        .bind(to)
        .bind(to)
        .bind(from)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The addressee declines, or the sender withdraws: the request is gone either way.
#[tracing::instrument(skip(db), fields(user_id = user))]
pub async fn decline(db: &MySqlPool, user: u64, request_id: u64) -> Result<(), ApiError> {
    let deleted = sqlx::query("DELETE FROM friend_requests WHERE id = ? AND (to_user = ? OR from_user = ?)")
        .bind(request_id)
        .bind(user)
        .bind(user)
        .execute(db)
        .await?
        .rows_affected();
    if deleted == 0 { Err(request_not_found(request_id)) } else { Ok(()) }
}

pub async fn list(db: &MySqlPool, user: u64) -> sqlx::Result<Vec<Friend>> {
    sqlx::query_as(
        "SELECT f.friend_id AS user_id, u.display_name, f.created_at AS since FROM friendships f \
         JOIN users u ON u.id = f.friend_id WHERE f.user_id = ? ORDER BY f.friend_id LIMIT 5000",
    )
    .bind(user)
    .fetch_all(db)
    .await
}

#[tracing::instrument(skip(db), fields(user_id = user))]
pub async fn remove(db: &MySqlPool, user: u64, friend: u64) -> Result<(), ApiError> {
    let deleted =
        sqlx::query("DELETE FROM friendships WHERE (user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)")
            .bind(user)
            .bind(friend)
            .bind(friend)
            .bind(user)
            .execute(db)
            .await?
            .rows_affected();
    if deleted == 0 {
        Err(ApiError::not_found("friend_not_found", format!("user {friend} is not your friend")))
    } else {
        Ok(())
    }
}
