//! `rabbitmq`: the seed's design. The request publishes the batch to a direct exchange; one
//! competing consumer of the durable store queue stores it (idempotently) and publishes each
//! stored notification to the fanout; every instance's exclusive queue receives it and the
//! instance holding the stream pushes it. Rejected messages go to the DLQ, which alerts.
//!
//! What it cannot survive: a broker that is down when the request publishes (the diary is
//! committed, the notification is not): `outbox` closes that gap.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use lapin::Connection;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use tokio_util::sync::CancellationToken;

use super::amqp::{self, Names, PublisherSlot, PushQueue, STORE_KEY, next_delivery};
use super::{BusContext, Delivery, DeliveryError, Link, Strategy, supervise};
use crate::notify::NewNotification;

/// Store messages in flight per consumer: each is one transaction, so a few dozen keep the
/// database busy without one instance taking the whole queue.
const STORE_PREFETCH: u16 = 32;

pub struct RabbitMqDelivery {
    ctx: BusContext,
    names: Names,
    publisher: PublisherSlot,
    link: Link,
}

impl RabbitMqDelivery {
    pub fn new(ctx: BusContext) -> Self {
        let names = Names::new(&ctx.prefix, &ctx.instance_id);
        Self { ctx, names, publisher: PublisherSlot::default(), link: Link::default() }
    }

    /// Stores each batch once, then fans its notifications out. Up to `STORE_PREFETCH`
    /// batches are handled at once: each is a database round trip and a publisher confirm,
    /// and one at a time left the queue growing under load (measured: p50 6 s at 600/s).
    async fn consume_store(self: &Arc<Self>, conn: &Connection, shutdown: &CancellationToken) -> lapin::Result<()> {
        let (_channel, mut consumer) = amqp::consume(conn, &self.names.store_queue, "store", STORE_PREFETCH).await?;
        let in_flight = Arc::new(tokio::sync::Semaphore::new(STORE_PREFETCH as usize));
        loop {
            let Some(delivery) = next_delivery(&mut consumer, shutdown).await else { return Ok(()) };
            let delivery = delivery?;
            if delivery.redelivered {
                self.ctx.metrics.redelivered.inc();
            }
            let batch: Vec<NewNotification> = match serde_json::from_slice(&delivery.data) {
                Ok(batch) => batch,
                Err(e) => {
                    // Poison: retrying cannot help. Reject without requeue: the queue's
                    // dead-letter exchange moves it to the DLQ, whose consumer alerts.
                    tracing::warn!(error = %e, "unreadable store message; dead-lettering");
                    delivery.reject(BasicRejectOptions { requeue: false }).await?;
                    continue;
                }
            };
            let Ok(permit) = in_flight.clone().acquire_owned().await else { return Ok(()) };
            let this = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let outcome = match this.store_and_fan_out(&batch).await {
                    Ok(()) => delivery.ack(BasicAckOptions::default()).await,
                    Err(e) => {
                        // The database or the fanout is away: requeue; storing again is harmless.
                        tracing::warn!(error = %e, "storing a notification batch failed; requeued");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await
                    }
                };
                if let Err(e) = outcome {
                    tracing::warn!(error = %e, "acknowledging a store message failed; the broker will redeliver it");
                }
            });
        }
    }

    async fn store_and_fan_out(&self, batch: &[NewNotification]) -> Result<(), String> {
        let stored = super::store_now(&self.ctx, batch).await.map_err(|e| e.to_string())?;
        // The whole batch in one fanout message: one publish and one confirm per cause, not
        // per recipient.
        let payload = serde_json::to_vec(&stored).map_err(|e| e.to_string())?;
        self.publisher.publish(&self.names.fanout, "", &payload, false, false).await?;
        self.ctx.metrics.broker_messages.inc();
        Ok(())
    }

    async fn consume_dlq(&self, conn: &Connection, shutdown: &CancellationToken) -> lapin::Result<()> {
        let (_channel, mut consumer) = amqp::consume(conn, &self.names.dlq, "dlq", 4).await?;
        loop {
            let Some(delivery) = next_delivery(&mut consumer, shutdown).await else { return Ok(()) };
            let delivery = delivery?;
            self.ctx.metrics.dead_lettered.inc();
            let preview: String = String::from_utf8_lossy(&delivery.data).chars().take(300).collect();
            let text = format!(
                "notification dead-lettered on instance {} (queue {}): {preview}",
                self.ctx.instance_id, self.names.dlq
            );
            tracing::error!(%text, "dead-lettered notification");
            let Some(alert) = &self.ctx.alert else {
                delivery.ack(BasicAckOptions::default()).await?;
                continue;
            };
            match alert.post(&text).await {
                Ok(()) => {
                    self.ctx.metrics.alerts_sent.inc();
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                Err(e) => {
                    // Keep it in the DLQ and try again later rather than lose the alert.
                    tracing::warn!(error = %e, "alert webhook failed; the message stays in the DLQ");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
                }
            }
        }
    }

    async fn session(self: &Arc<Self>, shutdown: &CancellationToken) -> lapin::Result<()> {
        let session = amqp::connect(&self.ctx.brokers, &self.names, true, PushQueue::ExclusiveAutoDelete).await?;
        self.publisher.set(Some(session.publish.clone())).await;
        self.link.set(true);
        tracing::info!(queue = %self.names.push_queue, node = session.node, nodes = self.ctx.brokers.nodes(), "connected to RabbitMQ");
        let result = tokio::select! {
            r = amqp::consume_push(&session, &self.names, &self.ctx, shutdown) => r,
            r = self.consume_store(&session.conn, shutdown) => r,
            r = self.consume_dlq(&session.conn, shutdown) => r,
            e = amqp::broken(&session.conn) => Err(e),
        };
        self.publisher.set(None).await;
        let _ = session.conn.close(200, "reconnecting".into()).await;
        result
    }
}

impl Delivery for RabbitMqDelivery {
    fn strategy(&self) -> Strategy {
        Strategy::RabbitMq
    }

    fn after_commit(&self, batch: Vec<NewNotification>) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async move {
            let payload = serde_json::to_vec(&batch).map_err(|e| DeliveryError::Transport(e.to_string()))?;
            // Mandatory: a store queue that is unavailable (a classic queue whose node is down)
            // must fail the publish, not swallow the message under a positive confirm.
            match self.publisher.publish(&self.names.direct, STORE_KEY, &payload, true, true).await {
                Ok(()) => {
                    self.ctx.metrics.published.inc();
                    self.ctx.metrics.broker_messages.inc();
                    Ok(())
                }
                Err(e) => {
                    self.ctx.metrics.publish_failed.inc();
                    Err(DeliveryError::Transport(format!("rabbitmq publish: {e}")))
                }
            }
        })
    }

    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            supervise(&self.link, &shutdown, "rabbitmq", || self.session(&shutdown)).await;
        })
    }

    fn transport_up(&self) -> Option<bool> {
        Some(self.link.is_up())
    }
}
