//! Where chat requests are answered. The HTTP and MCP front ends talk to a `Backend`; `serve`
//! answers in-process (`LocalBackend`), the cluster router forwards to worker pods. Both yield
//! the same typed events, so every front end has one code path.

pub mod local;
pub mod remote;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::provider::{ChatEvent, Message, ProviderError, ProviderKind};
use crate::runtime::{HealthState, PoolStatus};

pub use local::LocalBackend;
pub use remote::RemoteBackend;

/// A chat request after model resolution.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub provider: String,
    pub model: String,
    pub system: Option<String>,
    /// The conversation, ending with the new user message.
    pub messages: Vec<Message>,
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
    pub last_error: Option<String>,
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
    /// Text deltas then `Done`, or one error. Dropping the stream cancels the request.
    fn chat(&self, request: ChatRequest) -> BoxStream<'static, Result<ChatEvent, ProviderError>>;
    /// Whether this process should get traffic (`/readyz`).
    fn readiness(&self) -> Readiness;
    /// Stops background work and kills idle processes.
    fn shutdown(&self);
}
