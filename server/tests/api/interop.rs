//! Independent STOMP clients against the real server on two instances: @stomp/stompjs (Node,
//! with the `ws` package) and stomp.py, each running the checks of `interop/` (connect,
//! receipts, messages across instances with their seq, heart-beats kept within the agreed
//! interval, a split large frame, resume with `last-seq`, a business error on the error
//! destination, a protocol error answered with ERROR and a close). Installed by
//! `scripts/setup-interop.sh` (part of `scripts/setup.sh`) from the committed lock files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::chat::{instances, pair, ws_url};
use crate::helpers::{TestApp, TestResult, World};

fn interop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// Runs one client's checks; fails with everything it printed.
async fn check(program: PathBuf, script: &str, config: &str) -> TestResult {
    let dir = interop();
    let missing = |what: &Path| {
        format!("{} is missing: run `bash scripts/setup-interop.sh` (scripts/test.sh does)", what.display())
    };
    for needed in [dir.join("node_modules"), dir.join(".venv")] {
        assert!(needed.exists(), "{}", missing(&needed));
    }
    let run = tokio::process::Command::new(&program).arg(dir.join(script)).arg(config).current_dir(&dir).output();
    let output = tokio::time::timeout(Duration::from_secs(90), run).await??;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{script} failed ({}):\n{text}", output.status);
    let passed = text.lines().filter(|l| l.contains("\"ok\": true") || l.contains("\"ok\":true")).count();
    assert!(passed >= 7, "{script}: fewer checks passed than it has:\n{text}");
    Ok(())
}

/// Two instances and the fixture of the checks; the instances run while the returned apps live.
async fn config(world: &World) -> (String, [TestApp; 2]) {
    let (one, two) = instances(world, "redis-recovering", &[("SERVER_CHAT_HEARTBEAT_MS", "2000")]).await;
    let p = pair(&one).await;
    let other = pair(&one).await;
    let config = json!({
        "ws1": ws_url(&one),
        "ws2": ws_url(&two),
        "http1": one.base,
        "renter_token": p.renter.token,
        "owner_token": p.owner.token,
        "renter_id": p.renter.id,
        "owner_id": p.owner.id,
        "room": p.room,
        "other_room": other.room,
    });
    (config.to_string(), [one, two])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stompjs_speaks_with_the_server_across_instances() -> TestResult {
    let world = World::new().await;
    let (config, _instances) = config(&world).await;
    check(PathBuf::from("node"), "stompjs-check.mjs", &config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_py_speaks_with_the_server_across_instances() -> TestResult {
    let world = World::new().await;
    let (config, _instances) = config(&world).await;
    check(interop().join(".venv/bin/python"), "stomp_py_check.py", &config).await
}
