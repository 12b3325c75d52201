//! The process entry points: `serve` (all in one), `router` and `worker` (cluster mode), over
//! one app builder; and what they share (keys, session store, HTTP serving with a grace period).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::app::{self, AppState};
use crate::auth::KeyRing;
use crate::backend::{Backend, LocalBackend, RemoteBackend};
use crate::cli::WorkerArgs;
use crate::config::{Config, ProviderConfig};
use crate::metrics::Metrics;
use crate::service::{ChatService, SessionSettings};
use crate::session::redis::RedisOptions;
use crate::session::{MemoryStore, RedisStore, SessionStore};
use crate::worker_api::{self, WorkerState};

/// `serve`: the whole hub in one process, providers in-process.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let keys = Arc::new(load_keys(&config)?);
    refuse_open_exposure(&config, &keys)?;
    let (state, backend) = build(&config, keys).await?;
    run_app(&config, state, backend).await
}

/// `router`: the same API, sessions and keys as `serve`, answered by discovered workers.
pub async fn router(config: Config) -> anyhow::Result<()> {
    let keys = Arc::new(load_keys(&config)?);
    refuse_open_exposure(&config, &keys)?;
    let metrics = Arc::new(Metrics::new());
    let remote = RemoteBackend::start(&config, metrics.clone())
        .await
        .context("cannot start worker discovery")?;
    let backend: Arc<dyn Backend> = Arc::new(remote);
    let state = app_state(&config, keys, backend.clone(), metrics).await?;
    run_app(&config, state, backend).await
}

async fn run_app(
    config: &Config,
    state: AppState,
    backend: Arc<dyn Backend>,
) -> anyhow::Result<()> {
    let app = app::router(state, config);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    serve_http(
        config.listen,
        app,
        async move {
            let _ = shutdown_signal().await;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "shutting down: no new connections, finishing in-flight requests"
            );
        },
        grace,
    )
    .await?;
    // Dropping the server dropped in-flight streams, which kills their CLI processes.
    backend.shutdown();
    tracing::info!("stopped");
    Ok(())
}

/// Serves `app` until `stop` completes, then lets in-flight requests finish for `grace`.
async fn serve_http(
    listen: std::net::SocketAddr,
    app: axum::Router,
    stop: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "llm-mcp-hub listening");
    // Streamed deltas are small writes: without TCP_NODELAY, Nagle's algorithm holds each one
    // until the previous is acknowledged (≈40 ms per chunk, measured).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown({
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => result?,
        () = stop => {
            let _ = stop_tx.send(true);
            if tokio::time::timeout(grace, &mut server).await.is_err() {
                tracing::warn!("grace period over: cancelling the requests still running");
            }
        }
    }
    Ok(())
}

/// `worker`: one provider, one account, behind the internal worker protocol. On SIGTERM it
/// stops taking turns (routers see `draining` and go elsewhere) and lets those in flight finish
/// within `shutdown_grace_secs`.
pub async fn worker(config: Config, args: WorkerArgs) -> anyhow::Result<()> {
    let (config, name) = worker_config(config, &args)?;
    let token_sha256 = match &args.worker_token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the worker credential {}", path.display()))?;
            anyhow::ensure!(
                !token.trim().is_empty(),
                "the worker credential {} is empty",
                path.display()
            );
            Some(worker_api::hash_token(&token))
        }
        None if config.listen.ip().is_loopback() => {
            tracing::warn!(
                "no worker credential (--worker-token-file): any local process may use this worker"
            );
            None
        }
        None => anyhow::bail!(
            "refusing to listen on {} without a worker credential: give --worker-token-file \
             (LLM_MCP_HUB_WORKER_TOKEN_FILE)",
            config.listen
        ),
    };
    let metrics = Arc::new(Metrics::new());
    let backend = Arc::new(LocalBackend::new(&config, metrics.clone()));
    backend.start();
    let state = WorkerState {
        backend: backend.clone(),
        metrics,
        provider: name.clone(),
        account: args.account.clone().filter(|a| !a.is_empty()),
        models: Arc::new(config.providers[&name].models.clone()),
        token_sha256,
        draining: Arc::new(AtomicBool::new(false)),
        in_flight: Arc::new(AtomicUsize::new(0)),
        max_body_bytes: config.max_body_bytes,
    };
    tracing::info!(provider = %name, kind = args.provider.as_str(), account = ?state.account, "worker starting");
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let (draining, in_flight) = (state.draining.clone(), state.in_flight.clone());
    let stop = async move {
        let _ = shutdown_signal().await;
        draining.store(true, Ordering::SeqCst);
        tracing::info!(
            in_flight = in_flight.load(Ordering::SeqCst),
            grace_secs = grace.as_secs(),
            "draining: no new turns, finishing those in flight"
        );
        let deadline = tokio::time::Instant::now() + grace;
        while in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    serve_http(
        config.listen,
        worker_api::router(state),
        stop,
        Duration::from_secs(1),
    )
    .await?;
    backend.shutdown();
    tracing::info!("stopped");
    Ok(())
}

/// The worker's configuration: the file's (or the kind's default) provider settings under
/// `name`, with the operator's flags and environment on top, and no other provider.
pub fn worker_config(mut config: Config, args: &WorkerArgs) -> anyhow::Result<(Config, String)> {
    let kind = args.provider;
    let name = args
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| kind.as_str().to_string());
    let mut provider = config
        .providers
        .get(&name)
        .filter(|p| p.kind == kind)
        .cloned()
        .unwrap_or_else(|| ProviderConfig::for_kind(kind));
    provider.enabled = true;
    if let Some(c) = args.concurrency {
        provider.max_concurrency = c;
    }
    if let Some(t) = args.request_timeout_secs {
        provider.request_timeout_secs = t;
    }
    let models: Vec<String> = args
        .models
        .iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    if !models.is_empty() {
        provider.models = models;
    }
    match args.default_model.as_deref().map(str::trim) {
        Some(d) if !d.is_empty() => provider.default_model = d.to_string(),
        _ if !provider.models.contains(&provider.default_model) => {
            provider.default_model = provider.models[0].clone();
        }
        _ => {}
    }
    config.providers = [(name.clone(), provider)].into();
    config.validate()?;
    Ok((config, name))
}

/// The hub's services as `serve` (and `mcp-stdio` in-process) run them: session store,
/// in-process providers (started) and the chat service. Call `backend.shutdown()` at the end.
pub async fn build(
    config: &Config,
    keys: Arc<KeyRing>,
) -> anyhow::Result<(AppState, Arc<dyn Backend>)> {
    let metrics = Arc::new(Metrics::new());
    let local = LocalBackend::new(config, metrics.clone());
    local.start();
    let backend: Arc<dyn Backend> = Arc::new(local);
    let state = app_state(config, keys, backend.clone(), metrics).await?;
    Ok((state, backend))
}

async fn app_state(
    config: &Config,
    keys: Arc<KeyRing>,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<AppState> {
    let store = session_store(config, &metrics).await?;
    Ok(AppState {
        chat: ChatService::new(
            backend,
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
    })
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
                ca_file: config.redis_ca_file.clone(),
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
    let store = Arc::new(MemoryStore::with_limits(
        config.session_max_count,
        config.session_max_per_key,
    ));
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
