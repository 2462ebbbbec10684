//! Test harness for the API: each test gets its own database and Redis key prefix on the
//! shared containers, and its own server(s) on 127.0.0.1:0.

use std::sync::Arc;

use loadtest::infra::{self, Infra, unique_name};
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{App, Settings};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// One world: a database and a Redis prefix, shared by the instances started in it.
pub struct World {
    pub infra: Arc<Infra>,
    pub database_url: String,
    pub redis_prefix: String,
    pub db: sqlx::MySqlPool,
}

pub struct TestApp {
    pub base: String,
    pub instance: String,
    pub client: reqwest::Client,
    /// The instance's SSE streams, for tests that push a notification as a transport would.
    pub hub: server::notify::hub::Hub,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl World {
    pub async fn new() -> World {
        server::install_crypto_provider();
        let infra = infra::shared().await.expect("infrastructure for tests");
        let database_url = infra.fresh_database("api").await.expect("a fresh database");
        let db = sqlx::mysql::MySqlPoolOptions::new().max_connections(4).connect(&database_url).await.expect("db pool");
        World { infra, database_url, redis_prefix: format!("{}:", unique_name("t")), db }
    }

    pub fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        let urls = self.infra.urls();
        let mut env: Vec<(String, String)> = vec![
            ("SERVER_LISTEN_ADDR".into(), "127.0.0.1:0".into()),
            ("SERVER_DATABASE_URL".into(), self.database_url.clone()),
            ("SERVER_REDIS_URL".into(), urls.redis),
            ("SERVER_AMQP_URL".into(), urls.amqp),
            ("SERVER_NAMESPACE".into(), self.redis_prefix.clone()),
            // Cheap hashes: tests sign up many users on 2 cores.
            ("SERVER_ARGON2_MEMORY_KIB".into(), "256".into()),
            ("SERVER_ARGON2_ITERATIONS".into(), "1".into()),
            ("SERVER_AI_WORKER_POLL_MS".into(), "50".into()),
            ("SERVER_DB_MAX_CONNECTIONS".into(), "10".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Settings::from_sources(None, env).expect("valid test settings")
    }

    /// Runs the real `server` binary with this world's settings and `args` (an operator's
    /// command such as `grant-admin`); returns its exit code, stdout and stderr.
    pub async fn server_command(&self, args: &[&str], extra: &[(&str, &str)]) -> (i32, String, String) {
        let urls = self.infra.urls();
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .args(args)
            .env_clear()
            .env("SERVER_DATABASE_URL", &self.database_url)
            .env("SERVER_REDIS_URL", urls.redis)
            .env("SERVER_AMQP_URL", urls.amqp)
            .env("SERVER_NAMESPACE", &self.redis_prefix)
            .envs(extra.iter().copied())
            .output()
            .await
            .expect("the server binary runs");
        let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
        (output.status.code().unwrap_or(-1), text(output.stdout), text(output.stderr))
    }

    /// Starts one server instance in this world.
    pub async fn spawn(&self, extra: &[(&str, &str)]) -> TestApp {
        let app = App::build(self.settings(extra)).await.expect("the app builds");
        let base = format!("http://{}", app.local_addr());
        let instance = app.instance_id().to_string();
        let hub = app.state().hub.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp { base, instance, client: reqwest::Client::new(), hub, _shutdown: tx }
    }
}

/// A signed-up, logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: u64,
    pub token: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; returns status and JSON body (`Value::Null` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, text) = self.send(method, path, token, body).await;
        let json =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, json)
    }

    /// Sends a request; returns status and body text, empty for an event stream (it never
    /// ends: its status is the answer).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the request is sent");
        let status = resp.status();
        let stream = resp.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let text = if stream { String::new() } else { resp.text().await.unwrap_or_default() };
        (status, text)
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path)).header("content-type", content_type);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.body(body.to_string()).send().await.expect("the request is sent");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Signs up a new account (password `correct horse`); returns its e-mail.
    pub async fn account(&self, name: &str) -> String {
        let email = format!("{}@example.test", unique_name(name));
        let (status, body) = self
            .call(
                "POST",
                "/auth/signup",
                None,
                Some(json!({ "email": email, "password": "correct horse", "display_name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "signup: {body}");
        email
    }

    pub async fn signup(&self, name: &str) -> Session {
        let email = self.account(name).await;
        let (status, body) =
            self.call("POST", "/auth/login", None, Some(json!({ "email": email, "password": "correct horse" }))).await;
        assert_eq!(status, StatusCode::OK, "login: {body}");
        Session { id: body["user"]["id"].as_u64().unwrap(), token: body["token"].as_str().unwrap().to_string() }
    }

    pub async fn befriend(&self, a: &Session, b: &Session) {
        let (status, body) =
            self.call("POST", "/friends/requests", Some(&a.token), Some(json!({ "user_id": b.id }))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_u64().unwrap();
        let (status, body) = self.call("POST", &format!("/friends/requests/{id}/accept"), Some(&b.token), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    pub async fn diary(&self, author: &Session, visibility: &str) -> u64 {
        let (status, body) = self
            .call(
                "POST",
                "/diaries",
                Some(&author.token),
                Some(json!({ "title": "A day", "content": "It rained all day.", "emotion": "calm", "visibility": visibility })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_u64().unwrap()
    }
}

/// Asserts a JSON error body with the given status and code.
pub fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "body: {body}");
    assert_eq!(body["error"], want_code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "no message in {body}");
}
