//! Faults at their scheduled times: SIGKILL/restart and SIGSTOP/SIGCONT of instances, a
//! rolling deploy (SIGTERM, exit, start, ready: each instance in turn),
//! stop/start/pause/unpause/restart of service containers, and churn of the SSE clients. Each
//! undo (`duration_s`) is scheduled as its own step. Every step is recorded with its real time
//! and outcome; a rolling deploy, once per instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, watch};

use crate::cluster::{AdapterRun, Cluster, ClusterError};
use crate::infra::{Infra, ServiceFault};
use crate::report::FaultRecord;
use crate::scenario::{Churn, Fault, FaultAction, FaultTarget, PausePoint};

/// One step of a fault timeline: when, what, on what, and for a churn, how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub at_s: f64,
    pub action: FaultAction,
    pub target: FaultTarget,
    pub churn: Option<Churn>,
    /// `rolling-restart`: seconds between two instances.
    pub pause_s: f64,
    /// `pause-instance`: where the instance stops itself instead of at once.
    pub point: Option<PausePoint>,
}

/// How long an armed pause point may take to be reached.
pub const POINT_WITHIN: Duration = Duration::from_secs(15);

/// How long an instance may take to exit after SIGTERM in a rolling deploy before it is
/// killed (and the step counted as failed): the server's grace for in-flight requests (10 s by
/// default) and the same again for its workers, with room to spare.
pub const EXIT_WITHIN: Duration = Duration::from_secs(30);

/// What faults act on in one strategy's run.
pub struct FaultTargets {
    pub cluster: Arc<Mutex<Cluster>>,
    pub infra: Arc<Infra>,
    /// Cleared while an instance is dead or frozen: clients and the driver avoid it.
    pub alive: Arc<Vec<AtomicBool>>,
    /// The SSE clients' churn switch; `None` in runs without clients (validation refuses a
    /// churn there).
    pub churn: Option<Arc<watch::Sender<Option<Churn>>>>,
}

/// The steps of `faults`, undo steps included, in time order.
pub fn schedule(faults: &[Fault]) -> Vec<Step> {
    let mut steps = Vec::new();
    for f in faults {
        let pause_s = f.pause_s.unwrap_or(crate::scenario::DEFAULT_ROLLING_PAUSE_S);
        steps.push(Step {
            at_s: f.at_s,
            action: f.action,
            target: f.target,
            churn: f.churn(),
            pause_s,
            point: f.point,
        });
        if let (Some(d), Some(undo)) = (f.duration_s, f.action.undo()) {
            steps.push(Step { at_s: f.at_s + d, action: undo, target: f.target, churn: None, pause_s, point: None });
        }
    }
    steps.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    steps
}

/// Runs the steps of `faults` at their times. Each target has its own timeline, run
/// concurrently with the others: a step that takes seconds (a broker that boots for 4 s after
/// its start) delays later steps on its own target only, not a pause of an instance that the
/// scenario set for the same moment. Steps on one target keep their order (the scenario
/// forbids overlapping faults on one target).
pub async fn run_faults(faults: Vec<Fault>, strategy: String, t0: Instant, targets: FaultTargets) -> Vec<FaultRecord> {
    let mut timelines: Vec<(FaultTarget, Vec<Step>)> = Vec::new();
    for step in schedule(&faults) {
        match timelines.iter_mut().find(|(t, _)| *t == step.target) {
            Some((_, steps)) => steps.push(step),
            None => timelines.push((step.target, vec![step])),
        }
    }
    let runs = timelines.into_iter().map(|(_, steps)| {
        let (strategy, targets) = (&strategy, &targets);
        async move {
            let mut records = Vec::new();
            // A pause at a point begins when the point is reached: later steps on the same
            // target (its resume) move by as much.
            let mut shift = Duration::ZERO;
            for s in steps {
                tokio::time::sleep_until((t0 + Duration::from_secs_f64(s.at_s) + shift).into()).await;
                if s.action == FaultAction::RollingRestart {
                    records.extend(rolling(strategy, t0, s, targets).await);
                } else if let Some(point) = s.point {
                    let (record, waited) = pause_at_point(strategy, t0, s, point, targets).await;
                    shift += waited;
                    records.push(record);
                } else {
                    records.push(step(strategy, t0, s, targets).await);
                }
            }
            records
        }
    });
    let mut records: Vec<FaultRecord> = futures::future::join_all(runs).await.into_iter().flatten().collect();
    records.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    records
}

async fn step(strategy: &str, t0: Instant, s: Step, targets: &FaultTargets) -> FaultRecord {
    let (action, target) = (s.action, s.target);
    let started = t0.elapsed().as_secs_f64();
    let mut adapter = None;
    let outcome = match apply(s, targets).await {
        Ok(run) => {
            adapter = run;
            "ok".to_string()
        }
        Err(e) => {
            if let Some(ClusterError::Adapter { command, status, output, .. }) = e.downcast_ref::<ClusterError>() {
                adapter = Some(AdapterRun { command: command.clone(), status: status.clone(), output: output.clone() });
            }
            // The whole error (with the instance's log tail) goes to the console; the report
            // keeps its first line.
            eprintln!("[{strategy}] fault {} {} failed:\n{e:#}", action.as_str(), target);
            let first = format!("{e:#}").lines().next().unwrap_or_default().chars().take(240).collect::<String>();
            format!("failed: {first}")
        }
    };
    eprintln!("[{strategy}] {started:>5.1}s  fault {} {}: {outcome}", action.as_str(), target);
    FaultRecord {
        at_s: (started * 10.0).round() / 10.0,
        action: action.as_str().to_string(),
        target: target.to_string(),
        strategy: strategy.to_string(),
        outcome,
        adapter,
        detail: None,
    }
}

/// A `pause-instance` with a `point`: arms the instance's pause point and waits until it
/// stopped itself there. Returns the record (at the time it stopped) and how long that took.
async fn pause_at_point(
    strategy: &str,
    t0: Instant,
    s: Step,
    point: PausePoint,
    targets: &FaultTargets,
) -> (FaultRecord, Duration) {
    let armed_at = t0.elapsed().as_secs_f64();
    let index = s.target.instance().unwrap_or(0) as usize;
    let result = match targets.alive.get(index.wrapping_sub(1)) {
        Some(flag) => {
            // The wait does not hold the instances: other targets' faults keep their times.
            let armed = targets.cluster.lock().await.arm_pause_point(index);
            let result = match armed {
                Ok(pid) => crate::cluster::wait_stopped(pid, index, POINT_WITHIN).await,
                Err(e) => Err(e),
            };
            // Marked dead once it stopped: the driver stops sending it requests that would hang.
            flag.store(false, Ordering::Relaxed);
            result
        }
        None => Err(ClusterError::NoInstance(index)),
    };
    let (outcome, detail, waited) = match result {
        Ok(waited) => (
            "ok".to_string(),
            Some(format!(
                "stopped itself at {point} {:.2} s after it was armed at {armed_at:.1} s",
                waited.as_secs_f64()
            )),
            waited,
        ),
        Err(e) => {
            eprintln!("[{strategy}] fault pause-instance {} at {point} failed:\n{e:#}", s.target);
            let first = format!("{e:#}").lines().next().unwrap_or_default().chars().take(240).collect::<String>();
            (format!("failed: {first}"), None, POINT_WITHIN)
        }
    };
    let started = t0.elapsed().as_secs_f64();
    eprintln!(
        "[{strategy}] {started:>5.1}s  fault pause-instance {} at {point}: {outcome} {}",
        s.target,
        detail.as_deref().unwrap_or_default()
    );
    let record = FaultRecord {
        at_s: (started * 10.0).round() / 10.0,
        action: s.action.as_str().to_string(),
        target: s.target.to_string(),
        strategy: strategy.to_string(),
        outcome,
        adapter: None,
        detail,
    };
    (record, waited)
}

/// A rolling deploy: each instance in turn gets SIGTERM while clients and the driver still
/// send it work (as a load balancer does until its health check notices: they meet a refused
/// connection and go elsewhere), is marked down once it exited, starts again, answers
/// `/readyz` and is marked up; `pause_s` before the next. One record per instance, at the time
/// its SIGTERM went out.
async fn rolling(strategy: &str, t0: Instant, s: Step, targets: &FaultTargets) -> Vec<FaultRecord> {
    let mut records = Vec::new();
    for index in 1..=targets.alive.len() {
        if index > 1 {
            tokio::time::sleep(Duration::from_secs_f64(s.pause_s)).await;
        }
        let started = t0.elapsed().as_secs_f64();
        let flag = &targets.alive[index - 1];
        let mut cluster = targets.cluster.lock().await;
        let began = Instant::now();
        let result = cluster.redeploy(index, EXIT_WITHIN, &|| flag.store(false, Ordering::Relaxed)).await;
        flag.store(cluster.is_up(index), Ordering::Relaxed);
        drop(cluster);
        let (outcome, adapter, detail) = match result {
            Ok((exit, adapter)) => {
                let exit = exit.map(|d| format!("exited {:.1} s after SIGTERM, ", d.as_secs_f64())).unwrap_or_default();
                let detail = format!("{exit}ready again after {:.1} s", began.elapsed().as_secs_f64());
                ("ok".to_string(), adapter, Some(detail))
            }
            Err(e) => {
                eprintln!("[{strategy}] rolling restart of instance {index} failed:\n{e:#}");
                let first = format!("{e:#}").lines().next().unwrap_or_default().chars().take(240).collect::<String>();
                let adapter = match e {
                    ClusterError::Adapter { command, status, output, .. } => {
                        Some(AdapterRun { command, status, output })
                    }
                    _ => None,
                };
                (format!("failed: {first}"), adapter, None)
            }
        };
        eprintln!(
            "[{strategy}] {started:>5.1}s  fault rolling-restart instance:{index}: {outcome} {}",
            detail.as_deref().unwrap_or_default()
        );
        records.push(FaultRecord {
            at_s: (started * 10.0).round() / 10.0,
            action: s.action.as_str().to_string(),
            target: format!("instance:{index}"),
            strategy: strategy.to_string(),
            outcome,
            adapter,
            detail,
        });
    }
    records
}

/// Injects one step; returns what the adapter did when an external deployment's adapter
/// injected it.
async fn apply(s: Step, targets: &FaultTargets) -> anyhow::Result<Option<AdapterRun>> {
    let (action, target) = (s.action, s.target);
    if target == FaultTarget::Clients {
        let switch = targets.churn.as_ref().ok_or_else(|| anyhow::anyhow!("this run has no SSE clients to churn"))?;
        match action {
            FaultAction::ClientChurn => {
                switch.send_replace(Some(s.churn.ok_or_else(|| anyhow::anyhow!("a churn without its settings"))?));
            }
            FaultAction::EndClientChurn => {
                switch.send_replace(None);
            }
            other => anyhow::bail!("{} does not act on the clients", other.as_str()),
        }
        return Ok(None);
    }
    if let Some(n) = target.instance() {
        let index = n as usize;
        let flag = targets.alive.get(index - 1).ok_or_else(|| anyhow::anyhow!("no instance {n}"))?;
        let mut cluster = targets.cluster.lock().await;
        let run = match action {
            FaultAction::KillInstance => {
                flag.store(false, Ordering::Relaxed);
                cluster.kill(index).await?
            }
            FaultAction::RestartInstance => {
                let run = cluster.restart(index).await?;
                flag.store(true, Ordering::Relaxed);
                run
            }
            FaultAction::PauseInstance => {
                // Marked dead first: the driver stops sending it requests that would hang.
                flag.store(false, Ordering::Relaxed);
                cluster.pause(index).await?
            }
            FaultAction::ResumeInstance => {
                let run = cluster.resume(index).await?;
                flag.store(true, Ordering::Relaxed);
                run
            }
            other => anyhow::bail!("{} does not act on an instance", other.as_str()),
        };
        return Ok(run);
    }
    if let FaultTarget::BrokerNode(n) = target {
        let node = targets.infra.rabbitmq_node(n).ok_or_else(|| {
            anyhow::anyhow!("RabbitMQ node {n} does not exist: the run has {}", targets.infra.rabbitmq_nodes().len())
        })?;
        match action {
            FaultAction::BrokerNodeKill => node.kill().await?,
            FaultAction::BrokerNodeStart => node.start().await?,
            other => anyhow::bail!("{} does not act on a RabbitMQ node", other.as_str()),
        }
        return Ok(None);
    }
    let kind = target.service().ok_or_else(|| anyhow::anyhow!("fault without a target"))?;
    let fault = match action {
        FaultAction::StopService => ServiceFault::Stop,
        FaultAction::StartService => ServiceFault::Start,
        FaultAction::PauseService => ServiceFault::Pause,
        FaultAction::UnpauseService => ServiceFault::Unpause,
        FaultAction::RestartService => ServiceFault::Restart,
        other => anyhow::bail!("{} does not act on a service", other.as_str()),
    };
    // An external deployment's services are its own: its adapter acts on them, without
    // holding the instances (whose faults keep their own times meanwhile).
    let adapters = targets.cluster.lock().await.adapters();
    if let Some(adapters) = adapters {
        return Ok(Some(adapters.service(action.as_str(), kind).await?));
    }
    targets.infra.service(kind).apply(fault).await?;
    Ok(None)
}
