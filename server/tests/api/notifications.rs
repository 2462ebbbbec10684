//! Notifications across three instances, for every delivery strategy: stored once, pushed to
//! whichever instance holds the stream (not for `local`), replayed after `Last-Event-ID`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use loadtest::probe::sse;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use server::notify::store;
use server::notify::{Kind, NewNotification};

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
                if !e.fires() {
                    continue;
                }
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
            assert_eq!(id, data["seq"].to_string(), "the event id is the recipient's sequence");
            assert_eq!(data["seq"], 1);
            id
        }
        (true, None) => panic!("{strategy}: the notification raised on instance 1 never reached instance 3"),
        (false, Some(e)) => panic!("{strategy}: a local-only strategy delivered across instances: {e:?}"),
        (false, None) => {
            let (_, list) = three.call("GET", "/notifications", Some(&friend.token), None).await;
            list["items"][0]["seq"].to_string()
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

/// `rabbitmq` sends the batches that commit while a store message awaits its confirm together
/// in the next message: under concurrent diaries every notification is still stored once and
/// pushed once, across instances, and the metrics count notifications, not messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_concurrent_diaries_each_arrive_once_and_are_stored_once() -> TestResult {
    const AUTHORS: usize = 8;
    const DIARIES_EACH: usize = 5;
    let world = World::new().await;
    let env = [("SERVER_NOTIFY_DELIVERY", "rabbitmq"), ("SERVER_AI_ENABLED", "false")];
    let (one, two) = (world.spawn(&env).await, world.spawn(&env).await);
    wait_ready(&one).await;
    wait_ready(&two).await;
    let reader = one.signup("reader").await;
    let mut authors = Vec::new();
    for i in 0..AUTHORS {
        let author = one.signup(&format!("author{i}")).await;
        one.befriend(&author, &reader).await;
        authors.push(author);
    }
    let mut stream = Stream::open(&two, &reader, None).await;
    stream.ready().await;

    let posts = authors.iter().flat_map(|a| std::iter::repeat_n(a, DIARIES_EACH)).map(|a| one.diary(a, "friends"));
    let mut diaries: Vec<u64> = futures::future::join_all(posts).await;
    diaries.sort_unstable();

    let mut got: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < diaries.len() && Instant::now() < deadline {
        if let Some((_, data)) = stream.next(Duration::from_secs(1)).await {
            got.push(data["cause_id"].as_u64().expect("a cause id"));
        }
    }
    // Anything pushed twice would arrive within a moment of the rest.
    got.extend(stream.drain(Duration::from_millis(500)).await.iter().map(|(_, d)| d["cause_id"].as_u64().unwrap()));
    got.sort_unstable();
    assert_eq!(got, diaries, "each diary's notification reached the other instance's stream once");
    for &diary in &diaries {
        assert_eq!(stored(&world, reader.id, "diary", diary).await, 1, "diary {diary} stored once");
    }

    let metrics = one.client.get(one.url("/metrics")).send().await?.text().await?;
    let total = |name| loadtest::probe::metrics::total(&loadtest::probe::metrics::parse(&metrics), name);
    let (published, messages) = (total("server_notify_published_total"), total("server_notify_broker_messages_total"));
    assert_eq!(published as usize, diaries.len(), "published counts notifications: {metrics}");
    // How many store and fanout messages carried them depends on timing: shown, not judged.
    eprintln!("{} diaries at once: {messages} broker messages from the writing instance", diaries.len());
    Ok(())
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
    assert_eq!(ready_id, list["items"][0]["seq"].to_string(), "ready names the newest notification");
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

/// A client far behind gets everything it missed, page after page, in order, before its
/// ready event, which names the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_replay_comes_in_order_and_ready_names_its_last_event() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_NOTIFY_DELIVERY", "local"), ("SERVER_AI_ENABLED", "false")]).await;
    let (reader, actor) = (app.signup("reader").await, app.signup("actor").await);
    sqlx::query(
        "INSERT INTO notifications (recipient_id, seq, kind, cause_id, actor_id) \
         SELECT ?, seq, 'diary', seq, ? FROM seq_1_to_1250",
    )
    .bind(reader.id)
    .bind(actor.id)
    .execute(&world.db)
    .await?;
    sqlx::query("UPDATE notification_streams SET last_seq = 1250 WHERE recipient_id = ?")
        .bind(reader.id)
        .execute(&world.db)
        .await?;

    let mut stream = Stream::open(&app, &reader, Some("7")).await;
    let (ready_id, ready) = stream.ready().await;
    let got = stream.drain(Duration::from_millis(500)).await;

    assert_eq!((ready_id.as_str(), ready["replayed"].as_u64()), ("1250", Some(1243)), "{ready}");
    let ids: Vec<u64> = got.iter().map(|(id, _)| id.parse().unwrap()).collect();
    assert_eq!(ids, (8..=1250).collect::<Vec<u64>>(), "every one after 7, once, in order");
    Ok(())
}

/// The replay gap, forced: two notifications for one reader whose transactions overlap, the
/// first held open while the second tries to commit. A reader that drops its stream between
/// them and resumes with the last id it holds must get both, once each, in increasing id
/// order. With ids assigned at insert, the second committed first, the reader resumed after
/// it, and the first was never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_between_two_out_of_order_commits_loses_nothing_and_repeats_nothing() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_NOTIFY_DELIVERY", "redis-pubsub"), ("SERVER_AI_ENABLED", "false")]).await;
    wait_ready(&app).await;
    let (reader, actor) = (app.signup("reader").await, app.signup("actor").await);
    let notify =
        move |cause_id| NewNotification { recipient_id: reader.id, kind: Kind::Diary, cause_id, actor_id: actor.id };
    let mut stream = Stream::open(&app, &reader, None).await;
    let (mut last_id, _) = stream.ready().await;

    // The first transaction stores its notification and holds it uncommitted.
    let mut first = world.db.begin().await?;
    let held = store::insert_batch(&mut first, &[notify(1)]).await?;
    // The second stores, commits and pushes, as a transport would.
    let (db, hub) = (world.db.clone(), app.hub.clone());
    let second = tokio::spawn(async move {
        let mut tx = db.begin().await?;
        let stored = store::insert_batch(&mut tx, &[notify(2)]).await?;
        tx.commit().await?;
        for n in &stored {
            hub.push(n);
        }
        Ok::<_, sqlx::Error>(())
    });
    // The reader takes whatever arrives, then its connection drops.
    let mut received: Vec<(u64, u64)> = Vec::new();
    for (id, data) in stream.drain(Duration::from_millis(700)).await {
        received.push((id.parse()?, data["cause_id"].as_u64().unwrap()));
        last_id = id;
    }
    drop(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first commits and is pushed while the reader is away.
    first.commit().await?;
    for n in &held {
        app.hub.push(n);
    }
    second.await??;
    let mut resumed = Stream::open(&app, &reader, Some(&last_id)).await;
    for (id, data) in resumed.drain(Duration::from_millis(700)).await {
        received.push((id.parse()?, data["cause_id"].as_u64().unwrap()));
    }

    let mut causes: Vec<u64> = received.iter().map(|(_, cause)| *cause).collect();
    causes.sort_unstable();
    assert_eq!(causes, [1, 2], "both arrive, once each: {received:?}");
    assert!(received.windows(2).all(|w| w[0].0 < w[1].0), "ids only go up: {received:?}");
    Ok(())
}

/// Storing is idempotent per (recipient, kind, cause) and numbers each recipient 1, 2, 3, ...
/// without a gap: a batch that repeats stored pairs (a redelivery), repeats a pair within
/// itself, and names a recipient without a sequence row (a user made by hand) stores only what
/// is new, answers the stored rows of the rest unchanged, and takes no seq for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_batch_keeps_its_rows_and_seqs_and_stores_only_what_is_new() -> TestResult {
    redelivered_batch(Storing::InTheCausesTransaction).await
}

/// The same through the one-round-trip store of the strategies that store after the cause
/// (`BEGIN`, `UPDATE`, `INSERT`, `COMMIT` sent together): its redelivery and missing-row cases
/// fall back to the general way and leave the connection outside any transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_batch_stored_in_one_round_trip_keeps_its_rows_and_seqs() -> TestResult {
    redelivered_batch(Storing::Committed).await
}

#[derive(Clone, Copy)]
enum Storing {
    InTheCausesTransaction,
    Committed,
}

/// Three recipients, the third without its stream row (a user made by hand), and an actor, on
/// one `local` instance: what the store tests number.
struct Recipients {
    app: TestApp,
    world: World,
    r1: Session,
    r2: Session,
    r3: Session,
    actor: Session,
}

impl Recipients {
    async fn new() -> Result<Self, sqlx::Error> {
        let world = World::new().await;
        let app = world.spawn(&[("SERVER_NOTIFY_DELIVERY", "local"), ("SERVER_AI_ENABLED", "false")]).await;
        let (r1, r2, r3, actor) =
            (app.signup("r1").await, app.signup("r2").await, app.signup("r3").await, app.signup("actor").await);
        sqlx::query("DELETE FROM notification_streams WHERE recipient_id = ?").bind(r3.id).execute(&world.db).await?;
        Ok(Self { app, world, r1, r2, r3, actor })
    }
}

/// A diary of `actor`'s, `cause_id`, notifying `recipient`.
fn diary(actor: &Session, recipient: &Session, cause_id: u64) -> NewNotification {
    NewNotification { recipient_id: recipient.id, kind: Kind::Diary, cause_id, actor_id: actor.id }
}

/// Each recipient's `last_seq`, in recipient order.
async fn last_seqs(world: &World, recipients: [&Session; 3]) -> sqlx::Result<Vec<(u64, u64)>> {
    sqlx::query_as(
        "SELECT recipient_id, last_seq FROM notification_streams WHERE recipient_id IN (?, ?, ?) ORDER BY recipient_id",
    )
    .bind(recipients[0].id)
    .bind(recipients[1].id)
    .bind(recipients[2].id)
    .fetch_all(&world.db)
    .await
}

async fn redelivered_batch(storing: Storing) -> TestResult {
    let Recipients { app: _app, world, r1, r2, r3, actor } = Recipients::new().await?;
    let n = |recipient: &Session, cause_id| diary(&actor, recipient, cause_id);
    let store = |batch: Vec<NewNotification>| {
        let db = world.db.clone();
        async move {
            let stored = match storing {
                Storing::InTheCausesTransaction => {
                    let mut tx = db.begin().await?;
                    let stored = store::insert_batch(&mut tx, &batch).await?;
                    tx.commit().await?;
                    stored
                }
                Storing::Committed => {
                    let mut conn = db.acquire().await?;
                    let stored = store::insert_batch_committed(&mut conn, &batch).await?;
                    let open: u64 = sqlx::query_scalar("SELECT @@in_transaction").fetch_one(&mut *conn).await?;
                    assert_eq!(open, 0, "the connection goes back to the pool outside any transaction");
                    stored
                }
            };
            Ok::<_, sqlx::Error>(
                stored.into_iter().map(|s| (s.recipient_id, s.seq, s.cause_id, s.id)).collect::<Vec<_>>(),
            )
        }
    };

    let first = store(vec![n(&r1, 1), n(&r2, 1), n(&r1, 2)]).await?;
    let seqs: Vec<(u64, u64, u64)> = first.iter().map(|&(r, seq, cause, _)| (r, seq, cause)).collect();
    assert_eq!(seqs, [(r1.id, 1, 1), (r1.id, 2, 2), (r2.id, 1, 1)]);

    let again = vec![n(&r1, 2), n(&r1, 3), n(&r1, 3), n(&r3, 1), n(&r2, 1)];
    let second = store(again.clone()).await?;
    let id_of = |r: u64, cause: u64| first.iter().find(|f| f.0 == r && f.2 == cause).map(|f| f.3);
    let seqs: Vec<(u64, u64, u64)> = second.iter().map(|&(r, seq, cause, _)| (r, seq, cause)).collect();
    assert_eq!(seqs, [(r1.id, 2, 2), (r1.id, 3, 3), (r2.id, 1, 1), (r3.id, 1, 1)], "{second:?}");
    assert_eq!(second[0].3, id_of(r1.id, 2).unwrap(), "a stored pair keeps its row");
    assert_eq!(second[2].3, id_of(r2.id, 1).unwrap(), "a stored pair keeps its row");

    let third = store(again).await?;
    assert_eq!(third, second, "storing the same batch again changes nothing");
    let last = last_seqs(&world, [&r1, &r2, &r3]).await?;
    assert_eq!(last, [(r1.id, 3), (r2.id, 1), (r3.id, 1)], "no seq taken for a stored pair");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE actor_id = ?")
        .bind(actor.id)
        .fetch_one(&world.db)
        .await?;
    assert_eq!(rows, 5, "one row per pair");
    Ok(())
}

/// The outbox writes its rows in the cause's transaction without seqs, and a relay pass numbers
/// them later, in a transaction of its own: until then a row is in no stream (not listed, not
/// replayed); the pass numbers each recipient on from its last seq in id order, creates a
/// missing stream row, commits, numbers nothing twice, and leaves the rows to be published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_are_numbered_by_a_relay_pass_not_by_the_cause() -> TestResult {
    let Recipients { app, world, r1, r2, r3, actor } = Recipients::new().await?;
    let n = |recipient: &Session, cause_id| diary(&actor, recipient, cause_id);
    let mut tx = world.db.begin().await?;
    store::insert_batch(&mut tx, &[n(&r1, 1)]).await?;
    tx.commit().await?;

    let mut tx = world.db.begin().await?;
    let batch = [n(&r1, 10), n(&r2, 10), n(&r1, 11), n(&r3, 10), n(&r1, 10)];
    assert_eq!(store::insert_unnumbered(&mut tx, &batch).await?, 4, "a pair repeated in the batch is one row");
    tx.commit().await?;
    let mut tx = world.db.begin().await?;
    let twice = store::insert_unnumbered(&mut tx, &[n(&r2, 10)]).await.expect_err("a stored pair is refused");
    assert!(twice.as_database_error().is_some_and(|e| e.is_unique_violation()), "{twice}");
    tx.rollback().await?;

    let (status, list) = app.call("GET", "/notifications", Some(&r1.token), None).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<u64> = list["items"].as_array().unwrap().iter().map(|i| i["cause_id"].as_u64().unwrap()).collect();
    assert_eq!(listed, [1], "an unnumbered row is not listed yet: {list}");
    assert_eq!(store::latest_seq(&world.db, r1.id).await?, 1);

    let mut conn = world.db.acquire().await?;
    assert_eq!(store::number_pending(&mut conn, 200).await?, 4);
    let open: u64 = sqlx::query_scalar("SELECT @@in_transaction").fetch_one(&mut *conn).await?;
    assert_eq!(open, 0, "the numbering is committed");
    assert_eq!(store::number_pending(&mut conn, 200).await?, 0, "nothing is numbered twice");
    drop(conn);

    let seqs: Vec<(u64, u64, u64)> = sqlx::query_as(
        "SELECT recipient_id, cause_id, seq FROM notifications WHERE actor_id = ? ORDER BY recipient_id, cause_id",
    )
    .bind(actor.id)
    .fetch_all(&world.db)
    .await?;
    assert_eq!(seqs, [(r1.id, 1, 1), (r1.id, 10, 2), (r1.id, 11, 3), (r2.id, 10, 1), (r3.id, 10, 1)]);
    let last = last_seqs(&world, [&r1, &r2, &r3]).await?;
    assert_eq!(last, [(r1.id, 3), (r2.id, 1), (r3.id, 1)], "r3's stream row is created");
    let replay = store::between(&world.db, r1.id, 1, u64::MAX, 10).await?;
    assert_eq!(replay.iter().map(|x| (x.seq, x.cause_id)).collect::<Vec<_>>(), [(2, 10), (3, 11)]);

    let mut tx = world.db.begin().await?;
    let claimed = store::claim_unrelayed(&mut tx, 200).await?;
    let mut causes: Vec<(u64, u64)> = claimed.iter().map(|x| (x.recipient_id, x.seq)).collect();
    causes.sort_unstable();
    assert_eq!(causes, [(r1.id, 2), (r1.id, 3), (r2.id, 1), (r3.id, 1)], "numbered, left for publishing");
    tx.rollback().await?;

    // A numbered row that is published, or stored by a strategy without a relay, has its seq.
    let refused = sqlx::query(
        "INSERT INTO notifications (recipient_id, kind, cause_id, actor_id, relayed_at) \
         VALUES (?, 'diary', 99, ?, CURRENT_TIMESTAMP(6))",
    )
    .bind(r1.id)
    .bind(actor.id)
    .execute(&world.db)
    .await
    .expect_err("a relayed row without a seq is refused");
    assert!(refused.to_string().contains("ck_notifications_numbered"), "{refused}");
    Ok(())
}

/// A transport may deliver a later notification first. The stream sends the earlier one
/// first, read from the database, and drops its late copy: the client sees 1, 2 in order.
/// `local` (the naive baseline) does not repair: it sends what it hears, never going back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_notification_that_overtakes_an_earlier_one_is_sent_after_it() -> TestResult {
    let world = World::new().await;
    for (strategy, expected) in [("redis-streams", vec![(1, 1), (2, 2)]), ("local", vec![(2, 2)])] {
        let app = world.spawn(&[("SERVER_NOTIFY_DELIVERY", strategy), ("SERVER_AI_ENABLED", "false")]).await;
        wait_ready(&app).await;
        let (reader, actor) = (app.signup("reader").await, app.signup("actor").await);
        let mut stream = Stream::open(&app, &reader, None).await;
        stream.ready().await;
        let mut stored = Vec::new();
        for cause_id in [1, 2] {
            let mut tx = world.db.begin().await?;
            let batch = [NewNotification { recipient_id: reader.id, kind: Kind::Diary, cause_id, actor_id: actor.id }];
            stored.extend(store::insert_batch(&mut tx, &batch).await?);
            tx.commit().await?;
        }

        app.hub.push(&stored[1]);
        app.hub.push(&stored[0]);
        let got = stream.drain(Duration::from_millis(700)).await;

        let got: Vec<(u64, u64)> =
            got.iter().map(|(id, d)| (id.parse().unwrap(), d["cause_id"].as_u64().unwrap())).collect();
        assert_eq!(got, expected, "{strategy}");
    }
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
