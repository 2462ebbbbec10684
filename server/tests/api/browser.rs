//! Browsers as clients, at the HTTP level: the session cookie and its CSRF token, stream
//! tickets, CORS, a stream that tells a browser to come back instead of failing it, and the web
//! client's files. The same page in a real Chromium: `server/tests/browser.rs`.

use std::time::Duration;

use futures::StreamExt;
use loadtest::infra::{Infra, ProvisionOptions, ServiceKind};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestResult, World, assert_error};
use crate::notifications::wait_ready;

const SECRET: &str = "a ticket secret every instance of this test shares";

/// A browser's sign-in: the `Set-Cookie` headers and the body.
async fn cookie_login(app: &TestApp, email: &str) -> (Vec<String>, Value) {
    let response = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({ "email": email, "password": "correct horse", "cookie": true }))
        .send()
        .await
        .expect("login is sent");
    assert_eq!(response.status(), StatusCode::OK);
    let cookies = set_cookies(response.headers());
    (cookies, response.json().await.expect("a JSON body"))
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

/// `name=value` of the `Set-Cookie` for `name`.
fn pair(cookies: &[String], name: &str) -> String {
    cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
}

/// A request as a browser sends it: the cookie, and `X-CSRF-Token` when given.
async fn with_cookie(
    app: &TestApp,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, Vec<String>) {
    let mut req = app.client.request(method.parse().unwrap(), app.url(path)).header("cookie", cookie);
    if let Some(token) = csrf {
        req = req.header("x-csrf-token", token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let response = req.send().await.expect("sent");
    let (status, cookies) = (response.status(), set_cookies(response.headers()));
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), cookies)
}

fn diary() -> Value {
    json!({ "title": "A day", "content": "Sun.", "emotion": "joy" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_session_works_everywhere_a_token_does_and_changes_need_the_csrf_token() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let email = app.account("browser").await;
    let (cookies, body) = cookie_login(&app, &email).await;

    // The token stays in an HttpOnly cookie, out of the page's reach; the CSRF token is readable.
    assert!(body.get("token").is_none(), "a cookie login hands no token to the page: {body}");
    let csrf = body["csrf_token"].as_str().expect("a csrf_token").to_string();
    let session_cookie = cookies.iter().find(|c| c.starts_with("session=")).expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=86400"] {
        assert!(session_cookie.contains(flag), "{flag} missing: {session_cookie}");
    }
    assert!(!session_cookie.contains("Secure"), "plain HTTP here: Secure only with SERVER_COOKIE_SECURE");
    assert_eq!(pair(&cookies, "csrf"), format!("csrf={csrf}"));
    let cookie = format!("{}; {}", pair(&cookies, "session"), pair(&cookies, "csrf"));

    let (status, me, _) = with_cookie(&app, "GET", "/me", &cookie, None, None).await;
    assert_eq!((status, me["email"].as_str()), (StatusCode::OK, Some(email.as_str())), "{me}");

    // A change without the CSRF token, or with another session's, is refused and stores nothing.
    let (status, body, _) = with_cookie(&app, "POST", "/diaries", &cookie, None, Some(diary())).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert!(body["message"].as_str().unwrap().contains("X-CSRF-Token"), "{body}");
    let (_, other) = cookie_login(&app, &app.account("other").await).await;
    let (status, body, _) =
        with_cookie(&app, "POST", "/diaries", &cookie, other["csrf_token"].as_str(), Some(diary())).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert!(body["message"].as_str().unwrap().contains("does not match"), "{body}");
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM diaries").fetch_one(&world.db).await?;
    assert_eq!(stored, 0, "a refused request stored nothing");

    let (status, created, _) = with_cookie(&app, "POST", "/diaries", &cookie, Some(&csrf), Some(diary())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // A bearer token needs no CSRF token: no browser attaches one by itself.
    let (status, login) =
        app.call("POST", "/auth/login", None, Some(json!({ "email": email, "password": "correct horse" }))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(login["csrf_token"].is_string() && login["token"].is_string(), "{login}");
    let (status, _) = app.call("POST", "/diaries", login["token"].as_str(), Some(diary())).await;
    assert_eq!(status, StatusCode::CREATED);

    // Logging out with the cookie ends the session and clears both cookies.
    let (status, _, cleared) = with_cookie(&app, "POST", "/auth/logout", &cookie, Some(&csrf), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for name in ["session", "csrf"] {
        let c = cleared.iter().find(|c| c.starts_with(&format!("{name}="))).expect("cleared");
        assert!(c.contains("Max-Age=0"), "{c}");
    }
    let (status, _, _) = with_cookie(&app, "GET", "/me", &cookie, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    Ok(())
}

async fn ticket(app: &TestApp, token: &str, purpose: &str) -> String {
    let (status, body) =
        app.call("POST", "/auth/stream-ticket", Some(token), Some(json!({ "purpose": purpose }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["purpose"].as_str(), body["expires_in_s"].as_u64()), (Some(purpose), Some(60)), "{body}");
    body["ticket"].as_str().unwrap().to_string()
}

/// Opens a stream by URL alone, as `EventSource` does; returns the status and, on 200, what
/// arrived up to the first event named `until`.
async fn stream_until(app: &TestApp, path_and_query: &str, until: &str) -> (StatusCode, String) {
    let response = app.client.get(app.url(path_and_query)).header("accept", "text/event-stream").send().await.unwrap();
    let status = response.status();
    if status != StatusCode::OK {
        return (status, response.text().await.unwrap_or_default());
    }
    let mut body = String::new();
    let mut chunks = response.bytes_stream();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(chunk)) = chunks.next().await {
            body.push_str(&String::from_utf8_lossy(&chunk));
            if body.contains(&format!("event: {until}")) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(found, Ok(true)), "no `{until}` event: {body}");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_opens_a_stream_on_any_instance_for_its_purpose_only_and_ends_with_its_session() -> TestResult {
    let world = World::new().await;
    let env = [("SERVER_TICKET_SECRET", SECRET), ("SERVER_STREAM_SESSION_CHECK_S", "1")];
    let (one, two) = (world.spawn(&env).await, world.spawn(&env).await);
    let alice = one.signup("alice").await;
    let issued = ticket(&one, &alice.token, "notifications").await;

    // Issued on one instance, checked on the other without Redis: the stream opens.
    let (status, body) = stream_until(&two, &format!("/notifications/stream?ticket={issued}"), "ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A chat ticket does not open a stream; a forged one neither.
    let chat = ticket(&one, &alice.token, "chat").await;
    let (status, body) = two.call("GET", &format!("/notifications/stream?ticket={chat}"), None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(body["message"].as_str().unwrap().contains("for chat, not notifications"), "{body}");
    let forged = issued.replacen(&format!(".{}.", alice.id), &format!(".{}.", alice.id + 1), 1);
    let (status, body) = two.call("GET", &format!("/notifications/stream?ticket={forged}"), None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(body["message"].as_str().unwrap().contains("signature"), "{body}");
    let (status, body) =
        two.call("POST", "/auth/stream-ticket", Some(&alice.token), Some(json!({ "purpose": "x" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Another deployment's instance (another secret) refuses it.
    let stranger = world.spawn(&[("SERVER_TICKET_SECRET", "another deployment's secret, 32 characters+")]).await;
    let (status, _) = stranger.call("GET", &format!("/notifications/stream?ticket={issued}"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A stream opened with a ticket ends when the session it was issued under does.
    let response = two.client.get(two.url(&format!("/notifications/stream?ticket={issued}"))).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = one.call("POST", "/auth/logout", Some(&alice.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let text = tokio::time::timeout(Duration::from_secs(20), response.text()).await??;
    assert!(text.contains("event: session-ended"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_origins_get_cors_with_credentials_and_others_get_nothing() -> TestResult {
    let world = World::new().await;
    let listed = "http://127.0.0.1:5173";
    let app = world.spawn(&[("SERVER_CORS_ORIGINS", &format!("{listed}, https://app.example"))]).await;
    let preflight = |origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, x-csrf-token")
            .send()
    };
    let answer = preflight(listed).await?;
    assert!(answer.status().is_success(), "a preflight is answered, not 405: {}", answer.status());
    let h = answer.headers();
    assert_eq!(h["access-control-allow-origin"], listed);
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed = h["access-control-allow-headers"].to_str()?.to_ascii_lowercase();
    assert!(allowed.contains("x-csrf-token") && allowed.contains("content-type"), "{allowed}");

    let answer = preflight("http://127.0.0.1:6666").await?;
    assert!(answer.headers().get("access-control-allow-origin").is_none(), "an unlisted origin gets no CORS");

    // The actual request: the listed origin may read the answer.
    let answer = app.client.get(app.url("/healthz")).header("origin", listed).send().await?;
    assert_eq!(answer.headers()["access-control-allow-origin"], listed);

    // None listed: no CORS at all (the default).
    let closed = world.spawn(&[]).await;
    let answer = closed.client.get(closed.url("/healthz")).header("origin", listed).send().await?;
    assert!(answer.headers().get("access-control-allow-origin").is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_or_a_path_in_cors_origins_is_refused_with_how_to_write_it() {
    let world = World::new().await;
    let refused = |value: &str| {
        let env = vec![
            ("SERVER_DATABASE_URL".to_string(), world.database_url.clone()),
            ("SERVER_REDIS_URL".to_string(), "redis://127.0.0.1:1/".to_string()),
            ("SERVER_AMQP_URL".to_string(), "amqp://127.0.0.1:1/%2f".to_string()),
            ("SERVER_CORS_ORIGINS".to_string(), value.to_string()),
        ];
        server::Settings::from_sources(None, env).unwrap_err().to_string()
    };
    let wildcard = refused("*");
    assert!(wildcard.contains("SERVER_CORS_ORIGINS") && wildcard.contains("list each origin"), "{wildcard}");
    let path = refused("https://app.example/app");
    assert!(path.contains("write `https://app.example`"), "{path}");
    let short = {
        let env = vec![
            ("SERVER_DATABASE_URL".to_string(), world.database_url.clone()),
            ("SERVER_REDIS_URL".to_string(), "redis://127.0.0.1:1/".to_string()),
            ("SERVER_AMQP_URL".to_string(), "amqp://127.0.0.1:1/%2f".to_string()),
            ("SERVER_TICKET_SECRET".to_string(), "short".to_string()),
        ];
        server::Settings::from_sources(None, env).unwrap_err().to_string()
    };
    assert!(short.contains("SERVER_TICKET_SECRET") && short.contains("at least 32"), "{short}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_cannot_open_tells_the_browser_to_come_back_instead_of_failing_it() -> TestResult {
    let world = World::new().await;
    let redis = Infra::provision_one(ServiceKind::Redis, &ProvisionOptions::from_env()?).await?;
    let app = world.spawn(&[("SERVER_REDIS_URL", redis.url())]).await;
    wait_ready(&app).await;
    let alice = app.signup("alice").await;

    redis.stop().await?;
    // EventSource gives up for good on any status but 200: the answer is 200, a retry hint and
    // one `unavailable` event, then the end.
    let response = app
        .client
        .get(app.url("/notifications/stream"))
        .bearer_auth(&alice.token)
        .header("accept", "text/event-stream")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(Duration::from_secs(30), response.text()).await??;
    let retry: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("retry: "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no retry: {text}"));
    assert!((2_000..3_000).contains(&retry), "{retry}");
    assert!(text.contains("event: unavailable\ndata: {"), "{text}");
    assert!(!text.contains("\nid:") && !text.starts_with("id:"), "no id: the resume point stays: {text}");

    // An authentication failure is still a 401: that one should end the browser's stream.
    let (status, _) = app.call("GET", "/notifications/stream", Some("not-a-token"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    redis.start().await?;
    let (status, body) = stream_until_bearer(&app, &alice.token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Ok(())
}

async fn stream_until_bearer(app: &TestApp, token: &str) -> (StatusCode, String) {
    // Redis is back, and the session with it (it was saved on the way down).
    for _ in 0..60 {
        let response = app.client.get(app.url("/notifications/stream")).bearer_auth(token).send().await.expect("sent");
        let status = response.status();
        let mut chunks = response.bytes_stream();
        let mut body = String::new();
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(5), chunks.next()).await {
            body.push_str(&String::from_utf8_lossy(&chunk));
            if body.contains("event: ready") {
                return (status, body);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (StatusCode::SERVICE_UNAVAILABLE, "the stream never became ready after Redis came back".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_is_served_with_a_strict_policy_and_the_pinned_stomp_bundle() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let root = no_redirects.get(app.url("/")).send().await?;
    assert!(root.status().is_redirection() && root.headers()["location"] == "/app/", "{:?}", root.headers());

    let page = app.client.get(app.url("/app/")).send().await?;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str()?.starts_with("text/html"));
    let csp = page.headers()["content-security-policy"].to_str()?.to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.text().await?;
    for part in ["app.js", "vendor/stomp.umd.min.js", "data-testid=\"shown\""] {
        assert!(html.contains(part), "{part}");
    }
    for (path, kind) in
        [("/app/app.js", "javascript"), ("/app/app.css", "css"), ("/app/vendor/stomp.umd.min.js", "javascript")]
    {
        let answer = app.client.get(app.url(path)).send().await?;
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        assert!(answer.headers()["content-type"].to_str()?.contains(kind), "{path}");
    }

    // The vendored bundle is the pinned package's, byte for byte.
    let served = app.client.get(app.url("/app/vendor/stomp.umd.min.js")).send().await?.bytes().await?;
    let pinned = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../interop/node_modules/@stomp/stompjs/bundles/stomp.umd.min.js");
    let pinned = std::fs::read(&pinned)
        .unwrap_or_else(|e| panic!("{}: {e}: run `bash scripts/setup-interop.sh`", pinned.display()));
    assert!(served.as_ref() == pinned.as_slice(), "server/web/vendor/stomp.umd.min.js differs from the pinned package");
    Ok(())
}
