//! Notifications across three instances, for every delivery strategy: stored once, pushed to
//! whichever instance holds the stream (not for `local`), replayed after `Last-Event-ID`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use loadtest::probe::sse;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::helpers::{Session, TestApp, TestResult, World, assert_error};

/// An open SSE stream whose events arrive on a channel; closed when dropped.
pub struct Stream {
    /// Notification events (`id`, data); the stream's `ready` events go to `ready` instead.
    pub events: mpsc::UnboundedReceiver<(String, Value)>,
    pub ready: mpsc::UnboundedReceiver<(String, Value)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream {
    pub async fn open(app: &TestApp, who: &Session, last_event_id: Option<&str>) -> Stream {
        let events = sse::connect(&app.client, &app.url("/notifications/stream"), &who.token, last_event_id)
            .await
            .expect("the stream opens");
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut events = Box::pin(events);
            while let Some(Ok(e)) = events.next().await {
                let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
                let to = if e.event == "ready" { &ready_tx } else { &tx };
                if to.send((e.id.unwrap_or_default(), data)).is_err() {
                    break;
                }
            }
        });
        Stream { events: rx, ready, task }
    }

    /// The stream's `ready` event: (its id, its data).
    pub async fn ready(&mut self) -> (String, Value) {
        tokio::time::timeout(Duration::from_secs(10), self.ready.recv())
            .await
            .ok()
            .flatten()
            .expect("every stream sends a ready event after its replay")
    }

    /// The next event within `wait`, or None.
    pub async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        tokio::time::timeout(wait, self.events.recv()).await.ok().flatten()
    }

    /// Everything that arrives within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<(String, Value)> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        while let Some(e) = self.next(deadline.saturating_duration_since(Instant::now())).await {
            got.push(e);
        }
        got
    }
}

pub async fn wait_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = app.call("GET", "/readyz", None, None).await;
        if status == StatusCode::OK {
            return;
        }
        assert!(Instant::now() < deadline, "instance never became ready: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn three_instances(world: &World, strategy: &str) -> [TestApp; 3] {
    let env = [("SERVER_NOTIFY_DELIVERY", strategy), ("SERVER_AI_ENABLED", "false")];
    let apps = [world.spawn(&env).await, world.spawn(&env).await, world.spawn(&env).await];
    for app in &apps {
        wait_ready(app).await;
    }
    apps
}

async fn stored(world: &World, recipient: u64, kind: &str, cause: u64) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE recipient_id = ? AND kind = ? AND cause_id = ?")
        .bind(recipient)
        .bind(kind)
        .bind(cause)
        .fetch_one(&world.db)
        .await
        .expect("count notifications")
}

/// The whole check for one strategy; `crosses` says whether instance 1's notification must
/// reach a stream on instance 3.
async fn notification_crosses_instances_and_replays(strategy: &str, crosses: bool) -> TestResult {
    let world = World::new().await;
    let [one, two, three] = three_instances(&world, strategy).await;
    let (author, friend) = (one.signup("author").await, one.signup("friend").await);
    one.befriend(&author, &friend).await;
    let mut stream = Stream::open(&three, &friend, None).await;

    let diary = one.diary(&author, "friends").await;
    let first = stream.next(Duration::from_secs(if crosses { 10 } else { 2 })).await;

    assert_eq!(stored(&world, friend.id, "diary", diary).await, 1, "{strategy}: stored once");
    let last_id = match (crosses, first) {
        (true, Some((id, data))) => {
            assert_eq!(data["type"], "diary");
            assert_eq!(data["cause_id"], diary);
            assert_eq!(data["recipient_id"], friend.id);
            assert_eq!(data["actor_id"], author.id);
            assert_eq!(id, data["id"].to_string());
            id
        }
        (true, None) => panic!("{strategy}: the notification raised on instance 1 never reached instance 3"),
        (false, Some(e)) => panic!("{strategy}: a local-only strategy delivered across instances: {e:?}"),
        (false, None) => {
            let (_, list) = three.call("GET", "/notifications", Some(&friend.token), None).await;
            list["items"][0]["id"].to_string()
        }
    };

    // Disconnect; two more events happen; reconnect elsewhere with Last-Event-ID.
    drop(stream);
    let missed_diary = two.diary(&author, "friends").await;
    let own = two.diary(&friend, "friends").await;
    let (status, comment) = one
        .call("POST", &format!("/diaries/{own}/comments"), Some(&author.token), Some(json!({"content": "힘내"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut resumed = Stream::open(&two, &friend, Some(&last_id)).await;
    let replayed = resumed.drain(Duration::from_secs(3)).await;

    let causes: Vec<(String, u64)> = replayed
        .iter()
        .map(|(_, d)| (d["type"].as_str().unwrap().to_string(), d["cause_id"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        causes,
        vec![("diary".to_string(), missed_diary), ("comment".to_string(), comment["id"].as_u64().unwrap())],
        "{strategy}: exactly what was missed, in order, nothing twice"
    );
    if crosses {
        // Live again: the next event arrives once, on the resumed stream.
        let live = one.diary(&author, "friends").await;
        let got = resumed.drain(Duration::from_secs(3)).await;
        let live_causes: Vec<u64> = got.iter().map(|(_, d)| d["cause_id"].as_u64().unwrap()).collect();
        assert_eq!(live_causes, vec![live], "{strategy}: live after the replay, once");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_delivery_does_not_cross_instances_but_replay_recovers() -> TestResult {
    notification_crosses_instances_and_replays("local", false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pubsub_crosses_instances() -> TestResult {
    notification_crosses_instances_and_replays("redis-pubsub", true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_streams_crosses_instances() -> TestResult {
    notification_crosses_instances_and_replays("redis-streams", true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_crosses_instances() -> TestResult {
    notification_crosses_instances_and_replays("rabbitmq", true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_crosses_instances() -> TestResult {
    notification_crosses_instances_and_replays("outbox", true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_received_nothing_resumes_from_its_ready_id() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_NOTIFY_DELIVERY", "local"), ("SERVER_AI_ENABLED", "false")]).await;
    let (author, friend) = (app.signup("author").await, app.signup("friend").await);
    app.befriend(&author, &friend).await;
    let before = app.diary(&author, "friends").await;

    // A first connection without Last-Event-ID: no replay, then `ready` at the newest stored id.
    let mut first = Stream::open(&app, &friend, None).await;
    let (ready_id, ready) = first.ready().await;
    let (_, list) = app.call("GET", "/notifications", Some(&friend.token), None).await;
    assert_eq!(ready_id, list["items"][0]["id"].to_string(), "ready names the newest notification");
    assert_eq!((ready["resume_from"].to_string(), ready["replayed"].as_u64()), (ready_id.clone(), Some(0)));
    assert!(first.drain(Duration::from_millis(300)).await.is_empty(), "diary {before} was not replayed");

    // It drops before any notification arrived; one is stored while it is away.
    drop(first);
    let missed = app.diary(&author, "friends").await;

    // Resuming from the ready id replays exactly the missed one, then a new ready.
    let mut resumed = Stream::open(&app, &friend, Some(&ready_id)).await;
    let got = resumed.drain(Duration::from_secs(1)).await;
    let causes: Vec<u64> = got.iter().map(|(_, d)| d["cause_id"].as_u64().unwrap()).collect();
    assert_eq!(causes, vec![missed]);
    let (again, ready) = resumed.ready().await;
    assert_eq!((again, ready["replayed"].as_u64()), (got[0].0.clone(), Some(1)));

    // Without the id (what a client did before `ready` existed) the missed one is not replayed.
    let mut fresh = Stream::open(&app, &friend, None).await;
    assert!(fresh.drain(Duration::from_millis(300)).await.is_empty());
    Ok(())
}

/// A client more than 10,000 behind gets the oldest 10,000 it missed, and its ready event
/// names the last of them, not the newest stored: resuming from it skips nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_replay_resumes_after_its_last_event_not_past_what_it_did_not_send() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_NOTIFY_DELIVERY", "local"), ("SERVER_AI_ENABLED", "false")]).await;
    let (reader, actor) = (app.signup("reader").await, app.signup("actor").await);
    sqlx::query(
        "INSERT INTO notifications (recipient_id, kind, cause_id, actor_id) \
         SELECT ?, 'diary', seq, ? FROM seq_1_to_10050",
    )
    .bind(reader.id)
    .bind(actor.id)
    .execute(&world.db)
    .await?;
    let ids: Vec<u64> = sqlx::query_scalar("SELECT id FROM notifications WHERE recipient_id = ? ORDER BY id")
        .bind(reader.id)
        .fetch_all(&world.db)
        .await?;

    let mut stream = Stream::open(&app, &reader, Some("0")).await;
    let (ready_id, ready) = stream.ready().await;

    assert_eq!(ready["replayed"].as_u64(), Some(10_000), "{ready}");
    assert_eq!(ready_id, ids[9_999].to_string(), "the last one sent, not the newest stored ({})", ids[10_049]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_need_auth_and_a_numeric_last_event_id() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_NOTIFY_DELIVERY", "local")]).await;
    let a = app.signup("a").await;

    let (status, body) = app.call("GET", "/notifications/stream", None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let err = sse::connect(&app.client, &app.url("/notifications/stream"), &a.token, Some("abc"))
        .await
        .err()
        .expect("refused");
    match err {
        sse::SseError::Status { status, body } => {
            assert_eq!(status, 400);
            assert!(body.contains("invalid_last_event_id"), "{body}");
        }
        other => panic!("expected a 400, got {other}"),
    }
    let (status, body) = app.call("GET", "/notifications/stream?last_event_id=-4", Some(&a.token), None).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_last_event_id");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_listed_and_marked_read_by_their_recipient_only() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_NOTIFY_DELIVERY", "local"), ("SERVER_AI_ENABLED", "false")]).await;
    let (a, b) = (app.signup("a").await, app.signup("b").await);
    app.befriend(&a, &b).await;
    app.diary(&a, "friends").await;

    let (_, mine) = app.call("GET", "/notifications", Some(&b.token), None).await;
    let id = mine["items"][0]["id"].as_u64().expect("b has a notification");
    let (_, theirs) = app.call("GET", "/notifications", Some(&a.token), None).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    let (status, body) = app.call("POST", &format!("/notifications/{id}/read"), Some(&a.token), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "notification_not_found");
    assert_eq!(
        app.call("POST", &format!("/notifications/{id}/read"), Some(&b.token), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, unread) = app.call("GET", "/notifications?unread=true", Some(&b.token), None).await;
    assert_eq!(unread["items"].as_array().unwrap().len(), 0);
    Ok(())
}
