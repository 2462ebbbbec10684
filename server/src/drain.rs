//! What an instance does between SIGTERM (or SIGINT) and its exit, so that a rolling deploy
//! loses nothing and fails no request it accepted. From the signal on, at once:
//!
//! 1. `/readyz` answers 503 (`draining: true`) on any connection still open, for a load
//!    balancer's health check.
//! 2. The listener stops accepting (a new connection is refused, which a client can safely
//!    send elsewhere); requests in flight finish (for up to
//!    `SERVER_SHUTDOWN_GRACE_S`), their publishes with them (a publish after commit is part of
//!    its request).
//! 3. Every SSE stream gets `retry: <ms>` and a last `restart` event without `id:`, then ends:
//!    a browser's `EventSource` comes back by itself after that many milliseconds with the
//!    `Last-Event-ID` it had, to an instance that is up, and loses nothing.
//! 4. Every chat WebSocket is closed with 1012 (service restart); STOMP clients reconnect and
//!    resume with `last-seq`.
//! 5. Then the background workers stop: the scheduler records its runs in progress as abandoned (a
//!    later firing takes their work), the embed workers finish the claim they hold (bounded by
//!    the embed timeout) and take no new one, and the broker connections close with a clean
//!    AMQP close, so the broker drops this instance's queues at once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long a browser waits before it reconnects a stream this instance ended, at least; each
/// stream adds up to a second more, so the streams of one instance do not all come back in
/// the same millisecond.
pub const RETRY_MS: u64 = 500;

/// Set once the instance starts shutting down; cheap to clone and to check.
#[derive(Debug, Clone, Default)]
pub struct Draining(CancellationToken);

impl Draining {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts draining: everything that watches [`Draining::started`] winds down.
    pub fn start(&self) {
        self.0.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once draining has started.
    pub async fn started(&self) {
        self.0.cancelled().await
    }

    /// The `retry:` a stream ending now sends: [`RETRY_MS`] plus up to a second.
    pub fn retry(&self) -> Duration {
        Duration::from_millis(RETRY_MS + rand::random_range(0..1_000))
    }
}
