//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network) that a
//! person opens from a CI artifact or a laptop.

use std::fmt::Write;

use super::columns::{self, Chart};
use super::text::{html, seconds};
use super::{RunReport, charts, fault_rows};

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
        ("kind", html(r.kind.as_str())),
        ("command", format!("<code>{}</code>", html(&r.command))),
        ("instances", r.instances.to_string()),
        ("duration", seconds(r.duration_s)),
        ("started", html(&r.started_at)),
        ("images", html(&r.image_set)),
    ] {
        let _ = write!(out, "<dt>{key}</dt><dd>{value}</dd>");
    }
    out.push_str("</dl>\n");
    let mut section = None;
    for (i, table) in columns::tables(r).iter().enumerate() {
        if i == 0 {
            out.push_str("<h2>Results</h2>\n");
        } else if table.section != section
            && let Some((heading, intro)) = table.section
        {
            let _ = writeln!(out, "<h2>{}</h2>", html(heading));
            if !intro.is_empty() {
                let _ = writeln!(out, "<p>{}</p>", html(intro));
            }
        }
        section = table.section;
        out.push_str(&table.to_html(charts::color));
    }

    let faults = fault_rows(&r.faults);
    out.push_str("<h2>Charts</h2>\n");
    for chart in columns::charts(r) {
        out.push_str(&match chart {
            Chart::Ramp => charts::ramp(&r.results),
            Chart::Latency => charts::latency(&r.results, columns::latency_of(r.kind)),
            Chart::Loss => charts::loss(&r.results),
            Chart::Deliveries => charts::deliveries(&r.results, &faults),
            Chart::Violations => charts::violations(&r.results, columns::violations(r)),
        });
        out.push('\n');
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

    for s in &r.results {
        let over_time: Vec<String> =
            [charts::p99_per_second(s, &faults), charts::timeline(s, &faults)].into_iter().flatten().collect();
        if s.lost_examples.is_empty() && s.notes.is_empty() && over_time.is_empty() {
            continue;
        }
        let _ = writeln!(out, "<h2>{}</h2>", html(&s.strategy));
        list(&mut out, &format!("Lost examples (first {} of {})", s.lost_examples.len(), s.lost), &s.lost_examples);
        list(&mut out, "Notes", &s.notes);
        if !over_time.is_empty() {
            out.push_str("<h3>Second by second</h3>\n");
            for chart in over_time {
                out.push_str(&chart);
                out.push('\n');
            }
        }
    }

    let generators: Vec<String> = r.generators.iter().map(|g| g.cpu.describe(&g.name)).collect();
    list(&mut out, "Load generators", &generators);

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
