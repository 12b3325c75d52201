//! Typed events read from a CLI's output, and the failures the hub classifies them into.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Token counts as the CLI reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// What a chat request yields, in order: text deltas, then exactly one `Done` (or an error).
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    Delta(String),
    /// The model asks the client to run these tools; `Done` follows, and the client's next
    /// request carries the results.
    ToolCalls(Vec<super::ToolCall>),
    Done {
        usage: Option<Usage>,
    },
}

/// One meaningful line of a CLI's stdout (or stderr), parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum CliEvent {
    /// The CLI started a turn. `api_key_source` is claude's report of where its credential came
    /// from; anything but `"none"` means it would bill an API key, which the hub refuses.
    Started {
        model: Option<String>,
        api_key_source: Option<String>,
        /// The CLI's conversation id. A new one after a reset turn proves the reset on versions
        /// that print no `conversation_reset` line (claude 2.1.197).
        session_id: Option<String>,
    },
    /// A piece of the answer as the model streams it.
    TextDelta(String),
    /// A complete assistant message (claude prints one after its deltas).
    AssistantText(String),
    /// The CLI is retrying its model server (claude's `api_retry`): an early sign of an unhealthy
    /// upstream.
    Retrying { attempt: u32, status: Option<u16> },
    /// The CLI dropped its conversation (claude's answer to `/clear`).
    ConversationReset,
    /// The model began a tool call (claude: a `tool_use` block of the streamed answer).
    ToolUseStart {
        index: u32,
        id: String,
        name: String,
    },
    /// A piece of that call's arguments, as JSON text.
    ToolUseArgs { index: u32, json: String },
    /// A whole tool call the model made, as a CLI reports it once (gemini's `tool_use` line).
    ToolUse {
        id: String,
        name: String,
        arguments: String,
    },
    /// One model message ended; `tool_use` means it asks for the tools it named.
    MessageEnd { stop_reason: Option<String> },
    /// A message from the CLI to the hub's tools server (an MCP JSON-RPC message).
    ToolServer {
        request_id: String,
        message: serde_json::Value,
    },
    /// The CLI waits for the result of a call to one of the client's tools. Made by the process
    /// layer from a `ToolServer` message; the answer goes back with `request_id` and `rpc_id`.
    ToolCallWaiting {
        request_id: String,
        rpc_id: serde_json::Value,
        tool_use_id: Option<String>,
        name: String,
        arguments: serde_json::Value,
    },
    /// Any other request a CLI makes of its host: refused.
    ControlRequest { request_id: String, subtype: String },
    /// The turn is over.
    Result(TurnResult),
    /// A line that already tells how the turn failed.
    Failure(Failure),
}

/// The end of a turn as the CLI reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TurnResult {
    pub text: String,
    pub usage: Option<Usage>,
    /// The CLI flagged the turn as failed; `text` then describes the failure, not an answer.
    pub is_error: bool,
    /// The model server's HTTP status behind a failure, when the CLI says it.
    pub api_status: Option<u16>,
}

/// Why a turn failed, as far as the hub can tell. The hub maps these to HTTP statuses once, at
/// the edge, and feeds them to the provider's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No login, or the OAuth login expired or was revoked.
    NotLoggedIn,
    /// The subscription's usage window is exhausted; `resets_at` is a Unix time when known.
    UsageLimited { resets_at: Option<i64> },
    /// The model server is unreachable, overloaded or failing.
    Upstream(String),
    /// The CLI broke: bad exit, unreadable output.
    Crashed(String),
    /// The CLI would run without the hub's lock-down (for example it skipped the settings file
    /// that switches its tools off). The hub refuses to use it.
    Unsafe(String),
}

impl Failure {
    /// Classifies a failed turn from the model server status and the CLI's own words.
    pub fn from_status(status: Option<u16>, detail: &str) -> Failure {
        match status {
            Some(401 | 403) => Failure::NotLoggedIn,
            Some(429) => Failure::UsageLimited { resets_at: None },
            Some(s) if s >= 500 => Failure::Upstream(format!("model server answered {s}")),
            _ => {
                let lower = detail.to_ascii_lowercase();
                if lower.contains("not logged in")
                    || lower.contains("login")
                    || lower.contains("authenticat")
                    || lower.contains("oauth")
                {
                    Failure::NotLoggedIn
                } else if lower.contains("limit") {
                    Failure::UsageLimited { resets_at: None }
                } else {
                    Failure::Crashed(detail.chars().take(500).collect())
                }
            }
        }
    }
}

/// What a caller of the provider layer sees when a request fails. It also crosses the wire
/// between a worker and a router (`crate::wire`), tagged by `kind`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderError {
    #[error("provider '{provider}' is not logged in (its OAuth login is missing or expired)")]
    NotLoggedIn { provider: String },
    #[error("provider '{provider}' hit its subscription usage limit")]
    UsageLimited {
        provider: String,
        /// Unix time at which the limit resets, when the CLI said so.
        resets_at: Option<i64>,
    },
    #[error("provider '{provider}' could not reach its model: {detail}")]
    Upstream { provider: String, detail: String },
    /// `detail` goes to logs only: it may quote the CLI's stderr.
    #[error("provider '{provider}' failed while answering")]
    Crashed { provider: String, detail: String },
    #[error("provider '{provider}' did not answer within {after:?}")]
    Timeout {
        provider: String,
        #[serde(with = "millis")]
        after: Duration,
    },
    #[error("provider '{provider}' is at its concurrency limit")]
    Busy {
        provider: String,
        #[serde(with = "millis")]
        retry_after: Duration,
    },
    #[error("provider '{provider}' cannot start its CLI: {detail}")]
    Spawn { provider: String, detail: String },
    /// The CLI would run without the hub's lock-down (tools, settings, API-key billing): the hub
    /// refused it. `detail` goes to logs only.
    #[error("provider '{provider}' refused to run its CLI without its lock-down")]
    LockDown { provider: String, detail: String },
    /// The request asks for something this provider's CLI cannot do (tools on a CLI the hub
    /// does not offer them through yet).
    #[error("provider '{provider}' does not support {what}")]
    Unsupported { provider: String, what: String },
    /// No worker can take the request now (none discovered, all ejected, or draining).
    #[error("provider '{provider}' has no worker able to answer now: {detail}")]
    Unavailable { provider: String, detail: String },
}

impl ProviderError {
    pub fn from_failure(provider: &str, failure: Failure) -> ProviderError {
        let provider = provider.to_string();
        match failure {
            Failure::NotLoggedIn => ProviderError::NotLoggedIn { provider },
            Failure::UsageLimited { resets_at } => ProviderError::UsageLimited {
                provider,
                resets_at,
            },
            Failure::Upstream(detail) => ProviderError::Upstream { provider, detail },
            Failure::Crashed(detail) => ProviderError::Crashed { provider, detail },
            Failure::Unsafe(detail) => ProviderError::LockDown { provider, detail },
        }
    }

    /// A short machine-readable label, used in metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::NotLoggedIn { .. } => "not_logged_in",
            ProviderError::UsageLimited { .. } => "usage_limited",
            ProviderError::Upstream { .. } => "upstream",
            ProviderError::Crashed { .. } => "crashed",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::Busy { .. } => "busy",
            ProviderError::Spawn { .. } => "spawn",
            ProviderError::LockDown { .. } => "lock_down",
            ProviderError::Unavailable { .. } => "unavailable",
            ProviderError::Unsupported { .. } => "unsupported",
        }
    }
}

/// Durations on the wire as whole milliseconds (`after_ms`-style numbers, not serde's
/// `{secs, nanos}`), readable by anything that speaks JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_the_wire_unchanged() {
        let errors = [
            ProviderError::UsageLimited {
                provider: "claude".into(),
                resets_at: Some(1_800_000_000),
            },
            ProviderError::Busy {
                provider: "gemini".into(),
                retry_after: Duration::from_millis(2500),
            },
            ProviderError::Timeout {
                provider: "claude".into(),
                after: Duration::from_secs(300),
            },
            ProviderError::Unavailable {
                provider: "claude".into(),
                detail: "draining".into(),
            },
        ];
        for e in errors {
            let json = serde_json::to_value(&e).unwrap();
            assert_eq!(json["kind"], e.kind());
            assert_eq!(serde_json::from_value::<ProviderError>(json).unwrap(), e);
        }
        let busy = serde_json::to_value(ProviderError::Busy {
            provider: "p".into(),
            retry_after: Duration::from_millis(2500),
        })
        .unwrap();
        assert_eq!(busy["retry_after"], 2500);
    }

    #[test]
    fn statuses_classify() {
        assert_eq!(Failure::from_status(Some(401), ""), Failure::NotLoggedIn);
        assert_eq!(
            Failure::from_status(Some(429), ""),
            Failure::UsageLimited { resets_at: None }
        );
        assert!(matches!(
            Failure::from_status(Some(529), ""),
            Failure::Upstream(_)
        ));
        assert_eq!(
            Failure::from_status(None, "Not logged in · Please run /login"),
            Failure::NotLoggedIn
        );
        assert!(matches!(
            Failure::from_status(None, "segfault"),
            Failure::Crashed(_)
        ));
    }
}
