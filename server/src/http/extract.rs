//! Extractors that turn every malformed request into an [`ApiError`] with a clear message,
//! and the authenticated caller.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Path, Query, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;

use super::browser;
use crate::accounts::sessions::{self, SessionUser};
use crate::accounts::{Role, SessionStore};
use crate::error::ApiError;
use crate::state::Guard;

/// `Json<T>` whose rejections are [`ApiError`]s: 400 with what was wrong and where.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` with [`ApiError`] rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` with [`ApiError`] rejections (`/diaries/abc` is a 400, not a 500), and ids
/// written as digits only: Rust's integer parser also takes a leading `+`, so `/diaries/+5`
/// would be `/diaries/5` under a second name.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))?;
        // No parameter of this API (ids, job names) starts with a sign.
        if let Some((name, value)) = raw.iter().find(|(_, v)| v.starts_with(['+', '-'])) {
            return Err(ApiError::bad_request(
                "invalid_path",
                format!("`{value}` is not a valid {name}: write it without a sign, e.g. 42"),
            ));
        }
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(value))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match &rejection {
            JsonRejection::JsonDataError(_) => "invalid_body",
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::MissingJsonContentType(_) => "missing_json_content_type",
            _ => "unreadable_body",
        };
        // The body could not be read: too large (413) or not in time (408) say so.
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge(format!(
                "the body is larger than the {} KiB this server reads",
                super::BODY_LIMIT / 1024
            ));
        }
        if caused_by::<tower_http::timeout::TimeoutError>(&rejection) {
            return ApiError::RequestTimeout(format!(
                "the body did not arrive within {} s: send all of it, as long as its Content-Length says",
                super::BODY_TIMEOUT.as_secs()
            ));
        }
        ApiError::bad_request(code, rejection.body_text())
    }
}

/// Whether an error of type `E` is somewhere in the chain of `err`'s sources.
fn caused_by<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.is::<E>() {
            return true;
        }
        cause = e.source();
    }
    false
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

/// The caller, authenticated by `Authorization: Bearer <token>` or the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: u64,
    pub role: Role,
}

/// The client's address, for limits per client: the last value of the trusted proxy's header
/// when one is configured (`SERVER_CLIENT_IP_HEADER`), else the peer's address. `None` when
/// neither is known (a router driven without a socket, in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S> FromRequestParts<S> for ClientAddr
where
    Arc<Guard>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let guard = Arc::<Guard>::from_ref(state);
        if let Some(header) = &guard.client_ip_header {
            // The value the proxy appended comes last; earlier ones are the client's to invent.
            let ip = parts
                .headers
                .get_all(header)
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok());
            return Ok(ClientAddr(ip));
        }
        Ok(ClientAddr(parts.extensions.get::<ConnectInfo<crate::app::PeerAddr>>().map(|c| c.0.0.ip())))
    }
}

/// How the caller proved who it is: the session token, from `Authorization: Bearer` or from
/// the session cookie of a browser ([`super::browser`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Bearer(String),
    Cookie(String),
}

impl Credential {
    pub fn token(&self) -> &str {
        match self {
            Credential::Bearer(t) | Credential::Cookie(t) => t,
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<Result<String, ApiError>> {
    let header = headers.get(axum::http::header::AUTHORIZATION)?;
    // The scheme is case-insensitive (RFC 9110, section 11.1): `bearer` is `Bearer`.
    let value = header
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    Some(match value {
        Some(token) if !token.is_empty() => Ok(token.to_string()),
        _ => Err(ApiError::Unauthorized("Authorization header must be `Bearer <token>`".into())),
    })
}

/// The request's credential: the bearer token when an `Authorization` header is sent, else the
/// session cookie. A request that changes something (any method but GET, HEAD and OPTIONS)
/// authenticated by the cookie must carry the session's CSRF token in `X-CSRF-Token`: a page of
/// another site can make a browser send the cookie, but cannot know that value.
pub fn credential(headers: &HeaderMap, method: &Method) -> Result<Credential, ApiError> {
    if let Some(token) = bearer(headers) {
        return token.map(Credential::Bearer);
    }
    let Some(token) = browser::cookie(headers, browser::SESSION_COOKIE) else {
        return Err(ApiError::Unauthorized(
            "missing Authorization header: send `Authorization: Bearer <token>` from POST /auth/login (a browser \
             signs in with `\"cookie\": true` and sends the session cookie instead)"
                .into(),
        ));
    };
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let sent = headers.get(browser::CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if sent.is_empty() {
            return Err(ApiError::Forbidden(format!(
                "{method} with the session cookie needs the X-CSRF-Token header: send the csrf_token of the login \
                 answer (also in the `csrf` cookie)"
            )));
        }
        if !same(sent.as_bytes(), sessions::csrf_token(&token).as_bytes()) {
            return Err(ApiError::Forbidden(
                "X-CSRF-Token does not match the session cookie: send the csrf_token of this session's login answer \
                 (the `csrf` cookie), or sign in again"
                    .into(),
            ));
        }
    }
    Ok(Credential::Cookie(token))
}

/// Equal, in a time that does not depend on where two values of one length differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<S> FromRequestParts<S> for Credential
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        credential(&parts.headers, &parts.method)
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    SessionStore: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(*user);
        }
        let credential = credential(&parts.headers, &parts.method)?;
        let sessions = SessionStore::from_ref(state);
        let SessionUser { user_id, role } = sessions
            .lookup(credential.token())
            .await?
            .ok_or_else(|| ApiError::Unauthorized("session unknown or expired: log in again".into()))?;
        let user = CurrentUser { id: user_id, role };
        parts.extensions.insert(user);
        Ok(user)
    }
}
