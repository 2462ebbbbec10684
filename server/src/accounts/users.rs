//! The `users` table.

use serde::Serialize;
use sqlx::MySqlPool;

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

const COLUMNS: &str = "id, email, display_name, role, password_hash, created_at";

/// Inserts a user; a taken email surfaces as the `uq_users_email` constraint. The role is
/// `admin` when the email is in `admin_emails` (see [`grant_admin_emails`]).
#[tracing::instrument(skip_all)]
pub async fn insert(db: &MySqlPool, email: &str, display_name: &str, password_hash: &str) -> sqlx::Result<User> {
    let mut tx = db.begin().await?;
    let id = sqlx::query(
        "INSERT INTO users (email, display_name, password_hash, role) SELECT ?, ?, ?, \
         IF(EXISTS (SELECT 1 FROM admin_emails WHERE email = ?), 'admin', 'user')",
    )
    .bind(email)
    .bind(display_name)
    .bind(password_hash)
    .bind(email)
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

#[tracing::instrument(skip_all, fields(user_id = id))]
pub async fn by_id(db: &MySqlPool, id: u64) -> sqlx::Result<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = ?")).bind(id).fetch_optional(db).await?;
    Ok(row.map(|r| r.into_user().0))
}

/// The user and their password hash, for login.
#[tracing::instrument(skip_all)]
pub async fn by_email_with_hash(db: &MySqlPool, email: &str) -> sqlx::Result<Option<(User, String)>> {
    let row: Option<UserRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE email = ?")).bind(email).fetch_optional(db).await?;
    Ok(row.map(UserRow::into_user))
}

/// Makes the users with these (lower-cased) emails admins, now and at future sign-ups.
///
/// The list is a setting (`SERVER_ADMIN_EMAILS`), but sign-up runs on any instance, so each
/// instance adds its list to the `admin_emails` table at start-up and sign-up reads the table.
/// Entries are only added, never removed by an instance that lacks them: instances started
/// with different lists must not take the role away from each other's admins.
#[tracing::instrument(skip_all, fields(count = emails.len()))]
pub async fn grant_admin_emails(db: &MySqlPool, emails: &[String]) -> sqlx::Result<()> {
    for email in emails {
        sqlx::query("INSERT IGNORE INTO admin_emails (email) VALUES (?)").bind(email).execute(db).await?;
        sqlx::query("UPDATE users SET role = 'admin' WHERE email = ?").bind(email).execute(db).await?;
    }
    Ok(())
}
