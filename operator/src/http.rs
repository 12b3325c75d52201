//! `/metrics`, `/healthz` and `/readyz` of the operator.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// State of the HTTP endpoints.
#[derive(Clone)]
pub struct HttpState {
    /// Metrics to render.
    pub metrics: Metrics,
    /// Set once the API server answered; a standby replica is ready too.
    pub ready: Arc<AtomicBool>,
}

/// The router of the operator's HTTP endpoints.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(app: Router, path: &str) -> (StatusCode, String) {
        let resp = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn health_ready_and_metrics() {
        let state = HttpState {
            metrics: Metrics::new(),
            ready: Arc::new(AtomicBool::new(false)),
        };
        state
            .metrics
            .reconciles
            .with_label_values(&["LLMProvider"])
            .inc();
        let app = router(state.clone());
        assert_eq!(get(app.clone(), "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(app.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.ready.store(true, Ordering::Relaxed);
        assert_eq!(get(app.clone(), "/readyz").await.0, StatusCode::OK);
        let (code, text) = get(app, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            text.contains("llm_mcp_hub_operator_reconciles_total{kind=\"LLMProvider\"} 1"),
            "{text}"
        );
    }
}
