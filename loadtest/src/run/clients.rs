//! The SSE clients of a run: one per streaming user, each pinned to an instance, moving to
//! another when its own is dead, resuming with `Last-Event-ID` or not, as the scenario says.
//! Every event received is reported, with its receipt time, to the ledger collector.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ledger::Cause;
use crate::probe::sse;

/// A stream that stays silent this long (keep-alives included) is treated as dead: the
/// server sends a keep-alive every 15 s, so only a frozen instance gets here.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// What the clients and the driver tell the ledger collector.
#[derive(Debug)]
pub enum LedgerMsg {
    Expect { recipient: u64, cause: Cause, at: Instant },
    Observe { client: u64, client_user: u64, id: u64, recipient: u64, cause: Cause, at: Instant },
}

/// Counters shared with the progress line and the report.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub connected: AtomicUsize,
    pub received: AtomicU64,
    pub reconnects: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub client: u64,
    pub user_id: u64,
    pub token: String,
    /// Base URL of every instance, by 0-based instance index.
    pub bases: Arc<Vec<String>>,
    /// Instance indexes in the order this client tries them: its own first.
    pub order: Vec<usize>,
    pub resume_with_last_event_id: bool,
}

/// Runs one client until `stop`.
pub async fn run_client(
    spec: ClientSpec,
    http: reqwest::Client,
    alive: Arc<Vec<AtomicBool>>,
    ledger: mpsc::UnboundedSender<LedgerMsg>,
    stats: Arc<ClientStats>,
    stop: CancellationToken,
) {
    let mut last_id: Option<String> = None;
    let mut first = true;
    while !stop.is_cancelled() {
        // Its own instance if alive, else the next alive one.
        let pick = spec.order.iter().copied().find(|&i| alive.get(i).is_some_and(|a| a.load(Ordering::Relaxed)));
        let Some(pick) = pick else {
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        };
        let url = format!("{}/notifications/stream", spec.bases[pick]);
        let resume = if spec.resume_with_last_event_id { last_id.as_deref() } else { None };
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            c = sse::connect_with_idle_timeout(&http, &url, &spec.token, resume, Some(IDLE_TIMEOUT)) => c,
        };
        match connected {
            Ok(events) => {
                if first {
                    stats.connected.fetch_add(1, Ordering::Relaxed);
                    first = false;
                } else {
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                let mut events = Box::pin(events);
                loop {
                    let next = tokio::select! {
                        _ = stop.cancelled() => return,
                        n = events.next() => n,
                    };
                    let event = match next {
                        Some(Ok(event)) => event,
                        _ => break, // closed, broken or silent: reconnect
                    };
                    let at = Instant::now();
                    if let Some(msg) = observation(&spec, &event, at) {
                        stats.received.fetch_add(1, Ordering::Relaxed);
                        let _ = ledger.send(msg);
                    }
                    if event.id.is_some() {
                        last_id = event.id;
                    }
                }
            }
            Err(e) => tracing::debug!(client = spec.client, error = %e, "stream connect failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
}

fn observation(spec: &ClientSpec, event: &sse::SseEvent, at: Instant) -> Option<LedgerMsg> {
    let data: serde_json::Value = serde_json::from_str(&event.data).ok()?;
    let id = data["id"].as_u64()?;
    let recipient = data["recipient_id"].as_u64()?;
    let cause_id = data["cause_id"].as_u64()?;
    let cause = match data["type"].as_str()? {
        "diary" => Cause::diary(cause_id),
        "comment" => Cause::comment(cause_id),
        _ => return None,
    };
    Some(LedgerMsg::Observe { client: spec.client, client_user: spec.user_id, id, recipient, cause, at })
}
