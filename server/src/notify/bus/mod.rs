//! Delivery strategies: how a notification raised on one instance reaches the instance that
//! holds the recipient's stream. One trait; one file per strategy.
//!
//! | strategy | stores | carries to every instance | survives |
//! |---|---|---|---|
//! | `local` | the raising instance | nothing: local streams only | — (the seed's baseline) |
//! | `redis-pubsub` | the raising instance | `PUBLISH` to one channel, a message per cause | nothing while a subscriber is away |
//! | `redis-streams` | the raising instance | `XADD` to a capped stream, an entry per cause, read on from the last id | a short disconnect |
//! | `rabbitmq` | a competing consumer of a durable queue | a fanout exchange, one auto-delete queue per instance | a slow store; not a broker outage at publish time |
//! | `outbox` | the cause's own transaction | a relay publishes unrelayed rows to the fanout | a broker outage at write time |

pub mod amqp;
pub mod local;
pub mod outbox;
pub mod rabbitmq;
pub mod redis_pubsub;
pub mod redis_streams;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::{MySqlConnection, MySqlPool};
use tokio_util::sync::CancellationToken;

pub use amqp::{Brokers, QueueType};

use super::alert::AlertSink;
use super::hub::Hub;
use super::metrics::NotifyMetrics;
use super::store;
use super::{NewNotification, Notification};

/// The strategies, as named in settings and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Local,
    RedisPubSub,
    RedisStreams,
    RabbitMq,
    Outbox,
}

impl Strategy {
    pub const ALL: [Strategy; 5] =
        [Strategy::Local, Strategy::RedisPubSub, Strategy::RedisStreams, Strategy::RabbitMq, Strategy::Outbox];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Local => "local",
            Strategy::RedisPubSub => "redis-pubsub",
            Strategy::RedisStreams => "redis-streams",
            Strategy::RabbitMq => "rabbitmq",
            Strategy::Outbox => "outbox",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Strategy::ALL.iter().map(|k| k.as_str()).collect();
            format!("`{s}` is not one of {}", names.join(", "))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the {0} transport is not connected")]
    Unavailable(&'static str),
    #[error("{0}")]
    Transport(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Everything a strategy may use.
#[derive(Clone)]
pub struct BusContext {
    pub db: MySqlPool,
    /// Where batches are stored after their cause committed ([`store_now`]).
    pub store_db: MySqlPool,
    pub hub: Hub,
    pub metrics: Arc<NotifyMetrics>,
    pub instance_id: String,
    pub redis_url: String,
    /// The broker's nodes and queue type (`rabbitmq`, `outbox`).
    pub brokers: Arc<amqp::Brokers>,
    /// Prefix of exchanges, queues, channels and stream keys: tests and tenants use their own.
    pub prefix: String,
    pub alert: Option<AlertSink>,
}

/// Whether a strategy's transport is connected, for `/readyz`.
#[derive(Debug, Default)]
pub struct Link {
    up: AtomicBool,
}

impl Link {
    pub fn set(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

pub trait Delivery: Send + Sync {
    fn strategy(&self) -> Strategy;

    /// Inside the cause's transaction, before it commits. Only `outbox` writes here.
    fn within<'a>(
        &'a self,
        _tx: &'a mut MySqlConnection,
        _batch: &'a [NewNotification],
    ) -> BoxFuture<'a, sqlx::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// After the cause committed: store and carry the batch, as the strategy does.
    fn after_commit(&self, batch: Vec<NewNotification>) -> BoxFuture<'_, Result<(), DeliveryError>>;

    /// Background work (subscriptions, consumers, relays) until `shutdown`.
    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()>;

    /// `None` when the strategy has no transport; else whether it is connected now.
    fn transport_up(&self) -> Option<bool>;
}

pub fn build(strategy: Strategy, ctx: BusContext) -> Arc<dyn Delivery> {
    match strategy {
        Strategy::Local => Arc::new(local::LocalDelivery::new(ctx)),
        Strategy::RedisPubSub => Arc::new(redis_pubsub::RedisPubSubDelivery::new(ctx)),
        Strategy::RedisStreams => Arc::new(redis_streams::RedisStreamsDelivery::new(ctx)),
        Strategy::RabbitMq => Arc::new(rabbitmq::RabbitMqDelivery::new(ctx)),
        Strategy::Outbox => Arc::new(outbox::OutboxDelivery::new(ctx)),
    }
}

/// Stores a batch in a transaction of its own (the strategies that store after the cause
/// committed), on the store pool, whose sessions are bounded (see
/// [`crate::db::STORE_IDLE_TIMEOUT_S`]), in one round trip when it can
/// ([`store::insert_batch_committed`]). A connection the store failed on is closed (the
/// database rolls back what it left open), never handed out again.
pub(crate) async fn store_now(ctx: &BusContext, batch: &[NewNotification]) -> sqlx::Result<Vec<Notification>> {
    let started = std::time::Instant::now();
    let mut conn = ctx.store_db.acquire().await?;
    let stored = store::insert_batch_committed(&mut conn, batch).await;
    ctx.metrics.stage(crate::notify::metrics::Stage::Store, started.elapsed().as_secs_f64());
    if stored.is_err() {
        conn.close_on_drop();
    }
    let stored = stored?;
    ctx.metrics.stored.inc_by(stored.len() as u64);
    Ok(stored)
}

/// A message of the Redis strategies: a cause's notifications as a JSON array, or one
/// notification as an object (what instances of an earlier version publish; a rolling deploy
/// runs both).
pub(crate) fn read_batch(payload: &[u8]) -> serde_json::Result<Vec<Notification>> {
    match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => serde_json::from_slice::<Notification>(payload).map(|n| vec![n]),
        _ => serde_json::from_slice(payload),
    }
}

/// Runs `session` again and again until `shutdown`. A session marks `link` up once it is
/// connected and returns when its connection ends; between sessions the backoff grows, and
/// starts over after a session that did connect. This is how every transport recovers
/// from a broker or Redis restart: reconnect, re-declare, re-subscribe.
pub(crate) async fn supervise<E, Fut>(
    link: &Link,
    shutdown: &CancellationToken,
    what: &str,
    mut session: impl FnMut() -> Fut,
) where
    E: std::fmt::Display,
    Fut: Future<Output = Result<(), E>>,
{
    let mut backoff = Backoff::new();
    while !shutdown.is_cancelled() {
        if let Err(e) = session().await {
            tracing::warn!(error = %e, what, "transport session ended; reconnecting");
        }
        if link.is_up() {
            backoff.reset();
        }
        link.set(false);
        if !backoff.wait(shutdown).await {
            break;
        }
    }
}

/// A Redis connection for commands, with bounded timeouts (it reconnects by itself).
pub(crate) async fn redis_commands(url: &str) -> Result<redis::aio::ConnectionManager, DeliveryError> {
    let connect = async {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_connection_timeout(Some(Duration::from_secs(2)));
        redis::aio::ConnectionManager::new_with_config(client, config).await
    };
    connect.await.map_err(|e| DeliveryError::Transport(format!("redis: {e}")))
}

/// Exponential backoff with jitter for reconnect loops: 100 ms doubling to 1 s. The cap is how
/// long an instance may stay disconnected after its broker is back: with 5 s, a RabbitMQ that
/// took 3 s to boot left every instance without its consumer for up to 5 s more, and
/// notifications relayed after a run's drain counted as lost (measured in CI's notify-faults).
/// An attempt a second per instance costs a broker nothing.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Self {
        Self { next: Duration::from_millis(100) }
    }

    pub fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }

    /// Sleeps for the next delay, or returns false at once if `shutdown` fires.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        self.next = (self.next * 2).min(Duration::from_secs(1));
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Kind;

    fn stored(id: u64) -> Notification {
        Notification {
            id,
            recipient_id: 7,
            seq: id,
            kind: Kind::Diary,
            cause_id: 3,
            actor_id: 9,
            created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            read_at: None,
        }
    }

    #[test]
    fn a_redis_message_is_a_batch_or_one_notification_of_an_earlier_version() {
        let batch = vec![stored(1), stored(2)];
        assert_eq!(read_batch(&serde_json::to_vec(&batch).unwrap()).unwrap(), batch);
        let one = format!(" \n{}", serde_json::to_string(&stored(5)).unwrap());
        assert_eq!(read_batch(one.as_bytes()).unwrap(), vec![stored(5)]);
        assert!(read_batch(b"{not json").is_err());
        assert!(read_batch(b"[{\"id\": 1}]").is_err(), "a notification without its fields is refused");
        assert!(read_batch(b"").is_err());
    }
}
