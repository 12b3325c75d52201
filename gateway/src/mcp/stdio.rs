//! `llm-mcp-hub mcp-stdio`: MCP over stdin/stdout for hosts that start their servers as
//! processes (Claude Desktop). stdout carries MCP frames only; logs go to stderr.

use std::sync::Arc;

use anyhow::Context;
use rmcp::ServiceExt;

use super::remote::RemoteHub;
use super::{Hub, McpServer};
use crate::auth::{Caller, KeyRing};
use crate::config::Config;
use crate::server;

/// Serves one MCP client on stdio until it closes stdin (or the process is signalled).
pub async fn run(
    config: Config,
    hub_url: Option<String>,
    api_key: Option<String>,
) -> anyhow::Result<()> {
    let (hub, backend): (Arc<dyn Hub>, _) = match hub_url {
        Some(url) => {
            // Refuses plain http to another machine; the URL is logged without userinfo.
            let remote = RemoteHub::new(&url, api_key)?;
            tracing::info!(url = remote.shown_url(), "mcp-stdio: forwarding to a hub");
            (Arc::new(remote), None)
        }
        None => {
            // The local user runs the process: no hub keys in between.
            let (state, backend) = server::build(&config, Arc::new(KeyRing::default())).await?;
            tracing::info!(providers = ?config.providers.keys().collect::<Vec<_>>(), "mcp-stdio: providers in-process");
            (Arc::new(state.chat) as Arc<dyn Hub>, Some(backend))
        }
    };
    let running = McpServer::with_caller(hub, Caller::anonymous())
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP initialization over stdio failed")?;
    let cancel = running.cancellation_token();
    tokio::select! {
        result = running.waiting() => {
            if let Err(e) = result {
                tracing::warn!(error = %e, "MCP stdio service failed");
            }
        }
        () = server::shutdown_signal() => cancel.cancel(),
    }
    // Kills the idle CLI processes; cancelled requests already killed theirs.
    if let Some(backend) = backend {
        backend.shutdown();
    }
    tracing::info!("mcp-stdio stopped");
    Ok(())
}
