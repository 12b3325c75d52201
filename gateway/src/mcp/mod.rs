//! The MCP face of the hub: the same chat, sessions and provider state as the REST API, served
//! as MCP tools, resources and prompts over streamable HTTP (`/mcp`), the older HTTP+SSE
//! transport (`/sse`) and stdio (`llm-mcp-hub mcp-stdio`).
//!
//! - `server`: the rmcp `ServerHandler`, written against [`Hub`];
//! - `http`: `/mcp`, `/sse` and `/message` behind the REST bearer keys;
//! - `stdio`: `mcp-stdio`, in-process or forwarding to a hub over REST (`remote`).
//!
//! [`Hub`] is what the handler needs from the hub. In-process it is the `ChatService` the REST API
//! uses (one code path); `mcp-stdio --hub-url` implements it as a client of the REST contract.

pub mod http;
pub mod prompts;
pub mod remote;
pub mod server;
pub mod stdio;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::auth::Caller;
use crate::provider::ChatEvent;
use crate::service::{ChatService, TurnRequest};

pub use server::McpServer;

pub use crate::errors::ClientError;

/// A started chat turn.
pub struct HubTurn {
    pub session_id: Option<String>,
    /// `provider/model`.
    pub model: String,
    pub events: BoxStream<'static, Result<ChatEvent, ClientError>>,
}

/// What the MCP handler needs from the hub. Providers and sessions are the JSON the REST API
/// serves (`/v1/providers` entries, `/v1/sessions/{id}`).
#[async_trait]
pub trait Hub: Send + Sync + 'static {
    async fn providers(&self) -> Result<Vec<Value>, ClientError>;
    /// Dropping the turn's events cancels the request (and kills its CLI process).
    async fn start_turn(
        &self,
        caller: &Caller,
        request: TurnRequest,
    ) -> Result<HubTurn, ClientError>;
    async fn get_session(&self, caller: &Caller, id: &str) -> Result<Value, ClientError>;
    async fn delete_session(&self, caller: &Caller, id: &str) -> Result<(), ClientError>;
    /// The caller's most recently used sessions (summaries).
    async fn list_sessions(&self, caller: &Caller, limit: usize)
    -> Result<Vec<Value>, ClientError>;
}

/// The in-process hub: the `ChatService` the REST API uses.
#[async_trait]
impl Hub for ChatService {
    async fn providers(&self) -> Result<Vec<Value>, ClientError> {
        ChatService::providers(self)
            .into_iter()
            .map(|p| serde_json::to_value(p).map_err(internal))
            .collect()
    }

    async fn start_turn(
        &self,
        caller: &Caller,
        request: TurnRequest,
    ) -> Result<HubTurn, ClientError> {
        let turn = ChatService::start_turn(self, caller, request).await?;
        Ok(HubTurn {
            session_id: turn.session_id,
            model: turn.model.id(),
            events: turn.events.map(|e| e.map_err(ClientError::from)).boxed(),
        })
    }

    async fn get_session(&self, caller: &Caller, id: &str) -> Result<Value, ClientError> {
        let view = ChatService::get_session(self, caller, id).await?;
        serde_json::to_value(view).map_err(internal)
    }

    async fn delete_session(&self, caller: &Caller, id: &str) -> Result<(), ClientError> {
        Ok(ChatService::delete_session(self, caller, id).await?)
    }

    async fn list_sessions(
        &self,
        caller: &Caller,
        limit: usize,
    ) -> Result<Vec<Value>, ClientError> {
        ChatService::list_sessions(self, caller, 0, limit)
            .await?
            .into_iter()
            .map(|s| serde_json::to_value(s).map_err(internal))
            .collect()
    }
}

fn internal(e: impl std::fmt::Display) -> ClientError {
    ClientError::new(500, "internal_error", e.to_string())
}
