//! Faults at their scheduled times: SIGKILL/restart and SIGSTOP/SIGCONT of instances,
//! stop/start/pause/unpause/restart of service containers. Each undo (`duration_s`) is
//! scheduled as its own step. Every step is recorded with its real time and outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::cluster::Cluster;
use crate::infra::{Infra, ServiceFault};
use crate::report::FaultRecord;
use crate::scenario::{Fault, FaultAction, FaultTarget};

/// The steps of `faults`, undo steps included, in time order.
pub fn schedule(faults: &[Fault]) -> Vec<(f64, FaultAction, FaultTarget)> {
    let mut steps = Vec::new();
    for f in faults {
        steps.push((f.at_s, f.action, f.target));
        if let (Some(d), Some(undo)) = (f.duration_s, f.action.undo()) {
            steps.push((f.at_s + d, undo, f.target));
        }
    }
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    steps
}

/// Runs the steps of `faults` at their times. Each target has its own timeline, run
/// concurrently with the others: a step that takes seconds (a broker that boots for 4 s after
/// its start) delays later steps on its own target only, not a pause of an instance that the
/// scenario set for the same moment. Steps on one target keep their order (the scenario
/// forbids overlapping faults on one target).
pub async fn run_faults(
    faults: Vec<Fault>,
    strategy: String,
    t0: Instant,
    cluster: Arc<Mutex<Cluster>>,
    infra: Arc<Infra>,
    alive: Arc<Vec<AtomicBool>>,
) -> Vec<FaultRecord> {
    let mut timelines: Vec<(FaultTarget, Vec<(f64, FaultAction)>)> = Vec::new();
    for (at_s, action, target) in schedule(&faults) {
        match timelines.iter_mut().find(|(t, _)| *t == target) {
            Some((_, steps)) => steps.push((at_s, action)),
            None => timelines.push((target, vec![(at_s, action)])),
        }
    }
    let runs = timelines.into_iter().map(|(target, steps)| {
        let (strategy, cluster, infra, alive) = (&strategy, &cluster, &infra, &alive);
        async move {
            let mut records = Vec::new();
            for (at_s, action) in steps {
                tokio::time::sleep_until((t0 + Duration::from_secs_f64(at_s)).into()).await;
                records.push(step(strategy, t0, action, target, cluster, infra, alive).await);
            }
            records
        }
    });
    let mut records: Vec<FaultRecord> = futures::future::join_all(runs).await.into_iter().flatten().collect();
    records.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    records
}

async fn step(
    strategy: &str,
    t0: Instant,
    action: FaultAction,
    target: FaultTarget,
    cluster: &Mutex<Cluster>,
    infra: &Infra,
    alive: &[AtomicBool],
) -> FaultRecord {
    let started = t0.elapsed().as_secs_f64();
    let outcome = match apply(action, target, cluster, infra, alive).await {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            // The whole error (with the instance's log tail) goes to the console; the report
            // keeps its first line.
            eprintln!("[{strategy}] fault {} {} failed:\n{e:#}", action.as_str(), target_name(target));
            let first = format!("{e:#}").lines().next().unwrap_or_default().chars().take(240).collect::<String>();
            format!("failed: {first}")
        }
    };
    eprintln!("[{strategy}] {started:>5.1}s  fault {} {}: {outcome}", action.as_str(), target_name(target));
    FaultRecord {
        at_s: (started * 10.0).round() / 10.0,
        action: action.as_str().to_string(),
        target: target_name(target),
        strategy: strategy.to_string(),
        outcome,
    }
}

fn target_name(target: FaultTarget) -> String {
    match target {
        FaultTarget::Instance(n) => format!("instance:{n}"),
        FaultTarget::Service(kind) => kind.name().to_string(),
    }
}

async fn apply(
    action: FaultAction,
    target: FaultTarget,
    cluster: &Mutex<Cluster>,
    infra: &Infra,
    alive: &[AtomicBool],
) -> anyhow::Result<()> {
    if let Some(n) = target.instance() {
        let index = n as usize;
        let flag = alive.get(index - 1).ok_or_else(|| anyhow::anyhow!("no instance {n}"))?;
        let mut cluster = cluster.lock().await;
        match action {
            FaultAction::KillInstance => {
                flag.store(false, Ordering::Relaxed);
                cluster.kill(index).await?;
            }
            FaultAction::RestartInstance => {
                cluster.restart(index).await?;
                flag.store(true, Ordering::Relaxed);
            }
            FaultAction::PauseInstance => {
                // Marked dead first: the driver stops sending it requests that would hang.
                flag.store(false, Ordering::Relaxed);
                cluster.pause(index)?;
            }
            FaultAction::ResumeInstance => {
                cluster.resume(index)?;
                flag.store(true, Ordering::Relaxed);
            }
            other => anyhow::bail!("{} does not act on an instance", other.as_str()),
        }
        return Ok(());
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
    infra.service(kind).apply(fault).await?;
    Ok(())
}
