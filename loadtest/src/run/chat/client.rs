//! One member of one room: a STOMP connection that subscribes to its room, sends what the
//! driver hands it, and records what arrives. When its connection drops (a dead instance, a
//! churn fault) it connects again, to another live instance if its own is down, and resumes
//! with `last-seq` set to the seq of the last MESSAGE it processed, as a client library that
//! supports resuming does. A send that was in flight when the connection dropped is not
//! retried: it stays unconfirmed, and if the server stored it anyway it counts as recovered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stomp::Command;
use tokio::sync::{Mutex, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::ledger::ChatLedger;
use crate::probe::stomp::{self as probe, ConnectOptions, StompReader, StompWriter};
use crate::run::clients::{churn_deadline, sleep_until};
use crate::scenario::Churn;

/// Pause before reconnecting after a broken connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);

/// Heart-beats asked for both ways; a connection silent for three intervals is dead.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Counts over every client of a run.
#[derive(Debug, Default)]
pub struct ChatStats {
    pub connected: AtomicU64,
    pub reconnects: AtomicU64,
    pub resumes: AtomicU64,
    pub churn_drops: AtomicU64,
    /// Connections the server closed with an ERROR frame.
    pub errors: AtomicU64,
    /// Refusals received on the error destination (a SEND the relay could not take, say).
    pub refusals: AtomicU64,
}

/// A message the driver hands a client to send.
#[derive(Debug, Clone)]
pub struct Send {
    pub n: u64,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub index: usize,
    pub token: String,
    pub room_id: u64,
    /// WebSocket URL of every instance, by 0-based index.
    pub urls: Arc<Vec<String>>,
    /// Instance indexes in the order this client tries them: its own first.
    pub order: Vec<usize>,
    /// Resume with `last-seq` (every relay is asked; only a recovering one honours it).
    pub resume: bool,
    pub seed: u64,
}

enum Ended {
    Broken,
    Churned,
    Stopped,
}

/// Runs one client until `stop`; `subscribed` is told once its first subscription stands.
#[allow(clippy::too_many_arguments)]
pub async fn run_client(
    spec: ClientSpec,
    alive: Arc<Vec<AtomicBool>>,
    ledger: Arc<Mutex<ChatLedger>>,
    stats: Arc<ChatStats>,
    mut churn: watch::Receiver<Option<Churn>>,
    mut sends: mpsc::Receiver<Send>,
    subscribed: mpsc::UnboundedSender<usize>,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(spec.seed ^ (spec.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut last_seq: Option<u64> = None;
    let mut first = true;
    let mut preferred = 0;
    let destination = format!("/rooms/{}", spec.room_id);
    while !stop.is_cancelled() {
        let n = spec.order.len();
        let pick = (0..n)
            .map(|k| spec.order[(preferred + k) % n])
            .find(|&i| alive.get(i).is_some_and(|a| a.load(Ordering::Relaxed)));
        let Some(pick) = pick else {
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        };
        let mut opts = ConnectOptions::new(spec.urls[pick].clone(), spec.token.clone());
        let beat = HEARTBEAT.as_millis() as u64;
        opts.heartbeat = (beat, beat);
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            c = probe::connect(&opts) => c,
        };
        let ended = match connected {
            Ok((mut writer, mut reader, _)) => {
                if first {
                    stats.connected.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                let resume = if spec.resume { last_seq } else { None };
                if resume.is_some() {
                    stats.resumes.fetch_add(1, Ordering::Relaxed);
                }
                let session = Session {
                    spec: &spec,
                    ledger: &ledger,
                    stats: &stats,
                    last_seq: &mut last_seq,
                    first: &mut first,
                    subscribed: &subscribed,
                };
                session
                    .run(&mut writer, &mut reader, &destination, resume, &mut churn, &mut sends, &stop, &mut rng)
                    .await
            }
            Err(e) => {
                tracing::debug!(client = spec.index, error = %e, "chat connect failed");
                Ended::Broken
            }
        };
        match ended {
            Ended::Stopped => return,
            Ended::Churned => {
                stats.churn_drops.fetch_add(1, Ordering::Relaxed);
                preferred = (preferred + 1) % n;
            }
            Ended::Broken => {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
                }
            }
        }
    }
}

struct Session<'a> {
    spec: &'a ClientSpec,
    ledger: &'a Arc<Mutex<ChatLedger>>,
    stats: &'a Arc<ChatStats>,
    last_seq: &'a mut Option<u64>,
    first: &'a mut bool,
    subscribed: &'a mpsc::UnboundedSender<usize>,
}

impl Session<'_> {
    #[allow(clippy::too_many_arguments)]
    async fn run(
        self,
        writer: &mut StompWriter,
        reader: &mut StompReader,
        destination: &str,
        resume: Option<u64>,
        churn: &mut watch::Receiver<Option<Churn>>,
        sends: &mut mpsc::Receiver<Send>,
        stop: &CancellationToken,
        rng: &mut StdRng,
    ) -> Ended {
        // A chat page listens for refusals too: without it the server closes the connection
        // on one (an ERROR), with it they arrive as MESSAGE frames.
        if writer.subscribe("errors", "/user/queue/errors", None, None).await.is_err()
            || writer.subscribe("room", destination, resume, Some("subscribed")).await.is_err()
        {
            return Ended::Broken;
        }
        let mut drop_at = churn_deadline(*churn.borrow(), rng);
        let mut churn_open = true;
        let mut standing = false;
        let silence = HEARTBEAT * 3;
        let mut last_in = Instant::now();
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ended::Stopped,
                _ = sleep_until(drop_at), if drop_at.is_some() => {
                    return Ended::Churned;
                }
                changed = churn.changed(), if churn_open => {
                    match changed {
                        Ok(()) => drop_at = churn_deadline(*churn.borrow_and_update(), rng),
                        Err(_) => churn_open = false,
                    }
                }
                _ = beat.tick() => {
                    if last_in.elapsed() > silence {
                        return Ended::Broken;
                    }
                    if writer.send_raw(b"\n".to_vec()).await.is_err() {
                        return Ended::Broken;
                    }
                }
                // Sends wait until the subscription stands, as a chat page sends once it shows
                // the room.
                send = sends.recv(), if standing => {
                    let Some(send) = send else { return Ended::Stopped };
                    let id = format!("m{}", send.n);
                    let at = Instant::now();
                    if writer.send_message(destination, &send.body, Some(&id), Some(&id)).await.is_err() {
                        return Ended::Broken;
                    }
                    self.ledger.lock().await.sent(send.n, at);
                }
                frame = reader.next() => {
                    let frame = match frame {
                        Ok(Some(frame)) => frame,
                        Ok(None) | Err(_) => return Ended::Broken,
                    };
                    last_in = Instant::now();
                    match frame.command {
                        Command::Message if frame.get("subscription") == Some("errors") => {
                            self.stats.refusals.fetch_add(1, Ordering::Relaxed);
                        }
                        Command::Message => {
                            let seq = frame.get("seq").and_then(|s| s.parse().ok());
                            let room = frame.get("room").and_then(|s| s.parse().ok());
                            self.ledger.lock().await.received(self.spec.index, room, seq, &frame.body, last_in);
                            if seq.is_some() {
                                *self.last_seq = seq;
                            }
                            let after_event = churn.borrow().map_or(0.0, |c| c.drop_after_event);
                            if after_event > 0.0 && rng.random::<f64>() < after_event {
                                return Ended::Churned;
                            }
                        }
                        Command::Receipt => match frame.get("receipt-id") {
                            Some("subscribed") => {
                                standing = true;
                                // The seq the subscription stands at (a recovering relay says):
                                // the resume point until a message moves it.
                                if self.last_seq.is_none() {
                                    *self.last_seq = frame.get("last-seq").and_then(|s| s.parse().ok());
                                }
                                if *self.first {
                                    *self.first = false;
                                    self.ledger.lock().await.subscribed(self.spec.index, last_in);
                                    let _ = self.subscribed.send(self.spec.index);
                                }
                            }
                            Some(id) => {
                                let n = id.strip_prefix('m').and_then(|n| n.parse().ok());
                                let seq = frame.get("seq").and_then(|s| s.parse().ok());
                                if let (Some(n), Some(seq)) = (n, seq) {
                                    self.ledger.lock().await.receipt(n, seq, last_in);
                                }
                            }
                            None => {}
                        },
                        Command::Error => {
                            self.stats.errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(
                                client = self.spec.index,
                                message = frame.get("message").unwrap_or_default(),
                                "chat connection closed with ERROR"
                            );
                            return Ended::Broken;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
