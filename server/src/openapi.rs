//! The frame of the OpenAPI document: its info, the bearer-token scheme, the error body and the
//! error answers many operations share. The operations themselves are the `#[utoipa::path]`
//! of each handler in `http/`, registered with the handler by `utoipa_axum::routes!`, so the
//! router and the document are built from the same list and cannot disagree.
//!
//! Served at `GET /openapi.json`; see https://spec.openapis.org/oas/v3.1.0.

use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

/// The name operations use to require the bearer token: `security(("bearer" = []))`.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Emotion diary API",
        description = "Accounts, friends, diaries with comments, guestbooks, points and real-time \
            notifications.\n\nEvery error answer has the body `ErrorBody`. Besides the answers each \
            operation lists, any operation may answer 500 `internal` (the cause is logged, never shown) \
            or 504 with an empty body when it takes longer than 30 seconds."
    ),
    modifiers(&BearerScheme),
    components(schemas(ErrorBody), responses(BadRequest, Unauthorized, Unavailable)),
    tags(
        (name = "accounts", description = "Sign-up, sessions and profiles"),
        (name = "friends", description = "Friend requests and friendships"),
        (name = "diaries", description = "Diaries and their comments"),
        (name = "guestbook", description = "Messages on a user's page"),
        (name = "points", description = "The caller's points"),
        (name = "notifications", description = "Stored notifications and their live stream"),
        (name = "rentals", description = "Items lent between users, and search over them"),
        (name = "reservations", description = "Reservations of items: request, approve, reject, cancel, return"),
        (name = "chat", description = "Rooms between a renter and an item's owner, and their history. Live \
            messages go over STOMP 1.2 on the WebSocket `GET /ws/chat` (sub-protocols `v12.stomp`, `v11.stomp`, \
            `v10.stomp`): CONNECT with the session token as `passcode`; SUBSCRIBE and SEND to a room's \
            `destination` (`/rooms/{id}`); SUBSCRIBE with `last-seq: n` to get what was missed after seq n \
            (with the `redis-recovering` relay); SEND with `idempotency-key` so a resend stores nothing twice; \
            SUBSCRIBE to `/user/queue/errors` to get errors such as `room_not_found` as MESSAGE frames."),
        (name = "ops", description = "Health, readiness, metrics and this document"),
        (name = "admin", description = "Clustered batch jobs: status, history, pause, resume, trigger (admins only)"),
    )
)]
pub struct ApiDoc;

/// Adds the scheme `security(("bearer" = []))` refers to: the token of `POST /auth/login`.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "`Authorization: Bearer <token>` with the `token` of `POST /auth/login`. A browser may sign in with \
                 `\"cookie\": true` and send the `session` cookie instead; a POST, PUT, PATCH or DELETE with the \
                 cookie also sends `X-CSRF-Token` (the login's `csrf_token`). Streams also open with a ticket of \
                 `POST /auth/stream-ticket`.",
            ))
            .build();
        doc.components.get_or_insert_with(Default::default).add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The body of every error answer.
// `crate::error::ApiError` renders the body; this type only describes it, and a unit test
// below holds the two together.
#[derive(ToSchema)]
pub struct ErrorBody {
    /// A stable code to branch on, such as `diary_not_found`.
    pub error: String,
    /// What went wrong, for people; may change between versions.
    pub message: String,
    /// The request field at fault; only in 422 answers.
    #[schema(nullable = false)]
    pub field: Option<String>,
}

/// The request is malformed: a path id that is not a number (`invalid_path`), a query that
/// does not parse (`invalid_query`, `invalid_cursor`, `invalid_last_event_id`), or a body that
/// is not the JSON the operation takes (`malformed_json`, `invalid_body`,
/// `missing_json_content_type`, `unreadable_body`).
#[derive(ToResponse)]
pub struct BadRequest(pub ErrorBody);

/// `unauthorized`: the bearer token is missing, malformed, unknown or expired.
#[derive(ToResponse)]
pub struct Unauthorized(pub ErrorBody);

/// `database_unavailable` or `session_store_unavailable`: a dependency is down; retry later.
#[derive(ToResponse)]
pub struct Unavailable(pub ErrorBody);

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::response::IntoResponse;
    use serde_json::Value;

    use crate::error::ApiError;

    /// The served document, as clients parse it.
    fn document() -> Value {
        serde_json::to_value(crate::http::openapi()).expect("the document serialises")
    }

    /// `(method, path, operation)` for every operation in the document.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                ops.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
        ops
    }

    fn statuses(op: &Value) -> Vec<u16> {
        op["responses"].as_object().expect("responses").keys().map(|s| s.parse().expect("a status code")).collect()
    }

    fn requires_bearer(op: &Value) -> bool {
        op["security"].as_array().is_some_and(|reqs| reqs.iter().any(|r| r.get(super::BEARER).is_some()))
    }

    /// Operations that take no parameters, no body and no token: no request to them is wrong.
    const INPUTLESS: [(&str, &str); 4] =
        [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json")];

    #[test]
    fn every_operation_declares_a_client_error_unless_it_takes_no_input() {
        for (method, path, op) in operations(&document()) {
            let takes_input = op.get("parameters").is_some() || op.get("requestBody").is_some() || requires_bearer(&op);
            if INPUTLESS.contains(&(method.as_str(), path.as_str())) {
                assert!(
                    !takes_input,
                    "{method} {path} takes input: document its 4xx answers and drop it from INPUTLESS"
                );
            } else {
                assert!(statuses(&op).iter().any(|s| (400..500).contains(s)), "{method} {path} declares no 4xx answer");
            }
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut seen = BTreeSet::new();
        for (method, path, op) in operations(&document()) {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(seen.insert(id.to_string()), "{method} {path} reuses the operationId {id}");
        }
    }

    #[test]
    fn the_bearer_token_is_required_everywhere_but_the_public_operations() {
        let public: BTreeSet<(&str, &str)> = [
            ("POST", "/auth/signup"),
            ("POST", "/auth/login"),
            ("GET", "/healthz"),
            ("GET", "/readyz"),
            ("GET", "/metrics"),
            ("GET", "/openapi.json"),
        ]
        .into();
        for (method, path, op) in operations(&document()) {
            let is_public = public.contains(&(method.as_str(), path.as_str()));
            assert_eq!(requires_bearer(&op), !is_public, "{method} {path}: security is {}", op["security"]);
            if requires_bearer(&op) {
                assert!(statuses(&op).contains(&401), "{method} {path} needs a token but declares no 401");
            }
        }
    }

    #[test]
    fn path_parameters_are_exactly_the_template_placeholders() {
        for (method, path, op) in operations(&document()) {
            let in_template: BTreeSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().expect("a parameter name"))
                .collect();
            assert_eq!(declared, in_template, "{method} {path}");
        }
    }

    /// Every `$ref` in `value`, recursively.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not a local reference"));
            assert!(doc.pointer(pointer).is_some(), "{r} points at nothing");
        }
    }

    #[tokio::test]
    async fn the_error_schema_matches_what_api_error_renders() {
        let doc = document();
        let schema = &doc["components"]["schemas"]["ErrorBody"];
        let properties: BTreeSet<&str> =
            schema["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
        let required: BTreeSet<&str> =
            schema["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();

        for error in
            [ApiError::invalid("title", "must not be empty"), ApiError::not_found("diary_not_found", "no diary 1")]
        {
            let body = axum::body::to_bytes(error.into_response().into_body(), usize::MAX).await.expect("a body");
            let body: Value = serde_json::from_slice(&body).expect("a JSON body");
            let keys: BTreeSet<&str> = body.as_object().expect("an object").keys().map(String::as_str).collect();
            assert!(keys.is_subset(&properties), "{body} has keys the schema lacks");
            assert!(required.is_subset(&keys), "{body} lacks keys the schema requires");
        }
    }

    #[test]
    fn documented_limits_are_the_validated_ones() {
        let doc = document();
        let limit = doc["paths"]["/diaries"]["get"]["parameters"]
            .as_array()
            .and_then(|params| params.iter().find(|p| p["name"] == "limit"))
            .expect("GET /diaries takes `limit`");
        assert_eq!(limit["schema"]["maximum"].as_u64(), Some(u64::from(crate::pagination::MAX_LIMIT)));

        let max_length = |schema: &str, field: &str| {
            doc["components"]["schemas"][schema]["properties"][field]["maxLength"].as_u64().map(|n| n as usize)
        };
        assert_eq!(max_length("DiaryInput", "title"), Some(crate::diary::TITLE_MAX));
        assert_eq!(max_length("DiaryInput", "content"), Some(crate::diary::CONTENT_MAX));
        assert_eq!(max_length("CommentInput", "content"), Some(crate::diary::comments::CONTENT_MAX));
        assert_eq!(max_length("GuestbookEntryInput", "content"), Some(crate::social::guestbook::CONTENT_MAX));
    }
}
