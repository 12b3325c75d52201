//! Where chat requests are answered. The HTTP and MCP front ends talk to a `Backend`; `serve`
//! answers in-process (`LocalBackend`), the cluster router forwards to worker pods. Both yield
//! the same typed events, so every front end has one code path.

pub mod local;
pub mod remote;

use std::sync::Arc;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::provider::{ChatEvent, Message, ProviderError, ProviderKind, ToolSet};
use crate::runtime::{HealthState, PoolStatus};

pub use local::LocalBackend;
pub use remote::RemoteBackend;

/// A chat request after model resolution.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub provider: String,
    pub model: String,
    pub system: Option<String>,
    /// The conversation, ending with the new user message or with tool results.
    pub messages: Vec<Message>,
    /// The client's tools (function calling), when it offered any.
    pub tools: Option<ToolSet>,
    /// The hub key's id: a turn waiting on tool results is continued only by its own key.
    pub owner: String,
}

/// A provider's last failure as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    pub code: &'static str,
    pub message: &'static str,
}

impl LastError {
    /// Told by the health state the failure left, which is all a client needs to act on.
    pub fn of(state: HealthState) -> LastError {
        let (code, message) = match state {
            HealthState::Unavailable => (
                "provider_unavailable",
                "the CLI cannot be started or was refused, or no worker can answer (details in the hub's log)",
            ),
            HealthState::NotLoggedIn => (
                "provider_not_logged_in",
                "the CLI's login is missing or expired",
            ),
            HealthState::UsageLimited => (
                "usage_limit_reached",
                "the subscription's usage limit was reached",
            ),
            HealthState::Degraded | HealthState::Ready => (
                "provider_failed",
                "a recent request failed: upstream error, timeout or crash (details in the hub's log)",
            ),
        };
        LastError { code, message }
    }
}

/// A provider as clients see it in `/v1/providers`.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderInfo {
    pub name: String,
    /// Unknown (null) while none of a router's workers for it has reported.
    pub kind: Option<ProviderKind>,
    pub models: Vec<String>,
    pub default_model: String,
    pub health: HealthState,
    /// Unix time a usage limit resets, while one stands.
    pub limited_until: Option<i64>,
    /// Why the provider last failed, as a code and a short message: the details (paths, CLI
    /// stderr, worker addresses) are in the hub's log only, since every key may read this.
    pub last_error: Option<LastError>,
    /// Processes (or worker pods) able to take requests now.
    pub ready_workers: usize,
    pub pool: PoolStatus,
    pub limits: Limits,
    /// The CLI behind the provider: version, place in the tested range, and how processes
    /// serve (`long_lived` reuse with a verified reset, or `one_shot`). For a router, as its
    /// first reporting worker says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli: Option<CliInfo>,
    /// Router: the subscription accounts behind the provider's workers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CliInfo {
    /// `None` until `--version` was read (or when it could not be).
    pub version: Option<String>,
    pub support: Option<crate::runtime::version::Support>,
    pub oldest_tested: String,
    pub newest_tested: String,
    pub mode: String,
}

/// One subscription account of a provider, as a router sees it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountInfo {
    pub name: String,
    pub health: HealthState,
    /// Unix time its usage limit resets, while one stands.
    pub limited_until: Option<i64>,
    /// Workers of this account that take requests now.
    pub ready_workers: usize,
    pub workers: usize,
}

/// A provider's models, as a request is routed by them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderModels {
    pub name: String,
    /// Empty while none of a router's workers for it has reported.
    pub models: Vec<String>,
    pub default_model: String,
    /// How long one request may take (a session stays locked a little longer).
    pub request_timeout_secs: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_concurrency: usize,
    pub max_queue: usize,
    pub request_timeout_secs: u64,
    pub idle_timeout_secs: u64,
}

/// `/readyz`'s answer, with what it is based on.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub detail: String,
}

pub trait Backend: Send + Sync {
    fn providers(&self) -> Vec<ProviderInfo>;
    /// The models each provider answers: what a request needs to be routed. Every chat request
    /// asks for it, so it skips the health, pool and account state `providers` gathers.
    fn models(&self) -> Arc<[ProviderModels]>;
    /// Text deltas then `Done`, or one error. Dropping the stream cancels the request.
    fn chat(&self, request: ChatRequest) -> BoxStream<'static, Result<ChatEvent, ProviderError>>;
    /// Whether this process should get traffic (`/readyz`).
    fn readiness(&self) -> Readiness;
    /// Stops background work and kills idle processes.
    fn shutdown(&self);
}
