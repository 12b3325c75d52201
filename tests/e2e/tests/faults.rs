//! Faults: stalls, disconnects, kills, usage limits, failed logins, overload, a full pool.
//! Each is produced for real: by the fake model server, by dropping a connection, or by
//! killing the CLI process.

use std::time::Duration;

use e2e::{Hub, HubOptions, error_of, user};
use futures::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

fn claude_only(claude: &str) -> HubOptions {
    HubOptions::claude_only(claude)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_stream_times_out_with_504_and_the_process_is_gone() {
    let hub = Hub::start_with(claude_only("idle_timeout_secs = 6\nmax_concurrency = 1")).await;
    hub.wait_idle("claude", 1).await;
    let warm = hub.cli_pids();
    let (status, body) = error_of(
        hub.chat(json!({"model": "claude", "messages": [user("[[stall]]")]}))
            .await,
    )
    .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "provider_timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude")
    );
    hub.wait_for_clis("the stalled CLI must be killed", |pids| {
        warm.iter().all(|p| !pids.contains(p))
    })
    .await;
    // The pool recovers: a fresh process answers the next request.
    let r = hub
        .chat(json!({"model": "claude", "messages": [user("again")]}))
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_mid_stream_kills_the_process_group() {
    let hub = Hub::start_with(claude_only("max_concurrency = 1")).await;
    hub.wait_idle("claude", 1).await;
    let warm = hub.cli_pids();
    assert!(!warm.is_empty());
    let r = hub
        .chat(json!({"model": "claude", "stream": true,
                     "messages": [user("[[words:200]] [[delay-ms:100]] long")]}))
        .await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("word2") {
        let chunk = body.next().await.expect("stream goes on").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body); // the client hangs up
    hub.wait_for_clis("the CLI of a cancelled request must be killed", |pids| {
        warm.iter().all(|p| !pids.contains(p))
    })
    .await;
    let metrics = hub.metrics().await;
    assert!(
        metrics.contains(
            "llm_mcp_hub_process_retired_total{provider=\"claude\",reason=\"aborted\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_usage_limit_is_a_429_with_its_reset_time_and_is_remembered() {
    let hub = Hub::start_with(claude_only("")).await;
    let r = hub
        .chat(json!({"model": "claude", "messages": [user("[[status:429]]")]}))
        .await;
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = error_of(r).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "usage_limit_reached");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("claude") && message.contains("resets at"),
        "{message}"
    );
    // The fake server's reset is an hour away.
    assert!(
        (3000..=3700).contains(&retry_after),
        "Retry-After {retry_after}"
    );

    // Known limit: the next request fails fast without reaching the model.
    let calls = hub.anthropic.chat_requests().len();
    let (status, _) = error_of(
        hub.chat(json!({"model": "claude", "messages": [user("hi")]}))
            .await,
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(hub.anthropic.chat_requests().len(), calls);
    let providers = hub.get_json("/v1/providers").await;
    let claude = &providers["data"][0];
    assert_eq!(claude["health"], "usage_limited");
    assert!(claude["limited_until"].as_i64().unwrap() > 0);
    assert_eq!(claude["ready_workers"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_login_is_a_503_naming_the_provider() {
    let hub = Hub::start_with(claude_only("")).await;
    let (status, body) = error_of(
        hub.chat(json!({"model": "claude", "messages": [user("[[status:401]]")]}))
            .await,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "provider_not_logged_in");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'claude'")
    );
    let ready = hub.http.get(hub.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "the only provider cannot answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_cli_is_a_502_and_a_fresh_process_serves_the_next_request() {
    let hub = Hub::start_with(claude_only("max_concurrency = 1\nmax_idle = 1")).await;
    hub.wait_idle("claude", 1).await;
    let victim = hub.cli_pids();
    let request = hub.spawn_chat(
        json!({"model": "claude", "messages": [user("[[words:100]] [[delay-ms:100]] x")]}),
        None,
    );
    hub.anthropic
        .wait_for_chat_requests(1, Duration::from_secs(20))
        .await;
    for pid in &victim {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let (status, body) = error_of(request.await.unwrap()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "provider_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("exit") && !message.contains("stderr"),
        "raw CLI detail leaked: {message}"
    );

    let r = hub
        .chat(json!({"model": "claude", "messages": [user("still there?")]}))
        .await;
    assert_eq!(r.status(), 200);
    let metrics = hub.metrics().await;
    assert!(
        metrics.contains("llm_mcp_hub_process_crashes_total{provider=\"claude\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overloaded_upstream_fails_fast_with_502() {
    let hub = Hub::start_with(claude_only("max_upstream_retries = 1")).await;
    let (status, body) = error_of(
        hub.chat(json!({"model": "claude", "messages": [user("[[status:529]]")]}))
            .await,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_error");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_pool_and_queue_answers_429_with_retry_after() {
    let hub = Hub::start_with(claude_only("max_concurrency = 1\nmax_queue = 0")).await;
    hub.wait_idle("claude", 1).await;
    let slow = hub.spawn_chat(
        json!({"model": "claude", "messages": [user("[[words:20]] [[delay-ms:100]] slow")]}),
        None,
    );
    hub.anthropic
        .wait_for_chat_requests(1, Duration::from_secs(20))
        .await;
    let r = hub
        .chat(json!({"model": "claude", "messages": [user("me too")]}))
        .await;
    assert!(r.headers().contains_key("retry-after"));
    let (status, body) = error_of(r).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(slow.await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_breaks_off_is_a_502_not_repeated_text() {
    // The CLI would retry the whole request and print the first deltas again.
    let hub = Hub::start_with(claude_only("")).await;
    let (status, body) = error_of(
        hub.chat(json!({"model": "claude", "messages": [user("[[drop]] [[words:5]]")]}))
            .await,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_error");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_hub_leaves_no_cli_behind() {
    // Nothing of the hub runs after a SIGKILL: its CLIs must go by themselves, the idle ones
    // and one waiting on a model that never answers (it would not notice its stdin closing).
    let hub = Hub::start_with(claude_only("warm_processes = 2\nmax_concurrency = 2")).await;
    hub.wait_idle("claude", 2).await;
    let answering = hub.spawn_chat(
        json!({"model": "claude", "stream": true, "messages": [user("[[stall]]")]}),
        None,
    );
    hub.anthropic
        .wait_for_chat_requests(1, Duration::from_secs(20))
        .await;
    assert!(hub.cli_pids().len() >= 2, "{:?}", hub.cli_pids());
    kill(Pid::from_raw(hub.pid() as i32), Signal::SIGKILL).unwrap();
    hub.wait_for_clis("no CLI may outlive a killed hub", |pids| pids.is_empty())
        .await;
    answering.abort();
}
