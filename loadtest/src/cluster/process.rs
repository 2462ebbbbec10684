//! The process runner: N processes of the real `server` binary on 127.0.0.1: start, wait until ready, SIGKILL and
//! restart, SIGSTOP/SIGCONT, stop gracefully. Each instance's stdout and stderr go to its own
//! log file, kept in the report folder.
//!
//! The server prints one JSON line `{"event":"listening","addr":...}` on stdout when bound;
//! that is how a port-0 instance's address is learned. A restarted instance binds the same
//! port again (tokio sets SO_REUSEADDR), so clients keep the URL they had.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::ClusterError;

/// How to run the instances.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub server_bin: PathBuf,
    pub instances: usize,
    /// Environment for every instance (`SERVER_*`); the listen address and instance id are
    /// set per instance.
    pub env: Vec<(String, String)>,
    pub log_dir: PathBuf,
    pub ready_timeout: Duration,
}

struct Instance {
    index: usize,
    child: Option<Child>,
    addr: Option<SocketAddr>,
    generation: u32,
    log: PathBuf,
    paused: bool,
}

pub struct Processes {
    spec: ClusterSpec,
    instances: Vec<Instance>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Processes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processes").field("instances", &self.urls()).finish()
    }
}

/// The server binary next to this executable (the usual `target/<profile>/` layout).
pub fn default_server_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("server")))
        .unwrap_or_else(|| PathBuf::from("target/release/server"))
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Processes {
    /// Starts every instance at once and returns when all answer `/readyz` with 200.
    pub async fn start(spec: ClusterSpec) -> Result<Processes, ClusterError> {
        if !spec.server_bin.is_file() {
            return Err(ClusterError::NoBinary(spec.server_bin.clone()));
        }
        std::fs::create_dir_all(&spec.log_dir)?;
        let instances = (1..=spec.instances)
            .map(|index| Instance {
                index,
                child: None,
                addr: None,
                generation: 0,
                log: spec.log_dir.join(format!("instance-{index}.log")),
                paused: false,
            })
            .collect();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().map_err(std::io::Error::other)?;
        let mut cluster = Processes { spec, instances, http };
        let mut starts = Vec::new();
        for i in 0..cluster.instances.len() {
            starts.push(cluster.spawn(i, None).await?);
        }
        for (i, listening) in starts.into_iter().enumerate() {
            cluster.await_ready(i, listening, "/readyz").await?;
        }
        Ok(cluster)
    }

    /// Spawns instance `i` (0-based); returns a receiver of its listening address.
    async fn spawn(
        &mut self,
        i: usize,
        port: Option<u16>,
    ) -> Result<tokio::sync::oneshot::Receiver<SocketAddr>, ClusterError> {
        let inst = &mut self.instances[i];
        inst.generation += 1;
        let mut log = tokio::fs::OpenOptions::new().create(true).append(true).open(&inst.log).await?;
        log.write_all(format!("--- start {} of instance {} ---\n", inst.generation, inst.index).as_bytes()).await?;
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&inst.log)?;
        let mut cmd = Command::new(&self.spec.server_bin);
        cmd.envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .env("SERVER_LISTEN_ADDR", format!("127.0.0.1:{}", port.unwrap_or(0)))
            // A new id per start: the killed process's exclusive queue may outlive it briefly.
            .env("SERVER_INSTANCE_ID", format!("i{}-g{}", inst.index, inst.generation))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(tx) = tx.take_if(|_| line.contains("\"listening\"")) {
                    let addr = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| v["addr"].as_str().and_then(|a| a.parse().ok()));
                    if let Some(addr) = addr {
                        let _ = tx.send(addr);
                    }
                }
                let _ = log.write_all(format!("{line}\n").as_bytes()).await;
            }
        });
        inst.child = Some(child);
        inst.paused = false;
        Ok(rx)
    }

    /// Waits for the listening line, then until `probe` (`/readyz` or `/healthz`) answers 200.
    async fn await_ready(
        &mut self,
        i: usize,
        listening: tokio::sync::oneshot::Receiver<SocketAddr>,
        probe: &str,
    ) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.spec.ready_timeout;
        let failed = |inst: &Instance, reason: String| ClusterError::StartFailed {
            index: inst.index,
            reason,
            log: inst.log.display().to_string(),
            tail: tail(&inst.log, 25),
        };
        let addr = match tokio::time::timeout(self.spec.ready_timeout, listening).await {
            Ok(Ok(addr)) => addr,
            Ok(Err(_)) => {
                // stdout closed without the line: the process exited.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let status = self.instances[i].child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                let reason = format!(
                    "it exited ({}) before listening",
                    status.map_or("unknown status".into(), |s| s.to_string())
                );
                return Err(failed(&self.instances[i], reason));
            }
            Err(_) => {
                return Err(failed(
                    &self.instances[i],
                    format!("no listening line within {:?}", self.spec.ready_timeout),
                ));
            }
        };
        self.instances[i].addr = Some(addr);
        let url = format!("http://{addr}{probe}");
        loop {
            match self.http.get(&url).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if Instant::now() >= deadline => {
                    let body = r.text().await.unwrap_or_default();
                    return Err(failed(&self.instances[i], format!("{probe} still says {body}")));
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(failed(&self.instances[i], format!("/readyz: {e}")));
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Runs an operator's one-off command of the server binary (`grant-admin <email>`, say)
    /// with the instances' settings, as `docker exec` would; returns what it printed.
    pub async fn operator_command(&self, args: &[&str]) -> Result<String, ClusterError> {
        let output = Command::new(&self.spec.server_bin)
            .args(args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .await?;
        if !output.status.success() {
            return Err(ClusterError::Command {
                command: args.join(" "),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// Base URL of instance `index` (1-based), whether or not it is alive now.
    pub fn url(&self, index: usize) -> Option<String> {
        self.instances.get(index.checked_sub(1)?)?.addr.map(|a| format!("http://{a}"))
    }

    /// Base URLs of all instances, 1-based order.
    /// Each instance's process id, `None` while it is down.
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.instances.iter().map(|i| i.child.as_ref().and_then(Child::id)).collect()
    }

    pub fn urls(&self) -> Vec<String> {
        self.instances.iter().filter_map(|i| i.addr.map(|a| format!("http://{a}"))).collect()
    }

    /// Whether instance `index` is running and not stopped.
    pub fn is_up(&self, index: usize) -> bool {
        self.instances.get(index.wrapping_sub(1)).is_some_and(|i| i.child.is_some() && !i.paused)
    }

    fn get(&mut self, index: usize) -> Result<&mut Instance, ClusterError> {
        self.instances.get_mut(index.wrapping_sub(1)).ok_or(ClusterError::NoInstance(index))
    }

    fn signal(pid: u32, sig: &str, index: usize, action: &'static str) -> Result<(), ClusterError> {
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .map_err(|e| ClusterError::Signal { index, action, cause: e.to_string() })?;
        if status.success() {
            Ok(())
        } else {
            Err(ClusterError::Signal { index, action, cause: format!("kill -{sig} {pid}: {status}") })
        }
    }

    /// SIGKILL: no graceful shutdown, no goodbye to the broker.
    pub async fn kill(&mut self, index: usize) -> Result<(), ClusterError> {
        let inst = self.get(index)?;
        if let Some(mut child) = inst.child.take() {
            child.start_kill()?;
            let _ = child.wait().await;
        }
        inst.paused = false;
        Ok(())
    }

    /// Starts a killed instance again on its old port and waits until it serves HTTP
    /// (`/healthz`): during a fault its dependencies may be down on purpose, so `/readyz`
    /// is not required, only reported by the instance itself.
    pub async fn restart(&mut self, index: usize) -> Result<(), ClusterError> {
        let i = index.checked_sub(1).filter(|i| *i < self.instances.len()).ok_or(ClusterError::NoInstance(index))?;
        if self.instances[i].child.is_some() {
            self.kill(index).await?;
        }
        let port = self.instances[i].addr.map(|a| a.port());
        let listening = self.spawn(i, port).await?;
        self.await_ready(i, listening, "/healthz").await
    }

    /// One step of a rolling deploy: SIGTERM, then waits up to `within` for the process to
    /// exit by itself (SIGKILL after, and an error that says so), starts it again on its old
    /// port and waits until `/readyz` answers 200; `exited` is called between the exit and
    /// the new start. Returns how long the exit took.
    pub async fn redeploy(
        &mut self,
        index: usize,
        within: Duration,
        exited: &(dyn Fn() + Send + Sync),
    ) -> Result<Duration, ClusterError> {
        let inst = self.get(index)?;
        let Some(mut child) = inst.child.take() else { return Err(ClusterError::NoInstance(index)) };
        let started = Instant::now();
        if let Some(pid) = child.id() {
            Self::signal(pid, "TERM", index, "terminate")?;
        }
        let status = tokio::time::timeout(within, child.wait()).await;
        let took = started.elapsed();
        exited();
        match status {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => {
                return Err(ClusterError::Signal {
                    index,
                    action: "terminate",
                    cause: format!("it exited with {status} after SIGTERM, not 0"),
                });
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(ClusterError::Signal {
                    index,
                    action: "terminate",
                    cause: format!("it did not exit within {within:?} of SIGTERM and was killed"),
                });
            }
        }
        let i = index - 1;
        let port = self.instances[i].addr.map(|a| a.port());
        let listening = self.spawn(i, port).await?;
        self.await_ready(i, listening, "/readyz").await?;
        Ok(took)
    }

    /// SIGSTOP: the process keeps its sockets but answers nothing (heartbeats time out).
    pub fn pause(&mut self, index: usize) -> Result<(), ClusterError> {
        let inst = self.get(index)?;
        let pid = inst.child.as_ref().and_then(Child::id).ok_or(ClusterError::NoInstance(index))?;
        Self::signal(pid, "STOP", index, "pause")?;
        inst.paused = true;
        Ok(())
    }

    /// Arms the instance's pause point (SIGUSR1; the server runs with `SERVER_PAUSE_POINT`);
    /// returns its pid, for [`wait_stopped`]. Marked paused at once, so that the resume and the
    /// final stop send SIGCONT whenever it stops.
    pub fn arm_pause_point(&mut self, index: usize) -> Result<u32, ClusterError> {
        let inst = self.get(index)?;
        let pid = inst.child.as_ref().and_then(Child::id).ok_or(ClusterError::NoInstance(index))?;
        Self::signal(pid, "USR1", index, "arm the pause point")?;
        inst.paused = true;
        Ok(pid)
    }

    /// SIGCONT.
    pub fn resume(&mut self, index: usize) -> Result<(), ClusterError> {
        let inst = self.get(index)?;
        let pid = inst.child.as_ref().and_then(Child::id).ok_or(ClusterError::NoInstance(index))?;
        Self::signal(pid, "CONT", index, "resume")?;
        inst.paused = false;
        Ok(())
    }

    /// SIGTERM to every instance (resuming paused ones first), then waits up to `grace`
    /// before SIGKILL.
    pub async fn stop(mut self, grace: Duration) {
        for inst in &mut self.instances {
            if let Some(pid) = inst.child.as_ref().and_then(Child::id) {
                if inst.paused {
                    let _ = Self::signal(pid, "CONT", inst.index, "resume");
                }
                let _ = Self::signal(pid, "TERM", inst.index, "stop");
            }
        }
        for inst in &mut self.instances {
            if let Some(mut child) = inst.child.take()
                && tokio::time::timeout(grace, child.wait()).await.is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }
}

/// Waits up to `within` until process `pid` is stopped (state `T`); returns how long that took.
pub async fn wait_stopped(pid: u32, index: usize, within: Duration) -> Result<Duration, ClusterError> {
    let began = std::time::Instant::now();
    while began.elapsed() < within {
        if process_state(pid).as_deref() == Some("T") {
            return Ok(began.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err(ClusterError::Signal {
        index,
        action: "pause at a point",
        cause: format!(
            "it did not reach its pause point within {within:?} of being armed: did its workers have anything \
             to do then? Arm it earlier (at_s) or give them more work"
        ),
    })
}

/// The state letter of process `pid` (`R`, `S`, `T` for stopped, ...), from `/proc/<pid>/stat`.
fn process_state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, the state follows the last `)`.
    stat.rsplit_once(')')?.1.split_whitespace().next().map(str::to_string)
}
