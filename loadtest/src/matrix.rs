//! `loadtest matrix`: one strategy x fault table from several fan-out runs, each run one
//! column (`"instance kill"=reports/notify-instance-kill-…`). A cell is that run's lost and
//! duplicated counts for the strategy; a strategy the run did not compare is `n/a`. Under the
//! table, each column names the run it came from (scenario, start time, command), so every
//! number can be traced and measured again.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::compare::{CompareError, load};
use crate::report::RunReport;

/// One column: its heading and the run it reads.
#[derive(Debug, Clone)]
pub struct Column {
    pub heading: String,
    pub report: PathBuf,
}

impl std::str::FromStr for Column {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((heading, path)) if !heading.trim().is_empty() && !path.trim().is_empty() => {
                Ok(Column { heading: heading.trim().to_string(), report: PathBuf::from(path.trim()) })
            }
            _ => Err(format!(
                "`{s}`: write HEADING=REPORT, e.g. \"instance kill=reports/notify-instance-kill-20261203-061755\""
            )),
        }
    }
}

/// The table, in Markdown, and whether `must_hold` (if named) lost and duplicated nothing in
/// every column that ran it.
pub struct Matrix {
    pub markdown: String,
    /// (column, strategy, lost, duplicated) of every cell of `must_hold` that is not 0 / 0.
    pub broken: Vec<(String, String, u64, u64)>,
}

/// Reads every column's report and lays out the table; rows in the order the strategies
/// first appear.
pub fn build(columns: &[Column], must_hold: Option<&str>) -> Result<Matrix, CompareError> {
    let runs: Vec<RunReport> = columns.iter().map(|c| load(&c.report)).collect::<Result<_, _>>()?;
    let mut rows: Vec<String> = Vec::new();
    for run in &runs {
        for r in &run.results {
            if !rows.contains(&r.strategy) {
                rows.push(r.strategy.clone());
            }
        }
    }
    let mut md = String::new();
    let headings: Vec<&str> = columns.iter().map(|c| c.heading.as_str()).collect();
    let _ = writeln!(md, "| strategy | {} |", headings.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(columns.len()));
    let mut broken = Vec::new();
    for strategy in &rows {
        let cells: Vec<String> = columns
            .iter()
            .zip(&runs)
            .map(|(column, run)| match run.results.iter().find(|r| &r.strategy == strategy) {
                Some(r) => {
                    if must_hold == Some(strategy.as_str()) && (r.lost, r.duplicated) != (0, 0) {
                        broken.push((column.heading.clone(), strategy.clone(), r.lost, r.duplicated));
                    }
                    let share = if r.expected > 0 { 100.0 * r.lost as f64 / r.expected as f64 } else { 0.0 };
                    if r.lost > 0 {
                        format!("{} ({share:.1}%) / {}", r.lost, r.duplicated)
                    } else {
                        format!("0 / {}", r.duplicated)
                    }
                }
                None => "n/a".to_string(),
            })
            .collect();
        let _ = writeln!(md, "| {strategy} | {} |", cells.join(" | "));
    }
    let _ = writeln!(md, "\nEach cell: lost (share of expected) / duplicated. The runs:\n");
    for (column, run) in columns.iter().zip(&runs) {
        let day = run.started_at.get(..10).unwrap_or(&run.started_at);
        let _ = writeln!(
            md,
            "* {}: `{}` ({}, {} instances, run {day}, {}), `{}`",
            column.heading,
            run.scenario,
            column.report.display(),
            run.instances,
            if run.passed { "passed" } else { "failed" },
            run.command
        );
    }
    Ok(Matrix { markdown: md, broken })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_is_a_heading_and_a_report() {
        let c: Column = "broker stop = reports/x".parse().unwrap();
        assert_eq!((c.heading.as_str(), c.report.to_str()), ("broker stop", Some("reports/x")));
        assert!("reports/x".parse::<Column>().unwrap_err().contains("write HEADING=REPORT"));
        assert!("=reports/x".parse::<Column>().is_err());
    }

    fn write_report(dir: &std::path::Path, scenario: &str, cells: &[(&str, u64, u64)]) -> PathBuf {
        let results: Vec<serde_json::Value> = cells
            .iter()
            .map(|(s, lost, dup)| {
                let mut r = serde_json::to_value(crate::report::tests::result(s)).unwrap();
                r["expected"] = 1000.into();
                r["lost"] = (*lost).into();
                r["duplicated"] = (*dup).into();
                r
            })
            .collect();
        let mut report = serde_json::to_value(crate::report::tests::sample_report()).unwrap();
        report["scenario"] = scenario.into();
        report["results"] = results.into();
        let path = dir.join(format!("{scenario}.json"));
        std::fs::write(&path, report.to_string()).unwrap();
        path
    }

    #[test]
    fn each_run_is_a_column_and_a_strategy_it_did_not_run_is_not_applicable() {
        let dir = std::env::temp_dir().join(crate::infra::unique_name("matrix"));
        std::fs::create_dir_all(&dir).unwrap();
        let kill = write_report(&dir, "kill", &[("local", 600, 0), ("outbox", 0, 0)]);
        let node = write_report(&dir, "node", &[("outbox", 3, 1), ("outbox-quorum", 0, 0)]);
        let columns = [
            Column { heading: "instance kill".into(), report: kill },
            Column { heading: "node kill".into(), report: node },
        ];
        let m = build(&columns, Some("outbox")).unwrap();
        assert!(m.markdown.contains("| strategy | instance kill | node kill |"), "{}", m.markdown);
        assert!(m.markdown.contains("| local | 600 (60.0%) / 0 | n/a |"), "{}", m.markdown);
        assert!(m.markdown.contains("| outbox | 0 / 0 | 3 (0.3%) / 1 |"), "{}", m.markdown);
        assert!(m.markdown.contains("| outbox-quorum | n/a | 0 / 0 |"), "{}", m.markdown);
        assert_eq!(m.broken, vec![("node kill".to_string(), "outbox".to_string(), 3, 1)]);
        assert!(
            build(&columns, Some("outbox-quorum")).unwrap().broken.is_empty(),
            "a column without it is not a break"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
