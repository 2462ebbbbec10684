//! `/diaries/*` and comments, `/comments/{id}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sqlx::MySqlPool;
use tokio::sync::Notify;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::diary::comments::{self, Comment};
use crate::diary::{self, Diary, DiaryInput, NewDiary, OnWrite};
use crate::error::ApiError;
use crate::notify::Notifier;
use crate::openapi::{BadRequest, ErrorBody, Unauthorized, Unavailable};
use crate::pagination::{PageQuery, Paged};
use crate::state::{AppState, Rules};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(list_comments, create_comment))
        .routes(routes!(remove_comment))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `mine` (the default: the caller's own) or `friends` (friends' diaries shared with friends).
    scope: Option<String>,
    // utoipa's `IntoParams` does not follow `flatten`: operations list `PageQuery` themselves.
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CommentInput {
    #[schema(min_length = 1, max_length = 2000)]
    content: String,
}

/// Writes a diary. Friends are notified when it is shared with them, and the author earns points.
#[utoipa::path(
    post,
    path = "/diaries",
    operation_id = "create_diary",
    tag = "diaries",
    request_body = NewDiary,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new diary", body = Diary),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (
            status = 422,
            description = "`invalid_field` on `title`, `content`, `emotion` (missing or unknown) or `visibility`",
            body = ErrorBody
        ),
        (status = 503, response = Unavailable),
    )
)]
async fn create(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    State(rules): State<Arc<Rules>>,
    State(ai_wake): State<Arc<Notify>>,
    State(notifier): State<Notifier>,
    ApiJson(input): ApiJson<DiaryInput>,
) -> Result<(StatusCode, Json<Diary>), ApiError> {
    let fields = input.parse()?;
    let on_write = OnWrite { points: rules.diary_reward, daily_cap: rules.daily_cap, ai_comment: rules.ai_comments };
    let diary = diary::create(&db, &notifier, user.id, fields, on_write).await?;
    if rules.ai_comments {
        ai_wake.notify_one();
    }
    Ok((StatusCode::CREATED, Json(diary)))
}

/// Reads one diary: the caller's own, or a friend's shared with friends.
#[utoipa::path(
    get,
    path = "/diaries/{id}",
    operation_id = "get_diary",
    tag = "diaries",
    params(("id" = u64, Path, description = "The diary's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The diary", body = Diary),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`diary_not_found`: absent, or not the caller's to see", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn read(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Diary>, ApiError> {
    Ok(Json(diary::get_visible(&db, user.id, id).await?))
}

/// Changes the fields sent of one of the caller's diaries.
#[utoipa::path(
    patch,
    path = "/diaries/{id}",
    operation_id = "update_diary",
    tag = "diaries",
    params(("id" = u64, Path, description = "The diary's id")),
    request_body = DiaryInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The diary as changed", body = Diary),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: a friend's diary, which only its author may change", body = ErrorBody),
        (status = 404, description = "`diary_not_found`: absent, or not the caller's to see", body = ErrorBody),
        (status = 422, description = "`invalid_field`: a field is invalid, or none was sent", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn update(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
    ApiJson(input): ApiJson<DiaryInput>,
) -> Result<Json<Diary>, ApiError> {
    let fields = input.parse()?;
    Ok(Json(diary::update(&db, user.id, id, fields).await?))
}

/// Deletes one of the caller's diaries with its comments.
#[utoipa::path(
    delete,
    path = "/diaries/{id}",
    operation_id = "delete_diary",
    tag = "diaries",
    params(("id" = u64, Path, description = "The diary's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: a friend's diary, which only its author may delete", body = ErrorBody),
        (status = 404, description = "`diary_not_found`: absent, or not the caller's to see", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn remove(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    diary::delete(&db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's diaries, or their friends' shared ones, newest first.
#[utoipa::path(
    get,
    path = "/diaries",
    operation_id = "list_diaries",
    tag = "diaries",
    params(ListQuery, PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of diaries", body = Paged<Diary>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`invalid_field` on `scope` or `limit`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
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

/// Comments on a diary the caller can see; its author is notified and the commenter earns points.
#[utoipa::path(
    post,
    path = "/diaries/{id}/comments",
    operation_id = "create_comment",
    tag = "diaries",
    params(("id" = u64, Path, description = "The diary's id")),
    request_body = CommentInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new comment", body = Comment),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`diary_not_found`: absent, or not the caller's to see", body = ErrorBody),
        (status = 422, description = "`invalid_field` on `content`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn create_comment(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    State(rules): State<Arc<Rules>>,
    State(notifier): State<Notifier>,
    ApiPath(diary_id): ApiPath<u64>,
    ApiJson(input): ApiJson<CommentInput>,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    let comment =
        comments::create(&db, &notifier, user.id, diary_id, &input.content, rules.comment_reward, rules.daily_cap)
            .await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

/// The comments on a diary the caller can see, oldest first.
#[utoipa::path(
    get,
    path = "/diaries/{id}/comments",
    operation_id = "list_comments",
    tag = "diaries",
    params(("id" = u64, Path, description = "The diary's id"), PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of comments", body = Paged<Comment>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`diary_not_found`: absent, or not the caller's to see", body = ErrorBody),
        (status = 422, description = "`invalid_field` on `limit`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn list_comments(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(diary_id): ApiPath<u64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Comment>>, ApiError> {
    Ok(Json(comments::list(&db, user.id, diary_id, q.parse()?).await?))
}

/// Deletes a comment: its author or the diary's author may.
#[utoipa::path(
    delete,
    path = "/comments/{id}",
    operation_id = "delete_comment",
    tag = "diaries",
    params(("id" = u64, Path, description = "The comment's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: neither the comment's author nor the diary's", body = ErrorBody),
        (status = 404, description = "`comment_not_found`: absent, or on a diary the caller cannot see", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn remove_comment(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    comments::delete(&db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
