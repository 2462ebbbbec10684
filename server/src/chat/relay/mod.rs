//! Relay strategies: how a message stored on one instance reaches the subscribers of its room
//! on every instance. One trait; one file per strategy.
//!
//! | strategy | carries | loses | order seen by a subscriber |
//! |---|---|---|---|
//! | `local` | nothing: this instance's subscribers only | every subscriber on another instance | publish order here |
//! | `redis-pubsub` | `PUBLISH` to one channel per room, each instance subscribed to its rooms' channels | what is published while an instance's subscription is down | arrival order |
//! | `redis-recovering` | the same channels, and the room's seq: a subscriber resumes from its last seq, reads any gap from the database, and each instance checks its rooms' last seq every second | nothing | seq order, no duplicates |

pub mod local;
pub mod recovering;
pub mod redis_channel;
pub mod redis_pubsub;

use std::str::FromStr;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ChatMessage;
use super::hub::{Hub, RoomChange};
use super::metrics::ChatMetrics;

/// The strategies, as named in settings and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayStrategy {
    Local,
    RedisPubSub,
    RedisRecovering,
}

impl RelayStrategy {
    pub const ALL: [RelayStrategy; 3] =
        [RelayStrategy::Local, RelayStrategy::RedisPubSub, RelayStrategy::RedisRecovering];

    pub fn as_str(self) -> &'static str {
        match self {
            RelayStrategy::Local => "local",
            RelayStrategy::RedisPubSub => "redis-pubsub",
            RelayStrategy::RedisRecovering => "redis-recovering",
        }
    }

    /// Whether the relay subscribes per room (and so reads the hub's room changes).
    pub fn per_room(self) -> bool {
        !matches!(self, RelayStrategy::Local)
    }
}

impl FromStr for RelayStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RelayStrategy::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = RelayStrategy::ALL.iter().map(|k| k.as_str()).collect();
            format!("`{s}` is not one of {}", names.join(", "))
        })
    }
}

/// Everything a relay may use.
#[derive(Clone)]
pub struct RelayContext {
    pub db: sqlx::MySqlPool,
    pub hub: Hub,
    pub metrics: Arc<ChatMetrics>,
    pub redis_url: String,
    /// Prefix of every channel name (the server's namespace).
    pub prefix: String,
}

pub trait Relay: Send + Sync {
    fn strategy(&self) -> RelayStrategy;

    /// Hands a stored message to every instance with subscribers of its room, this one
    /// included. An error means it may not reach them live.
    fn publish(&self, message: ChatMessage) -> BoxFuture<'_, anyhow::Result<()>>;

    /// Subscriptions and checks, until `shutdown`.
    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()>;

    /// Whether subscribers get every message exactly once, in seq order, resuming from the
    /// last seq they saw: then a message stored but not published still reaches them.
    fn recovers(&self) -> bool {
        false
    }

    /// Whether its transport is connected; `None` when it has none.
    fn transport_up(&self) -> Option<bool> {
        None
    }
}

/// The relay of `strategy`; `changes` are the hub's room changes (for per-room relays).
pub fn build(
    strategy: RelayStrategy,
    ctx: RelayContext,
    changes: Option<mpsc::UnboundedReceiver<RoomChange>>,
) -> Arc<dyn Relay> {
    match strategy {
        RelayStrategy::Local => Arc::new(local::LocalRelay::new(ctx)),
        RelayStrategy::RedisPubSub => Arc::new(redis_pubsub::RedisPubSubRelay::new(ctx, changes)),
        RelayStrategy::RedisRecovering => Arc::new(recovering::RecoveringRelay::new(ctx, changes)),
    }
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Records how long the message took from its store to here, and hands it to the hub.
fn arrived(ctx: &RelayContext, message: ChatMessage) {
    let lag_ms = (now_ms() - message.sent_at_ms).max(0);
    ctx.metrics.relay_lag.observe(lag_ms as f64 / 1000.0);
    ctx.metrics.relayed.inc();
    ctx.hub.deliver(Arc::new(message));
}
