use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestResult, World};

async fn wait_for_ai_comment(app: &TestApp, token: &str, diary: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, page) = app.call("GET", &format!("/diaries/{diary}/comments"), Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        if let Some(ai) = page["items"].as_array().unwrap().iter().find(|c| c["ai"] == true) {
            return ai.clone();
        }
        assert!(Instant::now() < deadline, "no AI comment on diary {diary} within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_korean(text: &str) -> bool {
    text.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diary_gets_one_empathic_ai_comment_in_its_own_language() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let a = app.signup("a").await;
    let (_, korean) = app
        .call(
            "POST",
            "/diaries",
            Some(&a.token),
            Some(json!({"title": "시험", "content": "시험에 떨어져서 너무 슬펐다", "emotion": "sadness"})),
        )
        .await;
    let (_, english) = app
        .call(
            "POST",
            "/diaries",
            Some(&a.token),
            Some(json!({"title": "Exam", "content": "I passed my exam today!", "emotion": "joy"})),
        )
        .await;

    let ko = wait_for_ai_comment(&app, &a.token, korean["id"].as_u64().unwrap()).await;
    let en = wait_for_ai_comment(&app, &a.token, english["id"].as_u64().unwrap()).await;

    assert!(is_korean(ko["content"].as_str().unwrap()), "{ko}");
    assert!(!is_korean(en["content"].as_str().unwrap()), "{en}");
    assert!(ko["author_id"].is_null());
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM comments WHERE ai_for_diary IS NOT NULL").fetch_one(&world.db).await?;
    assert_eq!(count, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ai_comment_is_not_in_the_request_path_and_survives_a_restart() -> TestResult {
    let world = World::new().await;
    // A slow provider (2 s per comment) on an instance that is then shut down mid-job.
    let slow = world.spawn(&[("SERVER_AI_OFFLINE_LATENCY_MS", "2000"), ("SERVER_AI_JOB_LEASE_S", "5")]).await;
    let a = slow.signup("a").await;
    let started = Instant::now();
    let diary = slow.diary(&a, "private").await;
    assert!(started.elapsed() < Duration::from_millis(1500), "the diary write waited for the AI");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(slow); // shutdown mid-job: the claimed job is abandoned with its lease
    tokio::time::sleep(Duration::from_millis(2500)).await; // past the provider's 2 s

    let (status, claimed_by): (String, String) =
        sqlx::query_as("SELECT status, claimed_by FROM ai_comment_jobs WHERE diary_id = ?")
            .bind(diary)
            .fetch_one(&world.db)
            .await?;
    assert_eq!(status, "running", "the job must be claimed and unfinished when its instance stops");

    let fresh = world.spawn(&[]).await;
    let ai = wait_for_ai_comment(&fresh, &a.token, diary).await;
    let finished_by: String = sqlx::query_scalar("SELECT claimed_by FROM ai_comment_jobs WHERE diary_id = ?")
        .bind(diary)
        .fetch_one(&world.db)
        .await?;
    assert_ne!(finished_by, claimed_by, "the restarted instance, not the stopped one, wrote the comment");
    assert_eq!(finished_by, fresh.instance);

    assert!(ai["content"].as_str().is_some_and(|c| !c.is_empty()));
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM comments WHERE diary_id = ? AND ai_for_diary IS NOT NULL")
            .bind(diary)
            .fetch_one(&world.db)
            .await?;
    assert_eq!(count, 1);
    Ok(())
}
