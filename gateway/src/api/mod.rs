//! The HTTP front end: OpenAI-compatible REST and the hub's own endpoints.

pub mod chat;
pub mod error;
pub mod info;
pub mod openai;
pub mod sessions;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::auth::KeyRing;
use crate::metrics::Metrics;
use crate::service::ChatService;

#[derive(Clone)]
pub struct AppState {
    pub chat: ChatService,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<KeyRing>,
}

pub fn router(state: AppState, config: &crate::config::Config) -> Router {
    let max_body_bytes = config.max_body_bytes;
    // Everything under /v1 takes the hub's bearer keys; health and metrics stay open for
    // probes and scrapers.
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(info::models))
        .route("/v1/providers", get(info::providers))
        .route("/v1/sessions", get(sessions::list))
        .route(
            "/v1/sessions/{id}",
            get(sessions::get).delete(sessions::delete),
        )
        // MCP (streamable HTTP at /mcp, HTTP+SSE at /sse) takes the same keys.
        .merge(crate::mcp::http::routes(
            &state,
            &crate::mcp::http::Limits::from(config),
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(v1)
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

/// Puts the caller (`auth::Caller`) into the request, or answers 401.
async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, error::ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = state.keys.authenticate(header)?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}
