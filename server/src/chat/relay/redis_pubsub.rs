//! `redis-pubsub`: the original design. A stored message is published to its room's channel;
//! every instance with subscribers of the room gets it, at most once: what is published while
//! an instance's subscription is down is gone for its subscribers, who get what arrives, in
//! the order it arrives.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::redis_channel::RedisChannels;
use super::{Relay, RelayContext, RelayStrategy};
use crate::chat::ChatMessage;
use crate::chat::hub::RoomChange;

pub struct RedisPubSubRelay {
    channels: RedisChannels,
}

impl RedisPubSubRelay {
    pub fn new(ctx: RelayContext, changes: Option<mpsc::UnboundedReceiver<RoomChange>>) -> Self {
        Self { channels: RedisChannels::new(ctx, changes) }
    }
}

impl Relay for RedisPubSubRelay {
    fn strategy(&self) -> RelayStrategy {
        RelayStrategy::RedisPubSub
    }

    fn publish(&self, message: ChatMessage) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { self.channels.publish(&message).await })
    }

    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.channels.run(&shutdown, || {}).await })
    }

    fn transport_up(&self) -> Option<bool> {
        Some(self.channels.is_up())
    }
}
