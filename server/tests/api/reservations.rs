//! Reservations: the request -> approve/reject -> cancel/return life cycle, who may do what,
//! bad dates, and the approval race across instances (no two approved reservations of one
//! item overlap, whatever the interleaving).

use chrono::{Days, NaiveDate, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Session, TestApp, TestResult, World, assert_error};
use crate::rentals::{create, tent};

fn day(offset: u64) -> NaiveDate {
    Utc::now().date_naive().checked_add_days(Days::new(offset)).unwrap()
}

fn dates(start: u64, end: u64) -> Value {
    json!({"start_date": day(start).to_string(), "end_date": day(end).to_string()})
}

async fn reserve(app: &TestApp, who: &Session, item: u64, body: Value) -> (StatusCode, Value) {
    app.call("POST", &format!("/rentals/{item}/reservations"), Some(&who.token), Some(body)).await
}

async fn act(app: &TestApp, who: &Session, reservation: u64, action: &str) -> (StatusCode, Value) {
    app.call("POST", &format!("/reservations/{reservation}/{action}"), Some(&who.token), None).await
}

async fn requested(app: &TestApp, who: &Session, item: u64, body: Value) -> u64 {
    let (status, r) = reserve(app, who, item, body).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"], "requested");
    r["id"].as_u64().unwrap()
}

/// Pairs of approved reservations of `item` that overlap: must always be 0.
async fn double_bookings(world: &World, item: u64) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM rental_reservations a JOIN rental_reservations b \
         ON a.item_id = b.item_id AND a.id < b.id \
         WHERE a.item_id = ? AND a.status = 'approved' AND b.status = 'approved' \
         AND a.start_date <= b.end_date AND b.start_date <= a.end_date",
    )
    .bind(item)
    .fetch_one(&world.db)
    .await
    .expect("the overlap query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_goes_from_requested_to_approved_to_returned() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_EMBED_WORKERS", "0")]).await;
    let (owner, borrower) = (app.signup("owner").await, app.signup("borrower").await);
    let item = create(&app, &owner, tent()).await["id"].as_u64().unwrap();

    let id = requested(&app, &borrower, item, dates(0, 2)).await;
    let (status, body) = act(&app, &borrower, id, "approve").await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, r) = act(&app, &owner, id, "approve").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!((r["status"].as_str(), r["days"].as_i64()), (Some("approved"), Some(3)), "{r}");

    // The days are taken now: another request for them is refused up front.
    let other = app.signup("other").await;
    let (status, body) = reserve(&app, &other, item, dates(2, 4)).await;
    assert_error(status, &body, StatusCode::CONFLICT, "dates_unavailable");

    let (status, body) = act(&app, &owner, id, "approve").await;
    assert_error(status, &body, StatusCode::CONFLICT, "invalid_transition");
    let (status, r) = act(&app, &owner, id, "return").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "returned");
    let (status, body) = act(&app, &borrower, id, "cancel").await;
    assert_error(status, &body, StatusCode::CONFLICT, "invalid_transition");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_reject_either_side_cancels_and_strangers_see_nothing() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_EMBED_WORKERS", "0")]).await;
    let (owner, a, b) = (app.signup("owner").await, app.signup("a").await, app.signup("b").await);
    let item = create(&app, &owner, tent()).await["id"].as_u64().unwrap();
    let ra = requested(&app, &a, item, dates(5, 6)).await;
    let rb = requested(&app, &b, item, dates(5, 6)).await;
    let later = requested(&app, &a, item, dates(20, 21)).await;

    let (status, body) = act(&app, &b, ra, "cancel").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "reservation_not_found");
    let (status, r) = act(&app, &owner, ra, "reject").await;
    assert_eq!((status, r["status"].as_str()), (StatusCode::OK, Some("rejected")), "{r}");
    let (status, body) = act(&app, &owner, ra, "approve").await;
    assert_error(status, &body, StatusCode::CONFLICT, "invalid_transition");
    let (status, r) = act(&app, &b, rb, "cancel").await;
    assert_eq!((status, r["status"].as_str()), (StatusCode::OK, Some("cancelled")), "{r}");
    let (status, _) = act(&app, &owner, later, "approve").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = act(&app, &owner, later, "return").await;
    assert_error(status, &body, StatusCode::CONFLICT, "reservation_not_started");
    let (status, r) = act(&app, &owner, later, "cancel").await;
    assert_eq!((status, r["status"].as_str()), (StatusCode::OK, Some("cancelled")), "{r}");

    let (_, all) = app.call("GET", &format!("/rentals/{item}/reservations"), Some(&owner.token), None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
    let (_, mine) = app.call("GET", &format!("/rentals/{item}/reservations"), Some(&b.token), None).await;
    let mine = mine["items"].as_array().unwrap();
    assert_eq!(mine.iter().map(|r| r["id"].as_u64().unwrap()).collect::<Vec<_>>(), vec![rb]);
    let (_, own) = app.call("GET", "/me/reservations", Some(&a.token), None).await;
    assert_eq!(own["items"].as_array().unwrap().len(), 2, "{own}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reservations_get_a_clear_4xx_naming_the_problem() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_EMBED_WORKERS", "0")]).await;
    let (owner, borrower) = (app.signup("owner").await, app.signup("borrower").await);
    let item = create(&app, &owner, tent()).await["id"].as_u64().unwrap();
    let yesterday = Utc::now().date_naive().pred_opt().unwrap().to_string();

    let cases = [
        (dates(5, 3), "end_date"),
        (json!({"start_date": yesterday, "end_date": day(1).to_string()}), "start_date"),
        (dates(1, 95), "end_date"),
        (dates(400, 401), "start_date"),
        (json!({"start_date": "next friday", "end_date": day(1).to_string()}), "start_date"),
        (json!({"start_date": day(1).to_string()}), "end_date"),
    ];
    for (body, field) in cases {
        let (status, err) = reserve(&app, &borrower, item, body.clone()).await;
        assert_error(status, &err, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    let (status, err) = reserve(&app, &owner, item, dates(1, 2)).await;
    assert_error(status, &err, StatusCode::FORBIDDEN, "forbidden");
    assert!(err["message"].as_str().unwrap().contains("your own"), "{err}");
    let (status, err) = reserve(&app, &borrower, 999_999, dates(1, 2)).await;
    assert_error(status, &err, StatusCode::NOT_FOUND, "rental_not_found");
    let (status, err) = act(&app, &owner, 999_999, "approve").await;
    assert_error(status, &err, StatusCode::NOT_FOUND, "reservation_not_found");
    Ok(())
}

/// Twenty requests for the same days of one item, approved all at once through three instances:
/// exactly one approval wins, every other answers 409 `booking_conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_approvals_across_instances_book_an_item_once() -> TestResult {
    let world = World::new().await;
    let quiet = [("SERVER_EMBED_WORKERS", "0"), ("SERVER_AI_ENABLED", "false")];
    let apps = [world.spawn(&quiet).await, world.spawn(&quiet).await, world.spawn(&quiet).await];
    let owner = apps[0].signup("owner").await;
    let item = create(&apps[0], &owner, tent()).await["id"].as_u64().unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let borrower = apps[n % 3].signup("borrower").await;
        for _ in 0..4 {
            ids.push(requested(&apps[n % 3], &borrower, item, dates(10, 12)).await);
        }
    }

    let answers =
        futures::future::join_all(ids.iter().enumerate().map(|(n, id)| act(&apps[n % 3], &owner, *id, "approve")))
            .await;

    let approved = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(approved, 1, "answers: {answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_error(*status, body, StatusCode::CONFLICT, "booking_conflict");
        assert!(body["message"].as_str().unwrap().contains("retry"), "{body}");
    }
    assert_eq!(double_bookings(&world, item).await, 0);
    let versions: u64 = sqlx::query_scalar("SELECT booking_version FROM rental_items WHERE id = ?")
        .bind(item)
        .fetch_one(&world.db)
        .await?;
    assert_eq!(versions, 1, "exactly one approval committed");

    // Days that do not overlap are still free for a later approval.
    let late = apps[1].signup("late").await;
    let free = requested(&apps[1], &late, item, dates(13, 14)).await;
    let (status, body) = act(&apps[2], &owner, free, "approve").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(double_bookings(&world, item).await, 0);
    Ok(())
}

/// Overlapping but different windows, approved concurrently: whatever wins, the approved set
/// never overlaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_approvals_of_staggered_windows_never_overlap() -> TestResult {
    let world = World::new().await;
    let quiet = [("SERVER_EMBED_WORKERS", "0"), ("SERVER_AI_ENABLED", "false")];
    let apps = [world.spawn(&quiet).await, world.spawn(&quiet).await, world.spawn(&quiet).await];
    let owner = apps[0].signup("owner").await;
    let borrower = apps[1].signup("borrower").await;
    let item = create(&apps[0], &owner, tent()).await["id"].as_u64().unwrap();
    let mut ids = Vec::new();
    for n in 0..12u64 {
        ids.push(requested(&apps[1], &borrower, item, dates(10 + n, 12 + n)).await);
    }
    let answers =
        futures::future::join_all(ids.iter().enumerate().map(|(n, id)| act(&apps[n % 3], &owner, *id, "approve")))
            .await;
    assert!(answers.iter().any(|(s, _)| *s == StatusCode::OK), "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_error(*status, body, StatusCode::CONFLICT, "booking_conflict");
    }
    assert_eq!(double_bookings(&world, item).await, 0);
    Ok(())
}

/// The claim `rental::approval` rests on, checked on the database itself: two transactions
/// read the same `booking_version`; the first bumps it and commits; the second's conditional
/// UPDATE, blocked until then, changes no row (or fails with 1020 under snapshot isolation) —
/// under READ COMMITTED and REPEATABLE READ alike. It never succeeds on the stale version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_booking_version_updates_no_row_under_both_isolation_levels() -> TestResult {
    use sqlx::Connection;
    let world = World::new().await;
    let app = world.spawn(&[("SERVER_EMBED_WORKERS", "0")]).await;
    let owner = app.signup("owner").await;
    let item = create(&app, &owner, tent()).await["id"].as_u64().unwrap();
    let bump = "UPDATE rental_items SET booking_version = booking_version + 1 WHERE id = ? AND booking_version = ?";
    let read = "SELECT booking_version FROM rental_items WHERE id = ?";

    for isolation in ["READ-COMMITTED", "REPEATABLE-READ"] {
        let mut first = sqlx::MySqlConnection::connect(&world.database_url).await?;
        let mut second = sqlx::MySqlConnection::connect(&world.database_url).await?;
        for conn in [&mut first, &mut second] {
            sqlx::query(&format!("SET SESSION transaction_isolation = '{isolation}'")).execute(&mut *conn).await?;
            sqlx::query("BEGIN").execute(&mut *conn).await?;
        }
        let seen: u64 = sqlx::query_scalar(read).bind(item).fetch_one(&mut first).await?;
        let seen_too: u64 = sqlx::query_scalar(read).bind(item).fetch_one(&mut second).await?;
        assert_eq!(seen, seen_too);
        let won = sqlx::query(bump).bind(item).bind(seen).execute(&mut first).await?.rows_affected();
        assert_eq!(won, 1);

        let loser = tokio::spawn(async move {
            let result = sqlx::query(bump).bind(item).bind(seen).execute(&mut second).await.map(|r| r.rows_affected());
            let _ = sqlx::query("ROLLBACK").execute(&mut second).await;
            result
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!loser.is_finished(), "{isolation}: the second UPDATE waits for the first's row lock");
        sqlx::query("COMMIT").execute(&mut first).await?;

        match loser.await? {
            Ok(rows) => assert_eq!(rows, 0, "{isolation}: the stale UPDATE must change nothing"),
            Err(e) => {
                let code = e.as_database_error().and_then(|d| d.code()).map(|c| c.to_string());
                let number = e
                    .as_database_error()
                    .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
                    .map(|d| d.number());
                assert_eq!(number, Some(1020), "{isolation}: unexpected error {e} ({code:?})");
            }
        }
    }
    let version: u64 = sqlx::query_scalar("SELECT booking_version FROM rental_items WHERE id = ?")
        .bind(item)
        .fetch_one(&world.db)
        .await?;
    assert_eq!(version, 2, "one bump per isolation level, never two");
    Ok(())
}
