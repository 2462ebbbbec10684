//! What a web page needs that an API client does not: a session cookie (with CSRF protection)
//! next to the bearer token, CORS for the origins the operator lists, and the web client
//! itself, served from `/app/`.
//!
//! * **Cookie sessions.** `POST /auth/login` with `"cookie": true` sets `session` (`HttpOnly`,
//!   `SameSite=Lax`, `Secure` when `SERVER_COOKIE_SECURE`) holding the same Redis session a
//!   bearer token names, and `csrf` (readable by the page). Every endpoint accepts the cookie
//!   where it accepts the token; an unsafe method (`POST`, `PUT`, `PATCH`, `DELETE`)
//!   authenticated by the cookie must also send `X-CSRF-Token` (the login answer's
//!   `csrf_token`, or the `csrf` cookie): a page of another site can make the browser send the
//!   cookie, but cannot read or guess that value. A bearer token needs no CSRF token: no
//!   browser attaches one by itself.
//! * **Stream tickets** (`POST /auth/stream-ticket`, [`crate::accounts::tickets`]) for a page
//!   of another site, where the cookie is not sent: `EventSource` and `WebSocket` cannot set a
//!   header, so the ticket goes in the URL or in STOMP's `passcode`.
//! * **CORS** (`SERVER_CORS_ORIGINS`, none by default): listed origins may call the API with
//!   credentials; preflights are answered; any other origin gets no CORS header, so its
//!   browser refuses to hand the answer to the page.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::secret::Secret;

/// The cookie that holds the session token.
pub const SESSION_COOKIE: &str = "session";
/// The cookie that holds the session's CSRF token, readable by the page's script.
pub const CSRF_COOKIE: &str = "csrf";
/// The header an unsafe request authenticated by the cookie carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Browsers: which other origins may call the API, the cookie's flags, stream tickets.
#[derive(Debug, Clone)]
pub struct BrowserSettings {
    /// Exact origins (`https://app.example`) allowed by CORS, with credentials. Empty: none.
    pub cors_origins: Vec<HeaderValue>,
    /// Mark cookies `Secure` (sent over HTTPS only): set it wherever TLS fronts the server.
    pub cookie_secure: bool,
    /// The key of stream tickets, the same on every instance. `None`: a random key of this
    /// process, so a ticket opens streams on the instance that issued it only.
    pub ticket_secret: Option<Secret>,
    /// How long a ticket opens streams.
    pub ticket_ttl: Duration,
}

/// An origin as CORS compares it: `scheme://host[:port]`, nothing more.
pub fn parse_origin(raw: &str) -> Result<HeaderValue, String> {
    let example = "e.g. https://app.example or http://127.0.0.1:5173";
    if raw == "*" {
        return Err(format!(
            "`*` would let every site act with the user's cookie: list each origin, comma-separated ({example})"
        ));
    }
    let url = url::Url::parse(raw).map_err(|e| format!("`{raw}` is not an origin ({e}): {example}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{raw}` is not an http(s) origin: {example}"));
    }
    let origin = url.origin().ascii_serialization();
    if origin != raw.trim_end_matches('/') || url.path() != "/" || url.query().is_some() {
        return Err(format!("`{raw}` is not an origin: write `{origin}`, with no path, query or trailing slash"));
    }
    HeaderValue::from_str(&origin).map_err(|_| format!("`{raw}` is not an origin: {example}"))
}

/// The CORS layer for the listed origins; `None` when none is listed.
pub fn cors(settings: &BrowserSettings) -> Option<CorsLayer> {
    if settings.cors_origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(settings.cors_origins.clone()))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static(CSRF_HEADER),
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([header::RETRY_AFTER, header::LOCATION])
            .max_age(Duration::from_secs(600)),
    )
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` values that open a browser session: the token (`HttpOnly`) and its CSRF token
/// (readable by the page), both for `max_age`.
pub fn session_cookies(token: &str, csrf: &str, max_age: Duration, secure: bool) -> [HeaderValue; 2] {
    let secure = if secure { "; Secure" } else { "" };
    let age = max_age.as_secs();
    let value = |s: String| HeaderValue::from_str(&s).expect("tokens are base64url");
    [
        value(format!("{SESSION_COOKIE}={token}; Path=/; Max-Age={age}; HttpOnly; SameSite=Lax{secure}")),
        value(format!("{CSRF_COOKIE}={csrf}; Path=/; Max-Age={age}; SameSite=Lax{secure}")),
    ]
}

/// `Set-Cookie` values that end a browser session.
pub fn cleared_cookies(secure: bool) -> [HeaderValue; 2] {
    let secure = if secure { "; Secure" } else { "" };
    [SESSION_COOKIE, CSRF_COOKIE]
        .map(|name| HeaderValue::from_str(&format!("{name}=; Path=/; Max-Age=0; SameSite=Lax{secure}")).expect("ASCII"))
}

/// The web client: static files compiled into the binary, no build step.
const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
/// @stomp/stompjs's browser bundle, vendored from the pinned npm package (see web/README.md).
const STOMP_JS: &str = include_str!("../../web/vendor/stomp.umd.min.js");

/// What a page of the web client may load and connect to: this origin only.
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
        .into_response()
}

/// `/` (to the web client) and the web client's files under `/app/`. Plain routes: pages, not
/// operations of the API document.
pub fn web_client<S: Clone + Send + Sync + 'static>() -> Router<S> {
    use axum::routing::get;
    Router::new()
        .route("/", get(|| async { Redirect::to("/app/") }))
        .route("/app", get(|| async { Redirect::to("/app/") }))
        .route("/app/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/app/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/app/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/app/vendor/stomp.umd.min.js", get(|| async { asset("text/javascript; charset=utf-8", STOMP_JS) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_and_wildcards_are_refused() {
        assert_eq!(parse_origin("https://app.example").unwrap(), "https://app.example");
        assert_eq!(parse_origin("http://127.0.0.1:5173").unwrap(), "http://127.0.0.1:5173");
        for (raw, says) in [
            ("*", "every site"),
            ("https://app.example/path", "write `https://app.example`"),
            ("ftp://files.example", "not an http(s) origin"),
            ("app.example", "not an origin"),
        ] {
            let err = parse_origin(raw).unwrap_err();
            assert!(err.contains(says), "{raw}: {err}");
        }
    }

    #[test]
    fn a_cookie_is_found_among_others_and_absent_ones_are_none() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("theme=dark; session=abc"));
        headers.append(header::COOKIE, HeaderValue::from_static("csrf=xyz"));
        assert_eq!(cookie(&headers, "session").as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "csrf").as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "sess"), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_and_the_csrf_cookie_is_not() {
        let [session, csrf] = session_cookies("tok", "c", Duration::from_secs(60), true);
        let (session, csrf) = (session.to_str().unwrap(), csrf.to_str().unwrap());
        assert!(session.starts_with("session=tok;") && session.contains("HttpOnly"), "{session}");
        assert!(session.contains("SameSite=Lax") && session.ends_with("Secure"), "{session}");
        assert!(csrf.starts_with("csrf=c;") && !csrf.contains("HttpOnly"), "{csrf}");
    }
}
