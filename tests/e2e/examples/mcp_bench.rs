//! MCP benchmark: `chat` tool latency over streamable HTTP against the same request over REST,
//! and concurrent MCP sessions held open (hub memory per session).
//!
//! The hub is the real binary with the real `claude` CLI against the fake Anthropic server
//! (as in the e2e tests), so a chat's latency is the CLI's plus the hub's.
//!
//! `cargo build --release -p llm-mcp-hub && cargo run --release -p e2e --example mcp_bench -- \
//!   [--requests 40] [--words 20] [--sessions 1000]`

use std::time::{Duration, Instant};

use e2e::{Hub, HubOptions, user};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt, service::RunningService};
use serde_json::json;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(name: &str, samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let pct = |p: f64| ms(samples[((samples.len() - 1) as f64 * p).round() as usize]);
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    println!(
        "{name:<28} n={:<4} mean {mean:7.1} ms  p50 {:7.1} ms  p90 {:7.1} ms  min {:7.1} ms",
        samples.len(),
        pct(0.5),
        pct(0.9),
        ms(samples[0])
    );
    (mean, pct(0.5))
}

async fn mcp_client(hub: &Hub) -> RunningService<RoleClient, ()> {
    ().serve(StreamableHttpClientTransport::from_uri(hub.url("/mcp")))
        .await
        .expect("MCP session")
}

#[tokio::main]
async fn main() {
    let requests = arg("--requests", 40);
    let words = arg("--words", 20);
    let sessions = arg("--sessions", 1000);

    let hub = Hub::start_with(HubOptions {
        no_gemini: true,
        claude: "warm_processes = 2\nmax_concurrency = 2".into(),
        ..Default::default()
    })
    .await;
    hub.wait_idle("claude", 2).await;
    let client = mcp_client(&hub).await;
    let message = |i: usize| format!("[[words:{words}]] request {i}");

    // Warm-up: both paths once.
    let r = hub
        .chat(json!({"model": "claude", "messages": [user(&message(0))]}))
        .await;
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await;
    let call = |i: usize| {
        CallToolRequestParams::new("chat").with_arguments(
            json!({"provider": "claude", "message": message(i)})
                .as_object()
                .unwrap()
                .clone(),
        )
    };
    client.call_tool(call(0)).await.unwrap();

    // Alternate REST and MCP so both see the same CLI and machine conditions.
    let (mut rest, mut mcp) = (Vec::new(), Vec::new());
    for i in 1..=requests {
        hub.wait_idle("claude", 1).await;
        let t = Instant::now();
        let r = hub
            .chat(json!({"model": "claude", "messages": [user(&message(i))]}))
            .await;
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .contains(&format!("word{words}"))
        );
        rest.push(t.elapsed());

        hub.wait_idle("claude", 1).await;
        let t = Instant::now();
        let result = client.call_tool(call(i)).await.unwrap();
        assert_eq!(result.is_error, Some(false));
        mcp.push(t.elapsed());
    }
    println!("\nchat latency, {words}-word reply, sequential, claude CLI + fake model:");
    let (rest_mean, rest_p50) = summary("REST /v1/chat/completions", &mut rest);
    let (mcp_mean, mcp_p50) = summary("MCP tools/call chat (/mcp)", &mut mcp);
    println!(
        "MCP vs REST: mean {:+.1} %, p50 {:+.1} %",
        (mcp_mean / rest_mean - 1.0) * 100.0,
        (mcp_p50 / rest_p50 - 1.0) * 100.0
    );
    client.cancel().await.unwrap();

    // Concurrent sessions: each initialized, with its GET stream open, then all used at once.
    let pid = hub.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let t = Instant::now();
    let mut clients = Vec::with_capacity(sessions);
    for chunk in 0..sessions.div_ceil(50) {
        let n = 50.min(sessions - chunk * 50);
        let opened = futures::future::join_all((0..n).map(|_| mcp_client(&hub))).await;
        clients.extend(opened);
    }
    let opened_in = t.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = rss_kib(pid);
    let t = Instant::now();
    let results = futures::future::join_all(clients.iter().map(|c| {
        c.call_tool(CallToolRequestParams::new("list_providers").with_arguments(Default::default()))
    }))
    .await;
    let all_used = t.elapsed();
    let ok = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.is_error == Some(false)))
        .count();
    let after_use = rss_kib(pid);
    println!("\n{sessions} concurrent MCP sessions (streamable HTTP, each with its GET stream):");
    println!(
        "opened in {:.1} s; one tools/call on every session at once: {ok}/{sessions} ok in {:.0} ms",
        opened_in.as_secs_f64(),
        ms(all_used)
    );
    println!(
        "hub RSS: {:.1} MiB idle → {:.1} MiB with {sessions} sessions ({:.1} KiB per session) → \
         {:.1} MiB after a call on each ({:.1} KiB per session)",
        before as f64 / 1024.0,
        held as f64 / 1024.0,
        (held.saturating_sub(before)) as f64 / sessions as f64,
        after_use as f64 / 1024.0,
        (after_use.saturating_sub(before)) as f64 / sessions as f64,
    );
    for c in clients {
        let _ = c.cancel().await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "hub RSS after the clients closed their sessions: {:.1} MiB",
        rss_kib(pid) as f64 / 1024.0
    );
}
