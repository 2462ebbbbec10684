//! The event driver of a fan-out rig: causes diaries and comments at a steady rate on random
//! live instances (open loop: a slow server does not slow the schedule down, it shows as
//! requests in flight), and tells the ledger what each must notify, from the friend graph.
//!
//! Event `n` of the schedule is decided by the seed and `n` alone (instance, diary or
//! comment, author), so a schedule split over several load machines (`--shard I/N`: event `n`
//! is shard `n mod N`'s) causes the events the whole schedule would.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Mutex, Semaphore, mpsc};

use super::clients::LedgerMsg;
use super::rig::MAX_IN_FLIGHT;
use super::world::World;
use crate::ledger::Cause;
use crate::probe::api::ApiClient;

/// Diaries remembered as comment targets.
const RECENT_DIARIES: usize = 1_000;

/// What one call of [`Driver::drive`] did.
#[derive(Debug, Clone, Copy)]
pub struct Drive {
    /// When the first request was due and when the load ended (the last in-flight request
    /// answered, or gave up).
    pub started: Instant,
    pub ended: Instant,
    /// Seconds over which events were scheduled.
    pub seconds: f64,
    /// Requests scheduled and sent.
    pub sent: u64,
    /// Ticks skipped because [`MAX_IN_FLIGHT`] requests were outstanding: the server could
    /// not keep up with the offered rate.
    pub skipped: u64,
}

pub struct Driver {
    api: ApiClient,
    pub world: Arc<World>,
    bases: Arc<Vec<String>>,
    alive: Arc<Vec<AtomicBool>>,
    ledger_tx: mpsc::UnboundedSender<LedgerMsg>,
    diary_share: f64,
    seed: u64,
    /// (index, count): this driver causes the events `n` with `n mod count == index`.
    slice: (u64, u64),
    /// Events of the schedule passed so far, over every call of `drive`: event numbers go on
    /// from one capacity step to the next.
    scheduled: AtomicU64,
    /// Events created (diaries and comments whose request succeeded).
    pub caused: Arc<AtomicU64>,
    /// (recipient, cause) pairs expected so far.
    pub expected: Arc<AtomicU64>,
    /// Causing requests that failed, by kind of answer, so a report says what went wrong.
    failures: Arc<StdMutex<BTreeMap<String, u64>>>,
    /// Causing requests sent again to another instance because the first could not be
    /// reached (refused: it was shutting down or dead), as a client behind a load balancer
    /// would see them retried.
    pub retries: Arc<AtomicU64>,
    recent: Arc<Mutex<Vec<(usize, u64)>>>,
    /// Every cause the driver saw succeed; the database may hold more (see `indeterminate`).
    known: Arc<StdMutex<HashSet<Cause>>>,
    in_flight: Arc<Semaphore>,
}

impl Driver {
    pub fn new(
        api: ApiClient,
        world: Arc<World>,
        bases: Arc<Vec<String>>,
        alive: Arc<Vec<AtomicBool>>,
        ledger_tx: mpsc::UnboundedSender<LedgerMsg>,
        diary_share: f64,
        seed: u64,
    ) -> Self {
        Self {
            api,
            world,
            bases,
            alive,
            ledger_tx,
            diary_share: diary_share.clamp(0.0, 1.0),
            seed,
            slice: (0, 1),
            scheduled: AtomicU64::new(0),
            caused: Arc::default(),
            expected: Arc::default(),
            failures: Arc::default(),
            retries: Arc::default(),
            recent: Arc::default(),
            known: Arc::default(),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Causing requests sent and not answered yet, read at any time.
    pub fn in_flight_gauge(&self) -> impl Fn() -> u64 + Send + 'static {
        let permits = self.in_flight.clone();
        move || (MAX_IN_FLIGHT - permits.available_permits().min(MAX_IN_FLIGHT)) as u64
    }

    /// Causes only the events `n` of the schedule with `n mod count == index`.
    pub fn with_slice(mut self, index: u64, count: u64) -> Self {
        self.slice = (index, count.max(1));
        self
    }

    /// Causes events at `rate_per_s` for `duration` (at most `max_events`), then waits up to
    /// 30 s for the requests still in flight.
    pub async fn drive(&self, rate_per_s: f64, duration: Duration, max_events: u64) -> Drive {
        self.drive_from(Instant::now(), rate_per_s, duration, max_events).await
    }

    /// [`Driver::drive`] with the schedule starting at `started` (several machines share one
    /// schedule by starting it at one wall-clock time).
    pub async fn drive_from(&self, started: Instant, rate_per_s: f64, duration: Duration, max_events: u64) -> Drive {
        let interval = Duration::from_secs_f64(1.0 / rate_per_s);
        let end = started + duration;
        let (mut sent, mut skipped) = (0u64, 0u64);
        let first = self.scheduled.load(Ordering::Relaxed);
        let mut passed = 0;
        for k in 0..max_events {
            let due = started + interval.mul_f64(k as f64);
            if due >= end {
                break;
            }
            passed = k + 1;
            let n = first + k;
            if n % self.slice.1 != self.slice.0 {
                continue;
            }
            tokio::time::sleep_until(due.into()).await;
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                skipped += 1;
                continue;
            };
            let (instance, diary_event, author, pick) = {
                let mut rng = StdRng::seed_from_u64(self.seed ^ 0xd71e ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let live: Vec<usize> =
                    (0..self.bases.len()).filter(|&i| self.alive[i].load(Ordering::Relaxed)).collect();
                let Some(&instance) = live.get(rng.random_range(0..live.len().max(1))) else { continue };
                let diary_event = rng.random_bool(self.diary_share);
                (instance, diary_event, self.world.random_author(&mut rng), rng.random::<u64>())
            };
            sent += 1;
            let event = Event {
                api: self.api.clone(),
                instance,
                bases: self.bases.clone(),
                alive: self.alive.clone(),
                retries: self.retries.clone(),
                world: self.world.clone(),
                ledger_tx: self.ledger_tx.clone(),
                caused: self.caused.clone(),
                expected: self.expected.clone(),
                failures: self.failures.clone(),
                recent: self.recent.clone(),
                known: self.known.clone(),
            };
            tokio::spawn(async move {
                let _permit = permit;
                event.cause(diary_event, author, pick, n).await;
            });
        }
        self.scheduled.fetch_add(passed, Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64().min(duration.as_secs_f64()).max(f64::EPSILON);
        // Let in-flight requests finish (the permits come back), then hand them out again.
        if let Ok(all) =
            tokio::time::timeout(Duration::from_secs(30), self.in_flight.acquire_many(MAX_IN_FLIGHT as u32)).await
        {
            drop(all);
        }
        Drive { started, ended: Instant::now(), seconds, sent, skipped }
    }

    /// Causing requests that failed, and why, by kind of answer.
    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn known_causes(&self) -> HashSet<Cause> {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Attempts of one causing request whose connection is refused, the first included.
const MAX_ATTEMPTS: u32 = 3;

/// One causing request and what it must notify.
struct Event {
    api: ApiClient,
    /// The instance it is sent to first, and where it may go when that one is unreachable.
    instance: usize,
    bases: Arc<Vec<String>>,
    alive: Arc<Vec<AtomicBool>>,
    retries: Arc<AtomicU64>,
    world: Arc<World>,
    ledger_tx: mpsc::UnboundedSender<LedgerMsg>,
    caused: Arc<AtomicU64>,
    expected: Arc<AtomicU64>,
    failures: Arc<StdMutex<BTreeMap<String, u64>>>,
    recent: Arc<Mutex<Vec<(usize, u64)>>>,
    known: Arc<StdMutex<HashSet<Cause>>>,
}

impl Event {
    async fn cause(self, diary_event: bool, author: usize, pick: u64, n: u64) {
        let target = if diary_event { None } else { self.pick_diary(pick).await };
        let sent_at = Instant::now();
        let world = &self.world;
        match target {
            None => match self
                .send(|base| {
                    let (api, user) = (&self.api, &world.users[author]);
                    async move { api.write_diary(&base, user, n).await }
                })
                .await
            {
                Ok(diary) => {
                    let cause = Cause::diary(diary);
                    self.created(cause);
                    for &f in &world.friends[author] {
                        self.expect(f, cause, sent_at);
                    }
                    let mut recent = self.recent.lock().await;
                    if recent.len() >= RECENT_DIARIES {
                        recent.remove(0);
                    }
                    recent.push((author, diary));
                }
                Err(e) => self.failed(e.kind()),
            },
            Some((owner, diary)) => {
                // A friend of the owner comments: the owner is notified.
                let friends = &world.friends[owner];
                let commenter = friends[(pick as usize) % friends.len()];
                let sent = self
                    .send(|base| {
                        let (api, user) = (&self.api, &world.users[commenter]);
                        async move { api.comment(&base, user, diary).await }
                    })
                    .await;
                match sent {
                    Ok(comment) => {
                        let cause = Cause::comment(comment);
                        self.created(cause);
                        self.expect(owner, cause, sent_at);
                    }
                    Err(e) => self.failed(e.kind()),
                }
            }
        }
    }

    /// `call` on this event's instance; when the connection is refused (the request never
    /// reached a server: the instance is shutting down or dead) or closes before any answer
    /// (a kept-alive connection the server closed as the request went out), on the next live
    /// instance, up to [`MAX_ATTEMPTS`] in all, as a browser sends it again. An answer, or a
    /// failure after the answer began, is final. A resent request that had committed after
    /// all would be a second cause: read from the database after the run as indeterminate,
    /// never as unexpected.
    async fn send<T, Fut>(&self, call: impl Fn(String) -> Fut) -> Result<T, crate::probe::api::ApiCallError>
    where
        Fut: std::future::Future<Output = Result<T, crate::probe::api::ApiCallError>>,
    {
        let mut instance = self.instance;
        let mut attempt = 1;
        loop {
            match call(self.bases[instance].clone()).await {
                Err(e) if e.resendable() && attempt < MAX_ATTEMPTS => {
                    let n = self.bases.len();
                    let next = (1..n)
                        .map(|k| (instance + k) % n)
                        .find(|&i| self.alive[i].load(Ordering::Relaxed))
                        .unwrap_or((instance + 1) % n);
                    instance = next;
                    attempt += 1;
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    // A refused connection answers at once: give the cluster a moment.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    async fn pick_diary(&self, pick: u64) -> Option<(usize, u64)> {
        let recent = self.recent.lock().await;
        if recent.is_empty() { None } else { Some(recent[(pick as usize) % recent.len()]) }
    }

    fn created(&self, cause: Cause) {
        self.caused.fetch_add(1, Ordering::Relaxed);
        self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(cause);
    }

    /// Only users holding a stream can be seen to receive anything.
    fn expect(&self, user: usize, cause: Cause, at: Instant) {
        if self.world.has_stream(user) {
            self.expected.fetch_add(1, Ordering::Relaxed);
            let _ = self.ledger_tx.send(LedgerMsg::Expect { recipient: self.world.users[user].id, cause, at });
        }
    }

    fn failed(&self, kind: String) {
        *self.failures.lock().unwrap_or_else(|p| p.into_inner()).entry(kind).or_default() += 1;
    }
}
