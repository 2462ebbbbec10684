//! `GET /openapi.json` describes the routes the server has, all of them and only them: every
//! documented operation reaches its handler and answers only what it documents, and the
//! routes are pinned in `ROUTES` so that a new one cannot go undocumented unnoticed.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestResult, World};

/// Every route the server has, copied from the `http` modules. A route added there must be
/// added here and documented, or `the_document_lists_exactly_the_routes_the_server_has` fails.
const ROUTES: [(&str, &str); 58] = [
    ("POST", "/auth/signup"),
    ("POST", "/auth/login"),
    ("POST", "/auth/logout"),
    ("POST", "/auth/stream-ticket"),
    ("GET", "/me"),
    ("GET", "/users/{id}"),
    ("GET", "/friends"),
    ("DELETE", "/friends/{user_id}"),
    ("POST", "/friends/requests"),
    ("GET", "/friends/requests"),
    ("POST", "/friends/requests/{id}/accept"),
    ("POST", "/friends/requests/{id}/decline"),
    ("GET", "/diaries"),
    ("POST", "/diaries"),
    ("GET", "/diaries/{id}"),
    ("PATCH", "/diaries/{id}"),
    ("DELETE", "/diaries/{id}"),
    ("GET", "/diaries/{id}/comments"),
    ("POST", "/diaries/{id}/comments"),
    ("DELETE", "/comments/{id}"),
    ("GET", "/users/{owner_id}/guestbook"),
    ("POST", "/users/{owner_id}/guestbook"),
    ("DELETE", "/guestbook/{id}"),
    ("GET", "/points"),
    ("GET", "/points/log"),
    ("POST", "/points/spend"),
    ("GET", "/notifications"),
    ("GET", "/notifications/stream"),
    ("POST", "/notifications/{id}/read"),
    ("POST", "/notifications/read-all"),
    ("GET", "/rentals"),
    ("POST", "/rentals"),
    ("GET", "/rentals/search"),
    ("GET", "/rentals/{id}"),
    ("PATCH", "/rentals/{id}"),
    ("DELETE", "/rentals/{id}"),
    ("GET", "/rentals/{id}/reservations"),
    ("POST", "/rentals/{id}/reservations"),
    ("GET", "/me/reservations"),
    ("POST", "/reservations/{id}/approve"),
    ("POST", "/reservations/{id}/reject"),
    ("POST", "/reservations/{id}/cancel"),
    ("POST", "/reservations/{id}/return"),
    ("POST", "/chat/rooms"),
    ("GET", "/chat/rooms"),
    ("GET", "/chat/rooms/{id}"),
    ("POST", "/chat/rooms/{id}/members"),
    ("GET", "/chat/rooms/{id}/messages"),
    ("POST", "/chat/rooms/{id}/read"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/admin/jobs"),
    ("GET", "/admin/jobs/{name}/runs"),
    ("POST", "/admin/jobs/{name}/pause"),
    ("POST", "/admin/jobs/{name}/resume"),
    ("POST", "/admin/jobs/{name}/trigger"),
];

/// The methods a path item may hold that axum routes (it answers HEAD and OPTIONS itself).
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

type Route = (String, String);

/// One documented operation.
struct Operation {
    method: String,
    path: String,
    spec: Value,
}

impl Operation {
    fn requires_bearer(&self) -> bool {
        self.spec["security"].as_array().is_some_and(|reqs| reqs.iter().any(|r| r.get("bearer").is_some()))
    }

    /// The path with each `{param}` replaced by a placeholder id.
    fn concrete_path(&self) -> String {
        self.path
            .split('/')
            .map(|segment| if segment.starts_with('{') && segment.ends_with('}') { "1" } else { segment })
            .collect::<Vec<_>>()
            .join("/")
    }
}

fn operations(doc: &Value) -> Vec<Operation> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    let mut ops = Vec::new();
    for (path, item) in paths {
        for (method, spec) in item.as_object().expect("a path item is an object") {
            ops.push(Operation { method: method.to_uppercase(), path: path.clone(), spec: spec.clone() });
        }
    }
    ops
}

fn documented(doc: &Value) -> BTreeSet<Route> {
    operations(doc).into_iter().map(|op| (op.method, op.path)).collect()
}

/// Follows a local `$ref` (`#/components/...`) to what it names.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("{r} resolves to nothing")),
        None => value,
    }
}

async fn fetch_document(app: &TestApp) -> Value {
    let resp = app.client.get(app.url("/openapi.json")).send().await.expect("GET /openapi.json");
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "served as {content_type}");
    resp.json().await.expect("the document is JSON")
}

/// What the server answered, with the body read only when it ends (not for an event stream).
struct Answer {
    status: StatusCode,
    media_type: String,
    body: Value,
}

async fn send(app: &TestApp, op: &Operation, token: Option<&str>) -> Answer {
    let mut req = app.client.request(op.method.parse().expect("a method"), app.url(&op.concrete_path()));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if op.spec.get("requestBody").is_some() {
        req = req.json(&json!({}));
    }
    let resp = req.send().await.expect("the request is sent");
    let status = resp.status();
    let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim().to_string();
    let body = match media_type.as_str() {
        "application/json" => resp.json().await.expect("a JSON body"),
        // Endless by design: the status and type are the answer.
        "text/event-stream" => Value::Null,
        _ => Value::String(resp.text().await.unwrap_or_default()),
    };
    Answer { status, media_type, body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_json_served_without_a_token() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;

    let doc = fetch_document(&app).await;

    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "openapi: {}", doc["openapi"]);
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()), "info: {}", doc["info"]);
    assert!(doc["info"]["version"].as_str().is_some_and(|v| !v.is_empty()), "info: {}", doc["info"]);
    assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()), "no paths");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for op in operations(&doc) {
        assert!(METHODS.contains(&op.method.as_str()), "{} {} is not a routable method", op.method, op.path);
        let responses = op.spec["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{} {} documents no response", op.method, op.path);
        for status in responses.keys() {
            assert!(
                status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                "{} {}: {status}",
                op.method,
                op.path
            );
        }
    }
    assert_eq!(doc, serde_json::to_value(server::http::openapi())?, "the served document is the built one");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_exactly_the_routes_the_server_has() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;

    let served = documented(&fetch_document(&app).await);

    let pinned: BTreeSet<Route> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(served.difference(&pinned).collect::<Vec<_>>(), Vec::<&Route>::new(), "documented, not in ROUTES");
    assert_eq!(pinned.difference(&served).collect::<Vec<_>>(), Vec::<&Route>::new(), "in ROUTES, not documented");
    // The router and the document are built by the same `routes!` calls, so the document's
    // operations are the router's routes by construction.
    assert_eq!(served, documented(&serde_json::to_value(server::http::openapi())?));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_reaches_its_handler_and_answers_as_documented() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let doc = fetch_document(&app).await;
    // Rental item 1 exists, so that its operations get as far as reading their input.
    let owner = app.signup("owner").await;
    let item = json!({ "title": "Tent", "category": "camping", "price_per_day": 10 });
    assert_eq!(app.call("POST", "/rentals", Some(&owner.token), Some(item)).await.0, StatusCode::CREATED);

    for op in operations(&doc) {
        let route = format!("{} {}", op.method, op.concrete_path());
        // A session per operation: logging out must not spoil the operations after it.
        let session = app.signup("prober").await;
        let token = op.requires_bearer().then_some(session.token.as_str());

        let answer = send(&app, &op, token).await;

        assert_ne!(answer.body["error"], "route_not_found", "{route} is not routed: {}", answer.body);
        assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{route}: {}", answer.body);
        let documented = &op.spec["responses"][answer.status.as_str()];
        assert!(
            !documented.is_null(),
            "{route} answered {} which it does not document: {}",
            answer.status,
            answer.body
        );
        let documented = resolve(&doc, documented);
        if let Some(content) = documented["content"].as_object() {
            assert!(content.contains_key(&answer.media_type), "{route} answered {}", answer.media_type);
            let schema = resolve(&doc, &content[&answer.media_type]["schema"]);
            for key in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                assert!(answer.body.get(key).is_some(), "{route}: no `{key}` in {}", answer.body);
            }
        }
        if answer.status == StatusCode::UNPROCESSABLE_ENTITY
            && answer.body["message"].as_str().is_some_and(|m| m.contains("is required"))
        {
            let field = answer.body["field"].as_str().expect("a 422 names its field");
            assert!(
                documented_as_required(&doc, &op, field),
                "{route} requires `{field}` but documents it as optional"
            );
        }
        if op.requires_bearer() {
            let anonymous = send(&app, &op, None).await;
            assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{route} without a token: {}", anonymous.body);
        }
    }
    Ok(())
}

/// Whether `field` is a required property of `op`'s JSON body or a required parameter.
fn documented_as_required(doc: &Value, op: &Operation, field: &str) -> bool {
    let body = &op.spec["requestBody"]["content"]["application/json"]["schema"];
    let in_body = !body.is_null()
        && resolve(doc, body)["required"].as_array().into_iter().flatten().any(|r| r.as_str() == Some(field));
    let as_parameter = op.spec["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["name"].as_str() == Some(field) && p["required"] == true);
    in_body || as_parameter
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_a_documented_path_does_not_list_are_refused() -> TestResult {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let doc = fetch_document(&app).await;
    let routes = documented(&doc);
    let session = app.signup("prober").await;

    for path in routes.iter().map(|(_, path)| path).collect::<BTreeSet<_>>() {
        for method in METHODS.iter().filter(|m| !routes.contains(&(m.to_string(), path.clone()))) {
            let op = Operation { method: method.to_string(), path: path.clone(), spec: Value::Null };

            let answer = send(&app, &op, Some(&session.token)).await;

            assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {}", answer.body);
            assert_eq!(answer.body["error"], "method_not_allowed", "{method} {path}");
        }
    }
    Ok(())
}
