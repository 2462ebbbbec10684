//! A fan-out rig for one delivery strategy: a fresh database, N server processes, a world of
//! users and friends, one SSE client per streaming user spread over the instances, and the
//! ledger collector they all report to. The fan-out and capacity runners drive load through
//! it ([`super::driver`]) and then [`Rig::finish`] it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::RunContext;
use super::clients::{ClientSpec, ClientStats, LedgerMsg, run_client};
use super::driver::Driver;
use super::stage::Stage;
use super::world::World;
use crate::infra::unique_name;
use crate::ledger::{Cause, Ledger, LedgerSummary};
use crate::probe::api::ApiClient;
use crate::report::FaultRecord;
use crate::scenario::{Churn, Delivery, Load, Spread, Strategy};

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
    /// The database, the instances, and what faults act on.
    pub stage: Stage,
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

/// The servers' settings of a fan-out run with `delivery`.
pub fn settings(delivery: Delivery) -> Vec<(&'static str, &'static str)> {
    let mut settings = delivery.server_settings();
    // The notification path alone is measured: no AI comments competing for the CPU.
    settings.push(("SERVER_AI_ENABLED", "false"));
    settings
}

impl Rig {
    pub async fn start(ctx: &RunContext<'_>, load: &Load, delivery: Delivery) -> anyhow::Result<Rig> {
        let scn = ctx.scenario;
        let strategy = Strategy::from(delivery);
        let stage = Stage::start(ctx, strategy, &settings(delivery)).await?;
        let bases = Arc::new(stage.bases.clone());
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
        stage.mark_t0(t0);
        let (ledger_tx, ledger_rx) = mpsc::unbounded_channel::<LedgerMsg>();
        let (queries, query_rx) = mpsc::unbounded_channel::<LedgerQuery>();
        let (delivered, outstanding) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let collector =
            tokio::spawn(collect(t0, ledger_rx, query_rx, delivered.clone(), outstanding.clone(), ctx.live.clone()));

        let alive = stage.alive.clone();
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
            let spec = ClientSpec::of_user(&world, u, own, bases.clone(), load, scn.seed);
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
        let progress = spawn_progress(strategy, t0, &driver, delivered, outstanding, stats.clone(), ctx.live.clone());
        Ok(Rig {
            strategy,
            stage,
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

    /// Starts the scenario's faults on the rig's clock, the clients' churn among them.
    pub fn start_faults(&self, ctx: &RunContext<'_>) -> tokio::task::JoinHandle<Vec<FaultRecord>> {
        self.stage.start_faults(ctx, self.t0, Some(self.churn.clone()))
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
        self.stage.metric_totals(names).await
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
    /// Ends the clients and the instances: the ledger, the causes whose requests failed but
    /// may have committed, and every process's timeline.
    pub async fn finish(self) -> anyhow::Result<(Ledger, Vec<Cause>, crate::report::Timeline)> {
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
        let uncertain: Vec<Cause> =
            self.stage.truth.committed_causes().await?.into_iter().filter(|c| !known.contains(c)).collect();
        for cause in &uncertain {
            ledger.indeterminate(*cause);
        }
        let timeline = self.stage.stop().await?;
        Ok((ledger, uncertain, timeline))
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
    live: Arc<crate::live::Live>,
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
                live.ledger(crate::live::Notify::from_summary(&s));
            }
        }
    }
    ledger
}

fn spawn_progress(
    strategy: Strategy,
    t0: Instant,
    driver: &Driver,
    delivered: Arc<AtomicU64>,
    outstanding: Arc<AtomicU64>,
    stats: Arc<ClientStats>,
    live: Arc<crate::live::Live>,
) -> tokio::task::JoinHandle<()> {
    let (caused, expected) = (driver.caused.clone(), driver.expected.clone());
    let in_flight = driver.in_flight_gauge();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.tick().await;
        loop {
            tick.tick().await;
            live.driver(caused.load(Ordering::Relaxed), in_flight());
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
