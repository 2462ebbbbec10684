//! The Docker engine as the harness sees it: is one answering, which images it has, and
//! which of our containers a crashed run left behind.
//!
//! Every container we start carries the label `org.loadtest=1` and the pid of the process
//! that owns it, so containers of a run that was killed (and could not remove its own) are
//! found and removed by the next run, and `loadtest infra down` finds detached ones.

use std::collections::HashMap;
use std::time::Duration;

pub use testcontainers::bollard::Docker;
use testcontainers::bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};

use super::InfraError;

/// Label put on every container this harness starts.
pub const LABEL: &str = "org.loadtest";
/// Label with the pid of the owning process (removed when that process is gone).
pub const LABEL_OWNER_PID: &str = "org.loadtest.owner-pid";
/// Label set on containers of `loadtest infra up`: they outlive their process on purpose.
pub const LABEL_DETACHED: &str = "org.loadtest.detached";
/// Label naming the service (`rabbitmq`, `redis`, `mariadb`).
pub const LABEL_SERVICE: &str = "org.loadtest.service";

/// Where a Docker client looks for the engine, as a user would write it.
pub fn engine_endpoint() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// A connected Docker client for the engine at [`engine_endpoint`], or an error that says
/// how to get an engine.
pub async fn connect() -> Result<Docker, InfraError> {
    connect_at(&engine_endpoint()).await
}

/// A connected Docker client for the engine at `endpoint` (`unix://…`, `tcp://…`).
pub async fn connect_at(endpoint: &str) -> Result<Docker, InfraError> {
    let no_engine = |cause: String| InfraError::NoEngine { endpoint: endpoint.to_string(), cause };
    let docker = Docker::connect_with_host(endpoint).map_err(|e| no_engine(e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(no_engine(e.to_string())),
        Err(_) => Err(no_engine("no answer within 5 s".to_string())),
    }
}

/// Whether the engine has `reference` (`name:tag`) locally.
pub async fn has_image(docker: &Docker, reference: &str) -> Result<bool, InfraError> {
    use testcontainers::bollard::errors::Error;
    match docker.inspect_image(reference).await {
        Ok(_) => Ok(true),
        Err(Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
        Err(e) => Err(InfraError::Docker { action: format!("inspect image {reference}"), cause: e.to_string() }),
    }
}

/// Our containers (label `org.loadtest`), optionally narrowed by one more label filter.
async fn list_ours(docker: &Docker, extra: Option<&str>) -> Result<Vec<(String, HashMap<String, String>)>, InfraError> {
    let mut label_filters = vec![LABEL.to_string()];
    label_filters.extend(extra.map(str::to_string));
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_string(), label_filters)])),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| InfraError::Docker { action: "list containers".into(), cause: e.to_string() })?;
    Ok(containers.into_iter().filter_map(|c| Some((c.id?, c.labels.unwrap_or_default()))).collect())
}

async fn remove(docker: &Docker, id: &str) -> Result<(), InfraError> {
    let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
    docker
        .remove_container(id, Some(options))
        .await
        .map_err(|e| InfraError::Docker { action: format!("remove container {id}"), cause: e.to_string() })
}

fn process_alive(pid: &str) -> bool {
    std::path::Path::new("/proc").join(pid).exists()
}

/// Removes containers whose owning process is gone (a killed test or run), except detached
/// ones, which belong to `infra up` until `infra down`. Returns how many were removed.
pub async fn remove_stale(docker: &Docker) -> Result<usize, InfraError> {
    let mut removed = 0;
    for (id, labels) in list_ours(docker, None).await? {
        if labels.get(LABEL_DETACHED).map(String::as_str) == Some("true") {
            continue;
        }
        let owner_alive = labels.get(LABEL_OWNER_PID).is_some_and(|pid| process_alive(pid));
        if !owner_alive {
            tracing::info!(container = %id, "removing a container left behind by a process that is gone");
            remove(docker, &id).await?;
            removed += 1;
        }
    }
    remove_stale_networks(docker).await;
    Ok(removed)
}

/// The prefix of the network a RabbitMQ cluster's nodes share, followed by `lt-<owner pid>-…`.
pub const CLUSTER_NETWORK_PREFIX: &str = "loadtest-rabbitmq-";

/// Removes the networks of RabbitMQ clusters whose owning process is gone (their containers
/// went first). Docker has room for a few dozen bridge networks: left behind, they would
/// exhaust its address pools. Best effort: a network still in use stays.
async fn remove_stale_networks(docker: &Docker) {
    use testcontainers::bollard::query_parameters::ListNetworksOptions;
    let options = ListNetworksOptions {
        filters: Some(HashMap::from([("name".to_string(), vec![CLUSTER_NETWORK_PREFIX.to_string()])])),
    };
    let Ok(networks) = docker.list_networks(Some(options)).await else { return };
    for name in networks.into_iter().filter_map(|n| n.name) {
        let owner = name.strip_prefix(CLUSTER_NETWORK_PREFIX).and_then(|rest| rest.strip_prefix("lt-"));
        let Some(pid) = owner.and_then(|rest| rest.split('-').next()) else { continue };
        if !process_alive(pid) && docker.remove_network(&name).await.is_ok() {
            tracing::info!(network = %name, "removed a network left behind by a process that is gone");
        }
    }
}

/// Removes every detached container (`loadtest infra down`). Returns how many.
pub async fn remove_detached(docker: &Docker) -> Result<usize, InfraError> {
    let ours = list_ours(docker, Some(&format!("{LABEL_DETACHED}=true"))).await?;
    for (id, _) in &ours {
        remove(docker, id).await?;
    }
    Ok(ours.len())
}
