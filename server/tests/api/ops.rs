use reqwest::StatusCode;

use crate::helpers::{TestResult, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_checks_database_redis_and_broker() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;

    // The delivery transport connects in the background: ready within seconds, not at once.
    crate::notifications::wait_ready(&app).await;
    let (status, body) = app.call("GET", "/readyz", None, None).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ready"], true);
    for check in ["database", "redis", "broker", "delivery", "chat"] {
        assert_eq!(body["checks"][check], "ok", "{body}");
    }
    assert_eq!(body["chat_relay"], "redis-recovering", "the default relay: {body}");
    assert_eq!(body["instance"], app.instance);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_which_dependency_is_down() -> TestResult {
    let world = World::new().await;
    // A broker URL nothing answers on: the instance still serves, and says what is missing.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let app = world.spawn(&[("SERVER_AMQP_URL", &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))]).await;

    let (status, body) = app.call("GET", "/readyz", None, None).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["database"], "ok");
    assert!(body["checks"]["broker"].as_str().unwrap().starts_with("down"), "{body}");
    assert_eq!(app.call("GET", "/healthz", None, None).await.0, StatusCode::OK);
    Ok(())
}

/// A readiness probe every few seconds must not open a broker connection each time, and a
/// strategy that does not use the broker is ready without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_opens_no_connection_of_its_own_and_needs_no_broker_it_does_not_use() -> TestResult {
    let world = World::new().await;
    // A "broker" that counts the connections made to it and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let _broker = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let app = world.spawn(&[("SERVER_AMQP_URL", &url), ("SERVER_NOTIFY_DELIVERY", "redis-pubsub")]).await;
    crate::notifications::wait_ready(&app).await;

    for _ in 0..5 {
        let (status, body) = app.call("GET", "/readyz", None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["checks"]["broker"], "not used by redis-pubsub", "{body}");
    }

    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0, "readyz connected to the broker");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_per_route_pattern() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let a = app.signup("a").await;
    app.call("GET", "/diaries/12345", Some(&a.token), None).await;

    let text = app.client.get(app.url("/metrics")).send().await?.text().await?;

    assert!(text.contains(r#"route="/diaries/{id}""#), "{text}");
    assert!(text.contains(r#"status="404""#), "{text}");
    assert!(!text.contains("/diaries/12345"), "raw paths must not become labels");
    assert!(text.contains("server_db_pool_connections"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_starting_at_once_on_an_empty_database_migrate_it_once() -> TestResult {
    let world = World::new().await;

    let (a, b, c) = tokio::join!(world.spawn(&[]), world.spawn(&[]), world.spawn(&[]));

    let applied: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1").fetch_one(&world.db).await?;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))?.count() as i64;
    assert_eq!(applied, files);
    // Each becomes ready (its delivery transport connects in the background, within seconds).
    for app in [&a, &b, &c] {
        crate::notifications::wait_ready(app).await;
    }
    Ok(())
}
