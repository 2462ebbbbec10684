//! Sessions in Redis, so a login made on one instance is honoured by every other.
//!
//! The client holds a random 256-bit token; Redis holds only its SHA-256
//! (`<prefix>session:<hex>` -> `<user id>:<role>`, with the session's TTL), so a Redis dump
//! does not hand out live credentials. Each user's session hashes are also kept in a set
//! (`<prefix>user-sessions:<id>`), so that every session of a user can be ended at once: when
//! the operator takes a role away, the sessions that carry it must not outlive the decision.

use std::time::Duration;

use base64::Engine;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use super::users::Role;

#[derive(Clone)]
pub struct SessionStore {
    redis: ConnectionManager,
    prefix: String,
    ttl: Duration,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore").field("prefix", &self.prefix).field("ttl", &self.ttl).finish()
    }
}

/// A bearer token as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(pub String);

/// A session's name that is not a credential: the SHA-256 of its token, in hex (also the end
/// of its Redis key). Tickets carry it, so a stream opened with one ends with its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionId(pub String);

impl SessionId {
    pub fn of(token: &str) -> Self {
        let digest = Sha256::digest(token.as_bytes());
        SessionId(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// 64 lower-case hex digits, as [`SessionId::of`] writes it.
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| SessionId(raw.to_string()))
    }
}

/// The CSRF token of a session: what a page sends as `X-CSRF-Token` with every unsafe request
/// it authenticates by the session cookie. Derived from the token, which the page's script
/// cannot read (the cookie is `HttpOnly`) and another site cannot guess, so a forged request
/// from another site cannot carry it; nothing is stored.
pub fn csrf_token(token: &str) -> String {
    let digest = Sha256::new().chain_update(b"csrf-token\0").chain_update(token.as_bytes()).finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionUser {
    pub user_id: u64,
    pub role: Role,
}

impl SessionStore {
    pub fn new(redis: ConnectionManager, prefix: impl Into<String>, ttl: Duration) -> Self {
        Self { redis, prefix: prefix.into(), ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn key(&self, token: &str) -> String {
        self.key_of(&SessionId::of(token))
    }

    fn key_of(&self, id: &SessionId) -> String {
        format!("{}session:{}", self.prefix, id.0)
    }

    fn user_key(&self, user_id: u64) -> String {
        format!("{}user-sessions:{user_id}", self.prefix)
    }

    #[tracing::instrument(skip_all, fields(user_id = user_id))]
    pub async fn create(&self, user_id: u64, role: Role) -> redis::RedisResult<Token> {
        let bytes: [u8; 32] = rand::random();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let (key, user_key, ttl) = (self.key(&token), self.user_key(user_id), self.ttl.as_secs());
        let mut conn = self.redis.clone();
        // One transaction: a session never exists without its entry in the user's set. The set
        // lives as long as the newest session; entries of expired ones are removed at the
        // next revoke_all (a DEL of a missing key is harmless).
        let () = redis::pipe()
            .atomic()
            .set_ex(&key, format!("{user_id}:{}", role.as_str()), ttl)
            .ignore()
            .sadd(&user_key, &key)
            .ignore()
            .expire(&user_key, ttl as i64)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(Token(token))
    }

    /// Ends every session of `user_id`; returns how many were still live.
    #[tracing::instrument(skip_all, fields(user_id = user_id))]
    pub async fn revoke_all(&self, user_id: u64) -> redis::RedisResult<u64> {
        let mut conn = self.redis.clone();
        let user_key = self.user_key(user_id);
        let keys: Vec<String> = conn.smembers(&user_key).await?;
        let mut ended = 0;
        for key in &keys {
            let n: u64 = conn.del(key).await?;
            ended += n;
        }
        let _: i64 = conn.del(&user_key).await?;
        Ok(ended)
    }

    /// The session's user, or `None` when the token is unknown or expired.
    #[tracing::instrument(skip_all)]
    pub async fn lookup(&self, token: &str) -> redis::RedisResult<Option<SessionUser>> {
        // Tokens we issue are 43 characters of base64url: refuse anything else without a round trip.
        if token.len() != 43 || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Ok(None);
        }
        self.lookup_id(&SessionId::of(token)).await
    }

    /// The user of the session `id`, or `None` when it ended (a stream opened with a ticket
    /// checks its session this way: the ticket names the session, not its token).
    #[tracing::instrument(skip_all)]
    pub async fn lookup_id(&self, id: &SessionId) -> redis::RedisResult<Option<SessionUser>> {
        let mut conn = self.redis.clone();
        let value: Option<String> = conn.get(self.key_of(id)).await?;
        Ok(value.and_then(|v| {
            let (id, role) = v.split_once(':')?;
            Some(SessionUser { user_id: id.parse().ok()?, role: Role::parse(role)? })
        }))
    }

    #[tracing::instrument(skip_all)]
    pub async fn revoke(&self, token: &str) -> redis::RedisResult<()> {
        let mut conn = self.redis.clone();
        let _: i64 = conn.del(self.key(token)).await?;
        Ok(())
    }
}
