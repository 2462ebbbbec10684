//! The raw fan-out rate of the same broker, measured in the same run: a plain lapin
//! publisher to a fanout exchange with one consumer queue per instance, publisher confirms
//! on (as the server uses them), messages the size of a notification. The server's
//! delivered rate is reported as a ratio of this, so results from different machines can be
//! compared.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde::Serialize;

use crate::infra::unique_name;

/// A notification-sized JSON body.
const PAYLOAD: &[u8] = br#"{"id":123456,"recipient_id":4321,"type":"diary","cause_id":98765,"actor_id":1234,"created_at":"2026-11-22T04:00:00.000000Z"}"#;

#[derive(Debug, Clone, Serialize)]
pub struct RawFanout {
    pub messages: u64,
    pub consumers: u64,
    /// Messages received by all consumers together, per second.
    pub deliveries_per_s: f64,
    pub publish_per_s: f64,
    pub seconds: f64,
}

/// Publishes `messages` to a fresh fanout exchange with `consumers` queues and waits until
/// every consumer has them all (or `limit` passes).
pub async fn raw_fanout(amqp_url: &str, messages: u64, consumers: u64, limit: Duration) -> anyhow::Result<RawFanout> {
    let exchange = unique_name("baseline");
    let conn = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.exchange_declare(
        exchange.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions { auto_delete: true, ..Default::default() },
        FieldTable::default(),
    )
    .await?;
    let mut receivers = Vec::new();
    for i in 0..consumers {
        // One connection per consumer, like one server instance each.
        let cconn = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
        let cch = cconn.create_channel().await?;
        cch.basic_qos(512, BasicQosOptions::default()).await?;
        let queue = format!("{exchange}.{i}");
        cch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
        cch.queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut consumer = cch
            .basic_consume(
                queue.as_str().into(),
                "baseline".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        receivers.push(async move {
            let mut got = 0u64;
            while got < messages {
                match consumer.next().await {
                    Some(Ok(d)) => {
                        got += 1;
                        let _ = d.ack(BasicAckOptions::default()).await;
                    }
                    _ => break,
                }
            }
            let _ = cconn.close(200, "done".into()).await;
            got
        });
    }
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let started = Instant::now();
    let publish = async {
        let mut confirms = Vec::with_capacity(1024);
        for _ in 0..messages {
            let c = ch
                .basic_publish(
                    exchange.as_str().into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    PAYLOAD,
                    BasicProperties::default(),
                )
                .await?;
            confirms.push(c);
            if confirms.len() == 1024 {
                for c in confirms.drain(..) {
                    c.await?;
                }
            }
        }
        for c in confirms {
            c.await?;
        }
        Ok::<f64, lapin::Error>(started.elapsed().as_secs_f64())
    };
    let (published, received) = tokio::time::timeout(limit, async { tokio::join!(publish, join_all(receivers)) })
        .await
        .map_err(|_| anyhow::anyhow!("the raw fan-out baseline did not finish within {limit:?}"))?;
    let publish_s = published?;
    let seconds = started.elapsed().as_secs_f64();
    let total: u64 = received.iter().sum();
    let _ = conn.close(200, "done".into()).await;
    Ok(RawFanout {
        messages,
        consumers,
        deliveries_per_s: total as f64 / seconds,
        publish_per_s: messages as f64 / publish_s.max(f64::EPSILON),
        seconds,
    })
}
