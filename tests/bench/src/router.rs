//! Cluster mode: `llm-mcp-hub router` over `llm-mcp-hub worker` processes that run
//! `fake-claude`, so what is measured is the router and the worker protocol, not a CLI.
//!
//! 1. Router-added latency: closed-loop streaming clients through the router (OpenAI REST)
//!    versus the same workers driven directly over the worker protocol
//!    (`POST /internal/v1/chat`, SSE to the `done` event), at a few client counts.
//! 2. The router's memory when idle (started, workers discovered) and its CPU per request.
//! 3. Many concurrent open streams through one router against a slow answer
//!    (`[[words:N]] [[delay-ms:M]]`, which fake-claude honours): all must finish, none fail,
//!    and the router's peak RSS stays bounded.
//!
//! Every process listens on 127.0.0.1; every wait has a deadline.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::client::{LoadClient, Timing, bounded, chat_stream, http_client, load_client, post_sse};
use crate::hub::{Mem, proc_cpu, proc_mem, sweep};
use crate::load::{LoadResult, closed_loop, closed_then_paced};
use crate::stats::Lat;
use crate::{Env, log, mem_json, secs};
use llm_mcp_hub::provider::{Message, Role};
use llm_mcp_hub::wire::{self, WorkerChatRequest};

/// The credential the router presents to the workers (and the direct clients too).
const TOKEN: &str = "bench-worker-credential-0123456789";
/// The provider name the workers serve (what clients put in `model`).
const PROVIDER: &str = "claude";

/// A hub process in one of the cluster modes.
struct Proc {
    base: String,
    pid: u32,
    log_path: PathBuf,
    scratch: Option<PathBuf>,
    child: Option<Child>,
}

impl Proc {
    fn spawn(
        bin: &Path,
        args: &[String],
        dir: &Path,
        env: &[(String, String)],
        port: u16,
        scratch: Option<PathBuf>,
    ) -> anyhow::Result<Proc> {
        let log_path = dir.join("log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(bin)
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        Ok(Proc {
            base: format!("http://127.0.0.1:{port}"),
            pid: child.id().context("pid")?,
            log_path,
            scratch,
            child: Some(child),
        })
    }

    fn mem(&self) -> Mem {
        proc_mem(self.pid)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// User + system CPU time of the process so far.
    fn cpu(&self) -> Duration {
        proc_cpu(self.pid)
    }

    async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
            if tokio::time::timeout(secs(15.0), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        if let Some(s) = &self.scratch {
            sweep(s);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if let Some(s) = &self.scratch {
            sweep(s);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Raises the soft open-file limit to the hard one (children inherit it): every stream holds
/// a client socket, a router socket each way, and a worker pipe set.
fn raise_nofile() -> (u64, u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return (0, 0);
    };
    if soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((soft, hard))
}

async fn start_worker(
    env: &Env,
    i: usize,
    token_file: &Path,
    slots: usize,
    warm: usize,
    queue: usize,
) -> anyhow::Result<Proc> {
    let dir = env.work.join(format!("worker-{i}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let scratch = dir.join("scratch");
    let config = format!(
        "scratch_dir = \"{}\"\nshutdown_grace_secs = 5\n\n[providers.{PROVIDER}]\nkind = \"claude\"\ncommand = \"{}\"\nmax_concurrency = {slots}\nwarm_processes = {warm}\nmax_idle = {slots}\nmax_queue = {queue}\nqueue_timeout_secs = 120\n{}\n",
        scratch.display(),
        env.fake_claude.display(),
        env.args.claude_extra
    );
    let config_path = dir.join("worker.toml");
    std::fs::write(&config_path, config)?;
    let port = free_port();
    let mut vars = env.hub_env.clone();
    vars.extend(
        [
            ("LLM_MCP_HUB_PROVIDER_NAME", PROVIDER.to_string()),
            ("LLM_MCP_HUB_ACCOUNT", format!("bench-{i}")),
            (
                "LLM_MCP_HUB_WORKER_TOKEN_FILE",
                token_file.display().to_string(),
            ),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let args = [
        "worker".to_string(),
        "--provider".into(),
        "claude".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--config".into(),
        config_path.display().to_string(),
    ];
    let worker = Proc::spawn(&env.hub_bin, &args, &dir, &vars, port, Some(scratch))?;
    let http = http_client();
    let deadline = Instant::now() + secs(60.0);
    loop {
        if let Ok(s) = worker_status(&http, &worker.base).await
            && s["accepting"] == true
            && s["capacity"]["idle"].as_u64() >= Some(warm as u64)
        {
            return Ok(worker);
        }
        if Instant::now() > deadline {
            bail!(
                "worker {i} did not get {warm} warm processes; log:\n{}",
                worker.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn worker_status(http: &reqwest::Client, base: &str) -> anyhow::Result<Value> {
    Ok(http
        .get(format!("{base}{}", wire::STATUS_PATH))
        .bearer_auth(TOKEN)
        .header(wire::PROTOCOL_HEADER, wire::PROTOCOL_VERSION)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

async fn start_router(env: &Env, workers: &[Proc], token_file: &Path) -> anyhow::Result<Proc> {
    let dir = env.work.join("router");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = free_port();
    let mut config = format!(
        "listen = \"127.0.0.1:{port}\"\nshutdown_grace_secs = 5\n\n{}\n",
        env.args.router_extra
    );
    for w in workers {
        config.push_str(&format!(
            "\n[[discovery.static]]\nprovider = \"{PROVIDER}\"\nurl = \"{}\"\ntoken_file = \"{}\"\n",
            w.base,
            token_file.display()
        ));
    }
    let config_path = dir.join("router.toml");
    std::fs::write(&config_path, config)?;
    let args = [
        "router".to_string(),
        "--config".into(),
        config_path.display().to_string(),
    ];
    let vars = crate::base_env(&dir);
    let router = Proc::spawn(&env.hub_bin, &args, &dir, &vars, port, None)?;
    let http = http_client();
    let deadline = Instant::now() + secs(30.0);
    loop {
        let ready = async {
            let v: Value = http
                .get(format!("{}/v1/providers", router.base))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            v["data"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == PROVIDER)?["ready_workers"]
                .as_u64()
        }
        .await;
        if ready == Some(workers.len() as u64) {
            return Ok(router);
        }
        if Instant::now() > deadline {
            bail!(
                "the router did not see {} ready workers (saw {ready:?}); log:\n{}",
                workers.len(),
                router.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One turn on a worker over the worker protocol, read to its `done` event. `ttft` is the
/// first non-empty delta, `total` the `done` event, both from `start`.
async fn worker_chat(
    http: &LoadClient,
    base: &str,
    model: &str,
    text: &str,
    start: Instant,
) -> Result<Timing, String> {
    bounded(worker_turn(http, base, model, text, start)).await
}

async fn worker_turn(
    http: &LoadClient,
    base: &str,
    model: &str,
    text: &str,
    start: Instant,
) -> Result<Timing, String> {
    let body = WorkerChatRequest {
        provider: PROVIDER.into(),
        model: model.into(),
        system: None,
        messages: vec![Message::text(Role::User, text)],
        tools: None,
        owner: String::new(),
    };
    let body = serde_json::to_vec(&body).map_err(|e| format!("request: {e}"))?;
    let url = format!("{base}{}", wire::CHAT_PATH);
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        (wire::PROTOCOL_HEADER, wire::PROTOCOL_VERSION),
    ];
    let mut events = post_sse(http, &url, &headers, body).await?;
    let mut ttft = None;
    while let Some(data) = events.next().await {
        let data = data.map_err(|e| format!("body: {e}"))?;
        let data = data.as_str();
        let v: Value = serde_json::from_str(data.trim()).map_err(|e| format!("event: {e}"))?;
        match v["type"].as_str() {
            Some("delta") => {
                if ttft.is_none() && v["text"].as_str().is_some_and(|t| !t.is_empty()) {
                    ttft = Some(start.elapsed());
                }
            }
            Some("done") => {
                return match ttft {
                    Some(ttft) => Ok(Timing {
                        ttft,
                        total: start.elapsed(),
                    }),
                    None => Err("no text before done".into()),
                };
            }
            _ => return Err("error event".into()),
        }
    }
    Err("stream ended without done".into())
}

/// One streaming chat completion through the router, with the text it carried.
async fn router_stream_text(
    http: &reqwest::Client,
    base: &str,
    text: &str,
    start: Instant,
) -> Result<(Timing, String), String> {
    let body = json!({
        "model": PROVIDER,
        "stream": true,
        "messages": [{"role": "user", "content": text}],
    });
    let response = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    // The hub's own SSE decoder (the one its router and mcp-stdio use).
    let mut events = llm_mcp_hub::wire::sse_data(response.bytes_stream());
    let (mut ttft, mut answer) = (None, String::new());
    while let Some(data) = events.next().await {
        let data = data.map_err(|e| format!("body: {e}"))?;
        let data = data.as_str();
        let data = data.trim();
        if data == "[DONE]" {
            let ttft = ttft.ok_or("no text before [DONE]")?;
            let timing = Timing {
                ttft,
                total: start.elapsed(),
            };
            return Ok((timing, answer));
        }
        let v: Value = serde_json::from_str(data).map_err(|e| format!("chunk: {e}"))?;
        if v.get("error").is_some() {
            return Err("error event".into());
        }
        let content = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !content.is_empty() {
            ttft.get_or_insert_with(|| start.elapsed());
            answer.push_str(content);
        }
    }
    Err("stream ended without [DONE]".into())
}

/// CPU of the router and of the workers over one load run, per completed request.
struct CpuMark {
    router: Duration,
    workers: Duration,
}

fn cpu_mark(router: &Proc, workers: &[Proc]) -> CpuMark {
    CpuMark {
        router: router.cpu(),
        workers: workers.iter().map(Proc::cpu).sum(),
    }
}

fn cpu_json(before: &CpuMark, after: &CpuMark, requests: u64) -> Value {
    let per = |d: Duration| d.as_secs_f64() * 1e6 / requests.max(1) as f64;
    json!({
        "router_cpu_s": (after.router - before.router).as_secs_f64(),
        "workers_cpu_s": (after.workers - before.workers).as_secs_f64(),
        "router_cpu_us_per_request": per(after.router - before.router),
        "workers_cpu_us_per_request": per(after.workers - before.workers),
    })
}

pub async fn scenario_router(env: &Env) -> anyhow::Result<Value> {
    let a = &env.args;
    let n = a.router_workers.max(1);
    let streams = a.router_streams;
    let max_level = a.router_levels.iter().copied().max().unwrap_or(1);
    log(&format!(
        "scenario 5: router over {n} workers (fake-claude): levels {:?}, then {streams} slow streams",
        a.router_levels
    ));
    let nofile = raise_nofile();
    log(&format!(
        "open-file limit (soft, hard): {nofile:?}; needs ≈ {} for {streams} streams",
        streams * 8 + 1024
    ));
    let token_file = env.work.join("worker-token");
    std::fs::write(&token_file, format!("{TOKEN}\n"))?;
    // Room for every stream of step 3 on the workers (the router spreads them evenly) and
    // enough warm processes for the latency runs.
    let slots = streams.div_ceil(n) + 64;
    let warm = max_level.div_ceil(n).max(max_level.min(16));
    let queue = streams.max(64);
    let mut workers = Vec::new();
    for i in 0..n {
        workers.push(start_worker(env, i, &token_file, slots, warm, queue).await?);
    }
    let http = http_client();
    let status = worker_status(&http, &workers[0].base).await?;
    let model = status["default_model"]
        .as_str()
        .unwrap_or("sonnet")
        .to_string();
    let router = start_router(env, &workers, &token_file).await?;
    tokio::time::sleep(secs(1.0)).await;
    let router_idle = router.mem();
    let workers_idle: Vec<Value> = workers.iter().map(|w| mem_json(w.mem())).collect();
    log(&format!(
        "router idle, {n} workers discovered: RSS {:.1} MiB (HWM {:.1} MiB)",
        router_idle.rss_mib(),
        router_idle.hwm_mib()
    ));

    // 1. Router-added latency.
    let load = load_client();
    let warmup = secs(a.warmup_secs);
    let measure = secs(a.measure_secs);
    let mut levels = Vec::new();
    let runs = closed_then_paced(
        &a.router_levels,
        &a.router_paced_levels,
        Duration::from_millis(a.router_think_ms),
    );
    for (clients, think) in runs {
        let bases: Arc<Vec<String>> = Arc::new(workers.iter().map(|w| w.base.clone()).collect());
        let model: Arc<str> = model.clone().into();
        let h = load.clone();
        let c0 = cpu_mark(&router, &workers);
        let direct = closed_loop(clients, warmup, measure, move |c, s| {
            let (h, bases, model) = (h.clone(), bases.clone(), model.clone());
            async move {
                let base = &bases[c % bases.len()];
                tokio::time::sleep(think).await;
                worker_chat(&h, base, &model, &format!("bench {c}-{s}"), Instant::now()).await
            }
        })
        .await;
        let c1 = cpu_mark(&router, &workers);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let base: Arc<str> = router.base.clone().into();
        let h = load.clone();
        let c2 = cpu_mark(&router, &workers);
        let routed = closed_loop(clients, warmup, measure, move |c, s| {
            let (h, base) = (h.clone(), base.clone());
            async move {
                tokio::time::sleep(think).await;
                chat_stream(
                    &h,
                    &base,
                    PROVIDER,
                    &format!("bench {c}-{s}"),
                    Instant::now(),
                )
                .await
            }
        })
        .await;
        let c3 = cpu_mark(&router, &workers);
        tokio::time::sleep(Duration::from_millis(300)).await;
        log(&format!(
            "{clients} clients, {} ms pause: direct p50 {:.3} ms p99 {:.3} ms {:.0} req/s; router p50 {:.3} ms p99 {:.3} ms {:.0} req/s, {} errors; added p50 {:.3} ms p99 {:.3} ms",
            think.as_millis(),
            direct.total.p50(),
            direct.total.p99(),
            direct.rps(),
            routed.total.p50(),
            routed.total.p99(),
            routed.rps(),
            routed.error_count() + direct.error_count(),
            routed.total.p50() - direct.total.p50(),
            routed.total.p99() - direct.total.p99(),
        ));
        levels.push(json!({
            "clients": clients,
            "pause_ms": think.as_millis() as u64,
            "direct": direct.to_json(),
            "router": routed.to_json(),
            "added": added(&routed, &direct),
            "direct_cpu": cpu_json(&c0, &c1, sent_in(&direct)),
            "router_cpu": cpu_json(&c2, &c3, sent_in(&routed)),
        }));
    }
    let router_after_latency = router.mem();

    // 3. Concurrent slow streams.
    let slow = slow_streams(env, &router, &workers, &http).await?;
    let router_after = router.mem();
    let workers_after: Vec<Value> = workers.iter().map(|w| mem_json(w.mem())).collect();
    router.stop().await;
    for w in workers {
        w.stop().await;
    }
    Ok(json!({
        "workers": n,
        "worker_max_concurrency": slots,
        "worker_warm_processes": warm,
        "worker_max_queue": queue,
        "model": model,
        "nofile_limit": [nofile.0, nofile.1],
        "warmup_s": a.warmup_secs,
        "measure_s": a.measure_secs,
        "router_mem_idle": mem_json(router_idle),
        "workers_mem_idle": workers_idle,
        "levels": levels,
        "router_mem_after_latency": mem_json(router_after_latency),
        "streams": slow,
        "router_mem_after": mem_json(router_after),
        "workers_mem_after": workers_after,
    }))
}

/// Requests sent during a run (warm-up included), for CPU per request.
fn sent_in(r: &LoadResult) -> u64 {
    r.sent
}

fn added(routed: &LoadResult, direct: &LoadResult) -> Value {
    json!({
        "ttft_p50_ms": routed.ttft.p50() - direct.ttft.p50(),
        "ttft_p99_ms": routed.ttft.p99() - direct.ttft.p99(),
        "total_p50_ms": routed.total.p50() - direct.total.p50(),
        "total_p99_ms": routed.total.p99() - direct.total.p99(),
    })
}

async fn slow_streams(
    env: &Env,
    router: &Proc,
    workers: &[Proc],
    http: &reqwest::Client,
) -> anyhow::Result<Value> {
    let a = &env.args;
    let (streams, words, delay) = (
        a.router_streams,
        a.router_stream_words,
        a.router_stream_delay_ms,
    );
    let expected: String = (1..=words)
        .map(|i| format!("{}word{i}", if i == 1 { "" } else { " " }))
        .collect();
    let nominal = Duration::from_millis(delay * words.saturating_sub(1) as u64);
    let limit = nominal + secs(a.router_stream_slack_secs);
    log(&format!(
        "{streams} concurrent streams through the router: {words} words, {delay} ms apart ({:.1} s each), deadline {:.0} s",
        nominal.as_secs_f64(),
        limit.as_secs_f64()
    ));
    let open = Arc::new(AtomicUsize::new(0));
    let peak_open = Arc::new(AtomicUsize::new(0));
    let before = router.mem();
    let cpu0 = cpu_mark(router, workers);
    // The router's RSS, sampled while the streams run.
    let pid = router.pid;
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0u64;
            let mut samples = Vec::new();
            let t0 = Instant::now();
            while sampling.load(Ordering::SeqCst) {
                let m = proc_mem(pid);
                peak = peak.max(m.rss_kib);
                samples.push((t0.elapsed().as_secs_f64(), m.rss_kib));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (peak, samples)
        })
    };
    let begin = Instant::now();
    let mut tasks = Vec::with_capacity(streams);
    for i in 0..streams {
        let (http, base) = (http.clone(), router.base.clone());
        let text = format!("stream {i} [[words:{words}]] [[delay-ms:{delay}]]");
        let (open, peak_open) = (open.clone(), peak_open.clone());
        tasks.push(tokio::spawn(async move {
            let now = open.fetch_add(1, Ordering::SeqCst) + 1;
            peak_open.fetch_max(now, Ordering::SeqCst);
            let start = Instant::now();
            let outcome =
                tokio::time::timeout(limit, router_stream_text(&http, &base, &text, start))
                    .await
                    .unwrap_or_else(|_| Err("deadline".into()));
            open.fetch_sub(1, Ordering::SeqCst);
            (start.duration_since(begin), outcome)
        }));
    }
    let (mut ttft, mut total) = (Lat::default(), Lat::default());
    let (mut ok, mut wrong_text) = (0u64, 0u64);
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    // Each complete stream's (first text, end), from `begin`: how many streamed at once.
    let mut spans = Vec::with_capacity(streams);
    for t in tasks {
        match t.await {
            Ok((offset, Ok((timing, text)))) => {
                if text == expected {
                    ok += 1;
                    ttft.record(timing.ttft);
                    total.record(timing.total);
                    spans.push((offset + timing.ttft, offset + timing.total));
                } else {
                    wrong_text += 1;
                }
            }
            Ok((_, Err(e))) => *errors.entry(e).or_default() += 1,
            Err(e) => *errors.entry(format!("task: {e}")).or_default() += 1,
        }
    }
    let wall = begin.elapsed();
    sampling.store(false, Ordering::SeqCst);
    let (peak_kib, samples) = sampler.await.unwrap_or_default();
    let after = router.mem();
    let cpu1 = cpu_mark(router, workers);
    // How many streams were open at once: the most that overlapped, from their timings.
    log(&format!(
        "{ok}/{streams} streams complete and correct, {wrong_text} with wrong text, {} errors; wall {:.1} s; TTFT p50 {:.0} ms p99 {:.0} ms; total p50 {:.0} ms p99 {:.0} ms; router RSS before {:.1} MiB, peak sampled {:.1} MiB, HWM {:.1} MiB",
        errors.values().sum::<u64>(),
        wall.as_secs_f64(),
        ttft.p50(),
        ttft.p99(),
        total.p50(),
        total.p99(),
        before.rss_mib(),
        peak_kib as f64 / 1024.0,
        after.hwm_mib()
    ));
    Ok(json!({
        "streams": streams,
        "words": words,
        "delay_ms": delay,
        "nominal_stream_s": nominal.as_secs_f64(),
        "deadline_s": limit.as_secs_f64(),
        "ok": ok,
        "wrong_text": wrong_text,
        "errors": errors,
        "peak_open_requests": peak_open.load(Ordering::SeqCst),
        "peak_streaming_at_once": peak_overlap(&spans),
        "last_first_text_s": spans.iter().map(|s| s.0).max().unwrap_or_default().as_secs_f64(),
        "first_end_s": spans.iter().map(|s| s.1).min().unwrap_or_default().as_secs_f64(),
        "wall_s": wall.as_secs_f64(),
        "ttft": ttft.to_json(),
        "total": total.to_json(),
        "router_mem_before": mem_json(before),
        "router_peak_rss_sampled_mib": peak_kib as f64 / 1024.0,
        "router_mem_after": mem_json(after),
        "router_rss_samples_kib": samples.iter().step_by(5).map(|(t, k)| json!([t, k])).collect::<Vec<_>>(),
        "cpu": cpu_json(&cpu0, &cpu1, streams as u64),
    }))
}

/// The most intervals that overlap at one instant.
fn peak_overlap(spans: &[(Duration, Duration)]) -> usize {
    let mut edges: Vec<(Duration, i64)> = spans
        .iter()
        .flat_map(|&(from, to)| [(from, 1), (to, -1)])
        .collect();
    // Ends before starts at the same instant.
    edges.sort();
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, step) in edges {
        now += step;
        peak = peak.max(now);
    }
    peak as usize
}
