//! Judging results against a scenario's `[thresholds]`: one verdict per limit that is set,
//! each with the measured value, so a failure says by how much.

use super::limits;
use super::{StrategyResult, ThresholdResult};
use crate::scenario::{Kind, Scenario, Thresholds};

/// Judges every result against its limits (`[thresholds.all]` overridden by the strategy's
/// own), sets each result's `passed`, and returns every verdict, in the order of the kind's
/// limits. An absent limit passes.
pub fn evaluate(scenario: &Scenario, results: &mut [StrategyResult]) -> Vec<ThresholdResult> {
    let mut verdicts = Vec::new();
    for result in results.iter_mut() {
        super::window::apply(scenario, result);
        let own = judge(scenario.kind(), &scenario.thresholds_for(&result.strategy), result);
        result.passed = own.iter().all(|v| v.passed);
        verdicts.extend(own);
    }
    verdicts
}

fn judge(kind: Kind, t: &Thresholds, r: &StrategyResult) -> Vec<ThresholdResult> {
    limits::of(kind)
        .filter_map(|limit| {
            let value = t.get(limit.key)?.limit();
            let (passed, detail) = (limit.judge)(value, r);
            Some(ThresholdResult {
                name: format!("{}.{}", r.strategy, limit.key),
                strategy: r.strategy.clone(),
                passed,
                detail,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::result;

    fn scenario(thresholds: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\nkind = \"fanout\"\nstrategies = [\"local\", \"rabbitmq\"]\n[cluster]\ninstances = 3\n\
             [load]\nusers = 10\nfriends_per_user = 2\nsse_clients = 10\nrate_per_s = 5\nduration_s = 10\n{thresholds}"
        );
        Scenario::parse(&text, "t").unwrap()
    }

    #[test]
    fn a_limit_that_is_exceeded_fails_and_says_by_how_much() {
        let s = scenario("[thresholds.rabbitmq]\nmax_lost = 0\nmax_p99_ms = 100.0\n");
        let mut rabbit = result("rabbitmq");
        rabbit.lost = 3;
        rabbit.latency_us.p99 = 12_340;
        let mut results = [rabbit];
        let verdicts = evaluate(&s, &mut results);
        assert_eq!(verdicts.len(), 2);
        assert_eq!(verdicts[0].name, "rabbitmq.max_lost");
        assert_eq!((verdicts[0].passed, verdicts[0].detail.as_str()), (false, "lost 3 > 0"));
        assert_eq!((verdicts[1].passed, verdicts[1].detail.as_str()), (true, "p99 12.34 ms <= 100 ms"));
        assert!(!results[0].passed);
    }

    #[test]
    fn absent_limits_pass_and_all_applies_to_every_strategy() {
        let s = scenario("[thresholds.all]\nmax_unexpected = 0\n[thresholds.local]\nmin_lost_ratio = 0.5\n");
        let mut local = result("local");
        local.expected = 300;
        local.lost = 200;
        let mut results = [local, result("rabbitmq")];
        let verdicts = evaluate(&s, &mut results);
        let names: Vec<&str> = verdicts.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["local.max_unexpected", "local.min_lost_ratio", "rabbitmq.max_unexpected"]);
        assert!(verdicts.iter().all(|v| v.passed), "{verdicts:?}");
        assert_eq!(verdicts[1].detail, "lost 66.7% >= 50%");
        assert!(results.iter().all(|r| r.passed));
    }

    #[test]
    fn a_loss_baseline_with_nothing_expected_fails() {
        let s = scenario("[thresholds.local]\nmin_lost_ratio = 0.5\nmax_p99_ms = 5\n");
        let mut local = result("local");
        (local.expected, local.delivered, local.lost) = (0, 0, 0);
        let mut results = [local];
        let verdicts = evaluate(&s, &mut results);
        assert!(verdicts.iter().all(|v| !v.passed), "{verdicts:?}");
        assert!(!results[0].passed);
    }

    #[test]
    fn rates_and_ratios_compare_with_their_units() {
        let s =
            scenario("[thresholds.rabbitmq]\nmin_delivered_per_s = 500\nmax_lost_ratio = 0.01\nmax_stored_twice = 0\n");
        let mut rabbit = result("rabbitmq");
        rabbit.throughput_per_s = 480.0;
        rabbit.stored_twice = 1;
        let mut results = [rabbit];
        let details: Vec<String> = evaluate(&s, &mut results).into_iter().map(|v| v.detail).collect();
        assert_eq!(details, ["stored twice 1 > 0", "throughput 480.0/s < 500/s", "lost 0.0% <= 1%"]);
    }

    #[test]
    fn an_api_run_is_judged_on_its_requests_not_on_notifications() {
        let text = "name = \"t\"\nkind = \"api\"\nstrategies = [\"rabbitmq\"]\n[cluster]\ninstances = 3\n\
                    [api]\naccounts = 10\nusers = 4\nduration_s = 5\n\
                    [thresholds.all]\nmax_error_ratio = 0.01\nmin_requests_per_s = 100\nmax_p99_ms = 50\n";
        let s = Scenario::parse(text, "t").unwrap();
        let mut rabbit = result("rabbitmq");
        (rabbit.delivered, rabbit.throughput_per_s) = (0, 80.0);
        rabbit.latency_us =
            crate::report::Percentiles { p50: 4_000, p90: 9_000, p99: 20_000, p999: 30_000, max: 41_000 };
        rabbit.api = Some(crate::report::ApiCounts { requests: 400, failures: 8, ..Default::default() });
        let mut results = [rabbit];
        let details: Vec<(bool, String)> =
            evaluate(&s, &mut results).into_iter().map(|v| (v.passed, v.detail)).collect();
        assert_eq!(
            details,
            [
                (true, "p99 20.00 ms <= 50 ms".to_string()),
                (false, "failed 8 of 400 requests (2.00%) > 1%".to_string()),
                (false, "80.0 requests/s < 100/s".to_string()),
            ]
        );
    }

    #[test]
    fn an_embed_run_is_judged_on_its_posts_median_and_what_the_request_embedded() {
        let text = "name = \"t\"\nkind = \"embed\"\nstrategies = [\"inline\", \"batch\"]\n[cluster]\ninstances = 3\n\
                    [embed]\nposts_per_s = 4\nduration_s = 8\nembed_delay_ms = 3000\n\
                    [thresholds.batch]\nmax_embedded_in_request = 0\nmax_p50_ms = 100\nmax_p99_ms = 2900\n";
        let s = Scenario::parse(text, "t").unwrap();
        // One stalled request of 32 moves the p99, not the median: the run passes.
        let mut stalled = result("batch");
        stalled.latency_us =
            crate::report::Percentiles { p50: 5_000, p90: 9_000, p99: 1_280_000, p999: 1_280_000, max: 1_280_000 };
        stalled.embed = Some(crate::report::EmbedCounts { posts: 32, created: 32, ..Default::default() });
        // Requests that waited for the embedder fail all three.
        let mut waited = stalled.clone();
        waited.latency_us = crate::report::Percentiles {
            p50: 3_010_000,
            p90: 3_050_000,
            p99: 3_300_000,
            p999: 3_300_000,
            max: 3_300_000,
        };
        waited.embed.as_mut().unwrap().embedded_in_request = 32;
        for (r, expected) in [
            (
                stalled,
                [
                    (true, "p99 1280.00 ms <= 2900 ms"),
                    (true, "p50 5.00 ms <= 100 ms"),
                    (true, "embedded in the request 0 <= 0"),
                ],
            ),
            (
                waited,
                [
                    (false, "p99 3300.00 ms > 2900 ms"),
                    (false, "p50 3010.00 ms > 100 ms"),
                    (false, "embedded in the request 32 > 0"),
                ],
            ),
        ] {
            let mut results = [r];
            let details: Vec<(bool, String)> =
                evaluate(&s, &mut results).into_iter().map(|v| (v.passed, v.detail)).collect();
            let expected: Vec<(bool, String)> = expected.iter().map(|(p, d)| (*p, d.to_string())).collect();
            assert_eq!(details, expected);
            assert_eq!(results[0].passed, expected[0].0);
        }
    }

    /// A small capacity scenario of `strategies` (a TOML array) with one limit for all of them.
    fn capacity(strategies: &str, limit: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\nkind = \"capacity\"\nstrategies = {strategies}\n[cluster]\ninstances = 3\n\
             [load]\nusers = 10\nfriends_per_user = 2\nsse_clients = 10\nrate_per_s = 5\nduration_s = 10\n\
             [ramp]\nfactor = 2\nmax_rate_per_s = 40\nmax_p99_ms = 500\n[thresholds.all]\n{limit}\n"
        );
        Scenario::parse(&text, "t").unwrap()
    }

    #[test]
    fn a_capacity_limit_judges_the_highest_sustained_step() {
        let s = capacity("[\"local\", \"rabbitmq\"]", "min_sustained_delivered_per_s = 100");
        let mut rabbit = result("rabbitmq");
        rabbit.sustained = Some(crate::report::Sustained { events_per_s: 40.0, delivered_per_s: 240.5, p99_us: 9_000 });
        let mut results = [result("local"), rabbit];
        let verdicts = evaluate(&s, &mut results);
        assert_eq!((verdicts[0].passed, verdicts[0].detail.as_str()), (false, "no step of the ramp was sustained"));
        assert_eq!(
            (verdicts[1].passed, verdicts[1].detail.as_str()),
            (true, "sustained 240.5/s (at 40 events/s) >= 100/s")
        );
    }

    #[test]
    fn a_share_of_the_single_instance_ceiling_is_judged_and_a_missing_one_says_why() {
        let s = capacity("[\"rabbitmq\", \"outbox\"]", "min_single_instance_share_pct = 80");
        let (mut rabbit, mut outbox, unknown) = (result("rabbitmq"), result("outbox"), result("outbox"));
        rabbit.single_instance_share_pct = Some(83.4);
        outbox.single_instance_share_pct = Some(64.0);
        let mut results = [rabbit, outbox, unknown];
        let verdicts: Vec<(bool, String)> =
            evaluate(&s, &mut results).into_iter().map(|v| (v.passed, v.detail)).collect();
        assert_eq!(verdicts[0], (true, "sustained 83.4% of the single-instance ceiling >= 80%".to_string()));
        assert_eq!(verdicts[1], (false, "sustained 64.0% of the single-instance ceiling < 80%".to_string()));
        assert!(!verdicts[2].0 && verdicts[2].1.contains("raise ramp.max_rate_per_s"), "{:?}", verdicts[2]);
    }

    #[test]
    fn the_worst_window_is_judged_and_named_after_the_fault_before_it() {
        let s = scenario("[thresholds.rabbitmq]\nmax_p99_ms_window = { window_s = 2, max = 200 }\n");
        let mut rabbit = result("rabbitmq");
        // Warm-up 3 s, load 10 s: fast, but seconds 6 and 7 are slow after a kill at 5.5 s.
        rabbit.latency_per_second_us =
            (0..13).map(|s| if s == 6 || s == 7 { vec![800_000; 50] } else { vec![4_000; 50] }).collect();
        rabbit.recoveries = vec![crate::report::recovery::Recovery {
            fault: "kill-instance instance:2".into(),
            at_s: 5.5,
            recovered_after_s: Some(3.0),
            worst_p99_window_us: None,
        }];
        let mut results = [rabbit];
        let verdicts = evaluate(&s, &mut results);
        assert_eq!(verdicts.len(), 1);
        assert!(!verdicts[0].passed);
        assert_eq!(
            verdicts[0].detail,
            "worst 2 s window p99 800.00 ms (from 5 s, after kill-instance instance:2 at 5.5 s) > 200 ms"
        );
        let r = &results[0];
        assert_eq!(r.recoveries[0].worst_p99_window_us, Some(800_000));
        assert!(r.notes.iter().any(|n| n.contains("worst window after kill-instance instance:2 at 5.5 s: 800.00 ms")));
        let w = r.p99_windows.as_ref().expect("windows kept for report.json");
        assert_eq!((w.from_s, w.p99_us.len()), (3, 9), "windows start at 3..=11 (the load ends at 13 s)");
        // Without the limit nothing is computed or judged.
        let mut plain = [result("rabbitmq")];
        assert!(evaluate(&scenario(""), &mut plain).is_empty() && plain[0].p99_windows.is_none());
    }
}
