//! The reference server of two services that run as several instances behind one database:
//! an emotion diary (accounts, friends, diaries, comments, guestbook, points, AI empathic
//! comments, notifications over SSE delivered between instances by a chosen strategy) and a
//! P2P rental platform (items, reservations without double booking, semantic search over
//! embeddings, clustered batch jobs that claim posts so none is processed twice).

pub mod accounts;
pub mod ai;
pub mod app;
pub mod batch;
pub mod chat;
pub mod db;
pub mod diary;
pub mod drain;
pub mod embed;
pub mod error;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod ops;
pub mod pagination;
pub mod pause_point;
pub mod points;
pub mod provider;
pub mod rental;
pub mod search;
pub mod secret;
pub mod settings;
pub mod social;
pub mod state;
pub mod telemetry;
pub mod time;

pub use app::App;
pub use settings::Settings;

/// Installs rustls' `ring` provider as the process default: both `ring` and `aws-lc-rs` can
/// be in the dependency tree, and rustls then refuses to choose on its own.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
