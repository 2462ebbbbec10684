//! The HTTP API as a client sees it: sign up, log in, befriend, write diaries and comments,
//! list rental items, reserve and approve, run admin job commands. Used by the runners to
//! build a world and to cause events.

use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiCallError {
    #[error("{method} {path}: {cause}")]
    Transport {
        method: &'static str,
        path: String,
        cause: String,
        /// The connection could not be made: the request never reached a server, so sending
        /// it again (to another instance) cannot do it twice.
        unsent: bool,
        /// The connection closed before any answer (a kept-alive connection the server closed
        /// as the request went out, as a server that shuts down does): a browser sends the
        /// request again in this case, whatever its method.
        closed_before_answer: bool,
    },
    #[error("{method} {path} answered {status}: {body}")]
    Status { method: &'static str, path: String, status: u16, body: String },
}

impl ApiCallError {
    /// The HTTP status the server answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiCallError::Status { status, .. } => Some(*status),
            ApiCallError::Transport { .. } => None,
        }
    }

    /// The request never reached a server (the connection was refused): safe to send again.
    pub fn unsent(&self) -> bool {
        matches!(self, ApiCallError::Transport { unsent: true, .. })
    }

    /// Sent again by a browser: refused, or closed before any answer (see
    /// [`ApiCallError::Transport`]).
    pub fn resendable(&self) -> bool {
        matches!(self, ApiCallError::Transport { unsent, closed_before_answer, .. } if *unsent || *closed_before_answer)
    }

    /// A short, bounded label for counting failures: the status and the API error code, or
    /// the transport failure's first words.
    pub fn kind(&self) -> String {
        match self {
            ApiCallError::Transport { method, cause, .. } => {
                let short: String = cause.split(':').next().unwrap_or(cause).chars().take(60).collect();
                format!("{method} transport error ({short})")
            }
            ApiCallError::Status { method, status, body, .. } => {
                let code = serde_json::from_str::<Value>(body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "no error code".into());
                format!("{method} {status} {code}")
            }
        }
    }
}

/// A signed-up, logged-in user.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: u64,
    pub token: String,
}

/// The password of every user the harness signs up.
const PASSWORD: &str = "load-test-password";

#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    async fn call(
        &self,
        base: &str,
        method: &'static str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Result<Value, ApiCallError> {
        let url = format!("{base}{path}");
        let mut req = match method {
            "POST" => self.http.post(&url).json(&body),
            _ => self.http.get(&url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| ApiCallError::Transport {
            method,
            path: path.to_string(),
            unsent: e.is_connect(),
            closed_before_answer: closed_before_answer(&e),
            cause: with_sources(&e),
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(ApiCallError::Status { method, path: path.to_string(), status: status.as_u16(), body: text });
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) })
    }

    pub async fn signup_and_login(&self, base: &str, email: &str, name: &str) -> Result<User, ApiCallError> {
        self.call(
            base,
            "POST",
            "/auth/signup",
            None,
            json!({"email": email, "password": PASSWORD, "display_name": name}),
        )
        .await?;
        self.login(base, email).await
    }

    /// Logs in a user that [`Self::signup_and_login`] signed up: a new session.
    pub async fn login(&self, base: &str, email: &str) -> Result<User, ApiCallError> {
        let login = self.call(base, "POST", "/auth/login", None, json!({"email": email, "password": PASSWORD})).await?;
        let id = login["user"]["id"].as_u64();
        let token = login["token"].as_str();
        match (id, token) {
            (Some(id), Some(token)) => Ok(User { id, token: token.to_string() }),
            _ => Err(ApiCallError::Status {
                method: "POST",
                path: "/auth/login".into(),
                status: 200,
                body: login.to_string(),
            }),
        }
    }

    /// `a` asks, `b` accepts.
    pub async fn befriend(&self, base: &str, a: &User, b: &User) -> Result<(), ApiCallError> {
        let request = self.call(base, "POST", "/friends/requests", Some(&a.token), json!({"user_id": b.id})).await?;
        let id = request["id"].as_u64().unwrap_or(0);
        self.call(base, "POST", &format!("/friends/requests/{id}/accept"), Some(&b.token), Value::Null).await?;
        Ok(())
    }

    /// A diary shared with friends; returns its id.
    pub async fn write_diary(&self, base: &str, author: &User, n: u64) -> Result<u64, ApiCallError> {
        let body = json!({"title": format!("load {n}"), "content": "a day under load", "emotion": "calm", "visibility": "friends"});
        let diary = self.call(base, "POST", "/diaries", Some(&author.token), body).await?;
        Ok(diary["id"].as_u64().unwrap_or(0))
    }

    /// A comment on `diary`; returns its id.
    pub async fn comment(&self, base: &str, author: &User, diary: u64) -> Result<u64, ApiCallError> {
        let body = json!({"content": "hang in there"});
        let comment = self.call(base, "POST", &format!("/diaries/{diary}/comments"), Some(&author.token), body).await?;
        Ok(comment["id"].as_u64().unwrap_or(0))
    }

    /// A rental item; returns its id.
    pub async fn create_rental(
        &self,
        base: &str,
        owner: &User,
        title: &str,
        description: &str,
    ) -> Result<u64, ApiCallError> {
        Ok(self.post_rental(base, owner, title, description).await?.0)
    }

    /// A post as `POST /rentals` answered it: its id and `embed_status`.
    pub async fn post_rental(
        &self,
        base: &str,
        owner: &User,
        title: &str,
        description: &str,
    ) -> Result<(u64, String), ApiCallError> {
        let body = json!({
            "title": title,
            "description": description,
            "category": "camping",
            "price_per_day": 5000,
            "deposit": 20000,
            "location": "Seoul",
            "photo_urls": [],
        });
        let item = self.call(base, "POST", "/rentals", Some(&owner.token), body).await?;
        Ok((item["id"].as_u64().unwrap_or(0), item["embed_status"].as_str().unwrap_or("").to_string()))
    }

    /// `GET /rentals/search`: the ids of the hits found by meaning (`matched_by` vector), best
    /// first.
    pub async fn search_by_meaning(
        &self,
        base: &str,
        user: &User,
        q: &str,
        limit: u32,
    ) -> Result<Vec<u64>, ApiCallError> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", q)
            .append_pair("limit", &limit.to_string())
            .finish();
        let found = self.call(base, "GET", &format!("/rentals/search?{query}"), Some(&user.token), Value::Null).await?;
        Ok(found["hits"]
            .as_array()
            .map(|hits| {
                hits.iter().filter(|h| h["matched_by"] == "vector").filter_map(|h| h["item"]["id"].as_u64()).collect()
            })
            .unwrap_or_default())
    }

    /// A reservation request for the days `start..=end` (ISO dates); returns its id.
    pub async fn request_reservation(
        &self,
        base: &str,
        requester: &User,
        item: u64,
        start: &str,
        end: &str,
    ) -> Result<u64, ApiCallError> {
        let body = json!({"start_date": start, "end_date": end});
        let r = self.call(base, "POST", &format!("/rentals/{item}/reservations"), Some(&requester.token), body).await?;
        Ok(r["id"].as_u64().unwrap_or(0))
    }

    /// The item's owner approves a reservation.
    pub async fn approve_reservation(&self, base: &str, owner: &User, reservation: u64) -> Result<(), ApiCallError> {
        self.call(base, "POST", &format!("/reservations/{reservation}/approve"), Some(&owner.token), Value::Null)
            .await?;
        Ok(())
    }

    /// The renter opens the chat room about `item` with its owner; returns the room id.
    pub async fn open_room(&self, base: &str, renter: &User, item: u64) -> Result<u64, ApiCallError> {
        let room = self.call(base, "POST", "/chat/rooms", Some(&renter.token), json!({"item_id": item})).await?;
        Ok(room["id"].as_u64().unwrap_or(0))
    }

    /// The item's owner adds `member` to a room.
    pub async fn add_room_member(
        &self,
        base: &str,
        owner: &User,
        room: u64,
        member: &User,
    ) -> Result<(), ApiCallError> {
        let body = json!({"user_id": member.id});
        self.call(base, "POST", &format!("/chat/rooms/{room}/members"), Some(&owner.token), body).await?;
        Ok(())
    }

    /// An admin command on a clustered job: `pause`, `resume` or `trigger`.
    pub async fn job_command(&self, base: &str, admin: &User, job: &str, command: &str) -> Result<(), ApiCallError> {
        self.call(base, "POST", &format!("/admin/jobs/{job}/{command}"), Some(&admin.token), Value::Null).await?;
        Ok(())
    }
}

/// `e` and every error under it, `: `-separated: reqwest's own text ("error sending request
/// for url ...") does not say what happened to the connection.
fn with_sources(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

/// Whether the connection ended before the answer began, as a browser tells it when it sends
/// a request again on a new connection: the server closed a kept-alive connection as the
/// request went out (hyper: an incomplete message, or a request canceled because its pooled
/// connection closed), or reset it (a server that closes with the request unread in its
/// socket sends a reset, not a close). `send` failing means no answer head arrived.
fn closed_before_answer(e: &reqwest::Error) -> bool {
    !e.is_timeout() && connection_ended(std::error::Error::source(e))
}

fn connection_ended(mut source: Option<&(dyn std::error::Error + 'static)>) -> bool {
    use std::io::ErrorKind;
    while let Some(err) = source {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe)
        {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error wrapping another, as reqwest and hyper wrap the socket's.
    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn a_reset_or_broken_connection_under_the_request_is_one_a_browser_sends_again() {
        use std::io::{Error, ErrorKind};
        for kind in [ErrorKind::ConnectionReset, ErrorKind::ConnectionAborted, ErrorKind::BrokenPipe] {
            let e = Wrapped(Error::from(kind));
            assert!(connection_ended(Some(&e)), "{kind:?}");
        }
        for kind in [ErrorKind::TimedOut, ErrorKind::InvalidData, ErrorKind::Other] {
            let e = Wrapped(Error::from(kind));
            assert!(!connection_ended(Some(&e)), "{kind:?}");
        }
        assert!(!connection_ended(None));
    }
}
