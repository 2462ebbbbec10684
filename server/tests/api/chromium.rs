//! The web client in a real browser: Debian's Chromium, headless, driven by playwright-core
//! (`interop/browser-check.mjs`). Two real server processes behind a TCP proxy that stands in
//! for a load balancer, RabbitMQ between them, a Redis of this test's own. The page signs in
//! with the session cookie, receives notifications caused on the other instance and chats
//! across instances, through a dropped connection, a killed instance and a Redis restart, with
//! nothing lost and nothing shown twice; a page of a listed origin signs in and streams, an
//! unlisted one is refused. Screenshots of the final state go to
//! `target/tmp/browser/` (printed at the end).
//!
//! The script asks for each fault over stdio (`STEP ...`), so the test knows exactly when the
//! browser is where.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loadtest::infra::{Infra, ProvisionOptions, ServiceKind, unique_name};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::AbortHandle;

use crate::helpers::{TestResult, World};

const CHROMIUM: &str = "/usr/bin/chromium";
const PASSWORD: &str = "correct horse";
const SECRET: &str = "the ticket secret of the browser test's two instances";

fn interop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// A port free now (the instance binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port()
}

/// One real server process.
struct Instance {
    child: Child,
    base: String,
    addr: SocketAddr,
}

async fn start(env: &[(String, String)], name: &str, out: &Path) -> Instance {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    let log = std::fs::File::create(out.join(format!("{name}.log"))).expect("a log file");
    let child = Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("SERVER_LISTEN_ADDR", addr.to_string())
        .env("SERVER_INSTANCE_ID", name)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the server binary starts");
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Instance { child, base, addr };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("instance {name} was not ready within 60 s: see {}", out.join(format!("{name}.log")).display());
}

/// A TCP proxy in front of the instances, as a load balancer is: the page's origin. It sends
/// new connections to the current target and can cut every open one.
#[derive(Clone)]
struct Proxy {
    target: Arc<Mutex<SocketAddr>>,
    open: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> (Proxy, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let origin = format!("http://{}", listener.local_addr().expect("address"));
        let proxy = Proxy { target: Arc::new(Mutex::new(target)), open: Arc::default() };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let target = *p.target.lock().expect("lock");
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                p.open.lock().expect("lock").push(task.abort_handle());
            }
        });
        (proxy, origin)
    }

    /// Cuts every connection open now: the browser sees its streams end.
    fn drop_all(&self) {
        for task in self.open.lock().expect("lock").drain(..) {
            task.abort();
        }
    }

    fn send_to(&self, target: SocketAddr) {
        *self.target.lock().expect("lock") = target;
    }
}

/// Serves `interop/cross-origin.html` on its own origin.
async fn page_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a page origin");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    let html = std::fs::read_to_string(interop().join("cross-origin.html")).expect("interop/cross-origin.html");
    let app = axum::Router::new().route(
        "/cross-origin.html",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

/// A call as a user of the API; asserts a success status.
async fn call(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    let mut req = client.request(method.parse().expect("a method"), format!("{base}{path}")).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let response = req.send().await.expect("sent");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Signs up and logs in; returns (id, token).
async fn user(client: &reqwest::Client, base: &str, email: &str, name: &str) -> (u64, String) {
    let signup = json!({ "email": email, "password": PASSWORD, "display_name": name });
    call(client, base, "POST", "/auth/signup", None, signup).await;
    let login = call(client, base, "POST", "/auth/login", None, json!({ "email": email, "password": PASSWORD })).await;
    (login["user"]["id"].as_u64().expect("an id"), login["token"].as_str().expect("a token").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_in_chromium_loses_nothing_and_shows_nothing_twice_through_faults() -> TestResult {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `bash scripts/setup-interop.sh` (scripts/setup.sh does), which installs Debian's chromium"
    );
    let node_modules = interop().join("node_modules/playwright-core");
    assert!(node_modules.exists(), "{} is missing: run `bash scripts/setup-interop.sh`", node_modules.display());
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out)?;

    let world = World::new().await;
    let redis = Infra::provision_one(ServiceKind::Redis, &ProvisionOptions::from_env()?).await?;
    let (listed, unlisted) = (page_origin().await, page_origin().await);
    let env: Vec<(String, String)> = [
        ("SERVER_DATABASE_URL", world.database_url.as_str()),
        ("SERVER_REDIS_URL", redis.url()),
        ("SERVER_AMQP_URL", world.infra.urls().amqp.as_str()),
        ("SERVER_NAMESPACE", world.redis_prefix.as_str()),
        ("SERVER_NOTIFY_DELIVERY", "rabbitmq"),
        ("SERVER_CHAT_RELAY", "redis-recovering"),
        ("SERVER_TICKET_SECRET", SECRET),
        ("SERVER_CORS_ORIGINS", listed.as_str()),
        ("SERVER_AI_ENABLED", "false"),
        ("SERVER_EMBED_WORKERS", "0"),
        ("SERVER_ARGON2_MEMORY_KIB", "256"),
        ("SERVER_ARGON2_ITERATIONS", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut a = start(&env, "browser-a", &out).await;
    let b = start(&env, "browser-b", &out).await;
    let (proxy, web) = Proxy::start(a.addr).await;

    // The reader uses the page; the writer writes on the other instance and chats from there.
    let client = reqwest::Client::new();
    let reader_email = format!("{}@example.test", unique_name("reader"));
    let (reader_id, reader_token) = user(&client, &b.base, &reader_email, "reader").await;
    let (writer_id, writer_token) =
        user(&client, &b.base, &format!("{}@example.test", unique_name("writer")), "writer").await;
    let request =
        call(&client, &b.base, "POST", "/friends/requests", Some(&writer_token), json!({ "user_id": reader_id })).await;
    let accept = format!("/friends/requests/{}/accept", request["id"]);
    call(&client, &b.base, "POST", &accept, Some(&reader_token), json!({})).await;
    let item = json!({ "title": "Tent", "category": "camping", "price_per_day": 15000 });
    let item = call(&client, &b.base, "POST", "/rentals", Some(&writer_token), item).await["id"].clone();
    let room =
        call(&client, &b.base, "POST", "/chat/rooms", Some(&reader_token), json!({ "item_id": item })).await["id"]
            .clone();
    assert!(writer_id != reader_id && room.is_u64(), "{room}");

    let config = json!({
        "chromium": CHROMIUM,
        "web": web,
        "api": b.base,
        "reader_email": reader_email,
        "password": PASSWORD,
        "room": room,
        "writer_token": writer_token,
        "writer_ws": format!("{}/ws/chat", b.base.replacen("http://", "ws://", 1)),
        "listed_origin": listed,
        "unlisted_origin": unlisted,
        "out_dir": out,
    });
    let mut script = Command::new("node")
        .arg(interop().join("browser-check.mjs"))
        .arg(config.to_string())
        .current_dir(interop())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = script.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(script.stdout.take().expect("stdout")).lines();
    let mut stderr = script.stderr.take().expect("stderr");
    let log = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    let mut result = None;
    let mut caused = 0;
    let run = async {
        while let Some(line) = stdout.next_line().await? {
            if let Some(json) = line.strip_prefix("RESULT ") {
                result = Some(serde_json::from_str::<Value>(json)?);
                continue;
            }
            let Some(step) = line.strip_prefix("STEP ") else { continue };
            let answer = match step.split_whitespace().collect::<Vec<_>>()[..] {
                ["cause", n] => {
                    for _ in 0..n.parse::<u32>()? {
                        caused += 1;
                        let diary = json!({ "title": format!("Day {caused}"), "content": "Sun.", "emotion": "joy" });
                        call(&client, &b.base, "POST", "/diaries", Some(&writer_token), diary).await;
                    }
                    "OK".to_string()
                }
                ["drop"] => {
                    proxy.drop_all();
                    "OK".to_string()
                }
                ["kill"] => {
                    a.child.start_kill()?;
                    a.child.wait().await?;
                    proxy.send_to(b.addr);
                    proxy.drop_all();
                    "OK".to_string()
                }
                ["redis-stop"] => redis.stop().await.map_or_else(|e| format!("ERR {e}"), |()| "OK".into()),
                ["redis-start"] => redis.start().await.map_or_else(|e| format!("ERR {e}"), |()| "OK".into()),
                _ => format!("ERR unknown step `{step}`"),
            };
            stdin.write_all(format!("{answer}\n").as_bytes()).await?;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(script.wait().await?)
    };
    let status = tokio::time::timeout(Duration::from_secs(300), run).await;
    let log = log.await.unwrap_or_default();
    std::fs::write(out.join("browser-check.log"), &log)?;
    let status = status.map_err(|_| format!("the browser check took over 300 s:\n{log}"))??;
    assert!(status.success(), "the browser check failed ({status}):\n{log}");

    let result = result.ok_or_else(|| format!("no RESULT line:\n{log}"))?;
    let page = &result["web_client"];
    assert_eq!((page["shown"].as_u64(), page["seqs"].as_u64()), (Some(40), Some(40)), "{result}");
    assert_eq!(page["duplicates"], 0, "{result}");
    assert!(page["opens"].as_u64() >= Some(4), "a drop, a kill and a Redis restart each reopen: {result}");
    assert!(page["unavailable"].as_u64() >= Some(1), "Redis down answered `unavailable`: {result}");
    assert_eq!(result["cross_origin_listed"]["stream"], "ready", "{result}");
    assert!(result["cross_origin_unlisted"]["login"].as_str().is_some_and(|l| l.starts_with("refused")), "{result}");
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notifications WHERE recipient_id = ?")
        .bind(reader_id)
        .fetch_one(&world.db)
        .await?;
    assert_eq!(stored, 40, "the database holds the 40 the page shows");
    for shot in ["web-client.png", "cross-origin-listed.png", "cross-origin-unlisted.png"] {
        let size = std::fs::metadata(out.join(shot))?.len();
        assert!(size > 1_000, "{shot}: {size} bytes");
    }
    eprintln!("screenshots and logs: {}", out.display());
    Ok(())
}
