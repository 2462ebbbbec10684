//! One recipient's notification stream, in seq order with no gap: what `/notifications/stream`
//! sends, before it is written as server-sent events.
//!
//! A stream starts at a resume point (the client's `Last-Event-ID`, or the newest seq when it
//! has none), catches up from the database page by page, says `ready`, then goes live. Every
//! item it yields has a seq above the one before, and (with [`GapRepair::FromDatabase`]) every
//! seq in between was yielded too, so the last id a client holds is an exact resume point:
//! resuming after it neither skips nor repeats anything. The live part relies on seqs being
//! assigned in commit order ([`super::store::insert_batch`]; the outbox's rows by
//! [`super::store::number_pending`]): a live notification with seq n proves that every lower
//! seq is committed, so a gap before it is read from the database at once, and the missing
//! copies, when they arrive later, are dropped.

use std::collections::VecDeque;
use std::sync::Arc;

use sqlx::MySqlPool;
use tokio::sync::mpsc::error::TryRecvError;

use super::Notification;
use super::hub::{GapRepair, Pushed, Subscription};
use super::metrics::NotifyMetrics;
use super::store;

/// Rows read per database round trip, catching up or filling a gap.
const PAGE: u32 = 500;

/// What the stream sends next.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Notification(Notification),
    /// The catch-up is done: everything up to `resume_from` has been sent.
    Ready {
        resume_from: u64,
        replayed: u64,
    },
    /// The last item: the user opened more streams than allowed and this is the oldest. A
    /// client should not reconnect it.
    Displaced,
}

#[derive(Debug)]
enum Phase {
    /// Reading what was stored after the resume point.
    CatchUp {
        replayed: u64,
    },
    /// Caught up: `ready` goes out next.
    Ready {
        replayed: u64,
    },
    Live,
    /// Reading the gap below a live notification that arrived early; it comes last.
    Repair {
        early: Notification,
    },
    /// Displaced: nothing more to send.
    Done,
}

pub struct OrderedStream {
    db: MySqlPool,
    recipient: u64,
    subscription: Subscription,
    repair: GapRepair,
    metrics: Arc<NotifyMetrics>,
    /// The seq of the last item sent: the client's resume point.
    last: u64,
    queue: VecDeque<Notification>,
    phase: Phase,
}

impl OrderedStream {
    /// A stream for `recipient` that sends what was stored after `resume_after` first, or,
    /// without a resume point, starts live at `head` (the newest seq, read after
    /// `subscription` was taken, so nothing committed later is missed).
    pub fn new(
        db: MySqlPool,
        recipient: u64,
        subscription: Subscription,
        repair: GapRepair,
        metrics: Arc<NotifyMetrics>,
        start: Start,
    ) -> Self {
        let (last, phase) = match start {
            Start::After(seq) => (seq, Phase::CatchUp { replayed: 0 }),
            Start::Head(seq) => (seq, Phase::Ready { replayed: 0 }),
        };
        Self { db, recipient, subscription, repair, metrics, last, queue: VecDeque::new(), phase }
    }

    /// The next item; `None` when the stream must end: the hub closed it (too slow), or the
    /// database could not be read. Either way the client reconnects from the last id it got
    /// and loses nothing.
    pub async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(n) = self.queue.pop_front() {
                if n.seq > self.last {
                    self.last = n.seq;
                    return Some(Item::Notification(n));
                }
                continue;
            }
            match std::mem::replace(&mut self.phase, Phase::Live) {
                Phase::CatchUp { replayed } => {
                    // Live copies of what the pages read anyway: the next page is read after
                    // this, so it sees every one of them committed.
                    loop {
                        match self.subscription.receiver.try_recv() {
                            Ok(Pushed::Notification(_)) => {}
                            Ok(Pushed::Displaced) => {
                                self.phase = Phase::Done;
                                return Some(Item::Displaced);
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => return None,
                        }
                    }
                    let page = self.read(u64::MAX).await?;
                    let read = page.len() as u64;
                    self.phase = if read == u64::from(PAGE) {
                        Phase::CatchUp { replayed: replayed + read }
                    } else {
                        Phase::Ready { replayed: replayed + read }
                    };
                    self.queue.extend(page);
                }
                Phase::Ready { replayed } => {
                    return Some(Item::Ready { resume_from: self.last, replayed });
                }
                Phase::Done => {
                    self.phase = Phase::Done;
                    return None;
                }
                Phase::Live => {
                    let n = match self.subscription.receiver.recv().await? {
                        Pushed::Notification(n) => n,
                        Pushed::Displaced => {
                            self.phase = Phase::Done;
                            return Some(Item::Displaced);
                        }
                    };
                    if n.seq <= self.last {
                        continue; // sent already (by the catch-up, or a repair)
                    }
                    if n.seq == self.last + 1 || self.repair == GapRepair::Skip {
                        self.queue.push_back(n);
                    } else {
                        self.metrics.gap_repairs.inc();
                        self.phase = Phase::Repair { early: n };
                    }
                }
                Phase::Repair { early } => {
                    let page = self.read(early.seq).await?;
                    self.metrics.gap_repaired.inc_by(page.iter().filter(|n| n.seq < early.seq).count() as u64);
                    let whole = page.len() < PAGE as usize || page.last().is_some_and(|n| n.seq >= early.seq);
                    self.queue.extend(page);
                    if whole {
                        // Sent after the gap (dropped as a repeat when the page had it).
                        self.queue.push_back(early);
                    } else {
                        // More than a page is missing: the rest on the next round.
                        self.phase = Phase::Repair { early };
                    }
                }
            }
        }
    }

    /// The next page after the last seq sent, up to `upto`.
    async fn read(&self, upto: u64) -> Option<Vec<Notification>> {
        match store::between(&self.db, self.recipient, self.last, upto, PAGE).await {
            Ok(page) => Some(page),
            Err(e) => {
                tracing::warn!(error = %e, recipient = self.recipient, "reading a stream's notifications failed; ending it");
                None
            }
        }
    }
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After this seq: the client's `Last-Event-ID`.
    After(u64),
    /// Live from this seq, the newest stored when the stream opened.
    Head(u64),
}
