//! The OpenAI-compatible embeddings client against a local HTTP server that speaks the
//! `/embeddings` wire format: asks for 384 dimensions, retries on 500, gives up on 401 and
//! on vectors of the wrong size, honours its timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use server::embed::openai::OpenAiEmbedder;
use server::embed::{DIM, EmbedError, Embedder};
use server::secret::Secret;

/// How the stub provider behaves.
#[derive(Clone, Copy)]
struct Behaviour {
    /// The first `failures` calls answer `status` with an error body.
    failures: usize,
    status: StatusCode,
    /// Every call waits this long before answering.
    delay: Duration,
    /// Length of the vectors it returns.
    dims: usize,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self { failures: 0, status: StatusCode::OK, delay: Duration::ZERO, dims: DIM }
    }
}

type Recorded = Arc<std::sync::Mutex<Vec<Value>>>;

/// A provider that answers with vectors whose first component encodes the input's position
/// (not normalised, and listed in reverse order, so the client must sort and normalise).
async fn provider(behaviour: Behaviour) -> (url::Url, Arc<AtomicUsize>, Recorded) {
    let calls = Arc::new(AtomicUsize::new(0));
    let bodies: Recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, b) = (calls.clone(), bodies.clone());
    let app = axum::Router::new().route(
        "/v1/embeddings",
        post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst);
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
                b.lock().unwrap().push(json!({ "auth": auth, "body": body.clone() }));
                tokio::time::sleep(behaviour.delay).await;
                if n < behaviour.failures {
                    return (behaviour.status, axum::Json(json!({ "error": { "message": "no" } })));
                }
                let inputs = body["input"].as_array().map_or(0, Vec::len);
                let data: Vec<Value> = (0..inputs)
                    .rev()
                    .map(|i| {
                        let mut v = vec![0.0f32; behaviour.dims];
                        v[0] = 3.0 * (i as f32 + 1.0);
                        v[1] = 4.0;
                        json!({ "object": "embedding", "index": i, "embedding": v })
                    })
                    .collect();
                (StatusCode::OK, axum::Json(json!({ "object": "list", "data": data, "model": body["model"] })))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!("http://{}/v1", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls, bodies)
}

fn embedder(url: url::Url, timeout: Duration, max_retries: u32) -> OpenAiEmbedder {
    // reqwest is built without a default TLS backend: building a client needs one installed.
    server::install_crypto_provider();
    OpenAiEmbedder::new(url, "text-embedding-3-small".into(), Secret::new("sk-test"), timeout, max_retries).unwrap()
}

fn texts() -> Vec<String> {
    vec!["camping tent".into(), "캠핑 텐트".into()]
}

#[tokio::test]
async fn vectors_come_back_one_per_input_in_order_and_normalised() {
    let (url, calls, bodies) = provider(Behaviour::default()).await;

    let vectors = embedder(url, Duration::from_secs(2), 3).embed(&texts()).await.unwrap();

    assert_eq!(vectors.len(), 2);
    for (i, v) in vectors.iter().enumerate() {
        assert_eq!(v.len(), DIM);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        let first = 3.0 * (i as f32 + 1.0);
        assert!((v[0] - first / (first * first + 16.0).sqrt()).abs() < 1e-5, "vector {i} out of order");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let sent = bodies.lock().unwrap()[0].clone();
    assert_eq!(sent["auth"], "Bearer sk-test");
    assert_eq!(sent["body"]["model"], "text-embedding-3-small");
    assert_eq!(sent["body"]["dimensions"], DIM);
    assert_eq!(sent["body"]["input"], json!(["camping tent", "캠핑 텐트"]));
}

#[tokio::test]
async fn a_server_error_is_retried_then_the_answer_is_used() {
    let (url, calls, _) =
        provider(Behaviour { failures: 1, status: StatusCode::INTERNAL_SERVER_ERROR, ..Default::default() }).await;

    let vectors = embedder(url, Duration::from_secs(2), 3).embed(&texts()).await.unwrap();

    assert_eq!(vectors.len(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_rejected_key_is_permanent_and_not_retried() {
    let (url, calls, _) =
        provider(Behaviour { failures: 100, status: StatusCode::UNAUTHORIZED, ..Default::default() }).await;

    let err = embedder(url, Duration::from_secs(2), 3).embed(&texts()).await.unwrap_err();

    assert!(matches!(err, EmbedError::Permanent(_)), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn vectors_of_the_wrong_dimension_are_permanent() {
    let (url, calls, _) = provider(Behaviour { dims: 1536, ..Default::default() }).await;

    let err = embedder(url, Duration::from_secs(2), 3).embed(&texts()).await.unwrap_err();

    assert!(matches!(err, EmbedError::Permanent(_)), "{err}");
    assert!(err.to_string().contains("1536"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_slow_provider_times_out_as_a_transient_error() {
    let (url, calls, _) = provider(Behaviour { delay: Duration::from_secs(5), ..Default::default() }).await;
    let started = Instant::now();

    let err = embedder(url, Duration::from_millis(300), 1).embed(&texts()).await.unwrap_err();

    assert!(matches!(err, EmbedError::Transient(_)), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one try and one retry");
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout bounds each attempt");
}

#[tokio::test]
async fn no_texts_need_no_request() {
    let (url, calls, _) = provider(Behaviour::default()).await;

    let vectors = embedder(url, Duration::from_secs(2), 3).embed(&[]).await.unwrap();

    assert!(vectors.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
