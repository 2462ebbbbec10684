//! `/users/{id}/guestbook` and `/guestbook/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::MySqlPool;

use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::error::ApiError;
use crate::pagination::{PageQuery, Paged};
use crate::social::guestbook::{self, Entry};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/users/{owner_id}/guestbook", get(list).post(write)).route("/guestbook/{id}", delete(remove))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryInput {
    content: String,
}

async fn write(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(owner): ApiPath<u64>,
    ApiJson(input): ApiJson<EntryInput>,
) -> Result<(StatusCode, Json<Entry>), ApiError> {
    Ok((StatusCode::CREATED, Json(guestbook::write(&db, user.id, owner, &input.content).await?)))
}

async fn list(
    _user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(owner): ApiPath<u64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Entry>>, ApiError> {
    Ok(Json(guestbook::list(&db, owner, q.parse()?).await?))
}

async fn remove(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    guestbook::delete(&db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
