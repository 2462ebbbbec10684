//! `/friends/*`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::MySqlPool;

use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::error::ApiError;
use crate::social::friends::{self, Friend, FriendRequest};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/friends", get(list))
        .route("/friends/{user_id}", delete(remove))
        .route("/friends/requests", post(request).get(list_requests))
        .route("/friends/requests/{id}/accept", post(accept))
        .route("/friends/requests/{id}/decline", post(decline))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestInput {
    user_id: u64,
}

#[derive(Debug, Deserialize)]
struct RequestsQuery {
    direction: Option<String>,
}

async fn request(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiJson(input): ApiJson<RequestInput>,
) -> Result<(StatusCode, Json<FriendRequest>), ApiError> {
    Ok((StatusCode::CREATED, Json(friends::request(&db, user.id, input.user_id).await?)))
}

async fn list_requests(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiQuery(q): ApiQuery<RequestsQuery>,
) -> Result<Json<Vec<FriendRequest>>, ApiError> {
    let incoming = match q.direction.as_deref() {
        None | Some("incoming") => true,
        Some("outgoing") => false,
        Some(other) => {
            return Err(ApiError::invalid("direction", format!("`{other}` is not one of incoming, outgoing")));
        }
    };
    Ok(Json(friends::list_requests(&db, user.id, incoming).await?))
}

async fn accept(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    friends::accept(&db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn decline(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    friends::decline(&db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list(user: CurrentUser, State(db): State<MySqlPool>) -> Result<Json<Vec<Friend>>, ApiError> {
    Ok(Json(friends::list(&db, user.id).await?))
}

async fn remove(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(friend): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    friends::remove(&db, user.id, friend).await?;
    Ok(StatusCode::NO_CONTENT)
}
