//! The deployment recipes hold together: no cluster runs here, so the Kubernetes manifests
//! (deploy/k8s) are parsed and checked against the binaries' own parsers, so they cannot rot:
//! every setting given to the server is one `Settings` accepts, every Job's command line is one
//! the harness's CLI accepts, the targets file matches the StatefulSet and the scenario, and the
//! shards and the merge agree on the shard count and the folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use loadtest::cli::{Cli, Command};
use loadtest::cluster::Targets;
use loadtest::scenario::Scenario;
use loadtest::shard::Slice;
use serde::Deserialize;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// Every object of every manifest of deploy/k8s, with the file it came from.
fn objects() -> Vec<(String, Value)> {
    let dir = repo().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
            if !value.is_null() {
                out.push((file.file_name().unwrap().to_string_lossy().into_owned(), value));
            }
        }
    }
    out
}

fn find<'a>(objects: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .map(|(_, o)| o)
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// The harness's command line of a Job's only container, with `$(VAR)` replaced.
fn cli(job: &Value, vars: &[(&str, String)]) -> Command {
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never", "a Job's pod runs once: {job}");
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(strings(&c["command"]), ["/usr/local/bin/loadtest"]);
    // The volumes the harness reads and writes: the shared data and the ConfigMap.
    let mounts: BTreeMap<String, String> = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["mountPath"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(mounts.get("data").map(String::as_str), Some("/data"), "{job}");
    assert_eq!(mounts.get("config").map(String::as_str), Some("/etc/loadtest"), "{job}");
    let volumes = pod["volumes"].as_array().expect("volumes");
    assert!(volumes.iter().any(|v| v["name"] == "data" && v["persistentVolumeClaim"]["claimName"] == "loadtest-data"));
    assert!(volumes.iter().any(|v| v["name"] == "config" && v["configMap"]["name"] == "loadtest"));
    let mut args = vec!["loadtest".to_string()];
    for arg in strings(&c["args"]) {
        let mut arg = arg;
        for (var, value) in vars {
            arg = arg.replace(&format!("$({var})"), value);
        }
        assert!(!arg.contains("$("), "an unexpanded variable in {arg}");
        args.push(arg);
    }
    Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("the harness refuses {args:?}: {e}")).command
}

#[test]
fn the_kubernetes_recipe_is_one_the_server_and_the_harness_accept() {
    let objects = objects();
    for (file, o) in &objects {
        for field in ["apiVersion", "kind"] {
            assert!(o[field].as_str().is_some_and(|s| !s.is_empty()), "{file}: an object without {field}: {o}");
        }
        assert!(o["metadata"]["name"].as_str().is_some_and(|s| !s.is_empty()), "{file}: an object without a name");
    }

    // The server: a StatefulSet, each pod named by the headless Service, ready on /readyz.
    let sts = find(&objects, "StatefulSet", "server");
    let replicas = sts["spec"]["replicas"].as_u64().expect("replicas") as usize;
    let service = find(&objects, "Service", sts["spec"]["serviceName"].as_str().expect("serviceName"));
    assert_eq!(service["spec"]["clusterIP"], "None", "per-pod names need a headless Service");
    let labels = &sts["spec"]["template"]["metadata"]["labels"];
    for (k, v) in sts["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels") {
        assert_eq!(&labels[k], v, "the StatefulSet's selector matches its pods");
    }
    for svc in ["server", "server-http"] {
        for (k, v) in find(&objects, "Service", svc)["spec"]["selector"].as_object().expect("selector") {
            assert_eq!(&labels[k], v, "Service {svc} selects the server's pods");
        }
    }
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    // Every setting the recipe gives the server is one it accepts, with a valid value.
    let secret = find(&objects, "Secret", container["envFrom"][0]["secretRef"]["name"].as_str().expect("a Secret"));
    let mut env: Vec<(String, String)> = secret["stringData"]
        .as_object()
        .expect("stringData")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("a string").to_string()))
        .collect();
    for var in container["env"].as_array().expect("env") {
        let value = var["value"].as_str().map_or_else(|| "server-0".to_string(), str::to_string);
        env.push((var["name"].as_str().expect("a name").to_string(), value));
    }
    let settings = server::Settings::from_sources(None, env.clone())
        .unwrap_or_else(|e| panic!("the server refuses the recipe's settings: {e}"));
    let port: u16 = container["ports"][0]["containerPort"].as_u64().expect("a port") as u16;
    assert_eq!(settings.listen_addr.port(), port, "the server listens where the pod says");

    // The targets file names each pod of the StatefulSet and suits the scenario the README
    // puts in the ConfigMap.
    let targets = Targets::load(&repo().join("deploy/k8s/targets.toml")).expect("the targets file");
    let want: Vec<String> = (0..replicas).map(|i| format!("http://server-{i}.server:{port}")).collect();
    assert_eq!(targets.instances, want);
    let readme = std::fs::read_to_string(repo().join("deploy/k8s/README.md")).expect("the recipe's README");
    let scenario_file = "scenarios/notify-fanout.toml";
    assert!(
        readme.contains(&format!(
            "kubectl create configmap loadtest --from-file=targets.toml=deploy/k8s/targets.toml \\\n  \
             --from-file=scenario.toml={scenario_file}"
        )),
        "the README makes the ConfigMap from the repository's files"
    );
    let scenario = Scenario::load(&repo().join(scenario_file)).expect("the scenario");
    targets.check(&scenario, &Default::default()).expect("the targets suit the scenario");
    loadtest::shard::prepare::shardable(&scenario, scenario_file).expect("a scenario shards can run");
    let secret_db = env.iter().find(|(k, _)| k == "SERVER_DATABASE_URL").map(|(_, v)| v.clone());
    assert_eq!(targets.database_url, secret_db, "the truth is read from the database the servers use");

    // The three Jobs: prepare writes the world every shard reads; the shards are an Indexed
    // Job; the merge lists every shard's folder.
    let Command::Prepare { targets: Some(t), out: world, strategy: Some(strategy), .. } =
        cli(find(&objects, "Job", "loadtest-prepare"), &[])
    else {
        panic!("loadtest-prepare does not run `loadtest prepare --targets --strategy`");
    };
    assert_eq!(t, Path::new("/etc/loadtest/targets.toml"));
    assert!(scenario.strategies().contains(&strategy));
    let shards = find(&objects, "Job", "loadtest-shards");
    assert_eq!(shards["spec"]["completionMode"], "Indexed");
    let n = shards["spec"]["completions"].as_u64().expect("completions") as u32;
    assert_eq!(shards["spec"]["parallelism"].as_u64(), Some(u64::from(n)), "every shard runs at once");
    let shard_env = &shards["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert_eq!(
        shard_env["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    let var = shard_env["name"].as_str().expect("the index's variable");
    let mut outs = Vec::new();
    for i in 0..n {
        let Command::Run { shard: Some(slice), world: Some(w), out: Some(out), .. } =
            cli(shards, &[(var, i.to_string())])
        else {
            panic!("loadtest-shards does not run `loadtest run --shard --world --out`");
        };
        assert_eq!(slice, Slice { index: i, count: n });
        assert_eq!(w, world, "the shards read the world prepare wrote");
        outs.push(out);
    }
    let Command::Merge { dirs, .. } = cli(find(&objects, "Job", "loadtest-merge"), &[]) else {
        panic!("loadtest-merge does not run `loadtest merge`");
    };
    assert_eq!(dirs, outs, "the merge lists every shard's folder, and only those");
    let pvc = find(&objects, "PersistentVolumeClaim", "loadtest-data");
    assert_eq!(strings(&pvc["spec"]["accessModes"]), ["ReadWriteMany"], "every shard's pod writes at once");
}
