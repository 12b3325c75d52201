//! OpenAI Chat Completions wire types, and their translation to the hub's conversation.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;
use crate::provider::tools;
use crate::provider::{Message, Role, ToolCall, ToolChoice, ToolSet, ToolSpec, Usage};

/// The request fields the hub reads. Sampling fields (`temperature`, `max_tokens`, …) are
/// accepted and ignored: the CLIs do not expose them.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<InputMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub functions: Option<Vec<Value>>,
}

/// Most tools one request may offer (OpenAI's own limit).
pub const MAX_TOOLS: usize = 128;

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub struct InputMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub tool_calls: Option<Vec<InputToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct InputToolCall {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// A request reduced to what a CLI can take: a system prompt and alternating turns ending with
/// the user's new message.
#[derive(Debug, PartialEq)]
pub struct Conversation {
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub tools: Option<ToolSet>,
}

impl ChatCompletionRequest {
    pub fn conversation(&self) -> Result<Conversation, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request(
                "Only n=1 is supported: a CLI gives one answer per request",
                Some("n"),
            ));
        }
        if self.functions.as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(ApiError::bad_request(
                "The deprecated 'functions' parameter is not supported: send the same definitions as 'tools'",
                Some("functions"),
            ));
        }
        let choice = tool_choice(self.tool_choice.as_ref())?;
        let tools = tool_specs(self.tools.as_deref().unwrap_or_default())?;
        if let ToolChoice::Function(name) = &choice
            && !tools.iter().any(|t| &t.name == name)
        {
            return Err(ApiError::bad_request(
                format!("tool_choice names '{name}', which is not among the tools"),
                Some("tool_choice"),
            ));
        }
        if choice != ToolChoice::None && choice != ToolChoice::Auto && tools.is_empty() {
            return Err(ApiError::bad_request(
                "tool_choice needs tools",
                Some("tool_choice"),
            ));
        }
        let mut system = Vec::new();
        let mut messages: Vec<Message> = Vec::new();
        for (i, m) in self.messages.iter().enumerate() {
            let text = content_text(m.content.as_ref(), i)?;
            let role = match m.role.as_str() {
                "system" | "developer" => {
                    system.push(text);
                    continue;
                }
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "tool" => Role::Tool,
                other => {
                    return Err(ApiError::bad_request(
                        format!(
                            "messages[{i}].role '{other}' is not supported (use system, developer, user, assistant or tool)"
                        ),
                        Some("messages"),
                    ));
                }
            };
            let mut message = Message::text(role, text);
            if role == Role::Assistant {
                for call in m.tool_calls.iter().flatten() {
                    if call.kind.as_deref().is_some_and(|k| k != "function") {
                        return Err(ApiError::bad_request(
                            format!("messages[{i}].tool_calls: only 'function' calls exist"),
                            Some("messages"),
                        ));
                    }
                    message.tool_calls.push(ToolCall {
                        id: call.id.clone(),
                        name: call.function.name.clone(),
                        arguments: call.function.arguments.clone(),
                    });
                }
            }
            if role == Role::Tool {
                let Some(id) = m.tool_call_id.clone() else {
                    return Err(ApiError::bad_request(
                        format!("messages[{i}] has role 'tool' but no tool_call_id"),
                        Some("messages"),
                    ));
                };
                message.tool_call_id = Some(id);
            }
            messages.push(message);
        }
        check_tool_pairs(&messages)?;
        match messages.last() {
            Some(last) if matches!(last.role, Role::User | Role::Tool) => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "The last message must come from the user (or be a tool result)",
                    Some("messages"),
                ));
            }
            None => {
                return Err(ApiError::bad_request(
                    "messages must contain at least one user message",
                    Some("messages"),
                ));
            }
        }
        // What a CLI has no switch for is asked of the model in words (docs/tools.md).
        let mut asks: Vec<String> = choice.instruction().into_iter().collect();
        if self.parallel_tool_calls == Some(false) && !tools.is_empty() {
            asks.push("(Call at most one tool at a time.)".into());
        }
        if let Some(last) = messages.last_mut()
            && last.role == Role::User
            && !asks.is_empty()
            && choice != ToolChoice::None
        {
            last.content = format!("{}\n\n{}", last.content, asks.join("\n"));
        }
        let tools = (!tools.is_empty() && choice != ToolChoice::None).then(|| ToolSet::new(tools));
        Ok(Conversation {
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages,
            tools,
        })
    }
}

/// The client's function tools, checked: a name that could be anything but a name, a schema
/// that is not an object, or a kind of tool other than a function is refused.
fn tool_specs(tools: &[Value]) -> Result<Vec<ToolSpec>, ApiError> {
    if tools.len() > MAX_TOOLS {
        return Err(ApiError::bad_request(
            format!("At most {MAX_TOOLS} tools may be offered"),
            Some("tools"),
        ));
    }
    let mut specs: Vec<ToolSpec> = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let bad = |why: &str| ApiError::bad_request(format!("tools[{i}]: {why}"), Some("tools"));
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(bad("only tools of type 'function' are supported"));
        }
        let function = tool
            .get("function")
            .ok_or_else(|| bad("'function' is missing"))?;
        let name = function.get("name").and_then(Value::as_str).unwrap_or("");
        if !tools::valid_name(name) {
            return Err(bad(
                "the function name must be 1 to 64 characters from a-z, A-Z, 0-9, '_' and '-'",
            ));
        }
        if specs.iter().any(|s| s.name == name) {
            return Err(bad("two tools have the same name"));
        }
        let parameters = match function.get("parameters") {
            None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => return Err(bad("'parameters' must be a JSON Schema object")),
        };
        specs.push(ToolSpec {
            name: name.to_string(),
            description: function
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            parameters,
        });
    }
    Ok(specs)
}

fn tool_choice(choice: Option<&Value>) -> Result<ToolChoice, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "tool_choice must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": …}}",
            Some("tool_choice"),
        )
    };
    Ok(match choice {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => return Err(bad()),
        },
        Some(v) => match v
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) if v.get("type").and_then(Value::as_str) == Some("function") => {
                ToolChoice::Function(name.to_string())
            }
            _ => return Err(bad()),
        },
    })
}

/// Within the request, every assistant message with tool calls is followed by a result for
/// each of them and nothing else in between, as OpenAI requires. Results at the very start
/// answer calls stored in the session.
fn check_tool_pairs(messages: &[Message]) -> Result<(), ApiError> {
    let bad = |why: String| ApiError::bad_request(why, Some("messages"));
    let mut open: Option<Vec<&str>> = None;
    for m in messages {
        match m.role {
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or("");
                if let Some(ids) = open.as_mut() {
                    let Some(pos) = ids.iter().position(|i| *i == id) else {
                        return Err(bad(format!(
                            "a tool message answers '{id}', which the assistant message before it did not call"
                        )));
                    };
                    ids.remove(pos);
                }
            }
            _ => {
                if let Some(ids) = open.take()
                    && !ids.is_empty()
                {
                    return Err(unanswered(&ids));
                }
                if m.role == Role::Assistant && !m.tool_calls.is_empty() {
                    open = Some(m.tool_calls.iter().map(|c| c.id.as_str()).collect());
                }
            }
        }
    }
    match open {
        Some(ids) if !ids.is_empty() => Err(unanswered(&ids)),
        _ => Ok(()),
    }
}

fn unanswered(ids: &[&str]) -> ApiError {
    ApiError::bad_request(
        format!(
            "An assistant message with 'tool_calls' must be followed by tool messages answering each call; missing: {}",
            ids.join(", ")
        ),
        Some("messages"),
    )
}

fn content_text(content: Option<&Content>, index: usize) -> Result<String, ApiError> {
    match content {
        None => Ok(String::new()),
        Some(Content::Text(t)) => Ok(t.clone()),
        Some(Content::Parts(parts)) => {
            let mut out = Vec::new();
            for part in parts {
                match (part.kind.as_str(), &part.text) {
                    ("text", Some(t)) => out.push(t.as_str()),
                    (kind, _) => {
                        return Err(ApiError::bad_request(
                            format!(
                                "messages[{index}] has a '{kind}' content part; only text is supported"
                            ),
                            Some("messages"),
                        ));
                    }
                }
            }
            Ok(out.join("\n"))
        }
    }
}

#[derive(Debug, Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
pub struct UsageOut {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> Self {
        UsageOut {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens + u.output_tokens,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: UsageOut,
}

#[derive(Debug, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: OutputMessage,
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
pub struct OutputMessage {
    pub role: &'static str,
    /// Null when the answer is only tool calls, as OpenAI sends it.
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OutputToolCall>,
}

#[derive(Debug, Serialize)]
pub struct OutputToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

impl From<ToolCall> for OutputToolCall {
    fn from(call: ToolCall) -> Self {
        OutputToolCall {
            id: call.id,
            kind: "function",
            function: FunctionCall {
                name: call.name,
                arguments: call.arguments,
            },
        }
    }
}

/// A tool call in a stream: the first chunk of a call has its id, type and name; arguments
/// follow in pieces, matched by `index`.
#[derive(Debug, Serialize)]
pub struct DeltaToolCall {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: DeltaFunction,
}

#[derive(Debug, Serialize)]
pub struct DeltaFunction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub arguments: String,
}

/// Borrows the completion's id and model: a stream sends one per delta.
#[derive(Debug, Serialize)]
pub struct ChatCompletionChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Debug, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<DeltaToolCall>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<Conversation, ApiError> {
        serde_json::from_value::<ChatCompletionRequest>(v)
            .unwrap()
            .conversation()
    }

    #[test]
    fn system_and_turns() {
        let c = parse(serde_json::json!({
            "model": "claude",
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Bye"}
            ]
        }))
        .unwrap();
        assert_eq!(c.system.as_deref(), Some("Be brief."));
        assert_eq!(c.messages.len(), 3);
        assert_eq!(c.messages[0].content, "Hi");
    }

    #[test]
    fn tools_and_their_results_become_the_conversation() {
        let c = parse(serde_json::json!({
            "model": "claude",
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "description": "Weather", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "messages": [
                {"role": "user", "content": "Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
            ]
        }))
        .unwrap();
        assert_eq!(c.tools.unwrap().tools()[0].name, "get_weather");
        assert_eq!(
            c.messages[1].tool_calls[0].arguments,
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(c.messages[2].role, Role::Tool);
        assert_eq!(c.messages[2].tool_call_id.as_deref(), Some("call_1"));
        // Only the results, for a session that holds the calls.
        let c = parse(serde_json::json!({"model": "claude", "messages": [
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]}))
        .unwrap();
        assert_eq!(c.messages.len(), 1);
        // tool_choice none: the model sees no tools.
        let c = parse(serde_json::json!({"model": "claude", "tool_choice": "none",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "x"}]}))
        .unwrap();
        assert!(c.tools.is_none());
        assert_eq!(c.messages[0].content, "x");
    }

    #[test]
    fn rejects_what_a_cli_cannot_do() {
        for (body, needle) in [
            (
                serde_json::json!({"model": "m", "messages": []}),
                "at least one",
            ),
            (
                serde_json::json!({"model": "m", "messages": [{"role": "assistant", "content": "x"}]}),
                "last message",
            ),
            (
                serde_json::json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
                "image_url",
            ),
            (
                serde_json::json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
                "n=1",
            ),
            (
                serde_json::json!({"model": "m", "tools": [{}], "messages": [{"role": "user", "content": "x"}]}),
                "type 'function'",
            ),
            (
                serde_json::json!({"model": "m", "tools": [{"type": "function", "function": {"name": "--x y"}}], "messages": [{"role": "user", "content": "x"}]}),
                "function name",
            ),
            (
                serde_json::json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "tool_call_id",
            ),
            (
                serde_json::json!({"model": "m", "messages": [{"role": "function", "content": "x"}]}),
                "'function'",
            ),
            (
                serde_json::json!({"model": "m", "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "user", "content": "y"}]}),
                "missing: a",
            ),
            (
                serde_json::json!({"model": "m", "tool_choice": "required", "messages": [{"role": "user", "content": "x"}]}),
                "needs tools",
            ),
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }
}
