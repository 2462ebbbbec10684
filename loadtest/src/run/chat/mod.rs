//! The chat scenario for one relay strategy: a fresh database and N instances; rooms built
//! through the API (an owner lists an item, a renter opens the room about it, the owner adds
//! the members of group rooms); every member a STOMP connection, a room's members on
//! different instances; messages due on a fixed schedule, each sent by a random member of a
//! random room; faults at their times; a drain; then every (message, member) counted by the
//! ledger and every receipt checked against the database.

mod client;
pub mod ledger;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Mutex, mpsc, watch};
use tokio_util::sync::CancellationToken;

use self::client::{ChatStats, ClientSpec, Send, run_client};
use self::ledger::{ChatLedger, ChatSummary, body, parse_body};
use super::ramp::{Ramping, Units};
use super::stage::Stage;
use super::{RunContext, StrategyRun};
use crate::infra::unique_name;
use crate::probe::api::{ApiClient, User};
use crate::report::{ChatCounts, RampStep, StrategyResult, text};
use crate::scenario::{ChatLoad, ChatSection, Relay, Spread, Strategy};

/// Requests in flight while building the rooms.
const SETUP_CONCURRENCY: usize = 16;

/// What a chat ramp offers and counts.
const UNITS: Units = ("messages", "deliveries");

/// Sends waiting for one client; beyond this a due message is not sent (counted).
const CLIENT_QUEUE: usize = 64;

pub async fn run(ctx: &RunContext<'_>, section: &ChatSection, relay: Relay) -> anyhow::Result<StrategyRun> {
    let strategy = Strategy::from(relay);
    let load = &section.chat;
    let env = [
        ("SERVER_CHAT_RELAY", relay.as_str()),
        // Nothing else runs: no notifications to carry, no AI comments, no embeddings.
        ("SERVER_NOTIFY_DELIVERY", "local"),
        ("SERVER_AI_ENABLED", "false"),
        ("SERVER_EMBED_WORKERS", "0"),
        ("SERVER_JOB_EMBED_SCHEDULE", ""),
    ];
    let stage = Stage::start(ctx, strategy, &env).await?;
    let instances = stage.bases.len();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let api = ApiClient::new(http);
    let built = std::time::Instant::now();
    let rooms = build_rooms(&api, &stage.bases, load, &unique_name("chat")).await?;
    eprintln!(
        "[{strategy}] {} rooms, {} members, built in {:.1} s",
        rooms.len(),
        rooms.iter().map(|r| r.members.len()).sum::<usize>(),
        built.elapsed().as_secs_f64()
    );

    // Member k of room r on instance (r + k) mod N, or drawn (seeded).
    let mut rng = StdRng::seed_from_u64(ctx.scenario.seed);
    let urls: Arc<Vec<String>> =
        Arc::new(stage.bases.iter().map(|b| format!("{}/ws/chat", b.replacen("http", "ws", 1))).collect());
    let mut specs = Vec::new();
    let mut room_members = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        let mut members = Vec::new();
        for (k, user) in room.members.iter().enumerate() {
            let home = match load.spread {
                Spread::RoundRobin => (r + k) % instances,
                Spread::Random => rng.random_range(0..instances),
            };
            let index = specs.len();
            members.push(index);
            specs.push(ClientSpec {
                index,
                token: user.token.clone(),
                room_id: room.id,
                urls: urls.clone(),
                order: (0..instances).map(|i| (home + i) % instances).collect(),
                resume: true,
                seed: ctx.scenario.seed,
            });
        }
        room_members.push((room.id, members));
    }
    let clients = specs.len();
    let t0 = Instant::now();
    let ledger = Arc::new(Mutex::new(ChatLedger::new(t0, &room_members, clients, Duration::from_millis(load.late_ms))));
    let stats = Arc::new(ChatStats::default());
    let (churn_tx, churn_rx) = watch::channel(None);
    let stop = CancellationToken::new();
    let (subscribed_tx, mut subscribed_rx) = mpsc::unbounded_channel();
    let mut queues = Vec::with_capacity(clients);
    let mut tasks = Vec::with_capacity(clients);
    for spec in specs {
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        queues.push(tx);
        tasks.push(tokio::spawn(run_client(
            spec,
            stage.alive.clone(),
            ledger.clone(),
            stats.clone(),
            churn_rx.clone(),
            rx,
            subscribed_tx.clone(),
            stop.clone(),
        )));
    }
    drop(subscribed_tx);

    // Faults count from the start of the warm-up, like every kind.
    let faults = stage.start_faults(ctx, t0, Some(Arc::new(churn_tx)));
    let warmup = Duration::from_secs_f64(load.warmup_s);
    let mut standing = 0;
    let deadline = tokio::time::Instant::from(t0 + warmup);
    while standing < clients {
        match tokio::time::timeout_at(deadline, subscribed_rx.recv()).await {
            Ok(Some(_)) => standing += 1,
            Ok(None) | Err(_) => break,
        }
    }
    tokio::time::sleep_until(deadline).await;
    eprintln!("[{strategy}] {standing} of {clients} subscriptions standing after the warm-up");

    let mut schedule =
        Schedule { rng, ledger: ledger.clone(), queues, room_members: &room_members, body_chars: load.body_chars };
    let duration = Duration::from_secs_f64(load.duration_s);
    let mut ramping = section.ramp.as_ref().map(|r| Ramping::new(r, load.rate_per_s, strategy.as_str(), UNITS));
    let sent_for_s = match (&section.ramp, &mut ramping) {
        (Some(ramp), Some(ramping)) => {
            let mut seconds = 0.0;
            let mut left = load.max_messages;
            while let Some(rate) = ramping.next_rate() {
                if left == 0 {
                    break;
                }
                let duplicated_before = ledger.lock().await.duplicated();
                let step = schedule.run(rate, duration, left).await;
                left = left.saturating_sub(step.due);
                seconds += step.seconds;
                tokio::time::sleep(Duration::from_secs_f64(ramp.step_drain_s)).await;
                let (summary, duplicated) = {
                    let l = ledger.lock().await;
                    (l.summary_between(step.started, step.ended), l.duplicated() - duplicated_before)
                };
                let mut judged = judge_step(rate, &step, &summary, duplicated, ramp.max_p99_ms);
                judged.bisect = ramping.bisecting();
                ramping.record(judged);
            }
            seconds
        }
        _ => schedule.run(load.rate_per_s, duration, load.max_messages).await.seconds,
    };
    // The schedule holds the ledger too: it goes before the ledger is read.
    let queues = std::mem::take(&mut schedule.queues);
    drop(schedule);
    let fault_records = faults.await.unwrap_or_default();
    tokio::time::sleep(Duration::from_secs_f64(load.drain_s)).await;
    let repairs = stage
        .metric_totals(&[
            "server_chat_gap_repairs_total",
            "server_chat_gap_repaired_total",
            "server_chat_slow_consumers_total",
            "server_chat_publish_failed_total",
        ])
        .await;
    stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    drop(queues);

    let stored = stage.truth.chat_messages().await?;
    let mut ledger =
        Arc::try_unwrap(ledger).map_err(|_| anyhow::anyhow!("a client still holds the ledger"))?.into_inner();
    // Sends whose RECEIPT never came but which the database holds are in the room's history:
    // every member is expected to have them too.
    let stored_bodies: std::collections::HashSet<(u64, u64)> =
        stored.iter().filter_map(|((room, _), body)| Some((*room, parse_body(body.as_bytes())?))).collect();
    for (room, n) in ledger.unconfirmed() {
        if stored_bodies.contains(&(room, n)) {
            ledger.stored_anyway(n);
        }
    }
    let summary = ledger.summary();
    let ours: std::collections::HashSet<u64> = room_members.iter().map(|(id, _)| *id).collect();
    let mismatches = ledger
        .receipts()
        .into_iter()
        .chain(ledger.confirmed())
        .filter(|(room, seq, n)| stored.get(&(*room, *seq)).and_then(|body| parse_body(body.as_bytes())) != Some(*n))
        .count() as u64;
    let timeline = stage.stop().await?;

    let throughput = if sent_for_s > 0.0 { summary.delivered as f64 / sent_for_s } else { 0.0 };
    let mut result = StrategyResult::without_notifications(strategy.as_str(), throughput, summary.latency_us);
    result.expected = summary.expected;
    result.delivered = summary.delivered;
    result.lost = summary.lost;
    result.duplicated = summary.duplicated;
    result.inversions = summary.inversions;
    result.unexpected = summary.unexpected;
    result.resumes = stats.resumes.load(Ordering::Relaxed);
    result.events_caused = summary.sent;
    result.deliveries_per_second = summary.deliveries_per_second.clone();
    result.lost_examples = summary.lost_examples.clone();
    result.chat = Some(ChatCounts {
        rooms: room_members.len() as u64,
        clients: clients as u64,
        due: summary.due,
        sent: summary.sent,
        not_sent: summary.not_sent,
        late: summary.late,
        confirmed: summary.confirmed,
        unconfirmed: summary.unconfirmed,
        recovered: summary.recovered,
        receipt_latency_us: summary.receipt_latency_us,
        stored: stored.keys().filter(|(room, _)| ours.contains(room)).count() as u64,
        history_mismatches: mismatches,
        resumes: result.resumes,
    });
    if let Some(ramping) = ramping {
        result.notes.push(ramping.note());
        result.ramp = ramping.steps;
        result.sustained = ramping.sustained;
    }
    result.notes.push(format!(
        "connections: {clients}, reconnects {}, resumed with last-seq {}, dropped by churn {}, closed with ERROR {}, \
         refusals on the error destination {}",
        stats.reconnects.load(Ordering::Relaxed),
        result.resumes,
        stats.churn_drops.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed),
        stats.refusals.load(Ordering::Relaxed)
    ));
    if let Some([repairs, repaired, slow, publish_failed]) = repairs.as_deref() {
        result.notes.push(format!(
            "from the servers' /metrics: gap repairs {repairs:.0} ({repaired:.0} messages read from the database), \
             slow consumers closed {slow:.0}, publishes that failed {publish_failed:.0}"
        ));
    }
    if standing < clients {
        result.notes.push(format!("only {standing} of {clients} subscriptions stood when the load began"));
    }
    eprintln!(
        "[{strategy}] due {} sent {} confirmed {} expected {} delivered {} lost {} duplicated {} out of order {} unexpected {} recovered {} p99 {:.1} ms",
        summary.due,
        summary.sent,
        summary.confirmed,
        summary.expected,
        summary.delivered,
        summary.lost,
        summary.duplicated,
        summary.inversions,
        summary.unexpected,
        summary.recovered,
        summary.latency_us.p99 as f64 / 1000.0
    );
    result.timeline = Some(timeline);
    Ok(StrategyRun { result, faults: fault_records })
}

/// The open-loop schedule: message n of a run is due at its start + n / rate, sent by a random
/// member of a random room whether or not earlier ones were answered.
struct Schedule<'a> {
    rng: StdRng,
    ledger: Arc<Mutex<ChatLedger>>,
    queues: Vec<mpsc::Sender<Send>>,
    room_members: &'a [(u64, Vec<usize>)],
    body_chars: u32,
}

/// One run of the schedule.
struct Scheduled {
    started: Instant,
    ended: Instant,
    due: u64,
    seconds: f64,
}

impl Schedule<'_> {
    async fn run(&mut self, rate: f64, duration: Duration, max: u64) -> Scheduled {
        let started = Instant::now();
        let mut n_due: u64 = 0;
        while n_due < max {
            let due = started + Duration::from_secs_f64(n_due as f64 / rate);
            if due.saturating_duration_since(started) >= duration {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            let r = self.rng.random_range(0..self.room_members.len());
            let members = &self.room_members[r].1;
            let sender = members[self.rng.random_range(0..members.len())];
            let n = self.ledger.lock().await.due(r, due);
            let send = Send { n, body: body(n, self.body_chars as usize) };
            if self.queues[sender].try_send(send).is_err() {
                self.ledger.lock().await.not_sent(n);
            }
            n_due += 1;
        }
        let ended = Instant::now();
        Scheduled { started, ended, due: n_due, seconds: ended.duration_since(started).as_secs_f64() }
    }
}

/// A step is sustained when every message due in it reached every member once, within the
/// p99 limit, and every one went out on time (none not sent, none late).
fn judge_step(rate: f64, step: &Scheduled, s: &ChatSummary, duplicated: u64, max_p99_ms: f64) -> RampStep {
    let mut why = Vec::new();
    if s.expected == 0 {
        why.push("nothing expected (no message confirmed)".to_string());
    }
    if s.lost > 0 {
        why.push(format!("lost {} of {} ({}%)", s.lost, s.expected, text::percent(s.lost, s.expected)));
    }
    if duplicated > 0 {
        why.push(format!("duplicated {duplicated}"));
    }
    if s.latency_us.p99 as f64 / 1000.0 > max_p99_ms {
        why.push(format!("p99 {} ms > {max_p99_ms} ms", text::ms(s.latency_us.p99)));
    }
    if s.not_sent > 0 || s.late > 0 {
        why.push(format!("could not send on time: {} not sent, {} late", s.not_sent, s.late));
    }
    if s.unconfirmed > 0 {
        why.push(format!("{} sends got no RECEIPT", s.unconfirmed));
    }
    RampStep {
        offered_per_s: rate,
        sent: s.sent,
        skipped: s.not_sent,
        expected: s.expected,
        delivered: s.delivered,
        lost: s.lost,
        duplicated,
        delivered_per_s: s.delivered as f64 / step.seconds.max(f64::EPSILON),
        latency_us: s.latency_us,
        sustained: why.is_empty(),
        verdict: why.join("; "),
        bisect: false,
    }
}

/// A room and its members, the owner first and the renter second.
struct Room {
    id: u64,
    members: Vec<User>,
}

/// Signs up every member, then builds each room: the owner's item, the renter's room, the
/// other members added by the owner.
async fn build_rooms(api: &ApiClient, bases: &[String], load: &ChatLoad, tag: &str) -> anyhow::Result<Vec<Room>> {
    let sizes: Vec<usize> = std::iter::repeat_n(2, load.rooms as usize)
        .chain(std::iter::repeat_n(load.group_size as usize, load.group_rooms as usize))
        .collect();
    let total: usize = sizes.iter().sum();
    let users: Vec<User> = futures::stream::iter(0..total)
        .map(|i| {
            let base = &bases[i % bases.len()];
            let email = format!("c{i}.{tag}@load.test");
            async move { api.signup_and_login(base, &email, &format!("member {i}")).await }
        })
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut groups = Vec::with_capacity(sizes.len());
    let mut next = 0;
    for size in sizes {
        groups.push(users[next..next + size].to_vec());
        next += size;
    }
    let rooms = futures::stream::iter(groups.into_iter().enumerate())
        .map(|(r, members)| async move {
            let base = &bases[r % bases.len()];
            let owner = &members[0];
            let item = api.create_rental(base, owner, &format!("item {r}"), "a thing to talk about").await?;
            let id = api.open_room(base, &members[1], item).await?;
            for member in &members[2..] {
                api.add_room_member(base, owner, id, member).await?;
            }
            anyhow::Ok(Room { id, members })
        })
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    rooms.into_iter().collect()
}
