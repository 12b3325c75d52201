//! Session store benchmark: round trips per chat turn, store latency under concurrent turns,
//! and memory per 10,000 stored sessions, for the in-memory store and a real `redis-server`.
//!
//! `cargo run --release -p e2e --example session_store_bench -- [--concurrency 64] [--turns 200]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::redis::RedisServer;
use llm_mcp_hub::provider::{Message, Role};
use llm_mcp_hub::session::redis::RedisOptions;
use llm_mcp_hub::session::{MemoryStore, RedisStore, Session, SessionStore, now_ms};

const TTL: Duration = Duration::from_secs(3600);
const LOCK: Duration = Duration::from_secs(360);

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One chat turn as the hub does it: lock+read, then write+unlock, with a typical exchange.
async fn turn(store: &dyn SessionStore, id: &str) -> (Duration, Duration) {
    let t = Instant::now();
    let lock = store
        .begin_turn("bench", id, LOCK, TTL)
        .await
        .expect("begin");
    let begin = t.elapsed();
    let now = now_ms();
    let mut session = lock.session.unwrap_or(Session {
        id: id.to_string(),
        owner: "bench".into(),
        provider: "claude".into(),
        model: "sonnet".into(),
        system: Some("You are a helpful assistant.".into()),
        created_at: now,
        updated_at: now,
        messages: Vec::new(),
    });
    session.messages.push(Message::text(
        Role::User,
        "What is the capital of France? Answer in one sentence.",
    ));
    session.messages.push(Message::text(
        Role::Assistant,
        "The capital of France is Paris, which is also its largest city.",
    ));
    session.updated_at = now_ms();
    let t = Instant::now();
    store
        .commit_turn(&session, &lock.token, TTL)
        .await
        .expect("commit");
    (begin, t.elapsed())
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

async fn latency(name: &str, store: Arc<dyn SessionStore>, concurrency: usize, turns: usize) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                for _ in 0..turns {
                    samples.push(turn(store.as_ref(), &format!("lat-{c}")).await);
                }
                samples
            })
        })
        .collect();
    let mut begin = Vec::new();
    let mut commit = Vec::new();
    for t in tasks {
        for (b, c) in t.await.unwrap() {
            begin.push(b);
            commit.push(c);
        }
    }
    let n = begin.len();
    println!(
        "| {name} | {concurrency} | {n} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} |",
        pct(begin.clone(), 0.5),
        pct(begin, 0.99),
        pct(commit.clone(), 0.5),
        pct(commit, 0.99),
        n as f64 / started.elapsed().as_secs_f64()
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

async fn redis_info(url: &str, section: &str) -> String {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut conn)
        .await
        .unwrap()
}

fn info_field(info: &str, prefix: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.split(',').next().unwrap().trim().parse().unwrap())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let concurrency = arg("--concurrency", 64);
    let turns = arg("--turns", 200);
    let server = RedisServer::start_fast().await;
    let redis: Arc<dyn SessionStore> = Arc::new(
        RedisStore::connect(&RedisOptions {
            url: server.url.clone(),
            timeout: Duration::from_secs(2),
            ca_file: None,
        })
        .await
        .unwrap(),
    );
    let memory: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());

    // Round trips per turn, counted by Redis itself: the scripts are the only commands a turn
    // sends (commandstats counts a script once under evalsha/eval, and its inner commands
    // under their own names).
    let calls = |info: &str| {
        ["cmdstat_evalsha:calls=", "cmdstat_eval:calls="]
            .iter()
            .map(|p| info_field(info, p))
            .sum::<u64>()
    };
    let stats = |info: &str| info_field(info, "total_commands_processed:");
    let before_cs = redis_info(&server.url, "commandstats").await;
    let before = stats(&redis_info(&server.url, "stats").await);
    for i in 0..100 {
        turn(redis.as_ref(), &format!("rt-{i}")).await;
        turn(redis.as_ref(), &format!("rt-{i}")).await;
    }
    let after = stats(&redis_info(&server.url, "stats").await);
    let after_cs = redis_info(&server.url, "commandstats").await;
    println!(
        "Redis round trips (script calls) per chat turn: {:.2}; commands executed per turn, inside scripts included: {:.2}",
        (calls(&after_cs) - calls(&before_cs)) as f64 / 200.0,
        // Two INFO calls and a CONFIG-free run: the INFOs are subtracted.
        (after - before - 2) as f64 / 200.0
    );
    println!(
        "\n| store | concurrent sessions | turns | lock+read p50 ms | p99 ms | write+unlock p50 ms | p99 ms | turns/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    latency("memory", memory.clone(), concurrency, turns).await;
    latency("redis", redis.clone(), concurrency, turns).await;

    // Memory per 10,000 sessions of one exchange each.
    let mem_before = rss_kib();
    let fresh: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    for i in 0..10_000 {
        turn(fresh.as_ref(), &format!("mem-{i}")).await;
    }
    let mem_after = rss_kib();
    let used_before = info_field(&redis_info(&server.url, "memory").await, "used_memory:");
    for i in 0..10_000 {
        turn(redis.as_ref(), &format!("mem-{i}")).await;
    }
    let used_after = info_field(&redis_info(&server.url, "memory").await, "used_memory:");
    println!("\n| store | memory for 10,000 sessions (one exchange each) | per session |");
    println!("|---|---|---|");
    println!(
        "| memory (hub RSS growth) | {:.1} MiB | {:.0} B |",
        (mem_after - mem_before) as f64 / 1024.0,
        (mem_after - mem_before) as f64 * 1024.0 / 10_000.0
    );
    println!(
        "| redis (used_memory growth) | {:.1} MiB | {:.0} B |",
        (used_after - used_before) as f64 / 1048576.0,
        (used_after - used_before) as f64 / 10_000.0
    );
    drop(fresh);
}
