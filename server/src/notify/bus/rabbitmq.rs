//! `rabbitmq`: the seed's design. The request publishes the batch to a direct exchange; one
//! competing consumer of the durable store queue stores it (idempotently) and publishes each
//! stored notification to the fanout; every instance's exclusive queue receives it and the
//! instance holding the stream pushes it. Rejected messages go to the DLQ, which alerts.
//!
//! The batches that requests commit at the same time share a store message ([`StoreFeed`]):
//! under load one message, one store transaction and one fanout message carry several
//! causes, and nothing waits for a timer.
//!
//! What it cannot survive: a broker that is down when the request publishes (the diary is
//! committed, the notification is not): `outbox` closes that gap.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use lapin::Connection;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::amqp::{self, Names, PublisherSlot, PushQueue, STORE_KEY, next_delivery};
use super::{BusContext, Delivery, DeliveryError, Link, Strategy, supervise};
use crate::notify::NewNotification;

/// Store messages in flight per consumer: each is one transaction, so a few dozen keep the
/// database busy without one instance taking the whole queue.
const STORE_PREFETCH: u16 = 32;

/// Notifications in one store message at most (a message takes at least one batch whole).
const STORE_MESSAGE_MAX: usize = 256;

/// What a request waiting for its store message hears when the server stops first.
const SHUTTING_DOWN: &str = "the server is shutting down";

pub struct RabbitMqDelivery {
    ctx: BusContext,
    names: Names,
    publisher: PublisherSlot,
    link: Link,
    feed: StoreFeed,
}

impl RabbitMqDelivery {
    pub fn new(ctx: BusContext) -> Self {
        let names = Names::new(&ctx.prefix, &ctx.instance_id);
        Self { ctx, names, publisher: PublisherSlot::default(), link: Link::default(), feed: StoreFeed::default() }
    }

    /// The instance's one store publisher: publishes what requests committed to the store
    /// queue, one message at a time (what commits while a message awaits its confirm goes in
    /// the next), until `shutdown`; then answers what is still waiting with an error.
    async fn publish_store_messages(&self, shutdown: &CancellationToken) {
        loop {
            let ready = self.feed.ready.notified();
            let Some(group) = self.feed.take(STORE_MESSAGE_MAX) else {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ready => continue,
                }
            };
            let outcome = self.publish_store_message(&group).await;
            for waiting in group {
                // A request that stopped waiting (its client went away) still had its batch
                // published; nobody is left to tell.
                let _ = waiting.done.send(outcome.clone());
            }
        }
        for waiting in self.feed.close() {
            let _ = waiting.done.send(Err(SHUTTING_DOWN.to_string()));
        }
    }

    /// One store message: the group's batches, in the order they were committed.
    async fn publish_store_message(&self, group: &[Waiting]) -> Result<(), String> {
        let batch: Vec<&NewNotification> = group.iter().flat_map(|w| &w.batch).collect();
        let payload = serde_json::to_vec(&batch).map_err(|e| e.to_string())?;
        // Mandatory: a store queue that is unavailable (a classic queue whose node is down)
        // must fail the publish, not swallow the message under a positive confirm.
        match self.publisher.publish(&self.names.direct, STORE_KEY, &payload, true, true).await {
            Ok(()) => {
                self.ctx.metrics.published.inc_by(batch.len() as u64);
                self.ctx.metrics.broker_messages.inc();
                Ok(())
            }
            Err(e) => {
                self.ctx.metrics.publish_failed.inc_by(batch.len() as u64);
                Err(format!("rabbitmq publish: {e}"))
            }
        }
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

    /// Waits until the batch is in the store queue (the broker confirmed the message that
    /// carries it), or its publish failed.
    fn after_commit(&self, batch: Vec<NewNotification>) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async move {
            let shutting_down = || DeliveryError::Transport(SHUTTING_DOWN.to_string());
            let confirmed = self.feed.send(batch).ok_or_else(shutting_down)?;
            confirmed.await.map_err(|_| shutting_down())?.map_err(DeliveryError::Transport)
        })
    }

    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let this = self.clone();
            let publisher_shutdown = shutdown.clone();
            let publisher = tokio::spawn(async move { this.publish_store_messages(&publisher_shutdown).await });
            supervise(&self.link, &shutdown, "rabbitmq", || self.session(&shutdown)).await;
            let _ = publisher.await;
        })
    }

    fn transport_up(&self) -> Option<bool> {
        Some(self.link.is_up())
    }
}

/// A batch committed by a request, waiting for its store message's confirm.
struct Waiting {
    batch: Vec<NewNotification>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The batches committed on this instance and not yet published to the store queue: group
/// commit for the broker. The publisher, when free, takes everything waiting (up to a message's
/// limit), so one request at a time goes out alone and at once, and while the publisher waits
/// for a confirm the batches committed meanwhile gather into the next message. Under
/// load that is fewer messages, confirms, store transactions and fanout messages per event,
/// without a timer that would delay a quiet instance.
#[derive(Default)]
struct StoreFeed {
    waiting: Mutex<Feed>,
    ready: Notify,
}

#[derive(Default)]
struct Feed {
    batches: Vec<Waiting>,
    closed: bool,
}

impl StoreFeed {
    fn lock(&self) -> MutexGuard<'_, Feed> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a batch; the receiver answers once it is published. `None` after [`Self::close`].
    fn send(&self, batch: Vec<NewNotification>) -> Option<oneshot::Receiver<Result<(), String>>> {
        let (done, confirmed) = oneshot::channel();
        {
            let mut feed = self.lock();
            if feed.closed {
                return None;
            }
            feed.batches.push(Waiting { batch, done });
        }
        self.ready.notify_one();
        Some(confirmed)
    }

    /// The oldest waiting batches, whole, up to `max` notifications (at least one batch).
    fn take(&self, max: usize) -> Option<Vec<Waiting>> {
        let mut feed = self.lock();
        let mut count = 0;
        let mut n = 0;
        for waiting in &feed.batches {
            if n > 0 && count + waiting.batch.len() > max {
                break;
            }
            count += waiting.batch.len();
            n += 1;
        }
        if n == 0 {
            return None;
        }
        // More than one message's worth: the publisher takes the rest at its next look.
        Some(feed.batches.drain(..n).collect())
    }

    /// Refuses new batches and returns those still waiting.
    fn close(&self) -> Vec<Waiting> {
        let mut feed = self.lock();
        feed.closed = true;
        std::mem::take(&mut feed.batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Kind;

    fn batch(cause_id: u64, recipients: u64) -> Vec<NewNotification> {
        (1..=recipients)
            .map(|recipient_id| NewNotification { recipient_id, kind: Kind::Diary, cause_id, actor_id: 99 })
            .collect()
    }

    fn causes(group: &[Waiting]) -> Vec<u64> {
        group.iter().map(|w| w.batch[0].cause_id).collect()
    }

    #[test]
    fn a_message_takes_whole_batches_in_commit_order_up_to_its_limit() {
        let feed = StoreFeed::default();
        assert!(feed.take(10).is_none(), "nothing waits yet");
        let _receivers: Vec<_> = [(1, 4), (2, 4), (3, 4), (4, 30)]
            .into_iter()
            .map(|(cause, n)| feed.send(batch(cause, n)).expect("open"))
            .collect();
        // 4 + 4 fit in 10, the third batch would not: it is left whole for the next message.
        assert_eq!(causes(&feed.take(10).unwrap()), [1, 2]);
        // A batch larger than the limit still goes out, alone.
        assert_eq!(causes(&feed.take(10).unwrap()), [3]);
        assert_eq!(causes(&feed.take(10).unwrap()), [4]);
        assert!(feed.take(10).is_none());
    }

    #[tokio::test]
    async fn closing_answers_nothing_itself_and_refuses_new_batches() {
        let feed = StoreFeed::default();
        let waiting = feed.send(batch(1, 2)).expect("open");
        let left = feed.close();
        assert_eq!(causes(&left), [1], "what waited is handed back to be answered");
        assert!(feed.send(batch(2, 2)).is_none(), "a closed feed takes nothing");
        for w in left {
            w.done.send(Err("shutting down".into())).unwrap();
        }
        assert_eq!(waiting.await.unwrap(), Err("shutting down".to_string()));
    }

    #[tokio::test]
    async fn a_publisher_is_woken_by_a_send_made_before_it_waits() {
        let feed = StoreFeed::default();
        let _receiver = feed.send(batch(1, 1)).expect("open");
        // The wake-up of that send is kept for the next waiter: a free publisher that looks
        // after the send neither misses it nor sleeps.
        tokio::time::timeout(Duration::from_secs(1), feed.ready.notified()).await.expect("woken");
        assert_eq!(causes(&feed.take(10).unwrap()), [1]);
    }
}
