//! `/auth/*` and `/me`, `/users/{id}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{AppendHeaders, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::browser::{self, BrowserSettings};
use super::extract::{ApiJson, ApiPath, ClientAddr, Credential, CurrentUser};
use crate::accounts::sessions::{SessionUser, csrf_token};
use crate::accounts::{Email, PasswordHasher, Purpose, SessionId, SessionStore, StreamTickets, Token, User, users};
use crate::error::{ApiError, violated_constraint};
use crate::openapi::{BadRequest, ErrorBody, Unauthorized, Unavailable};
use crate::state::{AppState, Guard};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(stream_ticket))
        .routes(routes!(me))
        .routes(routes!(profile))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignupInput {
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(format = Password, min_length = 8, max_length = 128)]
    password: String,
    #[schema(min_length = 1, max_length = 50)]
    display_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginInput {
    #[schema(format = Email)]
    email: String,
    #[schema(format = Password)]
    password: String,
    /// For a web page: keep the session in an `HttpOnly` cookie instead of handing the token to
    /// the page's script. The answer then sets the `session` and `csrf` cookies and has no
    /// `token`; unsafe requests send `X-CSRF-Token: <csrf_token>`. `false` when not given.
    #[serde(default)]
    cookie: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct LoginOutput {
    /// Send as `Authorization: Bearer <token>`. Absent when the session went into a cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the session expires.
    expires_in_s: u64,
    /// What a request authenticated by the session cookie sends as `X-CSRF-Token` (also in the
    /// `csrf` cookie); a request with the bearer token needs none.
    csrf_token: String,
    user: User,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TicketInput {
    /// What the ticket opens: `notifications` (`GET /notifications/stream?ticket=`) or `chat`
    /// (`GET /ws/chat`, the ticket as CONNECT's `passcode`).
    purpose: Purpose,
}

#[derive(Debug, Serialize, ToSchema)]
struct TicketOutput {
    ticket: String,
    purpose: Purpose,
    /// Seconds the ticket opens streams for; a stream opened in time lives as long as its
    /// session.
    expires_in_s: u64,
}

/// What anyone signed in may see of another user.
#[derive(Debug, Serialize, ToSchema)]
struct PublicProfile {
    id: u64,
    display_name: String,
}

fn parse_email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(|e| ApiError::invalid("email", e))
}

fn parse_password(raw: &str) -> Result<(), ApiError> {
    let n = raw.chars().count();
    if !(8..=128).contains(&n) {
        return Err(ApiError::invalid("password", format!("is {n} characters long; use 8 to 128")));
    }
    Ok(())
}

/// Creates an account; log in with `POST /auth/login` to get a token.
#[utoipa::path(
    post,
    path = "/auth/signup",
    operation_id = "signup",
    tag = "accounts",
    request_body = SignupInput,
    responses(
        (status = 201, description = "The new account", body = User),
        (status = 400, response = BadRequest),
        (status = 409, description = "`email_taken`: the email is already registered", body = ErrorBody),
        (status = 422, description = "`invalid_field` on `email`, `password` or `display_name`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn signup(
    State(db): State<MySqlPool>,
    State(passwords): State<PasswordHasher>,
    ApiJson(input): ApiJson<SignupInput>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let email = parse_email(&input.email)?;
    parse_password(&input.password)?;
    let display_name = crate::diary::text_field("display_name", &input.display_name, 50)?;
    let hash = passwords.hash(input.password).await?;
    match users::insert(&db, &email, &display_name, &hash).await {
        Ok(user) => Ok((StatusCode::CREATED, Json(user))),
        Err(e) if violated_constraint(&e).as_deref() == Some("uq_users_email") => {
            Err(ApiError::conflict("email_taken", format!("{email} is already registered: log in instead")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens a session: returns its bearer token, or with `"cookie": true` sets it as a cookie.
#[utoipa::path(
    post,
    path = "/auth/login",
    operation_id = "login",
    tag = "accounts",
    request_body = LoginInput,
    responses(
        (
            status = 200,
            description = "A session. With `\"cookie\": true`: `Set-Cookie` `session` (HttpOnly, SameSite=Lax) and \
                `csrf`, and no `token` in the body",
            body = LoginOutput
        ),
        (status = 400, response = BadRequest),
        (status = 401, description = "`unauthorized`: wrong email or password", body = ErrorBody),
        (
            status = 429,
            description = "`too_many_attempts`: too many attempts for this account, or failures from this address, \
                in the window; `Retry-After` says when to try again",
            body = ErrorBody
        ),
        (status = 503, description = "`busy` (with `Retry-After`) or a dependency unavailable", body = ErrorBody),
    )
)]
async fn login(
    State(db): State<MySqlPool>,
    State(passwords): State<PasswordHasher>,
    State(sessions): State<SessionStore>,
    State(guard): State<Arc<Guard>>,
    State(browser): State<Arc<BrowserSettings>>,
    ClientAddr(client): ClientAddr,
    ApiJson(input): ApiJson<LoginInput>,
) -> Result<Response, ApiError> {
    let wrong = || ApiError::Unauthorized("wrong email or password".into());
    let email = parse_email(&input.email).map_err(|_| wrong())?;
    guard.logins.admit(&email, client).await?;
    let found = users::by_email_with_hash(&db, &email).await?;
    // Without an account the password is checked against a decoy hash all the same: the
    // answer takes as long, and says the same, whether or not the address has an account.
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let matches = passwords.verify(input.password, hash).await?;
    let Some(user) = user.filter(|_| matches) else {
        guard.logins.failed(client).await?;
        return Err(wrong());
    };
    guard.logins.succeeded(&email).await?;
    let Token(token) = sessions.create(user.id, user.role).await?;
    let csrf_token = csrf_token(&token);
    let expires_in_s = sessions.ttl().as_secs();
    if input.cookie {
        let cookies = browser::session_cookies(&token, &csrf_token, sessions.ttl(), browser.cookie_secure);
        let body = LoginOutput { token: None, token_type: "Bearer", expires_in_s, csrf_token, user };
        return Ok((AppendHeaders(cookies.map(|c| (SET_COOKIE, c))), Json(body)).into_response());
    }
    Ok(Json(LoginOutput { token: Some(token), token_type: "Bearer", expires_in_s, csrf_token, user }).into_response())
}

/// Ends the session of the token (or cookie) sent; a cookie session's cookies are cleared.
#[utoipa::path(
    post,
    path = "/auth/logout",
    operation_id = "logout",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The token no longer works"),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    )
)]
async fn logout(
    _user: CurrentUser,
    State(sessions): State<SessionStore>,
    State(browser): State<Arc<BrowserSettings>>,
    credential: Credential,
) -> Result<Response, ApiError> {
    sessions.revoke(credential.token()).await?;
    if let Credential::Cookie(_) = credential {
        let cleared = browser::cleared_cookies(browser.cookie_secure);
        return Ok((StatusCode::NO_CONTENT, AppendHeaders(cleared.map(|c| (SET_COOKIE, c)))).into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A short-lived ticket that opens a notification stream or a chat connection of the caller's
/// session, for a browser that cannot send a header there (`EventSource`, `WebSocket`) and does
/// not send the session cookie (a page of another site).
#[utoipa::path(
    post,
    path = "/auth/stream-ticket",
    operation_id = "stream_ticket",
    tag = "accounts",
    request_body = TicketInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A ticket, signed: any instance checks it without Redis", body = TicketOutput),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: a cookie session without `X-CSRF-Token`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn stream_ticket(
    user: CurrentUser,
    credential: Credential,
    State(tickets): State<StreamTickets>,
    ApiJson(input): ApiJson<TicketInput>,
) -> Result<Json<TicketOutput>, ApiError> {
    let session = SessionId::of(credential.token());
    let ticket = tickets.issue(SessionUser { user_id: user.id, role: user.role }, &session, input.purpose);
    Ok(Json(TicketOutput { ticket, purpose: input.purpose, expires_in_s: tickets.ttl().as_secs() }))
}

/// The caller's own account.
#[utoipa::path(
    get,
    path = "/me",
    operation_id = "get_me",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = User),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    )
)]
async fn me(user: CurrentUser, State(db): State<MySqlPool>) -> Result<Json<User>, ApiError> {
    users::by_id(&db, user.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))
}

/// Another user's public profile: id and display name only.
#[utoipa::path(
    get,
    path = "/users/{id}",
    operation_id = "get_user",
    tag = "accounts",
    params(("id" = u64, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = PublicProfile),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn profile(
    _user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<PublicProfile>, ApiError> {
    let user =
        users::by_id(&db, id).await?.ok_or_else(|| ApiError::not_found("user_not_found", format!("no user {id}")))?;
    Ok(Json(PublicProfile { id: user.id, display_name: user.display_name }))
}
