//! `serve`: the whole hub in one process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::backend::{Backend, LocalBackend};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::service::ChatService;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let local = LocalBackend::new(&config, metrics.clone());
    local.start();
    let backend: Arc<dyn Backend> = Arc::new(local);
    let state = AppState {
        chat: ChatService::new(backend.clone()),
        metrics,
    };
    let app = api::router(state, config.max_body_bytes);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, providers = ?config.providers.keys().collect::<Vec<_>>(), "llm-mcp-hub listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let server = axum::serve(listener, app).with_graceful_shutdown({
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => result?,
        () = shutdown_signal() => {
            tracing::info!(grace_secs = grace.as_secs(), "shutting down: no new connections, finishing in-flight requests");
            let _ = stop_tx.send(true);
            if tokio::time::timeout(grace, &mut server).await.is_err() {
                tracing::warn!("grace period over: cancelling the requests still running");
            }
        }
    }
    // Dropping the server drops in-flight streams, which kills their CLI processes.
    backend.shutdown();
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
