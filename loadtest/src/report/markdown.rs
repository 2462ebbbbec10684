//! `report.md`: the verdict and the numbers as Markdown, for a terminal, a pull request or a
//! CI job summary.

use std::fmt::Write;

use super::text::{md_cell, seconds};
use super::{RunReport, StrategyResult, columns, fault_rows};

pub(super) fn render(r: &RunReport) -> String {
    let mut out = String::new();
    let verdict = if r.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(out, "# {}: {verdict}\n", md_cell(&r.scenario));
    let _ = writeln!(out, "| | |\n|---|---|");
    for (key, value) in [
        ("verdict", format!("**{verdict}**")),
        ("kind", md_cell(r.kind.as_str())),
        ("command", md_cell(&r.command)),
        ("instances", r.instances.to_string()),
        ("duration", seconds(r.duration_s)),
        ("started", md_cell(&r.started_at)),
        ("images", md_cell(&r.image_set)),
    ] {
        let _ = writeln!(out, "| {key} | {value} |");
    }

    let mut section = None;
    for (i, table) in columns::tables(r).iter().enumerate() {
        if i == 0 {
            out.push_str("\n## Results\n\n");
        } else if table.section != section {
            if let Some((heading, intro)) = table.section {
                let _ = writeln!(out, "\n## {heading}\n");
                if !intro.is_empty() {
                    let _ = writeln!(out, "{intro}\n");
                }
            }
        } else {
            out.push('\n');
        }
        section = table.section;
        out.push_str(&table.to_markdown());
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

    if !r.generators.is_empty() {
        out.push_str("\n## Load generators\n\n");
        for g in &r.generators {
            let _ = writeln!(out, "- {}", md_cell(&g.cpu.describe(&g.name)));
        }
    }

    if let Some(baseline) = &r.baseline {
        let json = serde_json::to_string_pretty(baseline).unwrap_or_default();
        let _ = writeln!(out, "\n## Baseline\n\n```json\n{}\n```", json.replace("```", "'''"));
    }
    out
}
