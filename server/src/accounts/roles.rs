//! The operator's commands that grant and take away the admin role (`server grant-admin`,
//! `server revoke-admin`): the only way a role changes. They run as a one-off process with the
//! server's own settings, e.g. `docker exec app server grant-admin ops@example.test`.

use anyhow::Context;

use super::email::Email;
use super::sessions::SessionStore;
use super::users::{self, Role};
use crate::settings::Settings;

/// What a role command did, for the operator to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    pub user_id: u64,
    pub email: String,
    pub role: Role,
    /// Sessions ended because they carried the role that was taken away.
    pub sessions_ended: u64,
}

impl std::fmt::Display for RoleChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.role {
            Role::Admin => write!(
                f,
                "user {} <{}> is now admin; the role comes with the account's next login",
                self.user_id, self.email
            ),
            Role::User => write!(
                f,
                "user {} <{}> is no longer admin; {} of its sessions ended",
                self.user_id, self.email, self.sessions_ended
            ),
        }
    }
}

/// Sets the role of the account with exactly this address. Taking the admin role away also
/// ends every session of the account: a session carries the role it was opened with.
pub async fn set(settings: &Settings, raw_email: &str, role: Role) -> anyhow::Result<RoleChange> {
    let email = Email::parse(raw_email).map_err(|e| anyhow::anyhow!("the e-mail address {e}"))?;
    let db = crate::db::connect_and_migrate(settings.database_url.expose(), 2)
        .await
        .context("connecting to the database (SERVER_DATABASE_URL)")?;
    let user = users::set_role(&db, &email, role).await?.ok_or_else(|| {
        anyhow::anyhow!("no account has the address {email}: it must sign up first (addresses compare exactly)")
    })?;
    let sessions_ended = if role == Role::User {
        let client = redis::Client::open(settings.redis_url.as_str()).context("SERVER_REDIS_URL")?;
        let redis =
            redis::aio::ConnectionManager::new(client).await.context("connecting to Redis (SERVER_REDIS_URL)")?;
        SessionStore::new(redis, settings.namespace.clone(), settings.session_ttl).revoke_all(user.id).await?
    } else {
        0
    };
    db.close().await;
    Ok(RoleChange { user_id: user.id, email: user.email, role, sessions_ended })
}
