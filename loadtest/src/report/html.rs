//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network) that a
//! person opens from a CI artifact or a laptop.

use std::fmt::Write;

use super::text::{html, ms, percent, seconds};
use super::{RunReport, StrategyResult, charts, fault_rows};

const STYLE: &str = "
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px auto; max-width: 1200px;
       padding: 0 16px; color: #1a1a1a; }
h1 { margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff; font-weight: 600; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-size: 12px; font-weight: 600; }
.pass { background: #1a7f37; } .fail { background: #cf222e; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
.wide { overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 3px 6px; } th { background: #f6f8fa; text-align: left; }
td { white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dl.meta dt { color: #57606a; } dl.meta dd { margin: 0; } code { background: #f6f8fa; padding: 1px 4px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
ul.checks { list-style: none; padding-left: 0; } ul.items { columns: 16em; }
svg { width: 100%; height: auto; margin: 8px 0 16px; }
svg .title { font-size: 14px; font-weight: 600; } svg .tick { font-size: 11px; fill: #444; }
svg .value { font-size: 10px; fill: #222; } svg .grid { stroke: #e5e5e5; } svg .axis { stroke: #888; }
svg .fault { stroke: #cf222e; stroke-dasharray: 5 4; }
svg .fault-label { font-size: 10px; fill: #cf222e; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; }
";

pub(super) fn render(r: &RunReport) -> String {
    let mut out = String::new();
    let (verdict, class) = if r.passed { ("PASS", "pass") } else { ("FAIL", "fail") };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{name}: {verdict}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>{name} <span class=\"verdict {class}\">{verdict}</span></h1>\n<dl class=\"meta\">",
        name = html(&r.scenario),
    );
    for (key, value) in [
        ("kind", html(&r.kind)),
        ("command", format!("<code>{}</code>", html(&r.command))),
        ("instances", r.instances.to_string()),
        ("duration", seconds(r.duration_s)),
        ("started", html(&r.started_at)),
        ("images", html(&r.image_set)),
    ] {
        let _ = write!(out, "<dt>{key}</dt><dd>{value}</dd>");
    }
    out.push_str("</dl>\n<h2>Results</h2>\n");
    let notifications = !matches!(r.kind.as_str(), "claim" | "booking" | "jobs" | "api");
    if notifications {
        results_table(&mut out, &r.results);
    } else {
        kind_table(&mut out, &r.results);
    }

    for s in r.results.iter() {
        if let Some(a) = &s.api {
            endpoint_table(&mut out, &s.strategy, a);
        }
    }

    if r.results.iter().any(|s| !s.ramp.is_empty()) {
        out.push_str("<h2>Capacity ramp</h2>\n<p>Each step is judged on the notifications of its own requests.</p>\n");
        out.push_str(&charts::ramp(&r.results));
        for s in r.results.iter().filter(|s| !s.ramp.is_empty()) {
            ramp_table(&mut out, s);
        }
    }

    let faults = fault_rows(&r.faults);
    out.push_str("<h2>Charts</h2>\n");
    if notifications {
        out.push_str(&charts::latency(&r.results));
        out.push('\n');
        out.push_str(&charts::loss(&r.results));
        out.push('\n');
        out.push_str(&charts::deliveries(&r.results, &faults));
    } else {
        out.push_str(&charts::violations(&r.results));
        if matches!(r.kind.as_str(), "booking" | "api") {
            out.push('\n');
            out.push_str(&charts::latency(&r.results));
        }
    }

    out.push_str("\n<h2>Thresholds</h2>\n");
    if r.thresholds.is_empty() {
        out.push_str("<p>No thresholds: nothing can fail this scenario.</p>\n");
    } else {
        out.push_str("<ul class=\"checks\">\n");
        for t in &r.thresholds {
            let _ = writeln!(out, "<li>{} <code>{}</code> {}</li>", badge(t.passed), html(&t.name), html(&t.detail));
        }
        out.push_str("</ul>\n");
    }

    if !faults.is_empty() {
        out.push_str(
            "<h2>Faults</h2>\n<table>\n<tr><th>at</th><th>action</th><th>target</th><th>strategies</th><th>outcome</th></tr>\n",
        );
        for f in &faults {
            let _ = writeln!(
                out,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                seconds(f.at_s),
                html(&f.action),
                html(&f.target),
                html(&f.strategies_label(&r.results)),
                html(&f.outcome)
            );
        }
        out.push_str("</table>\n");
    }

    for s in r.results.iter().filter(|s| !s.lost_examples.is_empty() || !s.notes.is_empty()) {
        let _ = writeln!(out, "<h2>{}</h2>", html(&s.strategy));
        list(&mut out, &format!("Lost examples (first {} of {})", s.lost_examples.len(), s.lost), &s.lost_examples);
        list(&mut out, "Notes", &s.notes);
    }

    if let Some(baseline) = &r.baseline {
        let json = serde_json::to_string_pretty(baseline).unwrap_or_default();
        let _ = writeln!(out, "<h2>Baseline</h2>\n<pre>{}</pre>", html(&json));
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// A coloured pass/fail mark in text, not emoji: emoji fonts are missing on many CI images.
fn badge(passed: bool) -> &'static str {
    if passed { "<span class=\"badge pass\">pass</span>" } else { "<span class=\"badge fail\">fail</span>" }
}

fn list(out: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = write!(out, "<h3>{}</h3>\n<ul class=\"items\">", html(title));
    for item in items {
        let _ = write!(out, "<li>{}</li>", html(item));
    }
    out.push_str("</ul>\n");
}

fn results_table(out: &mut String, results: &[StrategyResult]) {
    out.push_str(
        "<div class=\"wide\"><table>\n<tr><th>strategy</th><th>expected</th><th>delivered</th><th>lost</th><th>lost %</th>\
         <th>duplicated</th><th>same id twice</th><th>inversions</th><th>unexpected</th><th>misrouted</th>\
         <th>stored twice</th><th>resumes</th><th>throughput/s</th>\
         <th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>verdict</th></tr>\n",
    );
    for (i, s) in results.iter().enumerate() {
        let l = &s.latency_us;
        let _ = write!(
            out,
            "<tr><td><span class=\"swatch\" style=\"background:{c}\"></span>{name}</td>",
            c = charts::color(i),
            name = html(&s.strategy),
        );
        let cells = [
            s.expected.to_string(),
            s.delivered.to_string(),
            s.lost.to_string(),
            percent(s.lost, s.expected),
            s.duplicated.to_string(),
            s.same_id_twice.to_string(),
            s.inversions.to_string(),
            s.unexpected.to_string(),
            s.misrouted.to_string(),
            s.stored_twice.to_string(),
            s.resumes.to_string(),
            format!("{:.1}", s.throughput_per_s),
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
        ];
        for cell in cells {
            let _ = write!(out, "<td class=\"n\">{cell}</td>");
        }
        let _ = writeln!(out, "<td>{}</td></tr>", badge(s.passed));
    }
    out.push_str("</table></div>\n");
}

fn ramp_table(out: &mut String, s: &StrategyResult) {
    let sustained = match &s.sustained {
        Some(x) => format!(
            "sustained without loss: <strong>{:.0} events/s = {:.1} notifications/s</strong> (p99 {} ms)",
            x.events_per_s,
            x.delivered_per_s,
            ms(x.p99_us)
        ),
        None => "<strong>no step sustained</strong>".to_string(),
    };
    let _ = writeln!(out, "<h3>{}: {sustained}</h3>", html(&s.strategy));
    out.push_str(
        "<div class=\"wide\"><table>\n<tr><th>offered events/s</th><th>sent</th><th>skipped</th><th>expected</th>\
         <th>delivered</th><th>lost</th><th>duplicated</th><th>delivered/s</th><th>p50 ms</th><th>p99 ms</th>\
         <th>max ms</th><th>step</th></tr>\n",
    );
    for step in &s.ramp {
        let l = &step.latency_us;
        out.push_str("<tr>");
        for cell in [
            format!("{:.1}", step.offered_per_s),
            step.sent.to_string(),
            step.skipped.to_string(),
            step.expected.to_string(),
            step.delivered.to_string(),
            step.lost.to_string(),
            step.duplicated.to_string(),
            format!("{:.1}", step.delivered_per_s),
            ms(l.p50),
            ms(l.p99),
            ms(l.max),
        ] {
            let _ = write!(out, "<td class=\"n\">{cell}</td>");
        }
        let verdict =
            if step.sustained { badge(true).to_string() } else { format!("{} {}", badge(false), html(&step.verdict)) };
        let _ = writeln!(out, "<td>{verdict}</td></tr>");
    }
    out.push_str("</table></div>\n");
}

/// A strategy, its (column, cell) pairs, and whether it passed.
type KindRow = (String, Vec<(&'static str, String)>, bool);

/// Claim, booking and jobs results: one row per strategy with the counts of its kind.
fn kind_table(out: &mut String, results: &[StrategyResult]) {
    let rows: Vec<KindRow> = results
        .iter()
        .map(|s| {
            let mut cells: Vec<(&'static str, String)> = Vec::new();
            if let Some(c) = &s.claim {
                cells.extend([
                    ("posts", c.items.to_string()),
                    ("done", c.done.to_string()),
                    ("double processed", c.double_processed.to_string()),
                    ("stuck", c.stuck.to_string()),
                    ("embed calls", c.embed_calls.to_string()),
                    ("failed calls", c.failed_calls.to_string()),
                    ("fenced", c.fenced.to_string()),
                    ("claims", c.claims.to_string()),
                    ("wasted claims", c.wasted_claims.to_string()),
                    ("posts/s", format!("{:.1}", s.throughput_per_s)),
                ]);
            }
            if let Some(b) = &s.booking {
                cells.extend([
                    ("requests", b.requests.to_string()),
                    ("approved", b.approved.to_string()),
                    ("most possible", b.max_possible.to_string()),
                    ("409", b.conflicts.to_string()),
                    ("errors", b.errors.to_string()),
                    ("overlaps", b.overlaps.to_string()),
                    ("disagreements", b.disagreements.to_string()),
                    ("approvals/s", format!("{:.1}", s.throughput_per_s)),
                    ("p50 ms", ms(s.latency_us.p50)),
                    ("p99 ms", ms(s.latency_us.p99)),
                ]);
            }
            if let Some(a) = &s.api {
                cells.extend([
                    ("goose users", a.users.to_string()),
                    ("requests", a.requests.to_string()),
                    ("failed", a.failures.to_string()),
                    ("requests/s", format!("{:.1}", s.throughput_per_s)),
                    ("p50 ms", ms(s.latency_us.p50)),
                    ("p90 ms", ms(s.latency_us.p90)),
                    ("p99 ms", ms(s.latency_us.p99)),
                    ("max ms", ms(s.latency_us.max)),
                    ("goose report", format!("<a href=\"{0}\">{0}</a>", html(&a.goose_report))),
                ]);
            }
            if let Some(j) = &s.jobs {
                cells.extend([
                    ("firings due", j.firings.to_string()),
                    ("runs", j.runs.to_string()),
                    ("missed", j.missed_firings.to_string()),
                    ("run twice", j.double_firings.to_string()),
                    ("longest gap s", format!("{:.1}", j.max_gap_s)),
                ]);
            }
            (s.strategy.clone(), cells, s.passed)
        })
        .collect();
    let Some((_, header, _)) = rows.first() else { return };
    out.push_str("<div class=\"wide\"><table>\n<tr><th>strategy</th>");
    for (name, _) in header {
        let _ = write!(out, "<th>{}</th>", html(name));
    }
    out.push_str("<th>verdict</th></tr>\n");
    for (i, (strategy, cells, passed)) in rows.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td><span class=\"swatch\" style=\"background:{c}\"></span>{name}</td>",
            c = charts::color(i),
            name = html(strategy),
        );
        for (_, cell) in cells {
            let _ = write!(out, "<td class=\"n\">{cell}</td>");
        }
        let _ = writeln!(out, "<td>{}</td></tr>", badge(*passed));
    }
    out.push_str("</table></div>\n");
}

/// An API run's endpoints: one row each.
fn endpoint_table(out: &mut String, strategy: &str, a: &super::ApiCounts) {
    let _ = writeln!(
        out,
        "<h3>{} per endpoint</h3>\n<table>\n<tr><th>endpoint</th><th>requests</th><th>failed</th>\
         <th>requests/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>",
        html(strategy)
    );
    for e in &a.endpoints {
        let l = &e.latency_us;
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            html(&e.name),
            e.requests,
            e.failures,
            e.requests_per_s,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max)
        );
    }
    out.push_str("</table>\n");
}
