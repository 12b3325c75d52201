//! The MCP HTTP transports, mounted into the REST router behind its bearer keys:
//!
//! - `/mcp`: streamable HTTP (rmcp's `StreamableHttpService`, with `Mcp-Session-Id` sessions);
//! - `/sse` + `/message`: the older HTTP+SSE transport (protocol 2024-11-05). rmcp no longer
//!   ships a server for it, so it is built here on rmcp's transport traits: each `GET /sse`
//!   opens an rmcp server session over a channel pair (a `Sink`/`Stream` transport); its
//!   messages go out as `message` events, and `POST /message?sessionId=…` feeds it.
//!
//! Every HTTP request carries its authenticated `Caller`, so sessions stay with the key that
//! owns them whatever MCP session a request arrives in. An MCP session itself belongs to the key
//! that opened it: a request of another key naming its id (`Mcp-Session-Id`, `sessionId`) gets
//! the same 404 as an unknown id, so a leaked id is of no use to another key.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, JsonRpcMessage};
use rmcp::service::serve_server_with_ct;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Hub, McpServer};
use crate::app::AppState;
use crate::auth::Caller;
use crate::config::Config;
use crate::errors::ClientError;

pub const MCP_PATH: &str = "/mcp";
pub const SSE_PATH: &str = "/sse";
pub const SSE_MESSAGE_PATH: &str = "/message";

/// Messages a legacy SSE session buffers from the client before `POST /message` waits.
const SSE_INBOX: usize = 32;

/// How much MCP the hub holds open.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bounds one message.
    pub max_body_bytes: usize,
    /// Open sessions at most, both transports together.
    pub max_sessions: usize,
    /// A streamable-HTTP session idle this long is closed (rmcp's keep-alive).
    pub session_idle: Duration,
}

impl From<&Config> for Limits {
    fn from(config: &Config) -> Limits {
        Limits {
            max_body_bytes: config.max_body_bytes,
            max_sessions: config.mcp_max_sessions,
            session_idle: Duration::from_secs(config.mcp_session_idle_secs),
        }
    }
}

/// When a client finds every session slot taken: idle ones close within `session_idle`, but
/// a retry soon is worth it as clients close theirs.
const FULL_RETRY_AFTER_SECS: u64 = 5;

/// The MCP routes, to be put behind the bearer check.
pub fn routes(state: &AppState, limits: &Limits) -> Router<AppState> {
    let hub: Arc<dyn Hub> = Arc::new(state.chat.clone());
    // The Host (and Origin) check against DNS rebinding is the app's, on every route
    // (`app::loopback_names_only`); rmcp's own would cover `/mcp` alone.
    let config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(limits.max_body_bytes)
        .with_cancellation_token(CancellationToken::new())
        .disable_allowed_hosts();
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(limits.session_idle);
    let manager = Arc::new(manager);
    let sse = SseState {
        hub: hub.clone(),
        sessions: Arc::new(Mutex::new(HashMap::new())),
    };
    let open = OpenSessions {
        streamable: manager.clone(),
        sse: sse.sessions.clone(),
        max: limits.max_sessions,
    };
    let owners = Owners {
        by_session: Arc::new(Mutex::new(HashMap::new())),
        manager: manager.clone(),
    };
    let streamable =
        StreamableHttpService::new(move || Ok(McpServer::new(hub.clone())), manager, config);
    let streamable = Router::new()
        .route_service(MCP_PATH, streamable)
        .route_layer(middleware::from_fn_with_state(owners, bind_to_key));
    Router::new()
        .merge(streamable)
        .route(SSE_PATH, get(sse_connect))
        .route(SSE_MESSAGE_PATH, post(sse_message))
        .layer(Extension(sse))
        .route_layer(middleware::from_fn_with_state(open, refuse_when_full))
}

/// Which key opened each streamable-HTTP session. rmcp's session manager knows nothing of keys,
/// so ownership is kept beside it.
#[derive(Clone)]
struct Owners {
    by_session: Arc<Mutex<HashMap<String, String>>>,
    manager: Arc<LocalSessionManager>,
}

/// `/mcp`: a request naming a session passes only for the key that opened it (404 otherwise, as
/// for an unknown session: another key must not learn that it exists, nor read its stream with
/// `Last-Event-ID`, post to it or close it). An `initialize` records its key as the owner of the
/// session it opens. A successful `DELETE` answers 204: rmcp says 202, which the Python SDK
/// reports as a failed termination.
async fn bind_to_key(State(owners): State<Owners>, request: Request, next: Next) -> Response {
    let key = request
        .extensions()
        .get::<Caller>()
        .map(|c| c.key_id.clone())
        .unwrap_or_default();
    let Some(named) = request.headers().get("mcp-session-id") else {
        let response = next.run(request).await;
        if let Some(id) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            let open = owners.manager.sessions.read().await;
            let mut by_session = owners.by_session.lock().expect("owners lock");
            // Sessions closed by rmcp (idle, ended) are forgotten here on the next open.
            by_session.retain(|id, _| open.contains_key(id.as_str()));
            by_session.insert(id.to_string(), key);
        }
        return response;
    };
    let id = named.to_str().unwrap_or_default().to_string();
    let owned = owners
        .by_session
        .lock()
        .expect("owners lock")
        .get(&id)
        .is_some_and(|owner| *owner == key);
    if !owned {
        return error(
            StatusCode::NOT_FOUND,
            "no such MCP session (or it has closed)",
        );
    }
    let deleting = request.method() == Method::DELETE;
    let mut response = next.run(request).await;
    if deleting && response.status().is_success() {
        owners.by_session.lock().expect("owners lock").remove(&id);
        if response.status() == StatusCode::ACCEPTED {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
    }
    response
}

/// The sessions of both transports, counted against one limit.
#[derive(Clone)]
struct OpenSessions {
    streamable: Arc<LocalSessionManager>,
    sse: Arc<Mutex<HashMap<String, SseSession>>>,
    max: usize,
}

impl OpenSessions {
    async fn count(&self) -> usize {
        let sse = self.sse.lock().expect("sessions lock").len();
        self.streamable.sessions.read().await.len() + sse
    }
}

/// Refuses a request that would open a session (`GET /sse`, or a `POST /mcp` without
/// `Mcp-Session-Id`, i.e. an initialize) once `max` are open. Requests of open sessions pass.
/// The count is read, not reserved: opens racing each other can pass the limit by as many as
/// arrive at once, which keeps memory bounded all the same.
async fn refuse_when_full(
    State(open): State<OpenSessions>,
    request: Request,
    next: Next,
) -> Result<Response, ClientError> {
    let path = request.uri().path();
    let opens = (request.method() == Method::GET && path == SSE_PATH)
        || (request.method() == Method::POST
            && path == MCP_PATH
            && !request.headers().contains_key("mcp-session-id"));
    if opens {
        let count = open.count().await;
        if count >= open.max {
            tracing::warn!(
                open = count,
                max = open.max,
                "MCP session refused: the limit is reached"
            );
            return Err(ClientError::new(
                503,
                "capacity_exhausted",
                format!(
                    "the hub holds its maximum of {} open MCP sessions; close idle ones or retry later",
                    open.max
                ),
            )
            .with_retry_after(Some(FULL_RETRY_AFTER_SECS)));
        }
    }
    Ok(next.run(request).await)
}

#[derive(Clone)]
struct SseState {
    hub: Arc<dyn Hub>,
    sessions: Arc<Mutex<HashMap<String, SseSession>>>,
}

struct SseSession {
    /// The key that opened the session; only it may post to it.
    owner: String,
    inbox: mpsc::Sender<ClientJsonRpcMessage>,
}

/// Ends a legacy SSE session when its event stream is dropped (the client went away): the
/// rmcp service stops, cancelling its requests (and their CLI processes).
struct SseGuard {
    sessions: Arc<Mutex<HashMap<String, SseSession>>>,
    id: String,
    ct: CancellationToken,
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.ct.cancel();
        self.sessions
            .lock()
            .expect("sessions lock")
            .remove(&self.id);
        // No session id in logs: with the key, it is what lets a client use the session.
        tracing::debug!("MCP SSE session closed");
    }
}

/// `GET /sse`: opens a session. The first event, `endpoint`, tells where to POST messages.
async fn sse_connect(
    Extension(sse): Extension<SseState>,
    Extension(caller): Extension<Caller>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (inbox, from_client) = mpsc::channel::<ClientJsonRpcMessage>(SSE_INBOX);
    let (to_client, mut outbox) = mpsc::channel(SSE_INBOX);
    sse.sessions.lock().expect("sessions lock").insert(
        id.clone(),
        SseSession {
            owner: caller.key_id.clone(),
            inbox,
        },
    );
    let ct = CancellationToken::new();
    let server = McpServer::new(sse.hub.clone());
    tokio::spawn({
        let ct = ct.clone();
        async move {
            match serve_server_with_ct(server, (to_client, from_client), ct).await {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(e) => tracing::debug!(error = %e, "MCP SSE session ended"),
            }
        }
    });
    let guard = SseGuard {
        sessions: sse.sessions.clone(),
        id: id.clone(),
        ct,
    };
    let endpoint = format!("{SSE_MESSAGE_PATH}?sessionId={id}");
    let events = async_stream::stream! {
        let _guard = guard;
        yield Ok(Event::default().event("endpoint").data(endpoint));
        while let Some(message) = outbox.next().await {
            match serde_json::to_string(&message) {
                Ok(data) => yield Ok(Event::default().event("message").data(data)),
                Err(e) => tracing::warn!(error = %e, "cannot serialise an MCP message"),
            }
        }
    };
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct SessionQuery {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

/// `POST /message?sessionId=…`: one JSON-RPC message for a session; the answer comes on the
/// session's event stream, so this says only 202 Accepted.
async fn sse_message(
    Extension(sse): Extension<SseState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<SessionQuery>,
    body: Bytes,
) -> Response {
    let Some(id) = query.session_id else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing the sessionId query parameter",
        );
    };
    let inbox = {
        let sessions = sse.sessions.lock().expect("sessions lock");
        match sessions.get(&id) {
            // Another key's session is not found either.
            Some(s) if s.owner == caller.key_id => s.inbox.clone(),
            _ => {
                return error(
                    StatusCode::NOT_FOUND,
                    "no such MCP session (or it has closed)",
                );
            }
        }
    };
    let mut message: ClientJsonRpcMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("not a JSON-RPC message of MCP: {e}"),
            );
        }
    };
    match &mut message {
        JsonRpcMessage::Request(r) => {
            r.request.extensions_mut().insert(caller);
        }
        JsonRpcMessage::Notification(n) => {
            n.notification.extensions_mut().insert(caller);
        }
        _ => {}
    }
    let mut inbox = inbox;
    if inbox.send(message).await.is_err() {
        return error(StatusCode::NOT_FOUND, "the MCP session has closed");
    }
    StatusCode::ACCEPTED.into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
    )
        .into_response()
}
