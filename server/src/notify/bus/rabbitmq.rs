//! `rabbitmq`: the seed's design. The request publishes the batch to a direct exchange; one
//! competing consumer of the durable store queue stores it (idempotently) and publishes the
//! stored notifications to the fanout; every instance's exclusive queue receives them and the
//! instance holding a recipient's stream pushes its notification. Rejected messages go to the DLQ, which alerts.
//!
//! The batches that requests commit at the same time share a store message, the store
//! messages an instance is delivered while its store transactions run share the next one, and
//! the batches it stores at the same time share a fanout message ([`GroupFeed`]): under load
//! one message, one store transaction and one fanout message carry several causes, and nothing
//! waits for a timer.
//!
//! What it cannot survive: a broker that is down when the request publishes (the diary is
//! committed, the notification is not): `outbox` closes that gap.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use lapin::Connection;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::amqp::{self, Names, PublisherSlot, PushQueue, STORE_KEY, next_delivery};
use super::{BusContext, Delivery, DeliveryError, Link, Strategy, supervise};
use crate::notify::metrics::{NotifyMetrics, Stage};
use crate::notify::{NewNotification, Notification};

/// Store messages delivered and not yet acknowledged, per consumer: those that arrive while the
/// instance's store transactions run wait and are stored together in the next one, so a few
/// dozen keep the transactions full without one instance taking the whole queue.
const STORE_PREFETCH: u16 = 32;

/// Notifications in one store or fanout message at most (a message takes at least one batch
/// whole).
const MESSAGE_MAX: usize = 256;

/// Store messages awaiting their confirms at once, per instance.
const STORE_WINDOW: usize = 1;

/// Fanout messages awaiting their confirms at once, per instance.
const FANOUT_WINDOW: usize = 4;

/// What a request waiting for its store message hears when the server stops first.
const SHUTTING_DOWN: &str = "the server is shutting down";

pub struct RabbitMqDelivery {
    ctx: BusContext,
    names: Names,
    publisher: PublisherSlot,
    link: Link,
    /// Committed batches waiting for the store queue.
    to_store: GroupFeed<NewNotification>,
    /// Delivered store messages' batches waiting for a store transaction.
    to_database: GroupFeed<NewNotification>,
    /// Stored batches waiting for the fanout.
    to_fan_out: GroupFeed<Notification>,
}

impl RabbitMqDelivery {
    pub fn new(ctx: BusContext) -> Self {
        let names = Names::new(&ctx.prefix, &ctx.instance_id);
        Self {
            ctx,
            names,
            publisher: PublisherSlot::default(),
            link: Link::default(),
            to_store: GroupFeed::default(),
            to_database: GroupFeed::default(),
            to_fan_out: GroupFeed::default(),
        }
    }

    /// One store message: the group's batches, in the order they were committed.
    async fn publish_store_message(&self, batch: &[&NewNotification]) -> Result<(), String> {
        let payload = serde_json::to_vec(batch).map_err(|e| e.to_string())?;
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

    /// One fanout message: the stored batches of the group.
    async fn publish_fanout_message(&self, batch: &[&Notification]) -> Result<(), String> {
        let payload = serde_json::to_vec(batch).map_err(|e| e.to_string())?;
        self.publisher.publish(&self.names.fanout, "", &payload, false, false).await?;
        self.ctx.metrics.broker_messages.inc();
        Ok(())
    }

    /// Stores each batch once, then fans its notifications out, and acknowledges the message
    /// once its fanout message is confirmed. Up to `STORE_PREFETCH` messages are handled at
    /// once (one at a time left the queue growing under load: p50 6 s at 600/s); they share
    /// the instance's store transactions ([`Self::store_group`]).
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
                // A message delivered again is stored on its own: one the database refuses
                // for good fails alone instead of taking the others of its group with it.
                let outcome = if delivery.redelivered {
                    this.store_alone(&batch).await
                } else {
                    this.to_database.published(batch).await.map_err(StoreFailure::Retry)
                };
                let outcome = match outcome {
                    Ok(()) => delivery.ack(BasicAckOptions::default()).await,
                    Err(StoreFailure::Refused(e)) => {
                        // Retrying cannot help (a recipient deleted since the cause committed):
                        // the DLQ keeps it and its consumer alerts.
                        tracing::warn!(error = %e, "the database refuses a store message; dead-lettering");
                        delivery.reject(BasicRejectOptions { requeue: false }).await
                    }
                    Err(StoreFailure::Retry(e)) => {
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

    /// One store transaction for the batches of the store messages that waited for it, then a
    /// wait until their notifications are in a fanout message the broker confirmed (with the
    /// batches this instance stored meanwhile). A message per transaction, 32 at once on 4
    /// connections, spent most of a store's time waiting for a connection (mean 226 ms per
    /// store at 650 events/s, `notify_stage_seconds`).
    async fn store_group(&self, batch: &[&NewNotification]) -> Result<(), String> {
        let batch: Vec<NewNotification> = batch.iter().map(|n| (*n).clone()).collect();
        let stored = super::store_now(&self.ctx, &batch).await.map_err(|e| e.to_string())?;
        self.fan_out(stored).await
    }

    /// One message's batch in a transaction of its own (a message delivered again), then its
    /// fanout.
    async fn store_alone(&self, batch: &[NewNotification]) -> Result<(), StoreFailure> {
        let stored = super::store_now(&self.ctx, batch).await.map_err(|e| {
            if crate::notify::store::refused_for_good(&e) {
                StoreFailure::Refused(e.to_string())
            } else {
                StoreFailure::Retry(e.to_string())
            }
        })?;
        self.fan_out(stored).await.map_err(StoreFailure::Retry)
    }

    /// Waits until the stored notifications are in a fanout message the broker confirmed.
    async fn fan_out(&self, stored: Vec<Notification>) -> Result<(), String> {
        if stored.is_empty() {
            return Ok(());
        }
        self.to_fan_out.published(stored).await
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
        Box::pin(async move { self.to_store.published(batch).await.map_err(DeliveryError::Transport) })
    }

    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let this = self.clone();
            let publishers_shutdown = shutdown.clone();
            let publishers = tokio::spawn(async move {
                tokio::join!(
                    publish_groups(
                        &*this,
                        &this.to_store,
                        STORE_WINDOW,
                        Timing {
                            metrics: &this.ctx.metrics,
                            queued: Stage::StoreQueued,
                            done: Some(Stage::StoreConfirm)
                        },
                        |d, b| Box::pin(d.publish_store_message(b)),
                        &publishers_shutdown
                    ),
                    // As many store transactions at once as the store pool has connections.
                    publish_groups(
                        &*this,
                        &this.to_database,
                        this.ctx.store_db.options().get_max_connections() as usize,
                        Timing { metrics: &this.ctx.metrics, queued: Stage::StoreWaiting, done: None },
                        |d, b| Box::pin(d.store_group(b)),
                        &publishers_shutdown
                    ),
                    publish_groups(
                        &*this,
                        &this.to_fan_out,
                        FANOUT_WINDOW,
                        Timing {
                            metrics: &this.ctx.metrics,
                            queued: Stage::FanoutQueued,
                            done: Some(Stage::FanoutConfirm)
                        },
                        |d, b| Box::pin(d.publish_fanout_message(b)),
                        &publishers_shutdown
                    ),
                );
            });
            supervise(&self.link, &shutdown, "rabbitmq", || self.session(&shutdown)).await;
            let _ = publishers.await;
        })
    }

    fn transport_up(&self) -> Option<bool> {
        Some(self.link.is_up())
    }
}

/// One of an instance's publishers (store messages, store transactions, fanout messages):
/// hands what waits in `feed` to `publish`, `window` groups in flight at most (what arrives
/// while they await their confirms goes in the next), until `shutdown`; then answers what is
/// still waiting with an error. How long batches waited for it, and groups for their
/// confirms, goes to `timing`'s stages.
async fn publish_groups<C, T>(
    ctx: &C,
    feed: &GroupFeed<T>,
    window: usize,
    timing: Timing<'_>,
    publish: PublishFn<C, T>,
    shutdown: &CancellationToken,
) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        let ready = feed.ready.notified();
        if in_flight.len() < window
            && let Some(group) = feed.take(MESSAGE_MAX)
        {
            let taken = Instant::now();
            for waiting in &group {
                timing.metrics.stage(timing.queued, taken.duration_since(waiting.queued_at).as_secs_f64());
            }
            in_flight.push(async move {
                let batch: Vec<&T> = group.iter().flat_map(|w| &w.batch).collect();
                let outcome = publish(ctx, &batch).await;
                if let Some(done) = timing.done {
                    timing.metrics.stage(done, taken.elapsed().as_secs_f64());
                }
                for waiting in group {
                    // A request that stopped waiting (its client went away) still had its
                    // batch published; nobody is left to tell.
                    let _ = waiting.done.send(outcome.clone());
                }
            });
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ready, if in_flight.len() < window => {}
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
        }
    }
    // What is in flight is dropped with its senders: its waiters hear the shutdown too.
    drop(in_flight);
    for waiting in feed.close() {
        let _ = waiting.done.send(Err(SHUTTING_DOWN.to_string()));
    }
}

/// Why a store message was not stored.
enum StoreFailure {
    /// The database or the broker is away, or the server is stopping: try again.
    Retry(String),
    /// The database refuses the batch itself: trying again cannot help.
    Refused(String),
}

/// Where a publisher records its batches' wait and its messages' confirms.
#[derive(Clone, Copy)]
struct Timing<'a> {
    metrics: &'a NotifyMetrics,
    /// A batch from its arrival in the feed to the publisher taking it.
    queued: Stage,
    /// A group from the publisher taking it to its outcome, if timed.
    done: Option<Stage>,
}

/// Publishes one message carrying the batch and waits for its confirm.
type PublishFn<C, T> = for<'a> fn(&'a C, &'a [&'a T]) -> BoxFuture<'a, Result<(), String>>;

/// A batch waiting for the confirm of the message that carries it.
struct Waiting<T> {
    batch: Vec<T>,
    queued_at: Instant,
    done: oneshot::Sender<Result<(), String>>,
}

/// Batches waiting for a publisher: group commit for the broker. The publisher, when free,
/// takes everything waiting (up to a message's limit), so a batch alone goes out alone and at
/// once, and while the publisher waits for a confirm the batches that arrive meanwhile gather
/// into the next message. Under load that is fewer messages and confirms per event (and,
/// for the store queue, fewer store transactions), without a timer that would delay a quiet
/// instance.
struct GroupFeed<T> {
    waiting: Mutex<Feed<T>>,
    ready: Notify,
}

impl<T> Default for GroupFeed<T> {
    fn default() -> Self {
        Self { waiting: Mutex::new(Feed { batches: Vec::new(), closed: false }), ready: Notify::new() }
    }
}

struct Feed<T> {
    batches: Vec<Waiting<T>>,
    closed: bool,
}

impl<T> GroupFeed<T> {
    fn lock(&self) -> MutexGuard<'_, Feed<T>> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a batch; the receiver answers once it is published. `None` after [`Self::close`].
    fn send(&self, batch: Vec<T>) -> Option<oneshot::Receiver<Result<(), String>>> {
        let (done, confirmed) = oneshot::channel();
        {
            let mut feed = self.lock();
            if feed.closed {
                return None;
            }
            feed.batches.push(Waiting { batch, queued_at: Instant::now(), done });
        }
        self.ready.notify_one();
        Some(confirmed)
    }

    /// Queues a batch and waits until the message carrying it is confirmed; the publish's error,
    /// or the shutdown's when the publisher stopped first.
    async fn published(&self, batch: Vec<T>) -> Result<(), String> {
        let confirmed = self.send(batch).ok_or_else(|| SHUTTING_DOWN.to_string())?;
        confirmed.await.map_err(|_| SHUTTING_DOWN.to_string())?
    }

    /// The oldest waiting batches, whole, up to `max` items (at least one batch).
    fn take(&self, max: usize) -> Option<Vec<Waiting<T>>> {
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
    fn close(&self) -> Vec<Waiting<T>> {
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

    fn causes(group: &[Waiting<NewNotification>]) -> Vec<u64> {
        group.iter().map(|w| w.batch[0].cause_id).collect()
    }

    #[test]
    fn a_message_takes_whole_batches_in_commit_order_up_to_its_limit() {
        let feed = GroupFeed::default();
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
        let feed = GroupFeed::default();
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
        let feed = GroupFeed::default();
        let _receiver = feed.send(batch(1, 1)).expect("open");
        // The wake-up of that send is kept for the next waiter: a free publisher that looks
        // after the send neither misses it nor sleeps.
        tokio::time::timeout(Duration::from_secs(1), feed.ready.notified()).await.expect("woken");
        assert_eq!(causes(&feed.take(10).unwrap()), [1]);
    }

    /// A broker stand-in for [`publish_groups`]: records each message's size and holds its
    /// confirm until the test releases one.
    struct Held {
        sizes: Mutex<Vec<usize>>,
        confirms: tokio::sync::Semaphore,
    }

    impl Default for Held {
        fn default() -> Self {
            Self { sizes: Mutex::default(), confirms: tokio::sync::Semaphore::new(0) }
        }
    }

    fn publish_held<'a>(held: &'a Held, batch: &'a [&'a NewNotification]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            held.sizes.lock().unwrap().push(batch.len());
            held.confirms.acquire().await.expect("open").forget();
            Ok(())
        })
    }

    async fn sizes_become(held: &Held, want: &[usize]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while held.sizes.lock().unwrap().as_slice() != want {
            assert!(tokio::time::Instant::now() < deadline, "messages {:?}, want {want:?}", held.sizes.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_full_window_gathers_what_arrives_into_the_next_message() {
        let (held, feed, shutdown) =
            (Arc::new(Held::default()), Arc::new(GroupFeed::default()), CancellationToken::new());
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Arc::new(NotifyMetrics::register(&mut registry, "rabbitmq"));
        let publisher = {
            let (held, feed, shutdown) = (held.clone(), feed.clone(), shutdown.clone());
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let timing =
                    Timing { metrics: &metrics, queued: Stage::FanoutQueued, done: Some(Stage::FanoutConfirm) };
                publish_groups(&*held, &*feed, 2, timing, publish_held, &shutdown).await
            })
        };
        // Alone, each goes out at once, up to the window.
        let first = feed.send(batch(1, 1)).unwrap();
        sizes_become(&held, &[1]).await;
        let second = feed.send(batch(2, 1)).unwrap();
        sizes_become(&held, &[1, 1]).await;
        // The window is full: these wait, and go together once a confirm frees a place.
        let third = feed.send(batch(3, 2)).unwrap();
        let fourth = feed.send(batch(4, 3)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        sizes_become(&held, &[1, 1]).await;
        held.confirms.add_permits(1);
        sizes_become(&held, &[1, 1, 5]).await;
        held.confirms.add_permits(2);
        for confirmed in [first, second, third, fourth] {
            assert_eq!(confirmed.await.unwrap(), Ok(()));
        }
        // On shutdown what still waits for a confirm hears it, and nothing new is taken.
        let unconfirmed = feed.send(batch(5, 1)).unwrap();
        sizes_become(&held, &[1, 1, 5, 1]).await;
        shutdown.cancel();
        publisher.await.unwrap();
        assert!(unconfirmed.await.is_err(), "its confirm never came: the waiter is told");
        assert!(feed.send(batch(6, 1)).is_none());
        // Five batches waited for the publisher; three messages were confirmed (the fourth never).
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("notify_stage_seconds_count{strategy=\"rabbitmq\",stage=\"fanout_queued\"} 5"), "{text}");
        assert!(
            text.contains("notify_stage_seconds_count{strategy=\"rabbitmq\",stage=\"fanout_confirm\"} 3"),
            "{text}"
        );
    }
}
