//! The SSE clients of a run: one per streaming user, each pinned to an instance, moving to
//! another when its own is dead, resuming with `Last-Event-ID` or not, as the scenario says.
//! During a `client-churn` fault every client also drops its stream at random moments and
//! resumes at once, the way a browser's `EventSource` does after a network blip: with the id
//! of the last event it dispatched (not the highest it saw), on another instance as `spread`
//! decides. Every event received is reported, in order, with its receipt time, to the ledger
//! collector.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::world::World;
use crate::ledger::Cause;
use crate::probe::sse;
use crate::scenario::{Churn, Load, Reconnect, Spread};

/// A stream that stays silent this long (keep-alives included) is treated as dead: the
/// server sends a keep-alive every 15 s, so only a frozen instance gets here.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// A browser's reconnection time until the server sets one with `retry:` (Chromium's).
const BROWSER_RETRY: Duration = Duration::from_secs(3);

/// What the clients and the driver tell the ledger collector.
#[derive(Debug)]
pub enum LedgerMsg {
    Expect {
        recipient: u64,
        cause: Cause,
        at: Instant,
    },
    Observe {
        client: u64,
        client_user: u64,
        id: u64,
        recipient: u64,
        cause: Cause,
        at: Instant,
        /// The event's SSE `id:` as a number, when it is one.
        event_id: Option<u64>,
    },
    /// An event without a notification (the stream's `ready`) moved the client's position.
    Position {
        client: u64,
        event_id: u64,
    },
}

/// Counters shared with the progress line and the report.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub connected: AtomicUsize,
    pub received: AtomicU64,
    pub reconnects: AtomicU64,
    /// Connections opened with `Last-Event-ID`.
    pub resumes: AtomicU64,
    /// Streams a client dropped on purpose during a churn.
    pub churn_drops: AtomicU64,
    /// Browser clients that gave up for good: an answer other than 200 ends an `EventSource`.
    pub given_up: AtomicU64,
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
    /// Behaves as a browser's `EventSource`: waits the server's `retry:` time before it
    /// reconnects, and gives up for good on an answer other than 200.
    pub browser: bool,
    /// Where a churned client goes next: the next instance of its order, or a random one.
    pub spread: Spread,
    /// Seeds this client's churn moments and choices.
    pub seed: u64,
    /// The stream position the first connection resumes from, whatever `reconnect` says: a
    /// shard's clients start from the position their user had when the world was prepared,
    /// so what another shard caused before this one's streams were up is replayed, not lost.
    pub start_after: Option<String>,
}

impl ClientSpec {
    /// The client of user `u` of `world`, whose own instance is `own`, behaving as `load`
    /// says; it starts without a stream position.
    pub fn of_user(world: &World, u: usize, own: usize, bases: Arc<Vec<String>>, load: &Load, seed: u64) -> Self {
        let n = bases.len();
        ClientSpec {
            client: u as u64,
            user_id: world.users[u].id,
            token: world.users[u].token.clone(),
            bases,
            order: (0..n).map(|k| (own + k) % n).collect(),
            resume_with_last_event_id: load.reconnect != Reconnect::Fresh,
            browser: load.reconnect == Reconnect::Browser,
            spread: load.spread,
            seed,
            start_after: None,
        }
    }
}

/// Why a connection ended.
enum Ended {
    /// Closed, broken or silent: reconnect after a pause, to the same instance if alive.
    Broken,
    /// Dropped on purpose by a churn: resume at once, elsewhere.
    Churned,
}

/// Runs one client until `stop`.
pub async fn run_client(
    spec: ClientSpec,
    http: reqwest::Client,
    alive: Arc<Vec<AtomicBool>>,
    ledger: mpsc::UnboundedSender<LedgerMsg>,
    stats: Arc<ClientStats>,
    mut churn: watch::Receiver<Option<Churn>>,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(spec.seed ^ spec.client.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // The browser's "last event ID string": the id of the last event dispatched.
    let mut last_id: Option<String> = None;
    let mut first = true;
    // Index into `spec.order` of the instance tried first.
    let mut preferred = 0;
    let mut churn_open = true;
    // A browser's reconnection time: the server's last `retry:`, until then the default.
    let mut retry = BROWSER_RETRY;
    while !stop.is_cancelled() {
        // The preferred instance if alive, else the next alive one.
        let n = spec.order.len();
        let pick = (0..n)
            .map(|k| spec.order[(preferred + k) % n])
            .find(|&i| alive.get(i).is_some_and(|a| a.load(Ordering::Relaxed)));
        let Some(pick) = pick else {
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        };
        let url = format!("{}/notifications/stream", spec.bases[pick]);
        // An empty last event id sends no header, as in a browser.
        let resume = if first && spec.start_after.is_some() {
            spec.start_after.clone()
        } else if spec.resume_with_last_event_id {
            last_id.clone().filter(|id| !id.is_empty())
        } else {
            None
        };
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            c = sse::connect_with_idle_timeout(&http, &url, &spec.token, resume.as_deref(), Some(IDLE_TIMEOUT)) => c,
        };
        let ended = match connected {
            Ok(events) => {
                if first {
                    stats.connected.fetch_add(1, Ordering::Relaxed);
                    first = false;
                } else {
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                if resume.is_some() {
                    stats.resumes.fetch_add(1, Ordering::Relaxed);
                }
                let mut events = Box::pin(events);
                let mut drop_at = churn_deadline(*churn.borrow(), &mut rng);
                loop {
                    let next = tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = sleep_until(drop_at), if drop_at.is_some() => break Ended::Churned,
                        changed = churn.changed(), if churn_open => {
                            match changed {
                                Ok(()) => drop_at = churn_deadline(*churn.borrow_and_update(), &mut rng),
                                Err(_) => churn_open = false,
                            }
                            continue;
                        }
                        next_event = events.next() => next_event,
                    };
                    let event = match next {
                        Some(Ok(event)) => event,
                        _ => break Ended::Broken,
                    };
                    let at = Instant::now();
                    match observation(&spec, &event, at) {
                        Some(msg) => {
                            stats.received.fetch_add(1, Ordering::Relaxed);
                            let _ = ledger.send(msg);
                        }
                        None => {
                            if let Some(event_id) = event.id.as_deref().and_then(|id| id.parse().ok()) {
                                let _ = ledger.send(LedgerMsg::Position { client: spec.client, event_id });
                            }
                        }
                    }
                    // As a browser does: every dispatch sets the last event id, to what the
                    // stream's `id:` fields left it at. It belongs to the client, not to one
                    // connection: a connection that sent no `id:` yet (a `retry:` answer)
                    // leaves it as it was.
                    if event.id.is_some() {
                        last_id = event.id.clone();
                    }
                    if let Some(ms) = event.retry_ms {
                        retry = Duration::from_millis(ms);
                    }
                    let after_event = churn.borrow().map_or(0.0, |c| c.drop_after_event);
                    if event.fires() && after_event > 0.0 && rng.random::<f64>() < after_event {
                        break Ended::Churned;
                    }
                }
            }
            Err(sse::SseError::Status { status, body }) if spec.browser => {
                // The HTML standard: "fail the connection". The page would have to open a new
                // EventSource itself; the stream as such is over.
                tracing::debug!(client = spec.client, status, body, "a browser client gives up");
                stats.given_up.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::debug!(client = spec.client, error = %e, "stream connect failed");
                Ended::Broken
            }
        };
        match ended {
            Ended::Churned => {
                stats.churn_drops.fetch_add(1, Ordering::Relaxed);
                preferred = match spec.spread {
                    Spread::RoundRobin => (preferred + 1) % n,
                    Spread::Random => rng.random_range(0..n),
                };
            }
            Ended::Broken => {
                let pause = if spec.browser { retry } else { RECONNECT_PAUSE };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// When a connection opened now drops under `churn`; `None` without a timed churn.
pub(crate) fn churn_deadline(churn: Option<Churn>, rng: &mut StdRng) -> Option<Instant> {
    let (min, max) = churn?.every_s?;
    let seconds = if max > min { rng.random_range(min..=max) } else { min };
    Some(Instant::now() + Duration::from_secs_f64(seconds))
}

pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
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
    let event_id = event.id.as_deref().and_then(|id| id.parse().ok());
    Some(LedgerMsg::Observe { client: spec.client, client_user: spec.user_id, id, recipient, cause, at, event_id })
}
