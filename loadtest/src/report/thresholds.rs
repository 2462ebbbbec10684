//! Judging results against a scenario's `[thresholds]`: one verdict per limit that is set,
//! each with the measured value, so a failure says by how much.

use super::{StrategyResult, ThresholdResult, text};
use crate::scenario::{Scenario, Thresholds};

/// Judges every result against its limits (`[thresholds.all]` overridden by the strategy's
/// own), sets each result's `passed`, and returns every verdict. An absent limit passes.
pub fn evaluate(scenario: &Scenario, results: &mut [StrategyResult]) -> Vec<ThresholdResult> {
    let mut verdicts = Vec::new();
    for result in results.iter_mut() {
        let own = judge(&scenario.thresholds_for(&result.strategy), result);
        result.passed = own.iter().all(|v| v.passed);
        verdicts.extend(own);
    }
    verdicts
}

fn judge(t: &Thresholds, r: &StrategyResult) -> Vec<ThresholdResult> {
    let mut out = Vec::new();
    let mut verdict = |limit: &str, passed: bool, detail: String| {
        out.push(ThresholdResult {
            name: format!("{}.{limit}", r.strategy),
            strategy: r.strategy.clone(),
            passed,
            detail,
        });
    };
    let counts = [
        ("max_lost", "lost", t.max_lost, r.lost),
        ("max_duplicated", "duplicated", t.max_duplicated, r.duplicated),
        ("max_unexpected", "unexpected", t.max_unexpected, r.unexpected),
        ("max_stored_twice", "stored twice", t.max_stored_twice, r.stored_twice),
        ("max_same_id_twice", "same id twice", t.max_same_id_twice, r.same_id_twice),
        ("max_inversions", "inversions", t.max_inversions, r.inversions),
    ];
    for (limit, what, max, value) in counts {
        if let Some(max) = max {
            let passed = value <= max;
            verdict(limit, passed, format!("{what} {value} {} {max}", if passed { "<=" } else { ">" }));
        }
    }
    if let Some(max) = t.max_p99_ms {
        // Notification kinds measure delivery latency; booking and api runs, request latency.
        let measured = if r.booking.is_some() || r.api.is_some() { r.latency_us.max > 0 } else { r.delivered > 0 };
        if !measured {
            verdict("max_p99_ms", false, "nothing measured: no p99 to compare".to_string());
        } else {
            let p99_ms = r.latency_us.p99 as f64 / 1000.0;
            let passed = p99_ms <= max;
            let op = if passed { "<=" } else { ">" };
            verdict("max_p99_ms", passed, format!("p99 {} ms {op} {max} ms", text::ms(r.latency_us.p99)));
        }
    }
    if let Some(min) = t.min_resumes {
        let passed = r.resumes >= min;
        let op = if passed { ">=" } else { "<" };
        verdict("min_resumes", passed, format!("resumes {} {op} {min}", r.resumes));
    }
    if let Some(min) = t.min_delivered_per_s {
        let passed = r.throughput_per_s >= min;
        let op = if passed { ">=" } else { "<" };
        verdict("min_delivered_per_s", passed, format!("throughput {:.1}/s {op} {min}/s", r.throughput_per_s));
    }
    if let Some(min) = t.min_sustained_delivered_per_s {
        let (passed, detail) = match &r.sustained {
            Some(s) => {
                let passed = s.delivered_per_s >= min;
                let op = if passed { ">=" } else { "<" };
                (
                    passed,
                    format!("sustained {:.1}/s (at {:.0} events/s) {op} {min}/s", s.delivered_per_s, s.events_per_s),
                )
            }
            None => (false, "no step of the ramp was sustained".to_string()),
        };
        verdict("min_sustained_delivered_per_s", passed, detail);
    }
    if let Some(c) = &r.claim {
        for (limit, what, max, value) in [
            ("max_double_processed", "double processed", t.max_double_processed, c.double_processed),
            ("max_stuck", "stuck", t.max_stuck, c.stuck),
        ] {
            if let Some(max) = max {
                let passed = value <= max;
                verdict(limit, passed, format!("{what} {value} {} {max}", if passed { "<=" } else { ">" }));
            }
        }
        if let Some(min) = t.min_double_processed {
            let passed = c.double_processed >= min;
            let detail = format!(
                "double processed {} {} {min} (this strategy is expected to double-process: the ledger must see it)",
                c.double_processed,
                if passed { ">=" } else { "<" }
            );
            verdict("min_double_processed", passed, detail);
        }
        if let Some(min) = t.min_items_per_s {
            let passed = r.throughput_per_s >= min;
            let op = if passed { ">=" } else { "<" };
            verdict("min_items_per_s", passed, format!("{:.1} posts/s {op} {min}/s", r.throughput_per_s));
        }
    }
    if let (Some(b), Some(max)) = (&r.booking, t.max_overlaps) {
        let passed = b.overlaps <= max;
        verdict(
            "max_overlaps",
            passed,
            format!("overlapping approvals {} {} {max}", b.overlaps, if passed { "<=" } else { ">" }),
        );
    }
    if let Some(j) = &r.jobs {
        for (limit, what, max, value) in [
            ("max_missed_firings", "missed firings", t.max_missed_firings, j.missed_firings),
            ("max_double_firings", "firings run twice", t.max_double_firings, j.double_firings),
        ] {
            if let Some(max) = max {
                let passed = value <= max;
                verdict(limit, passed, format!("{what} {value} {} {max}", if passed { "<=" } else { ">" }));
            }
        }
        if let Some(max) = t.max_gap_s {
            let passed = j.max_gap_s <= max;
            let op = if passed { "<=" } else { ">" };
            verdict("max_gap_s", passed, format!("longest gap between runs {:.1} s {op} {max} s", j.max_gap_s));
        }
    }
    if let Some(a) = &r.api {
        if let Some(max) = t.max_error_ratio {
            let passed = a.requests > 0 && a.error_ratio() <= max;
            let detail = if a.requests == 0 {
                "no request was measured".to_string()
            } else {
                format!(
                    "failed {} of {} requests ({:.2}%) {} {}%",
                    a.failures,
                    a.requests,
                    a.error_ratio() * 100.0,
                    if passed { "<=" } else { ">" },
                    max * 100.0
                )
            };
            verdict("max_error_ratio", passed, detail);
        }
        if let Some(min) = t.min_requests_per_s {
            let passed = r.throughput_per_s >= min;
            let op = if passed { ">=" } else { "<" };
            verdict("min_requests_per_s", passed, format!("{:.1} requests/s {op} {min}/s", r.throughput_per_s));
        }
    }
    let lost_pct = text::percent(r.lost, r.expected);
    if let Some(min) = t.min_lost_ratio {
        // A baseline that loses nothing because nothing was expected proves nothing.
        let passed = r.expected > 0 && r.lost_ratio() >= min;
        let detail = if r.expected == 0 {
            "nothing expected: no loss ratio to compare".to_string()
        } else {
            format!("lost {lost_pct}% {} {}%", if passed { ">=" } else { "<" }, min * 100.0)
        };
        verdict("min_lost_ratio", passed, detail);
    }
    if let Some(max) = t.max_lost_ratio {
        let passed = r.lost_ratio() <= max;
        let op = if passed { "<=" } else { ">" };
        verdict("max_lost_ratio", passed, format!("lost {lost_pct}% {op} {}%", max * 100.0));
    }
    out
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
    fn a_capacity_limit_judges_the_highest_sustained_step() {
        let text = "name = \"t\"\nkind = \"capacity\"\nstrategies = [\"local\", \"rabbitmq\"]\n[cluster]\ninstances = 3\n\
                    [load]\nusers = 10\nfriends_per_user = 2\nsse_clients = 10\nrate_per_s = 5\nduration_s = 10\n\
                    [ramp]\nfactor = 2\nmax_rate_per_s = 40\nmax_p99_ms = 500\n\
                    [thresholds.all]\nmin_sustained_delivered_per_s = 100\n";
        let s = Scenario::parse(text, "t").unwrap();
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
}
