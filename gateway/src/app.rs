//! The hub's public HTTP application: the OpenAI REST face and the MCP face over one
//! `ChatService`, behind the hub's bearer keys. `serve` and `router` build the same app; only
//! the `Backend` inside the service differs (in-process pools or remote workers).

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::trace::TraceLayer;

use crate::api::{self, error::ApiError};
use crate::auth::KeyRing;
use crate::config::Config;
use crate::mcp;
use crate::metrics::Metrics;
use crate::service::ChatService;

#[derive(Clone)]
pub struct AppState {
    pub chat: ChatService,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<KeyRing>,
}

pub fn router(state: AppState, config: &Config) -> Router {
    let limits = mcp::http::Limits::from(config);
    let guarded = api::routes()
        .merge(mcp::http::routes(&state, &limits))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(guarded)
        .merge(api::probes())
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        // The path only: a query may carry an MCP session id (`/message?sessionId=…`).
        .layer(TraceLayer::new_for_http().make_span_with(|r: &Request| {
            tracing::debug_span!("request", method = %r.method(), path = %r.uri().path())
        }))
        .with_state(state)
}

/// Puts the caller (`auth::Caller`) into the request, or answers 401.
async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = state.keys.authenticate(header)?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}
