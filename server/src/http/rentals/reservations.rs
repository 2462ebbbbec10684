//! Reservations: `/rentals/{id}/reservations`, `/me/reservations` and
//! `/reservations/{id}/{approve,reject,cancel,return}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sqlx::MySqlPool;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::openapi::{BadRequest, ErrorBody, Unauthorized, Unavailable};
use crate::pagination::{PageQuery, Paged};
use crate::rental::reservations::{self, Action, Reservation, ReservationInput};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request, list_for_item))
        .routes(routes!(list_mine))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(cancel))
        .routes(routes!(mark_returned))
}

/// Asks to rent an item for a span of days (UTC calendar days, both ends inclusive: a
/// reservation from 2026-12-01 to 2026-12-03 is 3 days). The owner then approves or rejects it.
#[utoipa::path(
    post,
    path = "/rentals/{id}/reservations",
    operation_id = "request_reservation",
    tag = "reservations",
    params(("id" = u64, Path, description = "The item's id")),
    request_body = ReservationInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The reservation, `requested`", body = Reservation),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller owns the item", body = ErrorBody),
        (status = 404, description = "`rental_not_found`", body = ErrorBody),
        (status = 409, description = "`dates_unavailable`: an approved reservation overlaps", body = ErrorBody),
        (
            status = 422,
            description = "`invalid_field` on `start_date` (missing, not a date, in the past, more than 365 days \
                ahead) or `end_date` (missing, not a date, before `start_date`, more than 90 days in all)",
            body = ErrorBody
        ),
        (status = 503, response = Unavailable),
    )
)]
async fn request(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(item_id): ApiPath<u64>,
    ApiJson(input): ApiJson<ReservationInput>,
) -> Result<(StatusCode, Json<Reservation>), ApiError> {
    let range = input.parse(reservations::today())?;
    Ok((StatusCode::CREATED, Json(reservations::request(&db, user.id, item_id, range).await?)))
}

/// An item's reservations, newest first: all of them for its owner, the caller's own for others.
#[utoipa::path(
    get,
    path = "/rentals/{id}/reservations",
    operation_id = "list_item_reservations",
    tag = "reservations",
    params(("id" = u64, Path, description = "The item's id"), PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of reservations", body = Paged<Reservation>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`rental_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_field` on `limit`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn list_for_item(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(item_id): ApiPath<u64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Reservation>>, ApiError> {
    Ok(Json(reservations::list_for_item(&db, user.id, item_id, q.parse()?).await?))
}

/// The caller's reservation requests, newest first.
#[utoipa::path(
    get,
    path = "/me/reservations",
    operation_id = "list_my_reservations",
    tag = "reservations",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of reservations", body = Paged<Reservation>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`invalid_field` on `limit`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn list_mine(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Reservation>>, ApiError> {
    Ok(Json(reservations::list_mine(&db, user.id, q.parse()?).await?))
}

async fn act(db: &MySqlPool, user: CurrentUser, id: u64, action: Action) -> Result<Json<Reservation>, ApiError> {
    Ok(Json(reservations::act(db, user.id, id, action).await?))
}

/// The owner approves a requested reservation. Two approvals of overlapping reservations
/// racing each other: exactly one wins, the other gets 409 `booking_conflict`.
#[utoipa::path(
    post,
    path = "/reservations/{id}/approve",
    operation_id = "approve_reservation",
    tag = "reservations",
    params(("id" = u64, Path, description = "The reservation's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The reservation, `approved`", body = Reservation),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: only the item's owner approves", body = ErrorBody),
        (status = 404, description = "`reservation_not_found`: absent, or neither yours nor of your item", body = ErrorBody),
        (
            status = 409,
            description = "`booking_conflict`: an overlapping reservation is (or was just) approved, reload and \
                retry; `invalid_transition`: not `requested`; `reservation_changed`: changed meanwhile",
            body = ErrorBody
        ),
        (status = 503, response = Unavailable),
    )
)]
async fn approve(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    State(rules): State<std::sync::Arc<crate::state::Rules>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Reservation>, ApiError> {
    Ok(Json(reservations::act_guarded(&db, user.id, id, Action::Approve, rules.booking_guard).await?))
}

/// The owner rejects a requested reservation.
#[utoipa::path(
    post,
    path = "/reservations/{id}/reject",
    operation_id = "reject_reservation",
    tag = "reservations",
    params(("id" = u64, Path, description = "The reservation's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The reservation, `rejected`", body = Reservation),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: only the item's owner rejects", body = ErrorBody),
        (status = 404, description = "`reservation_not_found`: absent, or neither yours nor of your item", body = ErrorBody),
        (status = 409, description = "`invalid_transition`: not `requested`; `reservation_changed`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn reject(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Reservation>, ApiError> {
    act(&db, user, id, Action::Reject).await
}

/// The requester or the owner cancels a requested or approved reservation, freeing its days.
#[utoipa::path(
    post,
    path = "/reservations/{id}/cancel",
    operation_id = "cancel_reservation",
    tag = "reservations",
    params(("id" = u64, Path, description = "The reservation's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The reservation, `cancelled`", body = Reservation),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`reservation_not_found`: absent, or neither yours nor of your item", body = ErrorBody),
        (
            status = 409,
            description = "`invalid_transition`: already rejected, cancelled or returned; `reservation_changed`",
            body = ErrorBody
        ),
        (status = 503, response = Unavailable),
    )
)]
async fn cancel(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Reservation>, ApiError> {
    act(&db, user, id, Action::Cancel).await
}

/// The owner marks an approved reservation returned (once it has started).
#[utoipa::path(
    post,
    path = "/reservations/{id}/return",
    operation_id = "return_reservation",
    tag = "reservations",
    params(("id" = u64, Path, description = "The reservation's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The reservation, `returned`", body = Reservation),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: only the item's owner marks it returned", body = ErrorBody),
        (status = 404, description = "`reservation_not_found`: absent, or neither yours nor of your item", body = ErrorBody),
        (
            status = 409,
            description = "`invalid_transition`: not `approved`; `reservation_not_started`: starts later; \
                `reservation_changed`",
            body = ErrorBody
        ),
        (status = 503, response = Unavailable),
    )
)]
async fn mark_returned(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Reservation>, ApiError> {
    act(&db, user, id, Action::Return).await
}
