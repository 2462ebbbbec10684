//! Inline SVG charts for `report.html`, drawn here so the report needs no script and no
//! network: latency percentiles, loss per strategy, deliveries over time with fault markers.

use std::fmt::Write;

use super::text::{html, ms};
use super::{FaultRow, StrategyResult};

/// Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
const PALETTE: [&str; 8] = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"];

pub(super) fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

const WIDTH: f64 = 880.0;
const HEIGHT: f64 = 320.0;
/// Height of one row of fault labels above the deliveries plot.
const LABEL_ROW: f64 = 13.0;

/// The plotting area inside the axes, and the whole chart's height, in SVG user units.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    height: f64,
}

const FRAME: Frame = Frame { left: 70.0, right: WIDTH - 20.0, top: 40.0, bottom: HEIGHT - 60.0, height: HEIGHT };

impl Frame {
    /// The standard frame with `rows` rows of labels between the title and the plot.
    fn with_label_rows(rows: usize) -> Frame {
        let extra = rows as f64 * LABEL_ROW;
        Frame { top: FRAME.top + extra, bottom: FRAME.bottom + extra, height: HEIGHT + extra, ..FRAME }
    }

    fn width(&self) -> f64 {
        self.right - self.left
    }

    fn height(&self) -> f64 {
        self.bottom - self.top
    }
}

fn open(out: &mut String, f: &Frame, title: &str) {
    let _ = write!(
        out,
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {h}" role="img" aria-label="{t}">"#,
            r#"<title>{t}</title><text x="{x}" y="22" class="title">{t}</text>"#,
        ),
        WIDTH = WIDTH,
        h = f.height,
        t = html(title),
        x = f.left,
    );
}

/// A horizontal grid line with its label on the left.
fn y_tick(out: &mut String, f: &Frame, y: f64, label: &str) {
    let _ = write!(
        out,
        concat!(
            r#"<line x1="{l}" y1="{y:.1}" x2="{r}" y2="{y:.1}" class="grid"/>"#,
            r#"<text x="{tx}" y="{ty:.1}" class="tick" text-anchor="end">{label}</text>"#,
        ),
        l = f.left,
        r = f.right,
        y = y,
        tx = f.left - 6.0,
        ty = y + 4.0,
        label = html(label),
    );
}

fn axes(out: &mut String, f: &Frame, y_label: &str) {
    let _ = write!(
        out,
        concat!(
            r#"<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" class="axis"/>"#,
            r#"<line x1="{l}" y1="{t}" x2="{l}" y2="{b}" class="axis"/>"#,
            r#"<text transform="translate(16 {my}) rotate(-90)" class="tick" text-anchor="middle">{label}</text>"#,
        ),
        l = f.left,
        r = f.right,
        t = f.top,
        b = f.bottom,
        my = (f.top + f.bottom) / 2.0,
        label = html(y_label),
    );
}

/// One row of colour swatches and strategy names under the plot.
fn legend(out: &mut String, f: &Frame, names: &[&str]) {
    let mut x = f.left;
    let y = f.height - 14.0;
    for (i, name) in names.iter().enumerate() {
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{ry}" width="14" height="10" fill="{c}"/><text x="{tx}" y="{y}" class="tick">{n}</text>"#,
            ry = y - 9.0,
            c = color(i),
            tx = x + 18.0,
            n = html(name),
        );
        x += 30.0 + 7.0 * name.chars().count() as f64;
    }
}

fn empty(out: &mut String, f: &Frame, message: &str) {
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y}" class="tick" text-anchor="middle">{m}</text></svg>"#,
        x = WIDTH / 2.0,
        y = f.height / 2.0,
        m = html(message),
    );
}

/// A percentile's label and how to read it from a result.
type Percentile = (&'static str, fn(&StrategyResult) -> u64);

/// Grouped bars: one group per percentile, one bar per strategy, on a log scale in ms so a
/// 1 ms median and a 5 s tail fit one chart.
pub(super) fn latency(results: &[StrategyResult], what: &str) -> String {
    let mut out = String::new();
    let f = &FRAME;
    open(&mut out, f, &format!("{what} percentiles (ms, log scale)"));
    let groups: [Percentile; 5] = [
        ("p50", |s| s.latency_us.p50),
        ("p90", |s| s.latency_us.p90),
        ("p99", |s| s.latency_us.p99),
        ("p99.9", |s| s.latency_us.p999),
        ("max", |s| s.latency_us.max),
    ];
    let positive = results.iter().flat_map(|s| groups.iter().map(move |(_, get)| get(s))).filter(|&v| v > 0);
    let (Some(min_us), Some(max_us)) = (positive.clone().min(), positive.max()) else {
        empty(&mut out, f, "nothing delivered: no latency to show");
        return out;
    };
    let lo = (min_us as f64 / 1000.0).log10().floor() as i32;
    let hi = ((max_us as f64 / 1000.0).log10().ceil() as i32).max(lo + 1);
    let y_of = |us: u64| {
        let decades = ((us.max(1) as f64 / 1000.0).log10() - lo as f64) / (hi - lo) as f64;
        f.bottom - decades.clamp(0.0, 1.0) * f.height()
    };
    for e in lo..=hi {
        let label =
            if e < 0 { format!("{:.*}", (-e) as usize, 10f64.powi(e)) } else { format!("{:.0}", 10f64.powi(e)) };
        y_tick(&mut out, f, f.bottom - (e - lo) as f64 / (hi - lo) as f64 * f.height(), &label);
    }
    axes(&mut out, f, "ms");
    let group_w = f.width() / groups.len() as f64;
    let bar_w = group_w * 0.8 / results.len().max(1) as f64;
    for (g, (name, get)) in groups.iter().enumerate() {
        let x0 = f.left + g as f64 * group_w + group_w * 0.1;
        for (i, s) in results.iter().enumerate() {
            let us = get(s);
            let (x, y) = (x0 + i as f64 * bar_w, y_of(us));
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"><title>{n} {name}: {v} ms</title></rect>"#,
                w = (bar_w - 2.0).max(1.0),
                h = f.bottom - y,
                c = color(i),
                n = html(&s.strategy),
                v = ms(us),
            );
            if bar_w >= 34.0 {
                let _ = write!(
                    out,
                    r#"<text x="{tx:.1}" y="{ty:.1}" class="value" text-anchor="middle">{v}</text>"#,
                    tx = x + bar_w / 2.0 - 1.0,
                    ty = y - 4.0,
                    v = ms(us),
                );
            }
        }
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y}" class="tick" text-anchor="middle">{name}</text>"#,
            x = f.left + (g as f64 + 0.5) * group_w,
            y = f.bottom + 18.0,
        );
    }
    legend(&mut out, f, &results.iter().map(|s| s.strategy.as_str()).collect::<Vec<_>>());
    out.push_str("</svg>");
    out
}

/// One bar per strategy: lost / expected, 0..100 %.
pub(super) fn loss(results: &[StrategyResult]) -> String {
    let mut out = String::new();
    let f = &FRAME;
    open(&mut out, f, "Lost notifications (% of expected)");
    if results.is_empty() {
        empty(&mut out, f, "no results");
        return out;
    }
    for pct in [0, 25, 50, 75, 100] {
        y_tick(&mut out, f, f.bottom - pct as f64 / 100.0 * f.height(), &format!("{pct}%"));
    }
    axes(&mut out, f, "lost %");
    let slot = f.width() / results.len() as f64;
    let bar_w = (slot * 0.6).min(120.0);
    for (i, s) in results.iter().enumerate() {
        let ratio = s.lost_ratio();
        let h = ratio * f.height();
        let x = f.left + i as f64 * slot + (slot - bar_w) / 2.0;
        let label = if s.expected == 0 { "-".to_string() } else { format!("{:.1}%", ratio * 100.0) };
        let _ = write!(
            out,
            concat!(
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{c}">"#,
                r#"<title>{n}: {lost} of {exp} lost</title></rect>"#,
                r#"<text x="{cx:.1}" y="{ly:.1}" class="value" text-anchor="middle">{label}</text>"#,
                r#"<text x="{cx:.1}" y="{ny}" class="tick" text-anchor="middle">{n}</text>"#,
            ),
            x = x,
            y = f.bottom - h,
            bar_w = bar_w,
            h = h,
            c = color(i),
            n = html(&s.strategy),
            label = label,
            lost = s.lost,
            exp = s.expected,
            cx = x + bar_w / 2.0,
            ly = f.bottom - h - 5.0,
            ny = f.bottom + 18.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// Deliveries per second over the run, one line per strategy, faults marked.
pub(super) fn deliveries(results: &[StrategyResult], faults: &[FaultRow]) -> String {
    let series: Vec<Line<'_>> = results
        .iter()
        .enumerate()
        .map(|(i, s)| Line {
            name: &s.strategy,
            color: i,
            points: s.deliveries_per_second.iter().enumerate().map(|(sec, &v)| (sec as f64 + 0.5, v as f64)).collect(),
        })
        .collect();
    lines("Deliveries per second (faults marked)", "deliveries / s", &series, faults, "nothing delivered", 0.0)
}

/// The seconds one strategy's charts over time span: its timeline, its deliveries and its
/// faults, so that they share one x axis.
pub(super) fn span(s: &StrategyResult) -> f64 {
    let sampled = s.timeline.as_ref().and_then(|t| t.t_s.last().copied()).unwrap_or(0.0);
    sampled.max(s.deliveries_per_second.len() as f64).max(s.p99_per_second_us.len() as f64)
}

/// One strategy's processes second by second: CPU in % of one core per process (the server
/// instances, the containers, the harness), its faults marked.
pub(super) fn timeline(s: &StrategyResult, faults: &[FaultRow]) -> Option<String> {
    let t = s.timeline.as_ref()?;
    let series: Vec<Line<'_>> = t
        .cpu_pct
        .iter()
        .enumerate()
        .map(|(i, series)| Line {
            name: &series.name,
            color: i,
            points: t
                .t_s
                .iter()
                .zip(&series.values)
                .filter_map(|(t, v)| v.filter(|_| *t >= 0.0).map(|v| (*t - 0.5, v)))
                .collect(),
        })
        .collect();
    let mine: Vec<FaultRow> = faults.iter().filter(|f| f.strategies.contains(&s.strategy)).cloned().collect();
    let title = format!("{}: CPU per process, % of one core (faults marked)", s.strategy);
    Some(lines(&title, "% of one core", &series, &mine, "no samples", span(s)))
}

/// One strategy's p99 latency of each second's first receipts, its faults marked: where the
/// tail grew, and whether it came back after a fault.
pub(super) fn p99_per_second(s: &StrategyResult, faults: &[FaultRow]) -> Option<String> {
    if s.p99_per_second_us.iter().all(|v| *v == 0) {
        return None;
    }
    let line = Line {
        name: &s.strategy,
        color: 0,
        points: s
            .p99_per_second_us
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0)
            .map(|(sec, v)| (sec as f64 + 0.5, *v as f64 / 1000.0))
            .collect(),
    };
    let mine: Vec<FaultRow> = faults.iter().filter(|f| f.strategies.contains(&s.strategy)).cloned().collect();
    let title = format!("{}: p99 of each second's deliveries, ms (faults marked)", s.strategy);
    Some(lines(&title, "p99 ms", &[line], &mine, "nothing timed", span(s)))
}

/// One line of [`lines`]: points (seconds since the start, at the middle of the second they
/// cover; value), drawn in palette colour `color`.
struct Line<'a> {
    name: &'a str,
    color: usize,
    points: Vec<(f64, f64)>,
}

/// Lines over the run's seconds from 0 to at least `span`, with a vertical marker and a label
/// per fault. Points more than 1.5 s apart are not joined: a gap is a second without a value.
fn lines(title: &str, y_label: &str, series: &[Line<'_>], faults: &[FaultRow], nothing: &str, span: f64) -> String {
    let mut out = String::new();
    let last = series.iter().flat_map(|l| l.points.iter().map(|p| p.0 + 0.5)).fold(span, f64::max);
    let x_max = last.max(faults.iter().map(|m| m.at_s.ceil() + 1.0).fold(0.0, f64::max)).max(1.0);
    let x_at = |frame: &Frame, t: f64| frame.left + t / x_max * frame.width();
    let labels: Vec<String> = faults.iter().map(|m| format!("{}s {} {}", m.at_s, m.action, m.target)).collect();
    let placed: Vec<_> =
        faults.iter().zip(&labels).map(|(m, l)| place_label(x_at(&FRAME, m.at_s), l.chars().count())).collect();
    let rows = label_rows(&placed.iter().map(|p| p.2).collect::<Vec<_>>());
    let f = &Frame::with_label_rows(rows.iter().max().map_or(0, |r| r + 1));
    open(&mut out, f, title);
    let peak = series.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    if peak <= 0.0 {
        empty(&mut out, f, nothing);
        return out;
    }
    let y_max = nice_ceiling(peak);
    let x_of = |t: f64| x_at(f, t);
    let y_of = |v: f64| f.bottom - v / y_max * f.height();
    for k in 0..=5 {
        let v = y_max * k as f64 / 5.0;
        y_tick(&mut out, f, y_of(v), &format!("{v}"));
    }
    axes(&mut out, f, y_label);
    let step = nice_ceiling(x_max / 10.0).max(1.0);
    let mut t = 0.0;
    while t <= x_max {
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y}" class="tick" text-anchor="middle">{t}</text>"#,
            x = x_of(t),
            y = f.bottom + 18.0,
        );
        t += step;
    }
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y}" class="tick" text-anchor="end">seconds since start</text>"#,
        x = f.right,
        y = f.bottom + 34.0,
    );
    // Every marker line first, then every label over them (with a halo, see the CSS), so no
    // line crosses a label.
    for m in faults {
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{b}" class="fault"/>"#,
            x = x_of(m.at_s),
            t = FRAME.top - 5.0,
            b = f.bottom,
        );
    }
    for ((label, row), (tx, anchor, _)) in labels.iter().zip(&rows).zip(&placed) {
        let _ = write!(
            out,
            r#"<text x="{tx:.1}" y="{y}" class="fault-label" text-anchor="{anchor}">{l}</text>"#,
            y = FRAME.top + 4.0 + *row as f64 * LABEL_ROW,
            l = html(label),
        );
    }
    for line in series {
        let mut runs: Vec<Vec<String>> = Vec::new();
        let mut previous: Option<f64> = None;
        for (t, v) in &line.points {
            if previous.is_none_or(|p| t - p > 1.5) {
                runs.push(Vec::new());
            }
            previous = Some(*t);
            if let Some(run) = runs.last_mut() {
                run.push(format!("{:.1},{:.1}", x_of(*t), y_of(*v)));
            }
        }
        for run in runs {
            // A lone point is a short stroke, so that a second between two gaps still shows.
            let points = if run.len() == 1 { format!("{0} {0}", run[0]) } else { run.join(" ") };
            let _ = write!(
                out,
                r#"<polyline points="{points}" fill="none" stroke="{c}" stroke-width="2" stroke-linecap="round"><title>{n}</title></polyline>"#,
                c = color(line.color),
                n = html(line.name),
            );
        }
    }
    legend(&mut out, f, &series.iter().map(|l| l.name).collect::<Vec<_>>());
    out.push_str("</svg>");
    out
}

/// Capacity ramps: delivered notifications per second against the offered event rate, one
/// line per strategy; a filled dot is a sustained step, a hollow one a step that lost,
/// duplicated, ran over the p99 limit or could not be offered in full.
pub(super) fn ramp(results: &[StrategyResult]) -> String {
    let mut out = String::new();
    let f = &FRAME;
    open(&mut out, f, "Capacity ramp: delivered per second by offered rate (filled: sustained)");
    let steps = || results.iter().flat_map(|s| s.ramp.iter());
    let x_max = nice_ceiling(steps().map(|s| s.offered_per_s).fold(0.0, f64::max));
    let y_max = nice_ceiling(steps().map(|s| s.delivered_per_s).fold(0.0, f64::max));
    if steps().next().is_none() {
        empty(&mut out, f, "no ramp steps");
        return out;
    }
    let x_of = |v: f64| f.left + v / x_max * f.width();
    let y_of = |v: f64| f.bottom - v / y_max * f.height();
    for k in 0..=5 {
        let v = y_max * k as f64 / 5.0;
        y_tick(&mut out, f, y_of(v), &format!("{v}"));
    }
    axes(&mut out, f, "delivered / s");
    for k in 0..=5 {
        let v = x_max * k as f64 / 5.0;
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y}" class="tick" text-anchor="middle">{v}</text>"#,
            x = x_of(v),
            y = f.bottom + 18.0,
        );
    }
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y}" class="tick" text-anchor="end">offered / s</text>"#,
        x = f.right,
        y = f.bottom + 34.0,
    );
    for (i, s) in results.iter().enumerate() {
        let points: Vec<String> =
            s.ramp.iter().map(|p| format!("{:.1},{:.1}", x_of(p.offered_per_s), y_of(p.delivered_per_s))).collect();
        let _ = write!(
            out,
            r#"<polyline points="{p}" fill="none" stroke="{c}" stroke-width="2"/>"#,
            p = points.join(" "),
            c = color(i),
        );
        for p in &s.ramp {
            let _ = write!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="5" stroke="{c}" stroke-width="2" fill="{fill}"><title>{n} at {o:.1}/s offered: {d:.1} delivered/s, lost {l}, p99 {p99} ms</title></circle>"#,
                x = x_of(p.offered_per_s),
                y = y_of(p.delivered_per_s),
                c = color(i),
                fill = if p.sustained { color(i) } else { "#ffffff" },
                n = html(&s.strategy),
                o = p.offered_per_s,
                d = p.delivered_per_s,
                l = p.lost,
                p99 = ms(p.latency_us.p99),
            );
        }
    }
    legend(&mut out, f, &results.iter().map(|s| s.strategy.as_str()).collect::<Vec<_>>());
    out.push_str("</svg>");
    out
}

/// The invariant violations per strategy as grouped bars, as the kind counts them (`counts`:
/// double processed and stuck; overlapping approvals; missed and doubled firings), so a
/// strategy that breaks one stands out at a glance. Zero bars are drawn as a thin line.
pub(super) fn violations(
    results: &[StrategyResult],
    counts: fn(&StrategyResult) -> Vec<(&'static str, u64)>,
) -> String {
    let mut out = String::new();
    let f = &FRAME;
    open(&mut out, f, "Invariant violations per strategy (0 is correct)");
    let bars: Vec<(String, Vec<(&str, u64)>)> = results.iter().map(|s| (s.strategy.clone(), counts(s))).collect();
    let peak = bars.iter().flat_map(|(_, v)| v.iter().map(|(_, n)| *n)).max().unwrap_or(0);
    if bars.iter().all(|(_, v)| v.is_empty()) {
        empty(&mut out, f, "no results");
        return out;
    }
    let y_max = nice_ceiling(peak.max(1) as f64);
    let y_of = |v: f64| f.bottom - v / y_max * f.height();
    for k in 0..=5 {
        let v = y_max * k as f64 / 5.0;
        y_tick(&mut out, f, y_of(v), &format!("{v}"));
    }
    axes(&mut out, f, "count");
    let slot = f.width() / bars.len() as f64;
    for (i, (strategy, values)) in bars.iter().enumerate() {
        let bar_w = (slot * 0.7 / values.len().max(1) as f64).min(60.0);
        let group_x = f.left + i as f64 * slot + (slot - bar_w * values.len() as f64) / 2.0;
        for (k, (what, n)) in values.iter().enumerate() {
            let h = (*n as f64 / y_max * f.height()).max(1.0);
            let x = group_x + k as f64 * bar_w;
            let _ = write!(
                out,
                concat!(
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{c}" opacity="{o}">"#,
                    r#"<title>{s}: {what} {n}</title></rect>"#,
                    r#"<text x="{cx:.1}" y="{ly:.1}" class="value" text-anchor="middle">{n}</text>"#,
                ),
                x = x,
                y = f.bottom - h,
                w = bar_w * 0.9,
                h = h,
                c = color(i),
                o = if k == 0 { "1" } else { "0.55" },
                s = html(strategy),
                what = html(what),
                n = n,
                cx = x + bar_w * 0.45,
                ly = f.bottom - h - 5.0,
            );
        }
        let _ = write!(
            out,
            r#"<text x="{cx:.1}" y="{y}" class="tick" text-anchor="middle">{s}</text>"#,
            cx = f.left + (i as f64 + 0.5) * slot,
            y = f.bottom + 18.0,
            s = html(strategy),
        );
    }
    if let Some((_, values)) = bars.iter().find(|(_, v)| !v.is_empty()) {
        let names: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(k, (w, _))| format!("{} bar: {w}", if k == 0 { "full" } else { "pale" }))
            .collect();
        let _ = write!(
            out,
            r#"<text x="{x}" y="{y}" class="tick">{t}</text>"#,
            x = f.left,
            y = f.height - 14.0,
            t = html(&names.join("; ")),
        );
    }
    out.push_str("</svg>");
    out
}

/// Row of each label, given the horizontal span it covers: the first row where it overlaps
/// no label already placed.
fn label_rows(spans: &[(f64, f64)]) -> Vec<usize> {
    let mut rows: Vec<Vec<(f64, f64)>> = Vec::new();
    spans
        .iter()
        .map(|&(start, end)| {
            let free = |row: &Vec<(f64, f64)>| row.iter().all(|&(s, e)| end < s || e < start);
            let row = rows.iter().position(free).unwrap_or_else(|| {
                rows.push(Vec::new());
                rows.len() - 1
            });
            rows[row].push((start, end));
            row
        })
        .collect()
}

/// Where a label for a marker at `x` goes: right of the line, or left of it when it would run
/// past the chart's edge. Returns (text x, anchor, span).
fn place_label(x: f64, chars: usize) -> (f64, &'static str, (f64, f64)) {
    const CHAR_W: f64 = 5.6;
    let w = chars as f64 * CHAR_W;
    if x + 3.0 + w > WIDTH - 2.0 {
        (x - 3.0, "end", (x - 3.0 - w - 6.0, x))
    } else {
        (x + 3.0, "start", (x, x + 3.0 + w + 6.0))
    }
}

/// The smallest 1, 2 or 5 times a power of ten that is >= `v` (axes end on round numbers).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|&c| c >= v).unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::{WIDTH, label_rows, nice_ceiling, place_label};

    #[test]
    fn fault_labels_move_down_only_when_they_would_overlap() {
        let rows = label_rows(&[(100.0, 220.0), (150.0, 270.0), (300.0, 360.0), (310.0, 370.0), (230.0, 290.0)]);
        assert_eq!(rows, [0, 1, 0, 1, 0]);
    }

    #[test]
    fn a_label_near_the_right_edge_runs_leftwards() {
        assert_eq!(place_label(100.0, 10).1, "start");
        let (x, anchor, (start, end)) = place_label(WIDTH - 10.0, 10);
        assert_eq!(anchor, "end");
        assert!(x < WIDTH - 10.0 && start < x && end <= WIDTH);
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
        assert_eq!(nice_ceiling(500.0), 500.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }
}
