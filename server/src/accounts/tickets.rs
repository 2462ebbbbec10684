//! Stream tickets: short-lived, single-purpose credentials for opening a notification stream or
//! a chat connection from where no header can be set (a browser's `EventSource` and
//! `WebSocket`, on a page of another site where the session cookie is not sent).
//!
//! A ticket is `st1.<user>.<role>.<purpose>.<expires>.<session>.<signature>`: the signature is
//! HMAC-SHA256 under a secret every instance shares (`SERVER_TICKET_SECRET`), so any instance
//! checks a ticket without a round trip to Redis. It names the session it was issued under
//! (its [`SessionId`], not its token), so a stream opened with it still ends when that session
//! does. It opens streams until it expires; a reconnect after that needs a new one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::sessions::{SessionId, SessionUser};
use super::users::Role;

const VERSION: &str = "st1";

/// How every ticket starts: where a token or a ticket may come, this tells them apart.
pub const TICKET_PREFIX: &str = "st1.";

/// What a ticket opens; a ticket for one is refused by the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// `GET /notifications/stream?ticket=`.
    Notifications,
    /// `GET /ws/chat`, the ticket as CONNECT's `passcode`.
    Chat,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Notifications => "notifications",
            Purpose::Chat => "chat",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Purpose::Notifications, Purpose::Chat].into_iter().find(|p| p.as_str() == s)
    }
}

/// A verified ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub user: SessionUser,
    pub session: SessionId,
}

/// Why a ticket was refused, said so that the client knows what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("the ticket is malformed: use the `ticket` of POST /auth/stream-ticket as it was given")]
    Malformed,
    #[error(
        "the ticket's signature does not match: it was not issued by this deployment, or its instances do not \
         share SERVER_TICKET_SECRET"
    )]
    Signature,
    #[error("the ticket expired {0} s ago: get a new one from POST /auth/stream-ticket")]
    Expired(u64),
    #[error("the ticket is for {found}, not {wanted}: ask POST /auth/stream-ticket for purpose `{wanted}`")]
    Purpose { found: &'static str, wanted: &'static str },
}

/// Issues and checks tickets under one secret.
#[derive(Clone)]
pub struct StreamTickets {
    key: Vec<u8>,
    ttl: Duration,
}

impl std::fmt::Debug for StreamTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTickets").field("key", &"***").field("ttl", &self.ttl).finish()
    }
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl StreamTickets {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self { key: secret.to_vec(), ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(payload.as_bytes());
        mac
    }

    fn sign(&self, payload: &str) -> String {
        let mac = self.mac(payload);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// A ticket for `user`'s session `session`, for `purpose`.
    pub fn issue(&self, user: SessionUser, session: &SessionId, purpose: Purpose) -> String {
        self.issue_at(user, session, purpose, now_s())
    }

    fn issue_at(&self, user: SessionUser, session: &SessionId, purpose: Purpose, now: u64) -> String {
        let expires = now + self.ttl.as_secs();
        let payload =
            format!("{VERSION}.{}.{}.{}.{expires}.{}", user.user_id, user.role.as_str(), purpose.as_str(), session.0);
        let signature = self.sign(&payload);
        format!("{payload}.{signature}")
    }

    /// The ticket's user and session, when it is ours, unexpired and for `purpose`.
    pub fn verify(&self, raw: &str, purpose: Purpose) -> Result<Ticket, TicketError> {
        self.verify_at(raw, purpose, now_s())
    }

    fn verify_at(&self, raw: &str, purpose: Purpose, now: u64) -> Result<Ticket, TicketError> {
        if raw.len() > 256 {
            return Err(TicketError::Malformed);
        }
        let (payload, signature) = raw.rsplit_once('.').ok_or(TicketError::Malformed)?;
        let signature =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).map_err(|_| TicketError::Malformed)?;
        let mac = self.mac(payload);
        // In constant time: a forger learns nothing from how long a refusal took.
        mac.verify_slice(&signature).map_err(|_| TicketError::Signature)?;
        let parts: Vec<&str> = payload.split('.').collect();
        let [version, user_id, role, found, expires, session] = parts[..] else {
            return Err(TicketError::Malformed);
        };
        if version != VERSION {
            return Err(TicketError::Malformed);
        }
        let user_id = user_id.parse().map_err(|_| TicketError::Malformed)?;
        let role = Role::parse(role).ok_or(TicketError::Malformed)?;
        let found = Purpose::parse(found).ok_or(TicketError::Malformed)?;
        let expires: u64 = expires.parse().map_err(|_| TicketError::Malformed)?;
        let session = SessionId::parse(session).ok_or(TicketError::Malformed)?;
        if found != purpose {
            return Err(TicketError::Purpose { found: found.as_str(), wanted: purpose.as_str() });
        }
        if now > expires {
            return Err(TicketError::Expired(now - expires));
        }
        Ok(Ticket { user: SessionUser { user_id, role }, session })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tickets() -> StreamTickets {
        StreamTickets::new(b"a secret all instances share", Duration::from_secs(60))
    }

    fn alice() -> (SessionUser, SessionId) {
        (SessionUser { user_id: 7, role: Role::User }, SessionId::of("alice's token"))
    }

    #[test]
    fn a_ticket_opens_what_it_was_issued_for_until_it_expires() {
        let (user, session) = alice();
        let t = tickets().issue_at(user, &session, Purpose::Notifications, 1_000);
        assert_eq!(tickets().verify_at(&t, Purpose::Notifications, 1_060), Ok(Ticket { user, session }));
        assert_eq!(tickets().verify_at(&t, Purpose::Notifications, 1_075), Err(TicketError::Expired(15)));
        assert_eq!(
            tickets().verify_at(&t, Purpose::Chat, 1_000),
            Err(TicketError::Purpose { found: "notifications", wanted: "chat" })
        );
    }

    #[test]
    fn a_changed_field_or_another_secret_breaks_the_signature() {
        let (user, session) = alice();
        let t = tickets().issue_at(user, &session, Purpose::Chat, 1_000);
        // Another user, an admin role, a later expiry: each is a forgery.
        for forged in
            [t.replacen(".7.", ".8.", 1), t.replacen(".user.", ".admin.", 1), t.replacen(".1060.", ".9060.", 1)]
        {
            assert_ne!(forged, t);
            assert_eq!(tickets().verify_at(&forged, Purpose::Chat, 1_000), Err(TicketError::Signature), "{forged}");
        }
        let other = StreamTickets::new(b"another deployment", Duration::from_secs(60));
        assert_eq!(other.verify_at(&t, Purpose::Chat, 1_000), Err(TicketError::Signature));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for raw in ["", ".", "st1", "st1.a.b.c.d.e.f", "st1....", &"x".repeat(300), "st1.7.user.chat.1.ab.!!!"] {
            let refused = tickets().verify_at(raw, Purpose::Chat, 0);
            assert!(matches!(refused, Err(TicketError::Malformed | TicketError::Signature)), "{raw}: {refused:?}");
        }
    }
}
