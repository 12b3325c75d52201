//! The fake servers spoken to with a plain HTTP client.

use std::time::Duration;

use fake_models::FakeServer;
use serde_json::{Value, json};

fn anthropic_body(text: &str) -> Value {
    json!({"model": "claude-test", "stream": true, "tools": [], "max_tokens": 100,
           "system": [{"type": "text", "text": "sys"}],
           "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]})
}

fn gemini_body(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [
              {"text": "<session_context>\nctx\n</session_context>"}, {"text": text}]}],
           "systemInstruction": {"role": "user", "parts": [{"text": "sys"}]},
           "tools": [{"functionDeclarations": []}]})
}

/// reqwest in this workspace is built with rustls and no default crypto provider (the gateway
/// picks ring), so a client needs one installed first.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn post(url: String, body: &Value) -> reqwest::Response {
    client().post(url).json(body).send().await.unwrap()
}

/// Text deltas of an Anthropic SSE body.
fn anthropic_text(sse: &str) -> String {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v.pointer("/delta/text")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect()
}

#[tokio::test]
async fn anthropic_echo_stream_and_record() {
    let srv = FakeServer::anthropic().await;
    let resp = post(
        format!("{}/v1/messages?beta=true", srv.base_url),
        &anthropic_body("hi"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sse = resp.text().await.unwrap();
    let events: Vec<&str> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"message_start"));
    assert_eq!(
        &events[events.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(sse.contains(r#""stop_reason":"end_turn""#));
    assert_eq!(anthropic_text(&sse), "echo: hi");

    let reqs = srv.chat_requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].query.as_deref(), Some("beta=true"));
    assert_eq!(reqs[0].system_text(), "sys");
    assert_eq!(reqs[0].last_user_text(), "hi");
    assert_eq!(reqs[0].model().as_deref(), Some("claude-test"));
    srv.clear_requests();
    assert!(srv.requests().is_empty());
}

#[tokio::test]
async fn anthropic_words_reply_and_side_requests() {
    let srv = FakeServer::anthropic().await;
    let sse = post(
        format!("{}/v1/messages", srv.base_url),
        &anthropic_body("[[words:4]]"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(sse.matches("text_delta").count(), 4);
    assert_eq!(anthropic_text(&sse), "word1 word2 word3 word4");

    // A title request: structured output, no tools; directives are ignored.
    let title = json!({"model": "claude-haiku", "max_tokens": 100,
        "system": [{"type": "text", "text": "Return JSON with a single \"title\" field."}],
        "output_config": {"format": {"type": "json_schema", "schema":
            {"type": "object", "properties": {"title": {"type": "string"}}}}},
        "messages": [{"role": "user", "content": "<session>\n[[status:500]]\n</session>"}]});
    let v: Value = post(format!("{}/v1/messages", srv.base_url), &title)
        .await
        .json()
        .await
        .unwrap();
    let text = v
        .pointer("/content/0/text")
        .and_then(Value::as_str)
        .unwrap();
    assert!(
        serde_json::from_str::<Value>(text)
            .unwrap()
            .get("title")
            .is_some()
    );

    let count = post(
        format!("{}/v1/messages/count_tokens", srv.base_url),
        &anthropic_body("x"),
    )
    .await;
    assert_eq!(count.status(), 200);
    assert_eq!(srv.requests().len(), 3);
    assert_eq!(srv.chat_requests().len(), 1);
}

#[tokio::test]
async fn anthropic_errors() {
    let srv = FakeServer::anthropic().await;
    let url = format!("{}/v1/messages", srv.base_url);
    let resp = post(url.clone(), &anthropic_body("x [[status:429]]")).await;
    assert_eq!(resp.status(), 429);
    let h = resp.headers();
    assert_eq!(h["anthropic-ratelimit-unified-status"], "rejected");
    assert_eq!(
        h["anthropic-ratelimit-unified-representative-claim"],
        "five_hour"
    );
    let reset: u64 = h["anthropic-ratelimit-unified-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > 1_700_000_000);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v.pointer("/error/type"), Some(&json!("rate_limit_error")));
    for (status, kind) in [(401, "authentication_error"), (529, "overloaded_error")] {
        let resp = post(
            url.clone(),
            &anthropic_body(&format!("[[status:{status}]]")),
        )
        .await;
        assert_eq!(resp.status().as_u16(), status);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v.pointer("/error/type"), Some(&json!(kind)));
    }
}

#[tokio::test]
async fn drop_and_stall() {
    let srv = FakeServer::anthropic().await;
    let url = format!("{}/v1/messages", srv.base_url);
    let resp = post(url.clone(), &anthropic_body("[[drop]]")).await;
    assert!(
        resp.text().await.is_err(),
        "a dropped stream must fail to complete"
    );

    let mut body = anthropic_body("[[drop]]");
    body["stream"] = json!(false);
    let resp = post(url.clone(), &body).await;
    assert!(
        resp.text().await.is_err(),
        "a dropped answer must fail to complete"
    );

    let mut resp = post(url, &anthropic_body("[[stall]]")).await;
    let mut got = String::new();
    while !got.contains("text_delta") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .unwrap();
        got.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
    let more = tokio::time::timeout(Duration::from_millis(300), resp.chunk()).await;
    assert!(more.is_err(), "a stalled stream must not continue");
}

#[tokio::test]
async fn delay_between_deltas() {
    let srv = FakeServer::gemini().await;
    let url = format!(
        "{}/v1beta/models/m:streamGenerateContent?alt=sse",
        srv.base_url
    );
    let t0 = std::time::Instant::now();
    post(url, &gemini_body("[[words:3]] [[delay-ms:100]]"))
        .await
        .text()
        .await
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn gemini_stream_errors_and_log_endpoint() {
    let srv = FakeServer::gemini().await;
    let base = &srv.base_url;
    let sse = post(
        format!("{base}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
        &gemini_body("hello"),
    )
    .await
    .text()
    .await
    .unwrap();
    let chunks: Vec<Value> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/candidates/0/content/parts/0/text")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(
        text, "echo: hello",
        "the <session_context> part is not echoed"
    );
    assert_eq!(
        chunks.last().unwrap().pointer("/candidates/0/finishReason"),
        Some(&json!("STOP"))
    );
    assert!(
        chunks[0]
            .pointer("/usageMetadata/totalTokenCount")
            .is_some()
    );

    for (status, code, gstatus) in [
        ("429", 429, "RESOURCE_EXHAUSTED"),
        ("401", 401, "UNAUTHENTICATED"),
        ("529", 503, "UNAVAILABLE"),
    ] {
        let resp = post(
            format!("{base}/v1beta/models/m:streamGenerateContent?alt=sse"),
            &gemini_body(&format!("[[status:{status}]]")),
        )
        .await;
        assert_eq!(resp.status().as_u16(), code);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v.pointer("/error/status"), Some(&json!(gstatus)));
    }
    let v: Value = post(
        format!("{base}/v1beta/models/m:countTokens"),
        &gemini_body("x"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(v["totalTokens"].as_u64().unwrap() > 0);

    let reqs = srv.chat_requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[0].model().as_deref(), Some("gemini-2.5-flash"));
    assert_eq!(reqs[0].system_text(), "sys");
    assert_eq!(
        reqs[0].messages(),
        vec![("user".to_string(), "hello".to_string())]
    );

    let log: Value = client()
        .delete(format!("{base}/_fake/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.as_array().unwrap().len(), 5);
    assert_eq!(log[0]["last_user_text"], "hello");
    assert!(srv.requests().is_empty());
}
