//! `serve`: the whole hub in one process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::auth::KeyRing;
use crate::backend::{Backend, LocalBackend};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::service::{ChatService, SessionSettings};
use crate::session::redis::RedisOptions;
use crate::session::{MemoryStore, RedisStore, SessionStore};

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let keys = Arc::new(load_keys(&config)?);
    refuse_open_exposure(&config, &keys)?;
    let (state, backend) = build(&config, keys).await?;
    let app = api::router(state, &config);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, providers = ?config.providers.keys().collect::<Vec<_>>(), "llm-mcp-hub listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    // Streamed deltas are small writes: without TCP_NODELAY, Nagle's algorithm holds each one
    // until the previous is acknowledged (≈40 ms per chunk, measured).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
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

/// The hub's services as `serve` (and `mcp-stdio` in-process) run them: session store,
/// in-process providers (started) and the chat service. Call `backend.shutdown()` at the end.
pub async fn build(
    config: &Config,
    keys: Arc<KeyRing>,
) -> anyhow::Result<(AppState, Arc<dyn Backend>)> {
    let metrics = Arc::new(Metrics::new());
    let store = session_store(config, &metrics).await?;
    let local = LocalBackend::new(config, metrics.clone());
    local.start();
    let backend: Arc<dyn Backend> = Arc::new(local);
    let state = AppState {
        chat: ChatService::new(
            backend.clone(),
            store,
            SessionSettings {
                ttl: Duration::from_secs(config.session_ttl_secs),
                max_messages: config.session_max_messages,
                max_bytes: config.session_max_bytes,
                busy_wait: Duration::from_millis(config.session_busy_wait_ms),
            },
            metrics.clone(),
        ),
        metrics,
        keys,
    };
    Ok((state, backend))
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn load_keys(config: &Config) -> anyhow::Result<KeyRing> {
    let ring = match &config.api_keys_file {
        Some(path) => KeyRing::from_file(path, config.api_keys.clone())?,
        None => KeyRing::new(config.api_keys.clone())?,
    };
    if ring.is_enabled() {
        tracing::info!(keys = ring.len(), "hub API keys required on /v1");
    }
    Ok(ring)
}

/// Without keys, anyone who reaches the port spends the owner's subscriptions: only loopback
/// may go without, unless the owner says so with a flag whose name says what it does.
fn refuse_open_exposure(config: &Config, keys: &KeyRing) -> anyhow::Result<()> {
    if keys.is_enabled() || config.listen.ip().is_loopback() {
        return Ok(());
    }
    if config.dangerously_allow_unauthenticated {
        tracing::warn!(listen = %config.listen, "serving a non-loopback address WITHOUT API keys: anyone who reaches it can use your subscriptions");
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {} without API keys: configure api_keys_file or api_keys \
         (see `llm-mcp-hub keygen`), or set dangerously_allow_unauthenticated = true",
        config.listen
    )
}

async fn session_store(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Arc<dyn SessionStore>> {
    if let Some(url) = &config.redis_url {
        let store = Arc::new(
            RedisStore::connect(&RedisOptions {
                url: url.clone(),
                timeout: Duration::from_millis(config.redis_timeout_ms),
            })
            .await?,
        );
        if let Err(e) = store.ping().await {
            tracing::warn!(error = %e, "Redis is not reachable yet; sessions fail with 503 until it is");
        }
        tracing::info!("sessions in Redis");
        spawn_sweeper(&store, config, metrics, |_| {});
        return Ok(store);
    }
    let store = Arc::new(MemoryStore::with_capacity(config.session_max_count));
    let evicted = metrics.sessions_evicted.clone();
    spawn_sweeper(&store, config, metrics, move |store: &MemoryStore| {
        evicted.set(store.evicted() as i64)
    });
    Ok(store)
}

/// Sweeps expired sessions every `session_sweep_secs` and counts them, for as long as the
/// store lives. The in-memory store drops an expired session on access too; the sweep frees the ones
/// never read again. `also` reports store-specific gauges on the same tick.
fn spawn_sweeper<S: SessionStore + 'static>(
    store: &Arc<S>,
    config: &Config,
    metrics: &Metrics,
    also: impl Fn(&S) + Send + 'static,
) {
    let store = Arc::downgrade(store);
    let every = Duration::from_secs(config.session_sweep_secs);
    let expired = metrics.sessions_expired.clone();
    let errors = metrics.store_errors.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else {
                return;
            };
            match store.sweep_expired().await {
                Ok(n) => expired.with_label_values(&[store.kind()]).inc_by(n),
                Err(e) => {
                    errors.with_label_values(&["sweep"]).inc();
                    tracing::debug!(error = %e, "session sweep failed; next tick retries");
                }
            }
            also(&store);
        }
    });
}
