//! Chat: rooms over REST (only members see them), and STOMP over WebSocket across instances
//! for every relay strategy: receipts with the stored seq, messages with their headers, resume
//! after a seq, idempotent resends, protocol errors answered with ERROR and a close, business
//! errors answered on the error destination with the connection left open.

use std::time::Duration;

use loadtest::probe::stomp::{self as probe, ConnectOptions, StompError, StompReader, StompWriter};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stomp::{Command, Frame};

use crate::helpers::{Session, TestApp, TestResult, World, assert_error};
use crate::notifications::wait_ready;
use crate::rentals::{create, tent};

const WAIT: Duration = Duration::from_secs(5);

pub fn ws_url(app: &TestApp) -> String {
    format!("{}/ws/chat", app.base.replacen("http://", "ws://", 1))
}

async fn open_room(app: &TestApp, renter: &Session, item: u64) -> Value {
    let (status, room) = app.call("POST", "/chat/rooms", Some(&renter.token), Some(json!({ "item_id": item }))).await;
    assert!(status == StatusCode::CREATED || status == StatusCode::OK, "{status} {room}");
    room
}

async fn connect(app: &TestApp, who: &Session) -> (StompWriter, StompReader) {
    let (w, r, connected) =
        probe::connect(&ConnectOptions::new(ws_url(app), who.token.clone())).await.expect("CONNECTED");
    assert_eq!(connected.frame.get("version"), Some("1.2"));
    assert_eq!(connected.subprotocol.as_deref(), Some("v12.stomp"));
    assert_eq!(connected.frame.get("user-name"), Some(who.id.to_string().as_str()));
    (w, r)
}

/// The next frame, which must be of `command`.
async fn expect(reader: &mut StompReader, command: Command) -> Frame {
    let frame = reader.next_within(WAIT).await.expect("a frame in time").expect("the connection is open");
    assert_eq!(frame.command, command, "{frame:?} / body {}", String::from_utf8_lossy(&frame.body));
    frame
}

/// Nothing arrives within `wait`.
async fn expect_nothing(reader: &mut StompReader, wait: Duration) {
    match reader.next_within(wait).await {
        Err(StompError::Timeout(_)) => {}
        other => panic!("expected nothing, got {other:?}"),
    }
}

async fn subscribe(w: &mut StompWriter, r: &mut StompReader, id: &str, room: u64, last_seq: Option<u64>) {
    w.subscribe(id, &format!("/rooms/{room}"), last_seq, Some(&format!("sub-{id}"))).await.unwrap();
    let receipt = expect(r, Command::Receipt).await;
    assert_eq!(receipt.get("receipt-id"), Some(format!("sub-{id}").as_str()));
}

/// SENDs and waits for its RECEIPT; returns the stored seq.
async fn send(w: &mut StompWriter, r: &mut StompReader, room: u64, body: &str, key: Option<&str>) -> u64 {
    let receipt = format!("send-{body}");
    w.send_message(&format!("/rooms/{room}"), body, key, Some(&receipt)).await.unwrap();
    let frame = expect(r, Command::Receipt).await;
    assert_eq!(frame.get("receipt-id"), Some(receipt.as_str()));
    frame.get("seq").and_then(|s| s.parse().ok()).expect("a RECEIPT of SEND names the seq")
}

/// A renter and an owner with an item and the room about it.
pub struct Pair {
    pub renter: Session,
    pub owner: Session,
    pub room: u64,
}

pub async fn pair(app: &TestApp) -> Pair {
    let owner = app.signup("owner").await;
    let renter = app.signup("renter").await;
    let item = create(app, &owner, tent()).await["id"].as_u64().unwrap();
    let room = open_room(app, &renter, item).await["id"].as_u64().unwrap();
    Pair { renter, owner, room }
}

pub async fn instances(world: &World, relay: &str, extra: &[(&str, &str)]) -> (TestApp, TestApp) {
    let mut env = vec![("SERVER_CHAT_RELAY", relay), ("SERVER_AI_ENABLED", "false"), ("SERVER_EMBED_WORKERS", "0")];
    env.extend_from_slice(extra);
    let (one, two) = (world.spawn(&env).await, world.spawn(&env).await);
    wait_ready(&one).await;
    wait_ready(&two).await;
    (one, two)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_opened_once_listed_with_unread_counts_and_hidden_from_non_members() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_EMBED_WORKERS", "0"), ("SERVER_AI_ENABLED", "false")]).await;
    let owner = app.signup("owner").await;
    let renter = app.signup("renter").await;
    let stranger = app.signup("stranger").await;
    let item = create(&app, &owner, tent()).await["id"].as_u64().unwrap();

    let (status, room) = app.call("POST", "/chat/rooms", Some(&renter.token), Some(json!({ "item_id": item }))).await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let id = room["id"].as_u64().unwrap();
    assert_eq!(room["members"], json!([owner.id.min(renter.id), owner.id.max(renter.id)]));
    assert_eq!(room["destination"], format!("/rooms/{id}"));
    assert_eq!(room["last_seq"], 0);
    let (status, again) = app.call("POST", "/chat/rooms", Some(&renter.token), Some(json!({ "item_id": item }))).await;
    assert_eq!(status, StatusCode::OK, "the same room again: {again}");
    assert_eq!(again["id"], id);

    // The owner cannot open a room with themselves; a missing item is 404.
    let (status, body) = app.call("POST", "/chat/rooms", Some(&owner.token), Some(json!({ "item_id": item }))).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) =
        app.call("POST", "/chat/rooms", Some(&renter.token), Some(json!({ "item_id": 999_999 }))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "rental_not_found");
    let (status, body) = app.call("POST", "/chat/rooms", Some(&renter.token), Some(json!({ "item_id": "x" }))).await;
    assert!(status.is_client_error() && status != StatusCode::NOT_FOUND, "{status} {body}");

    // Two messages from the renter: the owner has 2 unread, and sees the last one.
    let (mut w, mut r) = connect(&app, &renter).await;
    assert_eq!(send(&mut w, &mut r, id, "안녕하세요, 텐트 빌릴 수 있을까요?", None).await, 1);
    assert_eq!(send(&mut w, &mut r, id, "this weekend", None).await, 2);
    let (_, rooms) = app.call("GET", "/chat/rooms", Some(&owner.token), None).await;
    let listed = &rooms["items"][0];
    assert_eq!(listed["id"], id);
    assert_eq!(listed["unread"], 2);
    assert_eq!(listed["last_message"]["body"], "this weekend");
    assert_eq!(listed["last_message"]["seq"], 2);
    let (status, read) =
        app.call("POST", &format!("/chat/rooms/{id}/read"), Some(&owner.token), Some(json!({ "seq": 1 }))).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["unread"], 1);
    let (status, body) =
        app.call("POST", &format!("/chat/rooms/{id}/read"), Some(&owner.token), Some(json!({ "seq": 3 }))).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");

    // History both ways, and its bad parameters.
    let (_, newest) = app.call("GET", &format!("/chat/rooms/{id}/messages?limit=1"), Some(&owner.token), None).await;
    assert_eq!(newest.as_array().map(Vec::len), Some(1));
    assert_eq!(newest[0]["seq"], 2);
    let (_, after) = app.call("GET", &format!("/chat/rooms/{id}/messages?after_seq=0"), Some(&owner.token), None).await;
    let seqs: Vec<u64> = after.as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(after[0]["sender_id"], renter.id);
    for bad in ["limit=0", "limit=501", "after_seq=x", "before_seq=-1", "before_seq=2&after_seq=1"] {
        let (status, body) =
            app.call("GET", &format!("/chat/rooms/{id}/messages?{bad}"), Some(&owner.token), None).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    }

    // A stranger sees nothing of it: 404 everywhere, as for a room that does not exist.
    for path in [format!("/chat/rooms/{id}"), format!("/chat/rooms/{id}/messages")] {
        let (status, body) = app.call("GET", &path, Some(&stranger.token), None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "room_not_found");
    }
    let (status, body) =
        app.call("POST", &format!("/chat/rooms/{id}/read"), Some(&stranger.token), Some(json!({ "seq": 1 }))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "room_not_found");
    let (_, theirs) = app.call("GET", "/chat/rooms", Some(&stranger.token), None).await;
    assert_eq!(theirs["items"], json!([]));

    // Only the owner adds members; the renter is refused, the stranger does not see the room.
    let (status, body) = app
        .call(
            "POST",
            &format!("/chat/rooms/{id}/members"),
            Some(&renter.token),
            Some(json!({ "user_id": stranger.id })),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app
        .call(
            "POST",
            &format!("/chat/rooms/{id}/members"),
            Some(&stranger.token),
            Some(json!({ "user_id": stranger.id })),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "room_not_found");
    let (status, body) = app
        .call("POST", &format!("/chat/rooms/{id}/members"), Some(&owner.token), Some(json!({ "user_id": 999_999 })))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "user_not_found");
    let (status, room) = app
        .call("POST", &format!("/chat/rooms/{id}/members"), Some(&owner.token), Some(json!({ "user_id": stranger.id })))
        .await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(room["members"].as_array().map(Vec::len), Some(3));
    let (status, _) = app.call("GET", &format!("/chat/rooms/{id}/messages"), Some(&stranger.token), None).await;
    assert_eq!(status, StatusCode::OK, "a member now");
    Ok(())
}

/// Renter on one instance, owner on the other: the owner gets the message when the relay
/// crosses instances, and with `local` only a member on the sender's instance does.
async fn a_message_crosses_instances(relay: &str, crosses: bool) -> TestResult {
    let world = World::new().await;
    let (one, two) = instances(&world, relay, &[]).await;
    let p = pair(&one).await;
    let (mut rw, mut rr) = connect(&one, &p.renter).await;
    let (mut ow, mut or) = connect(&two, &p.owner).await;
    subscribe(&mut rw, &mut rr, "r", p.room, None).await;
    subscribe(&mut ow, &mut or, "o", p.room, None).await;

    let seq = send(&mut rw, &mut rr, p.room, "is the tent free?", Some("k-1")).await;
    assert_eq!(seq, 1);
    // The sender's own subscription (same instance) always gets it.
    let own = expect(&mut rr, Command::Message).await;
    assert_eq!(own.get("seq"), Some("1"));
    assert_eq!(own.get("subscription"), Some("r"));
    assert_eq!(own.get("destination"), Some(format!("/rooms/{}", p.room).as_str()));
    assert_eq!(own.get("sender"), Some(p.renter.id.to_string().as_str()));
    assert_eq!(own.get("message-id"), Some(format!("{}-1", p.room).as_str()));
    assert_eq!(own.body, b"is the tent free?");
    if crosses {
        let theirs = expect(&mut or, Command::Message).await;
        assert_eq!(theirs.get("seq"), Some("1"));
        assert_eq!(theirs.get("subscription"), Some("o"));
        assert_eq!(theirs.body, b"is the tent free?");
    } else {
        expect_nothing(&mut or, Duration::from_millis(500)).await;
    }

    // A resend with the same key stores nothing and answers the same seq; receivers that got
    // it do not get it again.
    let again = send(&mut rw, &mut rr, p.room, "is the tent free?", Some("k-1")).await;
    assert_eq!(again, 1);
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chat_messages WHERE room_id = ?")
        .bind(p.room)
        .fetch_one(&world.db)
        .await?;
    assert_eq!(stored, 1);
    expect_nothing(&mut rr, Duration::from_millis(300)).await;
    expect_nothing(&mut or, Duration::from_millis(300)).await;

    // And back: the owner answers from the other instance.
    assert_eq!(send(&mut ow, &mut or, p.room, "yes, from Friday", None).await, 2);
    if crosses {
        assert_eq!(expect(&mut rr, Command::Message).await.get("seq"), Some("2"));
    } else {
        expect_nothing(&mut rr, Duration::from_millis(500)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_relay_stays_on_its_instance() -> TestResult {
    a_message_crosses_instances("local", false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pubsub_relay_crosses_instances() -> TestResult {
    a_message_crosses_instances("redis-pubsub", true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovering_relay_crosses_instances() -> TestResult {
    a_message_crosses_instances("redis-recovering", true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_was_away_resumes_after_its_last_seq_exactly() -> TestResult {
    let world = World::new().await;
    let (one, two) = instances(&world, "redis-recovering", &[]).await;
    let p = pair(&one).await;
    let (mut rw, mut rr) = connect(&one, &p.renter).await;
    let (mut ow, mut or) = connect(&two, &p.owner).await;
    subscribe(&mut ow, &mut or, "o", p.room, None).await;
    send(&mut rw, &mut rr, p.room, "m1", None).await;
    assert_eq!(expect(&mut or, Command::Message).await.get("seq"), Some("1"));
    ow.close().await;
    drop(or);

    for body in ["m2", "m3", "m4"] {
        send(&mut rw, &mut rr, p.room, body, None).await;
    }
    // Back with its last seq: exactly 2, 3, 4 before the RECEIPT, then live ones.
    let (mut ow, mut or) = connect(&two, &p.owner).await;
    ow.subscribe("o2", &format!("/rooms/{}", p.room), Some(1), Some("back")).await?;
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let m = expect(&mut or, Command::Message).await;
        assert_eq!(m.get("subscription"), Some("o2"));
        seqs.push(m.get("seq").unwrap().to_string());
    }
    assert_eq!(seqs, ["2", "3", "4"]);
    assert_eq!(expect(&mut or, Command::Receipt).await.get("receipt-id"), Some("back"));
    send(&mut rw, &mut rr, p.room, "m5", None).await;
    assert_eq!(expect(&mut or, Command::Message).await.get("seq"), Some("5"));
    expect_nothing(&mut or, Duration::from_millis(300)).await;

    // Without last-seq a subscription starts at the present: nothing old arrives, and its
    // RECEIPT says where it stands, the point to resume from if it drops before any message.
    let (mut nw, mut nr) = connect(&two, &p.owner).await;
    nw.subscribe("fresh", &format!("/rooms/{}", p.room), None, Some("f")).await?;
    let receipt = expect(&mut nr, Command::Receipt).await;
    assert_eq!(receipt.get("last-seq"), Some("5"), "{receipt:?}");
    expect_nothing(&mut nr, Duration::from_millis(300)).await;
    Ok(())
}

/// Sends raw bytes on a fresh connection (after CONNECT when `connected`), and returns the
/// ERROR frame the server answers with; the connection must then close.
async fn error_for(app: &TestApp, who: &Session, connected: bool, raw: &[u8]) -> Frame {
    let (mut w, mut r) = if connected {
        connect(app, who).await
    } else {
        let opts = ConnectOptions::new(ws_url(app), who.token.clone());
        // Open the socket only: a CONNECT that fails is the point of some cases.
        let (w, r) = raw_socket(&opts).await;
        (w, r)
    };
    w.send_raw(raw.to_vec()).await.unwrap();
    let error = expect(&mut r, Command::Error).await;
    assert!(error.get("message").is_some_and(|m| !m.is_empty()), "{error:?}");
    assert!(matches!(r.next_within(WAIT).await, Ok(None) | Err(StompError::Socket(_))), "closed after ERROR");
    error
}

/// A WebSocket without CONNECT: the probe's connect sends it, so build one that sends nothing.
async fn raw_socket(opts: &ConnectOptions) -> (StompWriter, StompReader) {
    probe::open(opts).await.expect("the upgrade succeeds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_get_an_error_frame_and_a_close_and_nothing_else_breaks() -> TestResult {
    let world = World::new().await;
    let (app, _) = instances(&world, "redis-recovering", &[("SERVER_CHAT_MAX_FRAME_KIB", "16")]).await;
    let p = pair(&app).await;
    // A bystander in the same room keeps working through everything below.
    let (mut ow, mut or) = connect(&app, &p.owner).await;
    subscribe(&mut ow, &mut or, "o", p.room, None).await;

    let cases: Vec<(bool, Vec<u8>, &str)> = vec![
        (false, b"\x00\x01garbage\xff\n\n\x00".to_vec(), "unknown command"),
        (false, b"SEND\ndestination:/rooms/1\n\nhi\x00".to_vec(), "before CONNECT"),
        (false, b"CONNECT\naccept-version:1.2\npasscode:not-a-token\n\n\x00".to_vec(), "unknown or expired"),
        (false, b"CONNECT\naccept-version:2.0\npasscode:x\n\n\x00".to_vec(), "no version"),
        (true, b"FOO\n\n\x00".to_vec(), "unknown command"),
        (true, b"ACK\nid:1\n\n\x00".to_vec(), "ack:auto"),
        (true, b"BEGIN\ntransaction:t\n\n\x00".to_vec(), "no transactions"),
        (true, b"SEND\ndestination:/rooms/1\nbad\\qescape:x\n\n\x00".to_vec(), "escape"),
        (true, b"SEND\ndestination:/rooms/1\ncontent-length:99999999\n\n\x00".to_vec(), "body longer"),
        (true, format!("SEND\n{}\n\x00", "h:v\n".repeat(10_000)).into_bytes(), "headers"),
        (true, b"MESSAGE\ndestination:/rooms/1\n\n\x00".to_vec(), "server frame"),
        (true, b"SUBSCRIBE\ndestination:/rooms/1\n\n\x00".to_vec(), "id"),
    ];
    for (connected, raw, says) in cases {
        let error = error_for(&app, &p.renter, connected, &raw).await;
        let text = format!("{} {}", error.get("message").unwrap_or_default(), String::from_utf8_lossy(&error.body));
        assert!(text.contains(says), "{:?}: {text}", String::from_utf8_lossy(&raw[..raw.len().min(60)]));
    }

    // A receipt header on the offending frame is echoed as receipt-id.
    let error = error_for(&app, &p.renter, true, b"NACK\nid:1\nreceipt:r-9\n\n\x00").await;
    assert_eq!(error.get("receipt-id"), Some("r-9"));

    // The same subscription id twice.
    let (mut w, mut r) = connect(&app, &p.renter).await;
    subscribe(&mut w, &mut r, "same", p.room, None).await;
    w.subscribe("same", &format!("/rooms/{}", p.room), None, None).await?;
    let error = expect(&mut r, Command::Error).await;
    assert!(error.get("message").unwrap().contains("duplicate subscription"), "{error:?}");

    // A 10 MB message is refused without the server buffering it.
    let (mut w, mut r) = connect(&app, &p.renter).await;
    let huge = format!("SEND\ndestination:/rooms/{}\n\n{}\x00", p.room, "x".repeat(10 * 1024 * 1024));
    let _ = w.send_raw(huge.into_bytes()).await;
    assert!(!matches!(r.next_within(WAIT).await, Ok(Some(Frame { command: Command::Receipt | Command::Message, .. }))));

    // A frame split over many WebSocket messages is one frame.
    let (mut w, mut r) = connect(&app, &p.renter).await;
    let body = "긴 메시지 ".repeat(300);
    let frame = format!("SEND\ndestination:/rooms/{}\nreceipt:split\n\n{body}\x00", p.room).into_bytes();
    for piece in frame.chunks(100) {
        w.send_raw(piece.to_vec()).await?;
    }
    assert_eq!(expect(&mut r, Command::Receipt).await.get("receipt-id"), Some("split"));

    // The bystander got exactly the one valid message, and can still send.
    let m = expect(&mut or, Command::Message).await;
    assert_eq!(m.body, body.as_bytes());
    expect_nothing(&mut or, Duration::from_millis(300)).await;
    send(&mut ow, &mut or, p.room, "still here", None).await;
    assert_eq!(expect(&mut or, Command::Message).await.body, b"still here");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_errors_arrive_on_the_error_destination_and_the_connection_stays_open() -> TestResult {
    let world = World::new().await;
    let (app, _) = instances(&world, "redis-pubsub", &[]).await;
    let p = pair(&app).await;
    let other = pair(&app).await;
    let (mut w, mut r) = connect(&app, &p.renter).await;
    w.subscribe("errors", "/user/queue/errors", None, Some("e")).await?;
    expect(&mut r, Command::Receipt).await;

    // Someone else's room: no subscription, no message stored, an error MESSAGE.
    w.subscribe("x", &format!("/rooms/{}", other.room), None, Some("sub-x")).await?;
    let error = expect(&mut r, Command::Message).await;
    assert_eq!(error.get("destination"), Some("/user/queue/errors"));
    assert_eq!(error.get("subscription"), Some("errors"));
    assert_eq!(error.get("receipt-id"), Some("sub-x"));
    let body: Value = serde_json::from_slice(&error.body)?;
    assert_eq!(body["error"], "room_not_found");
    w.send_message(&format!("/rooms/{}", other.room), "let me in", None, Some("s-x")).await?;
    let body: Value = serde_json::from_slice(&expect(&mut r, Command::Message).await.body)?;
    assert_eq!(body["error"], "room_not_found");
    for (destination, code) in [("/topic/everything", "unknown_destination"), ("/rooms/0", "unknown_destination")] {
        w.send_message(destination, "hi", None, None).await?;
        let body: Value = serde_json::from_slice(&expect(&mut r, Command::Message).await.body)?;
        assert_eq!(body["error"], code, "{destination}");
    }
    w.send_message(&format!("/rooms/{}", p.room), &"x".repeat(4_001), None, None).await?;
    let body: Value = serde_json::from_slice(&expect(&mut r, Command::Message).await.body)?;
    assert_eq!(body["error"], "invalid_body");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chat_messages").fetch_one(&world.db).await?;
    assert_eq!(stored, 0);

    // The connection is still good for its own room.
    subscribe(&mut w, &mut r, "mine", p.room, None).await;
    send(&mut w, &mut r, p.room, "fine", None).await;
    assert_eq!(expect(&mut r, Command::Message).await.body, b"fine");

    // A client that did not subscribe to the error destination would never learn of the
    // refusal: it gets an ERROR naming the receipt of the refused frame, and the close.
    let raw = format!("SEND\ndestination:/rooms/{}\nreceipt:lost-1\n\nlet me in\x00", other.room);
    let error = error_for(&app, &p.renter, true, raw.as_bytes()).await;
    assert_eq!(error.get("message"), Some("room_not_found"));
    assert_eq!(error.get("receipt-id"), Some("lost-1"));
    assert!(String::from_utf8_lossy(&error.body).contains("/user/queue/errors"), "{error:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_three_heart_beats_and_a_revoked_session_ends_the_connection() -> TestResult {
    let world = World::new().await;
    let (app, _) = instances(
        &world,
        "redis-recovering",
        &[("SERVER_CHAT_HEARTBEAT_MS", "200"), ("SERVER_STREAM_SESSION_CHECK_S", "1")],
    )
    .await;
    let p = pair(&app).await;

    // Heart-beats agreed at max(200, 300) ms each way: the server sends them, and closes a
    // client silent for three intervals.
    let mut opts = ConnectOptions::new(ws_url(&app), p.renter.token.clone());
    opts.heartbeat = (300, 300);
    let started = tokio::time::Instant::now();
    let (_w, mut r, connected) = probe::connect(&opts).await?;
    assert_eq!(connected.frame.get("heart-beat"), Some("200,200"));
    let error = expect(&mut r, Command::Error).await;
    assert!(error.get("message").unwrap().contains("heart-beat"), "{error:?}");
    let after = started.elapsed();
    assert!(after >= Duration::from_millis(900), "not before 3 x 300 ms: {after:?}");
    assert!(r.heartbeats().len() >= 2, "the server sent heart-beats: {:?}", r.heartbeats());
    // Within the agreed 300 ms on average (a server late every time fails), no gap beyond the
    // 1.5 intervals common clients tolerate (one hiccup of a busy test machine does not).
    let gaps: Vec<u128> = r.heartbeats().windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    let mean = gaps.iter().sum::<u128>() / gaps.len() as u128;
    assert!(mean <= 300 + 30 && gaps.iter().all(|gap| *gap <= 450), "heart-beats every 300 ms: {gaps:?}");

    // A client that sends heart-beats stays; logging out ends the connection.
    let (mut w, mut r, _) = probe::connect(&opts).await?;
    let beats = tokio::spawn(async move {
        for _ in 0..30 {
            if w.send_raw(b"\n".to_vec()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    expect_nothing(&mut r, Duration::from_millis(1_200)).await;
    let (status, _) = app.call("POST", "/auth/logout", Some(&p.renter.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let error = expect(&mut r, Command::Error).await;
    assert!(error.get("message").unwrap().contains("session ended"), "{error:?}");
    beats.abort();

    // And the token no longer connects.
    assert!(matches!(probe::connect(&opts).await, Err(StompError::Refused { .. })));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_1_0_and_no_subprotocol_are_served_too() -> TestResult {
    let world = World::new().await;
    let (app, _) = instances(&world, "local", &[]).await;
    let p = pair(&app).await;
    // No sub-protocol offered (as stomp.py does): accepted, none answered.
    let mut opts = ConnectOptions::new(ws_url(&app), p.renter.token.clone());
    opts.subprotocols.clear();
    let (_, _, connected) = probe::connect(&opts).await?;
    assert_eq!(connected.subprotocol, None);
    // Only 1.0 offered: 1.0 answered, and a subscription without id works.
    let (mut w, mut r) = raw_socket(&ConnectOptions::new(ws_url(&app), p.renter.token.clone())).await;
    w.send_raw(format!("CONNECT\naccept-version:1.0\npasscode:{}\n\n\x00", p.renter.token).into_bytes()).await?;
    assert_eq!(expect(&mut r, Command::Connected).await.get("version"), Some("1.0"));
    w.send_raw(format!("SUBSCRIBE\ndestination:/rooms/{}\nreceipt:s\n\n\x00", p.room).into_bytes()).await?;
    expect(&mut r, Command::Receipt).await;
    w.send_raw(format!("SEND\ndestination:/rooms/{}\n\nold client\x00", p.room).into_bytes()).await?;
    let m = expect(&mut r, Command::Message).await;
    assert_eq!(m.get("subscription"), Some(format!("/rooms/{}", p.room).as_str()));
    assert_eq!(m.body, b"old client");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_take_consecutive_seqs_and_one_key_stores_once() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_EMBED_WORKERS", "0"), ("SERVER_AI_ENABLED", "false")]).await;
    let p = pair(&app).await;
    let pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(8).connect(&world.database_url).await?;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (pool, room, sender) = (pool.clone(), p.room, p.renter.id);
        let key = if i % 4 == 0 { Some("same".to_string()) } else { None };
        tasks.push(tokio::spawn(async move {
            server::chat::store::send(&pool, room, sender, &format!("n{i}"), key.as_deref()).await
        }));
    }
    let mut fresh = Vec::new();
    let mut keyed = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let sent = task.await??.expect("the room exists");
        if i % 4 == 0 {
            keyed.push(sent.message.seq);
        }
        if !sent.duplicate {
            fresh.push(sent.message.seq);
        }
    }
    // 30 without a key and the keyed one once: seqs 1..=31, each once, no gap.
    fresh.sort_unstable();
    assert_eq!(fresh, (1..=31).collect::<Vec<u64>>());
    assert!(keyed.windows(2).all(|w| w[0] == w[1]), "every send of one key answers the same seq: {keyed:?}");
    let stored: Vec<u64> = sqlx::query_scalar("SELECT seq FROM chat_messages WHERE room_id = ? ORDER BY seq")
        .bind(p.room)
        .fetch_all(&pool)
        .await?;
    assert_eq!(stored, (1..=31).collect::<Vec<u64>>());
    let last: u64 =
        sqlx::query_scalar("SELECT last_seq FROM chat_rooms WHERE id = ?").bind(p.room).fetch_one(&pool).await?;
    assert_eq!(last, 31, "the seqs of refused resends were handed on");
    assert_eq!(server::chat::store::send(&pool, 999_999, p.renter.id, "x", None).await?, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_is_disconnected_and_counted_and_the_room_goes_on() -> TestResult {
    let world = World::new().await;
    let (app, _) = instances(&world, "local", &[("SERVER_CHAT_OUTBOUND_QUEUE", "8")]).await;
    let p = pair(&app).await;
    // The owner subscribes, then never reads again: its socket buffers fill, then its queue.
    let (mut ow, mut or) = connect(&app, &p.owner).await;
    subscribe(&mut ow, &mut or, "o", p.room, None).await;
    let (mut rw, mut rr) = connect(&app, &p.renter).await;
    let body = "가".repeat(4_000);
    let mut receipts = 0;
    for n in 0..3_000 {
        rw.send_message(&format!("/rooms/{}", p.room), &body, None, Some(&format!("r{n}"))).await?;
        if n % 100 == 99 {
            // Keep the sender's own side drained: it is not the slow one.
            while let Ok(Ok(Some(frame))) = tokio::time::timeout(Duration::from_millis(1), rr.next()).await {
                receipts += u64::from(frame.command == Command::Receipt);
            }
        }
        if n % 100 == 0
            && metric(&app.send("GET", "/metrics", None, None).await.1, "server_chat_slow_consumers_total") >= 1.0
        {
            break;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = app.send("GET", "/metrics", None, None).await;
        if metric(&metrics, "server_chat_slow_consumers_total") >= 1.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no slow consumer counted:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The slow member's connection is gone: what it finally reads ends in a close.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match or.next().await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the slow member's connection was not closed");
    // The sender's connection works on.
    while let Ok(Ok(Some(frame))) = tokio::time::timeout(Duration::from_millis(500), rr.next()).await {
        receipts += u64::from(frame.command == Command::Receipt);
    }
    assert!(receipts > 0, "the sender got its receipts");
    let seq = send(&mut rw, &mut rr, p.room, "still going", None).await;
    assert!(seq > 1);
    Ok(())
}

/// The sum of a metric's samples in a Prometheus text page.
fn metric(page: &str, name: &str) -> f64 {
    loadtest::probe::metrics::total(&loadtest::probe::metrics::parse(page), name)
}
