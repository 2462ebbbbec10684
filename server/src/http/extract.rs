//! Extractors that turn every malformed request into an [`ApiError`] with a clear message,
//! and the authenticated caller.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Query};
use axum::http::request::Parts;

use crate::accounts::sessions::SessionUser;
use crate::accounts::{Role, SessionStore};
use crate::error::ApiError;

/// `Json<T>` whose rejections are [`ApiError`]s: 400 with what was wrong and where.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` with [`ApiError`] rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` with [`ApiError`] rejections (`/diaries/abc` is a 400, not a 500).
#[derive(Debug, FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match &rejection {
            JsonRejection::JsonDataError(_) => "invalid_body",
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::MissingJsonContentType(_) => "missing_json_content_type",
            _ => "unreadable_body",
        };
        ApiError::bad_request(code, rejection.body_text())
    }
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

/// The caller, authenticated by `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: u64,
    pub role: Role,
}

/// The raw bearer token of the request (for logout).
#[derive(Debug, Clone)]
pub struct BearerToken(pub String);

fn bearer(parts: &Parts) -> Result<String, ApiError> {
    let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized(
            "missing Authorization header: send `Authorization: Bearer <token>` from POST /auth/login".into(),
        )
    })?;
    let value = header.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    match value {
        Some(token) if !token.is_empty() => Ok(token.to_string()),
        _ => Err(ApiError::Unauthorized("Authorization header must be `Bearer <token>`".into())),
    }
}

impl<S> FromRequestParts<S> for BearerToken
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        bearer(parts).map(BearerToken)
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
        let token = bearer(parts)?;
        let sessions = SessionStore::from_ref(state);
        let SessionUser { user_id, role } = sessions
            .lookup(&token)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("session unknown or expired: log in again".into()))?;
        let user = CurrentUser { id: user_id, role };
        parts.extensions.insert(user);
        Ok(user)
    }
}
