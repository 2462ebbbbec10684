//! The harness's CI scenarios, end to end: real containers, the real `server` binary (built
//! by cargo for this test), SSE clients over the wire, the ledger and the reports.
//! They run one after the other in one test: each provisions its own infrastructure,
//! because the faults scenario stops and restarts it.

use std::path::{Path, PathBuf};

use loadtest::cluster::{Cluster, ClusterError, ClusterSpec};
use loadtest::infra::ProvisionOptions;
use loadtest::report::{RunReport, StrategyResult};
use loadtest::run::{RunOptions, run};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

async fn run_ci(name: &str) -> RunReport {
    server::install_crypto_provider();
    let opts = RunOptions {
        scenario: repo().join("scenarios/ci").join(format!("{name}.toml")),
        provision: ProvisionOptions::from_env().expect("provisioning settings"),
        server_bin: PathBuf::from(env!("CARGO_BIN_EXE_server")),
        reports_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reports"),
        strategies: None,
        command: format!("cargo test --test scenarios ({name})"),
    };
    let (report, paths) = run(&opts).await.expect("the scenario runs");
    for file in [&paths.json, &paths.markdown, &paths.html, &paths.junit] {
        assert!(file.is_file(), "{} was not written", file.display());
    }
    let logs = paths.json.parent().expect("report dir").join("logs");
    assert!(logs.join(report.results[0].strategy.as_str()).join("instance-1.log").is_file(), "instance logs are kept");
    report
}

fn result<'a>(report: &'a RunReport, strategy: &str) -> &'a StrategyResult {
    report.results.iter().find(|r| r.strategy == strategy).unwrap_or_else(|| panic!("no result for {strategy}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_scenarios_reproduce_the_seed_claim_ramp_the_rate_and_show_what_each_strategy_loses_under_faults() {
    // notify-fanout: the seed's claim on 3 instances.
    let fanout = run_ci("notify-fanout").await;
    assert!(fanout.passed, "thresholds: {:#?}", fanout.thresholds);
    let local = result(&fanout, "local");
    let rabbit = result(&fanout, "rabbitmq");
    assert!(local.expected > 100 && rabbit.expected > 100, "too little load to judge: {local:?} {rabbit:?}");
    // A stream sits on one instance of three: about 2/3 of local pushes go nowhere.
    assert!((0.5..0.85).contains(&local.lost_ratio()), "local lost {:.2}", local.lost_ratio());
    assert_eq!((rabbit.lost, rabbit.duplicated, rabbit.unexpected, rabbit.stored_twice), (0, 0, 0, 0), "{rabbit:?}");

    // notify-capacity: a rate ramp per strategy, each step judged on its own requests.
    let capacity = run_ci("notify-capacity").await;
    assert!(capacity.passed, "thresholds: {:#?}", capacity.thresholds);
    let local = result(&capacity, "local");
    assert_eq!(local.ramp.len(), 1, "local loses at the first step, and the ramp stops there: {:?}", local.ramp);
    assert!(!local.ramp[0].sustained && local.ramp[0].lost > 0, "{:?}", local.ramp[0]);
    assert!(local.sustained.is_none());
    let rabbit = result(&capacity, "rabbitmq");
    let offered: Vec<f64> = rabbit.ramp.iter().map(|s| s.offered_per_s).collect();
    assert_eq!(offered, [10.0, 20.0, 40.0], "{:?}", rabbit.ramp);
    let sustained = rabbit.sustained.expect("rabbitmq sustains the small rates of the CI ramp");
    assert!(sustained.events_per_s >= 10.0 && sustained.delivered_per_s > 0.0, "{sustained:?}");

    // notify-faults: every strategy under a kill, a broker outage, a Redis restart, a pause.
    let faults = run_ci("notify-faults").await;
    assert!(faults.passed, "thresholds: {:#?}", faults.thresholds);
    assert_eq!(faults.results.len(), 5);
    for r in &faults.results {
        assert!(r.expected > 0, "{}: nothing expected", r.strategy);
        assert_eq!(r.unexpected, 0, "{}: misrouted or invented notifications", r.strategy);
        assert_eq!(r.stored_twice, 0, "{}: stored twice", r.strategy);
    }
    assert_eq!(result(&faults, "outbox").lost, 0, "the outbox loses nothing, even with the broker down at write time");
    let failed: Vec<_> = faults.faults.iter().filter(|f| f.outcome != "ok").collect();
    assert!(failed.is_empty(), "faults that could not be injected: {failed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_fails_to_start_is_reported_with_the_tail_of_its_log() {
    let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(loadtest::infra::unique_name("failing-start"));
    let spec = ClusterSpec {
        server_bin: PathBuf::from(env!("CARGO_BIN_EXE_server")),
        instances: 1,
        env: vec![("SERVER_DATABASE_URL".into(), "postgres://nowhere".into())],
        log_dir: logs,
        ready_timeout: std::time::Duration::from_secs(20),
    };

    let err = Cluster::start(spec).await.expect_err("a server without valid settings must not start");

    assert!(matches!(err, ClusterError::StartFailed { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("exited"), "{message}");
    assert!(message.contains("SERVER_DATABASE_URL"), "the log tail names the bad setting: {message}");
}
