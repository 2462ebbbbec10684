//! Clustered jobs: each firing runs once across instances, misfires run once on recovery,
//! and the admin API pauses, resumes and triggers them (admins only).

use std::time::Duration;

use chrono::NaiveDateTime;
use reqwest::StatusCode;
use serde_json::{Value, json};

use server::accounts::{Email, Role, users};

use crate::helpers::{TestApp, TestResult, World, assert_error};

pub const ADMIN: &str = "ops@example.test";

/// Signs up `ADMIN`, grants it the admin role as the operator would (`server grant-admin`),
/// and logs in: the session carries the role.
pub async fn admin_session(world: &World, app: &TestApp) -> String {
    let (status, body) = app
        .call(
            "POST",
            "/auth/signup",
            None,
            Some(json!({ "email": ADMIN, "password": "correct horse", "display_name": "ops" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "signup: {body}");
    assert_eq!(body["role"], "user", "sign-up never grants a role");
    let email = Email::parse(ADMIN).unwrap();
    users::set_role(&world.db, &email, Role::Admin).await.unwrap().expect("the account exists");
    let (status, body) =
        app.call("POST", "/auth/login", None, Some(json!({ "email": ADMIN, "password": "correct horse" }))).await;
    assert_eq!(status, StatusCode::OK, "login: {body}");
    assert_eq!(body["user"]["role"], "admin");
    body["token"].as_str().unwrap().to_string()
}

type RunRow = (NaiveDateTime, String, String, String, u32);

/// `(scheduled_at, trigger_kind, outcome, instance_id, missed)` of a job, by fire time.
async fn runs(world: &World, job: &str) -> Vec<RunRow> {
    sqlx::query_as(
        "SELECT scheduled_at, trigger_kind, outcome, instance_id, missed FROM job_runs WHERE job = ? ORDER BY scheduled_at",
    )
    .bind(job)
    .fetch_all(&world.db)
    .await
    .unwrap()
}

/// Settings for a 1-second heartbeat polled every 50 ms, nothing else running.
const HEARTBEAT: [(&str, &str); 4] = [
    ("SERVER_JOB_HEARTBEAT_SCHEDULE", "every 1s"),
    ("SERVER_JOB_POLL_MS", "50"),
    ("SERVER_EMBED_WORKERS", "0"),
    ("SERVER_AI_ENABLED", "false"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_run_each_heartbeat_firing_exactly_once_without_gaps() -> TestResult {
    let world = World::new().await;
    let _apps = [world.spawn(&HEARTBEAT).await, world.spawn(&HEARTBEAT).await, world.spawn(&HEARTBEAT).await];

    tokio::time::sleep(Duration::from_millis(5500)).await;

    let runs = runs(&world, "heartbeat").await;
    assert!(runs.len() >= 4, "only {} heartbeat runs in 5.5 s: {runs:?}", runs.len());
    for pair in runs.windows(2) {
        assert_eq!(pair[1].0 - pair[0].0, chrono::Duration::seconds(1), "a gap or a double firing: {runs:?}");
    }
    // The newest run may still be finishing when we look.
    assert!(runs.iter().all(|r| r.1 == "schedule" && (r.2 == "ok" || r.2 == "running")), "{runs:?}");
    let doubles: Vec<(NaiveDateTime, i64)> = sqlx::query_as(
        "SELECT scheduled_at, COUNT(*) FROM job_runs WHERE job = 'heartbeat' GROUP BY scheduled_at HAVING COUNT(*) > 1",
    )
    .fetch_all(&world.db)
    .await?;
    assert!(doubles.is_empty(), "{doubles:?}");
    Ok(())
}

/// The control group: with `SERVER_JOB_SCHEDULER=local` each instance fires on its own
/// clock, so three instances leave about three runs per second, each at its own phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_local_scheduler_every_instance_fires_every_period() -> TestResult {
    let world = World::new().await;
    let local = [HEARTBEAT[0], HEARTBEAT[1], HEARTBEAT[2], HEARTBEAT[3], ("SERVER_JOB_SCHEDULER", "local")];
    let _apps = [world.spawn(&local).await, world.spawn(&local).await, world.spawn(&local).await];

    tokio::time::sleep(Duration::from_millis(3500)).await;

    let runs = runs(&world, "heartbeat").await;
    let instances: std::collections::BTreeSet<&str> = runs.iter().map(|r| r.3.as_str()).collect();
    assert_eq!(instances.len(), 3, "every instance fired: {runs:?}");
    // Each instance about 3 times in 3.5 s (its first firing 1 s after it started).
    assert!(runs.len() >= 7, "only {} runs of three instances in 3.5 s: {runs:?}", runs.len());
    // Several runs within one period: what the harness's judge must count as run twice.
    let crowded = runs.windows(2).filter(|w| w[1].0 - w[0].0 < chrono::Duration::milliseconds(900)).count();
    assert!(crowded >= 2, "runs of one period on several instances: {runs:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_missed_while_every_instance_was_down_runs_once_on_recovery() -> TestResult {
    let world = World::new().await;
    drop(world.spawn(&HEARTBEAT).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // As if the cluster had been down for 30 s.
    sqlx::query("UPDATE job_schedules SET next_fire_at = NOW(6) - INTERVAL 30 SECOND WHERE name = 'heartbeat'")
        .execute(&world.db)
        .await?;
    let before = runs(&world, "heartbeat").await.len();

    let _app = world.spawn(&HEARTBEAT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    let after = runs(&world, "heartbeat").await;
    let recovered = &after[before..];
    assert_eq!(recovered.len(), 1, "one run for the whole outage, not a burst: {recovered:?}");
    assert_eq!(recovered[0].1, "misfire");
    assert!(recovered[0].4 >= 29, "missed fire times counted: {recovered:?}");
    Ok(())
}

async fn count(world: &World, job: &str, kind: Option<&str>) -> usize {
    runs(world, job).await.iter().filter(|r| kind.is_none_or(|k| r.1 == k)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_pauses_resumes_and_triggers_a_job() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&HEARTBEAT).await;
    let token = admin_session(&world, &app).await;

    let (status, body) = app.call("GET", "/admin/jobs", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let heartbeat = body.as_array().unwrap().iter().find(|j| j["name"] == "heartbeat").cloned().unwrap_or_default();
    assert_eq!(heartbeat["schedule"], "every 1s", "{body}");
    assert_eq!(heartbeat["enabled"], true);

    let (status, body) = app.call("POST", "/admin/jobs/heartbeat/pause", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["paused"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paused_at = count(&world, "heartbeat", None).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(count(&world, "heartbeat", None).await, paused_at, "a paused job fired");

    let (status, body) = app.call("POST", "/admin/jobs/heartbeat/trigger", Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count(&world, "heartbeat", Some("manual")).await, 1, "a trigger runs once, also when paused");
    assert_eq!(count(&world, "heartbeat", None).await, paused_at + 1);

    let (status, body) = app.call("POST", "/admin/jobs/heartbeat/resume", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["paused"], false);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(count(&world, "heartbeat", Some("schedule")).await > paused_at, "resumed firings");

    let (status, body) = app.call("GET", "/admin/jobs/heartbeat/runs?limit=2", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items[0]["id"].as_u64() > items[1]["id"].as_u64(), "newest first: {body}");
    assert!(body["next_cursor"].is_string(), "{body}");
    let (status, body) = app.call("GET", "/admin/jobs", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let heartbeat = body.as_array().unwrap().iter().find(|j| j["name"] == "heartbeat").cloned().unwrap_or_default();
    assert!(heartbeat["last_run"]["outcome"].is_string(), "{heartbeat}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_strangers_and_names_unknown_jobs() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&HEARTBEAT).await;
    let user = app.signup("plain").await;
    let admin = admin_session(&world, &app).await;

    for (method, path) in
        [("GET", "/admin/jobs"), ("GET", "/admin/jobs/cleanup/runs"), ("POST", "/admin/jobs/cleanup/pause")]
    {
        let (status, body) = app.call(method, path, None, None).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        let (status, body) = app.call(method, path, Some(&user.token), None).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    for (method, path) in [("GET", "/admin/jobs/nope/runs"), ("POST", "/admin/jobs/nope/trigger")] {
        let (status, body) = app.call(method, path, Some(&admin), None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "job_not_found");
    }
    let (status, body) = app.call("GET", "/admin/jobs/cleanup/runs?limit=0", Some(&admin), None).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_triggered_cleanup_deletes_old_read_notifications_only() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&HEARTBEAT).await;
    let admin = admin_session(&world, &app).await;
    let owner: u64 =
        sqlx::query_scalar("SELECT id FROM users WHERE email = ?").bind(ADMIN).fetch_one(&world.db).await?;
    for (cause, age_days, read) in [(1, 40, true), (2, 40, false), (3, 1, true)] {
        sqlx::query(
            "INSERT INTO notifications (recipient_id, seq, kind, cause_id, actor_id, created_at, read_at) \
             VALUES (?, ?, 'diary', ?, ?, NOW(6) - INTERVAL ? DAY, IF(?, NOW(6), NULL))",
        )
        .bind(owner)
        .bind(cause)
        .bind(cause)
        .bind(owner)
        .bind(age_days)
        .bind(read)
        .execute(&world.db)
        .await?;
    }

    let (status, body) = app.call("POST", "/admin/jobs/cleanup/trigger", Some(&admin), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let left: Vec<u64> =
        sqlx::query_scalar("SELECT cause_id FROM notifications ORDER BY cause_id").fetch_all(&world.db).await?;
    assert_eq!(left, vec![2, 3]);
    let (_, body) = app.call("GET", "/admin/jobs/cleanup/runs", Some(&admin), None).await;
    let last: &Value = &body["items"][0];
    assert_eq!(last["outcome"], "ok", "{body}");
    assert!(last["detail"].as_str().is_some_and(|d| d.contains("notifications=1")), "{body}");
    Ok(())
}
