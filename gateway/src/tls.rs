//! TLS for outgoing HTTP (reqwest over rustls, used by `mcp-stdio --hub-url https://…`).
//!
//! reqwest is built with `rustls-no-provider` so the workspace carries one crypto library
//! (ring, which kube's client already uses) instead of adding aws-lc. The price: a process must
//! install the provider before it builds any reqwest client, or reqwest panics — tests and
//! benchmarks that share this build call this too.

/// Makes ring the process's rustls provider. Safe to call any number of times.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
