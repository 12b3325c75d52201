//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::config::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "llm-mcp-hub",
    version,
    // `--version` also names the CLIs found on PATH (what an image carries): handled in main.
    disable_version_flag = true,
    arg_required_else_help = true,
    about = "Serve your Claude and Gemini subscriptions, through their own CLIs, as an OpenAI-compatible API",
    long_about = "Serve your Claude and Gemini subscriptions, through their own CLIs, as an \
                  OpenAI-compatible API.\n\nSettings come from built-in defaults, then the \
                  --config TOML file, then LLM_MCP_HUB_* environment variables (nested keys \
                  joined by '__', e.g. LLM_MCP_HUB_PROVIDERS__CLAUDE__MAX_CONCURRENCY=8), then \
                  flags."
)]
pub struct Cli {
    /// Print the hub's version and those of the claude and gemini CLIs on PATH.
    #[arg(short = 'V', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole hub in one process: REST API and providers in-process.
    Serve(ServeArgs),
    /// Print the effective configuration (defaults, file, environment and flags merged) as TOML.
    Config(ConfigArgs),
    /// Print a new hub API key, and the `[[keys]]` entry (its SHA-256) to configure.
    Keygen(KeygenArgs),
    /// Serve MCP over stdin/stdout (for Claude Desktop and other MCP hosts): providers
    /// in-process, or forwarded to a running hub with --hub-url. Logs go to stderr.
    McpStdio(McpStdioArgs),
    /// Cluster mode, gateway: the REST and MCP API, sessions and keys as `serve`, answered by
    /// worker processes found through [discovery] (Kubernetes or a static list).
    Router(ServeArgs),
    /// Cluster mode, one provider and one account: its CLI pool behind the internal worker
    /// protocol, for routers only.
    Worker(WorkerArgs),
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Which CLI this worker runs.
    #[arg(long, value_enum)]
    pub provider: crate::provider::ProviderKind,
    /// The provider's name, which clients put in `model` (the LLMProvider's name) [default: the
    /// kind]. A `[providers.<name>]` table of the config file, if any, is the starting point.
    #[arg(long, env = "LLM_MCP_HUB_PROVIDER_NAME")]
    pub name: Option<String>,
    /// The subscription account this worker is logged in with (shown to routers and in
    /// `/v1/providers`).
    #[arg(long, env = "LLM_MCP_HUB_ACCOUNT")]
    pub account: Option<String>,
    /// Requests answered at once.
    #[arg(long, env = "LLM_MCP_HUB_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Whole-request deadline in seconds.
    #[arg(long, env = "LLM_MCP_HUB_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Models clients may ask for, comma-separated; empty keeps the kind's list.
    #[arg(long, env = "LLM_MCP_HUB_MODELS", value_delimiter = ',')]
    pub models: Vec<String>,
    /// The model used when a client names only the provider; empty: the kind's default if
    /// allowed, else the first model.
    #[arg(long, env = "LLM_MCP_HUB_DEFAULT_MODEL")]
    pub default_model: Option<String>,
    /// File holding the credential routers must present. Required unless --listen is a
    /// loopback address.
    #[arg(long, env = "LLM_MCP_HUB_WORKER_TOKEN_FILE")]
    pub worker_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Args)]
pub struct McpStdioArgs {
    /// Forward to the hub at this URL (http://127.0.0.1:8080, or https:// checked against the
    /// system's trust store; SSL_CERT_FILE names a private CA) instead of running the providers
    /// in this process. Plain http only to loopback (the key would travel in clear text); no
    /// user:password in the URL.
    #[arg(long, env = "LLM_MCP_HUB_URL")]
    pub hub_url: Option<String>,
    /// Hub API key for --hub-url (sent as a bearer token).
    #[arg(long, env = "LLM_MCP_HUB_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Settings of the in-process providers (as for `serve`; --listen is not used).
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the reference of every setting (Markdown: type, default, environment variable,
    /// meaning) instead of the effective configuration.
    #[arg(long)]
    pub reference: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// A name for the key, shown in logs instead of the key.
    #[arg(long, default_value = "default")]
    pub id: String,
    /// Providers the key may use (all when not given).
    #[arg(long, value_delimiter = ',')]
    pub providers: Vec<String>,
}

#[derive(Debug, Args, Serialize)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, short, env = "LLM_MCP_HUB_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Serve a non-loopback address without API keys (anyone who reaches it can use your
    /// subscriptions).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dangerously_allow_unauthenticated: bool,
    /// Keep sessions in this Redis instead of memory.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormatArg>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}
