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

pub async fn run_faults(
    faults: Vec<Fault>,
    strategy: String,
    t0: Instant,
    cluster: Arc<Mutex<Cluster>>,
    infra: Arc<Infra>,
    alive: Arc<Vec<AtomicBool>>,
) -> Vec<FaultRecord> {
    let mut records = Vec::new();
    for (at_s, action, target) in schedule(&faults) {
        tokio::time::sleep_until((t0 + Duration::from_secs_f64(at_s)).into()).await;
        let started = t0.elapsed().as_secs_f64();
        let outcome = match apply(action, target, &cluster, &infra, &alive).await {
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
        records.push(FaultRecord {
            at_s: (started * 10.0).round() / 10.0,
            action: action.as_str().to_string(),
            target: target_name(target),
            strategy: strategy.clone(),
            outcome,
        });
    }
    records
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
