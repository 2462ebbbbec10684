use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestResult, World, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_earns_points_spending_needs_them_and_the_log_pages_back() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (a, b) = (app.signup("a").await, app.signup("b").await);
    app.befriend(&a, &b).await;
    let diary = app.diary(&a, "friends").await;
    app.call("POST", &format!("/diaries/{diary}/comments"), Some(&b.token), Some(json!({"content": "nice"}))).await;

    assert_eq!(app.call("GET", "/points", Some(&a.token), None).await.1["balance"], 10);
    assert_eq!(app.call("GET", "/points", Some(&b.token), None).await.1["balance"], 2);
    let (status, spent) =
        app.call("POST", "/points/spend", Some(&a.token), Some(json!({"amount": 4, "reason": "sticker"}))).await;
    assert_eq!(status, StatusCode::OK, "{spent}");
    assert_eq!(spent["balance"], 6);
    let (status, err) =
        app.call("POST", "/points/spend", Some(&a.token), Some(json!({"amount": 7, "reason": "sticker"}))).await;
    assert_error(status, &err, StatusCode::CONFLICT, "insufficient_points");

    let (_, log) = app.call("GET", "/points/log?limit=1", Some(&a.token), None).await;
    assert_eq!(log["items"][0]["delta"], -4);
    assert_eq!(log["items"][0]["balance_after"], 6);
    let cursor = log["next_cursor"].as_str().unwrap();
    let (_, older) = app.call("GET", &format!("/points/log?limit=1&cursor={cursor}"), Some(&a.token), None).await;
    assert_eq!(older["items"][0]["delta"], 10);
    assert_eq!(older["items"][0]["reason"], "diary_written");
    assert!(older["next_cursor"].is_null());
    // B never sees A's log: the endpoint has no user parameter at all.
    let (_, b_log) = app.call("GET", "/points/log", Some(&b.token), None).await;
    assert_eq!(b_log["items"].as_array().unwrap().len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_awards_over_three_instances_lose_no_update() -> TestResult {
    let world = World::new().await;
    let poll = [("SERVER_AI_WORKER_POLL_MS", "60000")];
    let apps = [world.spawn(&poll).await, world.spawn(&poll).await, world.spawn(&poll).await];
    let user = apps[0].signup("busy").await;

    let writes = (0..200).map(|i| {
        let app = &apps[i % 3];
        let token = user.token.clone();
        async move {
            app.call(
                "POST",
                "/diaries",
                Some(&token),
                Some(
                    json!({"title": format!("entry {i}"), "content": "x", "emotion": "calm", "visibility": "private"}),
                ),
            )
            .await
            .0
        }
    });
    let statuses = join_all(writes).await;

    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED), "{statuses:?}");
    let balance: i64 = sqlx::query_scalar("SELECT balance FROM point_balances WHERE user_id = ?")
        .bind(user.id)
        .fetch_one(&world.db)
        .await?;
    let (rows, sum): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), CAST(SUM(delta) AS SIGNED) FROM point_log WHERE user_id = ?")
            .bind(user.id)
            .fetch_one(&world.db)
            .await?;
    assert_eq!(balance, 2000);
    assert_eq!(rows, 200);
    assert_eq!(sum, 2000, "the balance equals the sum of the log");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_spends_over_three_instances_never_overdraw() -> TestResult {
    let world = World::new().await;
    let poll = [("SERVER_AI_WORKER_POLL_MS", "60000")];
    let apps = [world.spawn(&poll).await, world.spawn(&poll).await, world.spawn(&poll).await];
    let user = apps[0].signup("spender").await;
    for _ in 0..5 {
        apps[0].diary(&user, "private").await; // 5 x 10 = 50 points
    }

    let spends =
        (0..30).map(|i| {
            let app = &apps[i % 3];
            let token = user.token.clone();
            async move {
                app.call("POST", "/points/spend", Some(&token), Some(json!({"amount": 7, "reason": "race"}))).await.0
            }
        });
    let statuses = join_all(spends).await;

    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!((ok, refused), (7, 23), "50 points buy exactly seven spends of 7: {statuses:?}");
    let balance: i64 = sqlx::query_scalar("SELECT balance FROM point_balances WHERE user_id = ?")
        .bind(user.id)
        .fetch_one(&world.db)
        .await?;
    assert_eq!(balance, 1);
    let min_after: i64 = sqlx::query_scalar("SELECT MIN(balance_after) FROM point_log WHERE user_id = ?")
        .bind(user.id)
        .fetch_one(&world.db)
        .await?;
    assert!(min_after >= 0);
    Ok(())
}
