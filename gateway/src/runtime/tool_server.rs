//! The client's tools over MCP streamable HTTP, for CLIs that reach MCP servers only over the
//! network (gemini).
//!
//! One listener per hub process, on 127.0.0.1 only, started the first time a CLI needs it. Each
//! CLI process with tools gets its own route: a random path and a random bearer secret, both in
//! the CLI's private settings file, removed when the process ends (a call then fails). A
//! `tools/call` is held open as an SSE response, with a comment every few seconds so neither
//! side's idle timer fires, until the client's result comes, or the process is gone.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OnceCell, mpsc, oneshot};

use super::output::ProcessEvent;
use crate::provider::CliEvent;
use crate::provider::tools::{self, McpStep, ToolEndpoint, ToolSet};

/// How often a held call sends a keep-alive comment: well under undici's 300 s body timeout.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Largest JSON-RPC message the server reads.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

struct Route {
    secret_sha256: [u8; 32],
    tools: ToolSet,
    events: mpsc::UnboundedSender<ProcessEvent>,
    pending: HashMap<String, oneshot::Sender<String>>,
}

type Routes = Arc<Mutex<HashMap<String, Route>>>;

pub struct ToolServer {
    base: String,
    routes: Routes,
}

/// A CLI process's route; dropping it removes the route and fails its pending calls.
pub struct Registration {
    path: String,
    routes: Routes,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.routes.lock().expect("routes lock").remove(&self.path);
    }
}

impl Registration {
    /// Answers the held call `request_id` with the client's result. False when the call is
    /// gone (the CLI gave up on it).
    pub fn answer(&self, request_id: &str, result: String) -> bool {
        let sender = self
            .routes
            .lock()
            .expect("routes lock")
            .get_mut(&self.path)
            .and_then(|r| r.pending.remove(request_id));
        sender.is_some_and(|s| s.send(result).is_ok())
    }
}

impl ToolServer {
    /// The hub's one tool server, started on first use.
    pub async fn shared() -> std::io::Result<&'static ToolServer> {
        static SERVER: OnceCell<ToolServer> = OnceCell::const_new();
        SERVER.get_or_try_init(ToolServer::start).await
    }

    async fn start() -> std::io::Result<ToolServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let routes: Routes = Arc::default();
        let app = Router::new()
            .route(
                "/mcp/{path}",
                post(message).get(no_stream).delete(end_session),
            )
            .layer(axum::extract::DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
            .with_state(routes.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the tool server stopped");
            }
        });
        Ok(ToolServer {
            base: format!("http://{addr}/mcp/"),
            routes,
        })
    }

    /// A route serving `tools` to one process, whose held calls are announced on `events`.
    pub fn register(
        &self,
        tools: ToolSet,
        events: mpsc::UnboundedSender<ProcessEvent>,
    ) -> (Registration, ToolEndpoint) {
        let path = uuid::Uuid::new_v4().simple().to_string();
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.routes.lock().expect("routes lock").insert(
            path.clone(),
            Route {
                secret_sha256: Sha256::digest(secret.as_bytes()).into(),
                tools,
                events,
                pending: HashMap::new(),
            },
        );
        let endpoint = ToolEndpoint {
            url: format!("{}{path}", self.base),
            secret,
        };
        (
            Registration {
                path,
                routes: self.routes.clone(),
            },
            endpoint,
        )
    }
}

fn authorized(route: &Route, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    // Digests compared in constant time: the time taken says nothing about the secret.
    bool::from(given.ct_eq(&route.secret_sha256))
}

async fn no_stream() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}

async fn end_session() -> StatusCode {
    StatusCode::OK
}

async fn message(
    State(routes): State<Routes>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let (step, waiting) = {
        let mut routes = routes.lock().expect("routes lock");
        let Some(route) = routes.get_mut(&path) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if !authorized(route, &headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let step = tools::mcp_step(&route.tools, &message);
        let waiting = match &step {
            McpStep::Call {
                rpc_id,
                name,
                arguments,
                tool_use_id,
            } => {
                let request_id = uuid::Uuid::new_v4().simple().to_string();
                let (tx, rx) = oneshot::channel();
                route.pending.insert(request_id.clone(), tx);
                let _ = route
                    .events
                    .send(ProcessEvent::Cli(CliEvent::ToolCallWaiting {
                        request_id,
                        rpc_id: rpc_id.clone(),
                        tool_use_id: tool_use_id.clone(),
                        name: name.clone(),
                        arguments: arguments.clone(),
                    }));
                Some((rpc_id.clone(), rx))
            }
            _ => None,
        };
        (step, waiting)
    };
    match (step, waiting) {
        (McpStep::Reply(answer), _) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            answer.to_string(),
        )
            .into_response(),
        (McpStep::Nothing, _) => StatusCode::ACCEPTED.into_response(),
        (McpStep::Call { .. }, Some((rpc_id, rx))) => {
            let stream = async_stream::stream! {
                let answer = match rx.await {
                    Ok(text) => tools::call_result(&rpc_id, &text),
                    Err(_) => serde_json::json!({"jsonrpc": "2.0", "id": rpc_id,
                        "error": {"code": -32000, "message": "the turn ended before the tool's result came"}}),
                };
                yield Ok::<_, Infallible>(Event::default().event("message").data(answer.to_string()));
            };
            Sse::new(stream)
                .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
                .into_response()
        }
        (McpStep::Call { .. }, None) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ToolSpec;

    #[tokio::test]
    async fn a_route_needs_its_secret_holds_calls_and_ends_with_its_process() {
        let server = ToolServer::shared().await.unwrap();
        let tools = ToolSet::new(vec![ToolSpec {
            name: "f".into(),
            description: String::new(),
            parameters: serde_json::json!({"type": "object"}),
        }]);
        let (tx, mut events) = mpsc::unbounded_channel();
        let (registration, endpoint) = server.register(tools, tx);
        assert!(endpoint.url.starts_with("http://127.0.0.1:"));
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::new();
        let call = serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                                      "params": {"name": "f", "arguments": {"x": 1}}});
        let wrong = http
            .post(&endpoint.url)
            .bearer_auth("not-the-secret")
            .json(&call)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        let held = tokio::spawn(
            http.post(&endpoint.url)
                .bearer_auth(&endpoint.secret)
                .json(&call)
                .send(),
        );
        let Some(ProcessEvent::Cli(CliEvent::ToolCallWaiting {
            request_id,
            arguments,
            ..
        })) = events.recv().await
        else {
            panic!("no call announced")
        };
        assert_eq!(arguments, serde_json::json!({"x": 1}));
        assert!(registration.answer(&request_id, "done".into()));
        let body = held.await.unwrap().unwrap().text().await.unwrap();
        assert!(body.contains(r#""text":"done""#), "{body}");
        let url = endpoint.url.clone();
        drop(registration);
        let gone = http
            .post(&url)
            .bearer_auth(&endpoint.secret)
            .json(&call)
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 404);
    }
}
