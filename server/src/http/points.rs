//! `/points`, `/points/log`, `/points/spend`: always the caller's own points.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sqlx::MySqlPool;

use super::extract::{ApiJson, ApiQuery, CurrentUser};
use crate::error::ApiError;
use crate::pagination::{PageQuery, Paged};
use crate::points::{self, LogEntry, PointsError, Reason};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/points", get(balance)).route("/points/log", get(log)).route("/points/spend", post(spend))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendInput {
    amount: i64,
    reason: String,
}

async fn balance(user: CurrentUser, State(db): State<MySqlPool>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "balance": points::balance(&db, user.id).await? })))
}

async fn log(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Paged<LogEntry>>, ApiError> {
    Ok(Json(points::log(&db, user.id, q.parse()?).await?))
}

async fn spend(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiJson(input): ApiJson<SpendInput>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
            Ok(Json(json!({ "balance": balance })))
        }
        Err(e @ PointsError::Insufficient { .. }) => Err(ApiError::conflict("insufficient_points", e.to_string())),
        Err(PointsError::Db(e)) => Err(e.into()),
    }
}
