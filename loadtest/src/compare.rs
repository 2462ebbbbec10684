//! Two runs of one scenario side by side (`loadtest compare A B`), and the regression gate
//! (`loadtest run --baseline A`).
//!
//! The figures are the cells of the kind's main table (one row per strategy), so a kind that
//! adds a column is compared without a change here; each column says what a higher value means
//! ([`Sense`]). How a figure of the new run (B) is judged against the old one (A):
//!
//! * **a broken invariant** (lost, duplicated, double processed, overlaps, ...): any increase
//!   from 0 is a regression, however small. A strategy that already broke it (a control group
//!   such as `local`, which loses by design) is judged like a latency below, so that its own
//!   run-to-run noise does not fail a gate;
//! * **latency** (lower is better) and **throughput** (higher is better): a regression when
//!   worse by more than the allowed share (`--max-regression`, 10% by default);
//! * anything else (expected, sent) is shown, not judged.
//!
//! With repeated runs on both sides (`--repeat`), medians are compared, and a worsening beyond
//! the allowance counts only where the two runs' min-max ranges do not overlap: a difference
//! the runs themselves show from round to round is noise. With one run each, the difference
//! is not tested against noise, and the output says so ("one run each").

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::report::table::{Cell, Column, Sense, Table};
use crate::report::{RunReport, columns, text};
use crate::scenario::Kind;

/// The allowed worsening of a latency or a throughput when none is given.
pub const DEFAULT_MAX_REGRESSION: f64 = 0.10;

/// How one figure of B compares with A.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Same,
    Better,
    /// Worse, within the allowance.
    Worse,
    /// Worse beyond the allowance, or a broken invariant that was not broken in A.
    Regression,
    /// Not judged: a neutral figure.
    Shown,
}

/// One figure of one strategy in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub strategy: String,
    pub figure: String,
    pub sense: Sense,
    pub a: f64,
    pub b: f64,
    /// `b / a`; `None` when `a` is 0.
    pub ratio: Option<f64>,
    pub verdict: Verdict,
    /// Why, in words: `p99 ms 12.0 -> 30.0 (x2.50), worse by 150% > 10% allowed`.
    pub detail: String,
}

/// Two runs of one scenario, figure by figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub scenario: String,
    pub kind: Kind,
    /// Where A and B came from.
    pub a: String,
    pub b: String,
    pub max_regression: f64,
    pub figures: Vec<Figure>,
    /// Strategies in only one of the runs.
    pub unmatched: Vec<String>,
    /// "one run each: differences are not tested against the runs' noise".
    pub noise: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{a} is scenario `{sa}` ({ka}) and {b} is `{sb}` ({kb}): compare runs of one scenario")]
    Different { a: String, sa: String, ka: Kind, b: String, sb: String, kb: Kind },
}

/// A `report.json`, or the report folder holding one.
pub fn load(path: &Path) -> Result<RunReport, CompareError> {
    let file: PathBuf = if path.is_dir() { path.join("report.json") } else { path.to_path_buf() };
    let err = |message: String| CompareError::Read { path: file.display().to_string(), message };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| err(format!("cannot read it ({e}): name a report folder or its report.json")))?;
    serde_json::from_str(&text).map_err(|e| err(format!("is not a report.json of this harness: {e}")))
}

/// Compares B (the new run) with A (the old one, or the baseline).
pub fn compare(
    a: &RunReport,
    a_name: &str,
    b: &RunReport,
    b_name: &str,
    max_regression: f64,
) -> Result<Comparison, CompareError> {
    if a.scenario != b.scenario || a.kind != b.kind {
        return Err(CompareError::Different {
            a: a_name.into(),
            sa: a.scenario.clone(),
            ka: a.kind,
            b: b_name.into(),
            sb: b.scenario.clone(),
            kb: b.kind,
        });
    }
    let main = |r: &RunReport| columns::tables(r).into_iter().next();
    let (Some(ta), Some(tb)) = (main(a), main(b)) else {
        return Err(CompareError::Read { path: a_name.into(), message: "has no results".into() });
    };
    let mut figures = Vec::new();
    let mut unmatched = Vec::new();
    for row_b in &tb.rows {
        let strategy = row_b.cells[0].plain();
        let Some(row_a) = ta.rows.iter().find(|r| r.cells[0].plain() == strategy) else {
            unmatched.push(format!("{strategy} (only in {b_name})"));
            continue;
        };
        for (i, column) in tb.columns.iter().enumerate() {
            let Some(ia) = ta.columns.iter().position(|c| c.header == column.header) else { continue };
            let (Some(va), Some(vb)) = (row_a.cells[ia].value(), row_b.cells[i].value()) else { continue };
            // Repeated runs on both sides: medians, and their ranges as the noise.
            let find = |spread: &[crate::report::spread::Spread]| {
                spread.iter().position(|s| s.strategy == strategy && s.figure == column.header)
            };
            let figure = match (find(&a.spread).map(|i| &a.spread[i]), find(&b.spread).map(|i| &b.spread[i])) {
                (Some(sa), Some(sb)) => {
                    let mut f = judge(&strategy, column, sa.median, sb.median, max_regression);
                    // Overlapping ranges: the difference is within what the runs themselves vary.
                    if f.verdict == Verdict::Regression && sa.min.max(sb.min) <= sa.max.min(sb.max) {
                        f.verdict = Verdict::Worse;
                        f.detail = format!(
                            "{} (medians); within the runs' own spread: A {}..{}, B {}..{}",
                            f.detail.split(": ").next().unwrap_or_default(),
                            number(sa.min),
                            number(sa.max),
                            number(sb.min),
                            number(sb.max)
                        );
                    }
                    f
                }
                _ => judge(&strategy, column, va, vb, max_regression),
            };
            figures.push(figure);
        }
    }
    for row_a in &ta.rows {
        let strategy = row_a.cells[0].plain();
        if !tb.rows.iter().any(|r| r.cells[0].plain() == strategy) {
            unmatched.push(format!("{strategy} (only in {a_name})"));
        }
    }
    Ok(Comparison {
        scenario: b.scenario.clone(),
        kind: b.kind,
        a: a_name.into(),
        b: b_name.into(),
        max_regression,
        figures,
        unmatched,
        noise: match (a.repeats.len(), b.repeats.len()) {
            (ra, rb) if ra > 1 && rb > 1 => format!(
                "{ra} runs (A) and {rb} runs (B): medians compared; a worsening counts only where the two min-max \
                 ranges do not overlap"
            ),
            _ => "one run each: differences are not tested against the runs' own noise (repeat runs with --repeat \
                  before reading a small one)"
                .into(),
        },
    })
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.2}") }
}

fn judge(strategy: &str, column: &Column, a: f64, b: f64, allowed: f64) -> Figure {
    let ratio = (a != 0.0).then(|| b / a);
    let change = match ratio {
        Some(r) => format!("{} -> {} (x{r:.2})", number(a), number(b)),
        None => format!("{} -> {}", number(a), number(b)),
    };
    let pct = |share: f64| format!("{:.0}%", share * 100.0);
    // How much worse B is, as a share of A (lower-is-better reading); `None`: not worse.
    let worse_lower = || (b > a).then(|| if a == 0.0 { f64::INFINITY } else { (b - a) / a });
    let (verdict, why) = match column.sense {
        Sense::Neutral => (Verdict::Shown, String::new()),
        _ if a == b => (Verdict::Same, String::new()),
        Sense::Violation if a == 0.0 => (Verdict::Regression, "a broken invariant that was not broken before".into()),
        Sense::Violation | Sense::LowerIsBetter => match worse_lower() {
            None => (Verdict::Better, String::new()),
            Some(w) if w > allowed => (Verdict::Regression, format!("worse by {} > {} allowed", pct(w), pct(allowed))),
            Some(w) => (Verdict::Worse, format!("worse by {}, within {} allowed", pct(w), pct(allowed))),
        },
        Sense::HigherIsBetter => {
            if b >= a {
                (Verdict::Better, String::new())
            } else {
                let w = (a - b) / a;
                if w > allowed {
                    (Verdict::Regression, format!("lower by {} > {} allowed", pct(w), pct(allowed)))
                } else {
                    (Verdict::Worse, format!("lower by {}, within {} allowed", pct(w), pct(allowed)))
                }
            }
        }
    };
    let detail = if why.is_empty() {
        format!("{} {change}", column.header)
    } else {
        format!("{} {change}: {why}", column.header)
    };
    Figure {
        strategy: strategy.to_string(),
        figure: column.header.clone(),
        sense: column.sense,
        a,
        b,
        ratio,
        verdict,
        detail,
    }
}

impl Comparison {
    /// The figures that fail a gate, as `strategy: detail`.
    pub fn regressions(&self) -> Vec<String> {
        self.figures
            .iter()
            .filter(|f| f.verdict == Verdict::Regression)
            .map(|f| format!("{}: {}", f.strategy, f.detail))
            .collect()
    }

    /// Every figure that was judged (shown ones left out), as one table.
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            format!("{} ({}): {} -> {}", self.scenario, self.kind, self.a, self.b),
            vec![
                Column::text("strategy"),
                Column::text("figure"),
                Column::figure("A"),
                Column::figure("B"),
                Column::figure("B - A"),
                Column::figure("B / A"),
                Column::text("verdict"),
            ],
        );
        for f in &self.figures {
            let verdict = match f.verdict {
                Verdict::Same => "same".to_string(),
                Verdict::Better => "better".to_string(),
                Verdict::Worse => "worse (within allowance)".to_string(),
                Verdict::Regression => format!("REGRESSION: {}", f.detail.split_once(": ").map_or("", |(_, w)| w)),
                Verdict::Shown => "-".to_string(),
            };
            t.push(
                None,
                vec![
                    Cell::Text(f.strategy.clone()),
                    Cell::Text(f.figure.clone()),
                    Cell::Text(number(f.a)),
                    Cell::Text(number(f.b)),
                    Cell::Text(number(f.b - f.a)),
                    Cell::Text(f.ratio.map_or("-".into(), |r| format!("{r:.2}"))),
                    Cell::Text(verdict),
                ],
            );
        }
        t
    }

    /// The comparison as plain text, for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = self.table().to_text();
        out.push_str(&self.summary_lines().join("\n"));
        out.push('\n');
        out
    }

    fn summary_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "{}; allowed worsening of a latency or a throughput: {:.0}%",
            self.noise,
            self.max_regression * 100.0
        )];
        lines.extend(self.unmatched.iter().map(|u| format!("not compared: {u}")));
        let regressions = self.regressions();
        if regressions.is_empty() {
            lines.push("no regression".into());
        } else {
            lines.push(format!("{} regression(s):", regressions.len()));
            lines.extend(regressions.iter().map(|r| format!("  {r}")));
        }
        lines
    }

    /// `compare.md`.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# Comparison: {}\n\n", text::md_cell(&self.scenario));
        out.push_str(&self.table().to_markdown());
        out.push('\n');
        for line in self.summary_lines() {
            out.push_str(&format!("{}\n\n", text::md_cell(&line)));
        }
        out
    }

    /// `compare.html`: self-contained.
    pub fn to_html(&self) -> String {
        let mut out = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Comparison: {0}</title>\n\
             <style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}\
             td,th{{border:1px solid #ccc;padding:.2rem .5rem}}td.n{{text-align:right}}</style></head><body>\n\
             <h1>Comparison: {0}</h1>\n",
            text::html(&self.scenario)
        );
        out.push_str(&self.table().to_html(|_| "#888"));
        for line in self.summary_lines() {
            out.push_str(&format!("<p>{}</p>\n", text::html(&line)));
        }
        out.push_str("</body></html>\n");
        out
    }

    /// Writes `compare.md`, `compare.html` and `compare.json` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("compare.md"), self.to_markdown())?;
        std::fs::write(dir.join("compare.html"), self.to_html())?;
        std::fs::write(dir.join("compare.json"), serde_json::to_string_pretty(self).map_err(std::io::Error::other)?)?;
        Ok(())
    }
}

/// `10%` or `0.1`.
pub fn parse_share(raw: &str) -> Result<f64, String> {
    let (number, scale) = match raw.trim().strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (raw.trim(), 1.0),
    };
    let v: f64 = number.trim().parse().map_err(|_| format!("`{raw}` is not a share: write 10% or 0.1"))?;
    let v = v / scale;
    if !(0.0..=10.0).contains(&v) || !v.is_finite() {
        return Err(format!("`{raw}` is out of range: 0% to 1000%"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::result;

    fn report(results: Vec<crate::report::StrategyResult>) -> RunReport {
        let mut r = crate::report::tests::sample_report();
        r.results = results;
        r
    }

    fn rabbit(lost: u64, p99_us: u64, throughput: f64) -> crate::report::StrategyResult {
        let mut r = result("rabbitmq");
        (r.expected, r.delivered, r.lost) = (1_000, 1_000 - lost, lost);
        r.latency_us.p99 = p99_us;
        r.throughput_per_s = throughput;
        r
    }

    fn verdict<'a>(c: &'a Comparison, figure: &str) -> &'a Figure {
        c.figures.iter().find(|f| f.figure == figure).unwrap_or_else(|| panic!("no {figure}"))
    }

    #[test]
    fn a_slowed_run_is_a_regression_and_says_by_how_much() {
        let before = report(vec![rabbit(0, 20_000, 500.0)]);
        let slowed = report(vec![rabbit(0, 60_000, 300.0)]);
        let c = compare(&before, "before", &slowed, "after", DEFAULT_MAX_REGRESSION).unwrap();
        let p99 = verdict(&c, "p99 ms");
        assert_eq!(p99.verdict, Verdict::Regression);
        assert_eq!(p99.detail, "p99 ms 20 -> 60 (x3.00): worse by 200% > 10% allowed");
        assert_eq!(verdict(&c, "throughput/s").verdict, Verdict::Regression);
        assert_eq!(c.regressions().len(), 2, "{:?}", c.regressions());
        assert!(c.to_text().contains("2 regression(s):"), "{}", c.to_text());
    }

    #[test]
    fn a_noisy_but_equal_pair_is_not_flagged() {
        let one = report(vec![rabbit(0, 20_000, 500.0)]);
        let two = report(vec![rabbit(0, 21_500, 470.0)]);
        let c = compare(&one, "one", &two, "two", DEFAULT_MAX_REGRESSION).unwrap();
        assert!(c.regressions().is_empty(), "{:?}", c.regressions());
        assert_eq!(verdict(&c, "p99 ms").verdict, Verdict::Worse);
        assert_eq!(verdict(&c, "lost").verdict, Verdict::Same);
        assert_eq!(verdict(&c, "expected").verdict, Verdict::Shown);
    }

    #[test]
    fn one_lost_notification_where_there_were_none_fails_but_a_control_groups_noise_does_not() {
        let mut local_a = result("local");
        (local_a.expected, local_a.lost) = (3_000, 2_000);
        let mut local_b = local_a.clone();
        local_b.lost = 2_050;
        let a = report(vec![local_a, rabbit(0, 20_000, 500.0)]);
        let b = report(vec![local_b, rabbit(1, 20_000, 500.0)]);
        let c = compare(&a, "a", &b, "b", DEFAULT_MAX_REGRESSION).unwrap();
        assert_eq!(c.regressions(), ["rabbitmq: lost 0 -> 1: a broken invariant that was not broken before"]);
        let local_lost = c.figures.iter().find(|f| f.strategy == "local" && f.figure == "lost").unwrap();
        assert_eq!(local_lost.verdict, Verdict::Worse, "{local_lost:?}");
    }

    #[test]
    fn with_repeated_runs_only_a_difference_beyond_both_ranges_is_a_regression() {
        let rounds = |p99s: &[u64]| -> Vec<Vec<crate::report::StrategyResult>> {
            p99s.iter().map(|p| vec![rabbit(0, *p, 500.0)]).collect()
        };
        let repeated = |p99s: &[u64]| {
            let rounds = rounds(p99s);
            let mut r = report(rounds[0].clone());
            r.spread = crate::report::spread::of(Kind::Fanout, &rounds);
            r.repeats = rounds;
            r
        };
        // Medians 20 -> 24 ms (+20%), but B's range overlaps A's: noise.
        let noisy =
            compare(&repeated(&[18_000, 20_000, 26_000]), "a", &repeated(&[19_000, 24_000, 25_000]), "b", 0.1).unwrap();
        let p99 = verdict(&noisy, "p99 ms");
        assert_eq!(p99.verdict, Verdict::Worse, "{p99:?}");
        assert!(p99.detail.contains("within the runs' own spread: A 18..26, B 19..25"), "{}", p99.detail);
        assert!(noisy.noise.starts_with("3 runs (A) and 3 runs (B)"), "{}", noisy.noise);
        // Medians 20 -> 40 ms, ranges apart: a regression.
        let slowed =
            compare(&repeated(&[18_000, 20_000, 22_000]), "a", &repeated(&[38_000, 40_000, 45_000]), "b", 0.1).unwrap();
        assert_eq!(verdict(&slowed, "p99 ms").verdict, Verdict::Regression);
    }

    #[test]
    fn runs_of_different_scenarios_are_refused_and_shares_parse() {
        let a = report(vec![rabbit(0, 1, 1.0)]);
        let mut b = a.clone();
        b.scenario = "other".into();
        let err = compare(&a, "A", &b, "B", 0.1).unwrap_err().to_string();
        assert!(err.contains("compare runs of one scenario"), "{err}");
        assert_eq!(parse_share("10%"), Ok(0.1));
        assert_eq!(parse_share("0.25"), Ok(0.25));
        assert!(parse_share("ten").unwrap_err().contains("write 10% or 0.1"));
    }
}
