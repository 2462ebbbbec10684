//! `/chat/rooms/*`: rooms, their members and their history over REST; `GET /ws/chat`: STOMP
//! 1.2 over WebSocket for live messages (see `crate::chat::session`).

use axum::Json;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use sqlx::MySqlPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::chat::ChatMessage;
use crate::chat::rooms::{self, Room, Window};
use crate::chat::session::{self, ChatContext, SUBPROTOCOLS};
use crate::error::ApiError;
use crate::openapi::{BadRequest, ErrorBody, Unauthorized, Unavailable};
use crate::pagination::{PageQuery, Paged};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, open))
        .routes(routes!(read))
        .routes(routes!(add_member))
        .routes(routes!(history))
        .routes(routes!(mark_read))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OpenRoom {
    /// The rental item to talk about; the room is between the caller and its owner.
    item_id: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewMember {
    user_id: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReadUpTo {
    /// Every message up to this seq is read.
    seq: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Messages before this seq, newest first (the default: the newest).
    #[param(value_type = Option<u64>)]
    before_seq: Option<String>,
    /// Messages after this seq, oldest first: what a client missed.
    #[param(value_type = Option<u64>)]
    after_seq: Option<String>,
    /// 1 to 500; 50 when not given.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
}

fn seq_param(field: &'static str, value: &Option<String>) -> Result<Option<u64>, ApiError> {
    match value.as_deref().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ApiError::invalid(field, format!("`{v}` is not a seq"))),
    }
}

/// Opens the room about an item between the caller and its owner, or returns the one already
/// open: 201 when new, 200 when it existed.
#[utoipa::path(
    post,
    path = "/chat/rooms",
    operation_id = "open_chat_room",
    tag = "chat",
    request_body = OpenRoom,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new room", body = Room),
        (status = 200, description = "The room already open", body = Room),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller owns the item", body = ErrorBody),
        (status = 404, description = "`rental_not_found`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn open(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiJson(input): ApiJson<OpenRoom>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    let (room, created) = rooms::open(&db, user.id, input.item_id).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(room)))
}

/// The caller's rooms, the most recently opened first, each with its last message and the
/// caller's unread count.
#[utoipa::path(
    get,
    path = "/chat/rooms",
    operation_id = "list_chat_rooms",
    tag = "chat",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of rooms", body = Paged<Room>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`invalid_field` on `limit`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn list(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Room>>, ApiError> {
    Ok(Json(rooms::list(&db, user.id, page.parse()?).await?))
}

/// One room the caller is a member of.
#[utoipa::path(
    get,
    path = "/chat/rooms/{id}",
    operation_id = "get_chat_room",
    tag = "chat",
    params(("id" = u64, Path, description = "The room's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The room", body = Room),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`room_not_found`: no such room, or the caller is not a member", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn read(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Room>, ApiError> {
    Ok(Json(rooms::get(&db, user.id, id).await?))
}

/// Adds a member to a room; only the item's owner may. Adding a member twice changes nothing.
#[utoipa::path(
    post,
    path = "/chat/rooms/{id}/members",
    operation_id = "add_chat_member",
    tag = "chat",
    params(("id" = u64, Path, description = "The room's id")),
    request_body = NewMember,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The room with its members", body = Room),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller is a member but not the item's owner", body = ErrorBody),
        (status = 404, description = "`room_not_found` or `user_not_found`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn add_member(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
    ApiJson(input): ApiJson<NewMember>,
) -> Result<Json<Room>, ApiError> {
    Ok(Json(rooms::add_member(&db, user.id, id, input.user_id).await?))
}

/// A room's messages: the newest (or those before `before_seq`) newest first, or those after
/// `after_seq` oldest first.
#[utoipa::path(
    get,
    path = "/chat/rooms/{id}/messages",
    operation_id = "list_chat_messages",
    tag = "chat",
    params(("id" = u64, Path, description = "The room's id"), HistoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The messages", body = Vec<ChatMessage>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`room_not_found`", body = ErrorBody),
        (
            status = 422,
            description = "`invalid_field` on `before_seq`, `after_seq` (not both) or `limit`",
            body = ErrorBody
        ),
        (status = 503, response = Unavailable),
    )
)]
async fn history(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<Vec<ChatMessage>>, ApiError> {
    let before = seq_param("before_seq", &q.before_seq)?;
    let after = seq_param("after_seq", &q.after_seq)?;
    let limit = match q.limit.as_deref().filter(|v| !v.is_empty()) {
        None => 50,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=500).contains(l))
            .ok_or_else(|| ApiError::invalid("limit", format!("`{v}` is not between 1 and 500")))?,
    };
    let window = match (before, after) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("after_seq", "give before_seq or after_seq, not both"));
        }
        (_, Some(after)) => Window::After(after),
        (before, None) => Window::Before(before),
    };
    Ok(Json(rooms::history(&db, user.id, id, window, limit).await?))
}

/// Marks the room read up to a seq (never backwards).
#[utoipa::path(
    post,
    path = "/chat/rooms/{id}/read",
    operation_id = "mark_chat_read",
    tag = "chat",
    params(("id" = u64, Path, description = "The room's id")),
    request_body = ReadUpTo,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The room with the caller's unread count", body = Room),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`room_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_field` on `seq`: beyond the last message", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn mark_read(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
    ApiJson(input): ApiJson<ReadUpTo>,
) -> Result<Json<Room>, ApiError> {
    Ok(Json(rooms::mark_read(&db, user.id, id, input.seq).await?))
}

/// `GET /ws/chat`: upgrades to a WebSocket speaking STOMP 1.2 (1.1 and 1.0 too), answering the
/// sub-protocol `v12.stomp`, `v11.stomp` or `v10.stomp` when offered. The session token goes
/// in CONNECT's `passcode` header, since browsers cannot set headers on the upgrade.
pub async fn websocket(upgrade: WebSocketUpgrade, State(ctx): State<ChatContext>) -> Response {
    let limits = ctx.settings.limits;
    // A frame fits in one WebSocket message with room for its headers; clients may also split
    // it over several.
    let max_message = limits.max_body + limits.max_headers * limits.max_header_line + 1024;
    upgrade
        .protocols(SUBPROTOCOLS)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| session::serve(socket, ctx))
}
