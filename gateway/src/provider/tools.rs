//! Client-defined tools (OpenAI function calling), served to a CLI as an MCP server.
//!
//! The hub never runs a tool: it offers the client's function definitions to the CLI as the
//! tools of one in-process MCP server, and a call the model makes is handed back to the client
//! as an OpenAI `tool_call`. The CLI waits on the call until the client's follow-up brings the
//! result. Everything here is pure: the MCP answers are built from the tool set alone.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The MCP server name the CLIs see; its tools reach the model as `mcp__hub__<name>` (claude).
pub const SERVER_NAME: &str = "hub";

/// Longest tool name accepted: OpenAI's own limit.
pub const MAX_NAME_LEN: usize = 64;

/// Where a CLI that reaches MCP servers over HTTP finds the hub's tools server: its own route
/// and bearer secret (`crate::runtime::tool_server`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolEndpoint {
    pub url: String,
    pub secret: String,
}

/// One function a client offers the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub parameters: Value,
}

/// The tools of one request. A CLI process is started with one fixed tool set (changing the
/// tools of a running CLI is unreliable), so the set is part of the launch profile and compares
/// by content.
#[derive(Debug, Clone)]
pub struct ToolSet {
    tools: Arc<[ToolSpec]>,
    /// Canonical JSON of the tools: what equality and hashing use.
    key: Arc<str>,
}

impl ToolSet {
    pub fn new(tools: Vec<ToolSpec>) -> ToolSet {
        let key = serde_json::to_string(&tools)
            .expect("tools serialise")
            .into();
        ToolSet {
            tools: tools.into(),
            key,
        }
    }

    pub fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.name == name)
    }
}

impl PartialEq for ToolSet {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for ToolSet {}
impl Hash for ToolSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

/// A tool call the model made, as clients see it (`arguments` is a JSON text, as in OpenAI's
/// API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// `tool_choice`, honoured as far as a CLI allows (documented in docs/tools.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    #[default]
    Auto,
    /// The model sees no tools.
    None,
    /// The model is told it must call a tool before it answers.
    Required,
    /// The model is told to call this function.
    Function(String),
}

impl ToolChoice {
    /// A line added to the prompt for choices a CLI has no switch for; None when nothing is to
    /// be said.
    pub fn instruction(&self) -> Option<String> {
        match self {
            ToolChoice::Auto | ToolChoice::None => None,
            ToolChoice::Required => {
                Some("(Answer by calling one or more of the available tools.)".into())
            }
            ToolChoice::Function(name) => Some(format!(
                "(Answer by calling the tool `{name}` with suitable arguments.)"
            )),
        }
    }
}

/// A name a tool may have: OpenAI's pattern. Nothing else can reach a CLI, so a name can never
/// read as a flag, a path or a shell word.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What the hub does with one MCP message the CLI sent to the hub's server.
#[derive(Debug, Clone, PartialEq)]
pub enum McpStep {
    /// Answer at once with this JSON-RPC response.
    Reply(Value),
    /// A notification: nothing to answer.
    Nothing,
    /// The model called a tool: the answer waits for the client.
    Call {
        /// The JSON-RPC id the eventual answer must carry.
        rpc_id: Value,
        name: String,
        arguments: Value,
        /// The model's id for the call (claude's `toolUseId`), when the CLI says it.
        tool_use_id: Option<String>,
    },
}

/// Answers the MCP handshake and tool listing from the tool set, and turns `tools/call` into a
/// pending call.
pub fn mcp_step(tools: &ToolSet, message: &Value) -> McpStep {
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    let Some(id) = message.get("id").cloned() else {
        return McpStep::Nothing;
    };
    let ok = |result: Value| McpStep::Reply(json!({"jsonrpc": "2.0", "id": id, "result": result}));
    let error = |code: i64, msg: &str| {
        McpStep::Reply(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": msg}}))
    };
    let params = message.get("params");
    match method {
        "initialize" => {
            let version = params
                .and_then(|p| p.get("protocolVersion"))
                .and_then(Value::as_str)
                .unwrap_or("2025-06-18");
            ok(json!({
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": {"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION")},
            }))
        }
        "ping" => ok(json!({})),
        "tools/list" => {
            ok(json!({"tools": tools.tools().iter().map(mcp_tool).collect::<Vec<_>>()}))
        }
        "tools/call" => {
            let name = params
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !tools.contains(name) {
                return error(-32602, "unknown tool");
            }
            McpStep::Call {
                rpc_id: id.clone(),
                name: name.to_string(),
                arguments: params
                    .and_then(|p| p.get("arguments"))
                    .cloned()
                    .unwrap_or_else(|| json!({})),
                tool_use_id: params
                    .and_then(|p| p.get("_meta"))
                    .and_then(|m| m.get("claudecode/toolUseId"))
                    .and_then(Value::as_str)
                    .map(String::from),
            }
        }
        _ => error(-32601, "method not found"),
    }
}

/// A tool as MCP lists it. Every tool is marked read-only: the CLI then asks for all the calls
/// of one answer at once instead of one after another, so they reach the client together.
fn mcp_tool(tool: &ToolSpec) -> Value {
    let mut schema = tool.parameters.clone();
    if !schema.is_object() {
        schema = json!({"type": "object", "properties": {}});
    }
    json!({
        "name": tool.name,
        "description": tool.description,
        "inputSchema": schema,
        "annotations": {"readOnlyHint": true},
    })
}

/// The JSON-RPC answer to a pending call, carrying the client's result text.
pub fn call_result(rpc_id: &Value, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": rpc_id,
           "result": {"content": [{"type": "text", "text": text}], "isError": false}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> ToolSet {
        ToolSet::new(vec![ToolSpec {
            name: "get_weather".into(),
            description: "Weather for a city".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        }])
    }

    #[test]
    fn names_are_what_openai_allows() {
        assert!(valid_name("get_weather-2"));
        for bad in ["", "a b", "../x", "a/b", "x;rm", "é", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
        // A leading dash is allowed by OpenAI's pattern: names travel inside MCP JSON only,
        // never as an argument.
        assert!(valid_name("--help"));
    }

    #[test]
    fn handshake_and_listing_come_from_the_set() {
        let init = mcp_step(
            &set(),
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"protocolVersion": "2025-11-25"}}),
        );
        let McpStep::Reply(init) = init else { panic!() };
        assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
        assert_eq!(
            mcp_step(
                &set(),
                &json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
            ),
            McpStep::Nothing
        );
        let McpStep::Reply(list) = mcp_step(
            &set(),
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        ) else {
            panic!()
        };
        assert_eq!(list["result"]["tools"][0]["name"], "get_weather");
        assert_eq!(
            list["result"]["tools"][0]["inputSchema"]["properties"]["city"]["type"],
            "string"
        );
    }

    #[test]
    fn a_call_waits_and_an_unknown_tool_is_refused() {
        let call = mcp_step(
            &set(),
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "get_weather", "arguments": {"city": "Paris"},
                "_meta": {"claudecode/toolUseId": "toolu_1"}}}),
        );
        assert_eq!(
            call,
            McpStep::Call {
                rpc_id: json!(2),
                name: "get_weather".into(),
                arguments: json!({"city": "Paris"}),
                tool_use_id: Some("toolu_1".into()),
            }
        );
        let McpStep::Reply(refused) = mcp_step(
            &set(),
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "Bash"}}),
        ) else {
            panic!()
        };
        assert_eq!(refused["error"]["code"], -32602);
    }

    #[test]
    fn sets_compare_by_content() {
        assert_eq!(set(), set());
        assert_ne!(set(), ToolSet::new(vec![]));
    }
}
