//! `redis-streams`: store, then `XADD` to a capped stream, one entry per cause (its batch as a
//! JSON array in field `b`); each instance reads on from the last id it saw, so a short
//! disconnect (or a slow reader) loses nothing the cap still holds.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::{StreamMaxlen, StreamReadOptions, StreamReadReply};
use tokio::sync::{Mutex, OnceCell};
use tokio_util::sync::CancellationToken;

use super::{BusContext, Delivery, DeliveryError, Link, Strategy, redis_commands, store_now, supervise};
use crate::notify::NewNotification;

/// Entries kept in the stream, one per cause: about a minute at 340 causes/s (2,000
/// notifications/s), enough to bridge a reader's reconnect. 100,000 when an entry was one
/// notification: about the same span and memory as then.
const STREAM_CAP: usize = 20_000;
const BLOCK_MS: usize = 2_000;

pub struct RedisStreamsDelivery {
    ctx: BusContext,
    key: String,
    publisher: OnceCell<ConnectionManager>,
    /// The last entry id this instance has read; survives reconnects.
    last_id: Mutex<Option<String>>,
    link: Link,
}

impl RedisStreamsDelivery {
    pub fn new(ctx: BusContext) -> Self {
        let key = format!("{}notifications:stream", ctx.prefix);
        Self { ctx, key, publisher: OnceCell::new(), last_id: Mutex::new(None), link: Link::default() }
    }

    async fn publisher(&self) -> Result<ConnectionManager, DeliveryError> {
        self.publisher.get_or_try_init(|| redis_commands(&self.ctx.redis_url)).await.cloned()
    }

    /// Reads until the connection fails or `shutdown`.
    async fn read_once(&self, shutdown: &CancellationToken) -> redis::RedisResult<()> {
        let client = redis::Client::open(self.ctx.redis_url.as_str())?;
        // A dedicated connection: XREAD BLOCK would stall every other command on a shared one.
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_millis(BLOCK_MS as u64 + 3_000)))
            .set_connection_timeout(Some(Duration::from_secs(2)));
        let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        {
            let mut last = self.last_id.lock().await;
            if last.is_none() {
                // First start: from now on. Later reconnects continue where we stopped.
                let newest: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
                    .arg(&self.key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut conn)
                    .await?;
                *last = Some(newest.first().map(|(id, _)| id.clone()).unwrap_or_else(|| "0-0".to_string()));
            }
        }
        self.link.set(true);
        let options = StreamReadOptions::default().block(BLOCK_MS).count(500);
        loop {
            let from = self.last_id.lock().await.clone().unwrap_or_else(|| "0-0".to_string());
            let keys = [&self.key];
            let ids = [&from];
            let reply: Option<StreamReadReply> = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = conn.xread_options(&keys, &ids, &options) => r?,
            };
            let Some(reply) = reply else { continue };
            for stream in reply.keys {
                for entry in stream.ids {
                    // `b`: a cause's batch; `n`: one notification, as instances of an earlier
                    // version wrote (a rolling deploy runs both).
                    let payload = entry.get::<String>("b").or_else(|| entry.get::<String>("n"));
                    match payload.map(|p| super::read_batch(p.as_bytes())) {
                        Some(Ok(batch)) => {
                            for n in &batch {
                                self.ctx.hub.push(n);
                            }
                        }
                        _ => tracing::warn!(id = %entry.id, "unreadable notification entry"),
                    }
                    *self.last_id.lock().await = Some(entry.id);
                }
            }
        }
    }
}

impl Delivery for RedisStreamsDelivery {
    fn strategy(&self) -> Strategy {
        Strategy::RedisStreams
    }

    fn after_commit(&self, batch: Vec<NewNotification>) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async move {
            let stored = store_now(&self.ctx, &batch).await?;
            if stored.is_empty() {
                return Ok(());
            }
            let mut conn = self.publisher().await?;
            // The whole batch in one entry: one round trip for the cause, one entry to read.
            let payload = serde_json::to_string(&stored).map_err(|e| DeliveryError::Transport(e.to_string()))?;
            let result: redis::RedisResult<String> =
                conn.xadd_maxlen(&self.key, StreamMaxlen::Approx(STREAM_CAP), "*", &[("b", payload)]).await;
            if let Err(e) = result {
                self.ctx.metrics.publish_failed.inc_by(stored.len() as u64);
                return Err(DeliveryError::Transport(format!("redis XADD: {e}")));
            }
            self.ctx.metrics.published.inc_by(stored.len() as u64);
            Ok(())
        })
    }

    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            supervise(&self.link, &shutdown, "redis stream reader", || self.read_once(&shutdown)).await;
        })
    }

    fn transport_up(&self) -> Option<bool> {
        Some(self.link.is_up())
    }
}
