//! Read-only endpoints: models, providers, health and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;
use super::error::created_now;

/// `GET /v1/models`, in OpenAI's list shape.
pub async fn models(State(state): State<AppState>) -> impl IntoResponse {
    let created = created_now();
    let providers = state.chat.providers();
    let data: Vec<_> = providers
        .iter()
        .flat_map(|p| {
            std::iter::once(p.name.clone())
                .chain(p.models.iter().map(|m| format!("{}/{m}", p.name)))
                .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": p.name}))
                .collect::<Vec<_>>()
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// `GET /v1/providers`: health, pool state and limits of each provider.
pub async fn providers(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({"object": "list", "data": state.chat.providers()}))
}

/// `GET /health`: a summary for people and simple monitors, the session store included.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let providers = state.chat.providers();
    let serving = providers
        .iter()
        .filter(|p| p.ready_workers > 0 || p.pool.busy > 0)
        .count();
    let store = match state.chat.store().ping().await {
        Ok(()) => json!({"kind": state.chat.store().kind(), "status": "ok"}),
        Err(e) => {
            json!({"kind": state.chat.store().kind(), "status": "unavailable", "error": e.to_string()})
        }
    };
    let status = if serving > 0 && store["status"] == "ok" {
        "ok"
    } else {
        "degraded"
    };
    Json(json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "session_store": store,
        "providers": providers.iter().map(|p| json!({"name": p.name, "health": p.health})).collect::<Vec<_>>(),
    }))
}

/// `GET /healthz`: liveness. The process answers, so it is alive.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: whether this process should get traffic. The session store counts only until
/// it has answered once: before that a client's `X-Session-ID` would fail; after it, while
/// Redis is down, requests without a session still work, and every replica would leave the
/// Service at once (the store shows in `/health` and the metrics instead).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mut readiness = state.chat.backend().readiness();
    if readiness.ready && !state.chat.store_reached().await {
        readiness.ready = false;
        readiness.detail = format!(
            "the session store ({}) has not answered yet",
            state.chat.store().kind()
        );
    }
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"ready": readiness.ready, "detail": readiness.detail})),
    )
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
