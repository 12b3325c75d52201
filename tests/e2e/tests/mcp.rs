//! The MCP face, driven by rmcp's client over all three transports (streamable HTTP at /mcp,
//! HTTP+SSE at /sse, stdio via `mcp-stdio`), against the real binary and the real CLIs.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::tls::TlsFront;
use e2e::{Hub, HubOptions, api_key_entry};
use futures::{Stream, StreamExt};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientJsonRpcMessage, ClientRequest,
    GetPromptRequestParams, ProgressNotificationParam, ReadResourceRequestParams, ResourceContents,
    ServerJsonRpcMessage,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use serde_json::{Value, json};

const KEY_A: &str = "lmh_mcp_key_alpha";
const KEY_B: &str = "lmh_mcp_key_bravo";

fn keyed_claude(claude: &str) -> HubOptions {
    HubOptions {
        no_gemini: true,
        top: [
            api_key_entry("alpha", KEY_A, None),
            api_key_entry("bravo", KEY_B, None),
        ]
        .join(""),
        claude: claude.into(),
        ..Default::default()
    }
}

/// A client that records the progress messages it gets.
#[derive(Clone, Default)]
struct Recorder {
    progress: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Recorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(message) = params.message {
            self.progress.lock().unwrap().push(message);
        }
    }
}

type Client = RunningService<RoleClient, Recorder>;

async fn streamable_client(hub: &Hub, key: &str) -> (Client, Recorder) {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(hub.url("/mcp")).auth_header(key),
    );
    let recorder = Recorder::default();
    let client = recorder
        .clone()
        .serve(transport)
        .await
        .expect("MCP initialize over streamable HTTP");
    (client, recorder)
}

/// The HTTP+SSE transport (2024-11-05) from the client side: `GET /sse`, the `endpoint` event,
/// then one POST per message. rmcp has no client for it, so the test brings this small one.
async fn sse_client(hub: &Hub, key: &str) -> (Client, Recorder) {
    let http = hub.http.clone();
    let response = http
        .get(hub.url("/sse"))
        .bearer_auth(key)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = sse_events(response);
    let (event, endpoint) = events.next().await.expect("endpoint event");
    assert_eq!(event, "endpoint");
    assert!(endpoint.starts_with("/message?sessionId="), "{endpoint}");
    let post_url = hub.url(&endpoint);
    let (outgoing, mut to_post) = futures::channel::mpsc::channel::<ClientJsonRpcMessage>(16);
    let key = key.to_string();
    tokio::spawn(async move {
        while let Some(message) = to_post.next().await {
            let r = http
                .post(&post_url)
                .bearer_auth(&key)
                .json(&message)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "POST /message");
        }
    });
    let incoming = events.filter_map(|(event, data)| async move {
        (event == "message")
            .then(|| serde_json::from_str::<ServerJsonRpcMessage>(&data).expect("JSON-RPC"))
    });
    let recorder = Recorder::default();
    let client = recorder
        .clone()
        .serve((outgoing, Box::pin(incoming)))
        .await
        .expect("MCP initialize over SSE");
    (client, recorder)
}

/// `(event, data)` pairs of an SSE response.
fn sse_events(
    response: reqwest::Response,
) -> std::pin::Pin<Box<dyn Stream<Item = (String, String)> + Send>> {
    Box::pin(async_stream(response))
}

fn async_stream(response: reqwest::Response) -> impl Stream<Item = (String, String)> + Send {
    futures::stream::unfold(
        (response.bytes_stream(), String::new()),
        |(mut body, mut buffer)| async move {
            loop {
                if let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let mut event = "message".to_string();
                    let mut data = Vec::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                        }
                    }
                    if data.is_empty() {
                        continue; // keep-alive comments
                    }
                    return Some(((event, data.join("\n")), (body, buffer)));
                }
                match body.next().await {
                    Some(Ok(bytes)) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
                    _ => return None,
                }
            }
        },
    )
}

async fn stdio_client(hub: &Hub, args: &[&str]) -> (Client, Recorder) {
    stdio_client_with_env(hub, args, &[]).await
}

async fn stdio_client_with_env(
    hub: &Hub,
    args: &[&str],
    env: &[(&str, &Path)],
) -> (Client, Recorder) {
    let (mut command, log) = hub.mcp_stdio_command(args);
    command.envs(env.iter().copied());
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(log)
        .spawn()
        .expect("start mcp-stdio");
    let recorder = Recorder::default();
    let client = match recorder.clone().serve(transport).await {
        Ok(c) => c,
        Err(e) => panic!("MCP initialize over stdio: {e}\n{}", hub.mcp_stdio_log()),
    };
    (client, recorder)
}

fn args(v: Value) -> CallToolRequestParams {
    let (name, arguments) = match v {
        Value::Array(mut a) => (a.remove(0), a.remove(0)),
        _ => unreachable!(),
    };
    CallToolRequestParams::new(name.as_str().unwrap().to_string())
        .with_arguments(arguments.as_object().unwrap().clone())
}

async fn call(peer: &Peer<RoleClient>, tool: &str, arguments: Value) -> CallToolResult {
    peer.call_tool(args(json!([tool, arguments])))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

async fn read_json(peer: &Peer<RoleClient>, uri: &str) -> Value {
    let result = peer
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    match &result.contents[0] {
        ResourceContents::TextResourceContents {
            text, mime_type, ..
        } => {
            assert_eq!(mime_type.as_deref(), Some("application/json"));
            serde_json::from_str(text).unwrap()
        }
        other => panic!("{other:?}"),
    }
}

/// What every transport must do: discovery, a two-turn conversation, the session resource.
/// Returns the session id.
async fn converse(peer: &Peer<RoleClient>) -> String {
    let info = peer.peer_info().expect("initialized");
    assert_eq!(info.server_info.as_ref().unwrap().name, "llm-mcp-hub");

    let tools = peer.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    for name in ["chat", "list_providers", "get_session", "delete_session"] {
        assert!(names.contains(&name.to_string()), "{names:?}");
    }
    let chat = tools.iter().find(|t| t.name == "chat").unwrap();
    assert_eq!(chat.input_schema["required"], json!(["message"]));
    assert!(chat.input_schema["properties"]["session_id"].is_object());

    let resources = peer.list_all_resources().await.unwrap();
    let uris: Vec<_> = resources.iter().map(|r| r.uri.clone()).collect();
    assert!(uris.contains(&"provider://list".to_string()), "{uris:?}");
    assert!(uris.contains(&"provider://claude".to_string()), "{uris:?}");
    let templates = peer.list_all_resource_templates().await.unwrap();
    let templates: Vec<_> = templates.iter().map(|t| t.uri_template.clone()).collect();
    assert_eq!(templates, ["provider://{name}", "session://{session_id}"]);
    let prompts = peer.list_all_prompts().await.unwrap();
    assert!(prompts.len() >= 3, "{prompts:?}");
    assert!(
        prompts
            .iter()
            .all(|p| p.description.is_some() && p.arguments.is_some())
    );
    let prompt = peer
        .get_prompt(
            GetPromptRequestParams::new("translate").with_arguments(
                json!({"text": "Bonjour", "target_language": "German"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert!(
        serde_json::to_string(&prompt.messages)
            .unwrap()
            .contains("Bonjour")
    );

    let providers = read_json(peer, "provider://list").await;
    assert_eq!(providers["providers"][0]["name"], "claude");
    let claude = read_json(peer, "provider://claude").await;
    assert_eq!(claude["default_model"], "sonnet");

    let first = call(
        peer,
        "chat",
        json!({"provider": "claude", "message": "my name is Ada", "system": "Be terse."}),
    )
    .await;
    assert_eq!(first.is_error, Some(false), "{first:?}");
    assert_eq!(text(&first), "echo: my name is Ada");
    let meta = first
        .structured_content
        .clone()
        .expect("structured content");
    assert_eq!(meta["model"], "claude/sonnet");
    assert!(
        meta["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{meta}"
    );
    let session_id = meta["session_id"].as_str().unwrap().to_string();

    let second = call(
        peer,
        "chat",
        json!({"model": "claude", "message": "what is my name?", "session_id": session_id}),
    )
    .await;
    assert_eq!(second.is_error, Some(false), "{second:?}");
    let reply = text(&second);
    // The fake model echoes its whole prompt: the history came along.
    assert!(
        reply.contains("my name is Ada") && reply.ends_with("what is my name?"),
        "{reply}"
    );
    assert_eq!(
        second.structured_content.as_ref().unwrap()["session_id"],
        session_id.as_str()
    );

    let session = read_json(peer, &format!("session://{session_id}")).await;
    let roles: Vec<_> = session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    let via_tool = call(peer, "get_session", json!({"session_id": session_id})).await;
    assert_eq!(
        via_tool.structured_content.unwrap()["messages"],
        session["messages"]
    );
    let resources = peer.list_all_resources().await.unwrap();
    assert!(
        resources
            .iter()
            .any(|r| r.uri == format!("session://{session_id}")),
        "the caller's sessions are listed"
    );
    session_id
}

#[tokio::test(flavor = "multi_thread")]
async fn streamable_http_serves_tools_resources_prompts_with_keys_and_errors() {
    let hub = Hub::start_with(keyed_claude("")).await;

    // The same bearer keys as REST.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "curl", "version": "0"}}});
    for key in [None, Some("wrong")] {
        let mut r = hub
            .http
            .post(hub.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(key) = key {
            r = r.bearer_auth(key);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = hub
        .http
        .post(hub.url("/mcp"))
        .bearer_auth(KEY_A)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().contains_key("mcp-session-id"),
        "MCP session ids"
    );

    let (client, recorder) = streamable_client(&hub, KEY_A).await;
    let session_id = converse(client.peer()).await;
    // rmcp's client asks for progress on every request: the reply came as partial text too.
    // The first delta is sent at once; the server sends notifications and responses on
    // separate tasks, so a turn's last notification may land after its result.
    let progress = recorder.progress.lock().unwrap().concat();
    assert!(progress.starts_with("echo: m"), "{progress:?}");

    // Another key sees neither the session nor its listing.
    let (other, _) = streamable_client(&hub, KEY_B).await;
    let e = other
        .read_resource(ReadResourceRequestParams::new(format!(
            "session://{session_id}"
        )))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    let stolen = call(&other, "get_session", json!({"session_id": session_id})).await;
    assert_eq!(stolen.is_error, Some(true));
    let resumed = call(
        &other,
        "chat",
        json!({"provider": "claude", "message": "hi", "session_id": session_id}),
    )
    .await;
    // Session ids are per key: the same id starts the other key's own conversation, which
    // holds nothing of the first key's (the fake model echoes the whole conversation).
    assert_eq!(resumed.is_error, Some(false), "{resumed:?}");
    assert_eq!(text(&resumed), "echo: hi");

    // Errors are tool results with isError, saying what is wrong.
    let unknown = call(&client, "chat", json!({"provider": "gpt", "message": "hi"})).await;
    assert_eq!(unknown.is_error, Some(true));
    let message = text(&unknown);
    assert!(
        message.contains("model_not_found") && message.contains("claude/sonnet"),
        "{message}"
    );
    let missing = call(&client, "chat", json!({"provider": "claude"})).await;
    assert_eq!(missing.is_error, Some(true));
    assert!(text(&missing).contains("message"), "{}", text(&missing));
    let extra = call(
        &client,
        "chat",
        json!({"provider": "claude", "message": "hi", "temperature": 2}),
    )
    .await;
    assert!(text(&extra).contains("temperature"), "{}", text(&extra));
    let wrong_type = call(&client, "chat", json!({"provider": "claude", "message": 5})).await;
    assert!(
        text(&wrong_type).contains("string"),
        "{}",
        text(&wrong_type)
    );
    let e = client
        .call_tool(args(json!(["nonexistent", {}])))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Unknown tool"), "{e}");
    let e = client
        .read_resource(ReadResourceRequestParams::new("provider://nope"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("claude"), "{e}");
    let e = client
        .get_prompt(GetPromptRequestParams::new("translate"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("text"), "{e}");

    // A provider failure is classified as in REST.
    let failed = call(
        &client,
        "chat",
        json!({"provider": "claude", "message": "[[status:529]] overloaded"}),
    )
    .await;
    assert_eq!(failed.is_error, Some(true));
    assert!(
        text(&failed).contains("upstream_error"),
        "{}",
        text(&failed)
    );

    // delete_session, then it is gone.
    let deleted = call(&client, "delete_session", json!({"session_id": session_id})).await;
    assert_eq!(deleted.is_error, Some(false), "{deleted:?}");
    let gone = call(&client, "get_session", json!({"session_id": session_id})).await;
    assert_eq!(gone.is_error, Some(true));
    assert!(text(&gone).contains("session_not_found"));

    // The connection survived every error.
    let providers = call(&client, "list_providers", json!({})).await;
    assert_eq!(
        providers.structured_content.unwrap()["providers"][0]["name"],
        "claude"
    );
    client.cancel().await.unwrap();
    other.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_older_sse_transport_serves_the_same_and_keeps_sessions_to_their_key() {
    let hub = Hub::start_with(keyed_claude("")).await;
    let r = hub.http.get(hub.url("/sse")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = hub
        .http
        .get(hub.url("/sse"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let (client, recorder) = sse_client(&hub, KEY_A).await;
    converse(client.peer()).await;
    assert!(!recorder.progress.lock().unwrap().is_empty());

    // Another key may not post into this MCP session.
    let r = hub
        .http
        .get(hub.url("/sse"))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    let mut open = sse_events(r);
    let (_, endpoint) = open.next().await.unwrap();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let r = hub
        .http
        .post(hub.url(&endpoint))
        .bearer_auth(KEY_B)
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = hub
        .http
        .post(hub.url(&endpoint))
        .bearer_auth(KEY_A)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn stdio_runs_providers_in_process_or_forwards_to_a_hub() {
    let hub = Hub::start_with(keyed_claude("warm_processes = 0")).await;

    let forwarding = ["--hub-url", hub.base.as_str(), "--api-key", KEY_A];
    let (client, recorder) = stdio_client(&hub, &forwarding).await;
    let session_id = converse(client.peer()).await;
    assert!(!recorder.progress.lock().unwrap().is_empty());
    client.cancel().await.unwrap();
    // It went through the hub, as the key's session.
    let r = hub
        .http
        .get(hub.url(&format!("/v1/sessions/{session_id}")))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (client, _) =
        stdio_client(&hub, &["--hub-url", hub.base.as_str(), "--api-key", "bad"]).await;
    let refused = call(
        &client,
        "chat",
        json!({"provider": "claude", "message": "hi"}),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text(&refused).contains("invalid_api_key"),
        "{}",
        text(&refused)
    );
    client.cancel().await.unwrap();

    // Through TLS, as to a hub behind an ingress: verified against the trust store, so the
    // private CA must be named; without it the certificate is refused, as an MCP tool error.
    let hub_addr = hub.base.trim_start_matches("http://").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let front = TlsFront::start(hub_addr, dir.path()).await;
    let over_tls = ["--hub-url", front.url.as_str(), "--api-key", KEY_A];
    let (client, _) =
        stdio_client_with_env(&hub, &over_tls, &[("SSL_CERT_FILE", &front.ca_file)]).await;
    converse(client.peer()).await;
    client.cancel().await.unwrap();
    let (client, _) = stdio_client(&hub, &over_tls).await;
    let untrusted = call(
        &client,
        "chat",
        json!({"provider": "claude", "message": "hi"}),
    )
    .await;
    assert_eq!(untrusted.is_error, Some(true));
    assert!(
        text(&untrusted).contains("hub_unreachable") && text(&untrusted).contains("certificate"),
        "{}",
        text(&untrusted)
    );
    client.cancel().await.unwrap();

    let (client, _) = stdio_client(&hub, &[]).await;
    converse(client.peer()).await;
    client.cancel().await.unwrap();
    let log = hub.mcp_stdio_log();
    assert!(log.contains("providers in-process"), "{log}");
}

/// `mcp-stdio --hub-url` sends the hub key with every request: plain http is refused unless the
/// hub is on this machine, a URL with userinfo is refused (it would replace the key), and the
/// userinfo is never logged.
#[tokio::test(flavor = "multi_thread")]
async fn stdio_refuses_cleartext_to_another_machine_and_never_logs_url_userinfo() {
    let hub = Hub::start_with(keyed_claude("warm_processes = 0")).await;
    let port = hub.base.rsplit(':').next().unwrap();
    for (url, says) in [
        ("http://hub.example:8080".to_string(), "https://"),
        (
            "http://user:url-secret@hub.example:8080".to_string(),
            "https://",
        ),
        (
            format!("http://user:url-secret@127.0.0.1:{port}"),
            "--api-key",
        ),
    ] {
        let (mut command, log) = hub.mcp_stdio_command(&["--hub-url", &url, "--api-key", KEY_A]);
        let status = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .status()
            .await
            .unwrap();
        assert!(!status.success(), "{url}");
        let stderr = hub.mcp_stdio_log();
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(!stderr.contains("url-secret"), "{stderr}");
    }
    // To loopback, plain http is fine.
    let (client, _) = stdio_client(&hub, &["--hub-url", &hub.base, "--api-key", KEY_A]).await;
    let listed = call(&client, "list_providers", json!({})).await;
    assert_eq!(listed.is_error, Some(false), "{listed:?}");
    client.cancel().await.unwrap();
    assert!(hub.mcp_stdio_log().contains("forwarding to a hub"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_chat_kills_its_cli_process() {
    let hub = Hub::start_with(HubOptions {
        no_gemini: true,
        claude: "max_concurrency = 1".into(),
        ..Default::default()
    })
    .await;
    let forwarding = ["--hub-url", hub.base.as_str()];
    for transport in ["streamable HTTP", "SSE", "stdio forwarding to the hub"] {
        let (client, recorder) = match transport {
            "streamable HTTP" => streamable_client(&hub, KEY_A).await,
            "SSE" => sse_client(&hub, KEY_A).await,
            _ => stdio_client(&hub, &forwarding).await,
        };
        cancel_a_slow_chat(&hub, &client, &recorder, transport).await;
        client.cancel().await.unwrap();
    }
}

/// Starts a long `chat`, cancels it once text streams, and checks the CLI is gone and the
/// session serves the next call.
async fn cancel_a_slow_chat(hub: &Hub, client: &Client, recorder: &Recorder, transport: &str) {
    hub.wait_idle("claude", 1).await;
    let warm = hub.cli_pids();
    assert!(!warm.is_empty());
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(args(json!(["chat",
        {"provider": "claude", "message": "[[words:300]] [[delay-ms:100]] long"}]))));
    let handle = client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !recorder.progress.lock().unwrap().concat().contains("word2") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress over {transport}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The answering process is among those alive now: a warm one, or one started for this
    // request when the warm one was not ready yet (seen on a loaded machine).
    let busy = hub.cli_pids();
    let aborted = hub.log().matches("\"aborted\"").count();
    handle
        .cancel(Some("user pressed stop".into()))
        .await
        .unwrap();
    hub.wait_for_clis(
        &format!("the CLI of a chat cancelled over {transport} must be killed"),
        |pids| {
            hub.log().matches("\"aborted\"").count() > aborted
                && busy.iter().any(|p| !pids.contains(p))
        },
    )
    .await;

    // The hub goes on serving this MCP session.
    let after = call(
        client,
        "chat",
        json!({"provider": "claude", "message": "again"}),
    )
    .await;
    assert_eq!(text(&after), "echo: again", "over {transport}: {after:?}");
}

/// A raw `initialize` over streamable HTTP: the response, and the session id it opened.
async fn initialize(hub: &Hub) -> (reqwest::StatusCode, Option<String>, Value) {
    initialize_as(hub, None).await
}

async fn initialize_as(
    hub: &Hub,
    key: Option<&str>,
) -> (reqwest::StatusCode, Option<String>, Value) {
    let mut r = hub.http.post(hub.url("/mcp"));
    if let Some(key) = key {
        r = r.bearer_auth(key);
    }
    let r = r
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "limit-test", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    let status = r.status();
    let session = r
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let retry_after = r.headers().get("retry-after").cloned();
    let body = if status.is_success() {
        Value::Null
    } else {
        let mut body: Value = r.json().await.unwrap();
        body["retry_after"] = json!(retry_after.map(|v| v.to_str().unwrap().to_string()));
        body
    };
    (status, session, body)
}

/// A streamable-HTTP session belongs to the key that opened it: to any other key its id is
/// unknown (404 on POST, on GET with `Last-Event-ID`, on DELETE), and the id never reaches the
/// log. Its owner closes it with 204 (rmcp's 202 made the Python SDK report a failure).
#[tokio::test(flavor = "multi_thread")]
async fn a_streamable_http_session_belongs_to_the_key_that_opened_it() {
    let hub = Hub::start_with(keyed_claude("")).await;
    let (status, session, _) = initialize_as(&hub, Some(KEY_A)).await;
    assert_eq!(status, 200);
    let session = session.unwrap();
    let request = |method: reqwest::Method, key: &str| {
        hub.http
            .request(method, hub.url("/mcp"))
            .bearer_auth(key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
    };
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let r = request(reqwest::Method::POST, KEY_A)
        .json(&initialized)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let r = request(reqwest::Method::POST, KEY_B)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "another key posted to the session");
    let r = request(reqwest::Method::GET, KEY_B)
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "another key resumed the session's stream");
    let r = request(reqwest::Method::DELETE, KEY_B)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "another key closed the session");
    // Unknown and foreign ids look the same.
    let r = hub
        .http
        .post(hub.url("/mcp"))
        .bearer_auth(KEY_B)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", "0123456789abcdef")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The owner's session is untouched.
    let r = request(reqwest::Method::POST, KEY_A)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed = sse_events(r)
        .filter_map(|(_, data)| async move { serde_json::from_str::<Value>(&data).ok() })
        .collect::<Vec<_>>()
        .await;
    assert!(listed.iter().any(|m| m["id"] == 2), "{listed:?}");
    let r = request(reqwest::Method::DELETE, KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "the Python SDK accepts 200 and 204 only");
    let r = request(reqwest::Method::POST, KEY_A)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a closed session is gone");
    assert!(
        !hub.log().contains(&session),
        "an MCP session id reached the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn open_sessions_are_bounded_and_idle_ones_close() {
    let hub = Hub::start_with(
        HubOptions::claude_only("").with_top("mcp_max_sessions = 2\nmcp_session_idle_secs = 2"),
    )
    .await;
    let (first, id, _) = initialize(&hub).await;
    assert_eq!(first, 200);
    assert!(id.is_some());
    let (sse, _) = sse_client(&hub, "").await;
    // Both slots taken (one streamable, one SSE): a third session of either kind is refused.
    let (refused, _, body) = initialize(&hub).await;
    assert_eq!(refused, 503, "{body}");
    assert_eq!(body["error"]["code"], "capacity_exhausted", "{body}");
    assert_eq!(body["retry_after"], "5");
    let r = hub
        .http
        .get(hub.url("/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // Closing the SSE session frees its slot at once; the idle streamable one goes after 2 s.
    sse.cancel().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut opened = 0;
    while opened < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "slots were not freed (opened {opened})"
        );
        if initialize(&hub).await.0 == 200 {
            opened += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// On the wire (streamable HTTP, read raw): every progress notification of a `chat` comes before
/// its result, and together they are the reply. (Clients may still hand them to the
/// application out of order; the SDK tests allow for that.)
#[tokio::test(flavor = "multi_thread")]
async fn progress_goes_out_before_the_result() {
    let hub = Hub::start_with(HubOptions::claude_only("")).await;
    let (status, session, _) = initialize(&hub).await;
    assert_eq!(status, 200);
    let session = session.unwrap();
    let post = |body: Value| {
        hub.http
            .post(hub.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body)
            .send()
    };
    let r = post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "chat",
        "arguments": {"provider": "claude", "message": "[[words:20]] [[delay-ms:60]] count"},
        "_meta": {"progressToken": "p-1"}}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let messages: Vec<Value> = tokio::time::timeout(
        Duration::from_secs(60),
        sse_events(r)
            .filter_map(|(_, data)| async move { serde_json::from_str::<Value>(&data).ok() })
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the response stream ends after the result");
    let result_at = messages
        .iter()
        .position(|m| m["id"] == 2)
        .expect("a result");
    assert_eq!(
        result_at,
        messages.len() - 1,
        "nothing after the result: {messages:#?}"
    );
    let progress: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(progress.len() >= 2, "{messages:#?}");
    let streamed: String = progress
        .iter()
        .map(|m| m["params"]["message"].as_str().unwrap())
        .collect();
    let reply = messages[result_at]["result"]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert_eq!(streamed, reply);
}

/// MCP through a router: `chat` runs on a worker process, and cancelling it kills the CLI
/// there, exactly as in `serve`.
#[tokio::test(flavor = "multi_thread")]
async fn chat_through_a_router_runs_on_a_worker_and_cancelling_kills_its_cli() {
    use e2e::cluster::{Kind, Router, Worker, WorkerSpec, static_entry};
    let worker = Worker::start(WorkerSpec::new(Kind::Claude, "claude", "a")).await;
    let router = Router::start(
        &api_key_entry("alpha", KEY_A, None),
        &static_entry("claude", &worker.url, &worker.token_file),
    )
    .await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(router.url("/mcp")).auth_header(KEY_A),
    );
    let recorder = Recorder::default();
    let client = recorder
        .clone()
        .serve(transport)
        .await
        .expect("MCP initialize through the router");
    let result = call(
        &client,
        "chat",
        json!({"provider": "claude", "message": "[[reply:from a worker]]"}),
    )
    .await;
    assert_eq!(text(&result), "from a worker", "{result:?}");
    assert_eq!(worker.turns(), 1);

    let request = ClientRequest::CallToolRequest(CallToolRequest::new(args(json!(["chat",
        {"provider": "claude", "message": "[[words:300]] [[delay-ms:100]] long"}]))));
    let handle = client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !recorder.progress.lock().unwrap().concat().contains("word2") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress through the router"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy: Vec<i32> = worker.cli_pids();
    handle
        .cancel(Some("user pressed stop".into()))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // The worker retires the answering process as aborted, and it is gone.
    loop {
        let now = worker.cli_pids();
        if worker.log().contains("\"aborted\"") && busy.iter().any(|p| !now.contains(p)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker's CLI of a cancelled chat must be killed: before {busy:?}, now {now:?}\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = call(
        &client,
        "chat",
        json!({"provider": "claude", "message": "[[reply:again]]"}),
    )
    .await;
    assert_eq!(text(&after), "again");
    client.cancel().await.unwrap();
}
