//! `report.md`: the verdict and the numbers as Markdown, for a terminal, a pull request or a
//! CI job summary.

use std::fmt::Write;

use super::text::{md_cell, ms, percent, seconds};
use super::{RunReport, StrategyResult, fault_rows};

pub(super) fn render(r: &RunReport) -> String {
    let mut out = String::new();
    let verdict = if r.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(out, "# {}: {verdict}\n", md_cell(&r.scenario));
    let _ = writeln!(out, "| | |\n|---|---|");
    for (key, value) in [
        ("verdict", format!("**{verdict}**")),
        ("kind", md_cell(&r.kind)),
        ("command", md_cell(&r.command)),
        ("instances", r.instances.to_string()),
        ("duration", seconds(r.duration_s)),
        ("started", md_cell(&r.started_at)),
        ("images", md_cell(&r.image_set)),
    ] {
        let _ = writeln!(out, "| {key} | {value} |");
    }

    out.push_str("\n## Results\n\n");
    match r.kind.as_str() {
        "claim" => claim_table(&mut out, &r.results),
        "booking" => booking_table(&mut out, &r.results),
        "jobs" => jobs_table(&mut out, &r.results),
        "api" => api_tables(&mut out, &r.results),
        _ => results_table(&mut out, &r.results),
    }

    if r.results.iter().any(|s| !s.ramp.is_empty()) {
        out.push_str("\n## Capacity ramp\n\nEach step is judged on the notifications of its own requests.\n");
        for s in r.results.iter().filter(|s| !s.ramp.is_empty()) {
            ramp_table(&mut out, s);
        }
    }

    out.push_str("\n## Thresholds\n\n");
    if r.thresholds.is_empty() {
        out.push_str("No thresholds: nothing can fail this scenario.\n");
    }
    for t in &r.thresholds {
        let mark = if t.passed { "✅" } else { "❌" };
        let _ = writeln!(out, "- {mark} {}: {}", md_cell(&t.name), md_cell(&t.detail));
    }

    if !r.faults.is_empty() {
        out.push_str("\n## Faults\n\n| at | action | target | strategies | outcome |\n|---:|---|---|---|---|\n");
        for f in fault_rows(&r.faults) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                seconds(f.at_s),
                md_cell(&f.action),
                md_cell(&f.target),
                md_cell(&f.strategies_label(&r.results)),
                md_cell(&f.outcome)
            );
        }
    }

    let lossy: Vec<&StrategyResult> = r.results.iter().filter(|s| !s.lost_examples.is_empty()).collect();
    if !lossy.is_empty() {
        out.push_str("\n## Lost examples\n");
        for s in lossy {
            let _ = writeln!(out, "\n### {} (first {} of {})\n", md_cell(&s.strategy), s.lost_examples.len(), s.lost);
            for example in &s.lost_examples {
                let _ = writeln!(out, "- {}", md_cell(example));
            }
        }
    }

    let noted: Vec<&StrategyResult> = r.results.iter().filter(|s| !s.notes.is_empty()).collect();
    if !noted.is_empty() {
        out.push_str("\n## Notes\n");
        for s in noted {
            let _ = writeln!(out, "\n### {}\n", md_cell(&s.strategy));
            for note in &s.notes {
                let _ = writeln!(out, "- {}", md_cell(note));
            }
        }
    }

    if let Some(baseline) = &r.baseline {
        let json = serde_json::to_string_pretty(baseline).unwrap_or_default();
        let _ = writeln!(out, "\n## Baseline\n\n```json\n{}\n```", json.replace("```", "'''"));
    }
    out
}

fn results_table(out: &mut String, results: &[StrategyResult]) {
    out.push_str(
        "| strategy | expected | delivered | lost | lost % | duplicated | same id twice | inversions | unexpected | \
         stored twice | resumes | throughput/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | verdict |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for s in results {
        let l = &s.latency_us;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            md_cell(&s.strategy),
            s.expected,
            s.delivered,
            s.lost,
            percent(s.lost, s.expected),
            s.duplicated,
            s.same_id_twice,
            s.inversions,
            s.unexpected,
            s.stored_twice,
            s.resumes,
            s.throughput_per_s,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            if s.passed { "✅" } else { "❌" },
        );
    }
}

fn ramp_table(out: &mut String, s: &StrategyResult) {
    let sustained = match &s.sustained {
        Some(x) => format!(
            "sustained without loss: **{:.0} events/s = {:.1} notifications/s** (p99 {} ms)",
            x.events_per_s,
            x.delivered_per_s,
            ms(x.p99_us)
        ),
        None => "**no step sustained**".to_string(),
    };
    let _ = writeln!(out, "\n### {}: {sustained}\n", md_cell(&s.strategy));
    out.push_str(
        "| offered events/s | sent | skipped | expected | delivered | lost | duplicated | delivered/s | p50 ms | p99 ms | max ms | step |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for step in &s.ramp {
        let l = &step.latency_us;
        let verdict =
            if step.sustained { "✅ sustained".to_string() } else { format!("❌ {}", md_cell(&step.verdict)) };
        let _ = writeln!(
            out,
            "| {:.1} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {verdict} |",
            step.offered_per_s,
            step.sent,
            step.skipped,
            step.expected,
            step.delivered,
            step.lost,
            step.duplicated,
            step.delivered_per_s,
            ms(l.p50),
            ms(l.p99),
            ms(l.max),
        );
    }
}

fn mark(passed: bool) -> &'static str {
    if passed { "✅" } else { "❌" }
}

fn claim_table(out: &mut String, results: &[StrategyResult]) {
    out.push_str(
        "| strategy | posts | done | double processed | stuck | embed calls | failed calls | fenced | claims | \
         wasted claims | posts/s | verdict |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for s in results {
        let c = s.claim.unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
            md_cell(&s.strategy),
            c.items,
            c.done,
            c.double_processed,
            c.stuck,
            c.embed_calls,
            c.failed_calls,
            c.fenced,
            c.claims,
            c.wasted_claims,
            s.throughput_per_s,
            mark(s.passed)
        );
    }
}

fn booking_table(out: &mut String, results: &[StrategyResult]) {
    out.push_str(
        "| strategy | requests | approvals | approved | most possible | 409 | errors | overlaps | disagreements | \
         approvals/s | p50 ms | p99 ms | max ms | verdict |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for s in results {
        let b = s.booking.unwrap_or_default();
        let l = &s.latency_us;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} |",
            md_cell(&s.strategy),
            b.requests,
            b.approvals,
            b.approved,
            b.max_possible,
            b.conflicts,
            b.errors,
            b.overlaps,
            b.disagreements,
            s.throughput_per_s,
            ms(l.p50),
            ms(l.p99),
            ms(l.max),
            mark(s.passed)
        );
    }
}

fn jobs_table(out: &mut String, results: &[StrategyResult]) {
    out.push_str(
        "| strategy | firings due | runs | missed | run twice | longest gap s | verdict |\n|---|---:|---:|---:|---:|---:|---|\n",
    );
    for s in results {
        let j = s.jobs.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.1} | {} |",
            md_cell(&s.strategy),
            j.firings,
            j.runs,
            j.missed_firings,
            j.double_firings,
            j.max_gap_s,
            mark(s.passed)
        );
    }
}

fn api_tables(out: &mut String, results: &[StrategyResult]) {
    out.push_str(
        "| strategy | goose users | requests | failed | requests/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | \
         goose report | verdict |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    for s in results {
        let a = s.api.clone().unwrap_or_default();
        let l = &s.latency_us;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | [{}]({}) | {} |",
            md_cell(&s.strategy),
            a.users,
            a.requests,
            a.failures,
            s.throughput_per_s,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            md_cell(&a.goose_report),
            md_cell(&a.goose_report),
            mark(s.passed)
        );
    }
    for s in results {
        let Some(a) = &s.api else { continue };
        let _ = writeln!(
            out,
            "\n### {} per endpoint\n\n| endpoint | requests | failed | requests/s | p50 ms | p90 ms | p99 ms | max ms |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|",
            md_cell(&s.strategy)
        );
        for e in &a.endpoints {
            let l = &e.latency_us;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} | {} | {} | {} | {} |",
                md_cell(&e.name),
                e.requests,
                e.failures,
                e.requests_per_s,
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.max)
            );
        }
    }
}
