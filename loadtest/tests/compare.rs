//! `loadtest compare` as a user runs it: the real binary on stored reports, its files, its
//! words, and `loadtest run --baseline` refusing a baseline that cannot be read before any load.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports").join(format!("{kind}.json"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(loadtest::infra::unique_name(name));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

fn loadtest(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest")).args(args).output().expect("loadtest runs");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

/// A copy of a stored report with every strategy's p99 multiplied by `factor`.
fn slowed(kind: &str, factor: u64, dir: &Path) -> PathBuf {
    let mut report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(kind)).expect("fixture")).expect("JSON");
    for r in report["results"].as_array_mut().expect("results") {
        let p99 = r["latency_us"]["p99"].as_u64().expect("a p99");
        r["latency_us"]["p99"] = (p99 * factor).into();
    }
    let path = dir.join(format!("{kind}-slowed.json"));
    std::fs::write(&path, report.to_string()).expect("write");
    path
}

#[test]
fn a_run_compared_with_itself_shows_no_regression_and_writes_three_files() {
    let out = scratch("compare-same");
    let (code, stdout, stderr) = loadtest(&[
        "compare",
        fixture("fanout").to_str().unwrap(),
        fixture("fanout").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("no regression"), "{stdout}");
    assert!(stdout.contains("one run each"), "says that one run is not judged against noise: {stdout}");
    for file in ["compare.md", "compare.html", "compare.json"] {
        assert!(out.join(file).is_file(), "{file} was not written");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    assert!(json["figures"].as_array().is_some_and(|f| !f.is_empty()), "{json}");
}

#[test]
fn a_slowed_run_is_caught_and_named_and_a_small_difference_is_not() {
    let dir = scratch("compare-slowed");
    let slow = slowed("fanout", 3, &dir);
    let (code, stdout, stderr) = loadtest(&[
        "compare",
        fixture("fanout").to_str().unwrap(),
        slow.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "compare informs, the gate fails: {stderr}");
    assert!(stdout.contains("REGRESSION: worse by 200% > 10% allowed"), "{stdout}");
    assert!(stdout.contains("rabbitmq: p99 ms"), "names the strategy and the figure: {stdout}");

    // 3x slower is within a 250% allowance.
    let (_, stdout, _) = loadtest(&[
        "compare",
        fixture("fanout").to_str().unwrap(),
        slow.to_str().unwrap(),
        "--max-regression",
        "250%",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(stdout.contains("no regression"), "{stdout}");
}

#[test]
fn mismatched_or_unreadable_reports_are_refused_with_what_to_do() {
    let (code, _, stderr) =
        loadtest(&["compare", fixture("fanout").to_str().unwrap(), fixture("chat").to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("compare runs of one scenario"), "{stderr}");

    let (code, _, stderr) = loadtest(&["compare", "/nowhere", fixture("chat").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nowhere") && stderr.contains("name a report folder or its report.json"), "{stderr}");

    // The gate reads its baseline before anything starts.
    let (code, _, stderr) =
        loadtest(&["run", "../scenarios/ci/notify-fanout.toml", "--baseline", "/nowhere/report.json"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nowhere/report.json"), "{stderr}");
    assert!(!stderr.contains("infrastructure up"), "nothing was provisioned: {stderr}");
}
