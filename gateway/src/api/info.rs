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

/// `GET /health`: a summary for people and simple monitors.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let providers = state.chat.providers();
    let serving = providers
        .iter()
        .filter(|p| p.ready_workers > 0 || p.pool.busy > 0)
        .count();
    let status = if serving > 0 { "ok" } else { "degraded" };
    Json(json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "providers": providers.iter().map(|p| json!({"name": p.name, "health": p.health})).collect::<Vec<_>>(),
    }))
}

/// `GET /healthz`: liveness. The process answers, so it is alive.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: ready when the session store answers and at least one provider can take
/// requests.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if let Err(e) = state.chat.store().ping().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": format!("session store: {e}")})),
        );
    }
    let providers = state.chat.providers();
    let serving: Vec<_> = providers
        .iter()
        .filter(|p| p.ready_workers > 0 || p.pool.busy > 0)
        .map(|p| p.name.clone())
        .collect();
    let status = if serving.is_empty() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(json!({"ready": !serving.is_empty(), "serving": serving})),
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
