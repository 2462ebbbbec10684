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

/// What a stream's channel carries.
#[derive(Debug, Clone)]
pub enum Pushed {
    Notification(Notification),
    /// Its user opened more streams than allowed: this one, the oldest, is closed.
    Displaced,
}

type Senders = Vec<(u64, mpsc::Sender<Pushed>)>;

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
    /// database-polling strategy and hide exactly what it exists to show. (A capacity run's
    /// single-instance yardstick repairs them, `SERVER_NOTIFY_GAP_REPAIR=database`: on one
    /// instance nothing else differs from the brokered pipeline but the broker.)
    Skip,
}

#[derive(Clone)]
pub struct Hub {
    streams: Arc<Mutex<HashMap<u64, Senders>>>,
    next_id: Arc<AtomicU64>,
    metrics: Arc<NotifyMetrics>,
    repair: GapRepair,
    /// Streams one user may hold here; a new one closes the oldest. Unbounded, one client
    /// could open streams until the instance ran out of memory or file descriptors.
    per_user: usize,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("users", &self.streams.lock().map(|s| s.len()).unwrap_or(0)).finish()
    }
}

/// One connected stream; dropping it unregisters the stream.
pub struct Subscription {
    pub receiver: mpsc::Receiver<Pushed>,
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
    pub fn new(metrics: Arc<NotifyMetrics>, repair: GapRepair, per_user: usize) -> Self {
        Self {
            streams: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
            metrics,
            repair,
            per_user: per_user.max(1),
        }
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
        let mut streams = self.lock();
        let senders = streams.entry(user).or_default();
        // Oldest first: dropping its sender ends that stream (its client reconnects, and the
        // newest streams are the ones a user is looking at).
        while senders.len() >= self.per_user {
            let (_, oldest) = senders.remove(0);
            // Told why, if its buffer has room; closed either way when `oldest` drops.
            let _ = oldest.try_send(Pushed::Displaced);
            self.metrics.streams_displaced.inc();
        }
        senders.push((id, tx));
        drop(streams);
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
            senders.retain(|(_, tx)| match tx.try_send(Pushed::Notification(n.clone())) {
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
