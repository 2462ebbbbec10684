//! The fan-out scenario for one delivery strategy: a fresh database, N server instances,
//! a world of users and friends, SSE clients spread over the instances, events caused at a
//! steady rate on random instances, faults at their times, then a drain; every expected
//! (recipient, cause) is checked against what the clients received.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::clients::{ClientSpec, ClientStats, LedgerMsg, run_client};
use super::faults::run_faults;
use super::world::World;
use super::{RunContext, StrategyRun};
use crate::cluster::{Cluster, ClusterSpec};
use crate::infra::unique_name;
use crate::ledger::{Cause, Ledger};
use crate::probe::api::ApiClient;
use crate::report::StrategyResult;
use crate::scenario::{Reconnect, Spread, Strategy};

/// Causing requests in flight at once; beyond this the driver is the bottleneck, and says so.
const MAX_IN_FLIGHT: usize = 256;
/// Diaries remembered as comment targets.
const RECENT_DIARIES: usize = 1_000;

pub async fn run(ctx: &RunContext<'_>, strategy: Strategy) -> anyhow::Result<StrategyRun> {
    let scn = ctx.scenario;
    let urls = ctx.infra.urls();
    let database_url = ctx.infra.fresh_database(&format!("{}_{}", scn.name, strategy.as_str())).await?;
    let namespace = format!("{}:", unique_name("lt"));
    let mut env = vec![
        ("SERVER_DATABASE_URL".to_string(), database_url.clone()),
        ("SERVER_REDIS_URL".to_string(), urls.redis.clone()),
        ("SERVER_AMQP_URL".to_string(), urls.amqp.clone()),
        ("SERVER_NAMESPACE".to_string(), namespace),
        ("SERVER_NOTIFY_DELIVERY".to_string(), strategy.as_str().to_string()),
        // The notification path alone is measured: no AI comments competing for the CPU.
        ("SERVER_AI_ENABLED".to_string(), "false".to_string()),
        // Thousands of sign-ups on 2 cores: cheap hashes (logged as weak by the server).
        ("SERVER_ARGON2_MEMORY_KIB".to_string(), "256".to_string()),
        ("SERVER_ARGON2_ITERATIONS".to_string(), "1".to_string()),
    ];
    env.extend(scn.cluster.server_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let log_dir = ctx.report_dir.join("logs").join(strategy.as_str());
    let cluster = Cluster::start(ClusterSpec {
        server_bin: ctx.server_bin.clone(),
        instances: scn.cluster.instances as usize,
        env,
        log_dir,
        ready_timeout: Duration::from_secs(60),
    })
    .await?;
    let bases = Arc::new(cluster.urls());
    let n_instances = bases.len();
    let http =
        reqwest::Client::builder().pool_max_idle_per_host(MAX_IN_FLIGHT).timeout(Duration::from_secs(30)).build()?;
    // Streams must not time out: they are long-lived by design.
    let stream_http = reqwest::Client::builder().connect_timeout(Duration::from_secs(3)).build()?;
    let api = ApiClient::new(http);
    let tag = unique_name(strategy.as_str());
    eprintln!(
        "[{}] building the world: {} users, {} friends each",
        strategy.as_str(),
        scn.load.users,
        scn.load.friends_per_user
    );
    let world = Arc::new(
        World::build(
            &api,
            &bases,
            &tag,
            scn.load.users as usize,
            scn.load.friends_per_user as usize,
            scn.load.sse_clients as usize,
            scn.seed,
        )
        .await?,
    );

    let t0 = Instant::now();
    let (ledger_tx, mut ledger_rx) = mpsc::unbounded_channel::<LedgerMsg>();
    let expected_count = Arc::new(AtomicU64::new(0));
    // Delivered and outstanding so far, refreshed every 2 s for the progress line.
    let (delivered_so_far, outstanding) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (delivered_now, outstanding_now) = (delivered_so_far.clone(), outstanding.clone());
    let collector = tokio::spawn(async move {
        let mut ledger = Ledger::new(t0);
        let mut tally = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                msg = ledger_rx.recv() => match msg {
                    Some(LedgerMsg::Expect { recipient, cause, at }) => ledger.expect(recipient, cause, at),
                    Some(LedgerMsg::Observe { client, client_user, id, recipient, cause, at }) => {
                        ledger.observe(client, client_user, id, recipient, cause, at)
                    }
                    None => break,
                },
                _ = tally.tick() => {
                    let s = ledger.summary();
                    delivered_now.store(s.delivered, Ordering::Relaxed);
                    outstanding_now.store(s.lost, Ordering::Relaxed);
                }
            }
        }
        ledger
    });

    // Streams: one client per streaming user, spread over the instances.
    let alive: Arc<Vec<AtomicBool>> = Arc::new((0..n_instances).map(|_| AtomicBool::new(true)).collect());
    let stats = Arc::new(ClientStats::default());
    let stop_clients = CancellationToken::new();
    let mut rng = StdRng::seed_from_u64(scn.seed ^ 0x5eed);
    let mut client_tasks = Vec::new();
    for u in 0..world.sse_clients {
        let own = match scn.load.spread {
            Spread::RoundRobin => u % n_instances,
            Spread::Random => rng.random_range(0..n_instances),
        };
        let spec = ClientSpec {
            client: u as u64,
            user_id: world.users[u].id,
            token: world.users[u].token.clone(),
            bases: bases.clone(),
            order: (0..n_instances).map(|k| (own + k) % n_instances).collect(),
            resume_with_last_event_id: scn.load.reconnect == Reconnect::LastEventId,
        };
        client_tasks.push(tokio::spawn(run_client(
            spec,
            stream_http.clone(),
            alive.clone(),
            ledger_tx.clone(),
            stats.clone(),
            stop_clients.clone(),
        )));
    }

    let cluster = Arc::new(Mutex::new(cluster));
    let faults = tokio::spawn(run_faults(
        scn.faults.clone(),
        strategy.as_str().to_string(),
        t0,
        cluster.clone(),
        ctx.infra.clone(),
        alive.clone(),
    ));

    // Warm-up: streams connect; nothing is counted yet.
    tokio::time::sleep(Duration::from_secs_f64(scn.load.warmup_s)).await;
    let connected = stats.connected.load(Ordering::Relaxed);
    if connected < world.sse_clients {
        eprintln!(
            "[{}] warning: {connected} of {} streams connected after the warm-up",
            strategy.as_str(),
            world.sse_clients
        );
    }

    // Load: events at a steady rate, on random live instances, bounded in count and time.
    let caused = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // Why causing requests failed, by kind of answer, so a report says what went wrong.
    let failures: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let recent: Arc<Mutex<Vec<(usize, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    // Every cause the driver saw succeed; the database may hold more (see `indeterminate`).
    let known: Arc<std::sync::Mutex<HashSet<Cause>>> = Arc::default();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let interval = Duration::from_secs_f64(1.0 / scn.load.rate_per_s);
    let load_start = Instant::now();
    let load_end = load_start + Duration::from_secs_f64(scn.load.duration_s);
    let progress = spawn_progress(
        strategy,
        t0,
        caused.clone(),
        expected_count.clone(),
        delivered_so_far,
        outstanding,
        stats.clone(),
    );
    let mut saturated = 0u64;
    for n in 0..scn.load.max_events {
        let due = load_start + interval.mul_f64(n as f64);
        if due >= load_end {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            saturated += 1;
            continue;
        };
        let live: Vec<usize> = (0..n_instances).filter(|&i| alive[i].load(Ordering::Relaxed)).collect();
        let Some(&instance) = live.get(rng.random_range(0..live.len().max(1))) else { continue };
        let base = bases[instance].clone();
        let diary_event = rng.random_bool(scn.load.mix.diary_share().clamp(0.0, 1.0));
        let author = world.random_author(&mut rng);
        let pick: u64 = rng.random();
        let (api, world, ledger_tx, caused, failed, recent, expected_count, known) = (
            api.clone(),
            world.clone(),
            ledger_tx.clone(),
            caused.clone(),
            failed.clone(),
            recent.clone(),
            expected_count.clone(),
            known.clone(),
        );
        let failures = failures.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let target = if diary_event { None } else { pick_diary(&recent, pick).await };
            let sent_at = Instant::now();
            match target {
                None => match api.write_diary(&base, &world.users[author], n).await {
                    Ok(diary) => {
                        caused.fetch_add(1, Ordering::Relaxed);
                        known.lock().unwrap_or_else(|p| p.into_inner()).insert(Cause::diary(diary));
                        for &f in &world.friends[author] {
                            if world.has_stream(f) {
                                expected_count.fetch_add(1, Ordering::Relaxed);
                                let _ = ledger_tx.send(LedgerMsg::Expect {
                                    recipient: world.users[f].id,
                                    cause: Cause::diary(diary),
                                    at: sent_at,
                                });
                            }
                        }
                        let mut recent = recent.lock().await;
                        if recent.len() >= RECENT_DIARIES {
                            recent.remove(0);
                        }
                        recent.push((author, diary));
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        *failures.lock().unwrap_or_else(|p| p.into_inner()).entry(e.kind()).or_default() += 1;
                    }
                },
                Some((owner, diary)) => {
                    // A friend of the owner comments: the owner is notified.
                    let friends = &world.friends[owner];
                    let commenter = friends[(pick as usize) % friends.len()];
                    match api.comment(&base, &world.users[commenter], diary).await {
                        Ok(comment) => {
                            caused.fetch_add(1, Ordering::Relaxed);
                            known.lock().unwrap_or_else(|p| p.into_inner()).insert(Cause::comment(comment));
                            if world.has_stream(owner) {
                                expected_count.fetch_add(1, Ordering::Relaxed);
                                let _ = ledger_tx.send(LedgerMsg::Expect {
                                    recipient: world.users[owner].id,
                                    cause: Cause::comment(comment),
                                    at: sent_at,
                                });
                            }
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            *failures.lock().unwrap_or_else(|p| p.into_inner()).entry(e.kind()).or_default() += 1;
                        }
                    }
                }
            }
        });
    }
    // Let in-flight requests finish, then drain.
    let _ = tokio::time::timeout(Duration::from_secs(30), in_flight.acquire_many(MAX_IN_FLIGHT as u32)).await;
    let load_seconds = load_start.elapsed().as_secs_f64().min(scn.load.duration_s).max(f64::EPSILON);
    // The drain starts once the load has ended and the last fault step (a broker that takes
    // seconds to come back, say) is done: what arrives late is not lost.
    let fault_records = faults.await.unwrap_or_default();
    tokio::time::sleep(Duration::from_secs_f64(scn.load.drain_s)).await;
    stop_clients.cancel();
    for task in client_tasks {
        let _ = task.await;
    }
    progress.abort();
    drop(ledger_tx);
    let mut ledger = collector.await?;
    // A request that failed or timed out for the driver (a paused instance answers after
    // the client gave up) may still have committed: the database says which causes exist.
    let known = std::mem::take(&mut *known.lock().unwrap_or_else(|p| p.into_inner()));
    let uncertain: Vec<Cause> =
        committed_causes(&database_url).await?.into_iter().filter(|c| !known.contains(c)).collect();
    for cause in &uncertain {
        ledger.indeterminate(*cause);
    }
    let summary = ledger.summary();

    let stored_twice = stored_twice(&database_url).await?;
    let mut result = StrategyResult::from_summary(
        strategy.as_str(),
        &summary,
        caused.load(Ordering::Relaxed),
        stored_twice,
        load_seconds,
    );
    result.notes.push(format!("stream reconnects: {}", stats.reconnects.load(Ordering::Relaxed)));
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        let kinds = failures.lock().unwrap_or_else(|p| p.into_inner());
        let by_kind: Vec<String> = kinds.iter().map(|(kind, n)| format!("{kind}: {n}")).collect();
        result.notes.push(format!(
            "causing requests that failed (nothing expected of them): {failed} ({})",
            by_kind.join(", ")
        ));
    }
    if !uncertain.is_empty() {
        result.notes.push(format!(
            "causes committed although their request failed or timed out: {}; their {} receipts are indeterminate, not unexpected",
            uncertain.len(),
            summary.indeterminate
        ));
    }
    if saturated > 0 {
        result.notes.push(format!("ticks skipped because {MAX_IN_FLIGHT} requests were in flight: {saturated}"));
    }
    let cluster =
        Arc::try_unwrap(cluster).map_err(|_| anyhow::anyhow!("the fault task still holds the cluster"))?.into_inner();
    cluster.stop(Duration::from_secs(10)).await;
    eprintln!(
        "[{}] expected {} delivered {} lost {} duplicated {} unexpected {} p99 {:.1} ms",
        strategy.as_str(),
        result.expected,
        result.delivered,
        result.lost,
        result.duplicated,
        result.unexpected,
        result.latency_us.p99 as f64 / 1000.0
    );
    Ok(StrategyRun { result, faults: fault_records })
}

async fn pick_diary(recent: &Mutex<Vec<(usize, u64)>>, pick: u64) -> Option<(usize, u64)> {
    let recent = recent.lock().await;
    if recent.is_empty() { None } else { Some(recent[(pick as usize) % recent.len()]) }
}

/// Every diary and comment in the database (read-only SQL after the run).
async fn committed_causes(database_url: &str) -> anyhow::Result<Vec<Cause>> {
    use sqlx::Connection;
    let mut conn = sqlx::MySqlConnection::connect(database_url).await?;
    let diaries: Vec<u64> = sqlx::query_scalar("SELECT id FROM diaries").fetch_all(&mut conn).await?;
    let comments: Vec<u64> = sqlx::query_scalar("SELECT id FROM comments").fetch_all(&mut conn).await?;
    let _ = conn.close().await;
    Ok(diaries.into_iter().map(Cause::diary).chain(comments.into_iter().map(Cause::comment)).collect())
}

/// (recipient, cause) pairs stored as more than one row: read-only SQL after the run.
async fn stored_twice(database_url: &str) -> anyhow::Result<u64> {
    use sqlx::Connection;
    let mut conn = sqlx::MySqlConnection::connect(database_url).await?;
    let twice: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM notifications GROUP BY recipient_id, kind, cause_id HAVING COUNT(*) > 1) t",
    )
    .fetch_one(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(twice as u64)
}

fn spawn_progress(
    strategy: Strategy,
    t0: Instant,
    caused: Arc<AtomicU64>,
    expected: Arc<AtomicU64>,
    delivered: Arc<AtomicU64>,
    outstanding: Arc<AtomicU64>,
    stats: Arc<ClientStats>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            // "not yet received" becomes "lost" only at the end of the drain.
            eprintln!(
                "[{}] {:>5.1}s  caused {:>6}  expected {:>7}  delivered {:>7}  not yet received {:>6}  streams {:>5}  reconnects {:>4}",
                strategy.as_str(),
                t0.elapsed().as_secs_f64(),
                caused.load(Ordering::Relaxed),
                expected.load(Ordering::Relaxed),
                delivered.load(Ordering::Relaxed),
                outstanding.load(Ordering::Relaxed),
                stats.connected.load(Ordering::Relaxed),
                stats.reconnects.load(Ordering::Relaxed),
            );
        }
    })
}
