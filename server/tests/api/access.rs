//! Who may do what, for every operation of `/openapi.json`: each is called by the owner of the
//! resource it names, by the owner's friend, by a stranger and anonymously, each time in a
//! fresh world, and the answer must match `ACCESS`. The operations come from the document
//! itself, so a route added without an entry here fails this test until someone decides who
//! may call it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Session, TestApp, TestResult, World};

/// Allowed (a 2xx) or denied (403, or 404 where saying "forbidden" would reveal that the thing
/// exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Y,
    N,
}
use Access::{N, Y};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// Owns the resource the path names (the diary, the item, the page, the request's
    /// addressee); for operations on one's own data, simply a signed-in user.
    Owner,
    /// A friend of the owner; for reservations, the one who requested it.
    Friend,
    /// Signed in, unrelated to the owner.
    Stranger,
}

/// `operation_id` -> (owner, friend, stranger). Operations with no `bearer` security are
/// public and listed in `PUBLIC`; everything else must be here.
const ACCESS: &[(&str, [Access; 3])] = &[
    ("accept_friend_request", [Y, N, N]),
    // The friend opened a room about the owner's item: both are members, the stranger is not.
    // Only the item's owner adds members.
    ("add_chat_member", [Y, N, N]),
    ("approve_reservation", [Y, N, N]),
    ("cancel_reservation", [Y, Y, N]),
    ("create_comment", [Y, Y, N]),
    ("create_diary", [Y, Y, Y]),
    ("create_rental", [Y, Y, Y]),
    ("decline_friend_request", [Y, N, Y]),
    ("delete_comment", [Y, N, N]),
    ("delete_diary", [Y, N, N]),
    ("delete_guestbook_entry", [Y, N, N]),
    ("delete_rental", [Y, N, N]),
    ("get_chat_room", [Y, Y, N]),
    ("get_diary", [Y, Y, N]),
    ("get_me", [Y, Y, Y]),
    ("get_points", [Y, Y, Y]),
    ("get_rental", [Y, Y, Y]),
    ("get_user", [Y, Y, Y]),
    ("list_chat_messages", [Y, Y, N]),
    ("list_chat_rooms", [Y, Y, Y]),
    ("list_comments", [Y, Y, N]),
    ("list_diaries", [Y, Y, Y]),
    ("list_friend_requests", [Y, Y, Y]),
    ("list_friends", [Y, Y, Y]),
    ("list_guestbook", [Y, Y, Y]),
    ("list_item_reservations", [Y, Y, Y]),
    ("list_job_runs", [N, N, N]),
    ("list_jobs", [N, N, N]),
    ("list_my_reservations", [Y, Y, Y]),
    ("list_notifications", [Y, Y, Y]),
    ("list_points_log", [Y, Y, Y]),
    ("list_rentals", [Y, Y, Y]),
    ("logout", [Y, Y, Y]),
    ("mark_all_notifications_read", [Y, Y, Y]),
    ("mark_chat_read", [Y, Y, N]),
    ("mark_notification_read", [Y, N, N]),
    // Owners cannot open a room about their own item.
    ("open_chat_room", [N, Y, Y]),
    ("pause_job", [N, N, N]),
    ("reject_reservation", [Y, N, N]),
    // The path names the owner: a friend ends their own friendship with them; the owner is not
    // their own friend; a stranger has none to end.
    ("remove_friend", [N, Y, N]),
    ("request_friend", [Y, Y, Y]),
    // Owners cannot reserve their own items.
    ("request_reservation", [N, Y, Y]),
    ("resume_job", [N, N, N]),
    ("return_reservation", [Y, N, N]),
    ("search_rentals", [Y, Y, Y]),
    ("spend_points", [Y, Y, Y]),
    ("stream_ticket", [Y, Y, Y]),
    ("stream_notifications", [Y, Y, Y]),
    ("trigger_job", [N, N, N]),
    ("update_diary", [Y, N, N]),
    ("update_rental", [Y, N, N]),
    ("write_guestbook_entry", [Y, Y, Y]),
];

/// Operations anyone may call without a session.
const PUBLIC: &[&str] = &["healthz", "readyz", "metrics", "openapi", "signup", "login"];

/// Written into the owner's private diary: no answer to anyone else may contain it.
const SECRET: &str = "owner-only-7f3a9c";

/// The people and things of one check: the owner's diary (shared with friends), a comment, a
/// notification, a guestbook entry, an item with a requested and an approved reservation by
/// the friend, a friend request from the stranger to the owner, and a chat room the friend
/// opened about the item.
struct Scene {
    owner: Session,
    friend: Session,
    stranger: Session,
    /// Unrelated to everyone: the target of new friend requests.
    loner: Session,
    diary: u64,
    comment: u64,
    notification: u64,
    entry: u64,
    item: u64,
    requested: u64,
    approved: u64,
    friend_request: u64,
    room: u64,
}

fn id(v: &Value) -> u64 {
    v["id"].as_u64().unwrap_or_else(|| panic!("no id in {v}"))
}

async fn post(app: &TestApp, path: &str, who: &Session, body: Value) -> Value {
    let (status, answer) = app.call("POST", path, Some(&who.token), Some(body)).await;
    assert!(status.is_success(), "setting up: POST {path}: {status} {answer}");
    answer
}

impl Scene {
    async fn build(app: &TestApp) -> Scene {
        let (owner, friend, stranger, loner) = (
            app.signup("owner").await,
            app.signup("friend").await,
            app.signup("stranger").await,
            app.signup("loner").await,
        );
        app.befriend(&owner, &friend).await;
        let diary = app.diary(&owner, "friends").await;
        let private = json!({ "title": "mine", "content": SECRET, "emotion": "calm", "visibility": "private" });
        post(app, "/diaries", &owner, private).await;
        // Points for everyone, so that spending is possible.
        for who in [&friend, &stranger] {
            app.diary(who, "private").await;
        }
        let comment = id(&post(app, &format!("/diaries/{diary}/comments"), &owner, json!({ "content": "mine" })).await);
        post(app, &format!("/diaries/{diary}/comments"), &friend, json!({ "content": "nice" })).await;
        let (_, list) = app.call("GET", "/notifications", Some(&owner.token), None).await;
        let notification = id(&list["items"][0]);
        let entry =
            id(&post(app, &format!("/users/{}/guestbook", owner.id), &owner, json!({ "content": "welcome" })).await);
        let item = json!({ "title": "Tent", "category": "camping", "price_per_day": 10 });
        let item = id(&post(app, "/rentals", &owner, item).await);
        let today = chrono::Utc::now().date_naive();
        let day = |d: i64| (today + chrono::Duration::days(d)).to_string();
        let reserve = |from: i64| json!({ "start_date": day(from), "end_date": day(from) });
        let requested = id(&post(app, &format!("/rentals/{item}/reservations"), &friend, reserve(10)).await);
        let approved = id(&post(app, &format!("/rentals/{item}/reservations"), &friend, reserve(0)).await);
        post(app, &format!("/reservations/{approved}/approve"), &owner, json!({})).await;
        let friend_request = id(&post(app, "/friends/requests", &stranger, json!({ "user_id": owner.id })).await);
        let room = id(&post(app, "/chat/rooms", &friend, json!({ "item_id": item })).await);
        Scene {
            owner,
            friend,
            stranger,
            loner,
            diary,
            comment,
            notification,
            entry,
            item,
            requested,
            approved,
            friend_request,
            room,
        }
    }

    fn session(&self, caller: Caller) -> &Session {
        match caller {
            Caller::Owner => &self.owner,
            Caller::Friend => &self.friend,
            Caller::Stranger => &self.stranger,
        }
    }

    /// The path with its parameters naming this scene's things, and a query where one is
    /// required.
    fn path(&self, operation: &str, template: &str) -> String {
        let value = |name: &str| -> String {
            match (operation, name) {
                (_, "name") => "heartbeat".into(),
                (op, "id") if op.contains("chat") => self.room.to_string(),
                (_, "owner_id" | "user_id") => self.owner.id.to_string(),
                ("get_user", "id") => self.owner.id.to_string(),
                ("delete_comment", _) => self.comment.to_string(),
                ("delete_guestbook_entry", _) => self.entry.to_string(),
                ("mark_notification_read", _) => self.notification.to_string(),
                ("return_reservation", _) => self.approved.to_string(),
                ("approve_reservation" | "reject_reservation" | "cancel_reservation", _) => self.requested.to_string(),
                ("accept_friend_request" | "decline_friend_request", _) => self.friend_request.to_string(),
                (op, _) if op.contains("rental") || op.contains("item") || op == "request_reservation" => {
                    self.item.to_string()
                }
                _ => self.diary.to_string(),
            }
        };
        let query = if operation == "search_rentals" { "?q=tent" } else { "" };
        let path = template
            .split('/')
            .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => value(name),
                None => segment.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        format!("{path}{query}")
    }

    /// A body the operation accepts, so that only who calls decides the answer.
    fn body(&self, operation: &str) -> Value {
        let day = (chrono::Utc::now().date_naive() + chrono::Duration::days(20)).to_string();
        match operation {
            "create_diary" => json!({ "title": "t", "content": "c", "emotion": "joy" }),
            "update_diary" | "update_rental" => json!({ "title": "changed" }),
            "create_comment" | "write_guestbook_entry" => json!({ "content": "hello" }),
            "create_rental" => json!({ "title": "Drill", "category": "tools", "price_per_day": 5 }),
            "request_reservation" => json!({ "start_date": day, "end_date": day }),
            "request_friend" => json!({ "user_id": self.loner.id }),
            "spend_points" => json!({ "amount": 1, "reason": "gift" }),
            "open_chat_room" => json!({ "item_id": self.item }),
            "add_chat_member" => json!({ "user_id": self.loner.id }),
            "mark_chat_read" => json!({ "seq": 0 }),
            "stream_ticket" => json!({ "purpose": "notifications" }),
            _ => json!({}),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_owner_friend_stranger_and_anonymous_as_the_table_says() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_NOTIFY_DELIVERY", "local"), ("SERVER_AI_ENABLED", "false")]).await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await?.json().await?;

    let mut operations = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, spec) in item.as_object().expect("a path item") {
            let op = spec["operationId"].as_str().expect("every operation has an id").to_string();
            let bearer = spec["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            operations.push((op, method.to_uppercase(), template.clone(), bearer));
        }
    }
    let missing: Vec<&str> = operations
        .iter()
        .filter(|(op, ..)| !PUBLIC.contains(&op.as_str()) && !ACCESS.iter().any(|(name, _)| name == op))
        .map(|(op, ..)| op.as_str())
        .collect();
    assert!(missing.is_empty(), "operations with no access expectation: add them to ACCESS: {missing:?}");
    let stale: Vec<&str> =
        ACCESS.iter().map(|(name, _)| *name).filter(|name| !operations.iter().any(|(op, ..)| op == name)).collect();
    assert!(stale.is_empty(), "ACCESS names operations the server no longer has: {stale:?}");

    let mut wrong = Vec::new();
    for (op, method, template, bearer) in &operations {
        if PUBLIC.contains(&op.as_str()) {
            assert!(!bearer, "{op} is listed as public but documents a bearer requirement");
            continue;
        }
        assert!(bearer, "{op} needs a session but does not document it");
        let expected = ACCESS.iter().find(|(name, _)| name == op).map(|(_, e)| *e).unwrap();
        // Anonymous first, on a scene of its own.
        let scene = Scene::build(&app).await;
        let path = scene.path(op, template);
        let (status, text) = app.send(method, &path, None, Some(scene.body(op))).await;
        if status != StatusCode::UNAUTHORIZED {
            wrong.push(format!("{op} anonymous: {status} {text}"));
        }
        for (caller, want) in [Caller::Owner, Caller::Friend, Caller::Stranger].into_iter().zip(expected) {
            let scene = Scene::build(&app).await;
            let path = scene.path(op, template);
            let who = scene.session(caller);
            let (status, text) = app.send(method, &path, Some(&who.token), Some(scene.body(op))).await;
            let fits = match want {
                Y => status.is_success(),
                N => status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            };
            if !fits {
                wrong.push(format!("{op} {method} {path} as {caller:?}: expected {want:?}, got {status} {text}"));
            }
            if caller != Caller::Owner && text.contains(SECRET) {
                wrong.push(format!("{op} {method} {path} as {caller:?} leaked the owner's private diary: {text}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} answers differ from ACCESS:\n{}", wrong.len(), wrong.join("\n"));
    Ok(())
}
