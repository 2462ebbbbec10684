//! What every runner sets up before its own work, and tears down after: a fresh database, the
//! scenario's instances with their settings, the read-only view of the database, and what the
//! scenario's faults act on.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, watch};

use super::RunContext;
use super::faults::{FaultTargets, run_faults};
use super::timeline::TimelineSampler;
use super::truth::Truth;
use crate::cluster::{Cluster, ClusterSpec, External};
use crate::infra::unique_name;
use crate::report::{FaultRecord, Timeline};
use crate::scenario::{Churn, Strategy};

pub struct Stage {
    pub strategy: Strategy,
    pub database_url: String,
    pub truth: Truth,
    /// Base URL of every instance, by 0-based index.
    pub bases: Vec<String>,
    pub cluster: Arc<Mutex<Cluster>>,
    /// Cleared while an instance is dead or frozen.
    pub alive: Arc<Vec<AtomicBool>>,
    /// CPU and memory of every process, every second.
    sampler: TimelineSampler,
}

impl Stage {
    /// A fresh database and the instances, started with the run's settings plus `env`.
    pub async fn start(ctx: &RunContext<'_>, strategy: Strategy, env: &[(&str, &str)]) -> anyhow::Result<Stage> {
        // A deployment the harness does not (re)deploy keeps its own database: the truth is read
        // from it. Otherwise every strategy's run gets a fresh one.
        let own =
            ctx.targets.as_ref().filter(|t| t.adapter("deploy", None).is_none()).and_then(|t| t.database_url.clone());
        let database_url = match own {
            Some(url) => {
                if !ctx.scenario.cluster.server_env.is_empty() {
                    eprintln!(
                        "[{}] warning: the scenario's [cluster] server_env is not applied: the targets file has no deploy \
                         adapter, so the deployment runs with its own settings",
                        strategy.as_str()
                    );
                }
                url
            }
            None => ctx.infra.fresh_database(&format!("{}_{}", ctx.scenario.name, strategy.as_str())).await?,
        };
        let env = server_env(ctx, &database_url, env);
        let cluster = match &ctx.targets {
            None => start_cluster(ctx, strategy, env).await?,
            // The deployment is (re)deployed with the settings the processes would have had.
            Some(targets) => {
                let log_dir = ctx.report_dir.join("logs").join(strategy.as_str());
                let (external, deployed) =
                    External::deploy(targets.clone(), env, log_dir, strategy.as_str(), Duration::from_secs(120))
                        .await?;
                if let Some(run) = deployed {
                    eprintln!("[{}] deployed: `{}` ({})", strategy.as_str(), run.command, run.status);
                }
                Cluster::External(external)
            }
        };
        let bases = cluster.urls();
        let alive = Arc::new((0..bases.len()).map(|_| AtomicBool::new(true)).collect::<Vec<_>>());
        let cluster = Arc::new(Mutex::new(cluster));
        let sampler = TimelineSampler::start(cluster.clone(), bases.len(), ctx.infra.containers());
        ctx.live.begin(strategy.as_str());
        Ok(Stage { strategy, truth: Truth::new(&database_url), database_url, bases, cluster, alive, sampler })
    }

    /// An operator's one-off command of the server binary (`grant-admin <email>`), with the
    /// instances' settings.
    pub async fn operator_command(&self, args: &[&str]) -> anyhow::Result<String> {
        Ok(self.cluster.lock().await.operator_command(args).await?)
    }

    /// Starts the scenario's faults on the clock that began at `t0`; `churn` switches the SSE
    /// clients' churn when the run has clients.
    pub fn start_faults(
        &self,
        ctx: &RunContext<'_>,
        t0: Instant,
        churn: Option<Arc<watch::Sender<Option<Churn>>>>,
    ) -> tokio::task::JoinHandle<Vec<FaultRecord>> {
        self.mark_t0(t0);
        let targets =
            FaultTargets { cluster: self.cluster.clone(), infra: ctx.infra.clone(), alive: self.alive.clone(), churn };
        tokio::spawn(run_faults(ctx.scenario.faults.clone(), self.strategy.as_str().to_string(), t0, targets))
    }

    /// The sum of each named metric over the live instances' `/metrics`; `None` when none
    /// answered.
    pub async fn metric_totals(&self, names: &[&str]) -> Option<Vec<f64>> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().ok()?;
        let mut totals = vec![0.0; names.len()];
        let mut answered = false;
        for (i, base) in self.bases.iter().enumerate() {
            if !self.alive.get(i).is_some_and(|a| a.load(std::sync::atomic::Ordering::Relaxed)) {
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

    /// The run's clock starts at `t0` (its faults' and deliveries' clock): the timeline counts
    /// from it. Runs that start faults mark it then; the first mark wins.
    pub fn mark_t0(&self, t0: Instant) {
        self.sampler.mark_t0(t0);
    }

    /// Stops the instances (the faults must be done: they hold the cluster while they run);
    /// returns what every process did, second by second.
    pub async fn stop(self) -> anyhow::Result<Timeline> {
        // The sampler holds the cluster too: it ends first.
        let timeline = self.sampler.stop().await;
        let cluster = Arc::try_unwrap(self.cluster)
            .map_err(|_| anyhow::anyhow!("the fault task still holds the cluster"))?
            .into_inner();
        cluster.stop(Duration::from_secs(10)).await;
        Ok(timeline)
    }
}

/// tokio's own setting of a multi-thread runtime's worker threads, read by the server's runtime.
const WORKER_THREADS: &str = "TOKIO_WORKER_THREADS";

/// The environment of every server process of a run: the infrastructure's URLs, a fresh
/// database, a namespace of its own, cheap password hashes, then `extra`, then the
/// scenario's `server_env` (which wins: it is the user's word).
pub fn server_env(ctx: &RunContext<'_>, database_url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let urls = ctx.infra.urls();
    let mut env = vec![
        ("SERVER_DATABASE_URL".to_string(), database_url.to_string()),
        ("SERVER_REDIS_URL".to_string(), urls.redis.clone()),
        // Every node of a RabbitMQ cluster, the first one first.
        ("SERVER_AMQP_URL".to_string(), ctx.infra.amqp_urls().join(",")),
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
///
/// N instances on one machine share its cores: each gets `max(1, cores / N)` tokio worker
/// threads (`TOKIO_WORKER_THREADS`, unless `server_env` sets it), as N machines of this size
/// would share the load, rather than N runtimes of `cores` threads each stealing work from
/// one another on the same cores. Measured with scenarios/profile/notify-steady.toml
/// (rabbitmq, 3 instances, 2 cores): p99 21.1 -> 13.1 ms and 2.4 points less CPU for the
/// servers at the same 834 notifications/s; the capacity ceiling did not move beyond one
/// run's noise (reports/README.md).
pub async fn start_cluster(
    ctx: &RunContext<'_>,
    strategy: Strategy,
    mut env: Vec<(String, String)>,
) -> anyhow::Result<Cluster> {
    let instances = ctx.scenario.cluster.instances as usize;
    if !env.iter().any(|(k, _)| k == WORKER_THREADS) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        env.insert(0, (WORKER_THREADS.to_string(), (cores / instances).max(1).to_string()));
    }
    Ok(Cluster::start(ClusterSpec {
        server_bin: ctx.server_bin.clone(),
        instances,
        env,
        log_dir: ctx.report_dir.join("logs").join(strategy.as_str()),
        ready_timeout: Duration::from_secs(60),
    })
    .await?)
}
