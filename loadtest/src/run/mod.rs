//! Running a scenario: provision the infrastructure once, run each strategy in turn under
//! the same load and faults, judge the thresholds, write the reports.

pub mod api;
pub mod baseline;
pub mod booking;
pub mod capacity;
pub mod chat;
pub mod claim;
pub mod clients;
pub mod cpu;
pub mod driver;
pub mod embed;
pub mod fanout;
pub mod faults;
pub mod jobs;
pub mod ramp;
pub mod rig;
pub mod stage;
pub mod timeline;
pub mod truth;
pub mod update_baseline;
pub mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::cluster::Targets;
use crate::infra::{Infra, ProvisionOptions};
use crate::report::{self, FaultRecord, ReportPaths, RunReport, StrategyResult};
use crate::scenario::Runner;
use crate::scenario::{CapacitySection, Delivery, Plan, Scenario, Strategy, Workload};

/// What one strategy's run produced.
#[derive(Debug)]
pub struct StrategyRun {
    pub result: StrategyResult,
    pub faults: Vec<FaultRecord>,
}

/// Shared by the strategy runs of one scenario run.
pub struct RunContext<'a> {
    pub scenario: &'a Scenario,
    pub infra: Arc<Infra>,
    pub server_bin: PathBuf,
    pub report_dir: PathBuf,
    /// The external runner's deployment; `None`: the harness runs the instances as processes.
    pub targets: Option<Arc<Targets>>,
    /// What `--metrics-listen` serves while the run goes.
    pub live: Arc<crate::live::Live>,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario: PathBuf,
    pub provision: ProvisionOptions,
    pub server_bin: PathBuf,
    pub reports_dir: PathBuf,
    /// Only these strategies (default: the scenario's).
    pub strategies: Option<Vec<Strategy>>,
    /// The command line, recorded in the report.
    pub command: String,
    /// A targets file: run against that deployment (the external runner) instead of starting
    /// processes. The scenario's own `[cluster] targets` when `None`.
    pub targets: Option<PathBuf>,
    /// Runs of every strategy (each with fresh instances and database), in rounds: strategy
    /// after strategy, then again. 1: one run.
    pub repeat: u32,
    /// Serve the harness's own figures in the Prometheus format here while the run goes.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// The external runner's targets, checked against the scenario before anything starts:
/// `--targets`, else the scenario's `[cluster] targets` (relative to the scenario file).
pub(crate) fn external_targets(
    scenario_path: &std::path::Path,
    targets: Option<&PathBuf>,
    scenario: &Scenario,
    external_urls: &std::collections::HashMap<crate::infra::ServiceKind, String>,
) -> anyhow::Result<Option<Arc<Targets>>> {
    let path = match (targets, &scenario.cluster.targets) {
        (Some(path), _) => path.clone(),
        (None, Some(relative)) => scenario_path.parent().unwrap_or(std::path::Path::new(".")).join(relative),
        (None, None) if scenario.cluster.runner == Runner::External => anyhow::bail!(
            "{}: cluster.runner is \"external\" but no targets file is named: set [cluster] targets = \"FILE\" or pass \
             --targets FILE",
            scenario_path.display()
        ),
        (None, None) => return Ok(None),
    };
    let targets = Targets::load(&path)?;
    targets.check(scenario, external_urls)?;
    Ok(Some(Arc::new(targets)))
}

/// Provisions what a run uses: the containers, or with `targets` nothing (the deployment's
/// own services, whose URLs the targets file or `LOADTEST_*_URL` give).
pub(crate) async fn provision(opts: &ProvisionOptions, targets: Option<&Targets>) -> anyhow::Result<Arc<Infra>> {
    let mut provision = opts.clone();
    if let Some(targets) = targets {
        provision.images = crate::infra::ImageSetChoice::External;
        provision.external_urls.extend(targets.services.iter().map(|(k, v)| (*k, v.clone())));
        eprintln!("external runner: {} instance(s) from {}", targets.instances.len(), targets.path.display());
    }
    let infra = Arc::new(Infra::provision(&provision).await?);
    let nodes = infra.rabbitmq_nodes().len();
    let cluster = if nodes > 1 { format!(", RabbitMQ cluster of {nodes} nodes") } else { String::new() };
    eprintln!("infrastructure up (image set {}{cluster})", infra.image_set());
    Ok(infra)
}

/// Runs the scenario and writes its reports; the report says whether it passed.
pub async fn run(opts: &RunOptions) -> anyhow::Result<(RunReport, ReportPaths)> {
    let mut scenario = Scenario::load(&opts.scenario)?;
    if let Some(only) = &opts.strategies {
        scenario.workload.retain(only);
    }
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let cpu = cpu::CpuSampler::start();
    let report_dir = opts.reports_dir.join(format!("{}-{}", scenario.name, started_at.format("%Y%m%d-%H%M%S")));
    std::fs::create_dir_all(&report_dir)?;
    eprintln!("scenario {} ({}), reports in {}", scenario.name, scenario.kind().as_str(), report_dir.display());
    let targets = external_targets(&opts.scenario, opts.targets.as_ref(), &scenario, &opts.provision.external_urls)?;
    let live = crate::live::Live::new(&scenario.name);
    // Listening before anything slow starts: a busy port fails the run at once.
    let metrics = match opts.metrics_listen {
        Some(addr) => Some(crate::live::serve(addr, live.clone()).await?.1),
        None => None,
    };
    let mut provision_opts = opts.provision.clone();
    provision_opts.rabbitmq_nodes = scenario.cluster.rabbitmq_nodes;
    let infra = provision(&provision_opts, targets.as_deref()).await?;
    let ctx = RunContext {
        scenario: &scenario,
        infra: infra.clone(),
        server_bin: opts.server_bin.clone(),
        report_dir: report_dir.clone(),
        targets: targets.clone(),
        live: live.clone(),
    };

    // The broker's own fan-out rate, before any strategy runs, as the yardstick of the report.
    let brokered = |strategies: &[Delivery]| strategies.iter().any(|s| s.uses_rabbitmq());
    let broker_yardstick = match &scenario.workload {
        Workload::Fanout(plan) => brokered(&plan.strategies),
        Workload::Capacity(plan) => brokered(&plan.strategies),
        _ => false,
    };
    let baseline = if broker_yardstick {
        let consumers = u64::from(scenario.cluster.instances);
        match baseline::raw_fanout(&infra.urls().amqp, 20_000, consumers, std::time::Duration::from_secs(60)).await {
            Ok(raw) => {
                eprintln!(
                    "raw broker fan-out: {:.0} deliveries/s ({} messages x {} consumers, confirms on)",
                    raw.deliveries_per_s, raw.messages, raw.consumers
                );
                Some(raw)
            }
            Err(e) => {
                eprintln!("raw broker fan-out not measured: {e:#}");
                None
            }
        }
    } else {
        None
    };
    // The database's own single-row UPDATE rate, as the yardstick of claim throughput.
    let update_baseline = if let Workload::Claim(Plan { section: claim, .. }) = &scenario.workload {
        let workers = claim.workers_per_instance * scenario.cluster.instances;
        let url = infra.fresh_database("baseline").await?;
        match update_baseline::raw_updates(&url, 10_000, workers, 5.0).await {
            Ok(raw) => {
                eprintln!("raw single-row UPDATE rate: {:.0}/s ({} connections)", raw.updates_per_s, raw.connections);
                Some(raw)
            }
            Err(e) => {
                eprintln!("raw UPDATE rate not measured: {e:#}");
                None
            }
        }
    } else {
        None
    };
    // The yardstick of a capacity ramp: the same pipeline on one instance with `local`
    // delivery (nothing crosses an instance, nothing is lost), the ceiling that each
    // strategy's sustained rate is a share of. Not for a deployment the harness did not start.
    // Repeated runs measure it again in every round, before the strategies: a round's shares
    // are of its own yardstick, so that the machine's drift between rounds moves both alike.
    let yardstick_plan = match &scenario.workload {
        Workload::Capacity(p) if p.section.ramp.yardstick != Some(false) && targets.is_none() => Some(p),
        _ => None,
    };
    let mut yardsticks_measured: Vec<Option<StrategyResult>> = Vec::new();
    // Each runner gets its own kind's section and strategies: nothing to unwrap at run time.
    // Repeated runs go in rounds (every strategy, then again), so that a machine that slows
    // down during the run slows every strategy alike.
    let repeat = opts.repeat.max(1);
    let mut rounds: Vec<Vec<StrategyResult>> = Vec::new();
    let mut faults = Vec::new();
    for round in 1..=repeat {
        if repeat > 1 {
            eprintln!("round {round} of {repeat}");
        }
        live.round(round);
        let yardstick = match yardstick_plan {
            Some(p) => {
                let dir = if round == 1 {
                    report_dir.join("yardstick")
                } else {
                    report_dir.join(format!("yardstick-{round}"))
                };
                measure_yardstick(&scenario, &infra, opts, dir, &live, p).await
            }
            None => None,
        };
        let runs = match &scenario.workload {
            Workload::Fanout(p) => each(&p.strategies, |s| fanout::run(&ctx, &p.section.load, s)).await?,
            Workload::Capacity(p) => {
                each(&p.strategies, |s| capacity::run(&ctx, &p.section.load, &p.section.ramp, s)).await?
            }
            Workload::Claim(p) => each(&p.strategies, |s| claim::run(&ctx, &p.section, s)).await?,
            Workload::Booking(p) => each(&p.strategies, |s| booking::run(&ctx, &p.section, s)).await?,
            Workload::Jobs(p) => each(&p.strategies, |s| jobs::run(&ctx, &p.section, s)).await?,
            Workload::Api(p) => each(&p.strategies, |s| api::run(&ctx, &p.section, s)).await?,
            Workload::Chat(p) => each(&p.strategies, |s| chat::run(&ctx, &p.section, s)).await?,
            Workload::Embed(p) => each(&p.strategies, |s| embed::run(&ctx, &p.section, s)).await?,
        };
        let mut results = Vec::new();
        let (warmup, duration, _) = scenario.timeline();
        for run in runs {
            let mut result = run.result;
            result.recoveries = report::recovery::of(&result, &run.faults, warmup, warmup + duration);
            if !result.recoveries.is_empty() {
                let each: Vec<String> = result
                    .recoveries
                    .iter()
                    .map(|x| match x.recovered_after_s {
                        Some(s) => format!("{} at {} s: {s} s", x.fault, x.at_s),
                        None => format!("{} at {} s: not before the load ended", x.fault, x.at_s),
                    })
                    .collect();
                result.notes.push(format!("back at the pre-fault deliveries and p99 after {}", each.join("; ")));
            }
            if let Some(raw) = &baseline {
                // A ramp's figure of merit is its sustained rate, not the average over its steps.
                let (what, rate) = match &result.sustained {
                    Some(s) => ("sustained", s.delivered_per_s),
                    None => ("delivered", result.throughput_per_s),
                };
                result.notes.push(format!(
                    "{what} {rate:.0}/s = {:.1}% of the broker's raw fan-out rate ({:.0}/s)",
                    100.0 * rate / raw.deliveries_per_s.max(f64::EPSILON),
                    raw.deliveries_per_s
                ));
            }
            if let Some(y) = &yardstick {
                ramp::against_yardstick(&mut result, y);
            }
            if let Some(raw) = &update_baseline {
                result.notes.push(format!(
                    "{:.0} posts/s = {:.1}% of the database's raw single-row UPDATE rate ({:.0}/s, {} connections)",
                    result.throughput_per_s,
                    100.0 * result.throughput_per_s / raw.updates_per_s.max(f64::EPSILON),
                    raw.updates_per_s,
                    raw.connections
                ));
            }
            results.push(result);
            // Faults of later rounds are named by their round: `rabbitmq#2`.
            faults.extend(run.faults.into_iter().map(|mut f| {
                if round > 1 {
                    f.strategy = format!("{}#{round}", f.strategy);
                }
                f
            }));
        }
        rounds.push(results);
        yardsticks_measured.push(yardstick);
    }
    // Every round is judged; a limit that fails in any round fails the run and its strategy.
    let mut thresholds = Vec::new();
    for (k, round) in rounds.iter_mut().enumerate() {
        let verdicts = report::thresholds::evaluate(&scenario, round);
        thresholds.extend(verdicts.into_iter().map(|mut v| {
            if k > 0 {
                v.name = format!("{}#{}", v.name, k + 1);
            }
            v
        }));
    }
    let mut results = rounds[0].clone();
    for r in &mut results {
        r.passed = thresholds.iter().filter(|t| t.strategy == r.strategy).all(|t| t.passed);
    }
    let passed = thresholds.iter().all(|t| t.passed);
    let kind = scenario.kind();
    let (repeats, spread) =
        if rounds.len() > 1 { (rounds.clone(), report::spread::of(kind, &rounds)) } else { (Vec::new(), Vec::new()) };
    let report = RunReport {
        scenario: scenario.name.clone(),
        kind: scenario.kind(),
        instances: scenario.cluster.instances,
        duration_s: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        passed,
        started_at: started_at.to_rfc3339(),
        command: opts.command.clone(),
        image_set: infra.image_set().to_string(),
        faults,
        thresholds,
        results,
        baseline: {
            let mut yardsticks = serde_json::Map::new();
            if let Some(raw) = baseline {
                yardsticks.insert("raw_broker_fanout".into(), serde_json::json!(raw));
            }
            if let Some(raw) = update_baseline {
                yardsticks.insert("raw_single_row_updates".into(), serde_json::json!(raw));
            }
            let found = |one: &StrategyResult| one.sustained.as_ref().is_some_and(|s| ramp::limit_found(&one.ramp, s));
            if let Some(Some(one)) = yardsticks_measured.first() {
                let mut entry = serde_json::json!({
                    "instances": 1,
                    "delivery": "local",
                    "sustained": one.sustained,
                    "limit_found": found(one),
                    "ramp": one.ramp,
                    "note": one.notes.first(),
                });
                if yardsticks_measured.len() > 1 {
                    // Round by round (`null`: not measured that round).
                    entry["rounds"] = yardsticks_measured
                        .iter()
                        .map(|y| {
                            y.as_ref().map(|y| serde_json::json!({"sustained": y.sustained, "limit_found": found(y)}))
                        })
                        .collect();
                }
                yardsticks.insert("single_instance_local".into(), entry);
            }
            (!yardsticks.is_empty()).then_some(serde_json::Value::Object(yardsticks))
        },
        targets: targets.as_ref().map(|t| t.path.display().to_string()),
        repeats,
        spread,
        generators: vec![report::Generator { name: "harness".into(), cpu: cpu.stop().await }],
    };
    let paths = report::write(&report_dir, &report)?;
    if let Some(task) = metrics {
        task.abort();
    }
    drop(ctx);
    drop(infra);
    Ok((report, paths))
}

/// The single-instance yardstick of a capacity ramp: the scenario's ramp on one instance with
/// `local` delivery. `None` (and why on stderr) when it could not be measured.
async fn measure_yardstick(
    scenario: &Scenario,
    infra: &Arc<Infra>,
    opts: &RunOptions,
    report_dir: PathBuf,
    live: &Arc<crate::live::Live>,
    plan: &Plan<CapacitySection>,
) -> Option<StrategyResult> {
    let mut single = scenario.clone();
    single.cluster.instances = 1;
    // The same stream logic as the brokered strategies: on one instance, a live notification
    // that overtakes another (commits finish out of order under load) is repaired from the
    // database, as theirs are; only the broker is missing.
    single.cluster.server_env.insert("SERVER_NOTIFY_GAP_REPAIR".into(), "database".into());
    let one = RunContext {
        scenario: &single,
        infra: infra.clone(),
        server_bin: opts.server_bin.clone(),
        report_dir,
        targets: None,
        live: live.clone(),
    };
    eprintln!("yardstick: the same ramp on one instance with local delivery");
    match capacity::run(&one, &plan.section.load, &plan.section.ramp, Delivery::Local).await {
        Ok(run) => Some(run.result),
        Err(e) => {
            eprintln!("yardstick not measured: {e:#}");
            None
        }
    }
}

/// Runs `run` for each strategy, one after the other: each strategy gets the machine to itself.
async fn each<S: Copy, Fut>(strategies: &[S], run: impl Fn(S) -> Fut) -> anyhow::Result<Vec<StrategyRun>>
where
    Fut: Future<Output = anyhow::Result<StrategyRun>>,
{
    let mut runs = Vec::with_capacity(strategies.len());
    for &s in strategies {
        runs.push(run(s).await?);
    }
    Ok(runs)
}
