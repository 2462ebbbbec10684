//! Faults at their scheduled times: SIGKILL/restart and SIGSTOP/SIGCONT of instances,
//! stop/start/pause/unpause/restart of service containers, and churn of the SSE clients. Each
//! undo (`duration_s`) is scheduled as its own step. Every step is recorded with its real time
//! and outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, watch};

use crate::cluster::{AdapterRun, Cluster, ClusterError};
use crate::infra::{Infra, ServiceFault};
use crate::report::FaultRecord;
use crate::scenario::{Churn, Fault, FaultAction, FaultTarget};

/// One step of a fault timeline: when, what, on what, and for a churn, how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub at_s: f64,
    pub action: FaultAction,
    pub target: FaultTarget,
    pub churn: Option<Churn>,
}

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
        steps.push(Step { at_s: f.at_s, action: f.action, target: f.target, churn: f.churn() });
        if let (Some(d), Some(undo)) = (f.duration_s, f.action.undo()) {
            steps.push(Step { at_s: f.at_s + d, action: undo, target: f.target, churn: None });
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
            for s in steps {
                tokio::time::sleep_until((t0 + Duration::from_secs_f64(s.at_s)).into()).await;
                records.push(step(strategy, t0, s, targets).await);
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
    }
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
