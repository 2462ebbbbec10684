//! A targets file: how the harness reaches and controls a deployment it did not start (the
//! external runner). TOML:
//!
//! ```toml
//! # The instances, in order: `instance:1` is the first.
//! instances = ["http://10.0.0.11:8080", "http://10.0.0.12:8080", "http://10.0.0.13:8080"]
//!
//! # The brokers and the database the instances use (else LOADTEST_AMQP_URL, LOADTEST_REDIS_URL,
//! # LOADTEST_MYSQL_URL). The MariaDB account must create databases: each strategy's run gets
//! # a fresh one, and the truth after the run is read from it.
//! [services]
//! amqp_url = "amqp://guest:guest@10.0.0.5:5672/%2f"
//! redis_url = "redis://10.0.0.6:6379/"
//! mysql_url = "mysql://root:secret@10.0.0.7:3306"
//! # Without a `deploy` adapter the harness cannot hand the instances a fresh database: name the
//! # one they use, and the truth is read from it (read-only access is enough).
//! # database_url = "mysql://reader:secret@10.0.0.7:3306/app"
//!
//! # Shell commands (`sh -c`, in this file's folder), one per action. `{index}`, `{url}`,
//! # `{service}`, `{strategy}` and `{args}` are replaced; the run's `SERVER_*` settings and
//! # LOADTEST_STRATEGY, LOADTEST_INSTANCES, LOADTEST_INSTANCE_URLS and LOADTEST_LOG_DIR (where
//! # the instances' logs belong) are in the environment. A service's start and restart
//! # should return once it serves again: the drain starts after the last fault step.
//! [adapters]
//! deploy = "./deploy.sh"                       # before each strategy: (re)deploy with SERVER_*
//! teardown = "./teardown.sh"                   # after each strategy
//! operator = "kubectl exec deploy/app -- server {args}"
//! kill-instance = "ssh node{index} systemctl kill -s KILL app"
//! restart-instance = "ssh node{index} systemctl start app"
//! "stop-service:rabbitmq" = "docker stop rabbit"   # `action:target` wins over `action`
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::infra::ServiceKind;
use crate::run::faults::schedule;
use crate::scenario::{FaultAction, FaultTarget, Kind, Scenario};

/// Adapter keys that are not fault actions.
const LIFECYCLE: [&str; 3] = ["deploy", "teardown", "operator"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    instances: Vec<String>,
    #[serde(default)]
    services: Services,
    #[serde(default)]
    adapters: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Services {
    amqp_url: Option<String>,
    redis_url: Option<String>,
    mysql_url: Option<String>,
    database_url: Option<String>,
}

/// A loaded targets file.
#[derive(Debug, Clone)]
pub struct Targets {
    pub path: PathBuf,
    /// Base URLs, `instance:1` first, without a trailing slash.
    pub instances: Vec<String>,
    /// The services' URLs the file names.
    pub services: HashMap<ServiceKind, String>,
    /// The database the instances use, when no `deploy` adapter gives them a fresh one.
    pub database_url: Option<String>,
    adapters: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct TargetsError {
    pub file: String,
    pub field: String,
    pub message: String,
}

impl Targets {
    pub fn load(path: &Path) -> Result<Targets, TargetsError> {
        let err = |field: &str, message: String| TargetsError {
            file: path.display().to_string(),
            field: field.to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err("(file)", format!("cannot read it: {e}")))?;
        let file: TargetsFile = toml::from_str(&text).map_err(|e| err("(file)", e.to_string().trim().to_string()))?;
        if file.instances.is_empty() {
            return Err(err("instances", "is empty: list the base URL of every instance".into()));
        }
        let mut instances = Vec::new();
        for (i, raw) in file.instances.iter().enumerate() {
            let url = url::Url::parse(raw)
                .map_err(|e| err(&format!("instances[{i}]"), format!("`{raw}` is not a URL ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(err(&format!("instances[{i}]"), format!("`{raw}` is not http(s)")));
            }
            instances.push(raw.trim_end_matches('/').to_string());
        }
        for key in file.adapters.keys() {
            let action = key.split_once(':').map_or(key.as_str(), |(a, _)| a);
            if !LIFECYCLE.contains(&action) && action.parse::<FaultAction>().is_err() {
                let known: Vec<&str> = LIFECYCLE
                    .iter()
                    .copied()
                    .chain(FaultAction::ALL.iter().filter(|a| !a.on_clients()).map(|a| a.as_str()))
                    .collect();
                return Err(err(
                    &format!("adapters.{key}"),
                    format!("is not an action: expected one of {}", known.join(", ")),
                ));
            }
        }
        let database_url = file.services.database_url;
        let mut services = HashMap::new();
        for (kind, url) in [
            (ServiceKind::RabbitMq, file.services.amqp_url),
            (ServiceKind::Redis, file.services.redis_url),
            (ServiceKind::MariaDb, file.services.mysql_url),
        ] {
            if let Some(url) = url {
                services.insert(kind, url);
            }
        }
        Ok(Targets { path: path.to_path_buf(), instances, services, database_url, adapters: file.adapters })
    }

    /// The folder the adapters run in: the targets file's.
    pub fn dir(&self) -> PathBuf {
        self.path.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// The command for `action` on `target` (`kill-instance` on `2`): `action:target` first,
    /// then `action`.
    pub fn adapter(&self, action: &str, target: Option<&str>) -> Option<&str> {
        target
            .and_then(|t| self.adapters.get(&format!("{action}:{t}")))
            .or_else(|| self.adapters.get(action))
            .map(String::as_str)
    }

    /// Refuses, before anything starts, a scenario this deployment cannot run: another number
    /// of instances, a fault without its adapter, no database to read the truth from.
    pub fn check(&self, scenario: &Scenario, external_urls: &HashMap<ServiceKind, String>) -> Result<(), TargetsError> {
        let err =
            |field: String, message: String| TargetsError { file: self.path.display().to_string(), field, message };
        let wanted = scenario.cluster.instances as usize;
        if self.instances.len() != wanted {
            return Err(err(
                "instances".into(),
                format!(
                    "names {} instance(s) but scenario {} runs {wanted}: list {wanted}, or set [cluster] instances = {}",
                    self.instances.len(),
                    scenario.name,
                    self.instances.len()
                ),
            ));
        }
        if !self.services.contains_key(&ServiceKind::MariaDb) && !external_urls.contains_key(&ServiceKind::MariaDb) {
            return Err(err(
                "services.mysql_url".into(),
                "is missing (and LOADTEST_MYSQL_URL is not set): each strategy's run needs a fresh database, and \
                 the truth after the run (stored twice, double processed, overlaps) is read from it"
                    .into(),
            ));
        }
        if self.adapter("deploy", None).is_none() && self.database_url.is_none() {
            return Err(err(
                "services.database_url".into(),
                "is missing: without a deploy adapter the harness cannot give the instances a fresh database, so it \
                 must read the truth after the run from the one they use; name it (read-only access is enough), or \
                 add a deploy adapter"
                    .into(),
            ));
        }
        if scenario.kind() == Kind::Jobs && self.adapter("operator", None).is_none() {
            return Err(err(
                "adapters.operator".into(),
                "is missing: a jobs run grants an admin with `server grant-admin <email>` on the deployment; add e.g. \
                 operator = \"docker exec app-1 server {args}\""
                    .into(),
            ));
        }
        for (i, fault) in scenario.faults.iter().enumerate() {
            for step in schedule(std::slice::from_ref(fault)) {
                if step.target == FaultTarget::Clients {
                    continue;
                }
                let action = step.action.as_str();
                let target = target_name(step.target);
                if self.adapter(action, target.as_deref()).is_none() {
                    let specific = target.map(|t| format!(" (or \"{action}:{t}\")")).unwrap_or_default();
                    return Err(err(
                        format!("adapters.{action}"),
                        format!(
                            "is missing: faults[{i}] ({} on {}) needs it on an external deployment; add {action} = \
                             \"<command>\"{specific} under [adapters]",
                            fault.action.as_str(),
                            fault.target
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How a target is named in an adapter key and in `{index}` / `{service}`.
pub fn target_name(target: FaultTarget) -> Option<String> {
    if let Some(n) = target.instance() {
        return Some(n.to_string());
    }
    target.service().map(|kind| kind.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A targets file in a folder of its own; the guard removes it.
    fn write(text: &str) -> (Folder, PathBuf) {
        let dir = std::env::temp_dir().join(crate::infra::unique_name("targets"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("targets.toml");
        std::fs::write(&path, text).unwrap();
        (Folder(dir), path)
    }

    struct Folder(PathBuf);

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scenario(faults: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\nkind = \"fanout\"\nstrategies = [\"rabbitmq\"]\n[cluster]\ninstances = 2\n\
             [load]\nusers = 10\nfriends_per_user = 2\nsse_clients = 10\nrate_per_s = 5\nduration_s = 10\n{faults}"
        );
        Scenario::parse(&text, "t").unwrap()
    }

    const TWO: &str = "instances = [\"http://127.0.0.1:1/\", \"http://127.0.0.1:2\"]\n\
                       [services]\nmysql_url = \"mysql://root:x@127.0.0.1:3\"\n\
                       database_url = \"mysql://root:x@127.0.0.1:3/app\"\n";

    #[test]
    fn a_fault_without_its_adapter_is_refused_naming_the_fault_and_the_key() {
        let (_dir, path) = write(&format!("{TWO}[adapters]\nkill-instance = \"docker kill app-{{index}}\"\n"));
        let targets = Targets::load(&path).unwrap();
        assert_eq!(targets.instances, ["http://127.0.0.1:1", "http://127.0.0.1:2"]);
        let kill = "[[faults]]\nat_s = 2.0\naction = \"kill-instance\"\ntarget = \"instance:2\"\nduration_s = 3.0\n";
        let err = targets.check(&scenario(kill), &HashMap::new()).unwrap_err().to_string();
        assert!(
            err.contains("adapters.restart-instance: is missing: faults[0] (kill-instance on instance:2)"),
            "{err}"
        );
        assert!(err.contains("(or \"restart-instance:2\")"), "{err}");

        let (_dir, path) = write(&format!(
            "{TWO}[adapters]\nkill-instance = \"docker kill app-{{index}}\"\n\"restart-instance:2\" = \"docker start app-2\"\n"
        ));
        let targets = Targets::load(&path).unwrap();
        targets.check(&scenario(kill), &HashMap::new()).unwrap();
        assert_eq!(targets.adapter("restart-instance", Some("2")), Some("docker start app-2"));
        assert_eq!(targets.adapter("restart-instance", Some("1")), None);
    }

    #[test]
    fn the_instance_count_the_database_and_adapter_names_are_checked() {
        let (_dir, path) = write("instances = [\"http://127.0.0.1:1\"]\n");
        let err = Targets::load(&path).unwrap().check(&scenario(""), &HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("instances: names 1 instance(s) but scenario t runs 2"), "{err}");

        let (_dir, path) = write("instances = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\n");
        let err = Targets::load(&path).unwrap().check(&scenario(""), &HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("services.mysql_url: is missing"), "{err}");

        // No deploy adapter: the instances keep their database, which must be named.
        let (_dir, path) = write(
            "instances = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\n[services]\nmysql_url = \"mysql://r@h:3\"\n",
        );
        let err = Targets::load(&path).unwrap().check(&scenario(""), &HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("services.database_url: is missing: without a deploy adapter"), "{err}");
        let (_dir, path) = write(
            "instances = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\n[services]\nmysql_url = \"mysql://r@h:3\"\n\
             [adapters]\ndeploy = \"./deploy.sh\"\n",
        );
        Targets::load(&path).unwrap().check(&scenario(""), &HashMap::new()).unwrap();

        let (_dir, path) = write(&format!("{TWO}[adapters]\nkil-instance = \"x\"\n"));
        let err = Targets::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("adapters.kil-instance: is not an action: expected one of deploy, teardown, operator"),
            "{err}"
        );

        let (_dir, path) = write("instances = [\"ftp://x\"]\n");
        assert!(Targets::load(&path).unwrap_err().to_string().contains("instances[0]: `ftp://x` is not http(s)"));
    }
}
