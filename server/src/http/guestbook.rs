//! `/users/{id}/guestbook` and `/guestbook/{id}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sqlx::MySqlPool;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::error::ApiError;
use crate::openapi::{BadRequest, ErrorBody, Unauthorized, Unavailable};
use crate::pagination::{PageQuery, Paged};
use crate::social::guestbook::{self, Entry};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, write)).routes(routes!(remove))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GuestbookEntryInput)]
struct EntryInput {
    #[schema(min_length = 1, max_length = 1000)]
    content: String,
}

/// Writes on a user's guestbook.
#[utoipa::path(
    post,
    path = "/users/{owner_id}/guestbook",
    operation_id = "write_guestbook_entry",
    tag = "guestbook",
    params(("owner_id" = u64, Path, description = "The guestbook owner's user id")),
    request_body = EntryInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new entry", body = Entry),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_field` on `content`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn write(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(owner): ApiPath<u64>,
    ApiJson(input): ApiJson<EntryInput>,
) -> Result<(StatusCode, Json<Entry>), ApiError> {
    Ok((StatusCode::CREATED, Json(guestbook::write(&db, user.id, owner, &input.content).await?)))
}

/// A user's guestbook, newest first.
#[utoipa::path(
    get,
    path = "/users/{owner_id}/guestbook",
    operation_id = "list_guestbook",
    tag = "guestbook",
    params(("owner_id" = u64, Path, description = "The guestbook owner's user id"), PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of entries", body = Paged<Entry>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_field` on `limit`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn list(
    _user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(owner): ApiPath<u64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Entry>>, ApiError> {
    Ok(Json(guestbook::list(&db, owner, q.parse()?).await?))
}

/// Deletes an entry: its author or the guestbook's owner may.
#[utoipa::path(
    delete,
    path = "/guestbook/{id}",
    operation_id = "delete_guestbook_entry",
    tag = "guestbook",
    params(("id" = u64, Path, description = "The entry's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: neither the entry's author nor the guestbook's owner", body = ErrorBody),
        (status = 404, description = "`guestbook_entry_not_found`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn remove(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    guestbook::delete(&db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
