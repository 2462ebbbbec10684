//! `junit.xml`: the scenario as one JUnit test suite with one test case per threshold, so CI
//! systems show which limit failed and by how much.
//!
//! Follows the common JUnit XML shape (testsuites > testsuite > testcase > failure) that
//! Jenkins, GitLab and GitHub test reporters read.

use std::fmt::Write;

use super::text::xml;
use super::{RunReport, columns};

pub(super) fn render(r: &RunReport) -> String {
    let mut cases = String::new();
    let mut tests = 0;
    let mut failures = 0;
    for t in &r.thresholds {
        tests += 1;
        let _ = write!(
            cases,
            "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"0\"",
            xml(&r.scenario),
            xml(&t.strategy),
            xml(&t.name)
        );
        if t.passed {
            cases.push_str("/>\n");
        } else {
            failures += 1;
            let detail = xml(&t.detail);
            let _ = write!(
                cases,
                ">\n      <failure message=\"{detail}\" type=\"threshold\">{detail}</failure>\n    </testcase>\n"
            );
        }
    }
    // A run can fail without a failing threshold (a strategy that did not run, a fault that
    // could not be injected): a suite of green thresholds must not hide that.
    if !r.passed && failures == 0 {
        tests += 1;
        failures += 1;
        let _ = write!(
            cases,
            "    <testcase classname=\"{s}\" name=\"{s}.run\" time=\"{d}\">\n      <failure message=\"the run \
             failed; see report.md\" type=\"run\">the run failed; see report.md</failure>\n    </testcase>\n",
            s = xml(&r.scenario),
            d = r.duration_s,
        );
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"loadtest\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{d}\">",
        d = r.duration_s
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{}\">",
        xml(&r.scenario),
        r.duration_s
    );
    out.push_str("    <properties>\n");
    for (name, value) in [
        ("kind", r.kind.as_str()),
        ("command", r.command.as_str()),
        ("started_at", r.started_at.as_str()),
        ("image_set", r.image_set.as_str()),
    ] {
        let _ = writeln!(out, "      <property name=\"{name}\" value=\"{}\"/>", xml(value));
    }
    let _ = writeln!(out, "      <property name=\"instances\" value=\"{}\"/>", r.instances);
    // The counts of every strategy's run, as the report's results table has them, so a CI page
    // shows them without a threshold on each.
    if let Some(results) = columns::tables(r).first() {
        for (name, value) in results.properties() {
            let _ = writeln!(out, "      <property name=\"{}\" value=\"{}\"/>", xml(&name), xml(&value));
        }
    }
    out.push_str("    </properties>\n");
    out.push_str(&cases);
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
