//! What handlers may ask for. Each handler takes only the part it needs
//! (`State<MySqlPool>`, `State<SessionStore>`, ...) through `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::MySqlPool;
use tokio::sync::Notify;

use crate::accounts::throttle::LoginThrottle;
use crate::accounts::{PasswordHasher, SessionStore, StreamTickets};
use crate::batch::Jobs;
use crate::chat::session::ChatContext;
use crate::embed::Embedder;
use crate::http::browser::BrowserSettings;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::notify::hub::Hub;
use crate::ops::Dependencies;

/// Point rewards and identity: plain values every instance reads from its settings.
#[derive(Debug, Clone)]
pub struct Rules {
    pub instance_id: String,
    pub diary_reward: i64,
    pub comment_reward: i64,
    /// Points one user may earn per UTC day from diaries and comments.
    pub daily_cap: i64,
    /// Whether diaries get an AI comment.
    pub ai_comments: bool,
    /// How approvals guard against double bookings.
    pub booking_guard: crate::rental::approval::BookingGuard,
}

/// What protects the server from its own clients, besides hashing limits.
#[derive(Debug, Clone)]
pub struct Guard {
    pub logins: LoginThrottle,
    /// The header a trusted proxy puts the client's address in (its last value); `None`:
    /// the peer's address.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// How often an SSE stream checks that its session still exists.
    pub stream_session_check: std::time::Duration,
}

#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: MySqlPool,
    pub sessions: SessionStore,
    pub passwords: PasswordHasher,
    pub guard: Arc<Guard>,
    pub rules: Arc<Rules>,
    pub metrics: Arc<Metrics>,
    pub dependencies: Arc<Dependencies>,
    /// Wakes this instance's AI worker when a diary was written here.
    pub ai_wake: Arc<Notify>,
    pub notifier: Notifier,
    /// The SSE streams connected to this instance.
    pub hub: Hub,
    /// The clustered jobs, for the admin API.
    pub jobs: Arc<Jobs>,
    /// Turns search queries into vectors; the same one the embedding worker uses, so a query
    /// and the items it is compared with come from one model.
    pub embedder: Arc<dyn Embedder>,
    /// This instance's counts of the items each search filter keeps, for search plans.
    pub selectivity: Arc<crate::search::Selectivity>,
    /// Set in the `inline` embed mode: `POST /rentals` embeds the post before answering.
    pub inline_embed: crate::batch::embed_job::InlineEmbed,
    /// Chat's STOMP connections: the hub of this instance's subscribers, the relay, limits.
    pub chat: ChatContext,
    /// Issues and checks the tickets that open streams from a browser.
    pub tickets: StreamTickets,
    /// Cookies, CORS and tickets: what browsers need.
    pub browser: Arc<BrowserSettings>,
    /// Set once the instance shuts down: streams and chat connections end.
    pub draining: crate::drain::Draining,
}
