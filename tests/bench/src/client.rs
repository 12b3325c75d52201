//! One streaming chat completion through the hub, timed; and the HTTP clients of the bench.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http_body_util::{BodyDataStream, Full};
use hyper::header::CONTENT_TYPE;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::Serialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// Time from sending a request to its first text and to its end.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ttft: Duration,
    pub total: Duration,
}

/// Longest a timed request may take, to its last event.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// `exchange` (a request and the reading of its answer), failed once `REQUEST_TIMEOUT` has
/// passed: no client of a load run waits forever on a stalled answer.
pub async fn bounded<T>(exchange: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no end within {} s", REQUEST_TIMEOUT.as_secs())))
}

/// The client of the timed requests (the load generator's). It shares the cores with what it
/// measures, so it is hyper's own client: reqwest adds URL parsing, a timer and its layers to
/// every request (its CPU per request at 16 clients against a bare axum SSE server, two runs
/// each: 35 – 41 µs against 26 – 27).
pub type LoadClient = Client<HttpConnector, Full<Bytes>>;

pub fn load_client() -> LoadClient {
    let mut connector = HttpConnector::new();
    // As reqwest does: without it, Nagle's algorithm holds a request's small writes.
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector)
}

/// POSTs `body` as JSON with `headers` and gives the `data:` payloads of the answer.
pub async fn post_sse(
    http: &LoadClient,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<BoxStream<'static, Result<String, String>>, String> {
    let mut request = hyper::Request::post(url).header(CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    let response = http
        .request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    // The hub's own SSE decoder (the one its router and mcp-stdio use).
    Ok(llm_mcp_hub::wire::sse_data(BodyDataStream::new(
        response.into_body(),
    )))
}

/// The client of everything else (health, metrics, status, non-streamed requests).
pub fn http_client() -> reqwest::Client {
    llm_mcp_hub::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(300))
        .build()
        .expect("HTTP client")
}

/// POSTs a streaming request and reads it to `[DONE]`. `ttft` is the time to the first chunk
/// with non-empty `delta.content`; `total` the time to `[DONE]`. Measured from `start`.
pub async fn chat_stream(
    http: &LoadClient,
    base: &str,
    model: &str,
    text: &str,
    start: Instant,
) -> Result<Timing, String> {
    let body = StreamRequest {
        model,
        stream: true,
        messages: [UserMessage {
            role: "user",
            content: text,
        }],
    };
    time_stream(http, base, serde_json::to_vec(&body).expect("JSON"), start).await
}

/// `chat_stream` with the whole request body given (tools, several messages…).
pub async fn chat_stream_body(
    http: &LoadClient,
    base: &str,
    body: &Value,
    start: Instant,
) -> Result<Timing, String> {
    time_stream(http, base, serde_json::to_vec(body).expect("JSON"), start).await
}

// The load generator shares the cores with what it measures: requests and chunks are typed, so
// it builds no JSON tree per request.
#[derive(Serialize)]
struct StreamRequest<'a> {
    model: &'a str,
    stream: bool,
    messages: [UserMessage<'a>; 1],
}

#[derive(Serialize)]
struct UserMessage<'a> {
    role: &'static str,
    content: &'a str,
}

/// What the timing reads of a chunk.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default, borrow)]
    delta: ChunkDelta<'a>,
}

#[derive(Deserialize, Default)]
struct ChunkDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

async fn time_stream(
    http: &LoadClient,
    base: &str,
    body: Vec<u8>,
    start: Instant,
) -> Result<Timing, String> {
    let url = format!("{base}/v1/chat/completions");
    bounded(read_timed(http, &url, body, start)).await
}

async fn read_timed(
    http: &LoadClient,
    url: &str,
    body: Vec<u8>,
    start: Instant,
) -> Result<Timing, String> {
    let mut events = post_sse(http, url, &[], body).await?;
    let mut ttft = None;
    while let Some(data) = events.next().await {
        let data = data.map_err(|e| format!("body: {e}"))?;
        let data = data.as_str();
        let data = data.trim();
        if data == "[DONE]" {
            return match ttft {
                Some(ttft) => Ok(Timing {
                    ttft,
                    total: start.elapsed(),
                }),
                None => Err("no text before [DONE]".into()),
            };
        }
        if ttft.is_none() {
            let chunk: Chunk = serde_json::from_str(data).map_err(|e| format!("chunk: {e}"))?;
            if chunk.error.is_some() {
                return Err("error event".into());
            }
            let content = chunk
                .choices
                .first()
                .and_then(|c| c.delta.content.as_deref());
            if content.is_some_and(|c| !c.is_empty()) {
                ttft = Some(start.elapsed());
            }
        } else if data.contains("\"error\"") {
            return Err("error event".into());
        }
    }
    Err("stream ended without [DONE]".into())
}
