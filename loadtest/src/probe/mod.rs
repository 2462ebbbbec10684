//! Black-box clients of the server's wire protocols: SSE (notifications) and the HTTP API.
//! They know the protocol, never the server's code, so they can test another implementation.

pub mod api;
pub mod sse;
