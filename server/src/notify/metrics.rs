//! Delivery metrics, labelled with the strategy in use: published, stored, pushed, dropped
//! (recipient not connected here), redelivered, dead-lettered, push latency.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
        m
    }
}
