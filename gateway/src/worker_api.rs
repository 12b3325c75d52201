//! `worker` mode's HTTP face: the internal worker protocol (`crate::wire`) over one in-process
//! provider, for routers only, plus probes and metrics.
//!
//! Every `/internal/*` request must carry the worker credential (`Authorization: Bearer`), a
//! token the operator generates per LLMProvider and mounts into its workers and the routers that
//! serve it; anything else gets 401, so a pod that can reach a worker still cannot spend the
//! subscription. Only its SHA-256 is kept in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_http::trace::TraceLayer;

use crate::backend::{Backend, ChatRequest, LocalBackend};
use crate::metrics::Metrics;
use crate::provider::ProviderError;
use crate::wire::{self, WireEvent, WorkerChatRequest, WorkerStatus};

/// The state of a worker process.
#[derive(Clone)]
pub struct WorkerState {
    pub backend: Arc<LocalBackend>,
    pub metrics: Arc<Metrics>,
    /// The provider this worker serves (the LLMProvider's name).
    pub provider: String,
    pub account: Option<String>,
    /// The models it serves (fixed at start).
    pub models: Arc<Vec<String>>,
    /// SHA-256 of the worker credential; `None` only on loopback without one.
    pub token_sha256: Option<[u8; 32]>,
    /// Set on SIGTERM: no new turns; those in flight finish.
    pub draining: Arc<AtomicBool>,
    /// Turns streaming now (a drain waits for them).
    pub in_flight: Arc<AtomicUsize>,
    pub max_body_bytes: usize,
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

pub fn router(state: WorkerState) -> Router {
    let internal = Router::new()
        .route(wire::CHAT_PATH, post(chat))
        .route(wire::STATUS_PATH, get(status))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(internal)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn authenticate(State(state): State<WorkerState>, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.token_sha256 {
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(hash_token);
        let ok = presented.is_some_and(|p| bool::from(p.ct_eq(expected)));
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": {"message": "this worker answers its routers only (missing or wrong worker credential)", "type": "invalid_request_error", "code": "invalid_worker_credential"}})),
            )
                .into_response();
        }
    }
    if let Some(v) = request.headers().get(wire::PROTOCOL_HEADER)
        && v.as_bytes() != wire::PROTOCOL_VERSION.as_bytes()
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            ProviderError::Unavailable {
                provider: state.provider.clone(),
                detail: format!(
                    "the router speaks worker protocol {}, this worker {}",
                    String::from_utf8_lossy(v.as_bytes()),
                    wire::PROTOCOL_VERSION
                ),
            },
        );
    }
    next.run(request).await
}

/// An error before any event, in the protocol's shape: the router reads it and may try
/// another worker.
fn refuse(status: StatusCode, error: ProviderError) -> Response {
    (status, Json(WireEvent::Error { error })).into_response()
}

/// Counts a turn in flight until its stream is dropped (finished, or the router went away).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn chat(State(state): State<WorkerState>, body: axum::body::Bytes) -> Response {
    let request: WorkerChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": format!("not a worker chat request: {e}"), "type": "invalid_request_error"}})),
            )
                .into_response();
        }
    };
    let unavailable = |detail: String| ProviderError::Unavailable {
        provider: state.provider.clone(),
        detail,
    };
    if state.draining.load(Ordering::SeqCst) {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            unavailable("the worker is draining (shutting down)".into()),
        );
    }
    if request.provider != state.provider {
        return refuse(
            StatusCode::BAD_REQUEST,
            unavailable(format!(
                "this worker serves '{}', not '{}'",
                state.provider, request.provider
            )),
        );
    }
    if !state.models.contains(&request.model) {
        return refuse(
            StatusCode::BAD_REQUEST,
            unavailable(format!(
                "this worker does not serve model '{}'",
                request.model
            )),
        );
    }
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    let guard = InFlight(state.in_flight.clone());
    let events = state.backend.chat(ChatRequest {
        provider: request.provider,
        model: request.model,
        system: request.system,
        messages: request.messages,
        tools: request.tools.map(crate::provider::ToolSet::new),
        owner: request.owner,
    });
    let stream = events.map(move |event| {
        let _held = &guard;
        let event = WireEvent::from(event);
        Ok::<_, std::convert::Infallible>(
            Event::default()
                .json_data(&event)
                .expect("wire events serialize"),
        )
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The worker's status for routers.
pub fn worker_status(state: &WorkerState) -> Option<WorkerStatus> {
    let info = state.backend.providers().into_iter().next()?;
    let draining = state.draining.load(Ordering::SeqCst);
    let readiness = state.backend.readiness();
    Some(WorkerStatus {
        protocol: wire::PROTOCOL_VERSION.into(),
        provider: info.name,
        kind: info.kind?,
        account: state.account.clone(),
        models: info.models,
        default_model: info.default_model,
        health: info.health,
        limited_until: info.limited_until,
        accepting: readiness.ready && !draining,
        draining,
        capacity: info.pool,
        limits: info.limits,
        version: env!("CARGO_PKG_VERSION").into(),
        instance: crate::runtime::parked::instance_id().into(),
        cli: info.cli,
    })
}

async fn status(State(state): State<WorkerState>) -> Response {
    match worker_status(&state) {
        Some(s) => Json(s).into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Ready while the provider can answer and the worker is not draining.
async fn readyz(State(state): State<WorkerState>) -> Response {
    let draining = state.draining.load(Ordering::SeqCst);
    let readiness = state.backend.readiness();
    let ready = readiness.ready && !draining;
    let detail = if draining {
        "draining".to_string()
    } else {
        readiness.detail
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({"ready": ready, "detail": detail}))).into_response()
}

async fn metrics(State(state): State<WorkerState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
