//! `llm-mcp-hub-operator`: runs the LLMProvider and HubGateway controllers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use kube::Client;
use llm_mcp_hub_operator::builders::{BuildConfig, default_image};
use llm_mcp_hub_operator::http::{HttpState, router};
use llm_mcp_hub_operator::leader::{LeaderElector, LeaseConfig};
use llm_mcp_hub_operator::metrics::Metrics;
use llm_mcp_hub_operator::reconcile::Context;
use llm_mcp_hub_operator::workers;
use tokio_util::sync::CancellationToken;

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

/// Kubernetes operator of LLM MCP Hub: reconciles LLMProvider and HubGateway resources.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(
        long,
        env = "LLM_MCP_HUB_OPERATOR_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    listen: SocketAddr,
    /// Image of workers and routers when a resource does not name one.
    #[arg(long, env = "LLM_MCP_HUB_IMAGE", default_value_t = default_image())]
    image: String,
    /// Registries (`ghcr.io`) or registry paths (`ghcr.io/llm-mcp-hub`) that an LLMProvider's or
    /// HubGateway's own image (`spec.image`, the managed Redis image) may come from, comma
    /// separated; a resource naming another is refused (`ImageNotAllowed`). Empty: any image.
    #[arg(
        long,
        env = "LLM_MCP_HUB_ALLOWED_IMAGE_REGISTRIES",
        value_delimiter = ','
    )]
    allowed_image_registries: Vec<String>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "LLM_MCP_HUB_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Elect a leader through a Lease so that only one replica reconciles.
    #[arg(long, env = "LLM_MCP_HUB_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "llm-mcp-hub-operator")]
    lease_name: String,
    /// Namespace of the leader Lease (default: the operator's own, from POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Identity of this replica in the Lease (default: POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How often the operator asks each LLMProvider's ready workers for their accounts' state
    /// (logged in, usage-limited until when) for its status; 0: never (the status then comes
    /// from the Deployments alone, and Ready does not wait for a logged-in worker).
    #[arg(
        long,
        env = "LLM_MCP_HUB_WORKER_STATUS_INTERVAL_SECS",
        default_value_t = 30
    )]
    worker_status_interval_secs: u64,
    /// How long one worker may take to answer the operator's status request.
    #[arg(
        long,
        env = "LLM_MCP_HUB_WORKER_STATUS_TIMEOUT_SECS",
        default_value_t = 3
    )]
    worker_status_timeout_secs: u64,
    /// Log format.
    #[arg(long, env = "LLM_MCP_HUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// Print the CustomResourceDefinitions as YAML and exit.
    #[arg(long)]
    print_crds: bool,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn,tower=warn,hyper=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.print_crds {
        for crd in llm_mcp_hub_crds::crds() {
            print!("---\n{}", llm_mcp_hub_crds::crd_yaml(&crd));
        }
        return Ok(());
    }
    init_logging(args.log_format);

    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let app = router(HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let version = client
        .apiserver_version()
        .await
        .context("the API server does not answer")?;
    tracing::info!(server = %version.git_version, image = %args.image, "connected to the API server");
    ready.store(true, Ordering::Relaxed);

    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "llm-mcp-hub-operator".to_owned());
    let lease_ns = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let mut elector = args.leader_elect.then(|| {
        LeaderElector::new(
            client.clone(),
            LeaseConfig::new(&args.lease_name, &lease_ns, &identity),
        )
    });

    let shutdown = CancellationToken::new();
    if let Some(el) = elector.as_mut() {
        tracing::info!(lease = %args.lease_name, namespace = %lease_ns, %identity, "waiting to become leader");
        tokio::select! {
            _ = el.acquire() => {},
            _ = shutdown_signal() => return Ok(()),
        }
        tracing::info!("became leader");
    }
    metrics.leader.set(1);

    let mut ctx = Context::new(
        client.clone(),
        BuildConfig {
            image: args.image.clone(),
            allowed_image_registries: args
                .allowed_image_registries
                .iter()
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect(),
            operator_namespace: args.lease_namespace.clone(),
        },
        metrics.clone(),
        Some(identity.clone()),
    );
    if args.worker_status_interval_secs > 0 {
        let slices = workers::watch_worker_slices(client.clone(), args.watch_namespace.as_deref());
        ctx = ctx.with_workers(workers::WorkerProbe::new(
            slices,
            Duration::from_secs(args.worker_status_timeout_secs.max(1)),
            Duration::from_secs(args.worker_status_interval_secs),
        ));
    }
    let ctx = Arc::new(ctx);
    let controllers = tokio::spawn(llm_mcp_hub_operator::controller::run(
        client.clone(),
        ctx,
        args.watch_namespace.clone(),
        shutdown.clone(),
    ));

    let keep = async {
        match elector.as_mut() {
            Some(el) => el.keep().await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = keep => {
            // Another replica may take over now: stop reconciling at once.
            tracing::error!("leadership lost; exiting so that only one replica reconciles");
            std::process::exit(1);
        }
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            shutdown.cancel();
        }
    }
    let _ = controllers.await;
    metrics.leader.set(0);
    if let Some(el) = elector.as_mut()
        && let Err(e) = el.release().await
    {
        tracing::warn!(error = %e, "could not release the leader Lease");
    }
    Ok(())
}
