use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestResult, World, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friend_requests_accept_decline_list_and_remove() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (a, b, c) = (app.signup("a").await, app.signup("b").await, app.signup("c").await);

    let (status, req) = app.call("POST", "/friends/requests", Some(&a.token), Some(json!({"user_id": b.id}))).await;
    assert_eq!(status, StatusCode::CREATED, "{req}");
    let (status, err) = app.call("POST", "/friends/requests", Some(&a.token), Some(json!({"user_id": b.id}))).await;
    assert_error(status, &err, StatusCode::CONFLICT, "request_exists");
    let (status, err) = app.call("POST", "/friends/requests", Some(&b.token), Some(json!({"user_id": a.id}))).await;
    assert_error(status, &err, StatusCode::CONFLICT, "request_pending_from_them");
    let (_, incoming) = app.call("GET", "/friends/requests?direction=incoming", Some(&b.token), None).await;
    assert_eq!(incoming.as_array().unwrap().len(), 1);
    let id = req["id"].as_u64().unwrap();
    // Only the addressee accepts; a third user sees nothing.
    let (status, err) = app.call("POST", &format!("/friends/requests/{id}/accept"), Some(&a.token), None).await;
    assert_error(status, &err, StatusCode::FORBIDDEN, "forbidden");
    let (status, err) = app.call("POST", &format!("/friends/requests/{id}/accept"), Some(&c.token), None).await;
    assert_error(status, &err, StatusCode::NOT_FOUND, "friend_request_not_found");
    assert_eq!(
        app.call("POST", &format!("/friends/requests/{id}/accept"), Some(&b.token), None).await.0,
        StatusCode::NO_CONTENT
    );

    let (_, friends_of_a) = app.call("GET", "/friends", Some(&a.token), None).await;
    let (_, friends_of_b) = app.call("GET", "/friends", Some(&b.token), None).await;
    assert_eq!(friends_of_a[0]["user_id"], b.id);
    assert_eq!(friends_of_b[0]["user_id"], a.id);
    let (status, err) = app.call("POST", "/friends/requests", Some(&a.token), Some(json!({"user_id": b.id}))).await;
    assert_error(status, &err, StatusCode::CONFLICT, "already_friends");

    let (_, req) = app.call("POST", "/friends/requests", Some(&c.token), Some(json!({"user_id": a.id}))).await;
    let id = req["id"].as_u64().unwrap();
    assert_eq!(
        app.call("POST", &format!("/friends/requests/{id}/decline"), Some(&a.token), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, incoming) = app.call("GET", "/friends/requests", Some(&a.token), None).await;
    assert_eq!(incoming.as_array().unwrap().len(), 0);

    assert_eq!(app.call("DELETE", &format!("/friends/{}", b.id), Some(&a.token), None).await.0, StatusCode::NO_CONTENT);
    let (_, friends_of_b) = app.call("GET", "/friends", Some(&b.token), None).await;
    assert_eq!(friends_of_b.as_array().unwrap().len(), 0, "removal is mutual");
    let (status, err) = app.call("DELETE", &format!("/friends/{}", b.id), Some(&a.token), None).await;
    assert_error(status, &err, StatusCode::NOT_FOUND, "friend_not_found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guestbook_entries_are_deleted_by_their_author_or_the_owner_only() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (owner, guest, other) = (app.signup("owner").await, app.signup("guest").await, app.signup("other").await);
    let path = format!("/users/{}/guestbook", owner.id);
    let mut ids = vec![];
    for who in [&guest, &other] {
        let (status, entry) = app.call("POST", &path, Some(&who.token), Some(json!({"content": "다녀갑니다"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{entry}");
        ids.push(entry["id"].as_u64().unwrap());
    }
    let (status, list) = app.call("GET", &path, Some(&other.token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    let (status, err) = app.call("DELETE", &format!("/guestbook/{}", ids[0]), Some(&other.token), None).await;
    assert_error(status, &err, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        app.call("DELETE", &format!("/guestbook/{}", ids[0]), Some(&guest.token), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.call("DELETE", &format!("/guestbook/{}", ids[1]), Some(&owner.token), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, err) =
        app.call("POST", "/users/999999/guestbook", Some(&guest.token), Some(json!({"content": "hi"}))).await;
    assert_error(status, &err, StatusCode::NOT_FOUND, "user_not_found");
    Ok(())
}
