//! Provisioning against real containers: round trips with real clients, faults, and the
//! errors a user sees when something is missing. One test binary, containers shared
//! through `infra::shared()`; tests that fault a service start their own.

use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use loadtest::infra::{self, ImageSetChoice, ImageSpec, Infra, InfraError, ProvisionOptions, ServiceKind, unique_name};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn init() {
    loadtest::tls::install_crypto_provider();
}

async fn amqp_connect(url: &str) -> lapin::Result<Connection> {
    Connection::connect(url, ConnectionProperties::default()).await
}

/// Publishes `body` to `queue` with a publisher confirm, so "sent" means "the broker has it".
async fn publish_confirmed(channel: &lapin::Channel, queue: &str, body: &[u8], persistent: bool) -> TestResult {
    let props = if persistent { BasicProperties::default().with_delivery_mode(2) } else { BasicProperties::default() };
    let confirm =
        channel.basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, props).await?.await?;
    assert!(confirm.is_ack(), "broker did not ack the publish: {confirm:?}");
    Ok(())
}

async fn get_one(channel: &lapin::Channel, queue: &str) -> Result<Option<Vec<u8>>, lapin::Error> {
    let message = channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await?;
    Ok(message.map(|m| m.delivery.data.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_round_trip_with_lapin() -> TestResult {
    init();
    let infra = infra::shared().await?;
    let conn = amqp_connect(infra.rabbitmq().url()).await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let queue = unique_name("roundtrip");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;

    publish_confirmed(&channel, &queue, b"hello rabbit", false).await?;
    let got = get_one(&channel, &queue).await?;

    assert_eq!(got.as_deref(), Some(&b"hello rabbit"[..]));
    conn.close(200, "done".into()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_round_trip() -> TestResult {
    init();
    let infra = infra::shared().await?;
    let client = redis::Client::open(infra.redis().url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let key = unique_name("roundtrip");

    let () = redis::cmd("SET").arg(&key).arg("hello redis").arg("EX").arg(60).query_async(&mut conn).await?;
    let got: String = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;

    assert_eq!(got, "hello redis");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_round_trip_in_a_fresh_database() -> TestResult {
    init();
    let infra = infra::shared().await?;
    let url = infra.fresh_database("roundtrip").await?;
    let pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(2).connect(&url).await?;

    sqlx::query("CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT NOT NULL)").execute(&pool).await?;
    sqlx::query("INSERT INTO t VALUES (1, ?)").bind("hello 마리아").execute(&pool).await?;
    let body: String = sqlx::query_scalar("SELECT body FROM t WHERE id = 1").fetch_one(&pool).await?;
    let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(&pool).await?;

    assert_eq!(body, "hello 마리아");
    assert!(version.starts_with("11.8"), "expected MariaDB 11.8, got {version}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_has_the_vector_type_and_cosine_distance() -> TestResult {
    init();
    let infra = infra::shared().await?;
    let url = infra.fresh_database("vector").await?;
    let pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(1).connect(&url).await?;

    sqlx::query("CREATE TABLE v (id INT PRIMARY KEY, e VECTOR(3) NOT NULL, VECTOR INDEX (e)) ENGINE=InnoDB")
        .execute(&pool)
        .await?;
    sqlx::query("INSERT INTO v VALUES (1, VEC_FromText('[1,0,0]')), (2, VEC_FromText('[0,1,0]'))")
        .execute(&pool)
        .await?;
    let nearest: i32 =
        sqlx::query_scalar("SELECT id FROM v ORDER BY VEC_DISTANCE_COSINE(e, VEC_FromText('[0.9,0.1,0]')) LIMIT 1")
            .fetch_one(&pool)
            .await?;

    assert_eq!(nearest, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_restart_keeps_its_port_and_a_client_reconnects_to_the_same_url() -> TestResult {
    init();
    let rabbit = Infra::provision_one(ServiceKind::RabbitMq, &ProvisionOptions::from_env()?).await?;
    let url = rabbit.url().to_string();
    let conn = amqp_connect(&url).await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let queue = unique_name("durable");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    publish_confirmed(&channel, &queue, b"kept across a restart", true).await?;

    rabbit.restart().await?;

    // The old connection saw the broker go away...
    let old = tokio::time::timeout(Duration::from_secs(10), get_one(&channel, &queue)).await;
    assert!(!matches!(old, Ok(Ok(_))), "a channel of the stopped broker still answered");
    // ...and a new client on the very same URL gets in and finds the persistent message.
    let started = Instant::now();
    let conn = loop {
        match amqp_connect(&url).await {
            Ok(conn) => break conn,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                eprintln!("reconnect attempt failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let channel = conn.create_channel().await?;
    let got = get_one(&channel, &queue).await?;

    assert_eq!(got.as_deref(), Some(&b"kept across a restart"[..]));
    assert_eq!(rabbit.url(), url);
    conn.close(200, "done".into()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_redis_gives_a_bounded_timeout_instead_of_a_hang() -> TestResult {
    init();
    let redis_service = Infra::provision_one(ServiceKind::Redis, &ProvisionOptions::from_env()?).await?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_connection_timeout(Some(Duration::from_secs(1)));
    let client = redis::Client::open(redis_service.url())?;
    let mut conn = redis::aio::ConnectionManager::new_with_config(client, config).await?;
    let ping =
        |mut c: redis::aio::ConnectionManager| async move { redis::cmd("PING").query_async::<String>(&mut c).await };
    assert_eq!(ping(conn.clone()).await?, "PONG");

    redis_service.pause().await?;
    // The guard is far above the 500 ms the client is configured with: it only catches a hang.
    let paused = tokio::time::timeout(Duration::from_secs(10), ping(conn.clone())).await;
    redis_service.unpause().await?;

    let err = paused.expect("PING hung on a paused Redis instead of timing out").expect_err("a paused Redis answered");
    assert!(err.is_timeout(), "expected a timeout, got: {err}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match ping(conn.clone()).await {
            Ok(pong) => {
                assert_eq!(pong, "PONG");
                break;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("after unpause: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let _ = &mut conn;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_local_image_names_the_image_and_the_command_that_builds_it() -> TestResult {
    init();
    let mut opts = ProvisionOptions { images: ImageSetChoice::Debian, ..ProvisionOptions::from_env()? };
    let missing = ImageSpec::parse_override("loadtest-debian/redis:does-not-exist", true).expect("valid reference");
    opts.overrides.insert(ServiceKind::Redis, missing);

    let err = Infra::provision_one(ServiceKind::Redis, &opts).await.expect_err("a missing image was accepted");

    assert!(matches!(err, InfraError::ImageMissing { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("loadtest-debian/redis:does-not-exist"), "{message}");
    assert!(message.contains("scripts/build-images.sh"), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_names_the_image_and_the_way_out() -> TestResult {
    init();
    let mut opts = ProvisionOptions { images: ImageSetChoice::Official, ..ProvisionOptions::from_env()? };
    let unpullable = ImageSpec::parse_override("loadtest-no-such-org/no-such-image:0", false).expect("valid reference");
    opts.overrides.insert(ServiceKind::Redis, unpullable);

    let err = Infra::provision_one(ServiceKind::Redis, &opts).await.expect_err("an unpullable image was accepted");

    assert!(matches!(err, InfraError::ImageUnavailable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("loadtest-no-such-org/no-such-image:0"), "{message}");
    assert!(message.contains("scripts/build-images.sh"), "{message}");
    Ok(())
}

#[tokio::test]
async fn no_docker_engine_gives_the_endpoint_and_the_bring_up_script() {
    init();
    let err = infra::docker::connect_at("unix:///nonexistent/docker.sock").await.expect_err("no engine there");

    let message = err.to_string();
    assert!(message.contains("no Docker engine answers at unix:///nonexistent/docker.sock"), "{message}");
    assert!(message.contains("scripts/docker-up.sh"), "{message}");
}

#[tokio::test]
async fn an_unreachable_external_url_is_named_with_its_variable() {
    init();
    // A port nothing listens on: bound, read, released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    let mut opts = ProvisionOptions { images: ImageSetChoice::External, ..Default::default() };
    opts.external_urls.insert(ServiceKind::RabbitMq, format!("amqp://guest:guest@127.0.0.1:{port}/%2f"));
    opts.external_urls.insert(ServiceKind::Redis, format!("redis://127.0.0.1:{port}/"));
    opts.external_urls.insert(ServiceKind::MariaDb, format!("mysql://root:secret@127.0.0.1:{port}"));

    let err = Infra::provision(&opts).await.expect_err("unreachable services were accepted");

    let message = err.to_string();
    assert!(matches!(err, InfraError::Unreachable { .. }), "{err:?}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("LOADTEST_AMQP_URL"), "{message}");
    assert!(!message.contains("secret"), "a password leaked into: {message}");
}

#[tokio::test]
async fn the_external_set_without_urls_names_the_missing_variable() {
    init();
    let opts = ProvisionOptions { images: ImageSetChoice::External, ..Default::default() };

    let err = Infra::provision(&opts).await.expect_err("no URLs were accepted");

    assert!(err.to_string().contains("LOADTEST_AMQP_URL"), "{err}");
}
