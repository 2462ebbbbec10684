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
async fn two_hundred_concurrent_awards_over_three_instances_lose_no_update_and_stop_at_the_cap() -> TestResult {
    let world = World::new().await;
    // 200 diaries of 10 points against a daily cap of 1,000: exactly 100 are paid, however the
    // requests interleave over the instances.
    let poll = [("SERVER_AI_WORKER_POLL_MS", "60000"), ("SERVER_POINTS_DAILY_CAP", "1000")];
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
    assert_eq!(balance, 1000);
    assert_eq!(rows, 100, "no award beyond the cap, none lost below it");
    assert_eq!(sum, 1000, "the balance equals the sum of the log");
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

/// The rules of earning: a comment on one's own diary earns nothing; deleting a diary or a
/// comment takes its award back (never below zero); a day's earnings are capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_cannot_be_farmed_by_self_comments_deletes_or_volume() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_POINTS_DAILY_CAP", "25"), ("SERVER_AI_ENABLED", "false")]).await;
    let (a, b) = (app.signup("a").await, app.signup("b").await);
    app.befriend(&a, &b).await;
    let balance = |who: &crate::helpers::Session| {
        let token = who.token.clone();
        let app = &app;
        async move { app.call("GET", "/points", Some(&token), None).await.1["balance"].as_i64().unwrap() }
    };

    let first = app.diary(&a, "friends").await;
    let (status, _) =
        app.call("POST", &format!("/diaries/{first}/comments"), Some(&a.token), Some(json!({"content": "me"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(balance(&a).await, 10, "a diary earns 10, a comment on one's own diary nothing");

    let (_, comment) =
        app.call("POST", &format!("/diaries/{first}/comments"), Some(&b.token), Some(json!({"content": "hi"}))).await;
    assert_eq!(balance(&b).await, 2);
    let comment = comment["id"].as_u64().unwrap();
    assert_eq!(
        app.call("DELETE", &format!("/comments/{comment}"), Some(&b.token), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(balance(&b).await, 0, "a deleted comment's award is taken back");

    let second = app.diary(&a, "private").await;
    assert_eq!(balance(&a).await, 20);
    assert_eq!(app.call("DELETE", &format!("/diaries/{second}"), Some(&a.token), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(balance(&a).await, 10, "a deleted diary's award is taken back");

    // 20 earned today against a cap of 25: the third diary earns 5. Spent, then deleted: the
    // award is taken back as far as the balance allows, which is not at all.
    let third = app.diary(&a, "private").await;
    assert_eq!(balance(&a).await, 15);
    let (status, _) =
        app.call("POST", "/points/spend", Some(&a.token), Some(json!({"amount": 15, "reason": "sticker"}))).await;
    assert_eq!(status, StatusCode::OK);
    app.call("DELETE", &format!("/diaries/{third}"), Some(&a.token), None).await;
    assert_eq!(balance(&a).await, 0, "never below zero");

    // The cap counts what was earned, not what was kept: a fourth diary earns nothing today.
    app.diary(&a, "private").await;
    assert_eq!(balance(&a).await, 0);
    let (_, log) = app.call("GET", "/points/log?limit=10", Some(&a.token), None).await;
    let entries: Vec<(String, i64)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["reason"].as_str().unwrap().to_string(), e["delta"].as_i64().unwrap()))
        .collect();
    let expected = [
        ("spend_sticker", -15),
        ("diary_written", 5),
        ("diary_deleted", -10),
        ("diary_written", 10),
        ("diary_written", 10),
    ];
    assert_eq!(entries, expected.map(|(r, d)| (r.to_string(), d)));

    // The next UTC day (the balance row's day moved back by one, as midnight would): the cap
    // starts again, and what was earned yesterday does not count.
    sqlx::query("UPDATE point_balances SET earned_on = earned_on - INTERVAL 1 DAY WHERE user_id = ?")
        .bind(a.id)
        .execute(&world.db)
        .await?;
    app.diary(&a, "private").await;
    app.diary(&a, "private").await;
    app.diary(&a, "private").await;
    assert_eq!(balance(&a).await, 25, "a new day earns again, up to the cap: 10 + 10 + 5");
    let earned: (i64, i64) = sqlx::query_as(
        "SELECT earned_today, CAST(earned_on = UTC_DATE() AS SIGNED) FROM point_balances WHERE user_id = ?",
    )
    .bind(a.id)
    .fetch_one(&world.db)
    .await?;
    assert_eq!(earned, (25, 1), "the row earned 25 today");
    Ok(())
}
