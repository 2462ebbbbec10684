use std::time::{Duration, Instant};

use super::*;
use crate::ledger::{Cause, Ledger};
use crate::scenario::Kind;

/// A strategy's result with nothing wrong in it.
pub(crate) fn result(strategy: &str) -> StrategyResult {
    StrategyResult {
        strategy: strategy.to_string(),
        expected: 100,
        delivered: 100,
        lost: 0,
        duplicated: 0,
        unexpected: 0,
        misrouted: 0,
        indeterminate: 0,
        redelivered_same_id: 0,
        same_id_twice: 0,
        inversions: 0,
        resumes: 0,
        given_up: 0,
        cross_shard: 0,
        stored_twice: 0,
        failed_requests: 0,
        retried_requests: 0,
        events_caused: 40,
        throughput_per_s: 10.0,
        latency_us: Percentiles { p50: 1_200, p90: 2_500, p99: 8_000, p999: 15_000, max: 21_000 },
        passed: true,
        deliveries_per_second: vec![0, 10, 10, 10],
        p99_per_second_us: Vec::new(),
        lost_examples: Vec::new(),
        notes: Vec::new(),
        ramp: Vec::new(),
        sustained: None,
        single_instance_share_pct: None,
        claim: None,
        booking: None,
        jobs: None,
        api: None,
        chat: None,
        embed: None,
        timeline: None,
        database: None,
        machine: None,
        recoveries: Vec::new(),
        p99_windows: None,
        latency_per_second_us: Vec::new(),
    }
}

/// A run that looks like the real one: `local` loses about 2/3, the rest deliver, faults hit.
pub(crate) fn sample_report() -> RunReport {
    let curve = |level: u64, dips: &[(usize, usize, u64)]| -> Vec<u64> {
        (0..38)
            .map(|s| {
                if s < 3 {
                    return 0;
                }
                let wobble = (s as u64 * 37) % 23;
                dips.iter().find(|(from, to, _)| (*from..*to).contains(&s)).map_or(level + wobble, |d| d.2 + wobble / 4)
            })
            .collect()
    };
    let mut local = result("local");
    (local.expected, local.delivered, local.lost) = (23_950, 8_012, 15_938);
    local.deliveries_per_second = curve(265, &[(10, 15, 170)]);
    local.lost_examples = (1..=20).map(|u| format!("user {u}: diary {}", u * 3)).collect();
    local.passed = true;
    local.throughput_per_s = 267.1;
    local.latency_us = Percentiles { p50: 850, p90: 1_900, p99: 4_100, p999: 9_800, max: 12_500 };
    let mut rabbit = result("rabbitmq");
    (rabbit.expected, rabbit.delivered) = (23_950, 23_950);
    rabbit.throughput_per_s = 798.3;
    rabbit.deliveries_per_second = curve(790, &[(10, 12, 520), (20, 25, 40), (25, 27, 1_900)]);
    rabbit.latency_us = Percentiles { p50: 2_400, p90: 6_800, p99: 140_000, p999: 4_900_000, max: 5_020_000 };
    rabbit.passed = false;
    rabbit.notes = vec!["broker outage 20-25 s: notifications buffered by the publisher".to_string()];
    let mut outbox = result("outbox");
    (outbox.expected, outbox.delivered, outbox.duplicated) = (23_950, 23_950, 0);
    (outbox.redelivered_same_id, outbox.same_id_twice, outbox.inversions, outbox.resumes) = (41, 41, 7, 1_210);
    outbox.throughput_per_s = 798.3;
    outbox.deliveries_per_second = curve(780, &[(20, 25, 700)]);
    let fault = |at_s: f64, action: &str, target: &str, strategy: &str| FaultRecord {
        at_s,
        action: action.to_string(),
        target: target.to_string(),
        strategy: strategy.to_string(),
        outcome: "ok".to_string(),
        adapter: None,
        detail: None,
    };
    let mut faults = Vec::new();
    for s in ["local", "rabbitmq", "outbox"] {
        faults.push(fault(10.0, "kill-instance", "instance:2", s));
        faults.push(fault(15.0, "restart-instance", "instance:2", s));
        faults.push(fault(20.0, "stop-service", "rabbitmq", s));
        faults.push(fault(25.0, "start-service", "rabbitmq", s));
        faults.push(fault(32.0, "restart-service", "redis", s));
    }
    RunReport {
        scenario: "notify-fanout".to_string(),
        kind: Kind::Fanout,
        instances: 3,
        duration_s: 131.4,
        passed: false,
        started_at: "2026-11-22T10:15:00Z".to_string(),
        command: "loadtest run scenarios/notify-fanout.toml".to_string(),
        image_set: "debian".to_string(),
        faults,
        thresholds: vec![
            ThresholdResult {
                name: "local.min_lost_ratio".to_string(),
                strategy: "local".to_string(),
                passed: true,
                detail: "lost 66.5% >= 50%".to_string(),
            },
            ThresholdResult {
                name: "rabbitmq.max_lost".to_string(),
                strategy: "rabbitmq".to_string(),
                passed: true,
                detail: "lost 0 <= 0".to_string(),
            },
            ThresholdResult {
                name: "rabbitmq.max_p99_ms".to_string(),
                strategy: "rabbitmq".to_string(),
                passed: false,
                detail: "p99 140.00 ms > 100 ms".to_string(),
            },
        ],
        results: vec![local, rabbit, outbox],
        baseline: Some(serde_json::json!({ "raw_fanout_msgs_per_s": 84_000 })),
        targets: None,
        repeats: Vec::new(),
        spread: Vec::new(),
        generators: Vec::new(),
    }
}

fn hostile_report() -> RunReport {
    let mut r = sample_report();
    r.scenario = "<script>alert('x')</script> & \u{0}".to_string();
    r.results[0].strategy = "<b>local</b>".to_string();
    r.thresholds[2].detail = "p99 \"140\" ms > 100 ms <&>".to_string();
    r.faults[0].action = "<img src=x onerror=alert(1)>".to_string();
    r
}

/// The object's keys, sorted (serde_json maps do not keep insertion order).
fn keys(value: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

#[test]
fn json_field_names_are_the_published_schema_and_round_trip() {
    let report = sample_report();
    let value = serde_json::to_value(&report).unwrap();
    assert_eq!(
        keys(&value),
        [
            "baseline",
            "command",
            "duration_s",
            "faults",
            "image_set",
            "instances",
            "kind",
            "passed",
            "results",
            "scenario",
            "started_at",
            "thresholds"
        ]
    );
    assert_eq!(
        keys(&value["results"][0]),
        [
            "delivered",
            "deliveries_per_second",
            "duplicated",
            "events_caused",
            "expected",
            "given_up",
            "indeterminate",
            "inversions",
            "latency_us",
            "lost",
            "lost_examples",
            "misrouted",
            "notes",
            "passed",
            "redelivered_same_id",
            "resumes",
            "same_id_twice",
            "stored_twice",
            "strategy",
            "throughput_per_s",
            "unexpected"
        ]
    );
    assert_eq!(keys(&value["results"][0]["latency_us"]), ["max", "p50", "p90", "p99", "p999"]);
    assert_eq!(keys(&value["faults"][0]), ["action", "at_s", "outcome", "strategy", "target"]);
    assert_eq!(keys(&value["thresholds"][0]), ["detail", "name", "passed", "strategy"]);
    let text = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(serde_json::from_str::<RunReport>(&text).unwrap(), report);
}

#[test]
fn a_result_carries_the_ledger_counts() {
    let t0 = Instant::now();
    let mut ledger = Ledger::new(t0);
    ledger.expect(1, Cause::diary(1), t0);
    ledger.expect(2, Cause::diary(1), t0);
    ledger.observe(10, 1, 100, 1, Cause::diary(1), t0 + Duration::from_millis(3), Some(7));
    ledger.observe(10, 1, 100, 1, Cause::diary(1), t0 + Duration::from_millis(4), Some(7));
    ledger.observe(10, 1, 99, 1, Cause::diary(2), t0 + Duration::from_millis(5), Some(6));
    let r = StrategyResult::from_summary("rabbitmq", &ledger.summary(), 1, 0, 0.5);
    assert_eq!((r.expected, r.delivered, r.lost, r.redelivered_same_id, r.events_caused), (2, 1, 1, 1, 1));
    assert_eq!((r.same_id_twice, r.inversions), (1, 1));
    assert_eq!(r.throughput_per_s, 2.0);
    assert_eq!(r.lost_examples, ["user 2: diary 1"]);
    assert!(r.passed);
    assert_eq!(StrategyResult::from_summary("x", &ledger.summary(), 1, 0, 0.0).throughput_per_s, 0.0);
}

#[test]
fn markdown_has_every_strategy_threshold_and_fault() {
    let md = to_markdown(&sample_report());
    assert!(md.starts_with("# notify-fanout: FAIL\n"), "{md}");
    for strategy in ["local", "rabbitmq", "outbox"] {
        assert!(md.contains(&format!("\n| {strategy} | 23950 |")), "{strategy}: {md}");
    }
    assert!(md.contains("| 66.5 |"), "lost % of local: {md}");
    assert!(md.contains("| 2.40 | 6.80 | 140.00 | 4900.00 | 5020.00 | ❌ |"), "{md}");
    assert!(md.contains("- ❌ rabbitmq.max_p99_ms: p99 140.00 ms > 100 ms"), "{md}");
    assert!(md.contains("- ✅ local.min_lost_ratio"), "{md}");
    assert!(md.contains("| 10 s | kill-instance | instance:2 | all | ok |"), "{md}");
    assert_eq!(md.matches("| kill-instance |").count(), 1, "one row per fault, not per run: {md}");
    assert!(md.contains("### local (first 20 of 15938)"), "{md}");
    assert!(md.contains("\"raw_fanout_msgs_per_s\": 84000"), "{md}");
}

#[test]
fn every_format_reports_same_id_twice_inversions_and_resumes() {
    let report = sample_report();

    let md = to_markdown(&report);
    let html = to_html(&report);
    let xml = to_junit(&report);

    assert!(md.contains("| duplicated | same id twice | inversions |"), "{md}");
    assert!(md.contains("| outbox | 23950 | 23950 | 0 | 0.0 | 0 | 41 | 7 | 0 | 0 | 0 | 1210 |"), "{md}");
    assert!(html.contains("<th>same id twice</th><th>inversions</th>"), "{html}");
    assert!(html.contains("<td class=\"n\">41</td><td class=\"n\">7</td>"), "{html}");
    assert!(xml.contains("<property name=\"outbox.inversions\" value=\"7\"/>"), "{xml}");
    assert!(xml.contains("<property name=\"outbox.same_id_twice\" value=\"41\"/>"), "{xml}");
    assert!(xml.contains("<property name=\"outbox.resumes\" value=\"1210\"/>"), "{xml}");
}

#[test]
fn faults_are_grouped_across_runs_in_time_order() {
    let mut r = sample_report();
    // Each run injects at a slightly different instant; one run failed to inject.
    r.faults[5].at_s = 10.04;
    r.faults[10].outcome = "failed: no such container".to_string();
    let rows = fault_rows(&r.faults);
    assert_eq!(rows.len(), 6);
    assert_eq!((rows[0].at_s, rows[0].strategies_label(&r.results)), (10.0, "local, rabbitmq".to_string()));
    assert_eq!(rows[1].strategies, ["outbox"]);
    assert!(rows.is_sorted_by(|a, b| a.at_s <= b.at_s));
}

#[test]
fn markdown_cells_cannot_break_the_table() {
    let mut r = sample_report();
    r.results[0].strategy = "a|b".to_string();
    assert!(to_markdown(&r).contains("| a\\|b |"));
}

#[test]
fn html_is_self_contained_with_three_charts() {
    let page = to_html(&sample_report());
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<svg").count(), 3);
    assert_eq!(page.matches("</svg>").count(), 3);
    assert_eq!(page.matches("<table").count(), page.matches("</table>").count());
    // Nothing to fetch: the only URL is the SVG namespace, which is a name, not a request.
    assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="));
    assert_eq!(page.matches("://").count(), page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count());
    assert!(page.contains("kill-instance instance:2"), "fault markers on the deliveries chart");
    for strategy in ["local", "rabbitmq", "outbox"] {
        assert!(page.contains(&format!("<title>{strategy}</title></polyline>")), "{strategy}");
    }
}

#[test]
fn html_escapes_everything_a_scenario_can_say() {
    let page = to_html(&hostile_report());
    assert!(!page.contains("<script") && !page.contains("<img") && !page.contains("<b>"), "unescaped markup");
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp;"));
    assert!(page.contains("&lt;b&gt;local&lt;/b&gt;"));
    assert!(!page.contains('\u{0}'));
}

#[test]
fn an_empty_run_still_renders() {
    let mut r = sample_report();
    r.results.iter_mut().for_each(|s| {
        s.latency_us = Percentiles::default();
        s.deliveries_per_second.clear();
    });
    r.results.truncate(1);
    r.faults.clear();
    let page = to_html(&r);
    assert!(page.contains("nothing delivered: no latency to show") && page.contains(">nothing delivered<"));
    r.results.clear();
    assert!(to_html(&r).contains("no results"));
}

#[test]
fn junit_counts_one_case_per_threshold() {
    let xml = to_junit(&sample_report());
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"));
    assert!(xml.contains("<testsuite name=\"notify-fanout\" tests=\"3\" failures=\"1\" errors=\"0\""), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 3);
    assert_eq!(xml.matches("<failure ").count(), 1);
    assert!(xml.contains("<failure message=\"p99 140.00 ms &gt; 100 ms\" type=\"threshold\">"), "{xml}");
}

#[test]
fn junit_escapes_what_a_scenario_can_say() {
    let xml = to_junit(&hostile_report());
    assert!(!xml.contains("<script") && !xml.contains('\u{0}'));
    assert!(xml.contains("&quot;140&quot; ms &gt; 100 ms &lt;&amp;&gt;"), "{xml}");
}

#[test]
fn junit_fails_a_failed_run_even_when_every_threshold_passed() {
    let mut r = sample_report();
    r.thresholds.iter_mut().for_each(|t| t.passed = true);
    let xml = to_junit(&r);
    assert!(xml.contains("tests=\"4\" failures=\"1\""), "{xml}");
    assert!(xml.contains("name=\"notify-fanout.run\""), "{xml}");
    r.passed = true;
    assert!(to_junit(&r).contains("tests=\"3\" failures=\"0\""));
}

#[test]
fn write_puts_four_files_in_the_directory() {
    let dir = std::env::temp_dir().join(crate::infra::unique_name("report"));
    let paths = write(&dir, &sample_report()).unwrap();
    for path in [&paths.json, &paths.markdown, &paths.html, &paths.junit] {
        assert!(std::fs::metadata(path).unwrap().len() > 100, "{}", path.display());
    }
    let json = std::fs::read_to_string(&paths.json).unwrap();
    assert_eq!(serde_json::from_str::<RunReport>(&json).unwrap(), sample_report());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn ramp_step(offered: f64, delivered_per_s: f64, lost: u64) -> RampStep {
    RampStep {
        offered_per_s: offered,
        sent: (offered * 10.0) as u64,
        skipped: 0,
        expected: 100,
        delivered: 100 - lost,
        lost,
        duplicated: 0,
        delivered_per_s,
        latency_us: Percentiles { p50: 1_000, p90: 2_000, p99: 5_000, p999: 6_000, max: 7_000 },
        sustained: lost == 0,
        verdict: if lost == 0 { String::new() } else { format!("lost {lost} of 100 (x)") },
        bisect: false,
    }
}

#[test]
fn a_capacity_report_shows_every_step_and_the_sustained_rate() {
    let mut report = sample_report();
    report.kind = Kind::Capacity;
    report.results.truncate(2);
    report.results[0].ramp = vec![ramp_step(50.0, 100.0, 66)];
    report.results[1].ramp = vec![ramp_step(50.0, 300.0, 0), ramp_step(100.0, 600.0, 0), ramp_step(200.0, 900.0, 12)];
    report.results[1].sustained = Some(Sustained { events_per_s: 100.0, delivered_per_s: 600.0, p99_us: 5_000 });
    let md = to_markdown(&report);
    assert!(md.contains("## Capacity ramp"), "{md}");
    assert!(md.contains("no step sustained"), "{md}");
    assert!(md.contains("sustained without loss: 100 events/s = 600.0 notifications/s"), "{md}");
    assert_eq!(md.matches("| 200.0 |").count(), 1, "{md}");
    assert!(md.contains("❌ lost 12 of 100 (x)"), "{md}");
    let html = to_html(&report);
    assert!(html.contains("Capacity ramp: delivered per second by offered rate"), "{html}");
    // Four steps drawn: the sustained ones filled, the others hollow.
    assert_eq!(html.matches("<circle ").count(), 4);
    assert_eq!(html.matches(r##"fill="#ffffff""##).count(), 2);
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["results"][1]["sustained"]["events_per_s"], 100.0);
    assert_eq!(json["results"][1]["ramp"].as_array().unwrap().len(), 3);
    // A fanout result carries neither field.
    assert!(serde_json::to_value(result("x")).unwrap().get("ramp").is_none());
}

#[test]
fn claim_results_carry_their_counts_at_the_result_level_and_render_by_kind() {
    let mut report = sample_report();
    report.kind = Kind::Claim;
    report.results = ["naive", "skip-locked"]
        .iter()
        .map(|name| {
            let mut r = StrategyResult::without_notifications(name, 1500.0, Percentiles::default());
            r.claim = Some(ClaimCounts {
                items: 1000,
                done: 1000,
                double_processed: if *name == "naive" { 37 } else { 0 },
                embed_calls: 1040,
                ..ClaimCounts::default()
            });
            r
        })
        .collect();
    let json = serde_json::to_value(&report).unwrap();
    let naive = &json["results"][0];
    for field in
        ["strategy", "items", "double_processed", "stuck", "wasted_claims", "embed_calls", "throughput_per_s", "passed"]
    {
        assert!(naive.get(field).is_some(), "results[0].{field} missing: {naive}");
    }
    assert_eq!(naive["double_processed"], 37);
    assert!(naive.get("overlaps").is_none() && naive.get("missed_firings").is_none());
    let back: RunReport = serde_json::from_value(json).unwrap();
    assert_eq!(back.results[0].claim, report.results[0].claim);
    assert!(back.results[0].booking.is_none());
    let md = to_markdown(&report);
    assert!(md.contains("| naive | 1000 | 1000 | 37 | 0 | 1040 |"), "{md}");
    let html = to_html(&report);
    assert!(html.contains("Invariant violations per strategy") && html.contains("<th>double processed</th>"), "{html}");
    assert!(!html.contains("Lost notifications"), "notification charts have nothing to show for claims");
}

#[test]
fn booking_and_jobs_results_render_their_own_columns() {
    let mut report = sample_report();
    report.kind = Kind::Booking;
    let mut b = StrategyResult::without_notifications("optimistic", 420.0, Percentiles::default());
    b.booking = Some(BookingCounts {
        requests: 200,
        approvals: 200,
        approved: 40,
        conflicts: 160,
        max_possible: 52,
        ..Default::default()
    });
    report.results = vec![b];
    assert!(to_markdown(&report).contains("| optimistic | 200 | 200 | 40 | 52 | 160 | 0 | 0 | 0 |"));
    report.kind = Kind::Jobs;
    let mut j = StrategyResult::without_notifications("clustered", 1.0, Percentiles::default());
    j.jobs = Some(JobCounts { firings: 60, runs: 59, missed_firings: 1, max_gap_s: 2.0, ..Default::default() });
    report.results = vec![j];
    let md = to_markdown(&report);
    assert!(md.contains("| clustered | 60 | 59 | 1 | 0 | 2.0 |"), "{md}");
}

#[test]
fn every_kind_takes_each_limit_once_and_names_a_main_table() {
    use crate::report::{columns, limits};
    use crate::scenario::Kind;
    for kind in Kind::ALL.iter().copied() {
        let keys = limits::keys_for(kind);
        let unique: std::collections::BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(unique.len(), keys.len(), "{kind} lists a limit twice: {keys:?}");
        assert!(!keys.is_empty(), "{kind} takes no limit: nothing could fail its runs");
        let tables = (columns::view(kind).tables)(&[result("s")]);
        assert_eq!(tables[0].columns[0].header, "strategy", "{kind}'s main table starts with the strategy");
    }
}

#[test]
fn a_result_with_a_timeline_gets_its_own_charts_with_its_faults_and_keeps_them_in_json() {
    let mut report = sample_report();
    let rabbit = report.results.iter_mut().find(|r| r.strategy == "rabbitmq").unwrap();
    rabbit.p99_per_second_us = (0..38).map(|s| if (20..25).contains(&s) { 900_000 } else { 8_000 }).collect();
    rabbit.timeline = Some(Timeline {
        t_s: (0..38).map(f64::from).collect(),
        cpu_pct: vec![
            Series { name: "instance-1".into(), values: (0..38).map(|s| (s != 12).then_some(40.0)).collect() },
            Series { name: "rabbitmq".into(), values: (0..38).map(|s| Some(f64::from(s % 7) * 10.0)).collect() },
        ],
        rss_mb: vec![Series { name: "instance-1".into(), values: vec![Some(30.0); 38] }],
    });
    let page = to_html(&report);
    // The three run-wide charts, then the p99 and the CPU of rabbitmq's run.
    assert_eq!(page.matches("<svg").count(), 5);
    assert!(page.contains("rabbitmq: CPU per process, % of one core (faults marked)"), "the CPU chart");
    assert!(page.contains("rabbitmq: p99 of each second&#39;s deliveries"), "the p99 chart");
    assert!(page.contains("<title>rabbitmq</title>"));
    // instance-1 could not be read in second 12: its line breaks there rather than bridging it.
    assert_eq!(page.matches("<title>instance-1</title></polyline>").count(), 2);
    let cpu_chart = &page[page.find("CPU per process").unwrap()..];
    assert!(cpu_chart.contains("stop-service rabbitmq"), "rabbitmq's faults are marked on its timeline");
    let json = serde_json::to_value(&report).unwrap();
    let stored = &json["results"].as_array().unwrap().iter().find(|r| r["strategy"] == "rabbitmq").unwrap();
    assert_eq!(stored["timeline"]["cpu_pct"][0]["values"][12], serde_json::Value::Null, "a missing reading");
    assert_eq!(stored["p99_per_second_us"][21], 900_000);
    let back: RunReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
    // A result without them has neither field in its JSON.
    let local = serde_json::to_value(&report.results[0]).unwrap();
    assert!(local.get("timeline").is_none() && local.get("p99_per_second_us").is_none());
}
