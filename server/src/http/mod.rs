//! The HTTP surface: one module per resource, each with its own `router()`. Handlers only
//! translate between HTTP and the domain modules.
//!
//! Each handler carries its OpenAPI operation (`#[utoipa::path]`) and is registered with
//! `utoipa_axum::routes!`, which adds the route and the operation together: a route added
//! with a plain `.route(..)` would be served but missing from `/openapi.json`.

pub mod accounts;
pub mod admin;
pub mod browser;
pub mod chat;
pub mod diaries;
pub mod extract;
pub mod friends;
pub mod guestbook;
pub mod notifications;
pub mod ops;
pub mod points;
pub mod rentals;

use std::time::Duration;

use axum::Router;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::openapi::ApiDoc;
use crate::state::AppState;

/// Request bodies above this are refused before they are read (diaries are 10,000 characters):
/// 413.
const BODY_LIMIT: usize = 256 * 1024;

/// The longest wait for the next piece of a request body: a client that announces more than
/// it sends gets 408 then, instead of holding a connection and a task for the whole request
/// timeout.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a request may take in all: 504.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every route with its operation.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(accounts::router())
        .merge(friends::router())
        .merge(diaries::router())
        .merge(guestbook::router())
        .merge(points::router())
        .merge(notifications::router())
        .merge(rentals::router())
        .merge(chat::router())
        .merge(ops::router())
        .merge(admin::router())
}

/// The OpenAPI document of [`router`], served at `GET /openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// The whole application, as a pure function of its state.
pub fn router(state: AppState) -> Router {
    let (api, _document) = routes().split_for_parts();
    // A WebSocket upgrade, not an operation of the document: described in the `chat` tag.
    let api = api.route("/ws/chat", axum::routing::get(chat::websocket));
    // The web client's pages: served, not operations of the document.
    let api = api.merge(browser::web_client());
    let api = api.fallback(not_found).method_not_allowed_fallback(method_not_allowed);
    let cors = browser::cors(&state.browser);
    let api = api
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), crate::metrics::track))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::GATEWAY_TIMEOUT, REQUEST_TIMEOUT))
        .layer(TraceLayer::new_for_http());
    // Outermost: a preflight is answered before anything else looks at it.
    let api = match cors {
        Some(cors) => api.layer(cors),
        None => api,
    };
    api.with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found("route_not_found", format!("no route for {}", uri.path()))
}

async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({
            "error": "method_not_allowed",
            "message": format!("{method} is not allowed on {}", uri.path()),
        })),
    )
}
