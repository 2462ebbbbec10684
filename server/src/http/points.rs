//! `/points`, `/points/log`, `/points/spend`: always the caller's own points.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery, CurrentUser};
use crate::error::ApiError;
use crate::openapi::{BadRequest, ErrorBody, Unauthorized, Unavailable};
use crate::pagination::{PageQuery, Paged};
use crate::points::{self, LogEntry, PointsError, Reason};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(balance)).routes(routes!(log)).routes(routes!(spend))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SpendInput {
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    amount: i64,
    /// What the points buy, in lowercase letters and `_`; logged as `spend_<reason>`.
    #[schema(pattern = "^[a-z_]{1,26}$", example = "gift_shop")]
    reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct Balance {
    balance: i64,
}

/// The caller's balance.
#[utoipa::path(
    get,
    path = "/points",
    operation_id = "get_points",
    tag = "points",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The balance", body = Balance),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    )
)]
async fn balance(user: CurrentUser, State(db): State<MySqlPool>) -> Result<Json<Balance>, ApiError> {
    Ok(Json(Balance { balance: points::balance(&db, user.id).await? }))
}

/// Every change to the caller's balance, newest first.
#[utoipa::path(
    get,
    path = "/points/log",
    operation_id = "list_points_log",
    tag = "points",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of the log", body = Paged<LogEntry>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`invalid_field` on `limit`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn log(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Paged<LogEntry>>, ApiError> {
    Ok(Json(points::log(&db, user.id, q.parse()?).await?))
}

/// Spends points; never below zero.
#[utoipa::path(
    post,
    path = "/points/spend",
    operation_id = "spend_points",
    tag = "points",
    request_body = SpendInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The balance after spending", body = Balance),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, description = "`insufficient_points`: the balance is smaller than `amount`", body = ErrorBody),
        (status = 422, description = "`invalid_field` on `amount` or `reason`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn spend(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiJson(input): ApiJson<SpendInput>,
) -> Result<Json<Balance>, ApiError> {
    if !(1..=1_000_000_000).contains(&input.amount) {
        return Err(ApiError::invalid(
            "amount",
            format!("{} is out of range: spend 1 to 1000000000 points", input.amount),
        ));
    }
    let reason = input.reason.trim();
    if reason.is_empty() || reason.len() > 26 || !reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(ApiError::invalid("reason", "use 1 to 26 lowercase letters or `_`, e.g. `gift_shop`"));
    }
    let spend_reason = format!("spend_{reason}");
    let mut tx = db.begin().await?;
    match points::apply(&mut tx, user.id, -input.amount, Reason::Spent(&spend_reason), None).await {
        Ok(balance) => {
            tx.commit().await?;
            Ok(Json(Balance { balance }))
        }
        Err(e @ PointsError::Insufficient { .. }) => Err(ApiError::conflict("insufficient_points", e.to_string())),
        Err(PointsError::Db(e)) => Err(e.into()),
    }
}
