//! The SSE streams connected to this instance, by user. A delivery strategy hands every
//! notification it receives to [`Hub::push`]; the hub forwards it to the recipient's local
//! streams, if any (a stream lives on one instance only: that is the whole problem).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::Notification;
use super::metrics::NotifyMetrics;

/// Notifications buffered per stream before it counts as too slow and is closed; the client
/// then reconnects with `Last-Event-ID` and the database replays what it missed.
const STREAM_BUFFER: usize = 1024;

type Senders = Vec<(u64, mpsc::Sender<Notification>)>;

/// What a stream does with a live notification that arrives ahead of one it has not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapRepair {
    /// Read the missing ones from the database and send them first. Seqs are assigned in
    /// commit order, so once seq n has arrived every seq below it is committed and readable:
    /// the stream stays a gapless prefix of the recipient's notifications, whatever order
    /// the transport delivers in (and whatever it drops, up to the next one that arrives).
    FromDatabase,
    /// Send it and never the ones below it: `local`, the naive baseline, whose streams only
    /// ever hear of what their own instance raised. Repairing its gaps would turn it into a
    /// database-polling strategy and hide exactly what it exists to show.
    Skip,
}

#[derive(Clone)]
pub struct Hub {
    streams: Arc<Mutex<HashMap<u64, Senders>>>,
    next_id: Arc<AtomicU64>,
    metrics: Arc<NotifyMetrics>,
    repair: GapRepair,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("users", &self.streams.lock().map(|s| s.len()).unwrap_or(0)).finish()
    }
}

/// One connected stream; dropping it unregisters the stream.
pub struct Subscription {
    pub receiver: mpsc::Receiver<Notification>,
    hub: Hub,
    user: u64,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.user, self.id);
    }
}

impl Hub {
    pub fn new(metrics: Arc<NotifyMetrics>, repair: GapRepair) -> Self {
        Self { streams: Arc::default(), next_id: Arc::new(AtomicU64::new(1)), metrics, repair }
    }

    pub fn repair(&self) -> GapRepair {
        self.repair
    }

    pub fn metrics(&self) -> &Arc<NotifyMetrics> {
        &self.metrics
    }

    pub fn subscribe(&self, user: u64) -> Subscription {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().entry(user).or_default().push((id, tx));
        self.metrics.streams.inc();
        Subscription { receiver: rx, hub: self.clone(), user, id }
    }

    fn remove(&self, user: u64, id: u64) {
        let mut streams = self.lock();
        if let Some(senders) = streams.get_mut(&user) {
            senders.retain(|(sid, _)| *sid != id);
            if senders.is_empty() {
                streams.remove(&user);
            }
        }
        self.metrics.streams.dec();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Senders>> {
        // A panic while holding this lock cannot leave the map inconsistent (every mutation is
        // one call), so a poisoned lock is still safe to use.
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Streams of `user` connected here.
    pub fn local_streams(&self, user: u64) -> usize {
        self.lock().get(&user).map_or(0, Vec::len)
    }

    /// Forwards `n` to its recipient's streams on this instance. Returns how many got it.
    pub fn push(&self, n: &Notification) -> usize {
        let mut delivered = 0;
        let mut streams = self.lock();
        if let Some(senders) = streams.get_mut(&n.recipient_id) {
            senders.retain(|(_, tx)| match tx.try_send(n.clone()) {
                Ok(()) => {
                    delivered += 1;
                    true
                }
                // Full: the client is too slow; closing the stream makes it reconnect and replay.
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.metrics.slow_streams_closed.inc();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
        drop(streams);
        if delivered > 0 {
            self.metrics.pushed.inc_by(delivered as u64);
            let age = chrono::Utc::now().signed_duration_since(n.created_at);
            self.metrics.push_latency.observe(age.num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
        } else {
            self.metrics.dropped.inc();
        }
        delivered
    }
}
