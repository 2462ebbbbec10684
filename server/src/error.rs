//! One API error type, mapped once to a status and a JSON body:
//! `{ "error": "diary_not_found", "message": "...", "field": "title" }`.
//!
//! Internal causes (database, Redis, broker) are logged with their cause chain and never
//! shown to the client, who gets a stable code and a message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, bad cursor, bad header): 400.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// A field is well-formed but invalid (too long, unknown emotion, negative amount): 422.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Also answered for what exists but the caller may not see, so existence never leaks.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A dependency (database, Redis, broker) is down: 503, retry later.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// A bounded resource of this instance is full (password hashing): 503 with `Retry-After`.
    #[error("{message}")]
    Overloaded { code: &'static str, message: String, retry_after_s: u64 },
    /// Too many attempts (logins): 429 with `Retry-After`.
    #[error("{message}")]
    TooManyRequests { code: &'static str, message: String, retry_after_s: u64 },
    /// The body is larger than the server reads: 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body did not arrive in time: 408.
    #[error("{0}")]
    RequestTimeout(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid { field, message: message.into() }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::NotFound { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict { code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unavailable { .. } | ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            ApiError::Overloaded { retry_after_s, .. } | ApiError::TooManyRequests { retry_after_s, .. } => {
                Some(*retry_after_s)
            }
            _ => None,
        };
        let (code, message, field) = match &self {
            ApiError::BadRequest { code, message } => (*code, message.clone(), None),
            ApiError::Invalid { field, message } => ("invalid_field", format!("{field}: {message}"), Some(*field)),
            ApiError::Unauthorized(m) => ("unauthorized", m.clone(), None),
            ApiError::Forbidden(m) => ("forbidden", m.clone(), None),
            ApiError::NotFound { code, message } => (*code, message.clone(), None),
            ApiError::Conflict { code, message } => (*code, message.clone(), None),
            ApiError::Unavailable { code, message } => {
                tracing::warn!(code, message, "dependency unavailable");
                (*code, message.clone(), None)
            }
            ApiError::Overloaded { code, message, .. } => {
                tracing::warn!(code, message, "overloaded");
                (*code, message.clone(), None)
            }
            ApiError::TooManyRequests { code, message, .. } => (*code, message.clone(), None),
            ApiError::PayloadTooLarge(m) => ("payload_too_large", m.clone(), None),
            ApiError::RequestTimeout(m) => ("request_timeout", m.clone(), None),
            ApiError::Internal(err) => {
                tracing::error!(error.cause_chain = ?err, "internal error");
                ("internal", "an internal error occurred; it has been logged".to_string(), None)
            }
        };
        let mut response = (status, Json(ErrorBody { error: code, message, field })).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => ApiError::Unavailable {
                code: "database_unavailable",
                message: "the database is not reachable right now; retry later".into(),
            },
            _ => ApiError::Internal(anyhow::Error::new(err).context("database")),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(err: redis::RedisError) -> Self {
        tracing::warn!(error = %err, "redis error");
        ApiError::Unavailable {
            code: "session_store_unavailable",
            message: "the session store is not reachable right now; retry later".into(),
        }
    }
}

/// The name of the constraint a database error violated, if any: a unique key (1062), a
/// CHECK (4025) or a foreign key (1451/1452). 409s are decided by this name, never by the
/// rest of the message. MariaDB puts the name only in the message, in a fixed position.
pub fn violated_constraint(err: &sqlx::Error) -> Option<String> {
    let db = err.as_database_error()?.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()?;
    let msg = db.message();
    let name = match db.number() {
        // Duplicate entry '…' for key 'name' (MySQL 8 writes 'table.name').
        1062 => msg.rsplit('\'').nth(1)?.rsplit('.').next()?,
        // CONSTRAINT `name` failed for `db`.`table`
        4025 => msg.split('`').nth(1)?,
        // … CONSTRAINT `name` FOREIGN KEY …
        1451 | 1452 => msg.split("CONSTRAINT `").nth(1)?.split('`').next()?,
        _ => return None,
    };
    Some(name.to_string())
}
