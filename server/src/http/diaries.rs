//! `/diaries/*` and comments, `/comments/{id}`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::MySqlPool;
use tokio::sync::Notify;

use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::diary::comments::{self, Comment};
use crate::diary::{self, Diary, DiaryInput, OnWrite};
use crate::error::ApiError;
use crate::notify::Notifier;
use crate::pagination::{PageQuery, Paged};
use crate::state::{AppState, Rules};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/diaries", get(list).post(create))
        .route("/diaries/{id}", get(read).patch(update).delete(remove))
        .route("/diaries/{id}/comments", get(list_comments).post(create_comment))
        .route("/comments/{id}", delete(remove_comment))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    scope: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentInput {
    content: String,
}

async fn create(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    State(rules): State<Arc<Rules>>,
    State(ai_wake): State<Arc<Notify>>,
    State(notifier): State<Notifier>,
    ApiJson(input): ApiJson<DiaryInput>,
) -> Result<(StatusCode, Json<Diary>), ApiError> {
    let fields = input.parse()?;
    let on_write = OnWrite { points: rules.diary_reward, ai_comment: rules.ai_comments };
    let diary = diary::create(&db, &notifier, user.id, fields, on_write).await?;
    if rules.ai_comments {
        ai_wake.notify_one();
    }
    Ok((StatusCode::CREATED, Json(diary)))
}

async fn read(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Diary>, ApiError> {
    Ok(Json(diary::get_visible(&db, user.id, id).await?))
}

async fn update(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
    ApiJson(input): ApiJson<DiaryInput>,
) -> Result<Json<Diary>, ApiError> {
    let fields = input.parse()?;
    Ok(Json(diary::update(&db, user.id, id, fields).await?))
}

async fn remove(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    diary::delete(&db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Paged<Diary>>, ApiError> {
    let page = q.page.parse()?;
    let paged = match q.scope.as_deref() {
        None | Some("mine") => diary::list_own(&db, user.id, page).await?,
        Some("friends") => diary::list_friends(&db, user.id, page).await?,
        Some(other) => return Err(ApiError::invalid("scope", format!("`{other}` is not one of mine, friends"))),
    };
    Ok(Json(paged))
}

async fn create_comment(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    State(rules): State<Arc<Rules>>,
    State(notifier): State<Notifier>,
    ApiPath(diary_id): ApiPath<u64>,
    ApiJson(input): ApiJson<CommentInput>,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    let comment = comments::create(&db, &notifier, user.id, diary_id, &input.content, rules.comment_reward).await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

async fn list_comments(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(diary_id): ApiPath<u64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Comment>>, ApiError> {
    Ok(Json(comments::list(&db, user.id, diary_id, q.parse()?).await?))
}

async fn remove_comment(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    comments::delete(&db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
