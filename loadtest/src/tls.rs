//! One rustls crypto provider for the whole process.
//!
//! Both `ring` and `aws-lc-rs` can end up in the dependency tree; rustls then refuses to pick
//! one by itself and panics on first use. Every binary and test calls
//! [`install_crypto_provider`] first.

/// Installs rustls' `ring` provider as the process default. Idempotent.
pub fn install_crypto_provider() {
    // Err means a provider is already installed (by us or a test harness): that is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
