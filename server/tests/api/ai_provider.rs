//! The OpenAI-compatible client against a local HTTP server that speaks the chat-completions
//! wire format: retries on 503, gives up on 401, honours its timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use server::ai::openai::OpenAiGenerator;
use server::ai::{CommentGenerator, DiaryPrompt, GenerateError};
use server::diary::Emotion;
use server::secret::Secret;

/// A provider that fails `failures` times with `status`, then answers; it records requests.
async fn provider(
    failures: usize,
    status: StatusCode,
    delay: Duration,
) -> (url::Url, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<Value>>>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, b) = (calls.clone(), bodies.clone());
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst);
                b.lock().unwrap().push(json!({ "auth": headers.get("authorization").and_then(|v| v.to_str().ok()), "body": body }));
                tokio::time::sleep(delay).await;
                if n < failures {
                    return (status, axum::Json(json!({ "error": { "message": "try later" } })));
                }
                (StatusCode::OK, axum::Json(json!({ "choices": [{ "message": { "role": "assistant", "content": "  그랬군요. 힘내세요.  " } }] })))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!("http://{}/v1", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls, bodies)
}

fn prompt() -> DiaryPrompt {
    DiaryPrompt {
        diary_id: 1, title: "오늘".into(), content: "시험을 망쳤다".into(), emotion: Emotion::Sadness
    }
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff_then_the_answer_is_used() {
    let (url, calls, bodies) = provider(2, StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO).await;
    let generator =
        OpenAiGenerator::new(url, "test-model".into(), Secret::new("sk-test"), Duration::from_secs(2), 3).unwrap();

    let text = generator.generate(&prompt()).await.unwrap();

    assert_eq!(text, "그랬군요. 힘내세요.");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let first = bodies.lock().unwrap()[0].clone();
    assert_eq!(first["auth"], "Bearer sk-test");
    assert_eq!(first["body"]["model"], "test-model");
    assert!(first["body"]["messages"][0]["content"].as_str().unwrap().contains("Korean"), "{first}");
}

#[tokio::test]
async fn a_rejected_key_is_permanent_and_not_retried() {
    let (url, calls, _) = provider(100, StatusCode::UNAUTHORIZED, Duration::ZERO).await;
    let generator = OpenAiGenerator::new(url, "m".into(), Secret::new("bad"), Duration::from_secs(2), 3).unwrap();

    let err = generator.generate(&prompt()).await.unwrap_err();

    assert!(matches!(err, GenerateError::Permanent(_)), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_slow_provider_times_out_as_a_transient_error() {
    let (url, calls, _) = provider(0, StatusCode::OK, Duration::from_secs(5)).await;
    let generator = OpenAiGenerator::new(url, "m".into(), Secret::new("k"), Duration::from_millis(300), 1).unwrap();
    let started = Instant::now();

    let err = generator.generate(&prompt()).await.unwrap_err();

    assert!(matches!(err, GenerateError::Transient(_)), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one try and one retry");
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout bounds each attempt");
}
