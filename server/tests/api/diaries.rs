use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestResult, World, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diary_crud_by_its_author() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let mina = app.signup("mina").await;

    let (status, diary) = app
        .call(
            "POST",
            "/diaries",
            Some(&mina.token),
            Some(json!({"title": "첫 일기", "content": "오늘은 좋은 날", "emotion": "joy", "visibility": "private"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{diary}");
    let id = diary["id"].as_u64().unwrap();
    assert_eq!(diary["emotion"], "joy");

    let (status, read) = app.call("GET", &format!("/diaries/{id}"), Some(&mina.token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["title"], "첫 일기");

    let (status, updated) =
        app.call("PATCH", &format!("/diaries/{id}"), Some(&mina.token), Some(json!({"emotion": "gratitude"}))).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["emotion"], "gratitude");
    assert_eq!(updated["title"], "첫 일기");

    let (status, _) = app.call("DELETE", &format!("/diaries/{id}"), Some(&mina.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.call("GET", &format!("/diaries/{id}"), Some(&mina.token), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "diary_not_found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_can_never_read_change_or_delete_a_private_diary_or_its_comments() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (a, b) = (app.signup("a").await, app.signup("b").await);
    let private = app.diary(&a, "private").await;
    let shared = app.diary(&a, "friends").await;
    let (status, _) = app
        .call("POST", &format!("/diaries/{private}/comments"), Some(&a.token), Some(json!({"content": "note to self"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    for id in [private, shared] {
        for (method, path, body) in [
            ("GET", format!("/diaries/{id}"), None),
            ("PATCH", format!("/diaries/{id}"), Some(json!({"title": "hacked"}))),
            ("DELETE", format!("/diaries/{id}"), None),
            ("GET", format!("/diaries/{id}/comments"), None),
            ("POST", format!("/diaries/{id}/comments"), Some(json!({"content": "hi"}))),
        ] {
            let (status, err) = app.call(method, &path, Some(&b.token), body).await;
            // 404 alike for "absent" and "not yours": existence does not leak.
            assert_error(status, &err, StatusCode::NOT_FOUND, "diary_not_found");
        }
    }
    let (status, mine) = app.call("GET", "/diaries?scope=friends", Some(&b.token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["items"].as_array().unwrap().len(), 0);
    let (status, still) = app.call("GET", &format!("/diaries/{private}"), Some(&a.token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(still["title"], "A day");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_see_and_comment_on_shared_diaries_but_cannot_change_them() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (a, b) = (app.signup("a").await, app.signup("b").await);
    app.befriend(&a, &b).await;
    let shared = app.diary(&a, "friends").await;
    let private = app.diary(&a, "private").await;

    let (status, feed) = app.call("GET", "/diaries?scope=friends", Some(&b.token), None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<u64> = feed["items"].as_array().unwrap().iter().map(|d| d["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![shared]);
    assert_eq!(app.call("GET", &format!("/diaries/{private}"), Some(&b.token), None).await.0, StatusCode::NOT_FOUND);

    let (status, comment) = app
        .call("POST", &format!("/diaries/{shared}/comments"), Some(&b.token), Some(json!({"content": "힘내!"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{comment}");
    let (status, err) =
        app.call("PATCH", &format!("/diaries/{shared}"), Some(&b.token), Some(json!({"title": "x"}))).await;
    assert_error(status, &err, StatusCode::FORBIDDEN, "forbidden");
    let (status, err) = app.call("DELETE", &format!("/diaries/{shared}"), Some(&b.token), None).await;
    assert_error(status, &err, StatusCode::FORBIDDEN, "forbidden");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_are_listed_and_deleted_by_their_author_or_the_diary_owner_only() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_AI_WORKER_POLL_MS", "60000")]).await;
    let (a, b, c) = (app.signup("a").await, app.signup("b").await, app.signup("c").await);
    app.befriend(&a, &b).await;
    app.befriend(&a, &c).await;
    let diary = app.diary(&a, "friends").await;
    let mut ids = vec![];
    for (who, text) in [(&b, "first"), (&c, "second"), (&b, "third")] {
        let (status, body) = app
            .call("POST", &format!("/diaries/{diary}/comments"), Some(&who.token), Some(json!({"content": text})))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(body["id"].as_u64().unwrap());
    }

    let (_, page1) = app.call("GET", &format!("/diaries/{diary}/comments?limit=2"), Some(&c.token), None).await;
    let cursor = page1["next_cursor"].as_str().expect("a second page").to_string();
    let (_, page2) =
        app.call("GET", &format!("/diaries/{diary}/comments?limit=2&cursor={cursor}"), Some(&c.token), None).await;
    let texts: Vec<&str> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["items"].as_array().unwrap())
        .filter(|c| c["ai"] == false)
        .map(|c| c["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["first", "second", "third"]);

    let (status, err) = app.call("DELETE", &format!("/comments/{}", ids[0]), Some(&c.token), None).await;
    assert_error(status, &err, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        app.call("DELETE", &format!("/comments/{}", ids[0]), Some(&b.token), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call("DELETE", &format!("/comments/{}", ids[1]), Some(&a.token), None).await.0,
        StatusCode::NO_CONTENT
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_diaries_page_with_keyset_cursors_without_gaps_or_repeats() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_AI_WORKER_POLL_MS", "60000")]).await;
    let a = app.signup("a").await;
    let mut written = vec![];
    for _ in 0..7 {
        written.push(app.diary(&a, "private").await);
    }

    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/diaries?scope=mine&limit=3&cursor={c}"),
            None => "/diaries?scope=mine&limit=3".to_string(),
        };
        let (status, page) = app.call("GET", &path, Some(&a.token), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["items"].as_array().unwrap().iter().map(|d| d["id"].as_u64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    written.reverse();
    assert_eq!(seen, written);
    Ok(())
}
