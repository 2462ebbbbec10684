//! Delivery metrics, labelled with the strategy in use: published, stored, pushed, dropped
//! (recipient not connected here), redelivered, dead-lettered, push latency, and how long a
//! notification spends in each stage of the path between the cause's commit and the push.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A stage of a notification's path, timed by `notify_stage_seconds{stage=...}`. Which stages a
/// strategy has: `cause_commit` all; `store` all that store outside the cause's transaction;
/// the store and fanout stages `rabbitmq` (its store publisher, its store consumer's
/// transactions, its fanout publisher); the relay stages and `fanout_confirm` `outbox` (its
/// relay's passes).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Stage {
    /// The commit of a cause (a diary, a comment) that notifies someone: every strategy waits
    /// for it (the outbox's rows are inserted just before it).
    CauseCommit,
    /// A committed batch waiting for the store publisher (its window of messages in flight).
    StoreQueued,
    /// A store message from its publish to the broker's confirm.
    StoreConfirm,
    /// A delivered store message waiting for one of its instance's store transactions.
    StoreWaiting,
    /// One store transaction: a connection from the pool, the batch's rows inserted, the commit.
    Store,
    /// A stored batch waiting for the fanout publisher.
    FanoutQueued,
    /// A fanout message from its publish to the broker's confirm (`outbox`: a relay pass's
    /// messages, awaited together).
    FanoutConfirm,
    /// A relay pass's numbering of new outbox rows: BEGIN, the locking read, the recipients'
    /// seqs taken, the rows numbered, the commit.
    RelayNumber,
    /// An outbox row from its insert (the database's clock) to a relay pass claiming it for
    /// publishing (numbered by then).
    RelayWaiting,
    /// A relay pass's claim: BEGIN and the locking read of the unrelayed rows.
    RelayClaim,
    /// A relay pass's end: the rows marked relayed and the commit.
    RelayMark,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::CauseCommit => "cause_commit",
            Stage::StoreQueued => "store_queued",
            Stage::StoreConfirm => "store_confirm",
            Stage::StoreWaiting => "store_waiting",
            Stage::Store => "store",
            Stage::FanoutQueued => "fanout_queued",
            Stage::FanoutConfirm => "fanout_confirm",
            Stage::RelayNumber => "relay_number",
            Stage::RelayWaiting => "relay_waiting",
            Stage::RelayClaim => "relay_claim",
            Stage::RelayMark => "relay_mark",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

fn stage_histogram() -> Histogram {
    // 0.1 ms .. ~13 s
    Histogram::new(exponential_buckets(0.000_1, 2.0, 18))
}

#[derive(Debug)]
pub struct NotifyMetrics {
    pub published: Counter,
    pub publish_failed: Counter,
    pub broker_messages: Counter,
    pub stored: Counter,
    pub pushed: Counter,
    pub dropped: Counter,
    pub redelivered: Counter,
    pub dead_lettered: Counter,
    pub alerts_sent: Counter,
    pub slow_streams_closed: Counter,
    pub streams_displaced: Counter,
    pub gap_repairs: Counter,
    pub gap_repaired: Counter,
    pub streams: Gauge,
    pub push_latency: Histogram,
    stages: Family<StageLabel, Histogram>,
}

impl NotifyMetrics {
    /// Registers under `notify_*` with a `strategy` label.
    pub fn register(registry: &mut Registry, strategy: &str) -> Self {
        let m = NotifyMetrics {
            published: Counter::default(),
            publish_failed: Counter::default(),
            broker_messages: Counter::default(),
            stored: Counter::default(),
            pushed: Counter::default(),
            dropped: Counter::default(),
            redelivered: Counter::default(),
            dead_lettered: Counter::default(),
            alerts_sent: Counter::default(),
            slow_streams_closed: Counter::default(),
            streams_displaced: Counter::default(),
            gap_repairs: Counter::default(),
            gap_repaired: Counter::default(),
            streams: Gauge::default(),
            push_latency: Histogram::new(exponential_buckets(0.000_1, 2.0, 18)),
            stages: Family::new_with_constructor(stage_histogram as fn() -> Histogram),
        };
        let sub = registry
            .sub_registry_with_prefix("notify")
            .sub_registry_with_label(("strategy".into(), strategy.to_string().into()));
        sub.register("published", "Notifications handed to the broker", m.published.clone());
        sub.register("publish_failed", "Notifications the broker did not take", m.publish_failed.clone());
        sub.register(
            "broker_messages",
            "Messages published to RabbitMQ (one carries a cause's batch, or the outbox relay's rows)",
            m.broker_messages.clone(),
        );
        sub.register("stored", "Notification rows written", m.stored.clone());
        sub.register("pushed", "Notifications written to a local SSE stream", m.pushed.clone());
        sub.register("dropped", "Notifications whose recipient has no stream on this instance", m.dropped.clone());
        sub.register("redelivered", "Messages the broker delivered again", m.redelivered.clone());
        sub.register("dead_lettered", "Messages that ended in the dead-letter queue", m.dead_lettered.clone());
        sub.register("alerts_sent", "Dead-letter alerts posted to the webhook", m.alerts_sent.clone());
        sub.register("slow_streams_closed", "SSE streams closed for falling behind", m.slow_streams_closed.clone());
        sub.register(
            "streams_displaced",
            "SSE streams closed because their user opened more than the limit",
            m.streams_displaced.clone(),
        );
        sub.register(
            "gap_repairs",
            "Live notifications that arrived ahead of an earlier one; the stream read the gap from the database",
            m.gap_repairs.clone(),
        );
        sub.register(
            "gap_repaired",
            "Notifications a stream read from the database to fill a gap before a live one",
            m.gap_repaired.clone(),
        );
        sub.register("streams", "SSE streams connected to this instance", m.streams.clone());
        sub.register("push_latency_seconds", "From the row's creation to the local push", m.push_latency.clone());
        sub.register(
            "stage_seconds",
            "Time a batch of notifications spent in one stage of its path (cause_commit, store_queued, \
             store_confirm, store_waiting, store, fanout_queued, fanout_confirm, relay_number, relay_waiting, relay_claim, relay_mark)",
            m.stages.clone(),
        );
        m
    }

    /// Records that a batch (or a message) spent `seconds` in `stage`.
    pub fn stage(&self, stage: Stage, seconds: f64) {
        self.stages.get_or_create(&StageLabel { stage: stage.as_str() }).observe(seconds);
    }
}
