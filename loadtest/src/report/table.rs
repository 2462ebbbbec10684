//! The one table model every report format renders: a title, columns (header, alignment,
//! unit) and rows of cells. What a kind's results look like is decided once, in
//! [`super::columns`]; the renderers (plain text for the terminal, Markdown, HTML, JUnit
//! properties) know tables, not kinds.

use std::fmt::Write;

use super::text;

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// What a higher value of a column means when two runs are compared (`loadtest compare`, the
/// `--baseline` gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sense {
    /// Neither better nor worse: what was offered, expected, sent.
    Neutral,
    /// A broken invariant, counted (lost, duplicated, double processed): more is a regression.
    Violation,
    /// Latency: lower is better.
    LowerIsBetter,
    /// Throughput: higher is better.
    HigherIsBetter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub header: String,
    pub align: Align,
    /// The JUnit property name of the column's value (`<strategy>.<key>`), for the columns a
    /// CI page should show; `None` for the others.
    pub key: Option<&'static str>,
    pub sense: Sense,
}

impl Column {
    /// A left-aligned text column.
    pub fn text(header: &str) -> Self {
        Self { header: header.to_string(), align: Align::Left, key: None, sense: Sense::Neutral }
    }

    /// A right-aligned figure.
    pub fn figure(header: &str) -> Self {
        Self { header: header.to_string(), align: Align::Right, key: None, sense: Sense::Neutral }
    }

    /// A right-aligned count, also a JUnit property under `key`.
    pub fn count(header: &str, key: &'static str) -> Self {
        Self { header: header.to_string(), align: Align::Right, key: Some(key), sense: Sense::Neutral }
    }

    /// The column counts broken invariants.
    pub fn violation(mut self) -> Self {
        self.sense = Sense::Violation;
        self
    }

    pub fn lower_is_better(mut self) -> Self {
        self.sense = Sense::LowerIsBetter;
        self
    }

    pub fn higher_is_better(mut self) -> Self {
        self.sense = Sense::HigherIsBetter;
        self
    }
}

/// One value, formatted the same way in every format.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Count(u64),
    /// A figure with this many decimals.
    Number(f64, usize),
    /// Microseconds shown as milliseconds with 2 decimals.
    Micros(u64),
    /// `part / whole` as a percentage with 1 decimal; `-` when `whole` is 0.
    Percent(u64, u64),
    /// A pass/fail verdict.
    Verdict(bool),
    /// A verdict with why, when it failed (a ramp step).
    Judged(bool, String),
    /// A file beside the report, linked where the format can link.
    Link(String),
}

impl Cell {
    /// The cell's number, for comparing runs: a count, a figure, milliseconds for a latency,
    /// a percentage; `None` for text, verdicts and a percentage of nothing.
    pub fn value(&self) -> Option<f64> {
        match self {
            Cell::Count(n) => Some(*n as f64),
            Cell::Number(v, _) => Some(*v),
            Cell::Micros(us) => Some(*us as f64 / 1000.0),
            Cell::Percent(_, 0) => None,
            Cell::Percent(part, whole) => Some(*part as f64 * 100.0 / *whole as f64),
            Cell::Text(_) | Cell::Verdict(_) | Cell::Judged(..) | Cell::Link(_) => None,
        }
    }

    /// The cell as plain text: what the terminal, Markdown and HTML (escaped) show.
    pub fn plain(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Number(v, decimals) => format!("{v:.decimals$}"),
            Cell::Micros(us) => text::ms(*us),
            Cell::Percent(part, whole) => text::percent(*part, *whole),
            Cell::Verdict(true) => "pass".to_string(),
            Cell::Verdict(false) => "FAIL".to_string(),
            Cell::Judged(true, _) => "sustained".to_string(),
            Cell::Judged(false, why) => format!("FAIL: {why}"),
            Cell::Link(target) => target.clone(),
        }
    }
}

/// A row: its cells, one per column, and which strategy (for a colour swatch) it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub cells: Vec<Cell>,
    /// Index of the strategy in the report, for its chart colour; `None` for a sub-row.
    pub strategy: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The section the table belongs to (heading, a sentence introducing it); `None` for the
    /// main results table.
    pub section: Option<(&'static str, &'static str)>,
    /// A heading above the table; empty for the main results table.
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(title: impl Into<String>, columns: Vec<Column>) -> Self {
        Self { section: None, title: title.into(), columns, rows: Vec::new() }
    }

    /// The table in a section of the report, under `heading`, introduced by `intro`.
    pub fn in_section(mut self, heading: &'static str, intro: &'static str) -> Self {
        self.section = Some((heading, intro));
        self
    }

    pub fn push(&mut self, strategy: Option<usize>, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len(), "a row has one cell per column");
        self.rows.push(Row { cells, strategy });
    }

    /// Plain text, columns padded: for a terminal. No markup and no escapes.
    pub fn to_text(&self) -> String {
        let texts: Vec<Vec<String>> = self.rows.iter().map(|r| r.cells.iter().map(Cell::plain).collect()).collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                texts.iter().map(|r| r[i].chars().count()).chain([c.header.chars().count()]).max().unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| -> String {
            let padded: Vec<String> = cells
                .iter()
                .zip(&self.columns)
                .zip(&widths)
                .map(|((cell, column), width)| match column.align {
                    Align::Left => format!("{cell:<width$}"),
                    Align::Right => format!("{cell:>width$}"),
                })
                .collect();
            padded.join("  ").trim_end().to_string()
        };
        let mut out = String::new();
        if !self.title.is_empty() {
            let _ = writeln!(out, "{}", self.title);
        }
        let _ = writeln!(out, "{}", line(self.columns.iter().map(|c| c.header.as_str()).collect()));
        for row in &texts {
            let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
        }
        out
    }

    /// A Markdown table (GitHub flavour), cells made safe for it; a `###` heading when titled.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        if !self.title.is_empty() {
            let _ = writeln!(out, "### {}\n", text::md_cell(&self.title));
        }
        let headers: Vec<String> = self.columns.iter().map(|c| text::md_cell(&c.header)).collect();
        let _ = writeln!(out, "| {} |", headers.join(" | "));
        let rule: Vec<&str> =
            self.columns.iter().map(|c| if c.align == Align::Right { "---:" } else { "---" }).collect();
        let _ = writeln!(out, "|{}|", rule.join("|"));
        for row in &self.rows {
            let cells: Vec<String> = row
                .cells
                .iter()
                .map(|c| match c {
                    Cell::Verdict(passed) => (if *passed { "✅" } else { "❌" }).to_string(),
                    Cell::Judged(true, _) => "✅ sustained".to_string(),
                    Cell::Judged(false, why) => format!("❌ {}", text::md_cell(why)),
                    Cell::Link(target) => format!("[{0}]({0})", text::md_cell(target)),
                    other => text::md_cell(&other.plain()),
                })
                .collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out
    }

    /// An HTML table; `swatch(i)` gives the colour of strategy `i` for its first cell.
    pub fn to_html(&self, swatch: impl Fn(usize) -> &'static str) -> String {
        let mut out = String::new();
        if !self.title.is_empty() {
            let _ = writeln!(out, "<h3>{}</h3>", text::html(&self.title));
        }
        out.push_str("<div class=\"wide\"><table>\n<tr>");
        for c in &self.columns {
            let _ = write!(out, "<th>{}</th>", text::html(&c.header));
        }
        out.push_str("</tr>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for (i, (cell, column)) in row.cells.iter().zip(&self.columns).enumerate() {
                let content = match cell {
                    Cell::Verdict(true) => "<span class=\"badge pass\">pass</span>".to_string(),
                    Cell::Verdict(false) => "<span class=\"badge fail\">fail</span>".to_string(),
                    Cell::Judged(true, _) => "<span class=\"badge pass\">pass</span>".to_string(),
                    Cell::Judged(false, why) => format!("<span class=\"badge fail\">fail</span> {}", text::html(why)),
                    Cell::Link(target) => format!("<a href=\"{0}\">{0}</a>", text::html(target)),
                    other => text::html(&other.plain()),
                };
                let content = match (i, row.strategy) {
                    (0, Some(s)) => {
                        format!("<span class=\"swatch\" style=\"background:{}\"></span>{content}", swatch(s))
                    }
                    _ => content,
                };
                let class = if column.align == Align::Right { " class=\"n\"" } else { "" };
                let _ = write!(out, "<td{class}>{content}</td>");
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table></div>\n");
        out
    }

    /// `(<first cell>.<key>, value)` for every keyed column of every row: what JUnit shows as
    /// properties.
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for row in &self.rows {
            let Some(first) = row.cells.first() else { continue };
            for (cell, column) in row.cells.iter().zip(&self.columns) {
                if let Some(key) = column.key {
                    out.push((format!("{}.{key}", first.plain()), cell.plain()));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(
            "",
            vec![
                Column::text("strategy"),
                Column::count("lost", "lost"),
                Column::figure("p99 ms"),
                Column::text("verdict"),
            ],
        );
        t.push(Some(0), vec![Cell::Text("a|b<c>".into()), Cell::Count(3), Cell::Micros(12_340), Cell::Verdict(false)]);
        t.push(Some(1), vec![Cell::Text("outbox".into()), Cell::Count(0), Cell::Micros(800), Cell::Verdict(true)]);
        t
    }

    #[test]
    fn every_format_shows_the_same_figures() {
        let t = sample();
        let text = t.to_text();
        assert!(text.contains("a|b<c>       3   12.34  FAIL"), "plain text, no escapes:\n{text}");
        let md = t.to_markdown();
        assert!(md.contains("| a\\|b&lt;c> | 3 | 12.34 | ❌ |"), "{md}");
        assert!(md.contains("|---|---:|---:|---|"), "{md}");
        let html = t.to_html(|_| "#123456");
        assert!(html.contains("a|b&lt;c&gt;</td><td class=\"n\">3</td><td class=\"n\">12.34</td>"), "{html}");
        assert!(html.contains("background:#123456"), "{html}");
        assert_eq!(t.properties(), [("a|b<c>.lost".to_string(), "3".to_string()), ("outbox.lost".into(), "0".into())]);
    }
}
