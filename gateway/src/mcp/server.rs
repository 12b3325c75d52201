//! The MCP server: tools, resources and prompts over a [`Hub`].

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode,
    GetPromptRequestParams, GetPromptResponse, Implementation, JsonObject, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{ClientError, Hub, prompts};
use crate::auth::Caller;
use crate::provider::{ChatEvent, Message, Role};
use crate::service::TurnRequest;

/// Sessions listed as resources (most recently used first).
const LISTED_SESSIONS: usize = 50;

/// The least time between two progress notifications of a `chat`.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

/// Arguments of the `chat` tool.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ChatArgs {
    /// The message to send to the model.
    message: String,
    /// Provider to ask (`claude`, `gemini`; see `list_providers`). Its default model answers
    /// unless `model` names another.
    #[serde(default)]
    provider: Option<String>,
    /// Model: `provider/model` (`claude/opus`), a model of `provider` (`opus`), or a provider
    /// name. Give `provider`, `model` or both.
    #[serde(default)]
    model: Option<String>,
    /// Continue this conversation: the `session_id` of an earlier `chat` result. Omit to start
    /// a new one.
    #[serde(default)]
    session_id: Option<String>,
    /// System prompt for the conversation (kept for its later turns).
    #[serde(default)]
    system: Option<String>,
}

/// Arguments of `get_session` and `delete_session`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SessionArgs {
    /// The session id, as returned by `chat`.
    session_id: String,
}

/// Arguments of `list_providers` (none).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// The MCP server over a hub. Cheap to clone: one per MCP session.
#[derive(Clone)]
pub struct McpServer {
    hub: Arc<dyn Hub>,
    /// The caller when the transport has no per-request key (stdio).
    default_caller: Option<Caller>,
}

impl McpServer {
    /// A server whose callers come from the request (the HTTP transports put the
    /// authenticated `Caller` into each request's extensions).
    pub fn new(hub: Arc<dyn Hub>) -> McpServer {
        McpServer {
            hub,
            default_caller: None,
        }
    }

    /// A server with one caller for every request (stdio).
    pub fn with_caller(hub: Arc<dyn Hub>, caller: Caller) -> McpServer {
        McpServer {
            hub,
            default_caller: Some(caller),
        }
    }

    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        let ext = &context.extensions;
        ext.get::<Caller>()
            .or_else(|| {
                ext.get::<axum::http::request::Parts>()
                    .and_then(|p| p.extensions.get::<Caller>())
            })
            .or(self.default_caller.as_ref())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("the request carries no hub API key", None))
    }

    async fn chat(
        &self,
        caller: &Caller,
        args: ChatArgs,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if args.message.trim().is_empty() {
            return Ok(tool_error(
                "Invalid arguments for tool 'chat': 'message' is empty",
            ));
        }
        let model = match (args.provider, args.model) {
            (Some(p), Some(m)) if !m.contains('/') && m != p => format!("{p}/{m}"),
            (_, Some(m)) => m,
            (Some(p), None) => p,
            (None, None) => {
                let names = self.provider_names().await.unwrap_or_default();
                return Ok(tool_error(format!(
                    "Invalid arguments for tool 'chat': give 'provider' or 'model' (providers: {})",
                    names.join(", ")
                )));
            }
        };
        let request = TurnRequest {
            model,
            session_id: args.session_id,
            system: args.system,
            messages: vec![Message::text(Role::User, args.message)],
            tools: None,
        };
        let progress_token = context.meta.get_progress_token();
        let work = async {
            let turn = match self.hub.start_turn(caller, request).await {
                Ok(turn) => turn,
                Err(f) => return failure_result(&f),
            };
            let mut events = turn.events;
            let mut reply = String::new();
            // Progress is the length of the reply so far; the message is the text that is new
            // since the previous notification. Deltas are coalesced to one notification per
            // PROGRESS_INTERVAL, so a fast stream does not cost one message per token.
            let mut unsent = String::new();
            let mut last_sent: Option<Instant> = None;
            let notify = |text: String, done: usize| {
                let token = progress_token.clone();
                async move {
                    if let Some(token) = token {
                        let _ = context
                            .peer
                            .notify_progress(
                                ProgressNotificationParam::new(token, done as f64)
                                    .with_message(text),
                            )
                            .await;
                    }
                }
            };
            loop {
                match events.next().await {
                    Some(Ok(ChatEvent::Delta(text))) => {
                        reply.push_str(&text);
                        unsent.push_str(&text);
                        if last_sent.is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL) {
                            last_sent = Some(Instant::now());
                            notify(std::mem::take(&mut unsent), reply.len()).await;
                        }
                    }
                    // The `chat` tool offers the model no tools, so none can be called.
                    Some(Ok(ChatEvent::ToolCalls(_))) => {}
                    Some(Ok(ChatEvent::Done { usage })) => {
                        if !unsent.is_empty() {
                            notify(std::mem::take(&mut unsent), reply.len()).await;
                        }
                        let structured = json!({
                            "session_id": turn.session_id,
                            "model": turn.model,
                            "usage": usage,
                        });
                        let mut result = CallToolResult::success(vec![ContentBlock::text(reply)]);
                        result.structured_content = Some(structured);
                        return result;
                    }
                    Some(Err(f)) => return failure_result(&f),
                    None => {
                        return failure_result(&ClientError::new(
                            502,
                            "provider_failed",
                            "the provider's answer ended without a result",
                        ));
                    }
                }
            }
        };
        // A client's `notifications/cancelled` cancels the token: dropping `work` drops the
        // turn's event stream, which kills the CLI process group.
        tokio::select! {
            result = work => Ok(result),
            () = context.ct.cancelled() => {
                tracing::info!("MCP chat cancelled by the client");
                Err(ErrorData::new(ErrorCode::INTERNAL_ERROR, "request cancelled", None))
            }
        }
    }

    async fn provider_names(&self) -> Result<Vec<String>, ClientError> {
        Ok(self
            .hub
            .providers()
            .await?
            .iter()
            .filter_map(|p| p["name"].as_str().map(String::from))
            .collect())
    }

    async fn provider(&self, name: &str) -> Result<Value, ClientError> {
        let providers = self.hub.providers().await?;
        let names: Vec<_> = providers
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        if let Some(p) = providers.iter().find(|p| p["name"] == name) {
            return Ok(p.clone());
        }
        Err(ClientError::new(
            404,
            "provider_not_found",
            format!(
                "Provider '{name}' does not exist. Providers: {}",
                names.join(", ")
            ),
        ))
    }
}

fn tools() -> Vec<Tool> {
    let chat_output: JsonObject = serde_json::from_value(json!({
        "type": "object",
        "properties": {
            "session_id": {
                "type": ["string", "null"],
                "description": "Pass it as `session_id` to continue the conversation"
            },
            "model": {"type": "string", "description": "The model that answered, `provider/model`"},
            "usage": {
                "type": ["object", "null"],
                "properties": {
                    "input_tokens": {"type": "integer"},
                    "output_tokens": {"type": "integer"}
                }
            }
        },
        "required": ["session_id", "model", "usage"]
    }))
    .expect("an object");
    vec![
        Tool::new(
            "chat",
            "Send a message to a model (Claude or Gemini, through the owner's subscription) and \
             get its reply. Returns the reply as text, and the session id, model and token usage \
             as structured content. Pass the session id back to continue the conversation: the \
             hub keeps its history.",
            schema_for_type::<ChatArgs>(),
        )
        .with_title("Chat with a model")
        .with_raw_output_schema(Arc::new(chat_output))
        .with_annotations(
            ToolAnnotations::new()
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(true),
        ),
        Tool::new(
            "list_providers",
            "List the providers (claude, gemini) with their models, default model, health \
             (ready, degraded, usage_limited, not_logged_in, unavailable), usage-limit reset time \
             and capacity.",
            schema_for_type::<NoArgs>(),
        )
        .with_title("List providers")
        .with_annotations(ToolAnnotations::new().read_only(true).open_world(false)),
        Tool::new(
            "get_session",
            "Read a conversation of this API key: provider, model, timestamps and every message.",
            schema_for_type::<SessionArgs>(),
        )
        .with_title("Read a session")
        .with_annotations(ToolAnnotations::new().read_only(true).open_world(false)),
        Tool::new(
            "delete_session",
            "Delete a conversation of this API key and its history.",
            schema_for_type::<SessionArgs>(),
        )
        .with_title("Delete a session")
        .with_annotations(
            ToolAnnotations::new()
                .read_only(false)
                .destructive(true)
                .idempotent(true)
                .open_world(false),
        ),
    ]
}

fn tool_error(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// A failed tool call: the message and the REST error code, as a result with `isError` so the
/// client (and its model) can read it.
fn failure_result(f: &ClientError) -> CallToolResult {
    let mut text = format!("{} (code: {}", f.message, f.code);
    if let Some(secs) = f.retry_after {
        text.push_str(&format!(", retry after {secs} s"));
    }
    text.push(')');
    tool_error(text)
}

fn parse_args<T: DeserializeOwned>(tool: &str, args: Option<JsonObject>) -> Result<T, String> {
    serde_json::from_value(Value::Object(args.unwrap_or_default()))
        .map_err(|e| format!("Invalid arguments for tool '{tool}': {e}"))
}

fn json_text(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn structured(value: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(json_text(&value))]);
    result.structured_content = Some(value);
    result
}

fn resource_error(f: ClientError, uri: &str) -> ErrorData {
    if f.status == 404 {
        ErrorData::resource_not_found(f.message, Some(json!({"uri": uri})))
    } else {
        ErrorData::internal_error(f.to_string(), Some(json!({"code": f.code})))
    }
}

fn json_resource(uri: &str, value: &Value) -> ReadResourceResult {
    ReadResourceResult::new(vec![
        ResourceContents::text(json_text(value), uri).with_mime_type("application/json"),
    ])
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(
            Implementation::new("llm-mcp-hub", env!("CARGO_PKG_VERSION")).with_title("LLM MCP Hub"),
        )
        .with_instructions(
            "Chat with Claude and Gemini through the owner's subscriptions. Call `chat` with a \
             provider (or model) and a message; pass the returned session_id to continue the \
             conversation. `list_providers` (or the provider://list resource) tells which \
             providers are ready.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&context)?;
        let name: Cow<'static, str> = request.name;
        let result = match name.as_ref() {
            "chat" => match parse_args::<ChatArgs>("chat", request.arguments) {
                Ok(args) => self.chat(&caller, args, &context).await?,
                Err(e) => tool_error(e),
            },
            "list_providers" => match parse_args::<NoArgs>("list_providers", request.arguments) {
                Ok(NoArgs {}) => match self.hub.providers().await {
                    Ok(providers) => structured(json!({"providers": providers})),
                    Err(f) => failure_result(&f),
                },
                Err(e) => tool_error(e),
            },
            "get_session" => match parse_args::<SessionArgs>("get_session", request.arguments) {
                Ok(args) => match self.hub.get_session(&caller, &args.session_id).await {
                    Ok(session) => structured(session),
                    Err(f) => failure_result(&f),
                },
                Err(e) => tool_error(e),
            },
            "delete_session" => {
                match parse_args::<SessionArgs>("delete_session", request.arguments) {
                    Ok(args) => match self.hub.delete_session(&caller, &args.session_id).await {
                        Ok(()) => structured(json!({"deleted": args.session_id})),
                        Err(f) => failure_result(&f),
                    },
                    Err(e) => tool_error(e),
                }
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "Unknown tool '{other}'. Tools: chat, list_providers, get_session, \
                         delete_session"
                    ),
                    None,
                ));
            }
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = self.caller(&context)?;
        let mut resources = vec![
            Resource::new("provider://list", "providers")
                .with_title("Providers")
                .with_description("Every provider with its models, health and capacity")
                .with_mime_type("application/json"),
        ];
        let providers = self
            .hub
            .providers()
            .await
            .map_err(|f| resource_error(f, "provider://list"))?;
        for p in &providers {
            if let Some(name) = p["name"].as_str() {
                resources.push(
                    Resource::new(format!("provider://{name}"), format!("provider {name}"))
                        .with_description(format!("Provider '{name}': models, health, capacity"))
                        .with_mime_type("application/json"),
                );
            }
        }
        // The caller's own sessions only; a store outage leaves them out of the list.
        match self.hub.list_sessions(&caller, LISTED_SESSIONS).await {
            Ok(sessions) => {
                for s in sessions {
                    if let Some(id) = s["id"].as_str() {
                        resources.push(
                            Resource::new(format!("session://{id}"), format!("session {id}"))
                                .with_description(format!(
                                    "Conversation with {}/{} ({} messages)",
                                    s["provider"].as_str().unwrap_or("?"),
                                    s["model"].as_str().unwrap_or("?"),
                                    s["messages"]
                                ))
                                .with_mime_type("application/json"),
                        );
                    }
                }
            }
            Err(f) => tracing::warn!(error = %f, "MCP resources: cannot list sessions"),
        }
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("provider://{name}", "provider")
                .with_title("A provider")
                .with_description("One provider: models, default model, health, capacity")
                .with_mime_type("application/json"),
            ResourceTemplate::new("session://{session_id}", "session")
                .with_title("A session")
                .with_description(
                    "One of this key's conversations: provider, model, timestamps, messages",
                )
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = self.caller(&context)?;
        let uri = request.uri.as_str();
        let value = if uri == "provider://list" {
            let providers = self
                .hub
                .providers()
                .await
                .map_err(|f| resource_error(f, uri))?;
            json!({"providers": providers})
        } else if let Some(name) = uri.strip_prefix("provider://") {
            self.provider(name)
                .await
                .map_err(|f| resource_error(f, uri))?
        } else if let Some(id) = uri.strip_prefix("session://") {
            self.hub
                .get_session(&caller, id)
                .await
                .map_err(|f| resource_error(f, uri))?
        } else {
            return Err(ErrorData::resource_not_found(
                format!(
                    "No resource '{uri}': the hub serves provider://list, provider://{{name}} and \
                     session://{{session_id}}"
                ),
                Some(json!({"uri": uri})),
            ));
        };
        Ok(json_resource(uri, &value).into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        Ok(prompts::get(&request.name, request.arguments)?.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_schemas_describe_their_arguments() {
        let tools = tools();
        let chat = tools.iter().find(|t| t.name == "chat").unwrap();
        let schema = Value::Object((*chat.input_schema).clone());
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["message"]));
        for field in ["message", "provider", "model", "session_id", "system"] {
            assert!(
                schema["properties"][field]["description"].is_string(),
                "{field}: {schema}"
            );
        }
        assert!(chat.output_schema.is_some());
        let get = tools.iter().find(|t| t.name == "get_session").unwrap();
        assert_eq!(get.input_schema["required"], json!(["session_id"]));
    }

    #[test]
    fn argument_errors_name_the_field() {
        let e = parse_args::<ChatArgs>("chat", json!({"provider": "claude"}).as_object().cloned())
            .unwrap_err();
        assert!(e.contains("message"), "{e}");
        let e = parse_args::<ChatArgs>(
            "chat",
            json!({"message": "hi", "temperature": 1})
                .as_object()
                .cloned(),
        )
        .unwrap_err();
        assert!(e.contains("temperature"), "{e}");
        let e =
            parse_args::<ChatArgs>("chat", json!({"message": 5}).as_object().cloned()).unwrap_err();
        assert!(e.contains("string"), "{e}");
    }
}

/// Bounded fuzzing of MCP arguments: any JSON a client sends as tool or prompt arguments is
/// decoded or refused with a message naming the tool, never a panic.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::decoding_properties::{json_value, text};

    fn object(value: Value) -> Option<JsonObject> {
        match value {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn tool_arguments_of_any_shape_decode_or_say_why(args in json_value()) {
            let args = object(args);
            match parse_args::<ChatArgs>("chat", args.clone()) {
                // A message is required: a decoded call has the one the client sent.
                Ok(chat) => prop_assert_eq!(
                    args.as_ref().and_then(|a| a.get("message")),
                    Some(&Value::String(chat.message))
                ),
                Err(e) => prop_assert!(e.contains("'chat'"), "{}", e),
            }
            if let Err(e) = parse_args::<SessionArgs>("get_session", args.clone()) {
                prop_assert!(e.contains("'get_session'"), "{}", e);
            }
            let _ = parse_args::<NoArgs>("list_providers", args);
        }

        #[test]
        fn prompts_take_any_arguments_without_panicking(
            name in prop_oneof![
                text(),
                Just("summarize".to_string()),
                Just("translate".to_string()),
                Just("review_code".to_string()),
                Just("commit_message".to_string()),
            ],
            args in json_value(),
        ) {
            let _ = crate::mcp::prompts::get(&name, object(args));
        }
    }
}
