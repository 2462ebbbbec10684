//! The Redis transport of the `redis-*` relays: `PUBLISH` to one channel per room; each
//! instance `SUBSCRIBE`s to the channels of the rooms it has subscribers in, as they come and
//! go, and again to all of them after a reconnect.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::{Mutex, OnceCell, mpsc};
use tokio_util::sync::CancellationToken;

use super::{RelayContext, arrived};
use crate::chat::ChatMessage;
use crate::chat::hub::RoomChange;

pub struct RedisChannels {
    pub ctx: RelayContext,
    publisher: OnceCell<ConnectionManager>,
    changes: Mutex<Option<mpsc::UnboundedReceiver<RoomChange>>>,
    up: AtomicBool,
}

/// Why a subscription session ended.
enum Ended {
    Shutdown,
    Lost(anyhow::Error),
}

impl RedisChannels {
    pub fn new(ctx: RelayContext, changes: Option<mpsc::UnboundedReceiver<RoomChange>>) -> Self {
        Self { ctx, publisher: OnceCell::new(), changes: Mutex::new(changes), up: AtomicBool::new(false) }
    }

    fn channel(&self, room_id: u64) -> String {
        format!("{}chat:room:{room_id}", self.ctx.prefix)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub async fn publish(&self, message: &ChatMessage) -> anyhow::Result<()> {
        let mut conn = self
            .publisher
            .get_or_try_init(|| async {
                let client = redis::Client::open(self.ctx.redis_url.as_str())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_connection_timeout(Some(Duration::from_secs(2)));
                ConnectionManager::new_with_config(client, config).await
            })
            .await
            .context("connecting to redis")?
            .clone();
        let payload = serde_json::to_string(message)?;
        let published: redis::RedisResult<i64> = conn.publish(self.channel(message.room_id), payload).await;
        match published {
            Ok(_) => {
                self.ctx.metrics.published.inc();
                Ok(())
            }
            Err(e) => {
                self.ctx.metrics.publish_failed.inc();
                Err(anyhow::anyhow!("redis publish: {e}"))
            }
        }
    }

    /// Keeps this instance subscribed to its rooms until `shutdown`, reconnecting with backoff;
    /// `connected` runs after each (re)subscription to every room.
    pub async fn run(&self, shutdown: &CancellationToken, connected: impl Fn()) {
        let Some(mut changes) = self.changes.lock().await.take() else {
            tracing::error!("the chat relay was started twice");
            return;
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.session(shutdown, &mut changes, &connected).await {
                Ended::Shutdown => return,
                Ended::Lost(e) => {
                    self.up.store(false, Ordering::Release);
                    self.ctx.hub.set_ready(&self.ctx.hub.rooms(), false);
                    tracing::warn!(error = %e, retry_in = ?backoff, "chat relay subscription lost");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn session(
        &self,
        shutdown: &CancellationToken,
        changes: &mut mpsc::UnboundedReceiver<RoomChange>,
        connected: &impl Fn(),
    ) -> Ended {
        let connect = async {
            let client = redis::Client::open(self.ctx.redis_url.as_str())?;
            let pubsub = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
                .await
                .map_err(|_| anyhow::anyhow!("connecting timed out"))??;
            let (mut sink, stream) = pubsub.split();
            let rooms = self.ctx.hub.rooms();
            if !rooms.is_empty() {
                let channels: Vec<String> = rooms.iter().map(|r| self.channel(*r)).collect();
                sink.subscribe(channels).await?;
            }
            anyhow::Ok((sink, stream, rooms))
        };
        let (mut sink, mut stream, rooms) = match connect.await {
            Ok(parts) => parts,
            Err(e) => return Ended::Lost(e),
        };
        self.ctx.hub.set_ready(&rooms, true);
        self.up.store(true, Ordering::Release);
        tracing::info!(rooms = rooms.len(), "chat relay subscribed");
        connected();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ended::Shutdown,
                change = changes.recv() => match change {
                    Some(RoomChange::Joined(room)) => {
                        if let Err(e) = sink.subscribe(self.channel(room)).await {
                            return Ended::Lost(e.into());
                        }
                        self.ctx.hub.set_ready(&[room], true);
                    }
                    Some(RoomChange::Left(room)) => {
                        if !self.ctx.hub.has_room(room)
                            && let Err(e) = sink.unsubscribe(self.channel(room)).await
                        {
                            return Ended::Lost(e.into());
                        }
                    }
                    None => return Ended::Shutdown,
                },
                message = stream.next() => match message {
                    Some(message) => match serde_json::from_slice::<ChatMessage>(message.get_payload_bytes()) {
                        Ok(message) => arrived(&self.ctx, message),
                        Err(e) => tracing::warn!(error = %e, "unreadable chat message on a room channel"),
                    },
                    None => return Ended::Lost(anyhow::anyhow!("the subscription connection closed")),
                },
            }
        }
    }
}
