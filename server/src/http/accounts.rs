//! `/auth/*` and `/me`, `/users/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::MySqlPool;

use super::extract::{ApiJson, ApiPath, BearerToken, CurrentUser};
use crate::accounts::{PasswordHasher, SessionStore, User, users};
use crate::error::{ApiError, violated_constraint};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/signup", post(signup))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/me", get(me))
        .route("/users/{id}", get(profile))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupInput {
    email: String,
    password: String,
    display_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginInput {
    email: String,
    password: String,
}

#[derive(Debug, Serialize)]
struct LoginOutput {
    token: String,
    token_type: &'static str,
    expires_in_s: u64,
    user: User,
}

fn parse_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'))
        && !email.contains(char::is_whitespace);
    if valid { Ok(email) } else { Err(ApiError::invalid("email", format!("`{raw}` is not an email address"))) }
}

fn parse_password(raw: &str) -> Result<(), ApiError> {
    let n = raw.chars().count();
    if !(8..=128).contains(&n) {
        return Err(ApiError::invalid("password", format!("is {n} characters long; use 8 to 128")));
    }
    Ok(())
}

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

async fn login(
    State(db): State<MySqlPool>,
    State(passwords): State<PasswordHasher>,
    State(sessions): State<SessionStore>,
    ApiJson(input): ApiJson<LoginInput>,
) -> Result<Json<LoginOutput>, ApiError> {
    let wrong = || ApiError::Unauthorized("wrong email or password".into());
    let email = parse_email(&input.email).map_err(|_| wrong())?;
    let Some((user, hash)) = users::by_email_with_hash(&db, &email).await? else {
        return Err(wrong());
    };
    if !passwords.verify(input.password, hash).await? {
        return Err(wrong());
    }
    let token = sessions.create(user.id, user.role).await?;
    Ok(Json(LoginOutput { token: token.0, token_type: "Bearer", expires_in_s: sessions.ttl().as_secs(), user }))
}

async fn logout(
    _user: CurrentUser,
    State(sessions): State<SessionStore>,
    BearerToken(token): BearerToken,
) -> Result<StatusCode, ApiError> {
    sessions.revoke(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(user: CurrentUser, State(db): State<MySqlPool>) -> Result<Json<User>, ApiError> {
    users::by_id(&db, user.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))
}

/// Another user's public profile: id and display name only.
async fn profile(
    _user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user =
        users::by_id(&db, id).await?.ok_or_else(|| ApiError::not_found("user_not_found", format!("no user {id}")))?;
    Ok(Json(json!({ "id": user.id, "display_name": user.display_name })))
}
