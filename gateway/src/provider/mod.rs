//! Provider adapters: how each vendor CLI is launched, fed and read.
//!
//! Everything here is pure: an adapter turns a launch profile into a command line and
//! environment, a conversation into stdin bytes, and one output line into a typed event. The
//! process runtime (`crate::runtime`) does the I/O.

pub mod claude;
pub mod env;
pub mod event;
pub mod gemini;
pub mod json_line;
pub mod tools;
pub mod transcript;

#[cfg(test)]
mod properties;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use event::{ChatEvent, CliEvent, Failure, ProviderError, TurnResult, Usage};
pub use tools::{ToolCall, ToolChoice, ToolEndpoint, ToolSet, ToolSpec};

/// The CLIs the hub knows how to drive.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Claude,
    Gemini,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Claude => "claude",
            ProviderKind::Gemini => "gemini",
        }
    }

    pub fn adapter(self) -> &'static dyn Adapter {
        match self {
            ProviderKind::Claude => &claude::Claude,
            ProviderKind::Gemini => &gemini::Gemini,
        }
    }
}

/// What fixes a CLI process at start-up. Processes are pooled per profile: a warm process can
/// only serve requests that would have started it the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LaunchProfile {
    pub model: String,
    pub system: Option<String>,
    /// The client's tools, served to the CLI as one MCP server (function calling).
    pub tools: Option<ToolSet>,
}

/// A message of the conversation, as the provider layer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// The calls of an assistant message that asked for tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn text(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    /// A tool's result, sent back by the client.
    Tool,
}

/// The command the runtime spawns. Files are written into the process's private scratch
/// directory before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchSpec {
    pub args: Vec<String>,
    /// Settings the hub fixes for this CLI, on top of the allow-listed inherited environment.
    pub env: Vec<(String, String)>,
    /// Inherited variable names this CLI may see besides the common allow-list.
    pub allowed_env: &'static [&'static str],
    /// (path relative to the scratch directory, contents).
    pub files: Vec<(PathBuf, String)>,
    /// (path relative to the scratch directory, absolute target): symlinks made when the
    /// target exists, so a private home can still reach the user's login files.
    pub links: Vec<(PathBuf, PathBuf)>,
}

/// How a CLI serves requests over its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessMode {
    /// Stays up and takes one turn after another on stdin (claude's stream-json input). Between
    /// two requests the runtime sends `reset` and checks that it came back clean.
    LongLived,
    /// Started ahead of time, waits for its prompt on stdin, answers once and exits.
    OneShot,
}

/// A provider's CLI, described without doing any I/O.
pub trait Adapter: Send + Sync {
    fn kind(&self) -> ProviderKind;
    fn mode(&self) -> ProcessMode;
    /// Arguments and environment for a process of `profile`, whose scratch directory is
    /// `scratch`. `env` is the hub's own environment (where the user's login lives); `tools` is
    /// the process's route on the hub's tools server, for a CLI that takes tools over HTTP.
    fn launch(
        &self,
        profile: &LaunchProfile,
        scratch: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        tools: Option<&ToolEndpoint>,
    ) -> LaunchSpec;
    /// The bytes to write on stdin for one request. `messages` ends with the new user message.
    fn encode_turn(&self, messages: &[Message]) -> Vec<u8>;
    /// Bytes written on stdin right after spawning. Gemini gives up on stdin when nothing
    /// arrives within 0.5 s of its start-up; one newline keeps it waiting for the prompt.
    fn primer(&self) -> Option<&'static [u8]> {
        None
    }
    /// The stdin line that resets a long-lived process between requests.
    fn reset_turn(&self) -> Option<&'static [u8]> {
        None
    }
    /// True when the CLI's start line says where its credential came from (claude's
    /// `apiKeySource`): then no text is forwarded before that line said `"none"`.
    fn reports_credential_source(&self) -> bool {
        false
    }
    /// The stdin line that answers a request the CLI made of its host (claude's control
    /// protocol); None for a CLI without one.
    fn control_reply(&self, _request_id: &str, _reply: ControlReply) -> Option<Vec<u8>> {
        None
    }
    /// Whether the hub can offer a client's tools to this CLI.
    fn supports_tools(&self) -> bool {
        false
    }
    /// True for a CLI that reaches the hub's tools as an MCP server over HTTP (a route on
    /// `crate::runtime::tool_server`), not over its own stdin/stdout.
    fn tools_over_http(&self) -> bool {
        false
    }
    /// True when the CLI marks the end of each model message (claude's `message_delta`): the
    /// tool calls of an answer are complete then. Otherwise they are when the first is made.
    fn announces_message_end(&self) -> bool {
        false
    }
    /// The client's name of a tool the model called, or None for a tool that is not the
    /// client's (the CLI refuses those itself).
    fn tool_name<'a>(&self, _model_name: &'a str) -> Option<&'a str> {
        None
    }
    fn parse_stdout(&self, line: &str) -> Option<CliEvent>;
    fn parse_stderr(&self, line: &str) -> Option<CliEvent>;
    /// How a process exit that came before the turn's result is read.
    fn classify_exit(&self, code: Option<i32>, stderr_tail: &str) -> Failure;
}

/// The hub's answer to a request a CLI made of its host.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlReply {
    /// A JSON-RPC message from the hub's tools server.
    Mcp(serde_json::Value),
    /// Anything else the CLI asks is refused.
    Refused(&'static str),
}

/// Every fixed setting that keeps the CLIs quiet and local: no telemetry, no update checks.
pub fn quiet_env() -> Vec<(String, String)> {
    [
        ("DISABLE_TELEMETRY", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
        ("DISABLE_ERROR_REPORTING", "1"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("NO_COLOR", "1"),
        ("CI", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Merges the launch spec's environment with the hub's own, through the allow-list.
pub fn process_env(
    spec: &LaunchSpec,
    inherited: impl IntoIterator<Item = (String, String)>,
    configured: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let fixed = configured
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(spec.env.iter().cloned());
    env::build_env(inherited, spec.allowed_env.iter().copied(), fixed)
}
