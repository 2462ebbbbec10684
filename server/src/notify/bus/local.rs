//! `local`: store, then push to streams on this instance only. The baseline the seed started
//! from: with N instances a recipient's stream is elsewhere (N-1)/N of the time.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::{BusContext, Delivery, DeliveryError, Strategy, store_now};
use crate::notify::NewNotification;

pub struct LocalDelivery {
    ctx: BusContext,
}

impl LocalDelivery {
    pub fn new(ctx: BusContext) -> Self {
        Self { ctx }
    }
}

impl Delivery for LocalDelivery {
    fn strategy(&self) -> Strategy {
        Strategy::Local
    }

    fn after_commit(&self, batch: Vec<NewNotification>) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async move {
            for n in store_now(&self.ctx, &batch).await? {
                self.ctx.hub.push(&n);
            }
            Ok(())
        })
    }

    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move { shutdown.cancelled().await })
    }

    fn transport_up(&self) -> Option<bool> {
        None
    }
}
