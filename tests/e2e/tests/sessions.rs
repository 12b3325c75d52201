//! Sessions and hub keys through REST: conversations across requests, isolation between keys,
//! expiry, concurrency, failed turns, limits.

use std::time::Duration;

use e2e::{Hub, HubOptions, api_key_entry, message_texts, sse_data, user};
use serde_json::{Value, json};

const KEY_A: &str = "lmh_test_key_alpha";
const KEY_B: &str = "lmh_test_key_bravo";
const KEY_GEMINI_ONLY: &str = "lmh_test_key_gemini";

fn options(top: &str, claude: &str) -> HubOptions {
    HubOptions::claude_only(claude).with_top(top)
}

fn keys() -> String {
    [
        api_key_entry("alpha", KEY_A, None),
        api_key_entry("bravo", KEY_B, None),
        api_key_entry("gem", KEY_GEMINI_ONLY, Some(&["gemini"])),
    ]
    .join("")
}

fn keyed() -> HubOptions {
    options(&keys(), "")
}

async fn chat(
    hub: &Hub,
    key: Option<&str>,
    session: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = hub.http.post(hub.url("/v1/chat/completions")).json(&body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(session) = session {
        req = req.header("X-Session-ID", session);
    }
    req.send().await.unwrap()
}

async fn get(hub: &Hub, key: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = hub.http.get(hub.url(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn session_of(r: &reqwest::Response) -> String {
    r.headers()["x-session-id"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_continues_with_only_the_new_message() {
    let hub = Hub::start_with(options("", "")).await;
    let first = chat(
        &hub,
        None,
        None,
        json!({"model": "claude", "messages": [
        {"role": "system", "content": "You are terse."}, user("my name is Ada")]}),
    )
    .await;
    assert_eq!(first.status(), 200);
    let id = session_of(&first);
    assert_eq!(id.len(), 22, "128-bit URL-safe id: {id}");

    let second = chat(
        &hub,
        None,
        Some(&id),
        json!({"model": "claude", "messages": [user("what is my name?")]}),
    )
    .await;
    assert_eq!(second.status(), 200);
    assert_eq!(session_of(&second), id);

    let sent = hub.anthropic.chat_requests();
    let prompt = sent[1].last_user_text();
    assert!(
        prompt.contains("my name is Ada") && prompt.contains("echo: my name is Ada"),
        "{prompt}"
    );
    assert!(prompt.ends_with("what is my name?"), "{prompt}");
    // The conversation's system prompt carries over to turns that send none.
    assert!(
        sent[1]
            .system_blocks()
            .contains(&"You are terse.".to_string())
    );

    let (status, session) = get(&hub, None, &format!("/v1/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(session["id"], id.as_str());
    assert_eq!(session["provider"], "claude");
    assert_eq!(session["model"], "sonnet");
    let roles: Vec<&str> = session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    // The fake model echoes its whole prompt, earlier turns included.
    let reply = session["messages"][3]["content"].as_str().unwrap();
    assert!(
        reply.starts_with("echo: ") && reply.ends_with("what is my name?"),
        "{reply}"
    );
    assert_eq!(session["messages"][2]["content"], "what is my name?");
    let (created, expires) = (
        session["created_at"].as_i64().unwrap(),
        session["expires_at"].as_i64().unwrap(),
    );
    assert!(
        (3590..=3610).contains(&(expires - created)),
        "default TTL is 1 h: {session}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_that_resend_everything_are_not_duplicated() {
    let hub = Hub::start_with(options("", "")).await;
    let first = chat(
        &hub,
        None,
        None,
        json!({"model": "claude", "messages": [user("one")]}),
    )
    .await;
    let id = session_of(&first);
    let reply = first.json::<Value>().await.unwrap()["choices"][0]["message"]["content"].clone();
    let r = chat(
        &hub,
        None,
        Some(&id),
        json!({"model": "claude", "messages": [
        user("one"), {"role": "assistant", "content": reply}, user("two")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, session) = get(&hub, None, &format!("/v1/sessions/{id}")).await;
    assert_eq!(
        session["messages"].as_array().unwrap().len(),
        4,
        "{session}"
    );
    let prompt = hub.anthropic.chat_requests()[1].last_user_text();
    assert_eq!(
        prompt.matches("<user>\none\n</user>").count(),
        1,
        "{prompt}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_responses_carry_the_session_header() {
    let hub = Hub::start_with(options("", "")).await;
    let r = chat(
        &hub,
        None,
        Some("my-own-session-1"),
        json!({"model": "claude", "stream": true, "messages": [user("hi")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(session_of(&r), "my-own-session-1");
    assert_eq!(sse_data(r).await.last().unwrap(), "[DONE]");
    let (status, session) = get(&hub, None, "/v1/sessions/my-own-session-1").await;
    assert_eq!(status, 200);
    assert_eq!(session["messages"].as_array().unwrap().len(), 2);

    let r = chat(
        &hub,
        None,
        Some("bad id!"),
        json!({"model": "claude", "messages": [user("hi")]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_session_id"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_required_and_sessions_belong_to_their_key() {
    let hub = Hub::start_with(keyed()).await;
    let r = chat(
        &hub,
        None,
        None,
        json!({"model": "claude", "messages": [user("hi")]}),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_api_key"
    );
    let r = chat(
        &hub,
        Some("lmh_wrong"),
        None,
        json!({"model": "claude", "messages": [user("hi")]}),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(get(&hub, None, "/v1/models").await.0, 401);
    // Probes and scrapers need no key.
    assert_eq!(
        hub.http
            .get(hub.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let r = chat(
        &hub,
        Some(KEY_GEMINI_ONLY),
        None,
        json!({"model": "claude", "messages": [user("hi")]}),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "provider_not_allowed"
    );

    let r = chat(
        &hub,
        Some(KEY_A),
        None,
        json!({"model": "claude", "messages": [user("alpha's secret")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let id = session_of(&r);
    let path = format!("/v1/sessions/{id}");
    assert_eq!(get(&hub, Some(KEY_A), &path).await.0, 200);
    // Another key sees nothing: 404, not 403, so it cannot learn the session exists.
    assert_eq!(get(&hub, Some(KEY_B), &path).await.0, 404);
    // (Chatting with that id gives the other key a session of its own: see
    // `a_session_id_names_one_session_per_key`.)
    let r = hub
        .http
        .delete(hub.url(&path))
        .bearer_auth(KEY_B)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (_, list) = get(&hub, Some(KEY_B), "/v1/sessions").await;
    assert_eq!(list["data"], json!([]));
    let (_, list) = get(&hub, Some(KEY_A), "/v1/sessions").await;
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert_eq!(list["has_more"], false);
    assert!(!hub.log().contains(KEY_A), "a key reached the log");

    // The owner deletes: 204, then 404.
    let r = hub
        .http
        .delete(hub.url(&path))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&hub, Some(KEY_A), &path).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_id_names_one_session_per_key() {
    one_session_per_key(keyed()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_id_names_one_session_per_key_in_redis() {
    let redis = e2e::redis::RedisServer::start().await;
    let top = format!("redis_url = \"{}\"\n{}", redis.url, keys());
    one_session_per_key(options(&top, "")).await;
}

/// Each key has its own namespace of session ids: another key using the same (client-chosen)
/// id neither learns the session exists, nor reads, squats or deletes it.
async fn one_session_per_key(options: HubOptions) {
    let hub = Hub::start_with(options).await;
    let id = "chosen-by-alpha";
    let path = format!("/v1/sessions/{id}");
    let r = chat(
        &hub,
        Some(KEY_A),
        Some(id),
        json!({"model": "claude", "messages": [user("alpha's secret")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    // The same id from another key is a new session of that key's: 200, not a 404 that would
    // say the id is taken.
    let r = chat(
        &hub,
        Some(KEY_B),
        Some(id),
        json!({"model": "claude", "messages": [user("bravo here")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(session_of(&r), id);
    let body: Value = r.json().await.unwrap();
    let reply = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!reply.contains("alpha's secret"), "{reply}");
    let (status, theirs) = get(&hub, Some(KEY_B), &path).await;
    assert_eq!(status, 200);
    assert_eq!(message_texts(&theirs)[0], "bravo here");
    assert_eq!(message_texts(&theirs).len(), 2);
    // The owner's session is as it was.
    let (status, mine) = get(&hub, Some(KEY_A), &path).await;
    assert_eq!(status, 200);
    assert_eq!(message_texts(&mine)[0], "alpha's secret");
    assert_eq!(message_texts(&mine).len(), 2);
    // Deleting one leaves the other.
    let r = hub
        .http
        .delete(hub.url(&path))
        .bearer_auth(KEY_B)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&hub, Some(KEY_A), &path).await.0, 200);
    assert_eq!(get(&hub, Some(KEY_B), &path).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_expire_after_their_ttl() {
    expire_and_count(
        options("session_ttl_secs = 1\nsession_sweep_secs = 1", ""),
        "memory",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_in_redis_expire_after_their_ttl() {
    let redis = e2e::redis::RedisServer::start().await;
    let top = format!(
        "session_ttl_secs = 1\nsession_sweep_secs = 1\nredis_url = \"{}\"",
        redis.url
    );
    expire_and_count(options(&top, ""), "redis").await;
}

/// A session is gone once its TTL has run out, and the sweep counts it once.
async fn expire_and_count(options: HubOptions, store: &str) {
    let hub = Hub::start_with(options).await;
    let r = chat(
        &hub,
        None,
        None,
        json!({"model": "claude", "messages": [user("hi")]}),
    )
    .await;
    let id = session_of(&r);
    assert_eq!(get(&hub, None, &format!("/v1/sessions/{id}")).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(&hub, None, &format!("/v1/sessions/{id}")).await.0, 404);
    let counted = format!("llm_mcp_hub_sessions_expired_total{{store=\"{store}\"}} 1");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = hub.metrics().await;
        if metrics.contains(&counted) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{counted} not in\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_turns_on_one_session_get_409() {
    let hub = Hub::start_with(options("session_busy_wait_ms = 300", "")).await;
    let r = chat(
        &hub,
        None,
        Some("busy-session-1"),
        json!({"model": "claude", "messages": [user("start")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let slow = hub.spawn_chat(
        json!({"model": "claude", "messages": [user("[[words:20]] [[delay-ms:100]] slow")]}),
        Some("busy-session-1"),
    );
    hub.anthropic
        .wait_for_chat_requests(2, Duration::from_secs(20))
        .await;
    let r = chat(
        &hub,
        None,
        Some("busy-session-1"),
        json!({"model": "claude", "messages": [user("me too")]}),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "session_busy"
    );
    assert_eq!(slow.await.unwrap().status(), 200);
    let (_, session) = get(&hub, None, "/v1/sessions/busy-session-1").await;
    assert_eq!(
        session["messages"].as_array().unwrap().len(),
        4,
        "turns interleaved: {session}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_or_cancelled_turn_leaves_the_session_as_it_was() {
    let hub = Hub::start_with(options("", "idle_timeout_secs = 6")).await;
    let r = chat(
        &hub,
        None,
        Some("keep-me-intact"),
        json!({"model": "claude", "messages": [user("first")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = chat(
        &hub,
        None,
        Some("keep-me-intact"),
        json!({"model": "claude", "messages": [user("[[stall]]")]}),
    )
    .await;
    assert_eq!(r.status(), 504);
    let r = chat(
        &hub,
        None,
        Some("never-created"),
        json!({"model": "claude", "messages": [user("[[status:529]]")]}),
    )
    .await;
    assert!(r.status().is_server_error());
    assert_eq!(get(&hub, None, "/v1/sessions/never-created").await.0, 404);
    // A client that hangs up mid-stream stores nothing either.
    let r = chat(
        &hub,
        None,
        Some("keep-me-intact"),
        json!({"model": "claude", "stream": true,
        "messages": [user("[[words:100]] [[delay-ms:100]] long")]}),
    )
    .await;
    let mut body = r.bytes_stream();
    use futures::StreamExt;
    body.next().await.unwrap().unwrap();
    drop(body);
    // The lock is released: the next turn goes through.
    let r = chat(
        &hub,
        None,
        Some("keep-me-intact"),
        json!({"model": "claude", "messages": [user("second")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, session) = get(&hub, None, "/v1/sessions/keep-me-intact").await;
    let texts = message_texts(&session);
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert_eq!(texts[..3], ["first", "echo: first", "second"]);
    assert!(
        !texts[3].contains("stall") && !texts[3].contains("long"),
        "{texts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_over_its_limit_gets_413_and_stores_nothing() {
    let hub = Hub::start_with(options("session_max_messages = 4", "")).await;
    for text in ["one", "two"] {
        let r = chat(
            &hub,
            None,
            Some("limited-session"),
            json!({"model": "claude", "messages": [user(text)]}),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let calls = hub.anthropic.chat_requests().len();
    let r = chat(
        &hub,
        None,
        Some("limited-session"),
        json!({"model": "claude", "messages": [user("three")]}),
    )
    .await;
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "session_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4 messages")
    );
    assert_eq!(
        hub.anthropic.chat_requests().len(),
        calls,
        "the CLI ran anyway"
    );
    let (_, session) = get(&hub, None, "/v1/sessions/limited-session").await;
    assert_eq!(session["messages"].as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_public_address_without_keys() {
    let hub_bin = e2e::hub_binary();
    let out = std::process::Command::new(hub_bin)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without API keys") && stderr.contains("dangerously_allow_unauthenticated"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_is_not_ready_until_its_session_store_has_answered_once() {
    // Redis not up yet when the hub starts (a pod that came up before its Redis, or before its
    // Service name resolved): a client that waits for readiness and sends X-Session-ID at once
    // must not be refused for want of the store.
    let mut redis = e2e::redis::RedisServer::start().await;
    redis.kill().await;
    let hub = Hub::start_with(options(
        &format!("redis_url = \"{}\"\nredis_timeout_ms = 500", redis.url),
        "",
    ))
    .await;
    let readyz = || async {
        let r = hub.http.get(hub.url("/readyz")).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (status, body) = readyz().await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("session store (redis)"),
        "{body}"
    );

    redis.restart().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while readyz().await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = chat(
        &hub,
        None,
        Some("right-after-ready"),
        json!({"model": "claude", "messages": [user("first")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-session-id"], "right-after-ready");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_redis_sessions_survive_an_outage_and_the_hub_recovers() {
    let mut redis = e2e::redis::RedisServer::start().await;
    let hub = Hub::start_with(options(
        &format!("redis_url = \"{}\"\nredis_timeout_ms = 500", redis.url),
        "",
    ))
    .await;
    let r = chat(
        &hub,
        None,
        Some("redis-backed-1"),
        json!({"model": "claude", "messages": [user("remember me")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        hub.http
            .get(hub.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    redis.kill().await;
    let started = std::time::Instant::now();
    let r = chat(
        &hub,
        None,
        Some("redis-backed-1"),
        json!({"model": "claude", "messages": [user("still?")]}),
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "session_store_unavailable"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no hang: {:?}",
        started.elapsed()
    );
    assert_eq!(get(&hub, None, "/v1/sessions/redis-backed-1").await.0, 503);
    // A request that asks for no session is still answered.
    let r = chat(
        &hub,
        None,
        None,
        json!({"model": "claude", "messages": [user("stateless")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-session-id").is_none());
    // The process still serves (requests without a session work), so it stays ready: in a
    // cluster every replica would otherwise leave the Service at once. /health tells.
    assert_eq!(
        hub.http
            .get(hub.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let health = hub.get_json("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["session_store"]["status"], "unavailable", "{health}");

    redis.restart().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while hub.get_json("/health").await["session_store"]["status"] != "ok" {
        assert!(std::time::Instant::now() < deadline, "hub did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = chat(
        &hub,
        None,
        Some("redis-backed-1"),
        json!({"model": "claude", "messages": [user("back")]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, session) = get(&hub, None, "/v1/sessions/redis-backed-1").await;
    let texts = message_texts(&session);
    assert_eq!(
        texts[0], "remember me",
        "the acknowledged turn survived the restart"
    );
    assert_eq!(texts.len(), 4);
}
