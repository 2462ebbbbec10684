//! `redis-pubsub`: store, then `PUBLISH` to one channel that every instance subscribes to,
//! one message per cause (its batch as a JSON array). At most once: what is published while an
//! instance's subscription is down is gone for it.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::{BusContext, Delivery, DeliveryError, Link, Strategy, redis_commands, store_now, supervise};
use crate::notify::NewNotification;

pub struct RedisPubSubDelivery {
    ctx: BusContext,
    channel: String,
    publisher: OnceCell<ConnectionManager>,
    link: Link,
}

impl RedisPubSubDelivery {
    pub fn new(ctx: BusContext) -> Self {
        let channel = format!("{}notifications", ctx.prefix);
        Self { ctx, channel, publisher: OnceCell::new(), link: Link::default() }
    }

    async fn publisher(&self) -> Result<ConnectionManager, DeliveryError> {
        self.publisher.get_or_try_init(|| redis_commands(&self.ctx.redis_url)).await.cloned()
    }

    /// One subscription session: returns when the connection ends.
    async fn subscribe_once(&self, shutdown: &CancellationToken) -> redis::RedisResult<()> {
        let client = redis::Client::open(self.ctx.redis_url.as_str())?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        self.link.set(true);
        tracing::info!(channel = %self.channel, "subscribed to notifications");
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                msg = messages.next() => match msg {
                    Some(msg) => match super::read_batch(msg.get_payload_bytes()) {
                        Ok(batch) => for n in &batch {
                            self.ctx.hub.push(n);
                        },
                        Err(e) => tracing::warn!(error = %e, "unreadable notification on the channel"),
                    },
                    None => return Ok(()),
                },
            }
        }
    }
}

impl Delivery for RedisPubSubDelivery {
    fn strategy(&self) -> Strategy {
        Strategy::RedisPubSub
    }

    fn after_commit(&self, batch: Vec<NewNotification>) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async move {
            let stored = store_now(&self.ctx, &batch).await?;
            if stored.is_empty() {
                return Ok(());
            }
            let mut conn = self.publisher().await?;
            // The whole batch in one message: one round trip for the cause, and one message per
            // subscriber, not one per recipient (measured: `reports/README.md`, "One message
            // per cause").
            let payload = serde_json::to_string(&stored).map_err(|e| DeliveryError::Transport(e.to_string()))?;
            let result: redis::RedisResult<i64> = conn.publish(&self.channel, payload).await;
            match result {
                Ok(_) => {
                    self.ctx.metrics.published.inc_by(stored.len() as u64);
                    Ok(())
                }
                Err(e) => {
                    self.ctx.metrics.publish_failed.inc_by(stored.len() as u64);
                    Err(DeliveryError::Transport(format!("redis publish: {e}")))
                }
            }
        })
    }

    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            supervise(&self.link, &shutdown, "redis subscription", || self.subscribe_once(&shutdown)).await;
        })
    }

    fn transport_up(&self) -> Option<bool> {
        Some(self.link.is_up())
    }
}
