//! `report.json` is a public schema: tools parse it. A stored report of each kind, written by
//! the CI scenarios, must read into `RunReport` and write back to the same JSON, field for
//! field, and render in every format. A renamed or dropped field fails here.

use std::path::Path;

use loadtest::report::{self, RunReport};
use loadtest::scenario::Kind;

fn fixture(kind: Kind) -> (serde_json::Value, RunReport) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/reports/{}.json", kind.as_str()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: serde_json::Value = serde_json::from_str(&text).expect("the stored report is JSON");
    let report: RunReport = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (value, report)
}

#[test]
fn a_stored_report_of_every_kind_reads_and_writes_back_unchanged() {
    for &kind in Kind::ALL {
        let (stored, report) = fixture(kind);

        let written = serde_json::to_value(&report).expect("serialises");

        assert_eq!(report.kind, kind);
        assert_eq!(written, stored, "{kind}: report.json changed shape");
    }
}

#[test]
fn a_stored_report_of_every_kind_renders_in_every_format() {
    for &kind in Kind::ALL {
        let (_, report) = fixture(kind);

        let (text, md, html, junit) = (
            report::to_text(&report),
            report::to_markdown(&report),
            report::to_html(&report),
            report::to_junit(&report),
        );

        for r in &report.results {
            for (format, out) in [("text", &text), ("markdown", &md), ("html", &html), ("junit", &junit)] {
                assert!(out.contains(&r.strategy), "{kind} {format}: no row for {}", r.strategy);
            }
        }
        assert!(!text.contains("&lt;") && !text.contains("&amp;"), "{kind}: escapes in the terminal text:\n{text}");
        assert!(!md.contains("&lt;="), "{kind}: an escaped `<=` in the Markdown");
        assert!(junit.contains(&format!("<property name=\"kind\" value=\"{}\"/>", kind.as_str())), "{kind}");
    }
}
