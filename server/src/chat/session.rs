//! One STOMP connection over WebSocket: CONNECT with the session token, SUBSCRIBE to rooms the
//! user is a member of, SEND messages that are stored and relayed, MESSAGE frames out,
//! heart-beats both ways, RECEIPTs on request.
//!
//! Protocol errors (a malformed frame, a frame before CONNECT, an unsupported command) get an
//! ERROR frame with a `message` header and the connection is closed, as the specification
//! says. Business errors (not a member, no such room, a message too long) reach the client as a
//! MESSAGE on [`ERROR_DESTINATION`](super::ERROR_DESTINATION), if it subscribed to it, and the
//! connection stays open.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use tokio::time::Instant;

use super::frame::{Command, Decoder, Frame, Limits, Version, encode};
use super::hub::{Connection, Hub, Outbound};
use super::metrics::ChatMetrics;
use super::relay::Relay;
use super::{ChatMessage, ERROR_DESTINATION, MAX_BODY_CHARS, parse_room_destination, rooms, store};
use crate::accounts::tickets::TICKET_PREFIX;
use crate::accounts::{Purpose, SessionId, SessionStore};

/// What every connection of this instance is configured with.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// The heart-beat interval this server offers and asks for, both ways (0: none).
    pub heartbeat: Duration,
    /// How often a connection checks that its session still exists.
    pub session_check: Duration,
    /// Subscriptions one connection may hold.
    pub max_subscriptions: usize,
    pub limits: Limits,
    /// How long a SUBSCRIBE waits for the relay to carry its room here.
    pub ready_wait: Duration,
    /// How long a new connection has to send CONNECT.
    pub connect_timeout: Duration,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(10),
            session_check: Duration::from_secs(15),
            max_subscriptions: 64,
            limits: Limits::default(),
            ready_wait: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything a connection uses.
#[derive(Clone)]
pub struct ChatContext {
    pub db: sqlx::MySqlPool,
    pub sessions: SessionStore,
    /// Checks the tickets a browser sends as `passcode` (it cannot set a header).
    pub tickets: crate::accounts::StreamTickets,
    pub hub: Hub,
    pub relay: Arc<dyn Relay>,
    pub metrics: Arc<ChatMetrics>,
    pub settings: Arc<ChatSettings>,
    /// Set once the instance shuts down: every connection closes with 1012.
    pub draining: crate::drain::Draining,
}

impl std::fmt::Debug for ChatContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatContext").field("relay", &self.relay.strategy()).finish()
    }
}

/// The WebSocket sub-protocols answered, in the server's order of preference.
pub const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// Versions this server speaks, newest first.
const VERSIONS: [Version; 3] = [Version::V1_2, Version::V1_1, Version::V1_0];

/// The longest one WebSocket write may wait for a client that does not read.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How often timers are checked when no heart-beat asks for more often.
const TICK: Duration = Duration::from_millis(500);

/// Rows read from the database per query when a subscription catches up.
const CATCH_UP_PAGE: u32 = 500;

struct Subscription {
    room_id: u64,
    /// The last seq sent on it (for relays that recover).
    last: u64,
}

/// Why the connection ends.
enum End {
    /// The client left (or the socket failed): nothing more to send.
    Gone,
    /// A protocol error: ERROR, then close with `code` (1002 for a malformed frame, 1008
    /// for anything else refused).
    Error { message: String, detail: String, receipt: Option<String>, code: u16 },
    /// DISCONNECT: its RECEIPT is sent already.
    Disconnected,
    /// The instance shuts down: close with 1012 (service restart) and no ERROR, since the
    /// client did nothing wrong; it reconnects and resumes.
    Restart,
}

impl End {
    fn error(message: impl Into<String>, detail: impl Into<String>, frame: Option<&Frame>) -> End {
        End::Error {
            message: message.into(),
            detail: detail.into(),
            receipt: frame.and_then(|f| f.get("receipt")).map(str::to_string),
            code: close_code::POLICY,
        }
    }

    fn malformed(error: &stomp::FrameError) -> End {
        End::Error {
            message: "malformed frame".into(),
            detail: error.to_string(),
            receipt: None,
            code: close_code::PROTOCOL,
        }
    }
}

struct Session {
    ctx: ChatContext,
    socket: WebSocket,
    decoder: Decoder,
    version: Version,
    connection: Connection,
    user_id: Option<u64>,
    /// The session this connection was opened under, checked now and then.
    session: Option<SessionId>,
    subscriptions: HashMap<String, Subscription>,
    errors_subscription: Option<String>,
    members: HashMap<u64, bool>,
    /// Heart-beats we send, and the longest silence we accept from the client.
    send_every: Option<Duration>,
    silence_limit: Option<Duration>,
    last_in: Instant,
    last_out: Instant,
    next_error_id: u64,
}

/// Serves one upgraded connection until it ends. `protocol` is the sub-protocol agreed in the
/// upgrade, if any.
pub async fn serve(socket: WebSocket, ctx: ChatContext) {
    let connection = ctx.hub.connect();
    let mut decoder = Decoder::new(ctx.settings.limits);
    decoder.set_version(Version::V1_2);
    ctx.metrics.connections.inc();
    let now = Instant::now();
    let mut session = Session {
        decoder,
        socket,
        version: Version::V1_2,
        connection,
        user_id: None,
        session: None,
        subscriptions: HashMap::new(),
        errors_subscription: None,
        members: HashMap::new(),
        send_every: None,
        silence_limit: None,
        last_in: now,
        last_out: now,
        next_error_id: 1,
        ctx,
    };
    let end = session.run().await;
    session.finish(end).await;
    session.ctx.metrics.subscriptions.dec_by(session.subscriptions.len() as i64);
    session.ctx.metrics.connections.dec();
}

impl Session {
    async fn run(&mut self) -> End {
        let started = Instant::now();
        let mut tick = tokio::time::interval(self.tick_period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut session_check = tokio::time::interval(self.ctx.settings.session_check);
        session_check.reset();
        loop {
            // CONNECT may agree on heart-beats faster than the default check.
            if tick.period() != self.tick_period() {
                tick = tokio::time::interval(self.tick_period());
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            tokio::select! {
                received = self.socket.recv() => {
                    let bytes = match received {
                        Some(Ok(Message::Text(text))) => axum::body::Bytes::from(text),
                        Some(Ok(Message::Binary(bytes))) => bytes,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                            self.last_in = Instant::now();
                            continue;
                        }
                        Some(Ok(Message::Close(_))) | None => return End::Gone,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "chat websocket failed");
                            return End::Gone;
                        }
                    };
                    self.last_in = Instant::now();
                    self.decoder.push(&bytes);
                    loop {
                        match self.decoder.next_frame() {
                            Ok(Some(frame)) => {
                                self.ctx.metrics.frames_in.inc();
                                if let Some(end) = self.handle(frame).await {
                                    return end;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => return End::malformed(&e),
                        }
                    }
                }
                item = self.connection.queue.recv() => match item {
                    Some(item) => if let Some(end) = self.deliver(item).await { return end },
                    None => return End::Gone,
                },
                () = self.ctx.draining.started() => return End::Restart,
                () = self.connection.slow.cancelled() => {
                    return End::error(
                        "too slow",
                        "this connection fell too far behind its messages and is closed: read faster, or \
                         subscribe to fewer rooms; resume with the last-seq header",
                        None,
                    );
                }
                _ = tick.tick() => {
                    if self.user_id.is_none() && started.elapsed() > self.ctx.settings.connect_timeout {
                        return End::error(
                            "no CONNECT",
                            format!("send CONNECT within {:?} of opening the connection", self.ctx.settings.connect_timeout),
                            None,
                        );
                    }
                    if let Some(limit) = self.silence_limit && self.last_in.elapsed() > limit {
                        return End::error(
                            "heart-beat missed",
                            format!("nothing received for {limit:?}, three times the agreed heart-beat interval"),
                            None,
                        );
                    }
                    // Sent at the check before the interval runs out, so no gap exceeds it.
                    if let Some(every) = self.send_every
                        && self.last_out.elapsed() + tick.period() >= every
                        && self.send_bytes(b"\n".to_vec()).await.is_err()
                    {
                        return End::Gone;
                    }
                }
                _ = session_check.tick() => {
                    if let Some(session) = &self.session {
                        match self.ctx.sessions.lookup_id(session).await {
                            Ok(Some(_)) => {}
                            Ok(None) => {
                                return End::error(
                                    "session ended",
                                    "the session of this connection ended (logged out or expired): log in and connect again",
                                    None,
                                );
                            }
                            Err(e) => tracing::warn!(error = %e, "checking a chat connection's session failed"),
                        }
                    }
                }
            }
        }
    }

    async fn finish(&mut self, end: End) {
        match end {
            End::Gone => {}
            End::Disconnected => {
                let close = CloseFrame { code: close_code::NORMAL, reason: "".into() };
                let _ = tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Close(Some(close)))).await;
            }
            End::Restart => {
                let close = CloseFrame { code: close_code::RESTART, reason: "server restarting: reconnect".into() };
                let _ = tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Close(Some(close)))).await;
            }
            End::Error { message, detail, receipt, code } => {
                self.ctx.metrics.protocol_errors.inc();
                let mut frame = Frame::new(Command::Error).header("message", message);
                if let Some(receipt) = receipt {
                    frame = frame.header("receipt-id", receipt);
                }
                let frame = frame.header("content-type", "text/plain;charset=utf-8").body(detail.into_bytes());
                let _ = self.send(&frame).await;
                let close = CloseFrame { code, reason: "".into() };
                let _ = tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Close(Some(close)))).await;
            }
        }
    }

    /// How often the connection checks its timers: often enough for the agreed heart-beats.
    fn tick_period(&self) -> Duration {
        let fastest = [self.send_every, self.silence_limit.map(|s| s / 3)].into_iter().flatten().min();
        fastest.map_or(TICK, |every| (every / 4).clamp(Duration::from_millis(10), TICK))
    }

    /// Writes one WebSocket message. A client that does not read for [`SEND_TIMEOUT`] (its
    /// socket buffers full) is too slow: the connection ends rather than wait on it.
    async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<(), axum::Error> {
        let message = match String::from_utf8(bytes) {
            Ok(text) => Message::Text(text.into()),
            Err(e) => Message::Binary(e.into_bytes().into()),
        };
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(message)).await {
            Ok(sent) => sent?,
            Err(_) => {
                // Counted once per connection, whether its queue filled first or this write.
                if !self.connection.slow.is_cancelled() {
                    self.ctx.metrics.slow_consumers.inc();
                    self.connection.slow.cancel();
                }
                return Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client did not read for too long",
                )));
            }
        }
        self.last_out = Instant::now();
        Ok(())
    }

    async fn send(&mut self, frame: &Frame) -> Result<(), axum::Error> {
        let mut out = Vec::with_capacity(128 + frame.body.len());
        encode(frame, self.version, &mut out);
        self.ctx.metrics.frames_out.inc();
        self.send_bytes(out).await
    }

    /// Sends a RECEIPT if the frame asked for one.
    async fn receipt(&mut self, frame: &Frame, extra: &[(&str, String)]) -> Option<End> {
        let receipt = frame.get("receipt")?.to_string();
        let mut out = Frame::new(Command::Receipt).header("receipt-id", receipt);
        for (name, value) in extra {
            out = out.header(name, value.clone());
        }
        self.send(&out).await.err().map(|_| End::Gone)
    }

    /// A business error, as a MESSAGE on the error destination when the client subscribed to
    /// it: the connection stays open, and the MESSAGE's `receipt-id` names the refused frame
    /// (no RECEIPT follows: it would say the frame succeeded). A client that did not subscribe
    /// would never learn of it, so it gets an ERROR frame (and the close STOMP prescribes).
    async fn business_error(&mut self, frame: &Frame, code: &str, message: String) -> Option<End> {
        let Some(subscription) = self.errors_subscription.clone() else {
            return Some(End::error(
                code,
                format!(
                    "{message}. Subscribe to {ERROR_DESTINATION} to receive such errors as MESSAGE frames and keep \
                     the connection open"
                ),
                Some(frame),
            ));
        };
        let id = self.next_error_id;
        self.next_error_id += 1;
        let mut body = serde_json::json!({ "error": code, "message": message });
        if let Some(destination) = frame.get("destination") {
            body["destination"] = destination.into();
        }
        let mut out = Frame::new(Command::Message)
            .header("destination", ERROR_DESTINATION)
            .header("subscription", subscription)
            .header("message-id", format!("error-{id}"))
            .header("content-type", "application/json");
        if let Some(receipt) = frame.get("receipt") {
            out = out.header("receipt-id", receipt);
        }
        let out = out.body(body.to_string().into_bytes());
        self.send(&out).await.err().map(|_| End::Gone)
    }

    async fn handle(&mut self, frame: Frame) -> Option<End> {
        if self.user_id.is_none() {
            return match frame.command {
                Command::Connect | Command::Stomp => self.connect(&frame).await,
                other => Some(End::error(
                    "not connected",
                    format!("{other} before CONNECT: send CONNECT (or STOMP) first"),
                    Some(&frame),
                )),
            };
        }
        match frame.command {
            Command::Connect | Command::Stomp => {
                Some(End::error("already connected", "CONNECT is sent once per connection", Some(&frame)))
            }
            Command::Subscribe => self.subscribe(&frame).await,
            Command::Unsubscribe => self.unsubscribe(&frame).await,
            Command::Send => self.send_message(&frame).await,
            Command::Disconnect => {
                let _ = self.receipt(&frame, &[]).await;
                Some(End::Disconnected)
            }
            Command::Ack | Command::Nack => Some(End::error(
                format!("{} is not supported", frame.command),
                "subscriptions here are ack:auto: a message is acknowledged when it is sent; resume with the \
                 last-seq header of SUBSCRIBE instead",
                Some(&frame),
            )),
            Command::Begin | Command::Commit | Command::Abort => Some(End::error(
                format!("{} is not supported", frame.command),
                "this server has no transactions: each SEND is stored on its own; make a resend safe with an \
                 idempotency-key header",
                Some(&frame),
            )),
            Command::Connected | Command::Message | Command::Receipt | Command::Error => Some(End::error(
                format!("{} is a server frame", frame.command),
                "clients send CONNECT, SUBSCRIBE, UNSUBSCRIBE, SEND and DISCONNECT",
                Some(&frame),
            )),
        }
    }

    async fn connect(&mut self, frame: &Frame) -> Option<End> {
        let offered: Vec<&str> = match frame.get("accept-version") {
            Some(list) => list.split(',').map(str::trim).collect(),
            None => vec!["1.0"],
        };
        let Some(version) = VERSIONS.into_iter().find(|v| offered.contains(&v.as_str())) else {
            return Some(End::error(
                "unsupported version",
                format!("accept-version {offered:?} names no version this server speaks: 1.0, 1.1, 1.2"),
                Some(frame),
            ));
        };
        let token = frame
            .get("passcode")
            .or_else(|| {
                frame.get("Authorization").or_else(|| frame.get("authorization")).map(|value| {
                    match value.split_once(' ') {
                        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
                        _ => value.trim(),
                    }
                })
            })
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let Some(token) = token else {
            return Some(End::error(
                "not authenticated",
                "send the session token of POST /auth/login as the passcode header of CONNECT (or as \
                 Authorization: Bearer <token>), or a ticket of POST /auth/stream-ticket (purpose chat)",
                Some(frame),
            ));
        };
        // A browser's ticket (it cannot set a header, and a page of another site has no cookie
        // here), else a session token.
        let (user, session) = if token.starts_with(TICKET_PREFIX) {
            match self.ctx.tickets.verify(&token, Purpose::Chat) {
                Ok(ticket) => (ticket.user, ticket.session),
                Err(e) => return Some(End::error("not authenticated", e.to_string(), Some(frame))),
            }
        } else {
            match self.ctx.sessions.lookup(&token).await {
                Ok(Some(user)) => (user, SessionId::of(&token)),
                Ok(None) => {
                    return Some(End::error(
                        "not authenticated",
                        "the session token is unknown or expired: log in again",
                        Some(frame),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "looking up a chat session failed");
                    return Some(End::error(
                        "unavailable",
                        "sessions cannot be checked now: retry shortly",
                        Some(frame),
                    ));
                }
            }
        };
        let (client_sends, client_wants) = match frame.get("heart-beat") {
            None => (0, 0),
            Some(value) => match parse_heartbeat(value) {
                Some(pair) => pair,
                None => {
                    return Some(End::error(
                        "bad heart-beat",
                        format!("heart-beat `{value}` is not two comma-separated non-negative integers"),
                        Some(frame),
                    ));
                }
            },
        };
        let ours = u64::try_from(self.ctx.settings.heartbeat.as_millis()).unwrap_or(u64::MAX);
        // Each direction: 0 when either side says 0, else the larger of the two.
        let send_every = if ours == 0 || client_wants == 0 { 0 } else { ours.max(client_wants) };
        let receive_every = if ours == 0 || client_sends == 0 { 0 } else { ours.max(client_sends) };
        self.send_every = (send_every > 0).then(|| Duration::from_millis(send_every));
        self.silence_limit = (receive_every > 0).then(|| Duration::from_millis(receive_every.saturating_mul(3)));
        self.version = version;
        self.decoder.set_version(version);
        self.user_id = Some(user.user_id);
        self.session = Some(session);
        let connected = Frame::new(Command::Connected)
            .header("version", version.as_str())
            .header("heart-beat", format!("{ours},{ours}"))
            .header("server", concat!("rentals-chat/", env!("CARGO_PKG_VERSION")))
            .header("session", self.connection.id.to_string())
            .header("user-name", user.user_id.to_string());
        self.send(&connected).await.err().map(|_| End::Gone)
    }

    async fn is_member(&mut self, room_id: u64) -> Result<bool, sqlx::Error> {
        if let Some(known) = self.members.get(&room_id) {
            return Ok(*known);
        }
        let user = self.user_id.unwrap_or_default();
        let member = rooms::is_member(&self.ctx.db, room_id, user).await?;
        // Membership only grows (members are added, never removed): a yes is kept.
        if member {
            self.members.insert(room_id, true);
        }
        Ok(member)
    }

    async fn subscribe(&mut self, frame: &Frame) -> Option<End> {
        let Some(destination) = frame.get("destination").map(str::to_string) else {
            return Some(End::error("missing destination", "SUBSCRIBE needs a destination header", Some(frame)));
        };
        let id = match (frame.get("id"), self.version) {
            (Some(id), _) => id.to_string(),
            // STOMP 1.0 makes the id optional: the destination stands for it.
            (None, Version::V1_0) => destination.clone(),
            (None, _) => return Some(End::error("missing id", "SUBSCRIBE needs an id header", Some(frame))),
        };
        if let Some(ack) = frame.get("ack")
            && ack != "auto"
        {
            return Some(End::error(
                format!("ack:{ack} is not supported"),
                "subscriptions here are ack:auto; resume with the last-seq header instead",
                Some(frame),
            ));
        }
        if self.subscriptions.contains_key(&id) || self.errors_subscription.as_deref() == Some(id.as_str()) {
            return Some(End::error(
                "duplicate subscription id",
                format!("subscription id `{id}` is in use on this connection: UNSUBSCRIBE it first, or pick another"),
                Some(frame),
            ));
        }
        if self.subscriptions.len() >= self.ctx.settings.max_subscriptions {
            return Some(End::error(
                "too many subscriptions",
                format!("at most {} subscriptions per connection", self.ctx.settings.max_subscriptions),
                Some(frame),
            ));
        }
        if destination == ERROR_DESTINATION {
            self.errors_subscription = Some(id);
            return self.receipt(frame, &[]).await;
        }
        let Some(room_id) = parse_room_destination(&destination) else {
            return self
                .business_error(
                    frame,
                    "unknown_destination",
                    format!("`{destination}` is not a destination here: subscribe to /rooms/<room id> or {ERROR_DESTINATION}"),
                )
                .await;
        };
        let last_seq = match frame.get("last-seq").map(|v| v.parse::<u64>()) {
            None => None,
            Some(Ok(seq)) => Some(seq),
            Some(Err(_)) => {
                return self
                    .business_error(frame, "invalid_last_seq", "last-seq must be a non-negative integer".into())
                    .await;
            }
        };
        match self.is_member(room_id).await {
            Ok(true) => {}
            Ok(false) => {
                return self
                    .business_error(frame, "room_not_found", format!("no room {room_id} that you are a member of"))
                    .await;
            }
            Err(e) => return self.unavailable(frame, e).await,
        }
        let joined = self.connection.join(room_id);
        if !joined.ready(self.ctx.settings.ready_wait).await {
            tracing::warn!(room_id, "the relay did not subscribe to the room in time; subscribing anyway");
        }
        self.subscriptions.insert(id.clone(), Subscription { room_id, last: 0 });
        self.ctx.metrics.subscriptions.inc();
        if self.ctx.relay.recovers() {
            // Live messages wait in the queue meanwhile; those already read are dropped by seq.
            let start = match last_seq {
                Some(seq) => seq,
                None => match store::last_seqs(&self.ctx.db, &[room_id]).await {
                    Ok(seqs) => seqs.first().map_or(0, |(_, last)| *last),
                    Err(e) => return self.unavailable(frame, e).await,
                },
            };
            if let Some(sub) = self.subscriptions.get_mut(&id) {
                sub.last = start;
            }
            if let Some(end) = self.catch_up(&id, None).await {
                return Some(end);
            }
            // Where the subscription stands: a client that has received nothing yet resumes
            // from here after a drop, rather than from the present then.
            let last = self.subscriptions.get(&id).map_or(start, |s| s.last);
            return self.receipt(frame, &[("last-seq", last.to_string())]).await;
        }
        self.receipt(frame, &[]).await
    }

    async fn unavailable(&mut self, frame: &Frame, e: sqlx::Error) -> Option<End> {
        tracing::warn!(error = %e, "chat database call failed");
        self.business_error(frame, "unavailable", "the database is unavailable: retry shortly".into()).await
    }

    async fn unsubscribe(&mut self, frame: &Frame) -> Option<End> {
        let Some(id) = frame.get("id").map(str::to_string) else {
            return Some(End::error("missing id", "UNSUBSCRIBE needs the id of a SUBSCRIBE", Some(frame)));
        };
        if self.errors_subscription.as_deref() == Some(id.as_str()) {
            self.errors_subscription = None;
        } else if let Some(sub) = self.subscriptions.remove(&id) {
            self.ctx.metrics.subscriptions.dec();
            if !self.subscriptions.values().any(|s| s.room_id == sub.room_id) {
                self.connection.leave(sub.room_id);
            }
        } else {
            return Some(End::error(
                "unknown subscription",
                format!("no subscription `{id}` on this connection"),
                Some(frame),
            ));
        }
        self.receipt(frame, &[]).await
    }

    async fn send_message(&mut self, frame: &Frame) -> Option<End> {
        let Some(destination) = frame.get("destination") else {
            return Some(End::error("missing destination", "SEND needs a destination header", Some(frame)));
        };
        let Some(room_id) = parse_room_destination(destination) else {
            let message = format!("`{destination}` is not a destination here: send to /rooms/<room id>");
            return self.business_error(frame, "unknown_destination", message).await;
        };
        let body = match std::str::from_utf8(&frame.body) {
            Ok(body) => body.to_string(),
            Err(_) => {
                return self.business_error(frame, "invalid_body", "a message is UTF-8 text".into()).await;
            }
        };
        let chars = body.chars().count();
        if body.trim().is_empty() || chars > MAX_BODY_CHARS {
            let message = format!("a message is 1 to {MAX_BODY_CHARS} characters, not {chars}");
            return self.business_error(frame, "invalid_body", message).await;
        }
        let key = frame.get("idempotency-key").map(str::to_string);
        if let Some(key) = &key
            && (key.is_empty() || key.len() > 64)
        {
            let message = "idempotency-key is 1 to 64 bytes".to_string();
            return self.business_error(frame, "invalid_idempotency_key", message).await;
        }
        match self.is_member(room_id).await {
            Ok(true) => {}
            Ok(false) => {
                let message = format!("no room {room_id} that you are a member of");
                return self.business_error(frame, "room_not_found", message).await;
            }
            Err(e) => return self.unavailable(frame, e).await,
        }
        let user = self.user_id.unwrap_or_default();
        let sent = match store::send(&self.ctx.db, room_id, user, &body, key.as_deref()).await {
            Ok(Some(sent)) => sent,
            Ok(None) => {
                return self.business_error(frame, "room_not_found", format!("room {room_id} is gone")).await;
            }
            Err(e) => return self.unavailable(frame, e).await,
        };
        if sent.duplicate {
            self.ctx.metrics.duplicate_sends.inc();
        } else {
            self.ctx.metrics.stored.inc();
        }
        let recovers = self.ctx.relay.recovers();
        // A duplicate was published when first stored; a recovering relay's subscribers drop
        // what they have, so publishing it again can only help one that missed it.
        if !sent.duplicate || recovers {
            let seq = sent.message.seq;
            if let Err(e) = self.ctx.relay.publish(sent.message.clone()).await {
                tracing::warn!(error = %e, room_id, seq, "relaying a chat message failed");
                if !recovers {
                    let message = format!(
                        "message {seq} is stored but could not be relayed to the room's other members now: they \
                         see it in the room's history"
                    );
                    return self.business_error(frame, "relay_unavailable", message).await;
                }
            }
        }
        let extra = [("seq", sent.message.seq.to_string()), ("room", room_id.to_string())];
        self.receipt(frame, &extra).await
    }

    fn message_frame(&self, subscription: &str, m: &ChatMessage) -> Frame {
        Frame::new(Command::Message)
            .header("destination", super::room_destination(m.room_id))
            .header("subscription", subscription)
            .header("message-id", format!("{}-{}", m.room_id, m.seq))
            .header("content-type", "text/plain;charset=utf-8")
            .header("seq", m.seq.to_string())
            .header("room", m.room_id.to_string())
            .header("sender", m.sender_id.to_string())
            .header("sent-at", m.sent_at_ms.to_string())
            .body(m.body.clone().into_bytes())
    }

    async fn deliver(&mut self, item: Outbound) -> Option<End> {
        let recovers = self.ctx.relay.recovers();
        match item {
            Outbound::Message(m) => {
                let ids: Vec<String> = self
                    .subscriptions
                    .iter()
                    .filter(|(_, s)| s.room_id == m.room_id)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in ids {
                    if recovers {
                        let last = self.subscriptions.get(&id).map_or(0, |s| s.last);
                        if m.seq <= last {
                            continue;
                        }
                        if m.seq > last + 1 {
                            self.ctx.metrics.gap_repairs.inc();
                            if let Some(end) = self.catch_up(&id, Some(m.seq - 1)).await {
                                return Some(end);
                            }
                        }
                        if let Some(sub) = self.subscriptions.get_mut(&id) {
                            if m.seq <= sub.last {
                                continue;
                            }
                            sub.last = m.seq;
                        }
                    }
                    let frame = self.message_frame(&id, &m);
                    if self.send(&frame).await.is_err() {
                        return Some(End::Gone);
                    }
                }
                None
            }
            Outbound::Tail { room_id, last_seq } => {
                if !recovers {
                    return None;
                }
                let ids: Vec<String> = self
                    .subscriptions
                    .iter()
                    .filter(|(_, s)| s.room_id == room_id && s.last < last_seq)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in ids {
                    self.ctx.metrics.gap_repairs.inc();
                    if let Some(end) = self.catch_up(&id, Some(last_seq)).await {
                        return Some(end);
                    }
                }
                None
            }
        }
    }

    /// Sends the subscription's messages after its last seq, up to `up_to` (all when `None`),
    /// read from the database.
    async fn catch_up(&mut self, id: &str, up_to: Option<u64>) -> Option<End> {
        loop {
            let (room_id, last) = match self.subscriptions.get(id) {
                Some(s) => (s.room_id, s.last),
                None => return None,
            };
            if up_to.is_some_and(|up_to| last >= up_to) {
                return None;
            }
            let page = match store::after(&self.ctx.db, room_id, last, up_to, CATCH_UP_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    // The next message or check tries again.
                    tracing::warn!(error = %e, room_id, "reading missed chat messages failed");
                    return None;
                }
            };
            let full = page.len() == CATCH_UP_PAGE as usize;
            for m in page {
                self.ctx.metrics.gap_repaired.inc();
                if let Some(sub) = self.subscriptions.get_mut(id) {
                    sub.last = m.seq;
                }
                let frame = self.message_frame(id, &m);
                if self.send(&frame).await.is_err() {
                    return Some(End::Gone);
                }
            }
            if !full {
                return None;
            }
        }
    }
}

/// `cx,cy` in milliseconds.
fn parse_heartbeat(value: &str) -> Option<(u64, u64)> {
    let (x, y) = value.split_once(',')?;
    Some((x.trim().parse().ok()?, y.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heart_beats_are_two_integers() {
        assert_eq!(parse_heartbeat("0,0"), Some((0, 0)));
        assert_eq!(parse_heartbeat("10000, 5000"), Some((10_000, 5_000)));
        for bad in ["", "1", "1,", ",1", "-1,0", "a,b", "1,2,3"] {
            assert_eq!(parse_heartbeat(bad), None, "{bad}");
        }
    }
}
