//! The hub's public HTTP application: the OpenAI REST face and the MCP face over one
//! `ChatService`, behind the hub's bearer keys. `serve` and `router` build the same app; only
//! the `Backend` inside the service differs (in-process pools or remote workers).

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::trace::TraceLayer;

use crate::api::{self, error::ApiError};
use crate::auth::KeyRing;
use crate::config::Config;
use crate::errors::ClientError;
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
    let mut app = Router::new()
        .merge(guarded)
        .merge(api::probes())
        .fallback(api::not_found);
    // Without keys the hub listens on loopback only, where any web page the user opens could
    // reach it by DNS rebinding (its own name resolving to 127.0.0.1) or by a cross-origin
    // request: only loopback Host and Origin names are served then. With keys, or when an
    // operator chose to serve a public address without them, any name is the hub's.
    if !state.keys.is_enabled() && config.listen.ip().is_loopback() {
        app = app.layer(middleware::from_fn(loopback_names_only));
    }
    app.layer(DefaultBodyLimit::max(config.max_body_bytes))
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

/// 403 unless the request names the hub by a loopback name: its Host (or HTTP/2 authority)
/// must be `localhost`, `127.0.0.1` or `[::1]`, with any port, and so must its Origin when it
/// has one.
async fn loopback_names_only(request: Request, next: Next) -> Result<Response, ClientError> {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    if !host.is_some_and(is_loopback_authority) {
        tracing::warn!(host = ?host, "request refused: not a loopback Host name");
        return Err(ClientError::new(
            403,
            "host_not_allowed",
            "Without API keys the hub answers only requests to localhost, 127.0.0.1 or [::1]",
        ));
    }
    if let Some(origin) = request.headers().get(ORIGIN) {
        let allowed = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https") && is_loopback_authority(rest)
            });
        if !allowed {
            tracing::warn!(origin = ?origin, "request refused: not a loopback Origin");
            return Err(ClientError::new(
                403,
                "origin_not_allowed",
                "Without API keys the hub answers only pages served from localhost, 127.0.0.1 or [::1]",
            ));
        }
    }
    Ok(next.run(request).await)
}

/// `localhost`, `127.0.0.1` or `[::1]`, optionally with a port.
pub fn is_loopback_authority(authority: &str) -> bool {
    let port_ok = |p: &str| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some(("::1", port)) => {
                return port.is_empty() || port.strip_prefix(':').is_some_and(port_ok);
            }
            _ => return false,
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    port.is_none_or(port_ok) && (host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1")
}

#[cfg(test)]
mod tests {
    use super::is_loopback_authority;

    #[test]
    fn loopback_names_with_any_port() {
        for ok in [
            "localhost",
            "localhost:8080",
            "LocalHost:1",
            "127.0.0.1",
            "127.0.0.1:65535",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_authority(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "localhost:",
            "localhost:80:80",
            "localhost:8o",
            "[::1",
            "[::2]:80",
            "[::1]x",
            "user@localhost",
            "0.0.0.0:8080",
            "127.0.0.2",
        ] {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }
}
