//! Hub configuration: built-in defaults, then a TOML file, then `LLM_MCP_HUB_*` environment
//! variables, then command-line flags; later sources win.
//!
//! Every limit the hub enforces (sizes, timeouts, concurrency) is a field here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::provider::ProviderKind;

pub mod reference;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes (413 above).
    pub max_body_bytes: usize,
    /// On SIGTERM: how long in-flight requests may go on before they are cancelled.
    pub shutdown_grace_secs: u64,
    /// Where CLI processes get their private scratch directories. Must not lie below a group-
    /// or world-writable directory such as /tmp: gemini then ignores the hub's lock-down
    /// settings (and the hub refuses to run it). Default: `$XDG_RUNTIME_DIR/llm-mcp-hub`, else
    /// `$HOME/.cache/llm-mcp-hub/run`.
    pub scratch_dir: Option<PathBuf>,
    /// Sessions expire this long after their last use.
    pub session_ttl_secs: u64,
    /// Messages a session may hold; a turn that would pass it gets 413 and stores nothing.
    pub session_max_messages: usize,
    /// Bytes of stored JSON a session may hold (413 above, nothing stored).
    pub session_max_bytes: usize,
    /// Sessions the in-memory store keeps at most; beyond it the least recently used session of
    /// the key holding the most is dropped (each request without `X-Session-ID` creates one).
    pub session_max_count: usize,
    /// Sessions one hub key keeps at most in the in-memory store; beyond it that key's own least
    /// recently used session is dropped (never another key's), and when every one of them is in a
    /// turn a new session gets 429 `session_quota_exceeded`.
    pub session_max_per_key: usize,
    /// How long a turn waits for another turn on the same session before 409.
    pub session_busy_wait_ms: u64,
    /// How often expired sessions are swept from the store and counted in
    /// `sessions_expired_total` (an expired session is unreachable at once either way).
    pub session_sweep_secs: u64,
    /// MCP sessions (streamable HTTP and SSE together) open at most; a client opening one more
    /// gets 503 with Retry-After.
    pub mcp_max_sessions: usize,
    /// A streamable-HTTP MCP session with no request for this long is closed.
    pub mcp_session_idle_secs: u64,
    /// Sessions live in this Redis (`redis://[:password@]host:port/db`); in memory when unset.
    /// `rediss://` for TLS, `rediss://user:password@host:port/db` for an ACL user.
    pub redis_url: Option<String>,
    /// PEM CA certificates to trust for `rediss://` instead of the system's trust store (a
    /// private CA); unset: the system's (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured).
    pub redis_ca_file: Option<PathBuf>,
    /// Timeout of each Redis command and connection attempt.
    pub redis_timeout_ms: u64,
    /// TOML file of hub API keys (`[[keys]] id, sha256, providers`), e.g. a mounted Secret.
    pub api_keys_file: Option<PathBuf>,
    /// Hub API keys given inline, same shape as the file's entries.
    pub api_keys: Vec<crate::auth::KeyEntry>,
    /// Serve a non-loopback address without API keys. Anyone who can reach the port can then
    /// spend your subscriptions.
    pub dangerously_allow_unauthenticated: bool,
    /// Providers by name; the name is what clients put in `model`. (`serve`, `mcp-stdio` and
    /// `worker`; a `router` learns its providers from its workers.)
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `router`: where its workers are found.
    pub discovery: DiscoveryConfig,
    /// `router`: how requests are spread over workers and retried.
    pub routing: RoutingConfig,
}

/// Where a router finds its workers: Kubernetes, a static list, or both.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Directory of worker credentials, one file per provider named after it (the operator
    /// mounts each served LLMProvider's `<p>-worker-token` Secret here). Re-read while running.
    pub worker_token_dir: Option<PathBuf>,
    /// Watch LLMProviders and their workers' EndpointSlices (in-cluster, or `KUBECONFIG`).
    pub kubernetes: Option<KubernetesDiscovery>,
    /// Workers at fixed addresses (running without Kubernetes).
    #[serde(rename = "static")]
    pub static_workers: Vec<StaticWorker>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesDiscovery {
    /// Namespace of the LLMProviders (empty: the namespace of the router's service account).
    pub namespace: String,
    /// Which LLMProviders this router serves, in `kubectl -l` syntax; empty selects all.
    pub label_selector: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticWorker {
    /// The provider name the worker serves (what clients put in `model`).
    pub provider: String,
    /// Base URL of the worker, e.g. `http://10.0.0.7:8081`.
    pub url: String,
    /// The worker's credential file (default: `<worker_token_dir>/<provider>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// How often each worker's status (login, usage limit, load, draining) is read.
    pub status_interval_ms: u64,
    /// Timeout of one status read; a worker that misses it counts as failing.
    pub status_timeout_ms: u64,
    /// Timeout of opening a connection to a worker.
    pub connect_timeout_ms: u64,
    /// Workers tried for one request at most. Only failures before the first byte reached the
    /// client are retried elsewhere (refused or reset connection, busy, draining, usage limit,
    /// lost login), never after.
    pub max_attempts: u32,
    /// A worker that fails is left out for this long, doubling with each further failure…
    pub eject_base_ms: u64,
    /// …up to this.
    pub eject_max_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            status_interval_ms: 2000,
            status_timeout_ms: 1000,
            connect_timeout_ms: 2000,
            max_attempts: 3,
            eject_base_ms: 1000,
            eject_max_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// Which CLI this provider drives. The built-in `claude` and `gemini` providers have their
    /// own kind; a provider under another name is `claude` unless it says otherwise.
    pub kind: ProviderKind,
    /// The CLI to run: a path, or a name looked up on PATH.
    pub command: PathBuf,
    /// Set to false to leave a configured provider out.
    pub enabled: bool,
    /// CLI models clients may ask for as `<provider>/<model>`.
    pub models: Vec<String>,
    /// The model used when a client names only the provider.
    pub default_model: String,
    /// System prompt used when the request has none (the CLIs' own coding-agent prompts do not
    /// suit a chat API).
    pub default_system_prompt: String,
    /// Requests answered at once; each holds one CLI process.
    pub max_concurrency: usize,
    /// Requests that may wait for a free slot; more get 429 at once.
    pub max_queue: usize,
    /// How long a queued request waits for a slot before 429.
    pub queue_timeout_secs: u64,
    /// Processes of the default profile kept started and waiting.
    pub warm_processes: usize,
    /// Idle processes kept at most, across profiles (default: `max_concurrency`, so a busy pool
    /// never evicts the processes it is about to reuse).
    pub max_idle: Option<usize>,
    /// Whole-request deadline (504 after it).
    pub request_timeout_secs: u64,
    /// Longest silence from the CLI during a request (a stalled stream; 504 after it).
    pub idle_timeout_secs: u64,
    /// How long a long-lived process may take to confirm a reset between requests.
    pub reset_timeout_ms: u64,
    /// A long-lived process is retired after at most this many requests (some up to a tenth
    /// sooner, so processes are not all replaced at once); its successor starts during its last.
    /// A backstop: `max_process_rss_mib` usually retires a real CLI first.
    pub max_requests_per_process: u32,
    /// A long-lived process is retired once its resident memory reaches this many MiB (the CLI's
    /// own process: a `command` wrapper must `exec` the CLI), read after a request, at most once
    /// a second per process (a long-lived claude grows from ≈ 205 MiB to ≈ 330 over 500
    /// requests). From 90 % of it the process takes one more request while its successor
    /// starts. 0 turns this off.
    pub max_process_rss_mib: u64,
    /// A long-lived process is retired once it is this old, in seconds (then replaced).
    pub max_process_age_secs: u64,
    /// How far below the hub's own priority the CLI processes run: added to the hub's nice
    /// value (0–19; the result is capped at 19). The hub's own work — reading the CLIs' output,
    /// streaming it to clients, answering probes — is a small share of the CPU; above 0 it is not
    /// queued behind the CLIs it wakes or behind a CLI starting up. 0 runs them at the hub's
    /// priority.
    pub process_nice: i32,
    /// The CLI's own retries of its model server tolerated before the request fails with 502.
    pub max_upstream_retries: u32,
    /// Retry-After given when a usage limit is hit without a reset time.
    pub usage_limit_backoff_secs: u64,
    /// How long after a failed login requests fail fast before the CLI is tried again.
    pub login_recheck_secs: u64,
    /// How long a process that called the client's tools waits for the results, in seconds;
    /// after it, the follow-up is answered by a fresh process from the transcript.
    pub tool_result_timeout_secs: u64,
    /// Processes kept waiting on tool results at most (they hold no concurrency slot); the
    /// oldest is stopped to make room.
    pub max_parked_tool_turns: usize,
    /// Extra environment for the CLI (never an API key: those names are always dropped).
    pub env: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log_format: LogFormat::Text,
            max_body_bytes: 4 * 1024 * 1024,
            shutdown_grace_secs: 30,
            scratch_dir: None,
            session_ttl_secs: 3600,
            session_max_messages: 1000,
            session_max_bytes: 2 * 1024 * 1024,
            session_max_count: 10_000,
            session_max_per_key: 1000,
            session_busy_wait_ms: 10_000,
            session_sweep_secs: 30,
            mcp_max_sessions: 1000,
            mcp_session_idle_secs: 300,
            redis_url: None,
            redis_ca_file: None,
            redis_timeout_ms: 2000,
            api_keys_file: None,
            api_keys: Vec::new(),
            dangerously_allow_unauthenticated: false,
            providers: [ProviderKind::Claude, ProviderKind::Gemini]
                .into_iter()
                .map(|k| (k.as_str().to_string(), ProviderConfig::for_kind(k)))
                .collect(),
            discovery: DiscoveryConfig::default(),
            routing: RoutingConfig::default(),
        }
    }
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig::for_kind(ProviderKind::Claude)
    }
}

impl ProviderConfig {
    pub fn for_kind(kind: ProviderKind) -> Self {
        let (models, default_model): (&[&str], &str) = match kind {
            ProviderKind::Claude => (&["sonnet", "opus", "haiku"], "sonnet"),
            ProviderKind::Gemini => (
                &[
                    "gemini-2.5-pro",
                    "gemini-2.5-flash",
                    "gemini-2.5-flash-lite",
                ],
                "gemini-2.5-flash",
            ),
        };
        ProviderConfig {
            kind,
            command: PathBuf::from(kind.as_str()),
            enabled: true,
            models: models.iter().map(|m| m.to_string()).collect(),
            default_model: default_model.to_string(),
            default_system_prompt: "You are a helpful assistant.".to_string(),
            max_concurrency: 4,
            max_queue: 64,
            queue_timeout_secs: 30,
            warm_processes: 1,
            max_idle: None,
            request_timeout_secs: 300,
            idle_timeout_secs: 120,
            reset_timeout_ms: 5000,
            max_requests_per_process: 1000,
            max_process_rss_mib: 320,
            max_process_age_secs: 3600,
            process_nice: 5,
            max_upstream_retries: 3,
            usage_limit_backoff_secs: 300,
            login_recheck_secs: 30,
            tool_result_timeout_secs: 300,
            max_parked_tool_turns: 16,
            env: BTreeMap::new(),
        }
    }

    pub fn max_idle(&self) -> usize {
        self.max_idle
            .unwrap_or(self.max_concurrency)
            .max(self.warm_processes)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_secs(self.queue_timeout_secs)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Top-level keys that `LLM_MCP_HUB_*` environment variables may set.
const ENV_KEYS: &[&str] = &[
    "listen",
    "log_format",
    "max_body_bytes",
    "shutdown_grace_secs",
    "scratch_dir",
    "session_ttl_secs",
    "session_max_messages",
    "session_max_bytes",
    "session_max_count",
    "session_max_per_key",
    "session_busy_wait_ms",
    "session_sweep_secs",
    "mcp_max_sessions",
    "mcp_session_idle_secs",
    "redis_url",
    "redis_ca_file",
    "redis_timeout_ms",
    "api_keys_file",
    "dangerously_allow_unauthenticated",
    "providers",
    "discovery",
    "routing",
];

impl Config {
    pub fn scratch_root(&self) -> PathBuf {
        if let Some(dir) = &self.scratch_dir {
            return dir.clone();
        }
        if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(runtime).join("llm-mcp-hub");
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".cache").join("llm-mcp-hub").join("run")
    }

    /// Loads defaults ← `file` ← `LLM_MCP_HUB_*` env (`__` nests: `LLM_MCP_HUB_PROVIDERS__CLAUDE__MAX_CONCURRENCY`)
    /// ← `overrides` (command-line flags, already serialised).
    pub fn load(
        file: Option<&std::path::Path>,
        overrides: impl Serialize,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            // Only keys this file defines: other LLM_MCP_HUB_* variables (LLM_MCP_HUB_CONFIG,
            // settings of other commands) must not trip `deny_unknown_fields`.
            .merge(
                Env::prefixed("LLM_MCP_HUB_")
                    .filter(|key| {
                        let top = key.as_str().split("__").next().unwrap_or_default();
                        ENV_KEYS.iter().any(|k| top.eq_ignore_ascii_case(k))
                    })
                    .split("__"),
            )
            .merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.session_ttl_secs == 0 || self.session_sweep_secs == 0 {
            return bad("session_ttl_secs and session_sweep_secs must be ≥ 1".into());
        }
        if self.mcp_max_sessions == 0 || self.mcp_session_idle_secs == 0 {
            return bad("mcp_max_sessions and mcp_session_idle_secs must be ≥ 1".into());
        }
        if self.session_max_messages < 2 {
            return bad("session_max_messages must be ≥ 2".into());
        }
        if self.routing.max_attempts == 0 || self.routing.status_interval_ms == 0 {
            return bad("routing.max_attempts and routing.status_interval_ms must be ≥ 1".into());
        }
        for w in &self.discovery.static_workers {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return bad(format!(
                    "discovery.static: worker url '{}' must start with http:// or https://",
                    w.url
                ));
            }
        }
        for (name, p) in &self.providers {
            if name.is_empty() || name.contains('/') {
                return bad(format!(
                    "provider name '{name}' must be non-empty without '/'"
                ));
            }
            if !p.models.contains(&p.default_model) {
                return bad(format!(
                    "provider '{name}': default_model '{}' is not in models {:?}",
                    p.default_model, p.models
                ));
            }
            if p.max_concurrency == 0 {
                return bad(format!(
                    "provider '{name}': max_concurrency must be at least 1"
                ));
            }
            if p.request_timeout_secs == 0 || p.idle_timeout_secs == 0 {
                return bad(format!("provider '{name}': timeouts must be at least 1 s"));
            }
            // Below 0 would put the CLIs ahead of the hub, and needs a privilege pods lack.
            if !(0..=19).contains(&p.process_nice) {
                return bad(format!(
                    "provider '{name}': process_nice must be between 0 and 19"
                ));
            }
            if let Some(denied) = p.env.keys().find(|k| crate::provider::env::is_denied(k)) {
                return bad(format!(
                    "provider '{name}': env {denied} is never passed to a CLI (the hub does not use API keys)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_local() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.providers.len(), 2);
    }

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[providers.claude]\nkind = \"claude\"\nmax_concurrency = 7\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), serde_json::json!({"log_format": "json"})).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.providers["claude"].max_concurrency, 7);
        assert_eq!(
            c.providers["claude"].models,
            ProviderConfig::for_kind(ProviderKind::Claude).models
        );
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn api_keys_in_env_are_refused() {
        let mut c = Config::default();
        c.providers
            .get_mut("claude")
            .unwrap()
            .env
            .insert("ANTHROPIC_API_KEY".into(), "sk".into());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("ANTHROPIC_API_KEY")
        );
    }

    #[test]
    fn a_nice_value_outside_0_to_19_is_refused() {
        for (nice, ok) in [(-1, false), (0, true), (19, true), (20, false)] {
            let mut c = Config::default();
            c.providers.get_mut("gemini").unwrap().process_nice = nice;
            match c.validate() {
                Ok(()) => assert!(ok, "{nice} was accepted"),
                Err(e) => {
                    assert!(!ok, "{nice} was refused");
                    assert!(e.to_string().contains("process_nice"), "{e}");
                }
            }
        }
    }
}
