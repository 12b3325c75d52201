//! Recorded requests and helpers to read them.

use serde_json::Value;

/// Which vendor API a fake server imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// Anthropic Messages API (`POST /v1/messages`), used by `claude`.
    Anthropic,
    /// Gemini API (`POST /v1beta/models/<model>:streamGenerateContent?alt=sse`), used by `gemini`.
    Gemini,
}

/// One HTTP request that reached a fake server.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The API the server imitates.
    pub vendor: Vendor,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query, e.g. `/v1/messages`.
    pub path: String,
    /// Raw query string, if any (e.g. `beta=true`, `alt=sse`).
    pub query: Option<String>,
    /// Headers in arrival order, names lower-case.
    pub headers: Vec<(String, String)>,
    /// JSON body (`Value::Null` when empty or not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// JSON view (as served by `GET /_fake/requests`), with the derived fields
    /// `side_request`, `system_text`, `messages` and `last_user_text`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "side_request": self.is_side_request(),
            "system_text": self.system_text(),
            "messages": self.messages(),
            "messages_raw": self.messages_raw(),
            "last_user_text": self.last_user_text(),
        })
    }

    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Model the request asked for (Anthropic: `model` field; Gemini: from the path).
    pub fn model(&self) -> Option<String> {
        match self.vendor {
            Vendor::Anthropic => self
                .body
                .get("model")
                .and_then(Value::as_str)
                .map(String::from),
            Vendor::Gemini => {
                let rest = self.path.split("/models/").nth(1)?;
                Some(rest.split(':').next().unwrap_or(rest).to_string())
            }
        }
    }

    /// Gemini method after the colon in the path (`streamGenerateContent`, `countTokens`, …).
    pub fn gemini_method(&self) -> Option<&str> {
        self.path.rsplit_once(':').map(|(_, m)| m)
    }

    /// True for a request that generates content (a model call), streaming or not.
    pub fn is_generation(&self) -> bool {
        match self.vendor {
            Vendor::Anthropic => self.method == "POST" && self.path == "/v1/messages",
            Vendor::Gemini => matches!(
                self.gemini_method(),
                Some("streamGenerateContent" | "generateContent")
            ),
        }
    }

    /// True when the response was requested as a stream.
    pub fn is_streaming(&self) -> bool {
        match self.vendor {
            Vendor::Anthropic => self.body.get("stream").and_then(Value::as_bool) == Some(true),
            Vendor::Gemini => self.gemini_method() == Some("streamGenerateContent"),
        }
    }

    /// True for a request the CLI makes on its own besides the conversation itself:
    /// anything that is not a generation (token counting, …); for Anthropic a generation
    /// without a `tools` array, or one asking for structured output
    /// (`output_config.format`), or whose user text is wrapped in `<session>` (claude's
    /// session-title request); for Gemini any non-streaming generation (its JSON helper
    /// calls: next-speaker check, model routing).
    pub fn is_side_request(&self) -> bool {
        if !self.is_generation() {
            return true;
        }
        match self.vendor {
            Vendor::Anthropic => {
                self.body.get("tools").is_none()
                    || self.body.pointer("/output_config/format").is_some()
                    || self.last_user_text().trim_start().starts_with("<session>")
            }
            Vendor::Gemini => !self.is_streaming(),
        }
    }

    /// The JSON schema a structured-output request asks for, if any
    /// (Anthropic `output_config.format.schema`, Gemini `generationConfig.responseJsonSchema`
    /// or `responseSchema`).
    pub fn output_schema(&self) -> Option<&Value> {
        match self.vendor {
            Vendor::Anthropic => self.body.pointer("/output_config/format/schema"),
            Vendor::Gemini => {
                let json = self.body.pointer("/generationConfig/responseMimeType")
                    == Some(&Value::from("application/json"));
                json.then(|| {
                    self.body
                        .pointer("/generationConfig/responseJsonSchema")
                        .or_else(|| self.body.pointer("/generationConfig/responseSchema"))
                        .unwrap_or(&Value::Null)
                })
            }
        }
    }

    /// System prompt text: Anthropic `system` (string or text blocks joined by `\n`),
    /// Gemini `systemInstruction.parts[].text` joined by `\n`.
    pub fn system_text(&self) -> String {
        match self.vendor {
            Vendor::Anthropic => blocks_text(self.body.get("system").unwrap_or(&Value::Null)),
            Vendor::Gemini => self
                .body
                .get("systemInstruction")
                .or_else(|| self.body.get("system_instruction"))
                .map(|s| parts_text(s.get("parts").unwrap_or(&Value::Null)))
                .unwrap_or_default(),
        }
    }

    /// System prompt blocks as sent (Anthropic: one entry per text block; Gemini: per part).
    pub fn system_blocks(&self) -> Vec<String> {
        let v = match self.vendor {
            Vendor::Anthropic => self.body.get("system").cloned().unwrap_or(Value::Null),
            Vendor::Gemini => self
                .body
                .get("systemInstruction")
                .and_then(|s| s.get("parts"))
                .cloned()
                .unwrap_or(Value::Null),
        };
        match v {
            Value::String(s) => vec![s],
            Value::Array(a) => a
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str).map(String::from))
                .collect(),
            _ => vec![],
        }
    }

    /// Conversation as `(role, text)` with roles `user` / `assistant` only (Gemini `model`
    /// is mapped to `assistant`; claude's `system`-role context messages are left out).
    /// Text blocks of one message are joined by `\n`; non-text blocks and the context
    /// blocks the CLIs add on their own (see [`is_cli_context`]) are left out, so after a
    /// `/clear` or with gemini's `<session_context>` part this still shows what the user
    /// wrote.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.collect_messages(false)
            .into_iter()
            .filter(|(r, _)| r == "user" || r == "assistant")
            .collect()
    }

    /// Every message as `(role, text)`, all text blocks included (nothing filtered).
    pub fn messages_raw(&self) -> Vec<(String, String)> {
        self.collect_messages(true)
    }

    fn collect_messages(&self, raw: bool) -> Vec<(String, String)> {
        let (key, content_key) = match self.vendor {
            Vendor::Anthropic => ("messages", "content"),
            Vendor::Gemini => ("contents", "parts"),
        };
        let Some(list) = self.body.get(key).and_then(Value::as_array) else {
            return vec![];
        };
        list.iter()
            .map(|m| {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                let role = if role == "model" { "assistant" } else { role };
                let content = m.get(content_key).unwrap_or(&Value::Null);
                let texts = match self.vendor {
                    Vendor::Anthropic => block_texts(content),
                    Vendor::Gemini => part_texts(content),
                };
                let text = texts
                    .into_iter()
                    .filter(|t| raw || !is_cli_context(t))
                    .collect::<Vec<_>>()
                    .join("\n");
                (role.to_string(), text)
            })
            .collect()
    }

    /// The tool results the last message carries, as text: the CLI's answers to tool calls the
    /// model asked for (Anthropic `tool_result` block, Gemini `functionResponse` part).
    pub fn last_tool_results(&self) -> Vec<String> {
        let (key, content_key) = match self.vendor {
            Vendor::Anthropic => ("messages", "content"),
            Vendor::Gemini => ("contents", "parts"),
        };
        let Some(blocks) = self
            .body
            .get(key)
            .and_then(Value::as_array)
            .and_then(|m| m.last())
            .and_then(|last| last.get(content_key))
            .and_then(Value::as_array)
        else {
            return Vec::new();
        };
        blocks
            .iter()
            .filter_map(|b| match self.vendor {
                Vendor::Anthropic => (b.get("type").and_then(Value::as_str) == Some("tool_result"))
                    .then(|| match b.get("content") {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => block_texts(other).join("\n"),
                        None => String::new(),
                    }),
                Vendor::Gemini => b.get("functionResponse").map(gemini_result_text),
            })
            .collect()
    }

    /// Text of the last `user` message ("" when there is none).
    pub fn last_user_text(&self) -> String {
        self.messages()
            .into_iter()
            .rev()
            .find(|(r, _)| r == "user")
            .map(|(_, t)| t)
            .unwrap_or_default()
    }

    /// Names of the tools offered to the model (empty when absent).
    pub fn tool_names(&self) -> Vec<String> {
        let Some(tools) = self.body.get("tools").and_then(Value::as_array) else {
            return vec![];
        };
        let mut out = vec![];
        for t in tools {
            if let Some(n) = t.get("name").and_then(Value::as_str) {
                out.push(n.to_string());
            }
            for key in ["functionDeclarations", "function_declarations"] {
                for f in t.get(key).and_then(Value::as_array).into_iter().flatten() {
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        out.push(n.to_string());
                    }
                }
            }
        }
        out
    }
}

/// True for a text block the CLI adds to a user message on its own: claude's
/// `<system-reminder>`, `<local-command-caveat>`, `<command-name>`,
/// `<local-command-stdout>` blocks (after a slash command such as `/clear`), gemini's
/// `<session_context>` part.
pub fn is_cli_context(text: &str) -> bool {
    const PREFIXES: [&str; 5] = [
        "<system-reminder>",
        "<local-command-caveat>",
        "<command-name>",
        "<local-command-stdout>",
        "<session_context>",
    ];
    let t = text.trim_start();
    PREFIXES.iter().any(|p| t.starts_with(p))
}

/// Anthropic content: a string, or the `text` of its text blocks.
fn block_texts(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
            .filter_map(|b| b.get("text").and_then(Value::as_str).map(String::from))
            .collect(),
        _ => vec![],
    }
}

fn blocks_text(v: &Value) -> String {
    block_texts(v).join("\n")
}

/// Gemini parts: the `text` fields (thought parts left out).
fn part_texts(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
            .filter_map(|p| p.get("text").and_then(Value::as_str).map(String::from))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    }
}

fn parts_text(v: &Value) -> String {
    part_texts(v).join("\n")
}

/// A Gemini `functionResponse` as the text a tool returned: its `output` (gemini wraps what an MCP
/// server returned in `<untrusted_context>`, taken off here) or its `error`, else the whole part.
fn gemini_result_text(part: &Value) -> String {
    let response = part.get("response");
    let field = |k: &str| response.and_then(|r| r.get(k)).and_then(Value::as_str);
    match field("output").or_else(|| field("error")) {
        Some(text) => text
            .trim()
            .trim_start_matches("<untrusted_context>")
            .trim_end_matches("</untrusted_context>")
            .trim()
            .to_string(),
        None => part.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn anthropic(body: Value) -> RecordedRequest {
        RecordedRequest {
            vendor: Vendor::Anthropic,
            method: "POST".into(),
            path: "/v1/messages".into(),
            query: Some("beta=true".into()),
            headers: vec![("authorization".into(), "Bearer t".into())],
            body,
        }
    }

    #[test]
    fn claude_after_clear() {
        // What claude 2.1.330 sends after a `/clear` turn.
        let r = anthropic(json!({"tools": [], "stream": true,
            "system": [{"type": "text", "text": "billing"}, {"type": "text", "text": "You are X."}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "<local-command-caveat>…</local-command-caveat>\n"},
                    {"type": "text", "text": "<command-name>/clear</command-name>\n"},
                    {"type": "text", "text": "<local-command-stdout></local-command-stdout>\n"},
                    {"type": "text", "text": "third"}]},
                {"role": "system", "content": "# Environment"}]}));
        assert_eq!(
            r.messages(),
            vec![("user".to_string(), "third".to_string())]
        );
        assert_eq!(r.messages_raw().len(), 2);
        assert_eq!(r.last_user_text(), "third");
        assert_eq!(r.system_blocks(), vec!["billing", "You are X."]);
        assert_eq!(r.system_text(), "billing\nYou are X.");
        assert_eq!(r.header("Authorization"), Some("Bearer t"));
        assert!(!r.is_side_request());
        assert!(r.is_streaming());
    }

    #[test]
    fn side_requests() {
        assert!(
            anthropic(json!({"messages": [{"role": "user", "content": "x"}]})).is_side_request()
        );
        let mut r = anthropic(json!({"tools": []}));
        r.path = "/v1/messages/count_tokens".into();
        assert!(r.is_side_request());
        let g = RecordedRequest {
            vendor: Vendor::Gemini,
            method: "POST".into(),
            path: "/v1beta/models/gemini-2.5-flash:generateContent".into(),
            query: None,
            headers: vec![],
            body: json!({"contents": [{"role": "model", "parts": [{"text": "a"}]}]}),
        };
        assert!(g.is_side_request());
        assert_eq!(g.model().as_deref(), Some("gemini-2.5-flash"));
        assert_eq!(
            g.messages(),
            vec![("assistant".to_string(), "a".to_string())]
        );
    }
}
