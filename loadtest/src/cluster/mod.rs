//! The server instances of a run, behind one type: processes the harness starts itself
//! ([`process`], the default), or a deployment it did not start, reached by URL and
//! controlled through the command adapters of a targets file ([`external`], [`targets`]).

mod external;
mod process;
pub mod targets;

use std::path::PathBuf;
use std::time::Duration;

pub use external::{AdapterRun, Adapters, External};
pub use process::{ClusterSpec, Processes, default_server_bin, wait_stopped};
pub use targets::{Targets, TargetsError};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "the server binary {0} does not exist: build it with `cargo build --release -p server` (scripts/loadtest does), or pass --server-bin"
    )]
    NoBinary(PathBuf),
    #[error("instance {index} did not start: {reason}\n--- last lines of {log} ---\n{tail}")]
    StartFailed { index: usize, reason: String, log: String, tail: String },
    #[error("instance {index}: {action} failed: {cause}")]
    Signal { index: usize, action: &'static str, cause: String },
    #[error("no instance {0}")]
    NoInstance(usize),
    #[error("`server {command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("the {action} adapter `{command}` failed ({status}): {output}")]
    Adapter { action: String, command: String, status: String, output: String },
    #[error("{}: no adapter `{key}` under [adapters]", file.display())]
    MissingAdapter { key: String, file: PathBuf },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The instances of one strategy's run.
#[derive(Debug)]
pub enum Cluster {
    Process(Processes),
    External(External),
}

impl Cluster {
    /// Starts the server processes (the process runner).
    pub async fn start(spec: ClusterSpec) -> Result<Cluster, ClusterError> {
        Processes::start(spec).await.map(Cluster::Process)
    }

    /// Base URLs, 1-based order.
    pub fn urls(&self) -> Vec<String> {
        match self {
            Cluster::Process(p) => p.urls(),
            Cluster::External(e) => e.urls(),
        }
    }

    /// The process id of each instance the harness runs (`None`: down, or not ours to see).
    pub fn pids(&self) -> Vec<Option<u32>> {
        match self {
            Cluster::Process(p) => p.pids(),
            Cluster::External(e) => vec![None; e.urls().len()],
        }
    }

    pub fn len(&self) -> usize {
        self.urls().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether instance `index` (1-based) is up, as far as the harness's own faults go.
    pub fn is_up(&self, index: usize) -> bool {
        match self {
            Cluster::Process(p) => p.is_up(index),
            Cluster::External(e) => e.is_up(index),
        }
    }

    /// SIGKILL, or the `kill-instance` adapter; returns what the adapter did.
    pub async fn kill(&mut self, index: usize) -> Result<Option<AdapterRun>, ClusterError> {
        match self {
            Cluster::Process(p) => p.kill(index).await.map(|()| None),
            Cluster::External(e) => e.kill(index).await.map(Some),
        }
    }

    pub async fn restart(&mut self, index: usize) -> Result<Option<AdapterRun>, ClusterError> {
        match self {
            Cluster::Process(p) => p.restart(index).await.map(|()| None),
            Cluster::External(e) => e.restart(index).await.map(Some),
        }
    }

    /// One step of a rolling deploy on instance `index`: SIGTERM, its exit (within `within`),
    /// a new start and `/readyz`; or the `rolling-restart` adapter with `{index}`, then
    /// `/readyz`; `exited` is called once the instance is gone (for the adapter: before it
    /// runs). Returns how long the exit took (processes) or what the adapter did.
    pub async fn redeploy(
        &mut self,
        index: usize,
        within: Duration,
        exited: &(dyn Fn() + Send + Sync),
    ) -> Result<(Option<Duration>, Option<AdapterRun>), ClusterError> {
        match self {
            Cluster::Process(p) => p.redeploy(index, within, exited).await.map(|took| (Some(took), None)),
            Cluster::External(e) => {
                exited();
                e.redeploy(index).await.map(|run| (None, Some(run)))
            }
        }
    }

    pub async fn pause(&mut self, index: usize) -> Result<Option<AdapterRun>, ClusterError> {
        match self {
            Cluster::Process(p) => p.pause(index).map(|()| None),
            Cluster::External(e) => e.pause(index).await.map(Some),
        }
    }

    /// Arms instance `index`'s pause point (see [`process::wait_stopped`] for the rest);
    /// returns its pid. Only for instances the harness runs: an external deployment's
    /// processes are not its to signal.
    pub fn arm_pause_point(&mut self, index: usize) -> Result<u32, ClusterError> {
        match self {
            Cluster::Process(p) => p.arm_pause_point(index),
            Cluster::External(_) => Err(ClusterError::Signal {
                index,
                action: "pause at a point",
                cause: "a pause point is armed by a signal to a process the harness started; against an external \
                        deployment, remove `point` (the pause-instance adapter freezes it where it is)"
                    .to_string(),
            }),
        }
    }

    pub async fn resume(&mut self, index: usize) -> Result<Option<AdapterRun>, ClusterError> {
        match self {
            Cluster::Process(p) => p.resume(index).map(|()| None),
            Cluster::External(e) => e.resume(index).await.map(Some),
        }
    }

    /// What runs an external deployment's adapters (its service faults, run without holding
    /// the instances); `None` for the process runner, whose services are the harness's own
    /// containers.
    pub fn adapters(&self) -> Option<Adapters> {
        match self {
            Cluster::Process(_) => None,
            Cluster::External(e) => Some(e.adapters()),
        }
    }

    /// An operator's one-off command of the server binary (`grant-admin <email>`).
    pub async fn operator_command(&self, args: &[&str]) -> Result<String, ClusterError> {
        match self {
            Cluster::Process(p) => p.operator_command(args).await,
            Cluster::External(e) => e.operator_command(args).await,
        }
    }

    /// Stops the processes (SIGTERM, SIGKILL after `grace`), or runs the `teardown` adapter.
    pub async fn stop(self, grace: Duration) {
        match self {
            Cluster::Process(p) => p.stop(grace).await,
            Cluster::External(e) => e.stop().await,
        }
    }
}
