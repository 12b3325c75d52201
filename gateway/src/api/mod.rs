//! The HTTP front end: OpenAI-compatible REST and the hub's own endpoints.

pub mod chat;
pub mod error;
pub mod info;
pub mod openai;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::metrics::Metrics;
use crate::service::ChatService;

#[derive(Clone)]
pub struct AppState {
    pub chat: ChatService,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(info::models))
        .route("/v1/providers", get(info::providers))
        .route("/health", get(info::health))
        .route("/healthz", get(info::healthz))
        .route("/readyz", get(info::readyz))
        .route("/metrics", get(info::metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::NotFound(format!("No route for {}", uri.path()))
}
