//! `outbox`: notification rows are written in the cause's own transaction, so a committed
//! diary always has its notifications, whatever the broker is doing. A relay on every
//! instance numbers new rows (takes their recipients' seqs, in a short transaction of its
//! own), claims numbered unrelayed rows (`FOR UPDATE SKIP LOCKED`), publishes them to the
//! fanout with confirms, and marks them relayed. At least once: a relay that dies between
//! publish and commit republishes, and streams skip a seq they already sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use sqlx::MySqlConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::amqp::{self, Names, PublisherSlot, PushQueue};
use super::{BusContext, Delivery, DeliveryError, Link, Strategy, supervise};
use crate::notify::NewNotification;
use crate::notify::metrics::Stage;
use crate::notify::store;

const RELAY_BATCH: u32 = 200;
const RELAY_POLL: Duration = Duration::from_millis(100);
/// Under load, a relay pass starts at least this long after the previous one started (unless
/// that one was full): the commits of the interval go out in one pass. Without it every commit
/// woke a pass of its own (BEGIN, a locking read, a publish and its confirm, an UPDATE, a
/// COMMIT and its flush, for about one event), and the relay cost the database more than the
/// cause's own transaction. An idle relay starts at once: a pass far from the last one waits
/// for nothing. 25 ms against 10 ms and none: `reports/README.md`, "Fewer relay passes".
const RELAY_SPACING: Duration = Duration::from_millis(25);
/// A push queue without a consumer this long is deleted by the broker (its instance is gone).
/// Durable, unlike the seed's: after a broker restart one relay may publish before another
/// instance has reconnected, and that instance's queue must already exist to keep it.
/// Found by `notify-faults`: with exclusive queues the outbox lost ~40% after the broker came
/// back.
const PUSH_QUEUE_EXPIRES: Duration = Duration::from_secs(300);
/// Notifications per fanout message: one publish and one confirm for many rows.
const RELAY_MESSAGE: usize = 50;

pub struct OutboxDelivery {
    ctx: BusContext,
    names: Names,
    publisher: PublisherSlot,
    link: Link,
    wake: Notify,
}

impl OutboxDelivery {
    pub fn new(ctx: BusContext) -> Self {
        let names = Names::new(&ctx.prefix, &ctx.instance_id);
        Self { ctx, names, publisher: PublisherSlot::default(), link: Link::default(), wake: Notify::new() }
    }

    /// Numbers up to [`RELAY_BATCH`] new rows, then relays up to as many numbered ones; returns
    /// the larger of the two counts (a full batch of either means more are waiting).
    ///
    /// The rows are numbered here, not in the cause's transaction: numbering there locked the
    /// recipients' stream rows from the insert to the cause's commit, once per cause; here
    /// they are locked once per pass, for up to 200 rows, and only while the database runs
    /// the numbering ([`store::number_pending`]). A row numbered by a pass that then fails to
    /// publish is published by the next pass of any relay; a failed numbering does not keep
    /// the numbered rows from going out.
    async fn relay_once(&self) -> Result<usize, String> {
        let numbered = self.number_once().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "outbox relay could not number new rows; the next pass numbers them");
            0
        });
        let relayed = self.publish_once().await?;
        Ok(numbered.max(relayed))
    }

    /// One numbering transaction on the store pool; a connection it failed on is closed.
    async fn number_once(&self) -> sqlx::Result<usize> {
        let started = Instant::now();
        let mut conn = self.ctx.store_db.acquire().await?;
        let numbered = store::number_pending(&mut conn, RELAY_BATCH).await;
        match numbered {
            Ok(0) => {}
            Ok(_) => self.ctx.metrics.stage(Stage::RelayNumber, started.elapsed().as_secs_f64()),
            Err(_) => conn.close_on_drop(),
        }
        numbered
    }

    /// Publishes one batch of numbered rows; returns how many it published.
    ///
    /// The rows stay locked until the commit, which comes after every confirm: a relay that
    /// dies in between leaves them unrelayed, to be published again (at least once). The
    /// chunks are published together and their confirms awaited together, one round trip
    /// for the batch rather than one per chunk.
    ///
    /// A pass runs on the store pool (which this strategy does not otherwise use), not on the
    /// requests' pool: there it waited for a connection behind request handlers that wait for
    /// row locks, its claim took 106-123 ms, and at 750 events/s the relays fell behind the
    /// commits for good (a notification waited 4.6-7.5 s for a pass on average; on the store
    /// pool 54-74 ms). The store pool's sessions also end a transaction left idle for
    /// [`crate::db::STORE_IDLE_TIMEOUT_S`]: a relay frozen mid-pass frees its rows for the
    /// other relays instead of holding them until it wakes.
    async fn publish_once(&self) -> Result<usize, String> {
        let metrics = &self.ctx.metrics;
        let started = Instant::now();
        let mut tx = self.ctx.store_db.begin().await.map_err(|e| e.to_string())?;
        let rows = store::claim_unrelayed(&mut tx, RELAY_BATCH).await.map_err(|e| e.to_string())?;
        if rows.is_empty() {
            return Ok(0);
        }
        let claimed = Instant::now();
        metrics.stage(Stage::RelayClaim, (claimed - started).as_secs_f64());
        let now = chrono::Utc::now();
        for row in &rows {
            metrics
                .stage(Stage::RelayWaiting, (now - row.created_at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
        }
        let payloads = rows.chunks(RELAY_MESSAGE).map(serde_json::to_vec).collect::<Result<Vec<_>, _>>();
        let payloads = payloads.map_err(|e| e.to_string())?;
        // On failure the transaction rolls back: the rows stay unrelayed for the next try.
        futures::future::try_join_all(
            payloads.iter().map(|payload| self.publisher.publish(&self.names.fanout, "", payload, false, false)),
        )
        .await?;
        let confirmed = Instant::now();
        metrics.stage(Stage::FanoutConfirm, (confirmed - claimed).as_secs_f64());
        metrics.published.inc_by(rows.len() as u64);
        metrics.broker_messages.inc_by(payloads.len() as u64);
        let mut update =
            sqlx::QueryBuilder::new("UPDATE notifications SET relayed_at = CURRENT_TIMESTAMP(6) WHERE id IN ");
        update.push_tuples(&rows, |mut t, row| {
            t.push_bind(row.id);
        });
        update.build().execute(&mut *tx).await.map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        metrics.stage(Stage::RelayMark, confirmed.elapsed().as_secs_f64());
        tracing::debug!(count = rows.len(), "relayed notifications");
        Ok(rows.len())
    }

    /// Passes while full batches are waiting, else asleep until a commit of this instance
    /// wakes it or [`RELAY_POLL`] passes (rows other instances committed, or rows a failed
    /// pass left).
    ///
    /// A batch smaller than [`RELAY_BATCH`] took every row that was committed and not locked
    /// by another relay when it was read, so the loop does not read again at once: a commit
    /// of this instance made meanwhile has left a wake-up (`notify_one` keeps one for a
    /// waiter yet to come), and the poll finds the rest. A poll first asks, without a
    /// transaction or a lock, whether any row waits: on an idle instance that is one
    /// statement a poll instead of three (BEGIN, a locking read, ROLLBACK). Measured by the
    /// report's "Database work" table: the immediate re-read was an empty pass per event.
    /// Passes are spaced by [`RELAY_SPACING`] under load.
    async fn relay_loop(&self, shutdown: &CancellationToken) {
        let mut woken = true;
        // When the next pass may start: after a pass that was not full, one spacing after it began.
        let mut next_pass = tokio::time::Instant::now();
        loop {
            let pass = if woken { Ok(true) } else { store::any_unrelayed(&self.ctx.db).await };
            if matches!(pass, Ok(true)) {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(next_pass) => {}
                }
            }
            let started = tokio::time::Instant::now();
            match pass {
                Ok(true) => match self.relay_once().await {
                    Ok(n) if n >= RELAY_BATCH as usize => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox relay pass failed; rows stay for the next pass"),
                },
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay could not look for rows; it looks again at the next poll")
                }
            }
            next_pass = started + RELAY_SPACING;
            woken = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => true,
                _ = tokio::time::sleep(RELAY_POLL) => false,
            };
        }
    }

    async fn session(&self, shutdown: &CancellationToken) -> lapin::Result<()> {
        let session =
            amqp::connect(&self.ctx.brokers, &self.names, false, PushQueue::DurableExpiring(PUSH_QUEUE_EXPIRES))
                .await?;
        self.publisher.set(Some(session.publish.clone())).await;
        self.link.set(true);
        tracing::info!(queue = %self.names.push_queue, node = session.node, nodes = self.ctx.brokers.nodes(), "connected to RabbitMQ (outbox relay)");
        let result = tokio::select! {
            r = amqp::consume_push(&session, &self.names, &self.ctx, shutdown) => r,
            e = amqp::broken(&session.conn) => Err(e),
        };
        self.publisher.set(None).await;
        let _ = session.conn.close(200, "reconnecting".into()).await;
        result
    }
}

impl Delivery for OutboxDelivery {
    fn strategy(&self) -> Strategy {
        Strategy::Outbox
    }

    fn within<'a>(
        &'a self,
        tx: &'a mut MySqlConnection,
        batch: &'a [NewNotification],
    ) -> BoxFuture<'a, sqlx::Result<()>> {
        Box::pin(async move {
            let stored = store::insert_unnumbered(tx, batch).await?;
            self.ctx.metrics.stored.inc_by(stored);
            Ok(())
        })
    }

    fn after_commit(&self, _batch: Vec<NewNotification>) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async move {
            self.wake.notify_one();
            Ok(())
        })
    }

    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let relay = self.clone();
            let relay_shutdown = shutdown.clone();
            let relay_task = tokio::spawn(async move { relay.relay_loop(&relay_shutdown).await });
            supervise(&self.link, &shutdown, "rabbitmq (outbox)", || self.session(&shutdown)).await;
            let _ = relay_task.await;
        })
    }

    fn transport_up(&self) -> Option<bool> {
        Some(self.link.is_up())
    }
}
