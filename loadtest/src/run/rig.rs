//! A fan-out rig for one delivery strategy: a fresh database, N server processes, a world of
//! users and friends, one SSE client per streaming user spread over the instances, and the
//! ledger collector they all report to. The fan-out and capacity runners drive load through
//! it ([`super::driver`]) and then [`Rig::finish`] it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::RunContext;
use super::clients::{ClientSpec, ClientStats, LedgerMsg, run_client};
use super::driver::Driver;
use super::faults::FaultTargets;
use super::truth::Truth;
use super::world::World;
use crate::cluster::{Cluster, ClusterSpec};
use crate::infra::unique_name;
use crate::ledger::{Cause, Ledger, LedgerSummary};
use crate::probe::api::ApiClient;
use crate::scenario::{Churn, Delivery, Load, Reconnect, Spread, Strategy};

/// Causing requests in flight at once; beyond this the driver is the bottleneck, and says so.
pub const MAX_IN_FLIGHT: usize = 256;

/// What the ledger collector is asked besides recording.
#[derive(Debug)]
pub enum LedgerQuery {
    /// The summary of the expectations whose causing request was sent in `[from, to)`.
    Window { from: Instant, to: Instant, reply: oneshot::Sender<LedgerSummary> },
}

pub struct Rig {
    pub strategy: Strategy,
    pub database_url: String,
    pub cluster: Arc<Mutex<Cluster>>,
    pub alive: Arc<Vec<AtomicBool>>,
    pub stats: Arc<ClientStats>,
    pub driver: Driver,
    /// The run's clock: fault times, deliveries per second and the progress line count from it.
    pub t0: Instant,
    /// Turns the clients' churn on and off (the `client-churn` fault).
    pub churn: Arc<watch::Sender<Option<Churn>>>,
    ledger_tx: mpsc::UnboundedSender<LedgerMsg>,
    queries: mpsc::UnboundedSender<LedgerQuery>,
    collector: tokio::task::JoinHandle<Ledger>,
    stop_clients: CancellationToken,
    client_tasks: Vec<tokio::task::JoinHandle<()>>,
    progress: tokio::task::JoinHandle<()>,
}

impl Rig {
    pub async fn start(ctx: &RunContext<'_>, load: &Load, delivery: Delivery) -> anyhow::Result<Rig> {
        let scn = ctx.scenario;
        let strategy = Strategy::from(delivery);
        let database_url = ctx.infra.fresh_database(&format!("{}_{}", scn.name, strategy.as_str())).await?;
        let env = server_env(
            ctx,
            &database_url,
            &[
                ("SERVER_NOTIFY_DELIVERY", strategy.as_str()),
                // The notification path alone is measured: no AI comments competing for the CPU.
                ("SERVER_AI_ENABLED", "false"),
            ],
        );
        let cluster = start_cluster(ctx, strategy, env).await?;
        let bases = Arc::new(cluster.urls());
        let n_instances = bases.len();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .timeout(Duration::from_secs(30))
            .build()?;
        // Streams must not time out: they are long-lived by design.
        let stream_http = reqwest::Client::builder().connect_timeout(Duration::from_secs(3)).build()?;
        let api = ApiClient::new(http);
        eprintln!(
            "[{}] building the world: {} users, {} friends each",
            strategy.as_str(),
            load.users,
            load.friends_per_user
        );
        let world = Arc::new(
            World::build(
                &api,
                &bases,
                &unique_name(strategy.as_str()),
                load.users as usize,
                load.friends_per_user as usize,
                load.sse_clients as usize,
                scn.seed,
            )
            .await?,
        );

        let t0 = Instant::now();
        let (ledger_tx, ledger_rx) = mpsc::unbounded_channel::<LedgerMsg>();
        let (queries, query_rx) = mpsc::unbounded_channel::<LedgerQuery>();
        let (delivered, outstanding) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let collector = tokio::spawn(collect(t0, ledger_rx, query_rx, delivered.clone(), outstanding.clone()));

        let alive: Arc<Vec<AtomicBool>> = Arc::new((0..n_instances).map(|_| AtomicBool::new(true)).collect());
        let stats = Arc::new(ClientStats::default());
        let (churn, churn_rx) = watch::channel(None);
        let stop_clients = CancellationToken::new();
        let mut rng = StdRng::seed_from_u64(scn.seed ^ 0x5eed);
        let mut client_tasks = Vec::new();
        for u in 0..world.sse_clients {
            let own = match load.spread {
                Spread::RoundRobin => u % n_instances,
                Spread::Random => rng.random_range(0..n_instances),
            };
            let spec = ClientSpec {
                client: u as u64,
                user_id: world.users[u].id,
                token: world.users[u].token.clone(),
                bases: bases.clone(),
                order: (0..n_instances).map(|k| (own + k) % n_instances).collect(),
                resume_with_last_event_id: load.reconnect == Reconnect::LastEventId,
                spread: load.spread,
                seed: scn.seed,
            };
            client_tasks.push(tokio::spawn(run_client(
                spec,
                stream_http.clone(),
                alive.clone(),
                ledger_tx.clone(),
                stats.clone(),
                churn_rx.clone(),
                stop_clients.clone(),
            )));
        }
        let driver = Driver::new(api, world, bases, alive.clone(), ledger_tx.clone(), load.mix.diary_share(), scn.seed);
        let progress = spawn_progress(strategy, t0, &driver, delivered, outstanding, stats.clone());
        Ok(Rig {
            strategy,
            database_url,
            cluster: Arc::new(Mutex::new(cluster)),
            alive,
            stats,
            driver,
            t0,
            churn: Arc::new(churn),
            ledger_tx,
            queries,
            collector,
            stop_clients,
            client_tasks,
            progress,
        })
    }

    /// What the scenario's faults act on in this rig.
    pub fn fault_targets(&self, ctx: &RunContext<'_>) -> FaultTargets {
        FaultTargets {
            cluster: self.cluster.clone(),
            infra: ctx.infra.clone(),
            alive: self.alive.clone(),
            churn: Some(self.churn.clone()),
        }
    }

    /// Waits `warmup` for the streams to connect, and warns if some did not.
    pub async fn warm_up(&self, warmup: Duration) {
        tokio::time::sleep(warmup).await;
        let connected = self.stats.connected.load(Ordering::Relaxed);
        if connected < self.driver.world.sse_clients {
            eprintln!(
                "[{}] warning: {connected} of {} streams connected after the warm-up",
                self.strategy.as_str(),
                self.driver.world.sse_clients
            );
        }
    }

    /// Each metric of `names` summed over the `/metrics` of the instances alive now (an
    /// instance's counters start over when it restarts); `None` when no instance answered.
    pub async fn metric_totals(&self, names: &[&str]) -> Option<Vec<f64>> {
        let bases = self.cluster.lock().await.urls();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().ok()?;
        let mut totals = vec![0.0; names.len()];
        let mut answered = false;
        for (i, base) in bases.iter().enumerate() {
            if !self.alive.get(i).is_some_and(|a| a.load(Ordering::Relaxed)) {
                continue;
            }
            if let Ok(samples) = crate::probe::metrics::scrape(&http, base).await {
                answered = true;
                for (total, name) in totals.iter_mut().zip(names) {
                    *total += crate::probe::metrics::total(&samples, name);
                }
            }
        }
        answered.then_some(totals)
    }

    /// The ledger so far, for the expectations of requests sent in `[from, to)`.
    pub async fn window(&self, from: Instant, to: Instant) -> anyhow::Result<LedgerSummary> {
        let (reply, answer) = oneshot::channel();
        self.queries
            .send(LedgerQuery::Window { from, to, reply })
            .map_err(|_| anyhow::anyhow!("the ledger collector has stopped"))?;
        Ok(answer.await?)
    }

    /// Stops the clients, closes the ledger, resolves uncertain causes with read-only SQL and
    /// stops the cluster. Returns the ledger and the causes that committed although their
    /// request failed for the driver.
    pub async fn finish(self) -> anyhow::Result<(Ledger, Vec<Cause>)> {
        self.stop_clients.cancel();
        for task in self.client_tasks {
            let _ = task.await;
        }
        self.progress.abort();
        let known = self.driver.known_causes();
        drop(self.driver);
        drop(self.ledger_tx);
        drop(self.queries);
        let mut ledger = self.collector.await?;
        // A request that failed or timed out for the driver (a paused instance answers after
        // the client gave up) may still have committed: the database says which causes exist.
        let uncertain: Vec<Cause> = Truth::new(&self.database_url)
            .committed_causes()
            .await?
            .into_iter()
            .filter(|c| !known.contains(c))
            .collect();
        for cause in &uncertain {
            ledger.indeterminate(*cause);
        }
        let cluster = Arc::try_unwrap(self.cluster)
            .map_err(|_| anyhow::anyhow!("the fault task still holds the cluster"))?
            .into_inner();
        cluster.stop(Duration::from_secs(10)).await;
        Ok((ledger, uncertain))
    }
}

/// Owns the ledger: records what clients and driver report, answers window queries, and
/// refreshes the progress counters every 2 s. Ends when both channels close.
async fn collect(
    t0: Instant,
    mut msgs: mpsc::UnboundedReceiver<LedgerMsg>,
    mut queries: mpsc::UnboundedReceiver<LedgerQuery>,
    delivered: Arc<AtomicU64>,
    outstanding: Arc<AtomicU64>,
) -> Ledger {
    let mut ledger = Ledger::new(t0);
    let mut tally = tokio::time::interval(Duration::from_secs(2));
    let mut queries_open = true;
    loop {
        tokio::select! {
            msg = msgs.recv() => match msg {
                Some(LedgerMsg::Expect { recipient, cause, at }) => ledger.expect(recipient, cause, at),
                Some(LedgerMsg::Observe { client, client_user, id, recipient, cause, at, event_id }) => {
                    ledger.observe(client, client_user, id, recipient, cause, at, event_id)
                }
                Some(LedgerMsg::Position { client, event_id }) => ledger.position(client, event_id),
                None => break,
            },
            query = queries.recv(), if queries_open => match query {
                Some(LedgerQuery::Window { from, to, reply }) => {
                    let _ = reply.send(ledger.summary_between(from, to));
                }
                None => queries_open = false,
            },
            _ = tally.tick() => {
                let s = ledger.summary();
                delivered.store(s.delivered, Ordering::Relaxed);
                outstanding.store(s.lost, Ordering::Relaxed);
            }
        }
    }
    ledger
}

/// The environment of every server process of a run: the infrastructure's URLs, a fresh
/// database, a namespace of its own, cheap password hashes, then `extra`, then the
/// scenario's `server_env` (which wins: it is the user's word).
pub fn server_env(ctx: &RunContext<'_>, database_url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let urls = ctx.infra.urls();
    let mut env = vec![
        ("SERVER_DATABASE_URL".to_string(), database_url.to_string()),
        ("SERVER_REDIS_URL".to_string(), urls.redis.clone()),
        ("SERVER_AMQP_URL".to_string(), urls.amqp.clone()),
        ("SERVER_NAMESPACE".to_string(), format!("{}:", unique_name("lt"))),
        // Thousands of sign-ups on 2 cores: cheap hashes (logged as weak by the server).
        ("SERVER_ARGON2_MEMORY_KIB".to_string(), "256".to_string()),
        ("SERVER_ARGON2_ITERATIONS".to_string(), "1".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env.extend(ctx.scenario.cluster.server_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Starts the scenario's instances with `env`, logs under `logs/<strategy>/`.
pub async fn start_cluster(
    ctx: &RunContext<'_>,
    strategy: Strategy,
    env: Vec<(String, String)>,
) -> anyhow::Result<Cluster> {
    Ok(Cluster::start(ClusterSpec {
        server_bin: ctx.server_bin.clone(),
        instances: ctx.scenario.cluster.instances as usize,
        env,
        log_dir: ctx.report_dir.join("logs").join(strategy.as_str()),
        ready_timeout: Duration::from_secs(60),
    })
    .await?)
}

fn spawn_progress(
    strategy: Strategy,
    t0: Instant,
    driver: &Driver,
    delivered: Arc<AtomicU64>,
    outstanding: Arc<AtomicU64>,
    stats: Arc<ClientStats>,
) -> tokio::task::JoinHandle<()> {
    let (caused, expected) = (driver.caused.clone(), driver.expected.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.tick().await;
        loop {
            tick.tick().await;
            // "not yet received" becomes "lost" only at the end of the drain.
            eprintln!(
                "[{}] {:>5.1}s  caused {:>6}  expected {:>7}  delivered {:>7}  not yet received {:>6}  streams {:>5}  reconnects {:>4}  resumes {:>5}",
                strategy.as_str(),
                t0.elapsed().as_secs_f64(),
                caused.load(Ordering::Relaxed),
                expected.load(Ordering::Relaxed),
                delivered.load(Ordering::Relaxed),
                outstanding.load(Ordering::Relaxed),
                stats.connected.load(Ordering::Relaxed),
                stats.reconnects.load(Ordering::Relaxed),
                stats.resumes.load(Ordering::Relaxed),
            );
        }
    })
}

/// Returned by [`Driver::known_causes`]: every cause the driver saw succeed.
pub type KnownCauses = HashSet<Cause>;
