//! The HTTP servers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::directives::{Directives, parse_directives, reply_deltas};
use crate::record::{RecordedRequest, Vendor};

pub(crate) type Log = Arc<Mutex<Vec<RecordedRequest>>>;

/// Streamed answers open now, and those whose client went away before their end (a CLI killed
/// mid-answer), in this process: `GET /_fake/streams`, for tests outside the process.
static STREAMS_OPEN: AtomicUsize = AtomicUsize::new(0);
static STREAMS_CUT: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone)]
struct AppState {
    vendor: Vendor,
    log: Log,
    forced: Forced,
    by_token: ForcedByToken,
}

/// Directives for the requests of one account only, keyed by the bearer token they carry (set
/// over HTTP by processes outside the test: `PUT /_fake/force?token=T`).
type ForcedByToken = Arc<Mutex<HashMap<String, String>>>;

/// Directives applied to every conversation request, as if each carried them (see
/// [`FakeServer::force`]).
pub(crate) type Forced = Arc<Mutex<Option<String>>>;

/// A fake model server listening on 127.0.0.1. Stops when dropped.
pub struct FakeServer {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// Which API it imitates.
    pub vendor: Vendor,
    log: Log,
    forced: Forced,
    task: JoinHandle<()>,
    /// The fake Google's accounts and calls ([`FakeServer::google`]).
    pub(crate) google: Option<Arc<crate::google::Google>>,
}

impl FakeServer {
    /// A fake Anthropic Messages API on a free port.
    pub async fn anthropic() -> FakeServer {
        Self::start(Vendor::Anthropic, 0)
            .await
            .expect("bind 127.0.0.1:0")
    }

    /// A fake Gemini API on a free port.
    pub async fn gemini() -> FakeServer {
        Self::start(Vendor::Gemini, 0)
            .await
            .expect("bind 127.0.0.1:0")
    }

    /// A fake server for `vendor` on 127.0.0.1:`port` (`0` = a free port).
    pub async fn start(vendor: Vendor, port: u16) -> std::io::Result<FakeServer> {
        Self::start_on(
            vendor,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        )
        .await
    }

    /// A fake server for `vendor` on `addr` (another address than loopback: for CLIs in pods,
    /// which reach the host on their bridge's address).
    pub async fn start_on(vendor: Vendor, addr: SocketAddr) -> std::io::Result<FakeServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let log: Log = Arc::default();
        let forced: Forced = Arc::default();
        let state = AppState {
            vendor,
            log: log.clone(),
            forced: forced.clone(),
            by_token: ForcedByToken::default(),
        };
        let app = Router::new().fallback(handle).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeServer::assemble(
            format!("http://{addr}"),
            addr,
            vendor,
            log,
            forced,
            task,
            None,
        ))
    }

    pub(crate) fn assemble(
        base_url: String,
        addr: SocketAddr,
        vendor: Vendor,
        log: Log,
        forced: Forced,
        task: JoinHandle<()>,
        google: Option<Arc<crate::google::Google>>,
    ) -> FakeServer {
        FakeServer {
            base_url,
            addr,
            vendor,
            log,
            forced,
            task,
            google,
        }
    }

    /// Scripts every later conversation request as if its text carried `directives` (e.g.
    /// `"[[status:429]]"`: this server's account is out of its usage window), until called
    /// with `None`. For faults that belong to a server rather than to one request.
    pub fn force(&self, directives: Option<&str>) {
        *self.forced.lock().unwrap() = directives.map(String::from);
    }

    /// Every request that reached the server, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.lock().unwrap().clone()
    }

    /// The conversation requests only (see [`RecordedRequest::is_side_request`]).
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| !r.is_side_request())
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Waits until at least `n` chat requests were recorded, or `timeout` passed; returns
    /// the chat requests seen so far either way.
    pub async fn wait_for_chat_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let reqs = self.chat_requests();
            if reqs.len() >= n || tokio::time::Instant::now() >= deadline {
                return reqs;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET /_fake/requests` (`DELETE` also clears it): the log, for processes outside the test.
pub(crate) fn log_response(log: &Log, method: &axum::http::Method) -> Response {
    let mut log = log.lock().unwrap();
    let list: Vec<Value> = log.iter().map(RecordedRequest::to_json).collect();
    if method == axum::http::Method::DELETE {
        log.clear();
    }
    json_response(StatusCode::OK, Value::Array(list))
}

/// Headers as recorded: in arrival order, names lower-case, values lossily decoded.
pub(crate) fn header_pairs(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into(),
            )
        })
        .collect()
}

async fn handle(State(st): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if parts.uri.path() == "/_fake/requests" {
        return log_response(&st.log, &parts.method);
    }
    if parts.uri.path() == "/_fake/streams" {
        return json_response(
            StatusCode::OK,
            json!({"open": STREAMS_OPEN.load(Ordering::SeqCst), "cut": STREAMS_CUT.load(Ordering::SeqCst)}),
        );
    }
    let bytes = to_bytes(body, 64 << 20).await.unwrap_or_default();
    if parts.uri.path() == "/_fake/force" {
        return force_response(&st.by_token, &parts, &bytes);
    }
    let rec = RecordedRequest {
        vendor: st.vendor,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(String::from),
        headers: header_pairs(&parts.headers),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    st.log.lock().unwrap().push(rec.clone());
    let token = bearer(&rec);
    let by_token = token.and_then(|t| st.by_token.lock().unwrap().get(t).cloned());
    let forced = by_token.or_else(|| st.forced.lock().unwrap().clone());
    match st.vendor {
        Vendor::Anthropic => anthropic(&rec, forced.as_deref()),
        Vendor::Gemini => gemini(&rec, forced.as_deref()),
    }
}

fn bearer(rec: &RecordedRequest) -> Option<&str> {
    rec.header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// `PUT /_fake/force?token=T` with directives as the body scripts every later conversation
/// request that carries token `T` (one account out of its usage window, say); `DELETE` ends it.
fn force_response(
    by_token: &ForcedByToken,
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Response {
    let token = parts
        .uri
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("token="));
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "token= is needed"}),
        );
    };
    let mut map = by_token.lock().unwrap();
    match parts.method {
        axum::http::Method::PUT => {
            map.insert(token.to_owned(), String::from_utf8_lossy(body).into_owned());
        }
        axum::http::Method::DELETE => {
            map.remove(token);
        }
        _ => return json_response(StatusCode::METHOD_NOT_ALLOWED, json!({})),
    }
    json_response(StatusCode::OK, json!({"forced": map.len()}))
}

/// Rough token estimate used for the fake usage numbers.
fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

fn prompt_chars(rec: &RecordedRequest) -> usize {
    rec.system_text().len() + rec.messages().iter().map(|(_, t)| t.len()).sum::<usize>()
}

/// What to stream: directives (ignored for side requests) and the deltas.
fn plan(rec: &RecordedRequest, forced: Option<&str>) -> (Directives, Vec<String>) {
    let text = rec.last_user_text();
    let d = if rec.is_side_request() {
        Directives::default()
    } else {
        let mut d = parse_directives(&format!("{text}{}", forced.unwrap_or_default()));
        // A model that already has its tools' results in the prompt (a conversation rendered
        // as text, `<tool_result …>`) answers instead of calling them again.
        if text.contains("<tool_result") {
            d.tools.clear();
        }
        d
    };
    let deltas = reply_deltas(&text, &d);
    (d, deltas)
}

pub(crate) fn json_response(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

pub(crate) fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Streams `head`, then `deltas` (with `delay` between them), then `tail`. With `stall`
/// or `drop`, stops after `head` and the first of `cut_deltas`, then hangs or aborts.
struct StreamPlan {
    head: Vec<Bytes>,
    deltas: Vec<Bytes>,
    cut_first: Bytes,
    tail: Vec<Bytes>,
    delay: Option<Duration>,
    stall: bool,
    drop: bool,
}

/// Sends the plan's parts; false when the client went away before the end.
async fn feed(p: StreamPlan, tx: &mpsc::Sender<Result<Bytes, std::io::Error>>) -> bool {
    for b in p.head {
        if tx.send(Ok(b)).await.is_err() {
            return false;
        }
    }
    if p.stall || p.drop {
        if tx.send(Ok(p.cut_first)).await.is_err() {
            return false;
        }
        if p.drop {
            // Let the delta reach the client before the connection is aborted.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = tx.send(Err(std::io::Error::other("fake drop"))).await;
            return true;
        }
        // Hold the stream open until the client goes away.
        tx.closed().await;
        return false;
    }
    for (i, b) in p.deltas.into_iter().enumerate() {
        if i > 0
            && let Some(d) = p.delay
        {
            tokio::time::sleep(d).await;
        }
        if tx.send(Ok(b)).await.is_err() {
            return false;
        }
    }
    for b in p.tail {
        if tx.send(Ok(b)).await.is_err() {
            return false;
        }
    }
    true
}

fn sse_response(p: StreamPlan) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        STREAMS_OPEN.fetch_add(1, Ordering::SeqCst);
        if !feed(p, &tx).await {
            STREAMS_CUT.fetch_add(1, Ordering::SeqCst);
        }
        STREAMS_OPEN.fetch_sub(1, Ordering::SeqCst);
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// A non-streaming answer that never completes: the headers and an opening `{`, then the
/// body stalls until the client goes away (`stall`) or the connection is aborted.
fn broken_json_response(stall: bool) -> Response {
    let mut resp = sse_response(StreamPlan {
        head: vec![],
        deltas: vec![],
        cut_first: Bytes::from_static(b"{"),
        tail: vec![],
        delay: None,
        stall,
        drop: !stall,
    });
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

// ---------------------------------------------------------------- Anthropic

fn anthropic(rec: &RecordedRequest, forced: Option<&str>) -> Response {
    match (rec.method.as_str(), rec.path.as_str()) {
        ("POST", "/v1/messages") => anthropic_messages(rec, forced),
        ("POST", "/v1/messages/count_tokens") => json_response(
            StatusCode::OK,
            json!({"input_tokens": tokens(prompt_chars(rec))}),
        ),
        _ => anthropic_error(404, "not_found_error", "Not found", None),
    }
}

fn anthropic_error(
    status: u16,
    kind: &str,
    message: &str,
    extra: Option<Vec<(&'static str, String)>>,
) -> Response {
    let mut resp = json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"type": "error", "error": {"type": kind, "message": message},
               "request_id": "req_fake"}),
    );
    for (k, v) in extra.unwrap_or_default() {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

fn anthropic_status(status: u16, reset_in: Option<u64>) -> Response {
    match status {
        429 => {
            let reset_in = reset_in.unwrap_or(3600);
            let reset = (now_epoch() + reset_in).to_string();
            anthropic_error(
                429,
                "rate_limit_error",
                "This request would exceed your account's rate limit. Please try again later.",
                Some(vec![
                    ("anthropic-ratelimit-unified-status", "rejected".into()),
                    ("anthropic-ratelimit-unified-reset", reset),
                    (
                        "anthropic-ratelimit-unified-representative-claim",
                        "five_hour".into(),
                    ),
                    ("retry-after", reset_in.to_string()),
                ]),
            )
        }
        401 => anthropic_error(401, "authentication_error", "Invalid bearer token", None),
        403 => anthropic_error(403, "permission_error", "Forbidden", None),
        400 => anthropic_error(400, "invalid_request_error", "Bad request", None),
        529 => anthropic_error(529, "overloaded_error", "Overloaded", None),
        s => anthropic_error(s, "api_error", "Internal server error", None),
    }
}

fn anthropic_messages(rec: &RecordedRequest, forced: Option<&str>) -> Response {
    let (d, mut deltas) = plan(rec, forced);
    if let Some(s) = d.status {
        return anthropic_status(s, d.reset_in);
    }
    let results = rec.last_tool_results();
    if !results.is_empty() {
        let next = crate::directives::parse_directives(&results.join("\n"));
        if !next.tools.is_empty() && rec.is_streaming() {
            return anthropic_tool_use(rec, &next.tools);
        }
        deltas = vec![format!("tool result: {}", results.join(" | "))];
    } else if !d.tools.is_empty() && rec.is_streaming() {
        return anthropic_tool_use(rec, &d.tools);
    }
    if let Some(schema) = rec.output_schema() {
        deltas = vec![json_answer(schema)];
    }
    let model = rec.model().unwrap_or_else(|| "claude-fake".into());
    let id = format!("msg_fake{:x}", now_nanos());
    let input_tokens = tokens(prompt_chars(rec));
    let output_tokens = if d.words.is_some() {
        deltas.len() as u64
    } else {
        tokens(deltas.concat().len())
    };
    if !rec.is_streaming() {
        if d.stall || d.drop {
            return broken_json_response(d.stall);
        }
        return json_response(
            StatusCode::OK,
            json!({"id": id, "type": "message", "role": "assistant", "model": model,
                   "content": [{"type": "text", "text": deltas.concat()}],
                   "stop_reason": "end_turn", "stop_sequence": null,
                   "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}),
        );
    }
    let ev = |name: &str, data: Value| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let head = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": id, "type": "message",
                "role": "assistant", "model": model, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": input_tokens,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    let delta = |t: &str| {
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": t}}),
        )
    };
    let cut_first = delta(&deltas[0]);
    let tail = vec![
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        ev(
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ];
    let mut resp = sse_response(StreamPlan {
        head,
        deltas: deltas.iter().map(|t| delta(t)).collect(),
        cut_first,
        tail,
        delay: d.delay,
        stall: d.stall,
        drop: d.drop,
    });
    resp.headers_mut()
        .insert("request-id", HeaderValue::from_static("req_fake"));
    resp
}

/// A streamed answer that asks for tool calls, one `tool_use` block each.
fn anthropic_tool_use(rec: &RecordedRequest, calls: &[(String, String)]) -> Response {
    let model = rec.model().unwrap_or_else(|| "claude-fake".into());
    let ev = |n: &str, data: Value| Bytes::from(format!("event: {n}\ndata: {data}\n\n"));
    let mut frames = vec![ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": format!("msg_tool{:x}", now_nanos()),
            "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 1}}}),
    )];
    for (index, (name, input)) in calls.iter().enumerate() {
        frames.push(ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block":
                {"type": "tool_use", "id": format!("toolu_fake{:x}{index}", now_nanos()), "name": name, "input": {}}}),
        ));
        frames.push(ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
                   "delta": {"type": "input_json_delta", "partial_json": input}}),
        ));
        frames.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    frames.push(ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
               "usage": {"output_tokens": 5}}),
    ));
    frames.push(ev("message_stop", json!({"type": "message_stop"})));
    sse_response(StreamPlan {
        head: vec![],
        cut_first: frames[0].clone(),
        deltas: frames,
        tail: vec![],
        delay: None,
        stall: false,
        drop: false,
    })
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- Gemini

pub(crate) fn gemini_error(status: u16, gstatus: &str, message: &str) -> Response {
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"error": {"code": status, "message": message, "status": gstatus}}),
    )
}

fn gemini_status(status: u16) -> Response {
    match status {
        429 => gemini_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        ),
        401 => gemini_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ),
        403 => gemini_error(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
        ),
        400 => gemini_error(
            400,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
        ),
        503 | 529 => gemini_error(
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
        ),
        s => gemini_error(s, "INTERNAL", "An internal error has occurred."),
    }
}

pub(crate) fn gemini(rec: &RecordedRequest, forced: Option<&str>) -> Response {
    if rec.method != "POST" {
        return gemini_error(404, "NOT_FOUND", "Not found");
    }
    match rec.gemini_method() {
        Some("streamGenerateContent" | "generateContent") => gemini_generate(rec, forced),
        Some("countTokens") => json_response(
            StatusCode::OK,
            json!({"totalTokens": tokens(prompt_chars(rec))}),
        ),
        Some("embedContent") => json_response(
            StatusCode::OK,
            json!({"embedding": {"values": [0.0, 0.0, 0.0]}}),
        ),
        _ => gemini_error(404, "NOT_FOUND", "Not found"),
    }
}

fn gemini_generate(rec: &RecordedRequest, forced: Option<&str>) -> Response {
    let (d, mut deltas) = plan(rec, forced);
    if let Some(s) = d.status {
        return gemini_status(s);
    }
    let model = rec.model().unwrap_or_else(|| "gemini-fake".into());
    let results = rec.last_tool_results();
    let mut calls = d.tools.clone();
    if !results.is_empty() {
        calls = crate::directives::parse_directives(&results.join("\n")).tools;
        deltas = vec![format!("tool result: {}", results.join(" | "))];
    }
    if !calls.is_empty() {
        let parts: Vec<Value> = calls
            .iter()
            .map(|(name, input)| {
                let args: Value = serde_json::from_str(input).unwrap_or_else(|_| json!({}));
                json!({"functionCall": {"name": name, "args": args}})
            })
            .collect();
        let call = json!({"candidates": [{"content": {"role": "model", "parts": parts},
            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
            "modelVersion": model});
        if !rec.is_streaming() {
            return json_response(StatusCode::OK, call);
        }
        let frame = Bytes::from(format!("data: {call}\r\n\r\n"));
        return sse_response(StreamPlan {
            head: vec![],
            deltas: vec![frame.clone()],
            cut_first: frame,
            tail: vec![],
            delay: None,
            stall: false,
            drop: false,
        });
    }
    // Helper calls that ask for JSON (next-speaker check, model routing) get a JSON answer.
    if let Some(schema) = rec.output_schema() {
        deltas = vec![json_answer(schema)];
    }
    let prompt = tokens(prompt_chars(rec));
    let output = if d.words.is_some() {
        deltas.len() as u64
    } else {
        tokens(deltas.concat().len())
    };
    let id = format!("fake{:x}", now_nanos());
    let chunk = |text: &str, finish: bool| -> Value {
        let mut cand = json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
        if finish {
            cand["finishReason"] = json!("STOP");
        }
        json!({"candidates": [cand],
               "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": output,
                                 "totalTokenCount": prompt + output},
               "modelVersion": model, "responseId": id})
    };
    if !rec.is_streaming() {
        if d.stall || d.drop {
            return broken_json_response(d.stall);
        }
        return json_response(StatusCode::OK, chunk(&deltas.concat(), true));
    }
    let sse = |v: Value| Bytes::from(format!("data: {v}\r\n\r\n"));
    let n = deltas.len();
    let frames = deltas
        .iter()
        .enumerate()
        .map(|(i, t)| sse(chunk(t, i + 1 == n)))
        .collect();
    sse_response(StreamPlan {
        head: vec![],
        deltas: frames,
        cut_first: sse(chunk(&deltas[0], false)),
        tail: vec![],
        delay: d.delay,
        stall: d.stall,
        drop: d.drop,
    })
}

/// A plausible JSON answer for the CLIs' structured helper calls (claude's session title,
/// gemini's next-speaker check and model router); `{}` for unknown schemas.
fn json_answer(schema: &Value) -> String {
    let props = schema.get("properties").cloned().unwrap_or(Value::Null);
    if props.get("title").is_some() {
        return json!({"title": "Fake session title"}).to_string();
    }
    if props.get("next_speaker").is_some() {
        return json!({"reasoning": "The model answered; the user speaks next.",
                      "next_speaker": "user"})
        .to_string();
    }
    if props.get("model_choice").is_some() {
        return json!({"reasoning": "simple", "model_choice": "flash"}).to_string();
    }
    "{}".to_string()
}
