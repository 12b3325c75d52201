//! The REST surface: bad input, discovery endpoints, metrics, the CLI environment, shutdown.

use e2e::{Hub, HubOptions, sse_data, user};
use futures::StreamExt;
use serde_json::{Value, json};

fn claude_only(top: &str, claude: &str) -> HubOptions {
    HubOptions::claude_only(claude).with_top(top)
}

async fn post_raw(hub: &Hub, body: &str, content_type: &str) -> (u16, Value) {
    let r = hub
        .http
        .post(hub.url("/v1/chat/completions"))
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_openai_errors_with_the_right_status() {
    let hub = Hub::start_with(claude_only("max_body_bytes = 2048", "warm_processes = 0")).await;

    let (status, body) = post_raw(
        &hub,
        "{\"model\": \"claude\", \"messages\": [",
        "application/json",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("EOF"),
        "{body}"
    );

    let (status, body) = post_raw(
        &hub,
        "{\"model\": \"claude\", \"messages\": 5}",
        "application/json",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages"),
        "{body}"
    );

    let (status, body) = post_raw(&hub, "{}", "text/plain").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Content-Type"),
        "{body}"
    );

    let big = json!({"model": "claude", "messages": [user(&"x".repeat(4096))]}).to_string();
    let (status, body) = post_raw(&hub, &big, "application/json").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "request_too_large");

    let r = hub
        .chat(json!({"model": "gpt-4o", "messages": [user("hi")]}))
        .await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude/sonnet"),
        "{body}"
    );

    let r = hub
        .chat(json!({"model": "claude", "messages": [{"role": "assistant", "content": "x"}]}))
        .await;
    assert_eq!(r.status(), 400);

    let r = hub.http.get(hub.url("/v2/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );

    // Nothing reached a model, and nothing was started for these requests.
    assert!(hub.anthropic.chat_requests().is_empty());
    assert!(hub.cli_pids().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_health_and_metrics() {
    let hub = Hub::start_with(claude_only("", "")).await;
    let models = hub.get_json("/v1/models").await;
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["claude", "claude/sonnet", "claude/opus", "claude/haiku"]
    );

    hub.wait_idle("claude", 1).await;
    let providers = hub.get_json("/v1/providers").await;
    let claude = &providers["data"][0];
    assert_eq!(claude["name"], "claude");
    assert_eq!(claude["kind"], "claude");
    assert_eq!(claude["health"], "ready");
    assert_eq!(claude["pool"]["idle"], 1);
    assert_eq!(claude["limits"]["max_concurrency"], 4);

    assert_eq!(hub.get_json("/health").await["status"], "ok");
    assert_eq!(
        hub.http
            .get(hub.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        hub.http
            .get(hub.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let r = hub
        .chat(json!({"model": "claude", "stream": true, "messages": [user("hi")]}))
        .await;
    assert_eq!(sse_data(r).await.last().unwrap(), "[DONE]");
    let metrics = hub.metrics().await;
    for needle in [
        "llm_mcp_hub_requests_total{outcome=\"ok\",provider=\"claude\"} 1",
        "llm_mcp_hub_request_duration_seconds_count{provider=\"claude\"} 1",
        "llm_mcp_hub_time_to_first_token_seconds_count{provider=\"claude\"} 1",
        "llm_mcp_hub_processes{provider=\"claude\",state=\"idle\"}",
        "llm_mcp_hub_process_spawns_total{provider=\"claude\"}",
    ] {
        assert!(metrics.contains(needle), "missing {needle}:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_api_key_reaches_a_cli() {
    // The harness starts the hub with ANTHROPIC_API_KEY and OPENAI_API_KEY set.
    let hub = Hub::start_with(claude_only("", "")).await;
    hub.wait_idle("claude", 1).await;
    let pids = hub.cli_pids();
    let mut started = 0;
    for pid in pids {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        let names: Vec<&str> = environ
            .split('\0')
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
            .collect();
        for denied in [
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "GEMINI_API_KEY",
            "GOOGLE_API_KEY",
        ] {
            assert!(
                !names.contains(&denied),
                "{denied} reached pid {pid}: {names:?}"
            );
        }
        // The CLI the hub started (not what the CLI itself runs, e.g. git for its context).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let ppid: u32 = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        if ppid == hub.pid() {
            started += 1;
            assert!(names.contains(&"CLAUDE_CODE_OAUTH_TOKEN"), "{names:?}");
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
            assert!(cmdline.contains("--tools=\0"), "{cmdline:?}");
        }
    }
    assert_eq!(started, 1, "one warm claude process");
    // A request runs with debug logs on; neither the login token nor a stripped key is logged.
    let r = hub
        .http
        .post(hub.url("/v1/chat/completions"))
        .json(&json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = hub.log();
    for secret in [
        "test-oauth-token",
        "sk-ant-must-not-leak",
        "sk-must-not-leak",
    ] {
        assert!(!log.contains(secret), "{secret} reached the hub's log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_streams_then_leaves_no_process() {
    let mut hub = Hub::start_with(claude_only("", "")).await;
    hub.wait_idle("claude", 1).await;
    let r = hub
        .chat(json!({"model": "claude", "stream": true,
                     "messages": [user("[[words:15]] [[delay-ms:100]] slow")]}))
        .await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());

    let status = {
        let exit = hub.terminate();
        let rest = async {
            let mut text = String::from_utf8_lossy(&first).into_owned();
            while let Some(chunk) = body.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            }
            text
        };
        let (status, text) = tokio::join!(exit, rest);
        assert!(
            text.contains("word15") && text.contains("[DONE]"),
            "stream cut short: {text}"
        );
        status
    };
    assert!(status.success(), "hub exit: {status:?}");
    // Killed processes take a moment to disappear; a survivor fails after 30 s.
    hub.wait_for_clis("CLI processes must not outlive the hub", |pids| {
        pids.is_empty()
    })
    .await;
    assert!(hub.http.get(hub.url("/healthz")).send().await.is_err());
}

/// Without keys (loopback only), every route answers only loopback Host and Origin names, so a
/// web page cannot reach the hub by DNS rebinding or a cross-origin request; with keys any name
/// is served.
#[tokio::test(flavor = "multi_thread")]
async fn without_keys_only_loopback_host_and_origin_names_are_served() {
    let hub = Hub::start_with(claude_only("", "warm_processes = 0")).await;
    let port = hub.base.rsplit(':').next().unwrap().to_string();
    let send = |method: reqwest::Method, path: &str, host: &str, origin: Option<&str>| {
        let mut r = hub
            .http
            .request(method, hub.url(path))
            .header("host", host)
            .header("accept", "application/json, text/event-stream");
        if let Some(origin) = origin {
            r = r.header("origin", origin);
        }
        r.json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "rebinding", "version": "1"}}}),
        )
        .send()
    };
    let routes = [
        (reqwest::Method::GET, "/v1/models"),
        (reqwest::Method::POST, "/v1/chat/completions"),
        (reqwest::Method::GET, "/v1/sessions"),
        (reqwest::Method::GET, "/sse"),
        (reqwest::Method::POST, "/message?sessionId=x"),
        (reqwest::Method::POST, "/mcp"),
        (reqwest::Method::GET, "/healthz"),
        (reqwest::Method::GET, "/nowhere"),
    ];
    let rebound = format!("evil.example:{port}");
    for (method, path) in &routes {
        let r = send(method.clone(), path, &rebound, None).await.unwrap();
        assert_eq!(r.status(), 403, "{method} {path} with Host {rebound}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "host_not_allowed", "{body}");
        assert_eq!(body["error"]["type"], "permission_error", "{body}");
        let r = send(
            method.clone(),
            path,
            &format!("127.0.0.1:{port}"),
            Some("http://evil.example"),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 403, "{method} {path} with a foreign Origin");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "origin_not_allowed", "{body}");
    }
    for (host, origin) in [
        (format!("localhost:{port}"), None),
        (format!("127.0.0.1:{port}"), Some("http://localhost:3000")),
        (format!("[::1]:{port}"), Some("https://127.0.0.1")),
    ] {
        let r = send(reqwest::Method::GET, "/v1/models", &host, origin)
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "Host {host}, Origin {origin:?}");
    }
    assert!(
        hub.log().contains("not a loopback Host name"),
        "refusals are logged"
    );

    // With keys, the hub is authenticated and may be reached by any name (an ingress, a LAN
    // address).
    let keyed = Hub::start_with(claude_only(
        &e2e::api_key_entry("k", "lmh_host_test_key", None),
        "warm_processes = 0",
    ))
    .await;
    let r = keyed
        .http
        .get(keyed.url("/v1/models"))
        .header("host", "hub.example")
        .header("origin", "https://app.example")
        .bearer_auth("lmh_host_test_key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A CLI that cannot start: clients get a code and a short message, never the path or the
/// CLI's output (every key may read `/v1/providers`); the hub's log has the details.
#[tokio::test(flavor = "multi_thread")]
async fn spawn_failures_reach_clients_without_their_details() {
    let secret = "/nonexistent/secret-dir-4711/claude";
    let hub = Hub::start_with(claude_only(
        &format!(
            "[providers.broken]\nkind = \"claude\"\ncommand = \"{secret}\"\nwarm_processes = 0\n"
        ),
        "warm_processes = 0",
    ))
    .await;
    let r = hub
        .chat(json!({"model": "broken", "messages": [user("hi")]}))
        .await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "provider_unavailable", "{body}");
    assert!(!body.to_string().contains("secret-dir"), "{body}");

    let providers = hub.get_json("/v1/providers").await;
    let broken = providers["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "broken")
        .unwrap()
        .clone();
    assert_eq!(
        broken["last_error"]["code"], "provider_unavailable",
        "{broken}"
    );
    assert!(!providers.to_string().contains("secret-dir"), "{providers}");
    assert!(hub.log().contains(secret), "the details are in the log");
}
