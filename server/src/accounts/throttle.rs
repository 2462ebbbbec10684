//! Login throttling, shared by every instance through Redis: per account, attempts in a
//! window (a successful login starts the count over); per client address, failures in a
//! window. Beyond either limit a login is answered 429 with `Retry-After` before any password
//! is hashed, so guessing costs the guesser time and the server nothing.
//!
//! Counters are fixed windows (`INCR`, and `EXPIRE … NX` on the first): simple, and a guesser
//! gets at most twice the limit across a window's edge. Keys hold a SHA-256 of the address,
//! not the address.

use std::net::IpAddr;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use super::email::Email;
use crate::error::ApiError;

#[derive(Clone)]
pub struct LoginThrottle {
    redis: ConnectionManager,
    prefix: String,
    window: Duration,
    per_account: u32,
    per_client: u32,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("window", &self.window)
            .field("per_account", &self.per_account)
            .field("per_client", &self.per_client)
            .finish()
    }
}

impl LoginThrottle {
    pub fn new(redis: ConnectionManager, prefix: String, window: Duration, per_account: u32, per_client: u32) -> Self {
        Self { redis, prefix, window, per_account, per_client }
    }

    fn account_key(&self, email: &Email) -> String {
        let digest = Sha256::digest(email.as_str().as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{}login:account:{hex}", self.prefix)
    }

    fn client_key(&self, client: IpAddr) -> String {
        format!("{}login:client:{client}", self.prefix)
    }

    /// Counts this attempt against the account and checks the client's failures; refuses it
    /// when either is over its limit.
    pub async fn admit(&self, email: &Email, client: Option<IpAddr>) -> Result<(), ApiError> {
        let mut conn = self.redis.clone();
        let account = self.account_key(email);
        // Counted before the check: concurrent guesses cannot all pass on one reading.
        let (attempts, ttl): (u32, i64) = redis::pipe()
            .atomic()
            .incr(&account, 1)
            .expire(&account, self.window.as_secs() as i64)
            .arg("NX")
            .ignore()
            .ttl(&account)
            .query_async(&mut conn)
            .await?;
        if attempts > self.per_account {
            return Err(refuse(
                format!("too many login attempts for this account: try again in {} s", ttl.max(1)),
                ttl,
            ));
        }
        if let Some(client) = client {
            let key = self.client_key(client);
            let (failures, ttl): (Option<u32>, i64) = redis::pipe().get(&key).ttl(&key).query_async(&mut conn).await?;
            if failures.unwrap_or(0) >= self.per_client {
                return Err(refuse(
                    format!("too many failed logins from your address: try again in {} s", ttl.max(1)),
                    ttl,
                ));
            }
        }
        Ok(())
    }

    /// A wrong password (or an address with no account): counts against the client.
    pub async fn failed(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(client) = client else { return Ok(()) };
        let key = self.client_key(client);
        let mut conn = self.redis.clone();
        let () = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .ignore()
            .expire(&key, self.window.as_secs() as i64)
            .arg("NX")
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// A successful login: the account's count starts over.
    pub async fn succeeded(&self, email: &Email) -> Result<(), ApiError> {
        let mut conn = self.redis.clone();
        let _: i64 = conn.del(self.account_key(email)).await?;
        Ok(())
    }
}

fn refuse(message: String, ttl_s: i64) -> ApiError {
    ApiError::TooManyRequests { code: "too_many_attempts", message, retry_after_s: ttl_s.max(1) as u64 }
}
