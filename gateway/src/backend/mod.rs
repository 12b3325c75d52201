//! Where chat requests are answered. The HTTP and MCP front ends talk to a `Backend`; `serve`
//! answers in-process (`LocalBackend`), the cluster router forwards to worker pods. Both yield
//! the same typed events, so every front end has one code path.

pub mod local;

use futures::stream::BoxStream;
use serde::Serialize;

use crate::provider::{ChatEvent, Message, ProviderError, ProviderKind};
use crate::runtime::{HealthState, PoolStatus};

pub use local::LocalBackend;

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
    pub kind: ProviderKind,
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
}

#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub max_concurrency: usize,
    pub max_queue: usize,
    pub request_timeout_secs: u64,
    pub idle_timeout_secs: u64,
}

pub trait Backend: Send + Sync {
    fn providers(&self) -> Vec<ProviderInfo>;
    /// Text deltas then `Done`, or one error. Dropping the stream cancels the request.
    fn chat(&self, request: ChatRequest) -> BoxStream<'static, Result<ChatEvent, ProviderError>>;
    /// Stops background work and kills idle processes.
    fn shutdown(&self);
}
