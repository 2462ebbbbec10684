//! `/friends/*`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sqlx::MySqlPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::error::ApiError;
use crate::openapi::{BadRequest, ErrorBody, Unauthorized, Unavailable};
use crate::social::friends::{self, Friend, FriendRequest};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(remove))
        .routes(routes!(request, list_requests))
        .routes(routes!(accept))
        .routes(routes!(decline))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FriendRequestInput)]
struct RequestInput {
    /// The user to befriend.
    user_id: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RequestsQuery {
    /// `incoming` (the default: addressed to the caller) or `outgoing` (sent by the caller).
    direction: Option<String>,
}

/// Asks another user to be friends.
#[utoipa::path(
    post,
    path = "/friends/requests",
    operation_id = "request_friend",
    tag = "friends",
    request_body = RequestInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The request, pending until the addressee answers", body = FriendRequest),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
        (
            status = 409,
            description = "`already_friends`, `request_exists` (already asked), or `request_pending_from_them` \
                (they asked first: accept their request instead)",
            body = ErrorBody
        ),
        (status = 422, description = "`invalid_field` on `user_id`: one cannot befriend oneself", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn request(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiJson(input): ApiJson<RequestInput>,
) -> Result<(StatusCode, Json<FriendRequest>), ApiError> {
    Ok((StatusCode::CREATED, Json(friends::request(&db, user.id, input.user_id).await?)))
}

/// Pending friend requests, newest first (at most 500).
#[utoipa::path(
    get,
    path = "/friends/requests",
    operation_id = "list_friend_requests",
    tag = "friends",
    params(RequestsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The requests", body = Vec<FriendRequest>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`invalid_field` on `direction`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
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

/// Accepts a request addressed to the caller: both become friends.
#[utoipa::path(
    post,
    path = "/friends/requests/{id}/accept",
    operation_id = "accept_friend_request",
    tag = "friends",
    params(("id" = u64, Path, description = "The request's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Accepted; the request is gone"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller sent this request; only its addressee accepts", body = ErrorBody),
        (status = 404, description = "`friend_request_not_found`: none addressed to or from the caller", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn accept(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    friends::accept(&db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Declines a request addressed to the caller, or withdraws one the caller sent.
#[utoipa::path(
    post,
    path = "/friends/requests/{id}/decline",
    operation_id = "decline_friend_request",
    tag = "friends",
    params(("id" = u64, Path, description = "The request's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The request is gone"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`friend_request_not_found`: none addressed to or from the caller", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn decline(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    friends::decline(&db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's friends (at most 5,000).
#[utoipa::path(
    get,
    path = "/friends",
    operation_id = "list_friends",
    tag = "friends",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The friends, by user id", body = Vec<Friend>),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    )
)]
async fn list(user: CurrentUser, State(db): State<MySqlPool>) -> Result<Json<Vec<Friend>>, ApiError> {
    Ok(Json(friends::list(&db, user.id).await?))
}

/// Ends a friendship, for both sides.
#[utoipa::path(
    delete,
    path = "/friends/{user_id}",
    operation_id = "remove_friend",
    tag = "friends",
    params(("user_id" = u64, Path, description = "The friend's user id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "No longer friends"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`friend_not_found`: not a friend of the caller", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn remove(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(friend): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    friends::remove(&db, user.id, friend).await?;
    Ok(StatusCode::NO_CONTENT)
}
