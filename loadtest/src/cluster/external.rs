//! The external runner: a deployment the harness did not start (containers, VMs, Kubernetes),
//! reached by the URLs of a targets file and controlled through its adapters, shell commands
//! as Jepsen drives remote clusters. Each command's exit status and output are kept, for the
//! fault records of the report and in `logs/<strategy>/adapters.log`.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use super::ClusterError;
use super::targets::Targets;
use crate::infra::ServiceKind;

/// The longest an adapter may take; a deploy waits for images and rollouts.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// What one adapter command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterRun {
    /// The command as run (placeholders replaced).
    pub command: String,
    /// `exit 0`, `exit 1`, `killed by a signal`, `timed out after 120 s`.
    pub status: String,
    /// The last lines of its stdout and stderr.
    pub output: String,
}

/// Runs a targets file's adapters for one strategy's run. Cheap to clone: a service fault
/// runs its adapter without holding the instances, whose own faults keep their times.
#[derive(Clone)]
pub struct Adapters {
    targets: Arc<Targets>,
    /// The run's `SERVER_*` settings and the `LOADTEST_*` facts, for every command.
    env: Arc<Vec<(String, String)>>,
    log: PathBuf,
    strategy: String,
}

/// The instances of a deployment, for one strategy's run.
pub struct External {
    adapters: Adapters,
    targets: Arc<Targets>,
    log: PathBuf,
    /// Instances the harness took down or froze.
    down: Vec<bool>,
    http: reqwest::Client,
}

impl std::fmt::Debug for External {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("External").field("instances", &self.targets.instances).finish()
    }
}

/// `'...'` for `sh`.
fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl External {
    /// Runs the `deploy` adapter (if any) with the run's settings, then waits until every
    /// instance answers `/readyz` with 200.
    pub async fn deploy(
        targets: Arc<Targets>,
        server_env: Vec<(String, String)>,
        log_dir: PathBuf,
        strategy: &str,
        ready_timeout: Duration,
    ) -> Result<(External, Option<AdapterRun>), ClusterError> {
        std::fs::create_dir_all(&log_dir)?;
        // Adapters run in the targets file's folder: a relative folder would land there.
        let log_dir = std::path::absolute(&log_dir)?;
        let mut env = server_env;
        env.push(("LOADTEST_STRATEGY".into(), strategy.to_string()));
        env.push(("LOADTEST_INSTANCES".into(), targets.instances.len().to_string()));
        env.push(("LOADTEST_INSTANCE_URLS".into(), targets.instances.join(" ")));
        env.push(("LOADTEST_LOG_DIR".into(), log_dir.display().to_string()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().map_err(std::io::Error::other)?;
        let down = vec![false; targets.instances.len()];
        let log = log_dir.join("adapters.log");
        let adapters =
            Adapters { targets: targets.clone(), env: Arc::new(env), log: log.clone(), strategy: strategy.to_string() };
        let external = External { adapters, targets, log, down, http };
        let deployed = match external.targets.adapter("deploy", None) {
            Some(template) => Some(external.adapters.run("deploy", template, &[], DEPLOY_TIMEOUT).await?),
            None => None,
        };
        for index in 1..=external.targets.instances.len() {
            external.await_answer(index, "/readyz", ready_timeout).await?;
        }
        Ok((external, deployed))
    }

    pub fn urls(&self) -> Vec<String> {
        self.targets.instances.clone()
    }

    pub fn is_up(&self, index: usize) -> bool {
        self.down.get(index.wrapping_sub(1)).is_some_and(|d| !d)
    }

    fn url(&self, index: usize) -> Result<&str, ClusterError> {
        self.targets.instances.get(index.wrapping_sub(1)).map(String::as_str).ok_or(ClusterError::NoInstance(index))
    }

    /// The adapter of `action` on instance `index`, run.
    async fn instance(&mut self, action: &str, index: usize) -> Result<AdapterRun, ClusterError> {
        let url = self.url(index)?.to_string();
        let template = self
            .targets
            .adapter(action, Some(&index.to_string()))
            .ok_or_else(|| ClusterError::MissingAdapter { key: action.to_string(), file: self.targets.path.clone() })?
            .to_string();
        self.adapters.run(action, &template, &[("index", index.to_string()), ("url", url)], COMMAND_TIMEOUT).await
    }

    pub async fn kill(&mut self, index: usize) -> Result<AdapterRun, ClusterError> {
        let run = self.instance("kill-instance", index).await?;
        self.down[index - 1] = true;
        Ok(run)
    }

    /// Runs `restart-instance`, then waits until the instance serves HTTP (`/healthz`: its
    /// dependencies may be down on purpose during a fault).
    pub async fn restart(&mut self, index: usize) -> Result<AdapterRun, ClusterError> {
        let run = self.instance("restart-instance", index).await?;
        self.await_answer(index, "/healthz", Duration::from_secs(60)).await?;
        self.down[index - 1] = false;
        Ok(run)
    }

    /// Runs `rolling-restart` on instance `index` (the deployment's own graceful restart of
    /// it), then waits until it is ready again.
    pub async fn redeploy(&mut self, index: usize) -> Result<AdapterRun, ClusterError> {
        self.down[index - 1] = true;
        let run = self.instance("rolling-restart", index).await?;
        self.await_answer(index, "/readyz", Duration::from_secs(120)).await?;
        self.down[index - 1] = false;
        Ok(run)
    }

    pub async fn pause(&mut self, index: usize) -> Result<AdapterRun, ClusterError> {
        let run = self.instance("pause-instance", index).await?;
        self.down[index - 1] = true;
        Ok(run)
    }

    pub async fn resume(&mut self, index: usize) -> Result<AdapterRun, ClusterError> {
        let run = self.instance("resume-instance", index).await?;
        self.down[index - 1] = false;
        Ok(run)
    }

    /// What runs the adapters, to run one without holding the instances.
    pub fn adapters(&self) -> Adapters {
        self.adapters.clone()
    }

    /// `server <args>` on the deployment, through the `operator` adapter; returns its output.
    pub async fn operator_command(&self, args: &[&str]) -> Result<String, ClusterError> {
        self.adapters.operator_command(args).await
    }

    /// Runs the `teardown` adapter, if any; a failure is logged, not raised (the run is over).
    pub async fn stop(self) {
        self.adapters.teardown().await;
    }

    async fn await_answer(&self, index: usize, path: &str, timeout: Duration) -> Result<(), ClusterError> {
        let url = format!("{}{path}", self.url(index)?);
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            match self.http.get(&url).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("{} answered {}", url, r.status()),
                Err(e) => last = format!("{url}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(ClusterError::StartFailed {
            index,
            reason: format!("not ready within {} s: {last}", timeout.as_secs()),
            log: self.log.display().to_string(),
            tail: std::fs::read_to_string(&self.log).map(|t| last_lines(&t, 20)).unwrap_or_default(),
        })
    }
}

impl Adapters {
    /// Runs `template` for `action` with its placeholders replaced; an exit status other than
    /// 0 is an error carrying the output.
    async fn run(
        &self,
        action: &str,
        template: &str,
        vars: &[(&str, String)],
        timeout: Duration,
    ) -> Result<AdapterRun, ClusterError> {
        let mut command = template.replace("{strategy}", &self.strategy);
        for (name, value) in vars {
            command = command.replace(&format!("{{{name}}}"), value);
        }
        let started = Instant::now();
        let child = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(self.targets.dir())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (status, output) = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => {
                let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                let status = match out.status.code() {
                    Some(code) => format!("exit {code}"),
                    None => "killed by a signal".to_string(),
                };
                (status, text)
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => (format!("timed out after {} s", timeout.as_secs()), String::new()),
        };
        let run = AdapterRun { command: command.clone(), status, output: last_lines(output.trim(), 20) };
        if let Ok(mut log) = std::fs::OpenOptions::new().create(true).append(true).open(&self.log) {
            let _ = writeln!(
                log,
                "$ {command}   # {action}, {}, {:.1} s\n{}\n",
                run.status,
                started.elapsed().as_secs_f64(),
                output.trim()
            );
        }
        if run.status != "exit 0" {
            return Err(ClusterError::Adapter {
                action: action.to_string(),
                command: run.command,
                status: run.status,
                output: run.output,
            });
        }
        Ok(run)
    }

    /// The adapter of a service fault (`stop-service` on `redis`).
    pub async fn service(&self, action: &str, kind: ServiceKind) -> Result<AdapterRun, ClusterError> {
        let template = self
            .targets
            .adapter(action, Some(kind.name()))
            .ok_or_else(|| ClusterError::MissingAdapter { key: action.to_string(), file: self.targets.path.clone() })?
            .to_string();
        self.run(action, &template, &[("service", kind.name().to_string())], COMMAND_TIMEOUT).await
    }

    /// `server <args>` on the deployment, through the `operator` adapter; returns its output.
    pub async fn operator_command(&self, args: &[&str]) -> Result<String, ClusterError> {
        let template = self
            .targets
            .adapter("operator", None)
            .ok_or_else(|| ClusterError::MissingAdapter { key: "operator".into(), file: self.targets.path.clone() })?
            .to_string();
        let args = args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
        Ok(self.run("operator", &template, &[("args", args)], COMMAND_TIMEOUT).await?.output)
    }

    /// Runs the `teardown` adapter, if any; a failure is logged, not raised (the run is over).
    pub async fn teardown(&self) {
        if let Some(template) = self.targets.adapter("teardown", None)
            && let Err(e) = self.run("teardown", template, &[], DEPLOY_TIMEOUT).await
        {
            eprintln!("[{}] teardown failed: {e}", self.strategy);
        }
    }
}
