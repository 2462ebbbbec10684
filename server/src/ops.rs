//! Liveness, readiness (database, Redis, broker reachable) and metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use redis::aio::ConnectionManager;
use serde_json::json;
use sqlx::MySqlPool;

use crate::metrics::Metrics;
use crate::state::Rules;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The dependencies `/readyz` checks.
pub struct Dependencies {
    pub db: MySqlPool,
    pub redis: ConnectionManager,
    pub amqp_url: String,
    pub delivery: Arc<dyn crate::notify::bus::Delivery>,
}

impl std::fmt::Debug for Dependencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dependencies")
    }
}

async fn bounded<F: Future<Output = Result<(), String>>>(check: F) -> Result<(), String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")))
}

impl Dependencies {
    async fn database(&self) -> Result<(), String> {
        sqlx::query("SELECT 1").execute(&self.db).await.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn redis(&self) -> Result<(), String> {
        let mut conn = self.redis.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn broker(&self) -> Result<(), String> {
        let conn = lapin::Connection::connect(&self.amqp_url, lapin::ConnectionProperties::default())
            .await
            .map_err(|e| e.to_string())?;
        let _ = conn.close(200, "readiness check".into()).await;
        Ok(())
    }
}

pub async fn healthz(State(rules): State<Arc<Rules>>) -> impl IntoResponse {
    Json(json!({ "status": "ok", "instance": rules.instance_id }))
}

pub async fn readyz(State(deps): State<Arc<Dependencies>>, State(rules): State<Arc<Rules>>) -> impl IntoResponse {
    let (db, redis, broker) = tokio::join!(bounded(deps.database()), bounded(deps.redis()), bounded(deps.broker()));
    // The strategy's own transport (subscription, consumer) must be connected too: an
    // instance that cannot receive fan-out would silently drop its streams' notifications.
    let delivery = match deps.delivery.transport_up() {
        None | Some(true) => Ok(()),
        Some(false) => Err(format!("{} transport is reconnecting", deps.delivery.strategy().as_str())),
    };
    let ready = db.is_ok() && redis.is_ok() && broker.is_ok() && delivery.is_ok();
    let show = |r: Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("down: {e}"),
    };
    let body = json!({
        "ready": ready,
        "instance": rules.instance_id,
        "strategy": deps.delivery.strategy().as_str(),
        "checks": { "database": show(db), "redis": show(redis), "broker": show(broker), "delivery": show(delivery) },
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

pub async fn metrics(State(metrics): State<Arc<Metrics>>, State(db): State<MySqlPool>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        metrics.render(&db),
    )
}
