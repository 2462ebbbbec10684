//! `redis-recovering`: the room channels of `redis-pubsub` for speed, and the room's seq for
//! everything they lose. Each subscription delivers in seq order and drops what it sent
//! already; a seq that arrives ahead of the next expected one makes it read the gap from the
//! database (seqs commit in order, so the gap is there); a SUBSCRIBE with `last-seq` gets what
//! it missed before anything live. What no live message reveals (the last messages published
//! while Redis was away) this relay finds by reading its rooms' last seq from the database
//! every `check` and after every reconnect.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::redis_channel::RedisChannels;
use super::{Relay, RelayContext, RelayStrategy};
use crate::chat::hub::RoomChange;
use crate::chat::{ChatMessage, store};

/// How often the rooms' last seqs are read.
const CHECK: Duration = Duration::from_secs(1);

pub struct RecoveringRelay {
    channels: RedisChannels,
    reconnected: Notify,
}

impl RecoveringRelay {
    pub fn new(ctx: RelayContext, changes: Option<mpsc::UnboundedReceiver<RoomChange>>) -> Self {
        Self { channels: RedisChannels::new(ctx, changes), reconnected: Notify::new() }
    }

    /// Tells the hub each room's last seq; subscribers behind it read the rest.
    async fn check(&self) {
        let ctx = &self.channels.ctx;
        let rooms = ctx.hub.rooms();
        if rooms.is_empty() {
            return;
        }
        match store::last_seqs(&ctx.db, &rooms).await {
            Ok(seqs) => {
                for (room, last_seq) in seqs {
                    ctx.hub.tail(room, last_seq);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the rooms' last seqs failed"),
        }
    }
}

impl Relay for RecoveringRelay {
    fn strategy(&self) -> RelayStrategy {
        RelayStrategy::RedisRecovering
    }

    fn publish(&self, message: ChatMessage) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { self.channels.publish(&message).await })
    }

    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let checks = {
                let relay = self.clone();
                let shutdown = shutdown.clone();
                async move {
                    let mut every = tokio::time::interval(CHECK);
                    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = every.tick() => {}
                            _ = relay.reconnected.notified() => {}
                        }
                        relay.check().await;
                    }
                }
            };
            let subscriptions = self.channels.run(&shutdown, || self.reconnected.notify_one());
            tokio::join!(checks, subscriptions);
        })
    }

    fn recovers(&self) -> bool {
        true
    }

    fn transport_up(&self) -> Option<bool> {
        Some(self.channels.is_up())
    }
}
