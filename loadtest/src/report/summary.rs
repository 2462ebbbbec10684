//! The summary printed on the terminal at the end of a run: plain text, no markup, no
//! escapes; the same tables as the other formats.

use std::fmt::Write;

use super::text::seconds;
use super::{RunReport, columns};

pub(super) fn render(r: &RunReport) -> String {
    let mut out = String::new();
    let verdict = if r.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(
        out,
        "{}: {verdict} ({}, {} instances, {})\n",
        r.scenario,
        r.kind.as_str(),
        r.instances,
        seconds(r.duration_s)
    );
    for table in columns::tables(r) {
        out.push_str(&table.to_text());
        out.push('\n');
    }
    if r.thresholds.is_empty() {
        out.push_str("no thresholds: nothing can fail this scenario\n");
    }
    for t in &r.thresholds {
        let _ = writeln!(out, "{} {}: {}", if t.passed { "pass" } else { "FAIL" }, t.name, t.detail);
    }
    let failed_faults: Vec<_> = r.faults.iter().filter(|f| f.outcome != "ok").collect();
    for f in failed_faults {
        let _ = writeln!(out, "fault {} {} at {} ({}): {}", f.action, f.target, seconds(f.at_s), f.strategy, f.outcome);
    }
    for g in r.generators.iter().filter(|g| g.cpu.saturated) {
        let _ = writeln!(out, "warning: {}", g.cpu.describe(&g.name));
    }
    out
}
