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
    pub delivery: Arc<dyn crate::notify::bus::Delivery>,
    pub chat_relay: Arc<dyn crate::chat::relay::Relay>,
    /// Set once the instance shuts down: `/readyz` is then 503.
    pub draining: crate::drain::Draining,
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

    /// The broker, as the running transport sees it: a readiness probe every few seconds must
    /// not open (and close) a connection of its own each time. `None` when this instance's
    /// strategy does not use the broker at all.
    fn broker(&self) -> Option<Result<(), String>> {
        use crate::notify::bus::Strategy;
        match self.delivery.strategy() {
            Strategy::RabbitMq | Strategy::Outbox => Some(match self.delivery.transport_up() {
                Some(true) => Ok(()),
                _ => Err("not connected: the server reconnects with backoff".to_string()),
            }),
            Strategy::Local | Strategy::RedisPubSub | Strategy::RedisStreams => None,
        }
    }
}

pub async fn healthz(State(rules): State<Arc<Rules>>) -> impl IntoResponse {
    Json(json!({ "status": "ok", "instance": rules.instance_id }))
}

pub async fn readyz(State(deps): State<Arc<Dependencies>>, State(rules): State<Arc<Rules>>) -> impl IntoResponse {
    let (db, redis) = tokio::join!(bounded(deps.database()), bounded(deps.redis()));
    let broker = deps.broker();
    // The strategy's own transport (subscription, consumer) must be connected too: an
    // instance that cannot receive fan-out would silently drop its streams' notifications.
    let delivery = match deps.delivery.transport_up() {
        None | Some(true) => Ok(()),
        Some(false) => Err(format!("{} transport is reconnecting", deps.delivery.strategy().as_str())),
    };
    // Likewise the chat relay's subscription: without it, members here miss other instances'
    // messages.
    let chat = match deps.chat_relay.transport_up() {
        None | Some(true) => Ok(()),
        Some(false) => Err(format!("the {} chat relay is reconnecting", deps.chat_relay.strategy().as_str())),
    };
    let draining = deps.draining.is_draining();
    let ready = !draining
        && db.is_ok()
        && redis.is_ok()
        && broker.as_ref().is_none_or(Result::is_ok)
        && delivery.is_ok()
        && chat.is_ok();
    let show = |r: Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("down: {e}"),
    };
    let broker = match broker {
        Some(r) => show(r),
        None => format!("not used by {}", deps.delivery.strategy().as_str()),
    };
    let body = json!({
        "ready": ready,
        "instance": rules.instance_id,
        "strategy": deps.delivery.strategy().as_str(),
        "chat_relay": deps.chat_relay.strategy().as_str(),
        "draining": draining,
        "checks": {
            "database": show(db),
            "redis": show(redis),
            "broker": broker,
            "delivery": show(delivery),
            "chat": show(chat),
        },
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
