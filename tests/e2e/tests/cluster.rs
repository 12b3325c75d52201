//! Cluster mode with real parts: routers in front of worker processes (two claude accounts, one
//! gemini), each running the real CLI against its own fake model server, sessions in a real
//! Redis. Faults are real: `kill -9` of a worker, SIGTERM drains, usage limits answered by a
//! model server, a wrong credential.

use std::time::{Duration, Instant};

use e2e::cluster::{Kind, Router, WORKER_TOKEN, Worker, WorkerSpec, static_entry};
use e2e::redis::RedisServer;
use e2e::{asks_for_weather, error_of, free_port, http_client, sse_data, user, weather_tool};
use futures::StreamExt;
use serde_json::{Value, json};

/// Two claude workers (accounts `a` and `b`) of provider `claude`.
async fn two_claude_accounts() -> (Worker, Worker) {
    let (a, b) = tokio::join!(
        Worker::start(WorkerSpec::new(Kind::Claude, "claude", "a")),
        Worker::start(WorkerSpec::new(Kind::Claude, "claude", "b")),
    );
    (a, b)
}

fn entries(workers: &[&Worker]) -> String {
    workers
        .iter()
        .map(|w| static_entry(&w.spec_provider, &w.url, &w.token_file))
        .collect()
}

/// A started stream through `router`, read until its second word: the turn is running on a
/// worker. Returns the rest of the body and what was read so far.
async fn stream_until_running(
    router: &Router,
    text: &str,
    session: Option<&str>,
) -> (
    futures::stream::BoxStream<'static, reqwest::Result<String>>,
    String,
) {
    let r = router
        .chat(
            json!({"model": "claude", "stream": true, "messages": [user(text)]}),
            session,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r
        .bytes_stream()
        .map(|chunk| chunk.map(|c| String::from_utf8_lossy(&c).into_owned()))
        .boxed();
    let mut seen = String::new();
    while !seen.contains("word2") {
        seen.push_str(&body.next().await.expect("stream goes on").unwrap());
    }
    (body, seen)
}

/// The worker running the turn (the one whose model saw a request), then the other one.
fn serving_first<'a>(a: &'a mut Worker, b: &'a mut Worker) -> (&'a mut Worker, &'a mut Worker) {
    if a.turns() > 0 { (a, b) } else { (b, a) }
}

async fn text_of(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_alternates_routers_over_shared_redis() {
    let redis = RedisServer::start().await;
    let ((a, b), g) = tokio::join!(
        two_claude_accounts(),
        Worker::start(WorkerSpec::new(Kind::Gemini, "gemini", "g"))
    );
    let discovery = entries(&[&a, &b, &g]);
    let top = format!("redis_url = \"{}\"", redis.url);
    let (r1, r2) = tokio::join!(
        Router::start(&top, &discovery),
        Router::start(&top, &discovery)
    );
    r1.wait_ready_workers("claude", 2).await;
    r2.wait_ready_workers("gemini", 1).await;

    let first = r1
        .chat(
            json!({"model": "claude", "messages": [user("my name is Ada [[reply:noted]]")]}),
            Some("alternating-1"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["x-session-id"], "alternating-1");
    assert_eq!(text_of(first).await, "noted");
    // The second turn goes to the other router with only the new message.
    let second = r2
        .chat(
            json!({"model": "claude", "messages": [user("what is my name?")]}),
            Some("alternating-1"),
        )
        .send()
        .await
        .unwrap();
    text_of(second).await;
    let requests: Vec<_> = a
        .fake
        .chat_requests()
        .into_iter()
        .chain(b.fake.chat_requests())
        .filter(|r| r.last_user_text().contains("what is my name?"))
        .collect();
    assert_eq!(requests.len(), 1);
    let prompt = requests[0].last_user_text();
    assert!(
        prompt.contains("my name is Ada"),
        "the earlier turn reached the model through the other router: {prompt}"
    );
    let session = r1.get_json("/v1/sessions/alternating-1").await;
    assert_eq!(
        session["messages"].as_array().unwrap().len(),
        4,
        "{session}"
    );

    // gemini through the router, streaming, and what /v1/providers tells about accounts.
    let r = r2
        .chat(
            json!({"model": "gemini", "stream": true, "messages": [user("[[reply:hello from gemini]]")]}),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let data = sse_data(r).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let text: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(text, "hello from gemini");
    let claude = r1.provider("claude").await;
    assert_eq!(claude["kind"], "claude");
    assert_eq!(claude["health"], "ready");
    let accounts: Vec<_> = claude["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["ready_workers"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(accounts, [("a".to_string(), 1), ("b".to_string(), 1)]);
    let models = r1.get_json("/v1/models").await;
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gemini/gemini-2.5-flash")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_stream_ends_the_stream_at_once_and_the_next_request_goes_elsewhere() {
    let (mut a, mut b) = two_claude_accounts().await;
    let router = Router::start("", &entries(&[&a, &b])).await;
    router.wait_ready_workers("claude", 2).await;

    let (mut body, _) =
        stream_until_running(&router, "[[words:300]] [[delay-ms:100]] long", None).await;
    let (serving, other) = serving_first(&mut a, &mut b);
    serving.kill().await;
    let killed = Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        let mut rest = String::new();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => rest.push_str(&c),
                Err(_) => break,
            }
        }
        rest
    })
    .await
    .expect("the client is told at once, not left hanging");
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
    assert!(
        rest.contains("\"error\""),
        "an error event ends the stream: {rest}"
    );
    assert!(!rest.contains("[DONE]"), "{rest}");

    let before = other.turns();
    let r = router
        .chat(
            json!({"model": "claude", "messages": [user("[[reply:still here]]")]}),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(text_of(r).await, "still here");
    assert_eq!(other.turns(), before + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_down_before_requests_is_skipped_and_one_that_appears_gets_traffic() {
    let a = Worker::start(WorkerSpec::new(Kind::Claude, "claude", "a")).await;
    // Listed but not running yet: the router must answer from `a` alone.
    let late_port = free_port();
    let late_url = format!("http://127.0.0.1:{late_port}");
    let discovery = entries(&[&a]) + &static_entry("claude", &late_url, &a.token_file);
    let router = Router::start("", &discovery).await;
    router.wait_ready_workers("claude", 1).await;
    for i in 0..4 {
        let r = router
            .chat(
                json!({"model": "claude", "messages": [user(&format!("[[reply:ok{i}]]"))]}),
                None,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(text_of(r).await, format!("ok{i}"));
    }
    assert_eq!(a.turns(), 4);

    let mut spec = WorkerSpec::new(Kind::Claude, "claude", "late");
    spec.port = Some(late_port);
    let late = Worker::start(spec).await;
    router.wait_ready_workers("claude", 2).await;
    for i in 0..12 {
        let r = router
            .chat(
                json!({"model": "claude", "messages": [user(&format!("[[reply:n{i}]]"))]}),
                None,
            )
            .send()
            .await
            .unwrap();
        text_of(r).await;
    }
    assert!(
        late.turns() > 0 && a.turns() > 4,
        "both take traffic: a {} late {}",
        a.turns(),
        late.turns()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_usage_limited_account_moves_traffic_then_all_limited_is_429_with_the_earliest_reset() {
    let (a, b) = two_claude_accounts().await;
    let router = Router::start("", &entries(&[&a, &b])).await;
    router.wait_ready_workers("claude", 2).await;

    a.fake.force(Some("[[status:429]] [[reset-in:900]]"));
    // Equally loaded workers are picked at random: requests go on until one has reached `a`
    // (at most 32; all 32 on `b` has a chance of 2^-32), and every one is answered by `b`.
    let account_a = |claude: &serde_json::Value| {
        claude["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|acc| acc["name"] == "a")
            .cloned()
            .unwrap()
    };
    let mut claude = router.provider("claude").await;
    for i in 0..32 {
        let r = router
            .chat(
                json!({"model": "claude", "messages": [user(&format!("[[reply:b{i}]]"))]}),
                None,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            text_of(r).await,
            format!("b{i}"),
            "answered by the other account"
        );
        claude = router.provider("claude").await;
        if account_a(&claude)["health"] == "usage_limited" {
            break;
        }
    }
    assert_eq!(account_a(&claude)["health"], "usage_limited", "{claude}");
    assert_eq!(claude["health"], "ready");

    b.fake.force(Some("[[status:429]] [[reset-in:300]]"));
    let started = Instant::now();
    let r = router
        .chat(
            json!({"model": "claude", "messages": [user("anyone?")]}),
            None,
        )
        .send()
        .await
        .unwrap();
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = error_of(r).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "usage_limit_reached");
    assert!(
        (290..=300).contains(&retry_after),
        "Retry-After is the earliest reset (b's, 300 s): {retry_after}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // Later requests fail fast without a model call.
    let before = a.fake.chat_requests().len() + b.fake.chat_requests().len();
    let r = router
        .chat(
            json!({"model": "claude", "messages": [user("again?")]}),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(
        a.fake.chat_requests().len() + b.fake.chat_requests().len(),
        before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_worker_finishes_its_stream_and_gets_no_new_turns() {
    let (mut a, mut b) = two_claude_accounts().await;
    let router = Router::start("", &entries(&[&a, &b])).await;
    router.wait_ready_workers("claude", 2).await;

    let (mut body, mut seen) =
        stream_until_running(&router, "[[words:30]] [[delay-ms:100]] drain me", None).await;
    let (serving, other) = serving_first(&mut a, &mut b);
    let mut child = serving.terminate();
    // New turns go to the other worker while the stream goes on.
    let before = other.turns();
    let r = router
        .chat(
            json!({"model": "claude", "messages": [user("[[reply:during drain]]")]}),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(text_of(r).await, "during drain");
    assert_eq!(other.turns(), before + 1);
    while let Some(chunk) = body.next().await {
        seen.push_str(&chunk.expect("the stream completes"));
    }
    assert!(seen.contains("word30"), "{seen}");
    assert!(seen.trim_end().ends_with("data: [DONE]"), "{seen}");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the drained worker exits")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_refuse_a_missing_or_wrong_credential() {
    let a = Worker::start(WorkerSpec::new(Kind::Claude, "claude", "a")).await;
    let http = http_client();
    let turn = json!({"provider": "claude", "model": "sonnet", "messages": [{"role": "user", "content": "hi"}]});
    for auth in [None, Some("wrong-credential")] {
        for (method, path) in [
            ("POST", "/internal/v1/chat"),
            ("GET", "/internal/v1/status"),
        ] {
            let mut request = if method == "POST" {
                http.post(format!("{}{path}", a.url)).json(&turn)
            } else {
                http.get(format!("{}{path}", a.url))
            };
            if let Some(token) = auth {
                request = request.bearer_auth(token);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {auth:?}");
        }
    }
    assert_eq!(a.turns(), 0, "nothing reached the model");
    let ok = http
        .post(format!("{}/internal/v1/chat", a.url))
        .bearer_auth(WORKER_TOKEN)
        .json(&turn)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        sse_data(ok)
            .await
            .iter()
            .any(|d| d.contains("\"type\":\"done\""))
    );

    // A router holding the wrong credential gets no worker to answer.
    let dir = e2e::private_dir();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-credential").unwrap();
    let router = Router::start("", &static_entry("claude", &a.url, &wrong)).await;
    let r = router
        .chat(json!({"model": "claude", "messages": [user("hi")]}), None)
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(r).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "no_healthy_worker");
    assert_eq!(a.turns(), 1, "only the authenticated turn ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_lock_holds_across_router_replicas() {
    let redis = RedisServer::start().await;
    let (a, b) = two_claude_accounts().await;
    let discovery = entries(&[&a, &b]);
    let top = format!("redis_url = \"{}\"\nsession_busy_wait_ms = 300", redis.url);
    let (r1, r2) = tokio::join!(
        Router::start(&top, &discovery),
        Router::start(&top, &discovery)
    );
    r1.wait_ready_workers("claude", 2).await;
    r2.wait_ready_workers("claude", 2).await;

    let (mut body, mut seen) = stream_until_running(
        &r1,
        "[[words:30]] [[delay-ms:100]] first",
        Some("locked-across-routers"),
    )
    .await;
    // The other replica must not start a second turn on the same session meanwhile.
    let r = r2
        .chat(
            json!({"model": "claude", "messages": [user("interleave?")]}),
            Some("locked-across-routers"),
        )
        .send()
        .await
        .unwrap();
    let (status, body_json) = error_of(r).await;
    assert_eq!(status, 409, "{body_json}");
    assert_eq!(body_json["error"]["code"], "session_busy");
    while let Some(chunk) = body.next().await {
        seen.push_str(&chunk.unwrap());
    }
    assert!(seen.contains("[DONE]"));
    // Once the first turn is stored, the other replica continues the conversation. (The
    // fake model reads directives from the whole transcript, so the earlier `[[words:30]]`
    // shapes this answer too: only its success matters here.)
    let r = r2
        .chat(
            json!({"model": "claude", "messages": [user("second")]}),
            Some("locked-across-routers"),
        )
        .send()
        .await
        .unwrap();
    assert!(!text_of(r).await.is_empty());
    let session = r1.get_json("/v1/sessions/locked-across-routers").await;
    assert_eq!(
        session["messages"].as_array().unwrap().len(),
        4,
        "{session}"
    );
}

/// The value of a counter on a worker's /metrics (0 when absent).
async fn worker_metric(worker: &Worker, name: &str, label: &str) -> f64 {
    let text = http_client()
        .get(format!("{}/metrics", worker.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A chat request through `router`, answered with 200; its JSON body.
async fn answer_of(router: &Router, body: Value) -> Value {
    let r = router.chat(body, None).send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// The follow-up of a tool call, built as an OpenAI client builds it.
fn with_results(messages: &[Value], answer: &Value, result: &str) -> Vec<Value> {
    let message = &answer["choices"][0]["message"];
    let mut out = messages.to_vec();
    out.push(message.clone());
    for call in message["tool_calls"].as_array().unwrap() {
        out.push(json!({"role": "tool", "tool_call_id": call["id"], "content": result}));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_results_reach_the_worker_holding_the_call_through_any_router() {
    let (a, b) = two_claude_accounts().await;
    let discovery = entries(&[&a, &b]);
    let (r1, r2) = tokio::join!(Router::start("", &discovery), Router::start("", &discovery));
    r1.wait_ready_workers("claude", 2).await;
    r2.wait_ready_workers("claude", 2).await;

    // Several agent loops, so the least-loaded choice alone would split the follow-ups.
    for round in 0..4 {
        let messages = vec![asks_for_weather("claude", &format!("Paris {round}"))];
        let first = answer_of(
            &r1,
            json!({"model": "claude", "messages": messages, "tools": weather_tool()}),
        )
        .await;
        assert_eq!(
            first["choices"][0]["finish_reason"], "tool_calls",
            "{first}"
        );
        // The follow-up goes through the other router replica.
        let second = r2
            .chat(
                json!({"model": "claude", "tools": weather_tool(),
                       "messages": with_results(&messages, &first, &format!("sunny {round}"))}),
                None,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(text_of(second).await, format!("tool result: sunny {round}"));
    }
    let parked = worker_metric(&a, "llm_mcp_hub_tool_continuations_total", "how=\"parked\"").await
        + worker_metric(&b, "llm_mcp_hub_tool_continuations_total", "how=\"parked\"").await;
    assert_eq!(parked, 4.0, "every follow-up continued its parked process");

    // The worker holding a call dies: the follow-up is answered afresh by the other one.
    let messages = vec![asks_for_weather("claude", "Rome")];
    let first = answer_of(
        &r1,
        json!({"model": "claude", "messages": messages, "tools": weather_tool()}),
    )
    .await;
    let calls_seen = |w: &Worker| {
        w.fake
            .chat_requests()
            .iter()
            .filter(|r| r.last_user_text().contains("Rome"))
            .count()
    };
    let (holder, other) = if calls_seen(&a) > 0 { (a, b) } else { (b, a) };
    let mut holder = holder;
    holder.kill().await;
    let second = r2
        .chat(
            json!({"model": "claude", "tools": weather_tool(),
                   "messages": with_results(&messages, &first, "rain in Rome")}),
            None,
        )
        .send()
        .await
        .unwrap();
    let text = text_of(second).await;
    assert!(text.contains("rain in Rome"), "{text}");
    assert_eq!(
        worker_metric(
            &other,
            "llm_mcp_hub_tool_continuations_total",
            "how=\"fresh\""
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_tool_calls_through_the_router_continue_on_the_worker() {
    let g = Worker::start(WorkerSpec::new(Kind::Gemini, "gemini", "g")).await;
    let router = Router::start("", &entries(&[&g])).await;
    router.wait_ready_workers("gemini", 1).await;
    let messages = vec![asks_for_weather("gemini", "Oslo")];
    let first = answer_of(
        &router,
        json!({"model": "gemini", "messages": messages, "tools": weather_tool()}),
    )
    .await;
    let call = &first["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{first}");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Oslo\"}");
    let second = router
        .chat(
            json!({"model": "gemini", "tools": weather_tool(),
                   "messages": with_results(&messages, &first, "fog in Oslo")}),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(text_of(second).await, "tool result: fog in Oslo");
    assert_eq!(
        worker_metric(&g, "llm_mcp_hub_tool_continuations_total", "how=\"parked\"").await,
        1.0
    );
}
