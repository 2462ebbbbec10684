//! The `users` table.

use serde::Serialize;
use sqlx::MySqlPool;

use super::email::Email;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: u64,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: u64,
    email: String,
    display_name: String,
    role: String,
    password_hash: String,
    created_at: chrono::NaiveDateTime,
}

impl UserRow {
    fn into_user(self) -> (User, String) {
        let user = User {
            id: self.id,
            email: self.email,
            display_name: self.display_name,
            role: Role::parse(&self.role).unwrap_or(Role::User),
            created_at: self.created_at.and_utc(),
        };
        (user, self.password_hash)
    }
}

// `email` is stored with a binary collation (exact comparison), which sqlx takes for VARBINARY
// (launchbadge/sqlx#3387): read it back as a character string.
const COLUMNS: &str = "id, CONVERT(email USING utf8mb4) AS email, display_name, role, password_hash, created_at";

/// Inserts a user with the role `user`; a taken email surfaces as the `uq_users_email`
/// constraint. Sign-up never grants a role: nobody has verified the address (see
/// [`set_role`]).
#[tracing::instrument(skip_all)]
pub async fn insert(db: &MySqlPool, email: &Email, display_name: &str, password_hash: &str) -> sqlx::Result<User> {
    let mut tx = db.begin().await?;
    let id = sqlx::query("INSERT INTO users (email, display_name, password_hash) VALUES (?, ?, ?)")
        .bind(email.as_str())
        .bind(display_name)
        .bind(password_hash)
        .execute(&mut *tx)
        .await?
        .last_insert_id();
    // Every user has a balance row from the start: point changes lock it, never create it.
    sqlx::query("INSERT INTO point_balances (user_id, balance) VALUES (?, 0)").bind(id).execute(&mut *tx).await?;
    // And a notification sequence row: storing a notification locks it, never creates it.
    sqlx::query("INSERT INTO notification_streams (recipient_id) VALUES (?)").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    by_id(db, id).await?.ok_or(sqlx::Error::RowNotFound)
}

/// Gives the account with exactly this (normalised) address `role`; `None` when there is no
/// such account. The operator's act (`server grant-admin`), never a side effect of signing up:
/// an address nobody verified proves nothing about who signed up with it.
#[tracing::instrument(skip_all, fields(role = role.as_str()))]
pub async fn set_role(db: &MySqlPool, email: &Email, role: Role) -> sqlx::Result<Option<User>> {
    let Some((user, _)) = by_email_with_hash(db, email).await? else { return Ok(None) };
    sqlx::query("UPDATE users SET role = ? WHERE id = ?").bind(role.as_str()).bind(user.id).execute(db).await?;
    by_id(db, user.id).await
}

#[tracing::instrument(skip_all, fields(user_id = id))]
pub async fn by_id(db: &MySqlPool, id: u64) -> sqlx::Result<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = ?")).bind(id).fetch_optional(db).await?;
    Ok(row.map(|r| r.into_user().0))
}

/// The user and their password hash, for login.
#[tracing::instrument(skip_all)]
pub async fn by_email_with_hash(db: &MySqlPool, email: &Email) -> sqlx::Result<Option<(User, String)>> {
    let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE email = ?"))
        .bind(email.as_str())
        .fetch_optional(db)
        .await?;
    Ok(row.map(UserRow::into_user))
}
