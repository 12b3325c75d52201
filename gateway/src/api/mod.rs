//! The HTTP front end: OpenAI-compatible REST and the hub's own endpoints.

pub mod chat;
pub mod error;
pub mod info;
pub mod openai;
pub mod sessions;

use axum::Router;
use axum::routing::{get, post};

pub use crate::app::AppState;

/// The OpenAI-compatible API and the hub's own `/v1` endpoints (behind the bearer keys).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(info::models))
        .route("/v1/providers", get(info::providers))
        .route("/v1/sessions", get(sessions::list))
        .route(
            "/v1/sessions/{id}",
            get(sessions::get).delete(sessions::delete),
        )
}

/// Health and metrics, open for probes and scrapers.
pub fn probes() -> Router<AppState> {
    Router::new()
        .route("/health", get(info::health))
        .route("/healthz", get(info::healthz))
        .route("/readyz", get(info::readyz))
        .route("/metrics", get(info::metrics))
}

pub async fn not_found(uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::NotFound(format!("No route for {}", uri.path()))
}
