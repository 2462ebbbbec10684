//! A RabbitMQ cluster of several nodes from the same image: one user-defined Docker network on
//! which each node's container name is its host name, one Erlang cookie shared by all, and
//! every node after the first joined to the first with `rabbitmqctl join_cluster`
//! (https://www.rabbitmq.com/docs/clustering#creating). Each node is published on its own
//! loopback port, as a single broker is, so the server gets every node's URL.
//!
//! A node that is killed and started again keeps its container, name, port and data, and
//! rejoins the cluster by itself.

use super::images::ImageSpec;
use super::service::{Node, StartOptions};
use super::{InfraError, Service, ServiceKind, unique_name};

/// Starts `nodes` RabbitMQ nodes and clusters them. The first node is the one the others
/// joined; every node answers AMQP clients when this returns.
pub(crate) async fn start(spec: &ImageSpec, nodes: u32, opts: &StartOptions) -> Result<Vec<Service>, InfraError> {
    // Host names: letters, digits and `-` (an Erlang node name is `rabbit@<host name>`).
    let id = unique_name("lt").replace('_', "-");
    let network = format!("{}{id}", super::docker::CLUSTER_NETWORK_PREFIX);
    let cookie: String = (0..32).map(|_| char::from(b'A' + rand::random::<u8>() % 26)).collect();
    let names: Vec<String> = (1..=nodes).map(|i| format!("{id}-rmq{i}")).collect();
    let starts = names.iter().map(|name| {
        let node = Node {
            network: network.clone(),
            name: name.clone(),
            env: vec![("RABBITMQ_ERLANG_COOKIE".to_string(), cookie.clone())],
        };
        let opts = StartOptions { node: Some(node), ..opts.clone() };
        async move { Service::start_container(ServiceKind::RabbitMq, spec, &opts).await }
    });
    // All at once, and every one kept until all are done: a node that failed must not leave
    // the others running without an owner (dropping them removes them).
    let mut started = Vec::new();
    let mut first_error = None;
    for result in futures::future::join_all(starts).await {
        match result {
            Ok(service) => started.push(service),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let seed = format!("rabbit@{}", names[0]);
    for (node, name) in started.iter().zip(&names).skip(1) {
        let join = format!("rabbitmqctl stop_app && rabbitmqctl join_cluster {seed} && rabbitmqctl start_app");
        node.exec(&["sh", "-c", &join]).await.map_err(|e| InfraError::Docker {
            action: format!("join RabbitMQ node {name} to {seed}"),
            cause: e.to_string(),
        })?;
        node.wait_ready().await?;
    }
    let status = started[0].exec(&["rabbitmqctl", "cluster_status", "--formatter", "json"]).await?;
    let running = running_nodes(&status).ok_or_else(|| InfraError::Docker {
        action: "read the RabbitMQ cluster's status".into(),
        cause: format!("no running_nodes in: {}", status.chars().take(400).collect::<String>()),
    })?;
    if running.len() != names.len() {
        return Err(InfraError::Docker {
            action: format!("cluster {} RabbitMQ nodes", names.len()),
            cause: format!("only {} run together: {}", running.len(), running.join(", ")),
        });
    }
    tracing::info!(nodes = running.len(), network = %network, "RabbitMQ cluster formed");
    Ok(started)
}

/// The `running_nodes` of `rabbitmqctl cluster_status --formatter json` (the JSON is the
/// last line: the tool may print notices before it).
fn running_nodes(status: &str) -> Option<Vec<String>> {
    let json = status.lines().rev().find(|l| l.trim_start().starts_with('{'))?;
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let nodes = value.get("running_nodes")?.as_array()?;
    Some(nodes.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
}

#[cfg(test)]
mod tests {
    use super::running_nodes;

    #[test]
    fn the_running_nodes_are_read_from_the_json_line() {
        let out =
            "Cluster status of node rabbit@a ...\n{\"running_nodes\":[\"rabbit@a\",\"rabbit@b\"],\"disk_nodes\":[]}\n";
        assert_eq!(running_nodes(out), Some(vec!["rabbit@a".to_string(), "rabbit@b".to_string()]));
        assert_eq!(running_nodes("Error: unable to perform an operation on node"), None);
    }
}
