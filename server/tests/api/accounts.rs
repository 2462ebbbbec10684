use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestResult, World, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_login_me_logout() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;

    let (status, user) = app
        .call(
            "POST",
            "/auth/signup",
            None,
            Some(json!({"email": "Mina@Example.test", "password": "long enough", "display_name": "Mina"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["email"], "mina@example.test");
    assert!(user.get("password_hash").is_none(), "the hash leaked: {user}");

    let (status, login) = app
        .call("POST", "/auth/login", None, Some(json!({"email": "mina@example.test", "password": "long enough"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = login["token"].as_str().unwrap();
    let (status, me) = app.call("GET", "/me", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], user["id"]);

    let (status, _) = app.call("POST", "/auth/logout", Some(token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.call("GET", "/me", Some(token), None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_made_on_one_instance_is_honoured_by_another() -> TestResult {
    let world = World::new().await;
    let (one, two) = (world.spawn(&[]).await, world.spawn(&[]).await);
    let mina = one.signup("mina").await;

    let (status, me) = two.call("GET", "/me", Some(&mina.token), None).await;

    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["id"], mina.id);
    let (status, _) = two.call("POST", "/auth/logout", Some(&mina.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = one.call("GET", "/me", Some(&mina.token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a logout on one instance must end the session on all");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_and_taken_emails_are_refused() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let body = json!({"email": "jun@example.test", "password": "long enough", "display_name": "Jun"});
    assert_eq!(app.call("POST", "/auth/signup", None, Some(body.clone())).await.0, StatusCode::CREATED);

    let (status, err) = app.call("POST", "/auth/signup", None, Some(body)).await;
    assert_error(status, &err, StatusCode::CONFLICT, "email_taken");
    let (status, err) = app
        .call("POST", "/auth/login", None, Some(json!({"email": "jun@example.test", "password": "wrong password"})))
        .await;
    assert_error(status, &err, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, err) = app
        .call("POST", "/auth/login", None, Some(json!({"email": "nobody@example.test", "password": "wrong password"})))
        .await;
    assert_error(status, &err, StatusCode::UNAUTHORIZED, "unauthorized");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_but_signup_login_and_health_requires_auth() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let protected = [
        ("GET", "/me"),
        ("POST", "/auth/logout"),
        ("GET", "/users/1"),
        ("GET", "/friends"),
        ("DELETE", "/friends/1"),
        ("GET", "/friends/requests"),
        ("POST", "/friends/requests"),
        ("POST", "/friends/requests/1/accept"),
        ("POST", "/friends/requests/1/decline"),
        ("GET", "/diaries"),
        ("POST", "/diaries"),
        ("GET", "/diaries/1"),
        ("PATCH", "/diaries/1"),
        ("DELETE", "/diaries/1"),
        ("GET", "/diaries/1/comments"),
        ("POST", "/diaries/1/comments"),
        ("DELETE", "/comments/1"),
        ("GET", "/users/1/guestbook"),
        ("POST", "/users/1/guestbook"),
        ("DELETE", "/guestbook/1"),
        ("GET", "/points"),
        ("GET", "/points/log"),
        ("POST", "/points/spend"),
    ];
    for (method, path) in protected {
        let (status, body) = app.call(method, path, None, Some(json!({}))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        let (status, _) = app.call(method, path, Some("not-a-token"), Some(json!({}))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with a forged token");
    }
    // The delivery transport connects in the background: /readyz is 503 until it has.
    crate::notifications::wait_ready(&app).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.call("GET", path, None, None).await.0, StatusCode::OK, "{path}");
    }
    Ok(())
}
