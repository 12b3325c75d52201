//! What crosses the network between the hub's own processes: a router and its workers
//! (`/internal/v1/*`), and `mcp-stdio --hub-url` and a hub's REST API. Serializable request,
//! event, error and status types, and the one Server-Sent-Events decoder they all read with.
//!
//! The worker protocol (documented in docs/worker-protocol.md):
//! - `POST /internal/v1/chat` with a [`WorkerChatRequest`]; the answer is `text/event-stream`,
//!   one [`WireEvent`] as JSON per `data:` line: deltas, then `done`, or one `error`.
//! - `GET /internal/v1/status`: a [`WorkerStatus`].
//!
//! Both need `Authorization: Bearer <worker token>`; `PROTOCOL_HEADER` carries the version.

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::backend::Limits;
use crate::provider::{ChatEvent, Message, ProviderError, ProviderKind, ToolCall, ToolSpec, Usage};
use crate::runtime::{HealthState, PoolStatus};

pub const CHAT_PATH: &str = "/internal/v1/chat";
pub const STATUS_PATH: &str = "/internal/v1/status";
/// Sent by both sides; a worker refuses a router that speaks another version.
pub const PROTOCOL_HEADER: &str = "x-llm-mcp-hub-protocol";
pub const PROTOCOL_VERSION: &str = "1";

/// One turn for a worker: the conversation so far, ending with the new user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerChatRequest {
    /// The provider the router resolved; a worker refuses a request meant for another one.
    pub provider: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub messages: Vec<Message>,
    /// The client's tools (function calling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolSpec>>,
    /// The hub key's id the router authenticated: a turn waiting on tool results is continued
    /// only for the same key.
    #[serde(default)]
    pub owner: String,
}

/// One event of a worker's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireEvent {
    Delta {
        text: String,
    },
    /// The model called the client's tools; `done` follows.
    ToolCalls {
        calls: Vec<ToolCall>,
    },
    Done {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
    },
    Error {
        error: ProviderError,
    },
}

impl From<Result<ChatEvent, ProviderError>> for WireEvent {
    fn from(event: Result<ChatEvent, ProviderError>) -> WireEvent {
        match event {
            Ok(ChatEvent::Delta(text)) => WireEvent::Delta { text },
            Ok(ChatEvent::ToolCalls(calls)) => WireEvent::ToolCalls { calls },
            Ok(ChatEvent::Done { usage }) => WireEvent::Done { usage },
            Err(error) => WireEvent::Error { error },
        }
    }
}

impl From<WireEvent> for Result<ChatEvent, ProviderError> {
    fn from(event: WireEvent) -> Self {
        match event {
            WireEvent::Delta { text } => Ok(ChatEvent::Delta(text)),
            WireEvent::ToolCalls { calls } => Ok(ChatEvent::ToolCalls(calls)),
            WireEvent::Done { usage } => Ok(ChatEvent::Done { usage }),
            WireEvent::Error { error } => Err(error),
        }
    }
}

/// What a worker tells routers about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub protocol: String,
    /// The provider's name (the LLMProvider's), which clients put in `model`.
    pub provider: String,
    pub kind: ProviderKind,
    /// The subscription account this worker is logged in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub models: Vec<String>,
    pub default_model: String,
    pub health: HealthState,
    /// Unix time a usage limit resets, while one stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_until: Option<i64>,
    /// Takes new turns: not draining, and the CLI can be started.
    pub accepting: bool,
    /// Finishing its turns before it stops (SIGTERM); takes no new ones.
    pub draining: bool,
    pub capacity: PoolStatus,
    pub limits: Limits,
    /// The hub version the worker runs.
    pub version: String,
    /// This worker process's id, random per start: the first part of the tool call ids it
    /// hands out, so a router sends the follow-up to the worker holding the waiting process.
    #[serde(default)]
    pub instance: String,
    /// The worker's CLI: version, tested range, process mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli: Option<crate::backend::CliInfo>,
}

/// A stream's `data:` payloads, or the reason it broke. Blank keep-alive events are skipped.
pub fn sse_data<S, E>(body: S) -> BoxStream<'static, Result<String, String>>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    sse_stream::SseStream::from_bytes_stream(body)
        .filter_map(|item| async move {
            match item {
                Ok(sse) => sse.data.filter(|d| !d.is_empty()).map(Ok),
                Err(e) => Some(Err(e.to_string())),
            }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_sse_payloads_across_chunks() {
        let parts: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
            Ok(bytes::Bytes::from_static(
                b": keep-alive\n\ndata: {\"a\":1}\n\nda",
            )),
            Ok(bytes::Bytes::from_static(b"ta: [DONE]\r\n\r\n")),
        ];
        let data: Vec<_> = sse_data(futures::stream::iter(parts))
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(data, ["{\"a\":1}", "[DONE]"]);
    }

    #[test]
    fn events_round_trip() {
        let events = [
            WireEvent::Delta { text: "hé".into() },
            WireEvent::Done {
                usage: Some(Usage {
                    input_tokens: 3,
                    output_tokens: 4,
                }),
            },
            WireEvent::Error {
                error: ProviderError::NotLoggedIn {
                    provider: "claude".into(),
                },
            },
        ];
        for e in events {
            let line = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<WireEvent>(&line).unwrap(), e);
        }
        let line =
            r#"{"type":"error","error":{"kind":"usage_limited","provider":"c","resets_at":5}}"#;
        let back: Result<ChatEvent, ProviderError> =
            serde_json::from_str::<WireEvent>(line).unwrap().into();
        assert_eq!(
            back,
            Err(ProviderError::UsageLimited {
                provider: "c".into(),
                resets_at: Some(5)
            })
        );
    }
}
