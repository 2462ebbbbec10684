//! One provisioned service: its URL, and the fault handles a scenario schedules on it.
//!
//! A container's host port is chosen by us and mapped explicitly on 127.0.0.1, so a
//! `stop` + `start` keeps the same address and clients can reconnect to the URL they have.

use std::time::Duration;

use testcontainers::core::error::ClientError;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt, TestcontainersError};

use super::docker::{LABEL, LABEL_DETACHED, LABEL_OWNER_PID, LABEL_SERVICE};
use super::images::ImageSpec;
use super::ready::{redact, wait_ready};
use super::{InfraError, ServiceKind};

/// A fault that can be applied to a provisioned service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceFault {
    Stop,
    Start,
    Restart,
    Pause,
    Unpause,
    /// SIGKILL to every process of the container: no shutdown at all. Its data stays; `Start`
    /// boots it again.
    Kill,
}

impl ServiceFault {
    pub fn name(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Start => "start",
            Self::Restart => "restart",
            Self::Pause => "pause",
            Self::Unpause => "unpause",
            Self::Kill => "kill",
        }
    }
}

/// A running service: a container we own, or an external one we only connect to.
pub struct Service {
    kind: ServiceKind,
    url: String,
    host_port: Option<u16>,
    image: Option<String>,
    /// `None` for external services: they cannot be faulted by us.
    container: Option<ContainerAsync<GenericImage>>,
    ready_timeout: Duration,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("kind", &self.kind)
            .field("url", &redact(&self.url))
            .field("image", &self.image)
            .field("container", &self.container_id())
            .finish()
    }
}

/// Options that shape how a container is started.
#[derive(Debug, Clone)]
pub(crate) struct StartOptions {
    pub ready_timeout: Duration,
    pub detached: bool,
    /// A member of a user-defined network (a RabbitMQ cluster's node), reachable by the
    /// others under its name.
    pub node: Option<Node>,
}

/// A container that joins `network` under `name` (its container name and host name, which
/// Docker's DNS resolves on that network), with `env` on top of its image's.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub network: String,
    pub name: String,
    pub env: Vec<(String, String)>,
}

impl Service {
    /// Starts `spec` as `kind` on a free loopback port and waits until a client round trip works.
    pub(crate) async fn start_container(
        kind: ServiceKind,
        spec: &ImageSpec,
        opts: &StartOptions,
    ) -> Result<Self, InfraError> {
        // A port that was free a moment ago can be taken before Docker binds it: try a few.
        let mut last_error = None;
        for _ in 0..3 {
            let host_port = free_loopback_port()?;
            match run_container(kind, spec, host_port, opts).await {
                Ok(container) => {
                    let service = Service {
                        kind,
                        url: kind.loopback_url(host_port),
                        host_port: Some(host_port),
                        image: Some(spec.reference()),
                        container: Some(container),
                        ready_timeout: opts.ready_timeout,
                    };
                    let took = service.wait_ready().await?;
                    tracing::info!(service = %kind, image = %spec.reference(), port = host_port, ready_ms = took.as_millis() as u64, "service ready");
                    return Ok(service);
                }
                Err(err @ TestcontainersError::Client(ClientError::StartContainer(_)))
                    if err.to_string().contains("port is already allocated")
                        || err.to_string().contains("address already in use") =>
                {
                    last_error = Some(err);
                }
                Err(err) => return Err(map_start_error(kind, spec, err)),
            }
        }
        Err(map_start_error(kind, spec, last_error.expect("loop ran at least once")))
    }

    /// A service someone else runs; checked reachable before it is handed out.
    pub(crate) async fn external(kind: ServiceKind, url: String, ready_timeout: Duration) -> Result<Self, InfraError> {
        let service = Service { kind, url, host_port: None, image: None, container: None, ready_timeout };
        super::ready::probe(kind, &service.url).await.map_err(|cause| InfraError::Unreachable {
            service: kind,
            url: redact(&service.url),
            var: kind.url_env(),
            cause,
        })?;
        Ok(service)
    }

    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    /// The client URL (`amqp://…`, `redis://…`, `mysql://…`). Stable across stop/start.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The loopback port the container is published on (`None` for external services).
    pub fn host_port(&self) -> Option<u16> {
        self.host_port
    }

    pub fn image(&self) -> Option<&str> {
        self.image.as_deref()
    }

    pub fn container_id(&self) -> Option<&str> {
        self.container.as_ref().map(|c| c.id())
    }

    /// Probes until a real client round trip works again.
    pub async fn wait_ready(&self) -> Result<Duration, InfraError> {
        wait_ready(self.kind, &self.url, self.ready_timeout).await
    }

    fn container(&self, fault: ServiceFault) -> Result<&ContainerAsync<GenericImage>, InfraError> {
        self.container.as_ref().ok_or(InfraError::FaultUnavailable { service: self.kind, fault: fault.name() })
    }

    fn fault_error(&self, fault: ServiceFault, err: TestcontainersError) -> InfraError {
        InfraError::Docker { action: format!("{} {}", fault.name(), self.kind), cause: err.to_string() }
    }

    /// Applies `fault`. `Start` and `Restart` return once the service answers clients again.
    pub async fn apply(&self, fault: ServiceFault) -> Result<(), InfraError> {
        match fault {
            ServiceFault::Stop => self.stop().await,
            ServiceFault::Start => self.start().await,
            ServiceFault::Restart => self.restart().await,
            ServiceFault::Pause => self.pause().await,
            ServiceFault::Unpause => self.unpause().await,
            ServiceFault::Kill => self.kill().await,
        }
    }

    /// SIGKILL (`docker kill`): the processes die at once, the container stays, and `start`
    /// boots it again on the same port with its data.
    pub async fn kill(&self) -> Result<(), InfraError> {
        let c = self.container(ServiceFault::Kill)?;
        let docker = super::docker::connect().await?;
        let options = testcontainers::bollard::query_parameters::KillContainerOptions { signal: "SIGKILL".into() };
        docker
            .kill_container(c.id(), Some(options))
            .await
            .map_err(|e| InfraError::Docker { action: format!("kill {} (SIGKILL)", self.kind), cause: e.to_string() })
    }

    /// Runs `cmd` in the container (`docker exec`); its output when it exits 0, else an error
    /// with it.
    pub(crate) async fn exec(&self, cmd: &[&str]) -> Result<String, InfraError> {
        use futures::StreamExt;
        use testcontainers::bollard::exec::StartExecResults;
        use testcontainers::bollard::models::ExecConfig;
        let what = || format!("run `{}` in {}", cmd.join(" "), self.kind);
        let fail =
            |e: testcontainers::bollard::errors::Error| InfraError::Docker { action: what(), cause: e.to_string() };
        let c = self.container.as_ref().ok_or(InfraError::FaultUnavailable { service: self.kind, fault: "exec" })?;
        let docker = super::docker::connect().await?;
        let config = ExecConfig {
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = docker.create_exec(c.id(), config).await.map_err(fail)?;
        let mut output = String::new();
        if let StartExecResults::Attached { output: mut stream, .. } =
            docker.start_exec(&exec.id, None).await.map_err(fail)?
        {
            while let Some(chunk) = stream.next().await {
                output.push_str(&chunk.map_err(fail)?.to_string());
            }
        }
        let code = docker.inspect_exec(&exec.id).await.map_err(fail)?.exit_code;
        if code == Some(0) {
            Ok(output)
        } else {
            Err(InfraError::Docker { action: what(), cause: format!("exit code {code:?}: {}", output.trim()) })
        }
    }

    /// Graceful stop (SIGTERM, then SIGKILL after 10 s). The host port stays reserved.
    pub async fn stop(&self) -> Result<(), InfraError> {
        let c = self.container(ServiceFault::Stop)?;
        c.stop_with_timeout(Some(10)).await.map_err(|e| self.fault_error(ServiceFault::Stop, e))
    }

    /// Starts a stopped container on the same host port and waits until it is ready.
    pub async fn start(&self) -> Result<(), InfraError> {
        let c = self.container(ServiceFault::Start)?;
        c.start().await.map_err(|e| self.fault_error(ServiceFault::Start, e))?;
        self.wait_ready().await.map(|_| ())
    }

    /// Stop, then start on the same port; returns once clients are served again.
    pub async fn restart(&self) -> Result<(), InfraError> {
        self.stop().await?;
        self.start().await
    }

    /// Freezes every process of the container (SIGSTOP-like, cgroup freezer): connections
    /// stay open, nothing answers.
    pub async fn pause(&self) -> Result<(), InfraError> {
        let c = self.container(ServiceFault::Pause)?;
        c.pause().await.map_err(|e| self.fault_error(ServiceFault::Pause, e))
    }

    pub async fn unpause(&self) -> Result<(), InfraError> {
        let c = self.container(ServiceFault::Unpause)?;
        c.unpause().await.map_err(|e| self.fault_error(ServiceFault::Unpause, e))
    }

    /// Leaves the container running after this process exits (`loadtest infra up`);
    /// `loadtest infra down` removes it by its `org.loadtest.detached` label.
    pub fn detach(mut self) {
        if let Some(container) = self.container.take() {
            // Not dropping the handle is what keeps testcontainers from removing it.
            std::mem::forget(container);
        }
    }
}

async fn run_container(
    kind: ServiceKind,
    spec: &ImageSpec,
    host_port: u16,
    opts: &StartOptions,
) -> Result<ContainerAsync<GenericImage>, TestcontainersError> {
    let container_port = kind.container_port();
    // Readiness is decided by our own client probes, not by a log line.
    let image = GenericImage::new(spec.name.clone(), spec.tag.clone())
        .with_exposed_port(container_port.tcp())
        .with_wait_for(WaitFor::Nothing);
    let mut request = image
        .with_mapped_port(host_port, container_port.tcp())
        .with_label(LABEL, "1")
        .with_label(LABEL_SERVICE, kind.name())
        .with_label(LABEL_OWNER_PID, std::process::id().to_string())
        .with_label(LABEL_DETACHED, opts.detached.to_string())
        .with_startup_timeout(opts.ready_timeout)
        // Publish on loopback only, even where dockerd was started without `--ip 127.0.0.1`.
        .with_host_config_modifier(|host_config| {
            if let Some(bindings) = host_config.port_bindings.as_mut() {
                for binding in bindings.values_mut().flatten().flatten() {
                    binding.host_ip = Some("127.0.0.1".to_string());
                }
            }
        });
    for (key, value) in &spec.env {
        request = request.with_env_var(key, value);
    }
    if let Some(node) = &opts.node {
        request = request
            .with_network(node.network.clone())
            .with_container_name(node.name.clone())
            .with_hostname(node.name.clone());
        for (key, value) in &node.env {
            request = request.with_env_var(key, value);
        }
    }
    if !spec.cmd.is_empty() {
        request = request.with_cmd(spec.cmd.clone());
    }
    request.start().await
}

fn map_start_error(kind: ServiceKind, spec: &ImageSpec, err: TestcontainersError) -> InfraError {
    match err {
        TestcontainersError::Client(ClientError::PullImage { err, .. }) => InfraError::ImageUnavailable {
            service: kind,
            image: spec.reference(),
            cause: err.to_string(),
            remedy: spec.remedy(),
        },
        TestcontainersError::Client(ClientError::Init(e)) => {
            InfraError::NoEngine { endpoint: super::docker::engine_endpoint(), cause: e.to_string() }
        }
        other => {
            InfraError::Docker { action: format!("start {kind} from {}", spec.reference()), cause: other.to_string() }
        }
    }
}

fn free_loopback_port() -> Result<u16, InfraError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| InfraError::Docker { action: "find a free loopback port".into(), cause: e.to_string() })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| InfraError::Docker { action: "find a free loopback port".into(), cause: e.to_string() })
}
