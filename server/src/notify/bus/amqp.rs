//! RabbitMQ plumbing shared by `rabbitmq` and `outbox`: the seed's topology, a supervised
//! connection that re-declares everything after a broker restart, confirmed publishing, and
//! the per-instance push consumer.
//!
//! Topology (AMQP 0-9-1, https://www.rabbitmq.com/tutorials/amqp-concepts):
//! * `<p>.direct` (direct, durable) -> `<p>.store` (durable queue, competing consumers store
//!   each notification once; dead-letters to `<p>.dlx`);
//! * `<p>.fanout` (fanout, durable) -> `<p>.push.<instance>` (exclusive, auto-delete: one per
//!   instance, gone with its connection, as in the seed);
//! * `<p>.dlx` (fanout, durable) -> `<p>.dlq` (durable): rejected messages, alerted on.
//!
//! On a cluster (several URLs in `SERVER_AMQP_URL`) a session connects to the first node that
//! answers, starting after the node of the last session: a session ends because its node
//! failed, so another is tried first. With `SERVER_AMQP_QUEUE_TYPE=quorum` the durable queues
//! (store, DLQ, the outbox's push queues) are quorum queues, replicated on the nodes, so one
//! node's loss loses none of them; a classic queue lives on the node it was declared on and is
//! unavailable while that node is down. The exclusive push queues of `rabbitmq` stay classic:
//! a quorum queue cannot be exclusive, and they live and die with their connection anyway.

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use super::BusContext;
use crate::notify::Notification;

/// Unacknowledged push messages per instance: enough to keep the pipe full at thousands
/// per second without letting one slow instance hoard the fanout.
const PUSH_PREFETCH: u16 = 512;

#[derive(Debug, Clone)]
pub struct Names {
    pub direct: String,
    pub store_queue: String,
    pub fanout: String,
    pub push_queue: String,
    pub dlx: String,
    pub dlq: String,
}

impl Names {
    pub fn new(prefix: &str, instance_id: &str) -> Self {
        let p = format!("{}notify", prefix.replace(':', "."));
        Names {
            direct: format!("{p}.direct"),
            store_queue: format!("{p}.store"),
            fanout: format!("{p}.fanout"),
            push_queue: format!("{p}.push.{instance_id}"),
            dlx: format!("{p}.dlx"),
            dlq: format!("{p}.dlq"),
        }
    }
}

pub const STORE_KEY: &str = "store";

/// How an instance's push queue is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushQueue {
    /// The seed's: exclusive and auto-delete, gone with the connection. What is published
    /// while the instance is disconnected (a broker restart, before it re-declares) is lost
    /// for its streams.
    ExclusiveAutoDelete,
    /// Durable, deleted only after `expires` without a consumer: it survives a broker restart
    /// and buffers what is published before the instance reconnects. An instance that does
    /// not come back leaves a queue that expires.
    DurableExpiring(std::time::Duration),
}

/// How the durable queues are declared (`SERVER_AMQP_QUEUE_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// One copy, on the node the queue was declared on (the broker's default).
    #[default]
    Classic,
    /// Replicated on the cluster's nodes (Raft): available while a majority of them runs.
    /// https://www.rabbitmq.com/docs/quorum-queues
    Quorum,
}

impl QueueType {
    pub const ALL: [QueueType; 2] = [QueueType::Classic, QueueType::Quorum];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }

    /// The declare arguments of a durable queue of this type.
    fn args(self) -> FieldTable {
        let mut args = FieldTable::default();
        if self == Self::Quorum {
            args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
            // RabbitMQ 4 dead-letters a quorum queue's message after 20 redeliveries; a store
            // requeues every 200 ms while the database is away, so 20 would give up after
            // seconds. Poison messages are rejected without requeue and do not need a limit.
            args.insert("x-delivery-limit".into(), AMQPValue::LongInt(QUORUM_DELIVERY_LIMIT));
        }
        args
    }
}

/// Redeliveries of one message before a quorum queue dead-letters it (about 3 minutes of
/// requeues every 200 ms).
const QUORUM_DELIVERY_LIMIT: i32 = 1_000;

impl std::str::FromStr for QueueType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|t| t.as_str()).collect();
            format!("`{s}` is not one of {}", names.join(", "))
        })
    }
}

/// The broker's nodes (one URL, or a cluster's several) and which to try first.
#[derive(Debug)]
pub struct Brokers {
    urls: Vec<String>,
    /// The node a new session tries first: the one after the last session's.
    next: AtomicUsize,
    pub queue_type: QueueType,
}

impl Brokers {
    pub fn new(urls: Vec<String>, queue_type: QueueType) -> Self {
        assert!(!urls.is_empty(), "settings refuse an empty SERVER_AMQP_URL");
        Self { urls, next: AtomicUsize::new(0), queue_type }
    }

    /// Connects to the first node that answers, in order from the one after the last
    /// session's node; the error of the last node tried when none answers. Returns the
    /// connection and the node's number (1-based, for logs).
    async fn connect(&self) -> lapin::Result<(Connection, usize)> {
        let n = self.urls.len();
        let first = self.next.load(Ordering::Relaxed) % n;
        let mut last_error = None;
        for i in (0..n).map(|k| (first + k) % n) {
            match Connection::connect(&self.urls[i], ConnectionProperties::default()).await {
                Ok(conn) => {
                    self.next.store((i + 1) % n, Ordering::Relaxed);
                    return Ok((conn, i + 1));
                }
                Err(e) => {
                    if n > 1 {
                        tracing::warn!(node = i + 1, nodes = n, error = %e, "RabbitMQ node does not answer; trying the next");
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("at least one URL"))
    }

    pub fn nodes(&self) -> usize {
        self.urls.len()
    }
}

/// A connected session: the connection and a confirm-mode channel for publishing.
pub struct Session {
    pub conn: Connection,
    pub publish: Channel,
    /// The node connected to (1-based, in the order of `SERVER_AMQP_URL`).
    pub node: usize,
    /// How this instance's push queue was declared.
    pub push_queue: PushQueue,
}

/// Connects to a node and declares the topology (idempotent: every instance does it at every
/// connect).
pub async fn connect(
    brokers: &Brokers,
    names: &Names,
    with_store_queue: bool,
    push_queue: PushQueue,
) -> lapin::Result<Session> {
    let (conn, node) = brokers.connect().await?;
    let ch = conn.create_channel().await?;
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare(names.fanout.as_str().into(), ExchangeKind::Fanout, durable, FieldTable::default()).await?;
    ch.exchange_declare(names.dlx.as_str().into(), ExchangeKind::Fanout, durable, FieldTable::default()).await?;
    let durable_queue = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(names.dlq.as_str().into(), durable_queue, brokers.queue_type.args()).await?;
    ch.queue_bind(
        names.dlq.as_str().into(),
        names.dlx.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    if with_store_queue {
        ch.exchange_declare(names.direct.as_str().into(), ExchangeKind::Direct, durable, FieldTable::default()).await?;
        let mut args = brokers.queue_type.args();
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(names.dlx.as_str().into()));
        ch.queue_declare(names.store_queue.as_str().into(), durable_queue, args).await?;
        ch.queue_bind(
            names.store_queue.as_str().into(),
            names.direct.as_str().into(),
            STORE_KEY.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    let (push, push_args) = match push_queue {
        PushQueue::ExclusiveAutoDelete => (
            QueueDeclareOptions { exclusive: true, auto_delete: true, durable: false, ..Default::default() },
            FieldTable::default(),
        ),
        PushQueue::DurableExpiring(expires) => {
            let mut args = brokers.queue_type.args();
            // https://www.rabbitmq.com/docs/ttl#queue-ttl: milliseconds without consumers.
            args.insert("x-expires".into(), AMQPValue::LongLongInt(expires.as_millis() as i64));
            (QueueDeclareOptions { durable: true, ..Default::default() }, args)
        }
    };
    ch.queue_declare(names.push_queue.as_str().into(), push, push_args).await?;
    ch.queue_bind(
        names.push_queue.as_str().into(),
        names.fanout.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(Session { conn, publish: ch, node, push_queue })
}

/// The current publishing channel, if connected. Swapped by the supervisor on reconnects.
#[derive(Default)]
pub struct PublisherSlot(RwLock<Option<Channel>>);

impl PublisherSlot {
    pub async fn set(&self, ch: Option<Channel>) {
        *self.0.write().await = ch;
    }

    /// Publishes and waits for the broker's confirm: Ok means the broker has the message.
    /// `mandatory`: a message that reaches no queue is an error too (the broker confirms an
    /// unroutable message: without this, a store queue whose node is down swallows it).
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        persistent: bool,
        mandatory: bool,
    ) -> Result<(), String> {
        let ch = self.0.read().await.clone().ok_or_else(|| "not connected".to_string())?;
        let props =
            if persistent { BasicProperties::default().with_delivery_mode(2) } else { BasicProperties::default() };
        let confirm = ch
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions { mandatory, ..Default::default() },
                payload,
                props,
            )
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(format!(
                "the broker returned the message: it reached no queue ({} {})",
                returned.reply_code, returned.reply_text
            )),
            other => Err(format!("broker refused the message: {other:?}")),
        }
    }
}

/// A channel with `prefetch` unacknowledged messages at most, consuming `queue` with manual
/// acks. The channel is returned too: it must outlive the consumer.
pub async fn consume(
    conn: &Connection,
    queue: &str,
    tag: &str,
    prefetch: u16,
) -> lapin::Result<(Channel, lapin::Consumer)> {
    let ch = conn.create_channel().await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let consumer =
        ch.basic_consume(queue.into(), tag.into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
    Ok((ch, consumer))
}

/// A channel consuming `queue` without acks: the broker forgets a message once it sent it.
async fn consume_unacked(conn: &Connection, queue: &str, tag: &str) -> lapin::Result<(Channel, lapin::Consumer)> {
    let ch = conn.create_channel().await?;
    let options = BasicConsumeOptions { no_ack: true, ..Default::default() };
    let consumer = ch.basic_consume(queue.into(), tag.into(), options, FieldTable::default()).await?;
    Ok((ch, consumer))
}

/// The next delivery of `consumer`; `None` on shutdown or when the consumer ends.
pub async fn next_delivery(
    consumer: &mut lapin::Consumer,
    shutdown: &CancellationToken,
) -> Option<lapin::Result<lapin::message::Delivery>> {
    tokio::select! {
        _ = shutdown.cancelled() => None,
        d = consumer.next() => d,
    }
}

/// Returns the connection's error once it has one: lapin reports an error event, or the
/// connection is no longer connected (checked every 250 ms). A session selects on this beside
/// its consumers, because a consumer's stream does not always end when its connection dies:
/// scenarios/ci/notify-faults.toml caught an instance whose push consumer waited forever after
/// "connection reset by peer" (RabbitMQ stopped), so it never reconnected and its outbox rows
/// were never relayed (241 of 548 notifications lost).
pub async fn broken(conn: &Connection) -> lapin::Error {
    let mut events = conn.events_listener();
    let mut check = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(lapin::Event::Error(e)) => return e,
                Some(_) => {}
                None => return not_connected(conn),
            },
            _ = check.tick() => {
                if !conn.status().connected() {
                    return not_connected(conn);
                }
            }
        }
    }
}

fn not_connected(conn: &Connection) -> lapin::Error {
    let status = conn.status();
    let state = if status.errored() {
        lapin::ConnectionState::Error
    } else if status.closed() {
        lapin::ConnectionState::Closed
    } else if status.closing() {
        lapin::ConnectionState::Closing
    } else if status.reconnecting() {
        lapin::ConnectionState::Reconnecting
    } else {
        lapin::ConnectionState::Connecting
    };
    lapin::ErrorKind::InvalidConnectionState(state).into()
}

/// Consumes this instance's push queue and hands each notification to the hub, until the
/// connection fails or `shutdown`.
///
/// The exclusive queue of `rabbitmq` ([`PushQueue::ExclusiveAutoDelete`]) is consumed without
/// acks: it is deleted with this connection, so a message the broker sent and this instance
/// did not take is lost with or without an ack, and the acks cost a write and a wake-up per
/// message on every instance, and the broker their bookkeeping. A durable queue
/// ([`PushQueue::DurableExpiring`], `outbox`) keeps its acks: what was sent and not acked
/// when a connection breaks is delivered again after the reconnect.
pub async fn consume_push(
    session: &Session,
    names: &Names,
    ctx: &BusContext,
    shutdown: &CancellationToken,
) -> lapin::Result<()> {
    let conn = &session.conn;
    let acked = session.push_queue != PushQueue::ExclusiveAutoDelete;
    let (_channel, mut consumer) = if acked {
        consume(conn, &names.push_queue, "push", PUSH_PREFETCH).await?
    } else {
        consume_unacked(conn, &names.push_queue, "push").await?
    };
    loop {
        let Some(delivery) = next_delivery(&mut consumer, shutdown).await else { return Ok(()) };
        let delivery = delivery?;
        if delivery.redelivered {
            ctx.metrics.redelivered.inc();
        }
        // One message carries one cause's notifications (a diary's friends): a batch.
        match serde_json::from_slice::<Vec<Notification>>(&delivery.data) {
            Ok(batch) => {
                for n in &batch {
                    ctx.hub.push(n);
                }
                if acked {
                    delivery.ack(BasicAckOptions::default()).await?;
                }
            }
            Err(e) => {
                // Only our own relays publish here; an unreadable message cannot be pushed to
                // anyone, so it is dropped (the stored row is still replayable).
                tracing::warn!(error = %e, "unreadable push message; dropped");
                if acked {
                    delivery.nack(BasicNackOptions { requeue: false, ..Default::default() }).await?;
                }
            }
        }
    }
}
