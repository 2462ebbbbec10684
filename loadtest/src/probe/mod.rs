//! Black-box clients of the server's wire protocols: SSE (notifications), STOMP over WebSocket
//! (chat), the HTTP API and the Prometheus metrics. They know the protocol, never the server's code, so they can test
//! another implementation.

pub mod api;
pub mod metrics;
pub mod sse;
pub mod stomp;
