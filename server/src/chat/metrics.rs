//! Chat metrics, labelled with the relay strategy: connections, subscriptions, frames in and
//! out, messages stored and relayed, relay lag, gap repairs, slow consumers disconnected.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug)]
pub struct ChatMetrics {
    pub connections: Gauge,
    pub subscriptions: Gauge,
    pub frames_in: Counter,
    pub frames_out: Counter,
    pub protocol_errors: Counter,
    pub stored: Counter,
    pub duplicate_sends: Counter,
    pub published: Counter,
    pub publish_failed: Counter,
    pub relayed: Counter,
    pub gap_repairs: Counter,
    pub gap_repaired: Counter,
    pub slow_consumers: Counter,
    pub relay_lag: Histogram,
}

impl ChatMetrics {
    /// Registers under `chat_*` with a `relay` label.
    pub fn register(registry: &mut Registry, relay: &str) -> Self {
        let m = ChatMetrics {
            connections: Gauge::default(),
            subscriptions: Gauge::default(),
            frames_in: Counter::default(),
            frames_out: Counter::default(),
            protocol_errors: Counter::default(),
            stored: Counter::default(),
            duplicate_sends: Counter::default(),
            published: Counter::default(),
            publish_failed: Counter::default(),
            relayed: Counter::default(),
            gap_repairs: Counter::default(),
            gap_repaired: Counter::default(),
            slow_consumers: Counter::default(),
            relay_lag: Histogram::new(exponential_buckets(0.000_1, 2.0, 18)),
        };
        let sub = registry
            .sub_registry_with_prefix("chat")
            .sub_registry_with_label(("relay".into(), relay.to_string().into()));
        sub.register("connections", "STOMP connections open on this instance", m.connections.clone());
        sub.register("subscriptions", "Room subscriptions on this instance", m.subscriptions.clone());
        sub.register("frames_in", "STOMP frames received", m.frames_in.clone());
        sub.register("frames_out", "STOMP frames sent", m.frames_out.clone());
        sub.register("protocol_errors", "Connections closed with an ERROR frame", m.protocol_errors.clone());
        sub.register("stored", "Messages stored", m.stored.clone());
        sub.register(
            "duplicate_sends",
            "SENDs whose idempotency key was used already: nothing stored",
            m.duplicate_sends.clone(),
        );
        sub.register("published", "Messages handed to the relay", m.published.clone());
        sub.register("publish_failed", "Messages the relay did not take", m.publish_failed.clone());
        sub.register("relayed", "Messages the relay brought to this instance", m.relayed.clone());
        sub.register(
            "gap_repairs",
            "Times a subscription read missing messages from the database (a seq ahead, or the room moved on)",
            m.gap_repairs.clone(),
        );
        sub.register("gap_repaired", "Messages read from the database to fill gaps", m.gap_repaired.clone());
        sub.register(
            "slow_consumers",
            "Connections closed because they did not read their messages fast enough",
            m.slow_consumers.clone(),
        );
        sub.register(
            "relay_lag_seconds",
            "From a message's store to its arrival on this instance",
            m.relay_lag.clone(),
        );
        m
    }
}
