//! Provisioning of the real infrastructure every scenario and test needs: RabbitMQ 4.0,
//! Redis 8.0 and MariaDB 11.8, as containers (testcontainers) or as external services.
//!
//! `Infra::provision` decides the image set, removes containers of crashed runs, starts the
//! three services at once on loopback ports, and returns only when each answers a real client.

pub mod docker;
pub mod images;
mod rabbit_cluster;
pub mod ready;
pub mod service;
mod shared;

use std::collections::HashMap;
use std::time::Duration;

pub use images::{ImageSet, ImageSetChoice, ImageSpec, ServiceKind};
pub use service::{Service, ServiceFault};
pub use shared::shared;

/// Everything that can go wrong while provisioning or faulting infrastructure. Each message
/// says what is wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error(
        "no Docker engine answers at {endpoint} ({cause}); run scripts/docker-up.sh or set DOCKER_HOST to a running engine (or use --images external with LOADTEST_AMQP_URL, LOADTEST_REDIS_URL, LOADTEST_MYSQL_URL)"
    )]
    NoEngine { endpoint: String, cause: String },

    #[error("image {image} for {service} is not present in the Docker engine; {remedy}")]
    ImageMissing { service: ServiceKind, image: String, remedy: String },

    #[error("image {image} for {service} is not present locally and could not be pulled ({cause}); {remedy}")]
    ImageUnavailable { service: ServiceKind, image: String, cause: String, remedy: String },

    #[error("unknown image set `{0}`: expected one of auto, official, debian, external (--images or LOADTEST_IMAGES)")]
    UnknownImageSet(String),

    #[error("invalid image override {var}={value}: expected name:tag, e.g. rabbitmq:4.0-management")]
    InvalidImageOverride { var: &'static str, value: String },

    #[error(
        "invalid LOADTEST_MARIADB_ARGS `{value}`: `{token}` is not a server option; give options as mariadbd takes \
         them, separated by spaces, e.g. --innodb-log-file-size=512M --innodb-buffer-pool-size=1G"
    )]
    InvalidMariadbArgs { value: String, token: String },

    #[error(
        "LOADTEST_MARIADB_ARGS sets the options of a MariaDB container the harness starts; with the `external` image \
         set the database is not started here: set its options on that server, and unset LOADTEST_MARIADB_ARGS"
    )]
    MariadbArgsWithExternal,

    #[error("image set `external` needs {var}: the URL of a running {service}")]
    MissingExternalUrl { service: ServiceKind, var: &'static str },

    #[error("cannot reach {service} at {url} ({cause}); check that it runs and that {var} is right")]
    Unreachable { service: ServiceKind, url: String, var: &'static str, cause: String },

    #[error("{service} at {url} did not answer a client within {waited:?}; last error: {last_error}")]
    NotReady { service: ServiceKind, url: String, waited: Duration, last_error: String },

    #[error("fault `{fault}` is not available on {service}: it is external, not a container we run")]
    FaultUnavailable { service: ServiceKind, fault: &'static str },

    #[error("docker: could not {action}: {cause}")]
    Docker { action: String, cause: String },

    #[error("could not {action} on {service}: {cause}")]
    Client { service: ServiceKind, action: String, cause: String },
}

/// How to provision: which image set, per-service image overrides, how long to wait.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    pub images: ImageSetChoice,
    /// Replaces the set's image for one service (`LOADTEST_RABBITMQ_IMAGE=name:tag`, ...).
    pub overrides: HashMap<ServiceKind, ImageSpec>,
    /// How long a service may take to answer a client after its container starts.
    pub ready_timeout: Duration,
    /// Leave the containers running after this process exits (`loadtest infra up`).
    pub detached: bool,
    /// URLs of the `external` set (`LOADTEST_AMQP_URL`, `LOADTEST_REDIS_URL`, `LOADTEST_MYSQL_URL`).
    pub external_urls: HashMap<ServiceKind, String>,
    /// RabbitMQ nodes to cluster (a scenario's `[cluster] rabbitmq_nodes`); 1: one broker.
    pub rabbitmq_nodes: u32,
    /// Options added to the MariaDB server's command line (`LOADTEST_MARIADB_ARGS`), for
    /// trying the database's settings under a scenario's load.
    pub mariadb_args: Vec<String>,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        Self {
            images: ImageSetChoice::Auto,
            overrides: HashMap::new(),
            ready_timeout: Duration::from_secs(90),
            detached: false,
            external_urls: HashMap::new(),
            rabbitmq_nodes: 1,
            mariadb_args: Vec::new(),
        }
    }
}

impl ProvisionOptions {
    /// Reads `LOADTEST_IMAGES`, `LOADTEST_{RABBITMQ,REDIS,MARIADB}_IMAGE`, `LOADTEST_MARIADB_ARGS`
    /// and the external URLs.
    pub fn from_env() -> Result<Self, InfraError> {
        let mut opts = Self::default();
        if let Ok(value) = std::env::var("LOADTEST_IMAGES") {
            opts.images = value.parse()?;
        }
        for (kind, var) in [
            (ServiceKind::RabbitMq, "LOADTEST_RABBITMQ_IMAGE"),
            (ServiceKind::Redis, "LOADTEST_REDIS_IMAGE"),
            (ServiceKind::MariaDb, "LOADTEST_MARIADB_IMAGE"),
        ] {
            if let Ok(value) = std::env::var(var) {
                let local_only = value.starts_with("loadtest-debian/");
                let spec = ImageSpec::parse_override(&value, local_only)
                    .ok_or(InfraError::InvalidImageOverride { var, value: value.clone() })?;
                opts.overrides.insert(kind, spec);
            }
        }
        if let Ok(value) = std::env::var("LOADTEST_MARIADB_ARGS") {
            opts.mariadb_args = parse_mariadb_args(&value)?;
        }
        for kind in ServiceKind::ALL {
            if let Some(url) = std::env::var(kind.url_env()).ok().filter(|v| !v.trim().is_empty()) {
                opts.external_urls.insert(kind, url);
            }
        }
        Ok(opts)
    }
}

/// The URLs of the three services, as clients (and the server) take them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Urls {
    pub amqp: String,
    pub redis: String,
    pub mysql: String,
}

/// The provisioned services. Dropping it removes the containers (unless detached).
#[derive(Debug)]
pub struct Infra {
    set: ImageSet,
    /// The broker, or the first node of its cluster.
    rabbitmq: Service,
    /// The other nodes of the RabbitMQ cluster (none for a single broker).
    rabbit_peers: Vec<Service>,
    redis: Service,
    mariadb: Service,
}

impl Infra {
    /// Provisions RabbitMQ, Redis and MariaDB and waits until each answers a real client.
    pub async fn provision(opts: &ProvisionOptions) -> Result<Self, InfraError> {
        if opts.images == ImageSetChoice::External {
            if !opts.mariadb_args.is_empty() {
                return Err(InfraError::MariadbArgsWithExternal);
            }
            return Self::external(opts).await;
        }
        let docker = docker::connect().await?;
        let removed = docker::remove_stale(&docker).await?;
        if removed > 0 {
            tracing::info!(removed, "removed containers left behind by earlier runs");
        }
        let set = resolve_set(&docker, opts.images, &ServiceKind::ALL).await?;
        let [rabbit_spec, redis_spec, mariadb_spec] = ServiceKind::ALL.map(|kind| spec_for(opts, set, kind));
        for (kind, spec) in ServiceKind::ALL.iter().zip([&rabbit_spec, &redis_spec, &mariadb_spec]) {
            ensure_local(&docker, *kind, spec).await?;
        }
        let start = service::StartOptions { ready_timeout: opts.ready_timeout, detached: opts.detached, node: None };
        let brokers = async {
            if opts.rabbitmq_nodes > 1 {
                rabbit_cluster::start(&rabbit_spec, opts.rabbitmq_nodes, &start).await
            } else {
                Service::start_container(ServiceKind::RabbitMq, &rabbit_spec, &start).await.map(|s| vec![s])
            }
        };
        // `join!`, not `try_join!`: a start cancelled half-way would leave a container no
        // handle owns. On error, the services that did start are dropped, which removes them.
        let (brokers, redis, mariadb) = tokio::join!(
            brokers,
            Service::start_container(ServiceKind::Redis, &redis_spec, &start),
            Service::start_container(ServiceKind::MariaDb, &mariadb_spec, &start),
        );
        let mut brokers = brokers?.into_iter();
        let rabbitmq = brokers.next().expect("at least one node");
        Ok(Infra { set, rabbitmq, rabbit_peers: brokers.collect(), redis: redis?, mariadb: mariadb? })
    }

    async fn external(opts: &ProvisionOptions) -> Result<Self, InfraError> {
        let url_of = |kind: ServiceKind| {
            opts.external_urls
                .get(&kind)
                .cloned()
                .ok_or(InfraError::MissingExternalUrl { service: kind, var: kind.url_env() })
        };
        let (amqp, redis, mysql) =
            (url_of(ServiceKind::RabbitMq)?, url_of(ServiceKind::Redis)?, url_of(ServiceKind::MariaDb)?);
        let (rabbitmq, redis, mariadb) = tokio::join!(
            Service::external(ServiceKind::RabbitMq, amqp, opts.ready_timeout),
            Service::external(ServiceKind::Redis, redis, opts.ready_timeout),
            Service::external(ServiceKind::MariaDb, mysql, opts.ready_timeout),
        );
        Ok(Infra {
            set: ImageSet::External,
            rabbitmq: rabbitmq?,
            rabbit_peers: Vec::new(),
            redis: redis?,
            mariadb: mariadb?,
        })
    }

    /// Starts a single service of `kind` (for tests that fault it and must not disturb others).
    pub async fn provision_one(kind: ServiceKind, opts: &ProvisionOptions) -> Result<Service, InfraError> {
        if opts.images == ImageSetChoice::External {
            return Err(InfraError::FaultUnavailable { service: kind, fault: "provision" });
        }
        let docker = docker::connect().await?;
        let set = resolve_set(&docker, opts.images, &[kind]).await?;
        let spec = spec_for(opts, set, kind);
        ensure_local(&docker, kind, &spec).await?;
        let start = service::StartOptions { ready_timeout: opts.ready_timeout, detached: opts.detached, node: None };
        Service::start_container(kind, &spec, &start).await
    }

    /// (service name, container id) of every service running in a container of ours.
    pub fn containers(&self) -> Vec<(String, String)> {
        let nodes = self.rabbitmq_nodes().into_iter().enumerate().map(|(i, s)| {
            let name =
                if self.rabbit_peers.is_empty() { s.kind().name().to_string() } else { format!("rabbitmq:{}", i + 1) };
            (name, s)
        });
        let others = [&self.redis, &self.mariadb].into_iter().map(|s| (s.kind().name().to_string(), s));
        nodes.chain(others).filter_map(|(name, s)| s.container_id().map(|id| (name, id.to_string()))).collect()
    }

    pub fn image_set(&self) -> ImageSet {
        self.set
    }

    pub fn rabbitmq(&self) -> &Service {
        &self.rabbitmq
    }

    /// Every RabbitMQ node, the first one first (one for a single broker).
    pub fn rabbitmq_nodes(&self) -> Vec<&Service> {
        std::iter::once(&self.rabbitmq).chain(&self.rabbit_peers).collect()
    }

    /// Node `n` (1-based) of the RabbitMQ cluster.
    pub fn rabbitmq_node(&self, n: u32) -> Option<&Service> {
        self.rabbitmq_nodes().get((n as usize).checked_sub(1)?).copied()
    }

    /// Every node's AMQP URL, the first node first: what the server's `SERVER_AMQP_URL` lists.
    pub fn amqp_urls(&self) -> Vec<String> {
        self.rabbitmq_nodes().iter().map(|s| s.url().to_string()).collect()
    }

    pub fn redis(&self) -> &Service {
        &self.redis
    }

    pub fn mariadb(&self) -> &Service {
        &self.mariadb
    }

    pub fn service(&self, kind: ServiceKind) -> &Service {
        match kind {
            ServiceKind::RabbitMq => &self.rabbitmq,
            ServiceKind::Redis => &self.redis,
            ServiceKind::MariaDb => &self.mariadb,
        }
    }

    pub fn urls(&self) -> Urls {
        Urls {
            amqp: self.rabbitmq.url().to_string(),
            redis: self.redis.url().to_string(),
            mysql: self.mariadb.url().to_string(),
        }
    }

    /// Creates a fresh, empty database named `<prefix>_<unique suffix>` and returns its URL.
    /// Every test and every scenario run owns its own database.
    pub async fn fresh_database(&self, prefix: &str) -> Result<String, InfraError> {
        use sqlx::Connection;
        let name = unique_name(prefix);
        let client_err = |action: &str, e: sqlx::Error| InfraError::Client {
            service: ServiceKind::MariaDb,
            action: action.to_string(),
            cause: e.to_string(),
        };
        let mut conn =
            sqlx::MySqlConnection::connect(self.mariadb.url()).await.map_err(|e| client_err("connect", e))?;
        sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            .execute(&mut conn)
            .await
            .map_err(|e| client_err("create a database", e))?;
        let _ = conn.close().await;
        Ok(format!("{}/{name}", self.mariadb.url().trim_end_matches('/')))
    }

    /// Leaves every container running after this process exits (see [`Service::detach`]).
    pub fn detach(self) {
        self.rabbitmq.detach();
        for peer in self.rabbit_peers {
            peer.detach();
        }
        self.redis.detach();
        self.mariadb.detach();
    }
}

/// Decides `auto`: the debian images when all of `kinds` exist locally, else official.
async fn resolve_set(
    docker: &docker::Docker,
    choice: ImageSetChoice,
    kinds: &[ServiceKind],
) -> Result<ImageSet, InfraError> {
    Ok(match choice {
        ImageSetChoice::Official => ImageSet::Official,
        ImageSetChoice::Debian => ImageSet::Debian,
        ImageSetChoice::External => ImageSet::External,
        ImageSetChoice::Auto => {
            let mut all_present = true;
            for &kind in kinds {
                let spec = images::image_for(ImageSet::Debian, kind).expect("debian has every service");
                all_present &= docker::has_image(docker, &spec.reference()).await?;
            }
            if all_present { ImageSet::Debian } else { ImageSet::Official }
        }
    })
}

fn spec_for(opts: &ProvisionOptions, set: ImageSet, kind: ServiceKind) -> ImageSpec {
    let mut spec = opts
        .overrides
        .get(&kind)
        .cloned()
        .or_else(|| images::image_for(set, kind))
        .expect("container image sets have every service");
    if kind == ServiceKind::MariaDb && !opts.mariadb_args.is_empty() {
        // A command replaces the image's: the debian image's is its start script, which passes
        // its arguments on to mariadbd (the official image's entrypoint does the same).
        if spec.cmd.is_empty() && spec.local_only {
            spec.cmd.push(images::DEBIAN_MARIADB_START.to_string());
        }
        spec.cmd.extend(opts.mariadb_args.iter().cloned());
    }
    spec
}

/// `LOADTEST_MARIADB_ARGS`: server options separated by spaces, each `--name` or `--name=value`.
pub fn parse_mariadb_args(value: &str) -> Result<Vec<String>, InfraError> {
    value
        .split_whitespace()
        .map(|token| {
            let name = token.strip_prefix("--").map(|t| t.split('=').next().unwrap_or_default()).unwrap_or_default();
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if valid {
                Ok(token.to_string())
            } else {
                Err(InfraError::InvalidMariadbArgs { value: value.to_string(), token: token.to_string() })
            }
        })
        .collect()
}

/// Local-only images cannot be pulled: say how to build them instead of trying.
async fn ensure_local(docker: &docker::Docker, kind: ServiceKind, spec: &ImageSpec) -> Result<(), InfraError> {
    if spec.local_only && !docker::has_image(docker, &spec.reference()).await? {
        return Err(InfraError::ImageMissing { service: kind, image: spec.reference(), remedy: spec.remedy() });
    }
    Ok(())
}

/// `prefix_<pid>_<counter>_<nanos>`: unique across parallel tests and processes, and a valid
/// identifier for databases, queues and key prefixes.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let clean: String =
        prefix.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    format!("{clean}_{}_{n}_{nanos:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_args_are_server_options_or_a_clear_error() {
        let args = parse_mariadb_args("  --innodb-log-file-size=512M\t--skip-log-bin --innodb_flush_method=O_DIRECT ")
            .unwrap();
        assert_eq!(args, ["--innodb-log-file-size=512M", "--skip-log-bin", "--innodb_flush_method=O_DIRECT"]);
        assert!(parse_mariadb_args("").unwrap().is_empty());
        for bad in ["innodb-log-file-size=512M", "--", "--=1", "-x", "--a;b=1", "--log-file-size=1 ; rm"] {
            let err = parse_mariadb_args(bad).unwrap_err().to_string();
            assert!(err.contains("LOADTEST_MARIADB_ARGS") && err.contains("is not a server option"), "{bad}: {err}");
        }
        let opts = ProvisionOptions {
            mariadb_args: vec!["--innodb-log-file-size=512M".into()],
            ..ProvisionOptions::default()
        };
        let spec = spec_for(&opts, ImageSet::Debian, ServiceKind::MariaDb);
        assert_eq!(spec.cmd, [images::DEBIAN_MARIADB_START, "--innodb-log-file-size=512M"]);
        let official = spec_for(&opts, ImageSet::Official, ServiceKind::MariaDb);
        assert_eq!(official.cmd, ["--max-connections=2000", "--innodb-log-file-size=512M"]);
        assert!(spec_for(&opts, ImageSet::Debian, ServiceKind::Redis).cmd.is_empty());
    }
}
