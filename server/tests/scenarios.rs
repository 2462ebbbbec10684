//! The harness's CI scenarios, end to end: real containers, the real `server` binary (built
//! by cargo for this test), SSE clients over the wire, the ledger and the reports.
//! They run one after the other: each provisions its own infrastructure, because the faults
//! scenarios stop and restart it.

use std::path::{Path, PathBuf};

use loadtest::cluster::{Cluster, ClusterError, ClusterSpec};
use loadtest::infra::ProvisionOptions;
use loadtest::report::{RunReport, StrategyResult};
use loadtest::run::{RunOptions, run};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

async fn run_ci(name: &str) -> RunReport {
    run_ci_against(name, None).await
}

/// Runs a CI scenario, against the deployment of a targets file when given (the external
/// runner) or as processes.
async fn run_ci_against(name: &str, targets: Option<PathBuf>) -> RunReport {
    run_ci_with(name, targets, 1, None).await.0
}

async fn run_ci_with(
    name: &str,
    targets: Option<PathBuf>,
    repeat: u32,
    metrics_listen: Option<std::net::SocketAddr>,
) -> (RunReport, PathBuf) {
    server::install_crypto_provider();
    let external = targets.is_some();
    let opts = RunOptions {
        scenario: repo().join("scenarios/ci").join(format!("{name}.toml")),
        provision: ProvisionOptions::from_env().expect("provisioning settings"),
        server_bin: PathBuf::from(env!("CARGO_BIN_EXE_server")),
        reports_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reports"),
        strategies: None,
        command: format!("cargo test --test scenarios ({name})"),
        targets,
        repeat,
        metrics_listen,
    };
    let (report, paths) = run(&opts).await.expect("the scenario runs");
    for file in [&paths.json, &paths.markdown, &paths.html, &paths.junit] {
        assert!(file.is_file(), "{} was not written", file.display());
    }
    let logs = paths.json.parent().expect("report dir").join("logs").join(report.results[0].strategy.as_str());
    let kept = if external { "adapters.log" } else { "instance-1.log" };
    assert!(logs.join(kept).is_file(), "{kept} is kept in {}", logs.display());
    for api in report.results.iter().filter_map(|r| r.api.as_ref()).filter(|a| !a.goose_report.is_empty()) {
        let goose_html = paths.json.with_file_name(&api.goose_report);
        assert!(goose_html.is_file(), "goose's own report {} was not written", goose_html.display());
    }
    let dir = paths.json.parent().expect("report dir").to_path_buf();
    (report, dir)
}

/// The thresholds a run broke, one line each, with every strategy's counts: short enough that
/// a CI log cut to its head and tail still shows why each failing test failed.
fn broken(report: &RunReport) -> String {
    let mut out = String::from("thresholds broken:");
    for t in report.thresholds.iter().filter(|t| !t.passed) {
        out.push_str(&format!("\n  {}: {}", t.name, t.detail));
    }
    for r in &report.results {
        out.push_str(&format!("\n  {}", counts(r)));
    }
    out
}

/// One strategy's counts on one line.
fn counts(r: &StrategyResult) -> String {
    format!(
        "[{}] expected {} delivered {} lost {} duplicated {} unexpected {} stored twice {} failed requests {} resumes {}",
        r.strategy,
        r.expected,
        r.delivered,
        r.lost,
        r.duplicated,
        r.unexpected,
        r.stored_twice,
        r.failed_requests,
        r.resumes
    )
}

/// Text without the terminal colour codes a log may carry.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The scenarios measure races and rates: one at a time, even though cargo runs tests at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn result<'a>(report: &'a RunReport, strategy: &str) -> &'a StrategyResult {
    report.results.iter().find(|r| r.strategy == strategy).unwrap_or_else(|| panic!("no result for {strategy}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_scenarios_reproduce_the_seed_claim_ramp_the_rate_and_show_what_each_strategy_loses_under_faults() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // notify-fanout: the seed's claim on 3 instances.
    check_fanout(&run_ci("notify-fanout").await);

    // notify-capacity: a rate ramp per strategy, each step judged on its own requests. Two
    // rounds: each measures its own single-instance yardstick before the strategies.
    let (capacity, dir) = run_ci_with("notify-capacity", None, 2, None).await;
    assert!(capacity.passed, "{}", broken(&capacity));
    let yardstick = &capacity.baseline.as_ref().expect("a capacity run has its yardstick")["single_instance_local"];
    let rounds = yardstick["rounds"].as_array().expect("one yardstick per round");
    assert_eq!(rounds.len(), 2, "{yardstick}");
    assert!(rounds.iter().all(|r| r["sustained"]["events_per_s"].as_f64() >= Some(10.0)), "{yardstick}");
    assert!(dir.join("yardstick").is_dir() && dir.join("yardstick-2").is_dir(), "each yardstick keeps its logs");
    let sustained = capacity.spread.iter().find(|s| s.strategy == "rabbitmq" && s.figure == "sustained/s");
    assert_eq!(sustained.map(|s| s.values.len()), Some(2), "{:?}", capacity.spread);
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
    check_faults(&run_ci("notify-faults").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_repeated_runs_give_each_figure_its_range_and_a_run_is_not_a_regression_of_itself() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // A Prometheus-style scraper watches the run through --metrics-listen.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = free.local_addr().expect("its address");
    drop(free);
    let stop = tokio_util::sync::CancellationToken::new();
    let scraper = tokio::spawn(scrape(addr, stop.clone()));
    let (repeated, _) = run_ci_with("notify-fanout", None, 2, Some(addr)).await;
    stop.cancel();
    let scrapes = scraper.await.expect("the scraper ends");
    // While rabbitmq's second round ran, the endpoint counted its deliveries, with its labels.
    let series = r#"{scenario="ci-notify-fanout",strategy="rabbitmq",round="2"}"#;
    let delivered: Vec<f64> = scrapes
        .iter()
        .filter_map(|text| {
            let line = text.lines().find(|l| l.starts_with(&format!("loadtest_delivered_total{series} ")))?;
            line.rsplit(' ').next()?.parse().ok()
        })
        .collect();
    assert!(delivered.iter().any(|d| *d > 0.0), "no scrape saw rabbitmq's round 2 deliver: {delivered:?}");
    assert!(delivered.windows(2).all(|w| w[0] <= w[1]), "a counter went down: {delivered:?}");
    check_fanout(&repeated);
    assert_eq!(repeated.repeats.len(), 2, "both rounds are kept");
    assert_eq!(repeated.repeats[0], repeated.results, "the first round is the results");
    let second: Vec<_> = repeated.thresholds.iter().filter(|t| t.name.ends_with("#2")).collect();
    assert!(!second.is_empty(), "the second round is judged too: {:#?}", repeated.thresholds);
    let p99 = repeated
        .spread
        .iter()
        .find(|s| s.strategy == "rabbitmq" && s.figure == "p99 ms")
        .expect("rabbitmq's p99 over the rounds");
    assert_eq!(p99.values.len(), 2);
    assert!(p99.min <= p99.median && p99.median <= p99.max, "{p99:?}");
    // Compared with itself, nothing regresses, and the comparison says it used the ranges.
    let c = loadtest::compare::compare(&repeated, "A", &repeated, "B", 0.1).expect("comparable");
    assert!(c.regressions().is_empty(), "{:?}", c.regressions());
    assert!(c.noise.starts_with("2 runs (A) and 2 runs (B)"), "{}", c.noise);
}

/// Every answer of `GET http://addr/metrics`, once a second until `stop`.
async fn scrape(addr: std::net::SocketAddr, stop: tokio_util::sync::CancellationToken) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut seen = Vec::new();
    while !stop.is_cancelled() {
        if let Ok(answer) = http.get(format!("http://{addr}/metrics")).send().await {
            assert_eq!(answer.status(), 200);
            seen.push(answer.text().await.unwrap_or_default());
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.cancelled() => {}
        }
    }
    seen
}

/// notify-fanout's verdicts: the seed's claim on 3 instances.
fn check_fanout(fanout: &RunReport) {
    assert!(fanout.passed, "{}", broken(fanout));
    let local = result(fanout, "local");
    let rabbit = result(fanout, "rabbitmq");
    assert!(local.expected > 100 && rabbit.expected > 100, "too little load to judge: {local:?} {rabbit:?}");
    // A stream sits on one instance of three: about 2/3 of local pushes go nowhere.
    assert!((0.5..0.85).contains(&local.lost_ratio()), "local lost {:.2}", local.lost_ratio());
    assert_eq!((rabbit.lost, rabbit.duplicated, rabbit.unexpected, rabbit.stored_twice), (0, 0, 0, 0), "{rabbit:?}");
    // max_p99_ms_window: every 5 s window of the 8 s load (starting at 2..=5 s) is kept.
    let w = rabbit.p99_windows.as_ref().expect("the windowed limit keeps rabbitmq's windows");
    assert_eq!((w.window_s, w.from_s, w.p99_us.len()), (5, 2, 4), "{w:?}");
    assert!(w.worst_p99_us > 0 && w.worst_p99_us <= rabbit.latency_us.max * 101 / 100, "{w:?} {:?}", rabbit.latency_us);
    assert!(local.p99_windows.is_none(), "no windowed limit for local, nothing computed");
    // Where the time went: every strategy times the cause's commit; rabbitmq's servers also both
    // publishers and the store; local only stores.
    let stages = |r: &StrategyResult| {
        r.notes.iter().find(|n| n.starts_with("mean time a batch spent")).cloned().unwrap_or_default()
    };
    let (rabbit_stages, local_stages) = (stages(rabbit), stages(local));
    for stage in [
        "the cause's commit",
        "waiting for the store publisher",
        "store message to its confirm",
        "delivered store message waiting for a store transaction",
        "store transaction",
        "waiting for the fanout publisher",
        "fanout message to its confirm",
    ] {
        assert!(rabbit_stages.contains(stage), "{stage} missing: {:?}", rabbit.notes);
    }
    assert!(
        local_stages.contains("the cause's commit")
            && local_stages.contains("store transaction")
            && !local_stages.contains("confirm"),
        "{:?}",
        local.notes
    );
}

/// notify-faults' verdicts: every strategy under a kill, a broker outage, a Redis restart, a
/// pause.
fn check_faults(faults: &RunReport) {
    assert!(faults.passed, "{}", broken(faults));
    assert_eq!(faults.results.len(), 5);
    for r in &faults.results {
        assert!(r.expected > 0, "{}: nothing expected", r.strategy);
        assert_eq!(r.unexpected, 0, "{}: misrouted or invented notifications", r.strategy);
        assert_eq!(r.stored_twice, 0, "{}: stored twice", r.strategy);
    }
    let outbox = result(faults, "outbox");
    assert_eq!(outbox.lost, 0, "the outbox loses nothing, even with the broker down at write time");
    // Where the outbox's time went: its relay's passes, stage by stage.
    let stages = outbox.notes.iter().find(|n| n.starts_with("mean time a batch spent")).cloned().unwrap_or_default();
    for stage in [
        "the cause's commit",
        "relay numbering new rows",
        "outbox row waiting for a relay pass",
        "relay's claim of the rows",
        "fanout message to its confirm",
        "relay marking the rows and committing",
    ] {
        assert!(stages.contains(stage), "{stage} missing: {:?}", outbox.notes);
    }
    assert!(!stages.contains("store transaction"), "the outbox stores in the cause's transaction: {stages}");
    // The worst 2 s window is reported, and after each fault the worst window until the next.
    let w = outbox.p99_windows.as_ref().expect("the windowed limit keeps outbox's windows");
    assert!(w.worst_p99_us >= w.p99_us[0], "{w:?}");
    // Windows start from 1 s to 5 s (the 6 s load ends at 7 s): a fault before the last start
    // has a worst window after it.
    for x in outbox.recoveries.iter().filter(|x| x.at_s.floor() <= f64::from(w.from_s) + w.p99_us.len() as f64 - 1.0) {
        assert!(x.worst_p99_window_us.is_some(), "{x:?} has no worst window: {w:?}");
    }
    let failed: Vec<_> = faults.faults.iter().filter(|f| f.outcome != "ok").collect();
    assert!(failed.is_empty(), "faults that could not be injected: {failed:#?}");
    // Each target keeps its own timeline: the broker's slow start does not push the Redis
    // restart (5 s) and the pause (5.5 s) past the end of the load (7 s).
    let late: Vec<_> = faults.faults.iter().filter(|f| f.target != "rabbitmq" && f.at_s > 7.0).collect();
    assert!(late.is_empty(), "faults that slipped past the load: {late:#?}");
}

/// Three ports in a row that are free now: the docker deployment's instances listen on
/// base + 1..=3.
fn free_port_run() -> u16 {
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    (0..200).map(|k| 21_000 + k * 37).find(|base| (1..=3).all(|i| free(base + i))).expect("three free ports in a row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_external_runner_reaches_the_process_runners_verdicts_on_a_docker_deployment() {
    let _serial = ONE_AT_A_TIME.lock().await;
    server::install_crypto_provider();
    // The server image, from this build's binary, without a registry.
    let tag = "loadtest/server:test";
    let built = std::process::Command::new("bash")
        .arg(repo().join("scripts/build-server-image.sh"))
        .arg(env!("CARGO_BIN_EXE_server"))
        .arg(tag)
        .output()
        .expect("bash runs");
    assert!(built.status.success(), "building the image failed: {}", String::from_utf8_lossy(&built.stderr));

    // The services this test owns; the deployment and its adapters are described to the
    // harness by a targets file only.
    let infra = loadtest::infra::Infra::provision(&ProvisionOptions::from_env().expect("settings"))
        .await
        .expect("the services start");
    let urls = infra.urls();
    let base = free_port_run();
    let prefix = loadtest::infra::unique_name("ext");
    let docker = repo().join("deploy/docker");
    let pid = std::process::id();
    let env = format!("APP_IMAGE={tag} APP_PREFIX={prefix} APP_BASE_PORT={base}");
    let adapters = [
        ("deploy", format!("{env} {}/deploy.sh", docker.display())),
        ("teardown", format!("{env} {}/teardown.sh", docker.display())),
        ("kill-instance", format!("docker kill {prefix}-{{index}}")),
        ("restart-instance", format!("docker start {prefix}-{{index}}")),
        ("pause-instance", format!("docker pause {prefix}-{{index}}")),
        ("resume-instance", format!("docker unpause {prefix}-{{index}}")),
        ("stop-service", format!("{}/service.sh stop {{service}} {pid}", docker.display())),
        ("start-service", format!("{}/service.sh start {{service}} {pid}", docker.display())),
        ("restart-service", format!("{}/service.sh restart {{service}} {pid}", docker.display())),
    ];
    let mut text = format!(
        "instances = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\"]\n\
         [services]\namqp_url = \"{}\"\nredis_url = \"{}\"\nmysql_url = \"{}\"\n[adapters]\n",
        base + 1,
        base + 2,
        base + 3,
        urls.amqp,
        urls.redis,
        urls.mysql
    );
    for (key, command) in adapters {
        text.push_str(&format!("{key} = {}\n", toml::Value::String(command)));
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&prefix);
    std::fs::create_dir_all(&dir).expect("a folder");
    let targets = dir.join("targets.toml");
    std::fs::write(&targets, text).expect("the targets file");

    let fanout = run_ci_against("notify-fanout", Some(targets.clone())).await;
    check_fanout(&fanout);
    let faults = run_ci_against("notify-faults", Some(targets.clone())).await;
    check_faults(&faults);
    // Every fault on an instance or a service went through its adapter, which said so.
    let injected: Vec<_> = faults.faults.iter().filter(|f| f.target != "clients").collect();
    assert!(!injected.is_empty());
    for f in injected {
        let adapter = f.adapter.as_ref().unwrap_or_else(|| panic!("no adapter record: {f:?}"));
        assert_eq!(adapter.status, "exit 0", "{f:?}");
        assert!(adapter.command.contains("docker") || adapter.command.contains("service.sh"), "{f:?}");
    }
    assert_eq!(faults.targets.as_deref(), Some(targets.display().to_string().as_str()));
    // The teardown adapter removed the containers.
    let left = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("name={prefix}-")])
        .output()
        .expect("docker ps");
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty(), "containers left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_churn_scenario_resumes_every_stream_exactly_whatever_the_strategy() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // notify-churn: every client drops and resumes its stream again and again while
    // notifications flow; a resume must neither skip nor repeat anything.
    let churn = run_ci("notify-churn").await;
    assert!(churn.passed, "{}", broken(&churn));
    assert_eq!(churn.results.len(), 5);
    for r in &churn.results {
        assert!(r.expected > 500, "{}: too little load to judge: {r:?}", r.strategy);
        assert!(r.resumes >= 100, "{}: the churn did not exercise the resume path: {} resumes", r.strategy, r.resumes);
        assert_eq!((r.inversions, r.same_id_twice, r.unexpected), (0, 0, 0), "{}: {r:?}", r.strategy);
    }
    for strategy in ["redis-streams", "rabbitmq", "outbox"] {
        let r = result(&churn, strategy);
        assert_eq!((r.lost, r.duplicated), (0, 0), "{strategy}: {r:?}");
    }
    // The naive baseline still shows the seed's loss: churn moves its clients, not its pushes.
    assert!(result(&churn, "local").lost_ratio() > 0.2, "{:?}", result(&churn, "local"));
    let churned: Vec<_> = churn.faults.iter().filter(|f| f.action == "client-churn").collect();
    assert_eq!(churned.len(), 5, "one churn window per strategy: {:#?}", churn.faults);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_browser_scenario_keeps_every_browser_stream_through_a_session_store_outage() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // notify-browser: clients that give up on any non-200, as EventSource does, churn while
    // Redis (the sessions) is down; the server tells them to come back instead.
    let browser = run_ci("notify-browser").await;
    assert!(browser.passed, "{}", broken(&browser));
    let stopped = browser.faults.iter().filter(|f| f.action == "stop-service" && f.outcome == "ok").count();
    assert_eq!(stopped, 2, "Redis was stopped once per strategy: {:#?}", browser.faults);
    for r in &browser.results {
        assert!(r.expected > 300, "{}: too little load to judge: {r:?}", r.strategy);
        assert!(r.resumes >= 20, "{}: the churn did not reconnect the streams: {r:?}", r.strategy);
        assert_eq!((r.given_up, r.lost, r.same_id_twice, r.unexpected), (0, 0, 0, 0), "{}: {r:?}", r.strategy);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_chat_scenarios_count_every_message_per_member_and_show_what_each_relay_loses() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // chat-fanout: members of a room on different instances.
    let fanout = run_ci("chat-fanout").await;
    assert!(fanout.passed, "{}", broken(&fanout));
    for r in &fanout.results {
        let chat = r.chat.as_ref().expect("chat counts");
        assert_eq!(chat.clients, 60, "{}", r.strategy);
        assert!(chat.confirmed > 200 && r.expected > 500, "{}: too little load to judge: {r:?}", r.strategy);
        // Every confirmed message is stored; an unconfirmed one may be.
        assert!(chat.confirmed <= chat.stored && chat.stored <= chat.sent, "{}: {chat:?}", r.strategy);
        assert_eq!((r.unexpected, chat.history_mismatches), (0, 0), "{}: {r:?}", r.strategy);
    }
    assert!(result(&fanout, "local").lost_ratio() > 0.4, "{:?}", result(&fanout, "local"));
    let pubsub = result(&fanout, "redis-pubsub");
    assert_eq!((pubsub.lost, pubsub.duplicated), (0, 0), "{pubsub:?}");
    // Only the recovering relay delivers in seq order; redis-pubsub in arrival order.
    let recovering = result(&fanout, "redis-recovering");
    assert_eq!((recovering.lost, recovering.duplicated, recovering.inversions), (0, 0, 0), "{recovering:?}");

    // chat-faults: churn, a dead instance, a Redis restart.
    let faults = run_ci("chat-faults").await;
    assert!(faults.passed, "{}", broken(&faults));
    let failed: Vec<_> = faults.faults.iter().filter(|f| f.outcome != "ok").collect();
    assert!(failed.is_empty(), "faults that could not be injected: {failed:#?}");
    for r in &faults.results {
        assert!(r.resumes >= 20, "{}: the churn did not exercise the resume path: {r:?}", r.strategy);
    }
    let recovering = result(&faults, "redis-recovering");
    assert_eq!((recovering.lost, recovering.duplicated, recovering.inversions), (0, 0, 0), "{recovering:?}");

    // chat-capacity: the message rate in steps, each judged on its own messages.
    let capacity = run_ci("chat-capacity").await;
    assert!(capacity.passed, "{}", broken(&capacity));
    for r in &capacity.results {
        let offered: Vec<f64> = r.ramp.iter().map(|s| s.offered_per_s).collect();
        assert_eq!(offered, [40.0, 80.0, 160.0], "{}: {:?}", r.strategy, r.ramp);
        for step in &r.ramp {
            assert!(step.expected > 0 && step.sent > 0, "{}: an empty step {step:?}", r.strategy);
            assert_eq!(step.delivered + step.lost, step.expected, "{}: {step:?}", r.strategy);
        }
        assert!(r.sustained.is_some(), "{}: the small CI rates are sustained: {:?}", r.strategy, r.ramp);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_rental_scenarios_find_double_processing_and_prove_claims_bookings_and_firings_hold() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // claim-contention: naive must be seen double-processing; skip-locked never does, even
    // with an instance frozen past its lease; nothing stuck.
    let claims = run_ci("claim-contention").await;
    assert!(claims.passed, "{}", broken(&claims));
    for r in &claims.results {
        let c = r.claim.expect("claim counts");
        assert_eq!((c.items, c.done, c.stuck), (600, 600, 0), "{}: {c:?}", r.strategy);
        assert!(c.embed_calls >= c.items, "{}: every post was embedded at least once: {c:?}", r.strategy);
    }
    assert!(result(&claims, "naive").claim.unwrap().double_processed > 0);
    assert_eq!(result(&claims, "skip-locked").claim.unwrap().double_processed, 0);
    // The freeze lands mid-claim on purpose: without the token the frozen worker commits again.
    assert!(result(&claims, "skip-locked-unfenced").claim.unwrap().double_processed > 0);
    assert!(claims.faults.iter().all(|f| f.outcome == "ok"), "{:#?}", claims.faults);

    // booking-race: overlapping requests approved at once on 3 instances.
    let booking = run_ci("booking-race").await;
    assert!(booking.passed, "{}", broken(&booking));
    let b = result(&booking, "optimistic").booking.expect("booking counts");
    assert_eq!((b.requests, b.approvals, b.overlaps, b.disagreements, b.errors), (48, 48, 0, 0, 0), "{b:?}");
    assert!(b.approved >= 4 && b.approved <= b.max_possible, "one per item at least, never more than possible: {b:?}");
    assert_eq!(b.approved + b.conflicts, b.approvals, "{b:?}");
    // The control group: the same race with no guard double-books, and the checker sees it;
    // every approval it answered 2xx is still approved in the database.
    let naive = result(&booking, "naive").booking.expect("booking counts");
    assert!(naive.overlaps > 0, "the unguarded race double-booked: {naive:?}");
    assert_eq!((naive.disagreements, naive.errors), (0, 0), "{naive:?}");

    // job-fires-once: a 1-second job with an instance killed and restarted, then a rolling
    // restart of all three.
    let jobs = run_ci("job-fires-once").await;
    assert!(jobs.passed, "{}", broken(&jobs));
    let j = result(&jobs, "clustered").jobs.clone().expect("job counts");
    assert!(j.firings >= 16, "a 20 s window of a 1 s job: {j:?}");
    assert_eq!((j.double_firings, j.missed_firings), (0, 0), "{j:?}");
    // The control group: every instance firing on its own clock is caught by the same judge.
    let naive = result(&jobs, "naive").jobs.clone().expect("job counts");
    assert!(naive.double_firings >= 8 && naive.runs > naive.firings, "{naive:?}");
    let rolled: Vec<_> = jobs.faults.iter().filter(|f| f.action == "rolling-restart").collect();
    assert_eq!(rolled.len(), 6, "each instance in turn, for each of the two strategies: {rolled:#?}");
    assert!(rolled.iter().all(|f| f.outcome == "ok"), "{rolled:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_rolling_deploy_loses_no_notification_and_fails_no_causing_request() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let report = run_ci("notify-rolling-deploy").await;
    assert!(report.passed, "{}", broken(&report));
    let rolled: Vec<_> = report.faults.iter().filter(|f| f.action == "rolling-restart").collect();
    assert_eq!(rolled.len(), 6, "3 instances x 2 strategies: {rolled:#?}");
    for f in &rolled {
        assert_eq!(f.outcome, "ok", "{f:#?}");
        let detail = f.detail.as_deref().unwrap_or_default();
        assert!(detail.contains("after SIGTERM") && detail.contains("ready again"), "{f:#?}");
    }
    for r in &report.results {
        assert!(r.expected > 200, "{}: too little load to judge: {}", r.strategy, r.expected);
        assert_eq!((r.lost, r.duplicated, r.unexpected, r.failed_requests), (0, 0, 0, 0), "{}", counts(r));
        // Every stream's instance was restarted: each one resumed somewhere at least once.
        assert!(r.resumes >= 40, "{}: {} resumes", r.strategy, r.resumes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_a_broker_cluster_losing_a_node_costs_classic_queues_and_not_the_quorum_outbox() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (report, dir) = run_ci_with("notify-broker-cluster", None, 1, None).await;
    assert!(report.passed, "{}", broken(&report));
    assert_eq!(report.results.len(), 2);
    let nodes: Vec<_> = report.faults.iter().filter(|f| f.target == "rabbitmq:1").collect();
    assert_eq!(nodes.len(), 4, "a kill and a start per strategy: {nodes:#?}");
    assert!(nodes.iter().all(|f| f.outcome == "ok"), "{nodes:#?}");
    for r in &report.results {
        assert!(r.expected > 400, "{}: too little load to judge: {}", r.strategy, r.expected);
        assert_eq!((r.unexpected, r.stored_twice), (0, 0), "{}", counts(r));
    }
    let classic = result(&report, "rabbitmq");
    assert!(classic.lost * 5 >= classic.expected, "the kill hit classic queues: {}", counts(classic));
    let outbox = result(&report, "outbox-quorum");
    assert_eq!((outbox.lost, outbox.duplicated), (0, 0), "{}", counts(outbox));
    // Every instance reconnected to another node once node 1 died.
    for i in 1..=3 {
        let log = std::fs::read_to_string(dir.join(format!("logs/outbox-quorum/instance-{i}.log"))).expect("log");
        let plain = strip_ansi(&log);
        assert!(plain.contains("node=1 nodes=3"), "instance {i} first connects to node 1");
        assert!(plain.contains("node=2 nodes=3") || plain.contains("node=3 nodes=3"), "instance {i} fails over");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_embed_scenario_shows_the_request_paying_for_an_inline_embedder_and_batch_keeping_it_off() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // The seed's claim, both sides: with a 3 s embedder, `inline` answers POST /rentals
    // after it, `batch` long before it, and search finds every post by meaning either way.
    let report = run_ci("embed-off-request-path").await;
    assert!(report.passed, "{}", broken(&report));
    let (inline, batch) = (result(&report, "inline"), result(&report, "batch"));
    for r in [inline, batch] {
        let e = r.embed.as_ref().expect("embed counts");
        assert_eq!((e.posts, e.created, e.failed), (32, 32, 0), "{}: {e:?}", r.strategy);
        assert_eq!(
            (e.searchable, e.unsearchable, e.not_embedded, e.embedded_twice),
            (32, 0, 0, 0),
            "{}: {e:?}",
            r.strategy
        );
        // The database's clock agrees with the searches: no post is embedded later than found.
        assert!(e.embedded_after_us.max <= e.searchable_us.max, "{}: {e:?}", r.strategy);
    }
    assert_eq!(inline.embed.as_ref().unwrap().embedded_in_request, 32);
    assert_eq!(batch.embed.as_ref().unwrap().embedded_in_request, 0);
    assert!(inline.latency_us.p50 >= 3_000_000, "every inline POST waits for the embedder: {:?}", inline.latency_us);
    // No batch request waited for the embedder; the typical one is far faster than any inline.
    assert!(batch.latency_us.p99 < 3_000_000, "a batch POST waited as long as the embedder: {:?}", batch.latency_us);
    assert!(
        batch.latency_us.p50 * 10 < inline.latency_us.p50,
        "batch p50 {:?} vs inline p50 {:?}",
        batch.latency_us,
        inline.latency_us
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_api_scenario_drives_every_endpoint_with_goose_and_counts_each_request() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let report = run_ci("api-capacity").await;
    assert!(report.passed, "{}", broken(&report));
    for r in &report.results {
        let a = r.api.as_ref().expect("api counts");
        assert_eq!(a.users, 8, "{}: every goose user ran", r.strategy);
        let names: Vec<&str> = a.endpoints.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["GET /diaries", "GET /notifications", "GET /rentals/search", "POST /diaries"],
            "{}: every transaction of the mix was measured",
            r.strategy
        );
        assert!(a.endpoints.iter().all(|e| e.requests > 0 && e.latency_us.p50 > 0), "{}: {a:#?}", r.strategy);
        assert_eq!(a.requests, a.endpoints.iter().map(|e| e.requests).sum::<u64>());
        assert_eq!(a.failures, 0, "{}: {:?}", r.strategy, a.failures_by_status);
        assert!(r.throughput_per_s > 0.0 && r.latency_us.p99 >= r.latency_us.p50);
        // The closed loop's percentiles are corrected for coordinated omission, and say so.
        assert_eq!(a.co_mitigation.as_deref(), Some("average"));
        let raw = a.uncorrected_latency_us.as_ref().expect("the uncorrected percentiles are kept");
        assert!(r.latency_us.max >= raw.max * 99 / 100, "back-filling only adds waits: {:?} {raw:?}", r.latency_us);
        assert!(r.notes.iter().any(|n| n.contains("corrected for coordinated omission")), "{:?}", r.notes);
    }

    // The open loop: every request of the schedule (60/s x 4 s) started, whatever the answers.
    let open = run_ci("api-open-loop").await;
    assert!(open.passed, "{}", broken(&open));
    let r = result(&open, "outbox");
    let a = r.api.as_ref().expect("api counts");
    assert_eq!(a.requests, 240, "{a:#?}");
    assert_eq!(a.arrival_rate_per_s, Some(60.0));
    assert!(a.goose_report.is_empty() && a.co_mitigation.is_none(), "goose did not drive it: {a:#?}");
    assert!(a.late_starts <= a.requests, "{a:#?}");
    let names: Vec<&str> = a.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["GET /diaries", "GET /notifications", "GET /rentals/search", "POST /diaries"]);
    assert_eq!(a.failures, 0, "{:?}", a.failures_by_status);
    assert!(r.notes.iter().any(|n| n.contains("latency from each request's due time")), "{:?}", r.notes);
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

/// The `loadtest` binary of this build: `cargo test --workspace` (the README's test command)
/// builds it beside `server`.
fn loadtest_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_server")).with_file_name("loadtest");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p loadtest` (or the whole workspace's tests)",
        bin.display()
    );
    bin
}

/// Runs the real `loadtest` binary; returns its exit code and stderr.
async fn loadtest(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = tokio::process::Command::new(loadtest_bin())
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("loadtest runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The merged report a `loadtest merge` wrote under `reports`.
fn merged_report(reports: &Path) -> RunReport {
    let dir = std::fs::read_dir(reports)
        .expect("the reports folder")
        .map(|e| e.expect("an entry").path())
        .find(|p| p.join("report.json").is_file())
        .expect("a merged report folder");
    for file in ["report.json", "report.md", "report.html", "junit.xml"] {
        assert!(dir.join(file).is_file(), "{file} was not written in {}", dir.display());
    }
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json")).expect("a report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_two_shards_and_a_merge_count_exactly_what_one_whole_run_counts() {
    let _serial = ONE_AT_A_TIME.lock().await;
    server::install_crypto_provider();
    // A deployment of 3 server processes this test's targets file starts and stops through
    // deploy/local's adapters, as the harness would drive VMs.
    let infra = loadtest::infra::Infra::provision(&ProvisionOptions::from_env().expect("settings"))
        .await
        .expect("the services start");
    let urls = infra.urls();
    let base = free_port_run();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(loadtest::infra::unique_name("shards"));
    std::fs::create_dir_all(&dir).expect("a folder");
    let local = repo().join("deploy/local");
    let env = format!("APP_BIN={} APP_RUN={}", env!("CARGO_BIN_EXE_server"), dir.join("run").display());
    let targets = dir.join("targets.toml");
    let text = format!(
        "instances = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\"]\n\
         [services]\namqp_url = \"{}\"\nredis_url = \"{}\"\nmysql_url = \"{}\"\n[adapters]\ndeploy = {}\nteardown = {}\n",
        base + 1,
        base + 2,
        base + 3,
        urls.amqp,
        urls.redis,
        urls.mysql,
        toml::Value::String(format!("{env} {}/deploy.sh", local.display())),
        toml::Value::String(format!("{env} {}/teardown.sh", local.display())),
    );
    std::fs::write(&targets, text).expect("the targets file");
    let scenario = repo().join("scenarios/ci/notify-fanout.toml");

    // The whole run, one process, against the deployment.
    let (whole, _) = run(&RunOptions {
        scenario: scenario.clone(),
        provision: ProvisionOptions::from_env().expect("settings"),
        server_bin: PathBuf::from(env!("CARGO_BIN_EXE_server")),
        reports_dir: dir.join("whole"),
        strategies: Some(vec![loadtest::scenario::Strategy::Rabbitmq]),
        command: "cargo test --test scenarios (whole)".into(),
        targets: Some(targets.clone()),
        repeat: 1,
        metrics_listen: None,
    })
    .await
    .expect("the whole run runs");
    assert!(whole.passed, "{}", broken(&whole));
    let w = result(&whole, "rabbitmq").clone();

    // The same scenario as two load machines would run it: prepare, two shard processes at
    // once, merge.
    let world = dir.join("world.json");
    let os = |s: &str| std::ffi::OsString::from(s);
    let (code, err) = loadtest(&[
        &os("prepare"),
        scenario.as_os_str(),
        &os("--targets"),
        targets.as_os_str(),
        &os("--strategy"),
        &os("rabbitmq"),
        &os("--out"),
        world.as_os_str(),
        &os("--start-in"),
        &os("6"),
    ])
    .await;
    assert_eq!(code, 0, "prepare: {err}");
    let shard_dirs = [dir.join("shard-0"), dir.join("shard-1")];
    let shard = |i: usize| {
        let out = shard_dirs[i].clone();
        let (scenario, world) = (scenario.clone(), world.clone());
        async move {
            let slice = os(&format!("{i}/2"));
            loadtest(&[
                &os("run"),
                scenario.as_os_str(),
                &os("--world"),
                world.as_os_str(),
                &os("--shard"),
                &slice,
                &os("--out"),
                out.as_os_str(),
            ])
            .await
        }
    };
    let ((c0, e0), (c1, e1)) = tokio::join!(shard(0), shard(1));
    assert_eq!((c0, c1), (0, 0), "shard 0: {e0}\nshard 1: {e1}");
    let reports = dir.join("merged");
    let (code, err) = loadtest(&[
        &os("merge"),
        shard_dirs[0].as_os_str(),
        shard_dirs[1].as_os_str(),
        &os("--reports-dir"),
        reports.as_os_str(),
    ])
    .await;
    assert_eq!(code, 0, "merge: {err}");
    let merged = merged_report(&reports);
    assert!(merged.passed, "{}", broken(&merged));
    let m = result(&merged, "rabbitmq");

    // The same schedule was caused, and nothing was lost, repeated or invented either way.
    assert_eq!(m.events_caused, w.events_caused, "whole {w:?}\nmerged {m:?}");
    for r in [&w, m] {
        assert!(r.expected > 100, "too little load to judge: {r:?}");
        assert_eq!((r.lost, r.duplicated, r.unexpected, r.stored_twice, r.same_id_twice), (0, 0, 0, 0, 0), "{r:?}");
        assert_eq!(r.delivered, r.expected);
    }
    // Exact across shards: every notification the database stored for a streaming user was
    // expected once by the merged ledger, whichever shard caused it and whichever held the stream.
    let world_file = loadtest::shard::world_file::WorldFile::load(&world).expect("the world");
    let users: Vec<u64> = world_file.world.users.iter().map(|u| u.id).collect();
    let truth = loadtest::run::truth::Truth::new(&world_file.database_url)
        .of_users(&users, world_file.world.sse_clients)
        .await
        .expect("the truth");
    assert_eq!(m.expected, truth.notifications, "the merged ledger expects what the database stored");
    assert_eq!(truth.causes.len() as u64, m.events_caused, "every cause the shards created, and no other");
    // Comments land on a diary of their own shard's, so the split may turn a few early comment
    // events into diaries; the whole and the split schedule differ by those alone.
    let diff = m.expected.abs_diff(w.expected);
    assert!(diff * 10 <= w.expected, "whole expected {} vs merged {}", w.expected, m.expected);
    // Half of the deliveries cross machines: counted, but timed only where one clock saw both.
    assert!(m.cross_shard > 0 && m.cross_shard < m.delivered, "{m:?}");
    assert!(m.latency_us.p99 > 0, "{m:?}");
    assert_eq!(merged.generators.len(), 2, "each shard's CPU: {:?}", merged.generators);
    assert!(merged.generators.iter().all(|g| !g.cpu.samples.is_empty()), "{:?}", merged.generators);

    // The merge refuses an incomplete set, and catches a shard whose receipts went missing.
    let (code, err) =
        loadtest(&[&os("merge"), shard_dirs[0].as_os_str(), &os("--reports-dir"), reports.as_os_str()]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("shard(s) 1/2 missing"), "{err}");
    let cut = dir.join("shard-1-cut");
    std::fs::create_dir_all(&cut).expect("a folder");
    for file in ["shard.json", "world.json"] {
        std::fs::copy(shard_dirs[1].join(file), cut.join(file)).expect("copied");
    }
    let journal = std::fs::read_to_string(shard_dirs[1].join("journal.jsonl")).expect("the journal");
    let kept: Vec<&str> = journal.lines().filter(|l| !l.starts_with("{\"observe\"")).collect();
    std::fs::write(cut.join("journal.jsonl"), kept.join("\n")).expect("written");
    let (code, err) = loadtest(&[
        &os("merge"),
        shard_dirs[0].as_os_str(),
        cut.as_os_str(),
        &os("--reports-dir"),
        reports.as_os_str(),
    ])
    .await;
    assert_eq!(code, 2, "a journal that does not match its summary is refused: {err}");
    assert!(err.contains("cut short"), "{err}");
    let mut summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cut.join("shard.json")).expect("read")).expect("json");
    summary["journal_lines"] = serde_json::json!(kept.len());
    std::fs::write(cut.join("shard.json"), serde_json::to_vec(&summary).expect("json")).expect("written");
    let lost_reports = dir.join("merged-lost");
    let (code, err) = loadtest(&[
        &os("merge"),
        shard_dirs[0].as_os_str(),
        cut.as_os_str(),
        &os("--reports-dir"),
        lost_reports.as_os_str(),
    ])
    .await;
    assert_eq!(code, 1, "receipts missing are losses, and the thresholds fail: {err}");
    let lost = merged_report(&lost_reports);
    let l = result(&lost, "rabbitmq");
    assert!(l.lost > 0 && l.lost < l.expected && l.expected == m.expected, "{l:?}");

    let down = std::process::Command::new("bash")
        .arg(local.join("teardown.sh"))
        .env("APP_RUN", dir.join("run"))
        .output()
        .expect("teardown runs");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    drop(infra);
}

/// Graceful shutdown, on the real binary with real infrastructure: an instance that gets
/// SIGTERM while requests pour in fails none it accepted (each either answered 201 and is in
/// the database, or was refused at connect and never reached it), tells its SSE stream to
/// come back, and exits well within its grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_gets_sigterm_mid_load_fails_no_request_it_accepted_and_exits_in_bounded_time() {
    use loadtest::probe::api::ApiClient;
    let _serial = ONE_AT_A_TIME.lock().await;
    server::install_crypto_provider();
    let infra = loadtest::infra::Infra::provision(&ProvisionOptions::from_env().expect("settings"))
        .await
        .expect("the infrastructure");
    let database = infra.fresh_database("sigterm").await.expect("a database");
    let urls = infra.urls();
    let spec = ClusterSpec {
        server_bin: PathBuf::from(env!("CARGO_BIN_EXE_server")),
        instances: 1,
        env: vec![
            ("SERVER_DATABASE_URL".into(), database.clone()),
            ("SERVER_REDIS_URL".into(), urls.redis.clone()),
            ("SERVER_AMQP_URL".into(), urls.amqp.clone()),
            ("SERVER_NAMESPACE".into(), format!("{}:", loadtest::infra::unique_name("sigterm"))),
            ("SERVER_NOTIFY_DELIVERY".into(), "rabbitmq".into()),
            ("SERVER_AI_ENABLED".into(), "false".into()),
            ("SERVER_ARGON2_MEMORY_KIB".into(), "64".into()),
            ("SERVER_ARGON2_ITERATIONS".into(), "1".into()),
            ("SERVER_SHUTDOWN_GRACE_S".into(), "10".into()),
        ],
        log_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(loadtest::infra::unique_name("sigterm")),
        ready_timeout: std::time::Duration::from_secs(60),
    };
    let mut cluster = Cluster::start(spec).await.expect("the instance starts");
    let base = cluster.urls()[0].clone();
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().expect("a client");
    let api = ApiClient::new(http.clone());
    let writer = api.signup_and_login(&base, "writer@sigterm.test", "writer").await.expect("sign-up");

    // A stream, read to its end.
    let stream = {
        let (http, base, token) = (http.clone(), base.clone(), writer.token.clone());
        tokio::spawn(async move {
            let mut answer = http
                .get(format!("{base}/notifications/stream"))
                .bearer_auth(token)
                .timeout(std::time::Duration::from_secs(60))
                .send()
                .await
                .expect("the stream opens");
            let mut text = String::new();
            while let Ok(Some(chunk)) = answer.chunk().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
            text
        })
    };
    // 400 diary writes, 100 a second, 32 at most in flight: SIGTERM lands in the middle.
    let writes = {
        let (api, base, writer) = (api.clone(), base.clone(), writer.clone());
        tokio::spawn(async move {
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
            let mut tasks = Vec::new();
            for n in 0..400u64 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                let permit = slots.clone().acquire_owned().await.expect("open");
                let (api, base, writer) = (api.clone(), base.clone(), writer.clone());
                tasks.push(tokio::spawn(async move {
                    let _permit = permit;
                    api.write_diary(&base, &writer, n).await
                }));
            }
            futures::future::join_all(tasks).await.into_iter().map(|r| r.expect("a write task")).collect::<Vec<_>>()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let exited_at = std::sync::Mutex::new(None);
    let (exit, _) = cluster
        .redeploy(1, std::time::Duration::from_secs(30), &|| {
            *exited_at.lock().unwrap() = Some(std::time::Instant::now());
        })
        .await
        .expect("SIGTERM, a clean exit (status 0) within 30 s, and a new start that answers /readyz");
    let exit = exit.expect("a process runner times the exit");
    assert!(exit < std::time::Duration::from_secs(10), "the drain took {exit:?}, more than its grace");

    let results = writes.await.expect("the writes end");
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    // Refused at connect, or a kept-alive connection closed before any answer: a browser
    // resends both. Nothing else may fail.
    let refused = results.iter().filter(|r| r.as_ref().is_err_and(|e| e.resendable())).count();
    let mut resent: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for e in results.iter().filter_map(|r| r.as_ref().err()).filter(|e| e.resendable()) {
        *resent.entry(e.to_string().replace(&base, "")).or_default() += 1;
    }
    eprintln!("resendable failures: {resent:#?}");
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).filter(|e| !e.resendable()).collect();
    assert!(failed.is_empty(), "requests the instance received that failed: {failed:#?}");
    assert!(accepted > 0 && accepted + refused == 400, "{accepted} answered, {refused} refused");
    // Every answered write is stored, once, and nothing refused or closed before its answer
    // was stored: the instance finished every request it read.
    let pool = sqlx::MySqlPool::connect(&database).await.expect("the database");
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM diaries").fetch_one(&pool).await.expect("a count of diaries");
    assert_eq!(stored as usize, accepted, "{refused} refused at connect");
    let text = stream.await.expect("the stream task");
    assert!(text.contains("event: ready"), "{text}");
    assert!(
        text.contains("\nevent: restart\n") && text.contains("retry: "),
        "the stream was told to come back: {text}"
    );
    cluster.stop(std::time::Duration::from_secs(10)).await;
}
