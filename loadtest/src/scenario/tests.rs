use std::path::{Path, PathBuf};

use super::*;
use crate::infra::ServiceKind;

const MINIMAL: &str = r#"
name = "tiny"
kind = "fanout"
strategies = ["local", "rabbitmq"]

[cluster]
instances = 3

[load]
users = 10
friends_per_user = 2
sse_clients = 10
rate_per_s = 5
duration_s = 10
"#;

/// MINIMAL with `extra` appended (TOML tables may follow in any order).
fn with(extra: &str) -> String {
    format!("{MINIMAL}\n{extra}")
}

/// MINIMAL with one line replaced.
fn replacing(line: &str, by: &str) -> String {
    assert!(MINIMAL.contains(line), "{line}");
    MINIMAL.replace(line, by)
}

fn error_of(text: &str) -> String {
    Scenario::parse(text, "scenarios/x.toml").expect_err("should be refused").to_string()
}

fn scenario_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("scenarios/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            scenario_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn every_scenario_file_in_the_repository_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files = Vec::new();
    scenario_files(&dir, &mut files);
    assert!(files.len() >= 13, "expected every scenario and its CI variant, found {files:?}");
    for file in &files {
        let scenario = Scenario::load(file).unwrap_or_else(|e| panic!("{e}"));
        if file.starts_with(dir.join("ci")) {
            let total = scenario.total_s() * scenario.strategies().len() as f64;
            assert!(total < 60.0, "{}: a CI scenario must run in under 60 s, takes {total} s", file.display());
        }
    }
}

#[test]
fn the_example_in_the_schema_reference_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let example = readme.split("```toml\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a toml block");
    Scenario::parse(example, "scenarios/README.md").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_main_fanout_scenario_says_what_the_seed_claims() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/notify-fanout.toml");
    let s = Scenario::load(&path).unwrap();
    assert_eq!(s.strategies(), [Strategy::Local, Strategy::Rabbitmq]);
    assert_eq!(s.cluster.instances, 3);
    assert_eq!(s.thresholds_for("rabbitmq").get("max_lost").map(|b| b.limit()), Some(0.0));
    assert_eq!(s.thresholds_for("local").get("min_lost_ratio").map(|b| b.limit()), Some(0.5));
}

#[test]
fn omitted_fields_take_their_documented_defaults() {
    let s = Scenario::parse(MINIMAL, "minimal").unwrap();
    assert_eq!(s.seed, 1);
    let Workload::Fanout(Plan { section: FanoutSection { load }, .. }) = &s.workload else {
        panic!("a fanout workload: {:?}", s.workload)
    };
    assert_eq!(load.spread, Spread::RoundRobin);
    assert_eq!(load.reconnect, Reconnect::LastEventId);
    assert_eq!(load.mix, Mix { diary: 0.7, comment: 0.3 });
    assert_eq!((load.warmup_s, load.drain_s), (3.0, 5.0));
    assert_eq!(load.max_events, 1_000_000);
    assert!(s.faults.is_empty() && s.thresholds.is_empty() && s.cluster.server_env.is_empty());
    assert_eq!(s.total_s(), 18.0);
}

#[test]
fn a_negative_rate_is_named_with_file_and_field() {
    let err = error_of(&replacing("rate_per_s = 5", "rate_per_s = -5"));
    assert_eq!(err, "scenarios/x.toml: load.rate_per_s: -5 is negative: events per second must be > 0");
}

#[test]
fn every_broken_rule_is_listed_not_only_the_first() {
    let text = replacing("users = 10", "users = 1").replace("duration_s = 10", "duration_s = 0");
    let err = Scenario::parse(&text, "x").unwrap_err();
    let fields: Vec<String> = err.problems().into_iter().map(|p| p.field).collect();
    assert_eq!(fields, ["load.users", "load.friends_per_user", "load.sse_clients", "load.duration_s"]);
    assert_eq!(err.to_string().lines().count(), 4);
}

#[test]
fn an_unknown_field_is_refused_with_its_path_and_line() {
    let err = error_of(&replacing("rate_per_s = 5", "rate_pers = 5"));
    assert!(err.starts_with("scenarios/x.toml: load.rate_pers: unknown field `rate_pers`, expected one of"), "{err}");
    assert!(err.ends_with("(line 13, column 1)"), "{err}");

    let err = error_of(&with("[[faults]]\nat_s = 1\naction = \"kill-instance\"\ntarget = \"instance:1\"\nfor_s = 1"));
    assert!(err.contains("faults[0]") && err.contains("unknown field `for_s`"), "{err}");
}

#[test]
fn a_wrong_type_names_the_field_path() {
    let err = error_of(&with("[thresholds.rabbitmq]\nmax_lost = \"none\""));
    assert!(err.starts_with("scenarios/x.toml: thresholds.rabbitmq.max_lost: "), "{err}");
    let err = error_of(&replacing("[cluster]", "[cluster]\nserver_env = { SERVER_X = 0 }"));
    assert!(err.contains("cluster.server_env.SERVER_X"), "{err}");
}

#[test]
fn unknown_values_list_the_known_ones() {
    let err = error_of(&replacing(r#"["local", "rabbitmq"]"#, r#"["local", "kafka"]"#));
    assert!(err.contains("strategies[1]: unknown strategy `kafka`: expected one of local, redis-pubsub"), "{err}");
    let err = error_of(&replacing(r#"kind = "fanout""#, r#"kind = "gossip""#));
    assert!(err.contains("kind: unknown kind `gossip`: expected one of fanout"), "{err}");
}

#[test]
fn broken_toml_says_where() {
    let err = error_of("name = \"x\"\nkind = ");
    assert!(err.starts_with("scenarios/x.toml: ") && err.contains("line 2"), "{err}");
}

#[test]
fn strategies_are_listed_once_and_at_least_one() {
    let err = error_of(&replacing(r#"["local", "rabbitmq"]"#, r#"["local", "rabbitmq", "local"]"#));
    assert!(err.contains("strategies[2]: `local` is listed twice (also strategies[0])"), "{err}");
    let err = error_of(&replacing(r#"["local", "rabbitmq"]"#, "[]"));
    assert!(err.contains("strategies: is empty"), "{err}");
}

#[test]
fn the_name_must_be_usable_as_a_file_name() {
    assert!(error_of(&replacing(r#"name = "tiny""#, r#"name = "Tiny/../x""#)).contains("name: "));
}

#[test]
fn a_fault_after_the_end_of_the_load_is_refused() {
    let fault = |at: f64| format!("[[faults]]\nat_s = {at:?}\naction = \"restart-service\"\ntarget = \"redis\"\n");
    let text = with(&format!("{}{}{}", fault(1.0), fault(5.0), fault(13.0)));
    let err = error_of(&text);
    assert!(err.contains("faults[2].at_s: 13 is at or after the end of the load"), "{err}");
    assert!(!err.contains("faults[0]") && !err.contains("faults[1]"), "{err}");
    let ok = with(&fault(12.9));
    let s = Scenario::parse(&ok, "x").unwrap();
    assert_eq!(s.faults[0].target, FaultTarget::Service(ServiceKind::Redis));
    assert_eq!(s.faults[0].action, FaultAction::RestartService);
}

#[test]
fn a_fault_target_must_fit_its_action_and_the_cluster() {
    let fault = |action: &str, target: &str| {
        with(&format!("[[faults]]\nat_s = 1\naction = \"{action}\"\ntarget = \"{target}\"\n"))
    };
    assert!(error_of(&fault("kill-instance", "rabbitmq")).contains("faults[0].target: `rabbitmq` is a service"));
    assert!(error_of(&fault("stop-service", "instance:1")).contains("faults[0].target: `instance:1` is an instance"));
    assert!(error_of(&fault("pause-instance", "instance:4")).contains("instance 4 does not exist"));
    assert!(error_of(&fault("pause-instance", "instance:0")).contains("instance 0 does not exist"));
    assert!(error_of(&fault("stop-service", "postgres")).contains("unknown fault target `postgres`"));
    assert!(Scenario::parse(&fault("pause-instance", "instance:3"), "x").is_ok());
}

#[test]
fn a_client_churn_acts_on_the_clients_of_a_fanout_run_with_its_own_settings() {
    let churn = |extra: &str| {
        with(&format!("[[faults]]\nat_s = 1\naction = \"client-churn\"\ntarget = \"clients\"\nduration_s = 5\n{extra}"))
    };
    let s = Scenario::parse(&churn(""), "x").unwrap();
    assert_eq!(s.faults[0].target, FaultTarget::Clients);
    assert_eq!(s.faults[0].churn(), Some(Churn { every_s: Some((2.0, 8.0)), drop_after_event: 0.0 }));
    let s = Scenario::parse(&churn("drop_after_event = 0.1\n"), "x").unwrap();
    assert_eq!(s.faults[0].churn(), Some(Churn { every_s: None, drop_after_event: 0.1 }));
    let s = Scenario::parse(&churn("every_s = [1, 3]\ndrop_after_event = 0.5\n"), "x").unwrap();
    assert_eq!(s.faults[0].churn(), Some(Churn { every_s: Some((1.0, 3.0)), drop_after_event: 0.5 }));

    assert!(error_of(&churn("every_s = [3, 1]\n")).contains("faults[0].every_s: [3, 1] is empty"));
    assert!(error_of(&churn("every_s = [0, 1]\n")).contains("faults[0].every_s: 0 is zero"));
    assert!(error_of(&churn("drop_after_event = 1.5\n")).contains("faults[0].drop_after_event: 1.5 is out of range"));
    let err = error_of(&with(
        "[[faults]]\nat_s = 1\naction = \"kill-instance\"\ntarget = \"instance:1\"\ndrop_after_event = 0.1\n",
    ));
    assert!(err.contains("faults[0].drop_after_event: only applies to client-churn, not kill-instance"), "{err}");
    let err = error_of(&with("[[faults]]\nat_s = 1\naction = \"client-churn\"\ntarget = \"redis\"\n"));
    assert!(
        err.contains("faults[0].target: `redis` is a service, but client-churn acts on the run's clients"),
        "{err}"
    );
    let err = error_of(&with("[[faults]]\nat_s = 1\naction = \"kill-instance\"\ntarget = \"clients\"\n"));
    assert!(err.contains("`clients` is the clients, but kill-instance acts on a server instance"), "{err}");
    let jobs = "name = \"j\"\nkind = \"jobs\"\nstrategies = [\"clustered\"]\n[cluster]\ninstances = 2\n\
                [jobs]\nevery_s = 1\nlease_s = 2\nduration_s = 10\n\
                [[faults]]\nat_s = 1\naction = \"client-churn\"\ntarget = \"clients\"\n";
    assert!(
        error_of(jobs).contains("client-churn acts on the run's clients, which only fanout and chat scenarios have")
    );
}

#[test]
fn churn_limits_apply_to_notification_runs_and_resumes_to_fanout_only() {
    let s =
        Scenario::parse(&with("[thresholds.all]\nmax_inversions = 0\nmax_same_id_twice = 0\nmin_resumes = 10\n"), "x")
            .unwrap();
    let t = s.thresholds_for("rabbitmq");
    assert_eq!(
        (t["max_inversions"].limit(), t["max_same_id_twice"].limit(), t["min_resumes"].limit()),
        (0.0, 0.0, 10.0)
    );
    let err = error_of(&format!("{CLAIM}\n[thresholds.all]\nmax_inversions = 0\n"));
    assert!(err.contains("thresholds.all.max_inversions: does not apply to a claim scenario"), "{err}");
}

#[test]
fn only_undoable_faults_take_a_duration() {
    let fault = |action: &str, target: &str, d: f64| {
        with(&format!("[[faults]]\nat_s = 1\naction = \"{action}\"\ntarget = \"{target}\"\nduration_s = {d:?}\n"))
    };
    assert!(error_of(&fault("restart-service", "redis", 2.0)).contains("faults[0].duration_s: restart-service"));
    assert!(error_of(&fault("kill-instance", "instance:1", -1.0)).contains("faults[0].duration_s: -1 is negative"));
    let s = Scenario::parse(&fault("kill-instance", "instance:1", 2.5), "x").unwrap();
    assert_eq!(s.faults[0].duration_s, Some(2.5));
}

#[test]
fn overlapping_faults_on_one_target_are_refused() {
    let text = with(
        "[[faults]]\nat_s = 2\naction = \"pause-instance\"\ntarget = \"instance:2\"\nduration_s = 4\n\
         [[faults]]\nat_s = 3\naction = \"kill-instance\"\ntarget = \"instance:1\"\n\
         [[faults]]\nat_s = 5\naction = \"kill-instance\"\ntarget = \"instance:2\"\n",
    );
    let err = error_of(&text);
    assert!(err.contains("faults[2].at_s: kill-instance on instance:2 at 5 s overlaps faults[0]"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn thresholds_name_listed_strategies_or_all() {
    let err = error_of(&with("[thresholds.outbox]\nmax_lost = 0"));
    assert!(err.contains("thresholds.outbox: `outbox` is not a strategy of this scenario"), "{err}");
    assert!(err.contains("expected one of local, rabbitmq, all"), "{err}");
    let err = error_of(&with("[thresholds.all]\nmax_lost_ratio = 1.5"));
    assert!(err.contains("thresholds.all.max_lost_ratio: 1.5 is out of range"), "{err}");
    let err = error_of(&with("[thresholds.all]\nmax_lots = 0\nmax_lost = 1.5"));
    assert!(
        err.contains("thresholds.all.max_lots: is not a limit a fanout scenario takes: expected one of max_lost,"),
        "{err}"
    );
    assert!(err.contains("thresholds.all.max_lost: 1.5 is not a count"), "{err}");
}

#[test]
fn a_strategy_threshold_overrides_the_one_for_all() {
    let text = with("[thresholds.all]\nmax_lost = 5\nmax_unexpected = 0\n[thresholds.rabbitmq]\nmax_lost = 0\n");
    let s = Scenario::parse(&text, "x").unwrap();
    let rabbit = s.thresholds_for("rabbitmq");
    assert_eq!((rabbit["max_lost"].limit(), rabbit["max_unexpected"].limit()), (0.0, 0.0));
    let local = s.thresholds_for("local");
    assert_eq!((local["max_lost"].limit(), local["max_unexpected"].limit(), local.get("max_p99_ms")), (5.0, 0.0, None));
}

#[test]
fn a_missing_file_is_named() {
    let err = Scenario::load(Path::new("/nonexistent/x.toml")).unwrap_err().to_string();
    assert!(err.starts_with("/nonexistent/x.toml: cannot read"), "{err}");
}

const RAMP: &str = "[ramp]\nfactor = 2\nmax_rate_per_s = 40\nmax_p99_ms = 500\n";

#[test]
fn a_capacity_scenario_needs_a_ramp_and_a_fanout_refuses_one() {
    let capacity = replacing("kind = \"fanout\"", "kind = \"capacity\"");
    assert!(error_of(&capacity).contains("ramp: is missing"), "{}", error_of(&capacity));
    let ok = Scenario::parse(&format!("{capacity}\n{RAMP}"), "x").unwrap();
    let Workload::Capacity(Plan { section: CapacitySection { ramp, .. }, .. }) = &ok.workload else {
        panic!("a capacity workload: {:?}", ok.workload)
    };
    assert_eq!(ramp.max_steps, 8);
    // warm-up 3 + 8 steps x (10 s + 3 s drain)
    assert_eq!(ok.total_s(), 3.0 + 8.0 * 13.0);
    let err = error_of(&with(RAMP));
    assert!(err.contains("ramp: does not apply to a fanout scenario, which reads [load]: remove it"), "{err}");
}

#[test]
fn ramp_values_out_of_range_are_named() {
    let capacity = replacing("kind = \"fanout\"", "kind = \"capacity\"");
    let bad = "[ramp]\nfactor = 1.0\nmax_rate_per_s = 2\nmax_p99_ms = -1\nmax_steps = 0\n";
    let err = error_of(&format!("{capacity}\n{bad}"));
    for field in ["ramp.factor", "ramp.max_rate_per_s", "ramp.max_p99_ms", "ramp.max_steps"] {
        assert!(err.contains(field), "{field} not named in: {err}");
    }
    assert!(err.contains("below load.rate_per_s (5)"), "{err}");
    let with_fault =
        format!("{capacity}\n{RAMP}\n[[faults]]\nat_s = 5\naction = \"kill-instance\"\ntarget = \"instance:1\"\n");
    assert!(error_of(&with_fault).contains("faults: a capacity ramp measures rates without faults"));
    let too_long = format!(
        "{capacity}\n[ramp]\nfactor = 2\nmax_rate_per_s = 40\nmax_p99_ms = 5\nmax_steps = 30\nstep_drain_s = 200\n"
    );
    assert!(error_of(&too_long).contains("above 3600 s"), "{}", error_of(&too_long));
}

#[test]
fn a_sustained_rate_limit_only_applies_to_capacity() {
    let err = error_of(&with("[thresholds.all]\nmin_sustained_delivered_per_s = 10\n"));
    assert!(err.contains("thresholds.all.min_sustained_delivered_per_s: does not apply to a fanout scenario"), "{err}");
}

const CLAIM: &str = r#"
name = "claims"
kind = "claim"
strategies = ["naive", "version", "skip-locked", "version-unfenced"]

[cluster]
instances = 3

[claim]
posts = 500
workers_per_instance = 4
lease_s = 2
duration_s = 30
"#;

#[test]
fn each_kind_reads_its_own_section_and_compares_its_own_strategies() {
    let s = Scenario::parse(CLAIM, "x").unwrap();
    let Workload::Claim(Plan { section: claim, .. }) = &s.workload else {
        panic!("a claim workload: {:?}", s.workload)
    };
    assert_eq!(claim.batch_size, 32);
    assert_eq!(s.total_s(), 36.0, "warm-up 1 + duration 30 + drain 5");
    let err = error_of(&CLAIM.replace("\"naive\"", "\"rabbitmq\""));
    assert!(
        err.contains("strategies[0]: `rabbitmq` is not compared by a claim scenario: expected one of naive"),
        "{err}"
    );
    let err = error_of(&format!(
        "{CLAIM}\n[load]\nusers = 10\nfriends_per_user = 2\nsse_clients = 10\nrate_per_s = 5\nduration_s = 10\n"
    ));
    assert!(err.contains("load: does not apply to a claim scenario, which reads [claim]"), "{err}");
    let err = error_of(&replacing("kind = \"fanout\"", "kind = \"booking\""));
    assert!(err.contains("booking: is missing"), "{err}");
    assert!(err.contains("load: does not apply to a booking scenario"), "{err}");
    assert!(err.contains("`local` is not compared by a booking scenario: expected one of naive, optimistic"), "{err}");
}

#[test]
fn claim_booking_and_jobs_values_are_checked_by_field() {
    let bad = CLAIM.replace("posts = 500", "posts = 0").replace("lease_s = 2", "lease_s = -1");
    let err = error_of(&format!("{bad}\n[thresholds.all]\nmax_lost = 0\n"));
    for field in ["claim.posts", "claim.lease_s", "thresholds.all.max_lost: does not apply to a claim scenario"] {
        assert!(err.contains(field), "{field} not in: {err}");
    }
    let fault_late = format!("{CLAIM}\n[[faults]]\nat_s = 40\naction = \"kill-instance\"\ntarget = \"instance:1\"\n");
    assert!(
        error_of(&fault_late)
            .contains("faults[0].at_s: 40 is at or after the end of the load (warm-up 1 s + duration 30 s")
    );
    let booking = "name = \"b\"\nkind = \"booking\"\nstrategies = [\"optimistic\"]\n[cluster]\ninstances = 3\n\
                   [booking]\nitems = 5\nrequesters = 20\nrequests_per_item = 10\nwindow_days = 10\nmax_days = 120\n";
    assert!(error_of(booking).contains("booking.max_days: 120 is out of range"));
    let jobs = "name = \"j\"\nkind = \"jobs\"\nstrategies = [\"clustered\"]\n[cluster]\ninstances = 3\n\
                [jobs]\nevery_s = 5\nlease_s = 3\nduration_s = 6\n";
    assert!(error_of(jobs).contains("jobs.duration_s: 6 s is shorter than two firings"));
}

const API: &str = r#"
name = "a"
kind = "api"
strategies = ["local", "outbox"]

[cluster]
instances = 3

[api]
accounts = 20
users = 8
duration_s = 5
"#;

#[test]
fn an_api_scenario_has_defaults_and_its_values_are_checked_by_field() {
    let s = Scenario::parse(API, "x").unwrap();
    let Workload::Api(Plan { section: a, .. }) = s.workload.clone() else { panic!("an api workload") };
    assert_eq!((a.friends_per_user, a.items, a.request_timeout_s, a.users_per_s), (4, 50, 10, None));
    assert_eq!(a.mix.weighted(), vec![("write_diary", 1), ("read_diaries", 3), ("notifications", 2), ("search", 1)]);
    assert_eq!(s.total_s(), 5.0);

    let bad = API.replace("users = 8", "users = 0\nusers_per_s = -2\nthink_min_ms = 50\nthink_max_ms = 10")
        + "mix = { write_diary = 0, read_diaries = 0, notifications = 0, search = 0 }\n";
    let err = error_of(&bad);
    for field in [
        "api.users: 0 is out of range: between 1 and 1000",
        "api.users_per_s: -2 is negative",
        "api.think_max_ms: 10 is below think_min_ms (50)",
        "api.mix: every weight is 0",
    ] {
        assert!(err.contains(field), "{field} not in: {err}");
    }
    let err = error_of(&API.replace("duration_s = 5", "duration_s = 5\nthreads = 4"));
    assert!(err.contains("api.threads: unknown field `threads`"), "{err}");
    let err = error_of(&API.replace("[\"local\", \"outbox\"]", "[\"local\", \"naive\"]"));
    assert!(err.contains("`naive` is not compared by an api scenario"), "{err}");
    let err = error_of(&format!("{API}\n[[faults]]\nat_s = 1\naction = \"kill-instance\"\ntarget = \"instance:1\"\n"));
    assert!(err.contains("faults: an api run measures the API's capacity without faults"), "{err}");
    let err = error_of(&format!("{API}\n[thresholds.all]\nmax_lost = 0\nmax_error_ratio = 2\n"));
    assert!(err.contains("thresholds.all.max_lost: does not apply to an api scenario"), "{err}");
    assert!(err.contains("thresholds.all.max_error_ratio: 2 is out of range"), "{err}");
    let err = error_of(&format!("{MINIMAL}\n[thresholds.all]\nmin_requests_per_s = 10\n"));
    assert!(err.contains("thresholds.all.min_requests_per_s: does not apply to a fanout scenario"), "{err}");
}

#[test]
fn a_chat_scenario_may_ramp_but_a_ramp_takes_no_faults() {
    let chat = "name = \"c\"\nkind = \"chat\"\nstrategies = [\"redis-pubsub\", \"redis-recovering\"]\n\
                [cluster]\ninstances = 3\n[chat]\nrooms = 10\nrate_per_s = 50\nduration_s = 4\nwarmup_s = 1\ndrain_s = 2\n";
    let plain = Scenario::parse(chat, "c.toml").expect("a chat scenario without a ramp");
    let Workload::Chat(Plan { section: ChatSection { chat: c, ramp: None }, strategies }) = &plain.workload else {
        panic!("a chat workload: {:?}", plain.workload)
    };
    assert_eq!((c.clients(), strategies.len()), (20, 2));
    assert_eq!(plain.total_s(), 7.0);

    let ramp = "[ramp]\nfactor = 2\nmax_rate_per_s = 400\nmax_steps = 4\nstep_drain_s = 1\nmax_p99_ms = 100\n";
    let ramped = Scenario::parse(&format!("{chat}{ramp}"), "c.toml").expect("a chat scenario with a ramp");
    assert_eq!(ramped.total_s(), 1.0 + 4.0 * (4.0 + 1.0) + 2.0, "warm-up, every step with its drain, the drain");

    let churn = "[[faults]]\nat_s = 2\naction = \"client-churn\"\ntarget = \"clients\"\nduration_s = 1\n";
    assert!(Scenario::parse(&format!("{chat}{churn}"), "c.toml").is_ok(), "a chat run takes client churn");
    let err = error_of(&format!("{chat}{ramp}{churn}"));
    assert!(err.contains("faults: a capacity ramp measures rates without faults"), "{err}");
    let err = error_of(&format!("{chat}{}", ramp.replace("max_rate_per_s = 400", "max_rate_per_s = 10")));
    assert!(err.contains("ramp.max_rate_per_s: 10 is below chat.rate_per_s (50)"), "{err}");
    let err =
        error_of(&chat.replace("strategies = [\"redis-pubsub\", \"redis-recovering\"]", "strategies = [\"rabbitmq\"]"));
    assert!(
        err.contains(
            "`rabbitmq` is not compared by a chat scenario: expected one of local, redis-pubsub, redis-recovering"
        ),
        "{err}"
    );
}

const EMBED: &str = r#"
name = "embeds"
kind = "embed"
strategies = ["inline", "batch"]

[cluster]
instances = 3

[embed]
posts_per_s = 2
duration_s = 30
embed_delay_ms = 3000

[thresholds.inline]
min_p99_ms = 3000

[thresholds.batch]
max_p99_ms = 50
max_searchable_s = 10
"#;

#[test]
fn an_embed_scenario_takes_its_defaults_and_its_own_limits() {
    let s = Scenario::parse(EMBED, "x").unwrap_or_else(|e| panic!("{e}"));
    let Workload::Embed(Plan { section, strategies }) = &s.workload else {
        panic!("an embed workload: {:?}", s.workload)
    };
    assert_eq!(strategies, &[EmbedPath::Inline, EmbedPath::Batch]);
    assert_eq!(section.posts(), 60);
    assert_eq!((section.workers_per_instance, section.batch_period_ms, section.search_every_ms), (1, 1_000, 250));
    // warm-up 1 + 30 s of posts + 30 s for the last ones to become searchable
    assert_eq!(s.total_s(), 61.0);
    // A limit of another kind, and a strategy of another kind, are refused by name.
    let err = error_of(&EMBED.replace("max_searchable_s = 10", "max_lost = 0"));
    assert!(err.contains("thresholds.batch.max_lost: does not apply to an embed scenario"), "{err}");
    let err = error_of(&EMBED.replace("[\"inline\", \"batch\"]", "[\"inline\", \"outbox\"]"));
    assert!(err.contains("`outbox` is not compared by an embed scenario: expected one of inline, batch"), "{err}");
}

#[test]
fn embed_values_out_of_range_are_named() {
    let bad = EMBED.replace("posts_per_s = 2", "posts_per_s = 0").replace(
        "embed_delay_ms = 3000",
        "embed_delay_ms = 70000\nsearch_every_ms = 10\nworkers_per_instance = 0\nbatch_period_ms = 5",
    );
    let err = error_of(&bad);
    for field in [
        "embed.posts_per_s",
        "embed.embed_delay_ms",
        "embed.search_every_ms",
        "embed.workers_per_instance",
        "embed.batch_period_ms",
    ] {
        assert!(err.contains(field), "{field} not named in: {err}");
    }
    let too_many =
        EMBED.replace("posts_per_s = 2", "posts_per_s = 1000").replace("duration_s = 30", "duration_s = 200");
    assert!(error_of(&too_many).contains("200000 is above 100000 posts"), "{}", error_of(&too_many));
    let err = error_of(&with("[embed]\nposts_per_s = 1\nduration_s = 1\nembed_delay_ms = 0\n"));
    assert!(err.contains("embed: does not apply to a fanout scenario"), "{err}");
}

#[test]
fn a_recovery_limit_applies_to_fanout_runs_only() {
    Scenario::parse(&with("[thresholds.all]\nmax_recovery_s = 10\n"), "x").unwrap_or_else(|e| panic!("{e}"));
    let err = error_of(&with("[thresholds.all]\nmax_recovery_s = -1\n"));
    assert!(err.contains("thresholds.all.max_recovery_s") && err.contains("negative"), "{err}");
    let err = error_of(&format!("{EMBED}\n[thresholds.all]\nmax_recovery_s = 10\n"));
    assert!(err.contains("max_recovery_s: does not apply to an embed scenario: only to fanout"), "{err}");
}

#[test]
fn a_windowed_limit_takes_a_table_and_says_what_to_write_otherwise() {
    let s = Scenario::parse(&with("[thresholds.all]\nmax_p99_ms_window = { window_s = 5, max = 200 }\n"), "x")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.thresholds_for("rabbitmq").get("max_p99_ms_window"),
        Some(&crate::scenario::Bound::Window { window_s: 5.0, max: 200.0 })
    );
    let err = error_of(&with("[thresholds.all]\nmax_p99_ms_window = 200\n"));
    assert!(
        err.contains("thresholds.all.max_p99_ms_window")
            && err.contains("this limit takes a window, e.g. { window_s = 5, max = 200 }"),
        "{err}"
    );
    let err = error_of(&with("[thresholds.all]\nmax_lost = { window_s = 5, max = 0 }\n"));
    assert!(err.contains("thresholds.all.max_lost: is a window: this limit takes a number"), "{err}");
    let err = error_of(&with("[thresholds.all]\nmax_p99_ms_window = { window_s = 2.5, max = 200 }\n"));
    assert!(err.contains("window_s 2.5 is not a window length: whole seconds >= 1"), "{err}");
    let err = error_of(&with("[thresholds.all]\nmax_p99_ms_window = { window_s = 5, max = -1 }\n"));
    assert!(err.contains("max -1 is negative"), "{err}");
    let err = error_of(&with("[thresholds.all]\nmax_p99_ms_window = { window_s = 5 }\n"));
    assert!(err.contains("a window needs `max`"), "{err}");
    let err = error_of(&with("[thresholds.all]\nmax_p99_ms_window = { window_s = 5, max = 1, p = 2 }\n"));
    assert!(err.contains("unknown key `p` in a window: expected window_s and max"), "{err}");
    let err = error_of(&with("[thresholds.all]\nmax_lost = \"none\"\n"));
    assert!(err.contains("expected a number, or for a windowed limit a table"), "{err}");
    let err = error_of(&format!("{EMBED}\n[thresholds.all]\nmax_p99_ms_window = {{ window_s = 5, max = 200 }}\n"));
    assert!(err.contains("does not apply to an embed scenario: only to fanout"), "{err}");
}

#[test]
fn an_open_loop_api_run_takes_a_rate_and_refuses_what_only_goose_users_have() {
    let api = |extra: &str| API.replace("\nusers = 8\n", &format!("\nusers = 8\n{extra}\n"));
    let s = Scenario::parse(&api("arrival_rate_per_s = 50"), "x").unwrap_or_else(|e| panic!("{e}"));
    assert!(format!("{:?}", s.workload).contains("arrival_rate_per_s: Some(50.0)"), "{:?}", s.workload);
    let err = error_of(&api("arrival_rate_per_s = 0"));
    assert!(err.contains("api.arrival_rate_per_s") && err.contains("zero"), "{err}");
    let err = error_of(&api("arrival_rate_per_s = 50\nusers_per_s = 2"));
    assert!(err.contains("api.users_per_s: applies to goose's users, not to an open loop"), "{err}");
    let err = error_of(&api("arrival_rate_per_s = 50\nthink_max_ms = 100"));
    assert!(err.contains("api.think_max_ms: an open loop (arrival_rate_per_s) has no think time"), "{err}");
    let long = api("arrival_rate_per_s = 10000").replace("duration_s = 5", "duration_s = 200");
    assert!(error_of(&long).contains("2000000 requests, above 1000000"), "{}", error_of(&long));
}

#[test]
fn a_rolling_restart_acts_on_every_instance_and_only_it_takes_a_pause() {
    let rolling = |target: &str, extra: &str| {
        with(&format!("[[faults]]\nat_s = 4\naction = \"rolling-restart\"\ntarget = \"{target}\"\n{extra}"))
    };
    let s = Scenario::parse(&rolling("instances", "pause_s = 1.5\n"), "x").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.faults[0].action, s.faults[0].target), (FaultAction::RollingRestart, FaultTarget::Instances));
    assert_eq!(s.faults[0].pause_s, Some(1.5));
    let err = error_of(&rolling("instance:1", ""));
    assert!(err.contains("rolling-restart acts on every instance in turn: use instances"), "{err}");
    let err = error_of(&rolling("instances", "pause_s = -1\n"));
    assert!(err.contains("faults[0].pause_s") && err.contains("negative"), "{err}");
    let err = error_of(&rolling("instances", "duration_s = 3\n"));
    assert!(err.contains("faults[0].duration_s") && err.contains("rolling-restart happens at once"), "{err}");
    let err = error_of(&with("[[faults]]\nat_s = 4\naction = \"kill-instance\"\ntarget = \"instances\"\n"));
    assert!(err.contains("`instances` is every instance, but kill-instance acts on a server instance"), "{err}");
    let err = error_of(&with(
        "[[faults]]\nat_s = 4\naction = \"kill-instance\"\ntarget = \"instance:1\"\nduration_s = 1\npause_s = 2\n",
    ));
    assert!(err.contains("faults[0].pause_s: only applies to rolling-restart, not kill-instance"), "{err}");
}

#[test]
fn a_broker_node_kill_names_a_node_of_the_cluster_the_scenario_asks_for() {
    let nodes = |n: &str, target: &str| {
        replacing("instances = 3\n", &format!("instances = 3\nrabbitmq_nodes = {n}\n")).replace(
            "duration_s = 10\n",
            &format!(
                "duration_s = 10\n\n[[faults]]\nat_s = 4\naction = \"broker-node-kill\"\ntarget = \"{target}\"\nduration_s = 2\n"
            ),
        )
    };
    let s = Scenario::parse(&nodes("3", "rabbitmq:2"), "x").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.cluster.rabbitmq_nodes, 3);
    assert_eq!((s.faults[0].action, s.faults[0].target), (FaultAction::BrokerNodeKill, FaultTarget::BrokerNode(2)));
    assert_eq!(Scenario::parse(MINIMAL, "x").unwrap_or_else(|e| panic!("{e}")).cluster.rabbitmq_nodes, 1);
    let err = error_of(&nodes("3", "rabbitmq:4"));
    assert!(err.contains("faults[0].target: RabbitMQ node 4 does not exist: this scenario runs 3 node(s)"), "{err}");
    let err = error_of(&nodes("3", "rabbitmq"));
    assert!(
        err.contains("`rabbitmq` is a service, but broker-node-kill acts on a node of the RabbitMQ cluster"),
        "{err}"
    );
    let err = error_of(&nodes("9", "rabbitmq:1"));
    assert!(err.contains("cluster.rabbitmq_nodes: 9 is out of range: between 1 and 5"), "{err}");
    let err = error_of(&nodes("1", "rabbitmq:2"));
    assert!(err.contains("RabbitMQ node 2 does not exist: this scenario runs 1 node(s)"), "{err}");
    let external = nodes("3", "rabbitmq:1").replace("instances = 3\n", "instances = 3\nrunner = \"external\"\n");
    let err = error_of(&external);
    assert!(err.contains("cluster.rabbitmq_nodes: applies to the harness's own containers"), "{err}");
    let err = error_of(&nodes("1", "rabbitmq:1").replace("instances = 3\n", "instances = 3\nrunner = \"external\"\n"));
    assert!(err.contains("faults[0].action: broker-node-kill acts on a node of the harness's own RabbitMQ"), "{err}");
    let err = error_of(&with("[[faults]]\nat_s = 4\naction = \"stop-service\"\ntarget = \"rabbitmq:1\"\n"));
    assert!(err.contains("`rabbitmq:1` is a RabbitMQ node, but stop-service acts on a service"), "{err}");
}
