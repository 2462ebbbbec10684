//! What the server protects, item by item of the outside security pass: roles, password
//! hashing under load, login throttling, bounded inputs and labels, sessions that end.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestResult, World, assert_error};

async fn signup(app: &crate::helpers::TestApp, email: &str) -> (StatusCode, serde_json::Value) {
    app.call(
        "POST",
        "/auth/signup",
        None,
        Some(json!({ "email": email, "password": "correct horse", "display_name": "someone" })),
    )
    .await
}

async fn login(app: &crate::helpers::TestApp, email: &str) -> (StatusCode, serde_json::Value) {
    app.call("POST", "/auth/login", None, Some(json!({ "email": email, "password": "correct horse" }))).await
}

/// Sign-up with an address that only looks like another (an accent, a full-width letter) is
/// another account, gets no role, and does not take the real address away from its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_addresses_are_other_accounts_and_sign_up_grants_no_role() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;

    let mut ids = Vec::new();
    for email in ["sécurity@example.test", "ｓecurity@example.test", "security@example.test"] {
        let (status, user) = signup(&app, email).await;
        assert_eq!(status, StatusCode::CREATED, "{email}: {user}");
        assert_eq!(user["role"], "user", "{email}: sign-up never grants a role");
        ids.push(user["id"].as_u64().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "three accounts");
    // One identity whatever the case, spaces or composition of the same letters.
    let (status, body) = signup(&app, " SE\u{301}CURITY@example.test").await;
    assert_error(status, &body, StatusCode::CONFLICT, "email_taken");
    Ok(())
}

/// The admin role is the operator's act on an existing account, through the real binary:
/// `server grant-admin` names the account exactly; `server revoke-admin` also ends its sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_grants_and_revokes_the_admin_role_with_the_server_binary() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_AI_ENABLED", "false")]).await;
    signup(&app, "ops@example.test").await;
    signup(&app, "öps@example.test").await;

    let (code, out, err) = world.server_command(&["grant-admin", " OPS@example.test"], &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("<ops@example.test> is now admin"), "{out}");
    let (_, session) = login(&app, "ops@example.test").await;
    assert_eq!(session["user"]["role"], "admin");
    let token = session["token"].as_str().unwrap().to_string();
    assert_eq!(app.call("GET", "/admin/jobs", Some(&token), None).await.0, StatusCode::OK);
    let (_, look_alike) = login(&app, "öps@example.test").await;
    assert_eq!(look_alike["user"]["role"], "user", "the look-alike is untouched");

    let (code, out, err) = world.server_command(&["revoke-admin", "ops@example.test"], &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("is no longer admin; 1 of its sessions ended"), "{out}");
    let (status, body) = app.call("GET", "/admin/jobs", Some(&token), None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    let (code, _, err) = world.server_command(&["grant-admin", "nobody@example.test"], &[]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no account has the address nobody@example.test: it must sign up first"), "{err}");
    let (code, _, err) = world.server_command(&["grant-admin", "root"], &[]).await;
    assert_eq!(code, 1);
    assert!(err.contains("`root` is not an e-mail address"), "{err}");
    let (code, _, err) = world.server_command(&[], &[("SERVER_ADMIN_EMAILS", "ops@example.test")]).await;
    assert_eq!(code, 2, "the old setting is refused, not ignored");
    assert!(err.contains("SERVER_ADMIN_EMAILS") && err.contains("server grant-admin <email>"), "{err}");
    Ok(())
}

/// Settings that make a hash slow enough to watch: 64 MiB and 8 passes (argon2 is built
/// optimised even in tests).
const SLOW_HASH: [(&str, &str); 2] = [("SERVER_ARGON2_MEMORY_KIB", "65536"), ("SERVER_ARGON2_ITERATIONS", "8")];

/// Concurrent logins cannot exhaust memory: one hash at a time here, one more waiting, and the
/// rest are told to come back (503, `Retry-After`) instead of each taking 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_beyond_the_hashing_slots_are_told_to_retry() -> TestResult {
    let world = World::new().await;
    let mut settings = SLOW_HASH.to_vec();
    settings.extend([("SERVER_HASH_CONCURRENCY", "1"), ("SERVER_HASH_QUEUE", "1")]);
    settings.extend([("SERVER_LOGIN_ATTEMPTS_PER_ACCOUNT", "1000"), ("SERVER_LOGIN_FAILURES_PER_CLIENT", "1000")]);
    let app = world.spawn(&settings).await;
    signup(&app, "target@example.test").await;

    let attempts = (0..12).map(|_| {
        let app = &app;
        async move {
            let resp = app
                .client
                .post(app.url("/auth/login"))
                .json(&json!({ "email": "target@example.test", "password": "wrong guess" }))
                .send()
                .await
                .unwrap();
            (resp.status(), resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()))
        }
    });
    let answers = futures::future::join_all(attempts).await;

    let busy: Vec<_> = answers.iter().filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert!(!busy.is_empty(), "12 at once through 1 slot and 1 place in line: {answers:?}");
    assert!(busy.iter().all(|(_, retry)| retry.as_deref() == Some("1")), "{answers:?}");
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::SERVICE_UNAVAILABLE));
    // Afterwards the instance hashes again.
    assert_eq!(login(&app, "target@example.test").await.0, StatusCode::OK);
    Ok(())
}

/// A login for an address with no account costs a hash like any other (checked against a
/// decoy), so how long the answer takes does not tell which addresses have accounts: with the
/// only hashing slot taken, it is told to wait like a real one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_for_an_address_without_an_account_costs_a_hash_like_any_other() -> TestResult {
    let world = World::new().await;
    let mut settings = SLOW_HASH.to_vec();
    settings.extend([("SERVER_HASH_CONCURRENCY", "1"), ("SERVER_HASH_QUEUE", "0")]);
    let app = world.spawn(&settings).await;
    signup(&app, "real@example.test").await;

    let slow = login(&app, "real@example.test");
    let probe = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        login(&app, "nobody@example.test").await
    };
    let ((real, _), (status, body)) = tokio::join!(slow, probe);

    assert_eq!(real, StatusCode::OK);
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "busy");
    // Once the slot is free, the same unknown address gets the same answer as a wrong password.
    let (status, body) = login(&app, "nobody@example.test").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    Ok(())
}

/// Guessing is throttled per account (attempts; a success starts over) and per client address
/// (failures), on every instance alike, with a clear error and `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_throttled_per_account_and_per_client_address() -> TestResult {
    let world = World::new().await;
    let settings = [
        ("SERVER_LOGIN_ATTEMPTS_PER_ACCOUNT", "3"),
        ("SERVER_LOGIN_FAILURES_PER_CLIENT", "5"),
        ("SERVER_CLIENT_IP_HEADER", "x-forwarded-for"),
    ];
    let (one, two) = (world.spawn(&settings).await, world.spawn(&settings).await);
    for email in ["victim@example.test", "other@example.test", "third@example.test"] {
        signup(&one, email).await;
    }
    let attempt = |app: &crate::helpers::TestApp, email: &str, password: &str, client: &str| {
        let request = app
            .client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", format!("203.0.113.99, {client}"))
            .json(&json!({ "email": email, "password": password }));
        async move {
            let resp = request.send().await.unwrap();
            let retry = resp.headers().get("retry-after").is_some();
            let status = resp.status();
            (status, resp.json::<serde_json::Value>().await.unwrap(), retry)
        }
    };

    // Three wrong guesses on two instances, then even the right password waits.
    for app in [&one, &two, &one] {
        assert_eq!(attempt(app, "victim@example.test", "guess", "10.0.0.1").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, body, retry) = attempt(&two, "victim@example.test", "correct horse", "10.0.0.1").await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert!(retry && body["message"].as_str().unwrap().contains("this account"), "{body}");

    // Per client: 10.0.0.1 has 3 failures; two more on other accounts, then it is stopped.
    for email in ["other@example.test", "third@example.test"] {
        assert_eq!(attempt(&one, email, "guess", "10.0.0.1").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, body, _) = attempt(&one, "third@example.test", "correct horse", "10.0.0.1").await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert!(body["message"].as_str().unwrap().contains("your address"), "{body}");
    // Another address (the proxy's last value, not the first one the client wrote) still logs in.
    assert_eq!(attempt(&two, "third@example.test", "correct horse", "10.0.0.2").await.0, StatusCode::OK);
    Ok(())
}

/// Dates are read by one parser: a signed or six-digit year is a 422 naming the field, never a
/// 500 (and never an ERROR in the log that any signed-in user could repeat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_dates_are_refused_with_the_field_named() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_AI_ENABLED", "false")]).await;
    let user = app.signup("renter").await;
    for (field, value) in
        [("available_from", "-0001-01-01"), ("available_to", "%2B262142-12-31"), ("available_from", "0999-12-31")]
    {
        let (status, body) =
            app.call("GET", &format!("/rentals/search?q=tent&{field}={value}"), Some(&user.token), None).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, item) = app
        .call(
            "POST",
            "/rentals",
            Some(&user.token),
            Some(json!({ "title": "Tent", "category": "camping", "price_per_day": 10 })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let other = app.signup("borrower").await;
    let (status, body) = app
        .call(
            "POST",
            &format!("/rentals/{}/reservations", item["id"]),
            Some(&other.token),
            Some(json!({ "start_date": "+262142-12-31", "end_date": "+262142-12-31" })),
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    Ok(())
}

/// Every label of `/metrics` is bounded: made-up methods share the label `other`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_do_not_grow_the_metrics() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    for i in 0..40 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes())?;
        app.client.request(method, app.url("/me")).send().await?;
    }

    let text = app.client.get(app.url("/metrics")).send().await?.text().await?;

    assert!(!text.contains("BREW"), "a request's own method became a label");
    assert!(text.contains(r#"method="other""#), "{text}");
    Ok(())
}

/// A stream ends when its session does (logout here), with a last event that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_its_session_is_logged_out() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_NOTIFY_DELIVERY", "local"), ("SERVER_STREAM_SESSION_CHECK_S", "1")]).await;
    let user = app.signup("reader").await;
    let events = loadtest::probe::sse::connect(&app.client, &app.url("/notifications/stream"), &user.token, None)
        .await
        .expect("the stream opens");
    let mut events = Box::pin(events);

    assert_eq!(app.call("POST", "/auth/logout", Some(&user.token), None).await.0, StatusCode::NO_CONTENT);
    let mut last = None;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(event)) = futures::StreamExt::next(&mut events).await {
            last = Some(event);
        }
    })
    .await;

    assert!(ended.is_ok(), "the stream outlived its session");
    let last = last.expect("a last event");
    assert_eq!(last.event, "session-ended", "{last:?}");
    assert!(last.data.contains("log in again"), "{last:?}");
    Ok(())
}

/// One user holds a bounded number of streams per instance; a new one closes the oldest,
/// which is told so (`displaced`) so that its client does not reconnect it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_opening_more_streams_than_allowed_closes_the_oldest() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_NOTIFY_DELIVERY", "local"), ("SERVER_STREAMS_PER_USER", "2")]).await;
    let user = app.signup("tabs").await;
    let url = app.url("/notifications/stream");
    let open = || loadtest::probe::sse::connect(&app.client, &url, &user.token, None);
    let mut oldest = Box::pin(open().await.expect("first"));
    let _second = open().await.expect("second");
    let _third = open().await.expect("third");

    let mut events = Vec::new();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(event)) = futures::StreamExt::next(&mut oldest).await {
            events.push(event.event);
        }
    })
    .await;

    assert!(ended.is_ok(), "the oldest stream stayed open");
    assert_eq!(events, ["ready", "displaced"]);
    Ok(())
}

/// The smaller items: 413 for a body over the limit, 408 for a body shorter than its
/// `Content-Length`, no signed path ids, a case-insensitive `Bearer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_paths_and_schemes_are_read_as_the_standards_say() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_AI_ENABLED", "false")]).await;
    let user = app.signup("writer").await;

    let huge = json!({ "title": "t", "content": "x".repeat(300 * 1024), "emotion": "calm" });
    let (status, body) = app.call("POST", "/diaries", Some(&user.token), Some(huge)).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // Announce 100 bytes, send 10, wait.
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&addr).await?;
    let head = format!(
        "POST /diaries HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"title\":",
        user.token
    );
    tokio::io::AsyncWriteExt::write_all(&mut socket, head.as_bytes()).await?;
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        tokio::io::AsyncReadExt::read(&mut socket, &mut answer),
    )
    .await??;
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());

    let diary = app.diary(&user, "private").await;
    let (status, body) = app.call("GET", &format!("/diaries/+{diary}"), Some(&user.token), None).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_path");

    let resp = app.client.get(app.url("/me")).header("authorization", format!("bearer {}", user.token)).send().await?;
    assert_eq!(resp.status(), StatusCode::OK, "the scheme is case-insensitive");
    Ok(())
}

/// The AI worker finds the diary deleted while it wrote the comment: nothing to post, and not
/// an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ai_comment_for_a_diary_deleted_meanwhile_is_dropped_quietly() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_AI_ENABLED", "false")]).await;
    let user = app.signup("writer").await;
    let diary = app.diary(&user, "private").await;
    assert_eq!(
        app.call("DELETE", &format!("/diaries/{diary}"), Some(&user.token), None).await.0,
        StatusCode::NO_CONTENT
    );

    let posted = server::diary::comments::create_ai(&world.db, diary, "힘내요").await?;

    assert_eq!(posted, None);
    Ok(())
}
