//! `/healthz`, `/readyz`, `/metrics` and `/openapi.json`: public, for operators and tools.
//! The checks live in [`crate::ops`]; these handlers add their place in the document.

use std::sync::{Arc, LazyLock};

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use sqlx::MySqlPool;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::metrics::Metrics;
use crate::ops::Dependencies;
use crate::state::{AppState, Rules};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
}

// The two bodies below are built as JSON in `crate::ops`; these types only describe them, and
// the API test checks every answer has the properties its schema requires.

/// The process is up.
#[derive(ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
    /// Which instance answered.
    pub instance: String,
}

/// Whether this instance can serve: its dependencies, its notification transport and its
/// chat relay are up.
#[derive(ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub instance: String,
    /// The notification delivery strategy, such as `outbox`.
    pub strategy: String,
    /// The chat relay, such as `redis-recovering`.
    pub chat_relay: String,
    /// The instance is shutting down (SIGTERM): not ready whatever the checks say.
    pub draining: bool,
    pub checks: ReadinessChecks,
}

/// `ok`, or `down: <why>`, for each thing `/readyz` checks.
#[derive(ToSchema)]
pub struct ReadinessChecks {
    pub database: String,
    pub redis: String,
    /// The broker as the running transport sees it (no connection is opened for the check), or
    /// `not used by <strategy>` for strategies that do not use it.
    pub broker: String,
    /// The delivery strategy's own transport (subscription, consumer).
    pub delivery: String,
    /// The chat relay's subscription to the rooms' channels (`ok` for `local`).
    pub chat: String,
}

/// Liveness: answers while the process runs, whatever its dependencies.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "ops",
    responses((status = 200, description = "Alive", body = Health))
)]
async fn healthz(rules: State<Arc<Rules>>) -> impl IntoResponse {
    crate::ops::healthz(rules).await
}

/// Readiness: whether the database, Redis, the broker and the delivery transport answer.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: `checks` says what is down", body = Readiness),
    )
)]
async fn readyz(deps: State<Arc<Dependencies>>, rules: State<Arc<Rules>>) -> impl IntoResponse {
    crate::ops::readyz(deps, rules).await
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "ops",
    responses((status = 200, description = "The metrics", body = String, content_type = "application/openmetrics-text"))
)]
async fn metrics(metrics: State<Arc<Metrics>>, db: State<MySqlPool>) -> impl IntoResponse {
    crate::ops::metrics(metrics, db).await
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "ops",
    responses((status = 200, description = "The OpenAPI document of this API", body = Object))
)]
async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    // The document depends on the code only, not on settings or state: build it once.
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(super::openapi);
    Json(&DOCUMENT)
}
