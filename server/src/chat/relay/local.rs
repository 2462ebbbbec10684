//! `local`: a message reaches the subscribers of this instance only, as with one instance
//! and an in-memory broker. With N instances, a member on another one misses it.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::{Relay, RelayContext, RelayStrategy, arrived};
use crate::chat::ChatMessage;

pub struct LocalRelay {
    ctx: RelayContext,
}

impl LocalRelay {
    pub fn new(ctx: RelayContext) -> Self {
        Self { ctx }
    }
}

impl Relay for LocalRelay {
    fn strategy(&self) -> RelayStrategy {
        RelayStrategy::Local
    }

    fn publish(&self, message: ChatMessage) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.ctx.metrics.published.inc();
            arrived(&self.ctx, message);
            Ok(())
        })
    }

    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move { shutdown.cancelled().await })
    }
}
