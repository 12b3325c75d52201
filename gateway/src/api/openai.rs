//! OpenAI Chat Completions wire types, and their translation to the hub's conversation.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;
use crate::provider::{Message, Role, Usage};

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
    pub functions: Option<Vec<Value>>,
}

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
}

impl ChatCompletionRequest {
    pub fn conversation(&self) -> Result<Conversation, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request(
                "Only n=1 is supported: a CLI gives one answer per request",
                Some("n"),
            ));
        }
        if self.tools.as_ref().is_some_and(|t| !t.is_empty())
            || self.functions.as_ref().is_some_and(|f| !f.is_empty())
        {
            return Err(ApiError::bad_request(
                "Tool and function calling are not supported: the hub runs every CLI with all tools switched off",
                Some("tools"),
            ));
        }
        let mut system = Vec::new();
        let mut messages = Vec::new();
        for (i, m) in self.messages.iter().enumerate() {
            let text = content_text(m.content.as_ref(), i)?;
            let role = match m.role.as_str() {
                "system" | "developer" => {
                    system.push(text);
                    continue;
                }
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(ApiError::bad_request(
                        format!(
                            "messages[{i}].role '{other}' is not supported (use system, developer, user or assistant)"
                        ),
                        Some("messages"),
                    ));
                }
            };
            messages.push(Message {
                role,
                content: text,
            });
        }
        match messages.last() {
            Some(last) if last.role == Role::User => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "The last message must come from the user",
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
        Ok(Conversation {
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages,
        })
    }
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
    pub content: String,
}

#[derive(Debug, Serialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
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
                "Tool",
            ),
            (
                serde_json::json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "'tool'",
            ),
        ] {
            let err = parse(body).unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }
}
