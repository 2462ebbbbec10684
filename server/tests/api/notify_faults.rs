//! Delivery under failure: a poison message ends in the DLQ and alerts a webhook; with the
//! broker stopped, `outbox` still accepts diaries and delivers their notifications later.

use std::time::Duration;

use axum::routing::post;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use loadtest::infra::{Infra, ProvisionOptions, ServiceKind};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::helpers::{TestApp, TestResult, World};
use crate::notifications::{Stream, wait_ready};

/// A local HTTP receiver standing in for Slack: it records every JSON body posted to it.
async fn webhook_receiver() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(body): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the webhook receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// A `rabbitmq` instance that posts its dead-letter alerts to a local receiver.
async fn rabbitmq_alerting(world: &World) -> (TestApp, mpsc::UnboundedReceiver<Value>) {
    let (hook, alerts) = webhook_receiver().await;
    let app = world
        .spawn(&[
            ("SERVER_NOTIFY_DELIVERY", "rabbitmq"),
            ("SERVER_ALERT_WEBHOOK_URL", &hook),
            ("SERVER_AI_ENABLED", "false"),
        ])
        .await;
    wait_ready(&app).await;
    (app, alerts)
}

/// Publishes `payload` as a store message, where the request path publishes, and waits for
/// the broker's confirm.
async fn publish_store_message(world: &World, payload: &[u8], properties: BasicProperties) -> TestResult {
    let conn = Connection::connect(world.infra.rabbitmq().url(), ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let exchange = format!("{}notify.direct", world.redis_prefix.replace(':', "."));
    ch.basic_publish(exchange.as_str().into(), "store".into(), BasicPublishOptions::default(), payload, properties)
        .await?
        .await?;
    conn.close(200, "done".into()).await?;
    Ok(())
}

/// The webhook gets an alert of a dead-lettered message whose text contains `shows`, and the
/// instance counts one dead-lettered message.
async fn expect_dead_lettered(app: &TestApp, alerts: &mut mpsc::UnboundedReceiver<Value>, shows: &str) -> TestResult {
    let alert = tokio::time::timeout(Duration::from_secs(15), alerts.recv()).await?.expect("an alert");
    let text = alert["text"].as_str().unwrap_or_default();
    assert!(text.contains("dead-lettered"), "{alert}");
    assert!(text.contains(shows), "the alert shows the message: {alert}");
    let metrics = app.client.get(app.url("/metrics")).send().await?.text().await?;
    assert!(
        metrics.lines().any(|l| l.starts_with("server_notify_dead_lettered_total") && l.ends_with(" 1")),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_ends_in_the_dlq_and_the_webhook_gets_an_alert() -> TestResult {
    let world = World::new().await;
    let (app, mut alerts) = rabbitmq_alerting(&world).await;
    // A message no consumer can read.
    publish_store_message(&world, b"{not json", BasicProperties::default()).await?;
    expect_dead_lettered(&app, &mut alerts, "{not json").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_message_the_database_refuses_is_dead_lettered_and_the_others_still_arrive() -> TestResult {
    let world = World::new().await;
    let (app, mut alerts) = rabbitmq_alerting(&world).await;
    let (author, friend) = (app.signup("author").await, app.signup("friend").await);
    app.befriend(&author, &friend).await;
    let mut stream = Stream::open(&app, &friend, None).await;

    // Readable, but for a recipient that does not exist (one deleted since the cause
    // committed): the database refuses it on every try.
    let refused =
        serde_json::json!([{ "recipient_id": 999_999_999u64, "kind": "diary", "cause_id": 1, "actor_id": author.id }]);
    publish_store_message(&world, refused.to_string().as_bytes(), BasicProperties::default().with_delivery_mode(2))
        .await?;
    // Diaries committed while it is tried, and after: each is delivered.
    let mut diaries = Vec::new();
    for _ in 0..3 {
        diaries.push(app.diary(&author, "friends").await);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for diary in &diaries {
        let (_, data) = stream.next(Duration::from_secs(15)).await.expect("every diary's notification arrives");
        assert_eq!(data["cause_id"], *diary);
    }

    expect_dead_lettered(&app, &mut alerts, "999999999").await?;
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notifications WHERE recipient_id = 999999999")
        .fetch_one(&world.db)
        .await?;
    assert_eq!(stored, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_accepts_diaries_while_the_broker_is_down_and_delivers_them_after() -> TestResult {
    let world = World::new().await;
    let rabbit = Infra::provision_one(ServiceKind::RabbitMq, &ProvisionOptions::from_env()?).await?;
    let env = [("SERVER_NOTIFY_DELIVERY", "outbox"), ("SERVER_AMQP_URL", rabbit.url()), ("SERVER_AI_ENABLED", "false")];
    let (one, two) = (world.spawn(&env).await, world.spawn(&env).await);
    wait_ready(&one).await;
    wait_ready(&two).await;
    let (author, friend) = (one.signup("author").await, one.signup("friend").await);
    one.befriend(&author, &friend).await;
    let mut stream = Stream::open(&two, &friend, None).await;

    rabbit.stop().await?;
    let diary = one.diary(&author, "friends").await;
    let (unrelayed,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM notifications WHERE cause_id = ? AND relayed_at IS NULL")
            .bind(diary)
            .fetch_one(&world.db)
            .await?;
    assert_eq!(unrelayed, 1, "the notification is committed with the diary, waiting for the broker");
    assert!(stream.next(Duration::from_millis(500)).await.is_none());
    rabbit.start().await?;

    let (_, data) = stream.next(Duration::from_secs(30)).await.expect("delivered once the broker is back");
    assert_eq!(data["cause_id"], diary);
    assert!(stream.drain(Duration::from_secs(1)).await.is_empty(), "delivered once");
    wait_ready(&one).await; // and the instance reports itself whole again
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_answer_is_skipped_and_quorum_queues_are_declared_as_asked() -> TestResult {
    let world = World::new().await;
    // A loopback port nobody listens on: the first "node" of the list refuses connections.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let urls = format!("amqp://guest:guest@127.0.0.1:{dead}/%2f,{}", world.infra.rabbitmq().url());
    let env = [
        ("SERVER_NOTIFY_DELIVERY", "rabbitmq"),
        ("SERVER_AMQP_URL", urls.as_str()),
        ("SERVER_AMQP_QUEUE_TYPE", "quorum"),
        ("SERVER_AI_ENABLED", "false"),
    ];
    let app = world.spawn(&env).await;
    wait_ready(&app).await;
    let (author, friend) = (app.signup("author").await, app.signup("friend").await);
    app.befriend(&author, &friend).await;
    let mut stream = Stream::open(&app, &friend, None).await;
    let diary = app.diary(&author, "friends").await;
    let (_, data) = stream.next(Duration::from_secs(15)).await.expect("delivered through the second node");
    assert_eq!(data["cause_id"], diary);

    // The store queue is a quorum queue: declaring it as a classic one is refused as
    // inequivalent (PRECONDITION_FAILED), which a classic queue of the same name would accept.
    let conn = Connection::connect(world.infra.rabbitmq().url(), ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let prefix = format!("{}notify", world.redis_prefix.replace(':', "."));
    // The arguments a classic store queue is declared with, so that only the type differs.
    let mut args = lapin::types::FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), lapin::types::AMQPValue::LongString(format!("{prefix}.dlx").into()));
    let classic = ch
        .queue_declare(
            format!("{prefix}.store").as_str().into(),
            lapin::options::QueueDeclareOptions { durable: true, ..Default::default() },
            args,
        )
        .await;
    let err = classic.expect_err("a classic declaration of a quorum queue is refused").to_string();
    assert!(err.contains("PRECONDITION_FAILED") || err.contains("inequivalent"), "{err}");
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

/// The pool that stores notification batches bounds its sessions: a stream row locked by a
/// frozen peer is given up in seconds (not MariaDB's 50), and a transaction left idle is ended
/// by the server; the main pool keeps the defaults.
#[tokio::test]
async fn a_store_session_gives_up_a_locked_row_in_seconds_and_an_idle_transaction_is_ended() -> TestResult {
    use sqlx::Connection;
    let world = World::new().await;
    let main = server::db::connect_and_migrate(&world.database_url, 2).await?;
    let store = server::db::connect_store_pool(&world.database_url, 2).await?;
    let bounds = "SELECT CAST(@@session.idle_transaction_timeout AS SIGNED), \
                  CAST(@@session.innodb_lock_wait_timeout AS SIGNED)";
    let defaults: (i64, i64) = sqlx::query_as(bounds).fetch_one(&main).await?;
    assert_eq!(defaults, (0, 50), "the main pool keeps MariaDB's defaults");
    let bounded: (i64, i64) = sqlx::query_as(bounds).fetch_one(&store).await?;
    let expected = (i64::from(server::db::STORE_IDLE_TIMEOUT_S), i64::from(server::db::STORE_LOCK_WAIT_S));
    assert_eq!(bounded, expected, "every store connection is bounded from its first use");
    // Strict even on a server whose own sql_mode is not: a NULL seq must fail the one-round-trip
    // store's insert, not be stored as 0.
    let modes: String = sqlx::query_scalar("SELECT @@session.sql_mode").fetch_one(&store).await?;
    assert!(modes.split(',').any(|m| m == "STRICT_ALL_TABLES"), "{modes}");

    // A peer holds a row (as a frozen instance held its recipients' stream rows).
    let id =
        sqlx::query("INSERT INTO users (email, display_name, password_hash) VALUES ('held@example.test', 'h', 'x')")
            .execute(&main)
            .await?
            .last_insert_id();
    let mut holder = main.begin().await?;
    sqlx::query("SELECT id FROM users WHERE id = ? FOR UPDATE").bind(id).fetch_one(&mut *holder).await?;
    let mut conn = store.acquire().await?;
    let mut waiter = conn.begin().await?;
    let started = std::time::Instant::now();
    let refused = sqlx::query("SELECT id FROM users WHERE id = ? FOR UPDATE").bind(id).fetch_one(&mut *waiter).await;
    let waited = started.elapsed();
    let error = refused.expect_err("the lock is held");
    let number = error.as_database_error().and_then(|e| e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>());
    assert_eq!(number.map(|e| e.number()), Some(1205), "lock wait timeout exceeded: {error}");
    assert!(waited < Duration::from_secs(20), "gave up after {waited:?}, not MariaDB's default 50 s");
    drop(waiter);
    holder.rollback().await?;
    drop(conn);

    // A transaction left idle past the bound is ended by the server: its next statement fails.
    let mut conn = store.acquire().await?;
    let mut idle = conn.begin().await?;
    sqlx::query("SELECT id FROM users WHERE id = ? FOR UPDATE").bind(id).fetch_one(&mut *idle).await?;
    tokio::time::sleep(Duration::from_secs(u64::from(server::db::STORE_IDLE_TIMEOUT_S) + 2)).await;
    let ended = sqlx::query("SELECT 1").execute(&mut *idle).await;
    assert!(ended.is_err(), "the server ended the idle transaction and its connection");
    // And its lock is gone: the main pool takes the row at once.
    let mut next = main.begin().await?;
    sqlx::query("SELECT id FROM users WHERE id = ? FOR UPDATE").bind(id).fetch_one(&mut *next).await?;
    next.rollback().await?;
    Ok(())
}
