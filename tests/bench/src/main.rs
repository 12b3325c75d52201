//! `hub-bench`: the local hub's benchmarks in one run, so every ratio compares numbers taken
//! on the same machine at the same time (see BENCHMARKS.md).
//!
//! 1. Time to first token and total latency: sequential streaming requests through the hub's
//!    warm pool versus a fresh `claude -p` / `gemini` per request, same fake model server.
//! 2. Hub overhead: the hub over `fake-claude` (a CLI stand-in that answers at once) at several
//!    client counts, next to the same turns driven on fake-claude processes without the hub;
//!    closed loop, then paced (a pause between a client's requests) below saturation.
//! 3. 16 concurrent clients over the real claude warm pool versus 16 long-lived real claude
//!    processes driven directly.
//! 4. The hub's memory (its own process only): idle with the warm pool up, and peak.
//! 5. Cluster mode (`router` module): a router over workers that run fake-claude — the latency
//!    the router adds over driving the workers directly, its idle memory, and many concurrent
//!    slow streams through one router.
//!
//! Traffic goes to 127.0.0.1 only; every loop is bounded by a request count or a deadline.

mod client;
mod direct;
mod hub;
mod load;
mod router;
mod stats;
mod tools;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use fake_models::{FakeServer, TokenState};
use serde_json::{Value, json};

use client::{chat_stream, load_client};
use direct::{CliSpec, DirectPool, LongLived, claude_one_shot, gemini_one_shot};
use hub::{Hub, Mem};
use llm_mcp_hub::config::ProviderConfig;
use llm_mcp_hub::provider::{LaunchProfile, ProviderKind, quiet_env};
use load::{LoadResult, closed_loop, closed_then_paced};
use stats::Lat;

// The hub's allocator: the load generator shares the cores with the hub, and glibc's malloc was
// ≈ 9 % of its CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Benchmarks of the local hub against the real CLIs and fake model servers")]
struct Args {
    /// The hub binary [default: llm-mcp-hub next to this executable].
    #[arg(long)]
    hub: Option<PathBuf>,
    /// The fake CLI [default: fake-claude next to this executable].
    #[arg(long)]
    fake_claude: Option<PathBuf>,
    /// Directory holding the pinned `claude` and `gemini` [default: tests/cli/node_modules/.bin].
    #[arg(long)]
    cli_dir: Option<PathBuf>,
    /// Where scratch directories go; not below /tmp (gemini refuses settings files below a
    /// world-writable directory) [default: bench-tmp next to this executable].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Sequential claude requests per side (hub, fresh `claude -p`) in scenario 1.
    #[arg(long, default_value_t = 40)]
    claude_runs: usize,
    /// Sequential gemini requests per side in scenario 1.
    #[arg(long, default_value_t = 10)]
    gemini_runs: usize,
    /// Pause after a gemini process is started before it is used (its start-up is ≈1.5 s).
    #[arg(long, default_value_t = 3.0)]
    gemini_settle_secs: f64,
    /// Concurrent clients of the fake-CLI scenario.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64, 512])]
    levels: Vec<usize>,
    /// Unrecorded warm-up at the start of every load run.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Recorded time of every fake-CLI load run.
    #[arg(long, default_value_t = 8.0)]
    measure_secs: f64,
    /// Client counts of the fake-CLI scenario run again with a pause between a client's requests
    /// (`--think-ms`), below saturation of the cores, where the hub's own latency shows; the
    /// flag alone runs none.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values_t = [16usize])]
    paced_levels: Vec<usize>,
    /// The pause of the fake-CLI scenario's paced runs (not part of the measured latency).
    #[arg(long, default_value_t = 20)]
    think_ms: u64,
    /// Concurrent clients over the real claude pool.
    #[arg(long, default_value_t = 16)]
    real_clients: usize,
    /// Recorded time of the real-claude load runs.
    #[arg(long, default_value_t = 15.0)]
    real_measure_secs: f64,
    /// Extra TOML lines for the hub's claude provider in every scenario (for diagnostics, e.g.
    /// `max_requests_per_process = 5`).
    #[arg(long, default_value = "")]
    claude_extra: String,
    /// Turns (each followed by `/clear`) timed for CPU in scenario 4.
    #[arg(long, default_value_t = 40)]
    cpu_turns: usize,
    /// Workers behind the router in the cluster scenario.
    #[arg(long, default_value_t = 2)]
    router_workers: usize,
    /// Concurrent clients of the router-added latency runs (router vs workers driven directly).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16])]
    router_levels: Vec<usize>,
    /// Client counts run again with a pause between a client's requests (`--router-think-ms`),
    /// below saturation of the cores; the flag alone runs none.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values_t = [16usize])]
    router_paced_levels: Vec<usize>,
    /// The pause of the paced runs (not part of the measured latency).
    #[arg(long, default_value_t = 20)]
    router_think_ms: u64,
    /// Concurrent slow streams through one router.
    #[arg(long, default_value_t = 1000)]
    router_streams: usize,
    /// Words of each slow stream (one delta each).
    #[arg(long, default_value_t = 20)]
    router_stream_words: usize,
    /// Pause between two words of a slow stream.
    #[arg(long, default_value_t = 500)]
    router_stream_delay_ms: u64,
    /// Time a slow stream may take beyond its nominal length before it counts as failed.
    #[arg(long, default_value_t = 60.0)]
    router_stream_slack_secs: f64,
    /// Extra top-level TOML lines for the router (e.g. `[routing]` settings).
    #[arg(long, default_value = "")]
    router_extra: String,
    /// Follow-ups per CLI in the tools scenario (each: one parked, one fresh).
    #[arg(long, default_value_t = 20)]
    tool_rounds: usize,
    /// Scenarios to leave out: ttft, fake, real, cpu, router, tools.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Writes every number as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn next_to_exe(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().context("executable directory")?.join(name))
}

fn must_exist(path: PathBuf, hint: &str) -> anyhow::Result<PathBuf> {
    if !path.exists() {
        bail!("{} is missing: {hint}", path.display());
    }
    Ok(path.canonicalize()?)
}

fn write_script(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn log(msg: &str) {
    eprintln!(
        "[hub-bench +{:>6.1}s] {msg}",
        started().elapsed().as_secs_f64()
    );
}

fn started() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo.lines().next().unwrap_or_default().to_string();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "memory": mem,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

struct Env {
    args: Args,
    hub_bin: PathBuf,
    fake_claude: PathBuf,
    clis: PathBuf,
    work: PathBuf,
    anthropic: FakeServer,
    gemini: FakeServer,
    hub_env: Vec<(String, String)>,
    claude_wrapper: PathBuf,
    gemini_wrapper: PathBuf,
}

impl Env {
    fn claude_spec(&self, (args, files): (Vec<String>, Vec<(PathBuf, String)>)) -> CliSpec {
        let mut env = base_env(&self.work.join("home-direct"));
        env.extend(quiet_env());
        env.push(("CLAUDE_CODE_OAUTH_TOKEN".into(), "test-oauth-token".into()));
        env.push(("ANTHROPIC_BASE_URL".into(), self.anthropic.base_url.clone()));
        CliSpec {
            program: self.clis.join("claude"),
            args,
            env,
            files,
            scratch_root: self.work.join("direct"),
        }
    }

    fn gemini_spec(&self) -> CliSpec {
        let mut env = base_env(&self.work.join("home-direct"));
        env.extend(quiet_env());
        env.extend(
            [
                (
                    "GEMINI_CLI_HOME",
                    self.work
                        .join("direct-login/gemini-home")
                        .display()
                        .to_string(),
                ),
                ("GEMINI_CLI_TRUST_WORKSPACE", "true".into()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        CliSpec {
            // The same wrapper as the hub's: gemini on its Google login against the fake Google.
            program: self.gemini_wrapper.clone(),
            args: ["-o", "stream-json", "-m", "gemini-2.5-flash"]
                .map(String::from)
                .to_vec(),
            env,
            files: Vec::new(),
            scratch_root: self.work.join("direct"),
        }
    }

    fn fake_spec(&self) -> CliSpec {
        let (args, files) = long_launch();
        CliSpec {
            program: self.fake_claude.clone(),
            args,
            env: base_env(&self.work.join("home-direct")),
            files,
            scratch_root: self.work.join("direct"),
        }
    }

    async fn start_hub(&self, name: &str, providers: &str) -> anyhow::Result<Hub> {
        let dir = self.work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        Hub::start(&self.hub_bin, &dir, providers, &self.hub_env).await
    }
}

fn base_env(home: &Path) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), home.display().to_string()),
    ]
}

/// The hub's own long-lived claude command line (its default model and system prompt), so
/// driving claude directly runs exactly what the hub runs.
/// The hub's long-lived claude command line, and the files it names (relative to the working
/// directory).
fn long_launch() -> (Vec<String>, Vec<(PathBuf, String)>) {
    let defaults = ProviderConfig::for_kind(ProviderKind::Claude);
    let profile = LaunchProfile {
        model: defaults.default_model,
        system: Some(defaults.default_system_prompt),
        tools: None,
    };
    let spec = ProviderKind::Claude
        .adapter()
        .launch(&profile, Path::new("."), &|_| None, None);
    (spec.args, spec.files)
}

/// The fresh one-shot command line of the issue (prompt on stdin, stdin closed).
const ONE_SHOT_ARGS: &[&str] = &[
    "-p",
    "--output-format",
    "stream-json",
    "--verbose",
    "--include-partial-messages",
    "--tools=",
    "--strict-mcp-config",
    "--setting-sources=",
    "--no-session-persistence",
    "--model=sonnet",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    started();
    let hub_bin = must_exist(
        args.hub
            .clone()
            .map_or_else(|| next_to_exe("llm-mcp-hub"), Ok)?,
        "build it with `cargo build --release -p llm-mcp-hub` (same target directory)",
    )?;
    let fake_claude = must_exist(
        args.fake_claude
            .clone()
            .map_or_else(|| next_to_exe("fake-claude"), Ok)?,
        "build it with `cargo build --release -p bench`",
    )?;
    let clis = args
        .cli_dir
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/node_modules/.bin"));
    // Only the scenarios over the real CLIs need them.
    let real_clis = ["ttft", "real", "cpu", "tools"]
        .iter()
        .any(|s| !args.skip.iter().any(|k| k == s));
    let clis = if real_clis {
        must_exist(
            clis,
            "install the pinned CLIs with `npm ci --prefix tests/cli`",
        )?
    } else {
        clis
    };
    let work = args
        .work_dir
        .clone()
        .map_or_else(|| next_to_exe("bench-tmp"), Ok)?;
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let work = work.canonicalize()?;

    let anthropic = FakeServer::anthropic().await;
    // gemini on its Google login (as the hub runs it), against a fake Google: needs root.
    let gemini = FakeServer::google(&work.join("google")).await?;

    // The hub strips ANTHROPIC_BASE_URL and API keys from a CLI's environment, so wrappers
    // point the real CLIs at the fake servers (as the end-to-end tests do).
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin)?;
    let claude_wrapper = bin.join("claude");
    write_script(
        &claude_wrapper,
        &format!(
            "#!/bin/sh\nexport ANTHROPIC_BASE_URL={}\nexec {} \"$@\"\n",
            anthropic.base_url,
            clis.join("claude").display()
        ),
    )?;
    let gemini_wrapper = gemini
        .gemini_login(&clis.join("gemini"), &work, TokenState::Fresh)
        .cli;
    // The direct runs get a login of their own and the hub's lock-down in their user file.
    let direct = gemini.gemini_login(
        &clis.join("gemini"),
        &work.join("direct-login"),
        TokenState::Fresh,
    );
    std::fs::write(
        direct.home.join(".gemini/settings.json"),
        r#"{"security":{"auth":{"selectedType":"oauth-personal"}},"tools":{"core":[]},"mcp":{"allowed":[]}}"#,
    )?;
    for d in ["home", "home-direct", "direct"] {
        std::fs::create_dir_all(work.join(d))?;
    }
    let mut hub_env = base_env(&work.join("home"));
    hub_env.push(("CLAUDE_CODE_OAUTH_TOKEN".into(), "test-oauth-token".into()));
    hub_env.push((
        "GEMINI_CLI_HOME".into(),
        work.join("gemini-home").display().to_string(),
    ));

    let env = Env {
        args,
        hub_bin,
        fake_claude,
        clis,
        work,
        anthropic,
        gemini,
        hub_env,
        claude_wrapper,
        gemini_wrapper,
    };

    let mut report = json!({
        "machine": machine(),
        "loadavg_start": loadavg(),
        "hub": env.hub_bin.file_name().map(|n| n.to_string_lossy().into_owned()),
    });
    log(&format!("load average at start: {}", loadavg()));

    if !env.args.skip.iter().any(|s| s == "ttft") {
        report["ttft"] = scenario_ttft(&env).await?;
    }
    if !env.args.skip.iter().any(|s| s == "fake") {
        report["fake"] = scenario_fake(&env).await?;
    }
    if !env.args.skip.iter().any(|s| s == "real") {
        report["real"] = scenario_real(&env).await?;
    }
    if !env.args.skip.iter().any(|s| s == "cpu") {
        report["cpu"] = scenario_cpu(&env).await?;
    }
    if !env.args.skip.iter().any(|s| s == "router") {
        report["router"] = router::scenario_router(&env).await?;
    }
    if !env.args.skip.iter().any(|s| s == "tools") {
        report["tools"] = tools::scenario_tools(&env).await?;
    }
    report["loadavg_end"] = json!(loadavg());
    report["wall_s"] = json!(started().elapsed().as_secs_f64());
    log(&format!("load average at end: {}", loadavg()));

    print_report(&report);
    if let Some(out) = &env.args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
        log(&format!("wrote {}", out.display()));
    }
    let _ = std::fs::remove_dir_all(&env.work);
    Ok(())
}

fn mem_json(m: Mem) -> Value {
    json!({"rss_mib": m.rss_mib(), "hwm_mib": m.hwm_mib()})
}

fn timing_pair(ttft: &Lat, total: &Lat) -> Value {
    json!({"ttft": ttft.to_json(), "total": total.to_json()})
}

/// Scenario 1: sequential requests, hub warm pool vs a fresh CLI per request, interleaved so
/// that drift in the machine's load hits both sides alike.
async fn scenario_ttft(env: &Env) -> anyhow::Result<Value> {
    log(
        "scenario 1: time to first token, hub (default pool: 1 warm process per provider) vs fresh CLI",
    );
    let providers = format!(
        "[providers.claude]\nkind = \"claude\"\ncommand = \"{}\"\n{}\n\n[providers.gemini]\nkind = \"gemini\"\ncommand = \"{}\"\n",
        env.claude_wrapper.display(),
        env.args.claude_extra,
        env.gemini_wrapper.display()
    );
    let hub = env.start_hub("hub-ttft", &providers).await?;
    let after_start = hub.mem();
    hub.wait_idle("claude", 1, secs(60.0)).await?;
    hub.wait_idle("gemini", 1, secs(60.0)).await?;
    tokio::time::sleep(secs(env.args.gemini_settle_secs.max(3.0))).await;
    let idle = hub.mem();
    log(&format!(
        "hub idle, warm pool up: RSS {:.1} MiB (HWM {:.1} MiB)",
        idle.rss_mib(),
        idle.hwm_mib()
    ));
    let http = load_client();
    let one_shot = env.claude_spec((
        ONE_SHOT_ARGS.iter().map(|s| s.to_string()).collect(),
        Vec::new(),
    ));

    // Warm-up (not recorded): the pooled process's first turn, and one fresh run.
    let mut warmup = Vec::new();
    for i in 0..2 {
        let t = chat_stream(
            &http,
            &hub.base,
            "claude",
            &format!("warm-up {i}"),
            Instant::now(),
        )
        .await
        .map_err(anyhow::Error::msg)?;
        warmup.push(json!({"hub_claude_ttft_ms": t.ttft.as_secs_f64() * 1e3}));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let w = claude_one_shot(&one_shot, "warm-up").await?;
    warmup.push(json!({"fresh_claude_ttft_ms": w.timing.ttft.as_secs_f64() * 1e3}));

    let (mut hub_ttft, mut hub_total, mut cli_ttft, mut cli_total, mut cli_exit) = (
        Lat::default(),
        Lat::default(),
        Lat::default(),
        Lat::default(),
        Lat::default(),
    );
    let mut hub_series = Vec::new();
    let mut cli_series = Vec::new();
    for i in 0..env.args.claude_runs {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = chat_stream(
            &http,
            &hub.base,
            "claude",
            &format!("ping {i}"),
            Instant::now(),
        )
        .await
        .map_err(anyhow::Error::msg)?;
        hub_ttft.record(t.ttft);
        hub_total.record(t.total);
        hub_series.push((t.ttft.as_secs_f64() * 1e4).round() / 10.0);
        // Let the hub finish its /clear before the fresh CLI competes for the CPU.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = claude_one_shot(&one_shot, &format!("ping {i}")).await?;
        cli_ttft.record(r.timing.ttft);
        cli_total.record(r.timing.total);
        cli_exit.record(r.exited);
        cli_series.push((r.timing.ttft.as_secs_f64() * 1e4).round() / 10.0);
    }
    log(&format!(
        "claude: hub TTFT p50 {:.1} ms, fresh TTFT p50 {:.1} ms",
        hub_ttft.p50(),
        cli_ttft.p50()
    ));

    let gemini_spec = env.gemini_spec();
    let settle = secs(env.args.gemini_settle_secs);
    let (mut ghub_ttft, mut ghub_total, mut gcli_ttft, mut gcli_total) = (
        Lat::default(),
        Lat::default(),
        Lat::default(),
        Lat::default(),
    );
    for i in 0..env.args.gemini_runs {
        hub.wait_idle("gemini", 1, secs(60.0)).await?;
        tokio::time::sleep(settle).await;
        let t = chat_stream(
            &http,
            &hub.base,
            "gemini",
            &format!("ping {i}"),
            Instant::now(),
        )
        .await
        .map_err(anyhow::Error::msg)?;
        ghub_ttft.record(t.ttft);
        ghub_total.record(t.total);
        // The hub starts the used process's successor now; let it finish starting.
        hub.wait_idle("gemini", 1, secs(60.0)).await?;
        tokio::time::sleep(settle).await;
        let r = gemini_one_shot(&gemini_spec, &format!("ping {i}")).await?;
        gcli_ttft.record(r.timing.ttft);
        gcli_total.record(r.timing.total);
    }
    log(&format!(
        "gemini: hub TTFT p50 {:.1} ms, fresh TTFT p50 {:.1} ms",
        ghub_ttft.p50(),
        gcli_ttft.p50()
    ));
    let after = hub.mem();
    let spawns = hub.metric("llm_mcp_hub_process_spawns_total").await;
    hub.stop().await;
    env.anthropic.clear_requests();
    env.gemini.clear_requests();
    Ok(json!({
        "claude_runs": env.args.claude_runs,
        "gemini_runs": env.args.gemini_runs,
        "warmup": warmup,
        "claude_hub": timing_pair(&hub_ttft, &hub_total),
        "claude_hub_ttft_series_ms": hub_series,
        "claude_fresh_ttft_series_ms": cli_series,
        "claude_fresh": timing_pair(&cli_ttft, &cli_total),
        "claude_fresh_exit": cli_exit.to_json(),
        "gemini_hub": timing_pair(&ghub_ttft, &ghub_total),
        "gemini_fresh": timing_pair(&gcli_ttft, &gcli_total),
        "mem_after_start": mem_json(after_start),
        "mem_idle": mem_json(idle),
        "mem_after": mem_json(after),
        "spawns": spawns,
    }))
}

/// Scenario 2: hub overhead over a CLI that answers at once.
async fn scenario_fake(env: &Env) -> anyhow::Result<Value> {
    log("scenario 2: hub over fake-claude");
    let mut levels = Vec::new();
    let warmup = secs(env.args.warmup_secs);
    let measure = secs(env.args.measure_secs);
    let runs = closed_then_paced(
        &env.args.levels,
        &env.args.paced_levels,
        Duration::from_millis(env.args.think_ms),
    );
    for (clients, pause) in runs {
        let slots = clients.min(64);
        let pause_ms = pause.as_millis();
        // Without the hub: the same turns (and /clear between them) on fake-claude processes.
        let pool = DirectPool::start(&env.fake_spec(), slots, true).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let own_before = hub::proc_cpu(std::process::id());
        let direct = direct_load(pool, clients, pause, warmup, measure).await;
        let driver_cpu_us = (hub::proc_cpu(std::process::id()) - own_before).as_secs_f64() * 1e6
            / direct.sent.max(1) as f64;
        log(&format!(
            "{clients} clients, {pause_ms} ms pause, direct fake-claude: p50 {:.3} ms p99 {:.3} ms, {:.0} turns/s, {driver_cpu_us:.0} µs driver CPU per turn",
            direct.total.p50(),
            direct.total.p99(),
            direct.rps()
        ));

        let providers = format!(
            "[providers.claude]\nkind = \"claude\"\ncommand = \"{}\"\nmax_concurrency = {slots}\nwarm_processes = {slots}\nmax_idle = {slots}\nmax_queue = {clients}\nqueue_timeout_secs = 120\n{}\n\n[providers.gemini]\nkind = \"gemini\"\nenabled = false\n",
            env.fake_claude.display(),
            env.args.claude_extra
        );
        let hub = env
            .start_hub(&format!("hub-fake-{clients}"), &providers)
            .await?;
        hub.wait_idle("claude", slots as u64, secs(60.0)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = hub.mem();
        let cpu_before = hub.cpu();
        let own_before = hub::proc_cpu(std::process::id());
        let result = hub_load(&hub, clients, pause, warmup, measure).await;
        // Per request sent, warm-up included: the CPU time covers the whole load.
        let per_request = |d: Duration| d.as_secs_f64() * 1e6 / result.sent.max(1) as f64;
        let cpu_us = per_request(hub.cpu() - cpu_before);
        let client_cpu_us = per_request(hub::proc_cpu(std::process::id()) - own_before);
        let after = hub.mem();
        let spawns = hub.metric("llm_mcp_hub_process_spawns_total").await;
        let retired = hub.metric("llm_mcp_hub_process_retired_total").await;
        log(&format!(
            "{clients} clients, {pause_ms} ms pause, hub: p50 {:.3} ms p99 {:.3} ms, {:.0} req/s, {} errors, {cpu_us:.0} µs hub CPU and {client_cpu_us:.0} µs load-generator CPU per request, RSS idle {:.1} MiB, peak {:.1} MiB",
            result.total.p50(),
            result.total.p99(),
            result.rps(),
            result.error_count(),
            idle.rss_mib(),
            after.hwm_mib()
        ));
        hub.stop().await;
        levels.push(json!({
            "clients": clients,
            "pause_ms": pause_ms as u64,
            "max_concurrency": slots,
            "warm_processes": slots,
            "max_queue": clients,
            "hub": result.to_json(),
            "direct": direct.to_json(),
            "mem_idle": mem_json(idle),
            "mem_after": mem_json(after),
            "hub_cpu_us_per_request": cpu_us,
            "load_generator_cpu_us_per_request": client_cpu_us,
            "direct_driver_cpu_us_per_turn": driver_cpu_us,
            "spawns": spawns,
            "retired": retired,
        }));
    }
    Ok(json!({
        "warmup_s": env.args.warmup_secs,
        "measure_s": env.args.measure_secs,
        "levels": levels,
    }))
}

/// `pause`: slept before each request, off the clock.
async fn direct_load(
    pool: Arc<DirectPool>,
    clients: usize,
    pause: Duration,
    warmup: Duration,
    measure: Duration,
) -> LoadResult {
    let result = closed_loop(clients, warmup, measure, move |c, s| {
        let pool = pool.clone();
        async move {
            tokio::time::sleep(pause).await;
            pool.turn(&format!("bench {c}-{s}")).await
        }
    })
    .await;
    // Let the last resets finish before the processes are killed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    result
}

/// `pause`: slept before each request, off the clock.
async fn hub_load(
    hub: &Hub,
    clients: usize,
    pause: Duration,
    warmup: Duration,
    measure: Duration,
) -> LoadResult {
    let http = load_client();
    let base: Arc<str> = hub.base.clone().into();
    closed_loop(clients, warmup, measure, move |c, s| {
        let http = http.clone();
        let base = base.clone();
        async move {
            tokio::time::sleep(pause).await;
            chat_stream(
                &http,
                &base,
                "claude",
                &format!("bench {c}-{s}"),
                Instant::now(),
            )
            .await
        }
    })
    .await
}

/// Scenario 3: concurrent clients over the real claude warm pool vs real long-lived claude
/// processes driven directly (same command line, same /clear between turns).
async fn scenario_real(env: &Env) -> anyhow::Result<Value> {
    let n = env.args.real_clients;
    log(&format!(
        "scenario 3: {n} clients over real claude, direct then hub"
    ));
    let warmup = secs(env.args.warmup_secs.max(3.0));
    let measure = secs(env.args.real_measure_secs);
    // Long-lived processes answer slowly right after spawn; give them time to start.
    let startup = secs(8.0);

    let mut directs = Vec::new();
    for reset_in_slot in [false, true] {
        let pool = DirectPool::start(&env.claude_spec(long_launch()), n, reset_in_slot).await?;
        tokio::time::sleep(startup).await;
        let direct = direct_load(pool, n, Duration::ZERO, warmup, measure).await;
        log(&format!(
            "direct (reset in slot: {reset_in_slot}): p50 {:.1} ms p99 {:.1} ms, {:.1} turns/s, {} errors",
            direct.total.p50(),
            direct.total.p99(),
            direct.rps(),
            direct.error_count()
        ));
        directs.push(direct);
        tokio::time::sleep(secs(2.0)).await;
    }
    let direct_slot = directs.pop().expect("two direct runs");
    let direct = directs.pop().expect("two direct runs");
    tokio::time::sleep(secs(2.0)).await;
    env.anthropic.clear_requests();

    let providers = format!(
        "[providers.claude]\nkind = \"claude\"\ncommand = \"{}\"\nmax_concurrency = {n}\nwarm_processes = {n}\nmax_idle = {n}\nmax_queue = {}\n{}\n\n[providers.gemini]\nkind = \"gemini\"\nenabled = false\n",
        env.claude_wrapper.display(),
        n.max(64),
        env.args.claude_extra
    );
    let hub = env.start_hub("hub-real", &providers).await?;
    hub.wait_idle("claude", n as u64, secs(120.0)).await?;
    tokio::time::sleep(startup).await;
    let idle = hub.mem();
    let result = hub_load(&hub, n, Duration::ZERO, warmup, measure).await;
    let after = hub.mem();
    let spawns = hub.metric("llm_mcp_hub_process_spawns_total").await;
    let retired = hub.metric("llm_mcp_hub_process_retired_total").await;
    log(&format!(
        "hub: p50 {:.1} ms p99 {:.1} ms, {:.1} req/s, {} errors",
        result.total.p50(),
        result.total.p99(),
        result.rps(),
        result.error_count()
    ));
    hub.stop().await;
    env.anthropic.clear_requests();
    Ok(json!({
        "clients": n,
        "warmup_s": warmup.as_secs_f64(),
        "measure_s": measure.as_secs_f64(),
        "direct": direct.to_json(),
        "direct_reset_in_slot": direct_slot.to_json(),
        "hub": result.to_json(),
        "mem_idle": mem_json(idle),
        "mem_after": mem_json(after),
        "spawns": spawns,
        "retired": retired,
    }))
}

/// Scenario 4: what one request costs the machine in CPU over a long-lived real claude: the
/// turn, and the `/clear` that must follow it before the process serves anyone else. With the
/// cores saturated, no scheduling can make `clients` closed-loop requests finish faster than
/// `clients × (turn + reset) / cores`.
async fn scenario_cpu(env: &Env) -> anyhow::Result<Value> {
    let runs = env.args.cpu_turns;
    log(&format!(
        "scenario 4: CPU of {runs} turns and resets of one real claude process"
    ));
    let mut cli = LongLived::spawn(&env.claude_spec(long_launch())).await?;
    tokio::time::sleep(secs(8.0)).await;
    cli.turn("warm up", Instant::now()).await?;
    cli.clear().await?;
    let (mut turn_cpu, mut clear_cpu) = (Duration::ZERO, Duration::ZERO);
    let (mut turn_wall, mut clear_wall) = (Duration::ZERO, Duration::ZERO);
    for i in 0..runs {
        let (cpu0, start) = (cli.cpu_time(), Instant::now());
        cli.turn(&format!("question {i}"), start).await?;
        let (cpu1, mid) = (cli.cpu_time(), Instant::now());
        cli.clear().await?;
        let (cpu2, end) = (cli.cpu_time(), Instant::now());
        turn_cpu += cpu1 - cpu0;
        clear_cpu += cpu2 - cpu1;
        turn_wall += mid - start;
        clear_wall += end - mid;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / runs as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let n = env.args.real_clients as f64;
    let floor = n * (ms(turn_cpu) + ms(clear_cpu)) / cores;
    log(&format!(
        "turn {:.1} ms CPU ({:.1} ms wall), /clear {:.1} ms CPU ({:.1} ms wall)",
        ms(turn_cpu),
        ms(turn_wall),
        ms(clear_cpu),
        ms(clear_wall)
    ));
    Ok(json!({
        "runs": runs,
        "turn_cpu_ms": ms(turn_cpu),
        "turn_wall_ms": ms(turn_wall),
        "clear_cpu_ms": ms(clear_cpu),
        "clear_wall_ms": ms(clear_wall),
        "clients": env.args.real_clients,
        "cores": cores,
        "saturated_latency_floor_ms": floor,
    }))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Markdown tables of the results, on stdout.
fn print_report(r: &Value) {
    println!("# hub-bench results\n");
    println!("machine: {}", r["machine"]);
    println!(
        "load average: start {}, end {}; wall time {:.0} s\n",
        r["loadavg_start"],
        r["loadavg_end"],
        f(&r["wall_s"])
    );
    if let Some(t) = r.get("ttft") {
        println!(
            "## 1. Sequential requests: hub warm pool vs fresh CLI ({} claude, {} gemini runs per side)\n",
            t["claude_runs"], t["gemini_runs"]
        );
        println!("| path | TTFT p50 | TTFT p99 | total p50 | total p99 |\n|---|---|---|---|---|");
        for (name, key) in [
            ("claude via hub (warm)", "claude_hub"),
            ("fresh `claude -p`", "claude_fresh"),
            ("gemini via hub (pre-started)", "gemini_hub"),
            ("fresh `gemini`", "gemini_fresh"),
        ] {
            let v = &t[key];
            println!(
                "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
                f(&v["ttft"]["p50_ms"]),
                f(&v["ttft"]["p99_ms"]),
                f(&v["total"]["p50_ms"]),
                f(&v["total"]["p99_ms"])
            );
        }
        for (name, hub, fresh) in [
            ("claude", "claude_hub", "claude_fresh"),
            ("gemini", "gemini_hub", "gemini_fresh"),
        ] {
            println!(
                "\n{name}: hub TTFT / fresh TTFT = {:.3} (p50), {:.3} (p99)",
                f(&t[hub]["ttft"]["p50_ms"]) / f(&t[fresh]["ttft"]["p50_ms"]),
                f(&t[hub]["ttft"]["p99_ms"]) / f(&t[fresh]["ttft"]["p99_ms"])
            );
        }
        println!(
            "fresh claude process gone after: p50 {:.1} ms",
            f(&t["claude_fresh_exit"]["p50_ms"])
        );
        println!(
            "hub memory: {:.1} MiB after start, {:.1} MiB idle with warm pool, peak {:.1} MiB\n",
            f(&t["mem_after_start"]["rss_mib"]),
            f(&t["mem_idle"]["rss_mib"]),
            f(&t["mem_after"]["hwm_mib"])
        );
    }
    if let Some(fk) = r.get("fake") {
        println!("## 2. Hub over fake-claude (answers at once)\n");
        println!(
            "| clients | pause | slots | hub p50 | hub p99 | hub req/s | direct p50 | direct p99 | direct turns/s | added p50 | added p99 | errors | RSS idle | RSS peak |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for l in fk["levels"].as_array().into_iter().flatten() {
            let (h, d) = (&l["hub"], &l["direct"]);
            println!(
                "| {} | {} ms | {} | {:.2} ms | {:.2} ms | {:.0} | {:.3} ms | {:.3} ms | {:.0} | {:.2} ms | {:.2} ms | {} | {:.1} MiB | {:.1} MiB |",
                l["clients"],
                l["pause_ms"],
                l["max_concurrency"],
                f(&h["total"]["p50_ms"]),
                f(&h["total"]["p99_ms"]),
                f(&h["rps"]),
                f(&d["total"]["p50_ms"]),
                f(&d["total"]["p99_ms"]),
                f(&d["rps"]),
                f(&h["total"]["p50_ms"]) - f(&d["total"]["p50_ms"]),
                f(&h["total"]["p99_ms"]) - f(&d["total"]["p99_ms"]),
                h["errors"],
                f(&l["mem_idle"]["rss_mib"]),
                f(&l["mem_after"]["hwm_mib"])
            );
        }
        println!();
    }
    if let Some(re) = r.get("real") {
        println!(
            "## 3. {} concurrent clients over real claude (warm)\n",
            re["clients"]
        );
        println!(
            "| path | TTFT p50 | TTFT p99 | total p50 | total p99 | req/s | n | errors |\n|---|---|---|---|---|---|---|---|"
        );
        for (name, key) in [
            ("direct, /clear off the clock", "direct"),
            ("direct, /clear in the slot", "direct_reset_in_slot"),
            ("hub", "hub"),
        ] {
            let v = &re[key];
            println!(
                "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} | {} | {} |",
                f(&v["ttft"]["p50_ms"]),
                f(&v["ttft"]["p99_ms"]),
                f(&v["total"]["p50_ms"]),
                f(&v["total"]["p99_ms"]),
                f(&v["rps"]),
                v["ok"],
                v["errors"]
            );
        }
        println!(
            "\nhub-added vs /clear off the clock: p50 {:.1} ms, p99 {:.1} ms; vs /clear in the slot: p50 {:.1} ms, p99 {:.1} ms",
            f(&re["hub"]["total"]["p50_ms"]) - f(&re["direct"]["total"]["p50_ms"]),
            f(&re["hub"]["total"]["p99_ms"]) - f(&re["direct"]["total"]["p99_ms"]),
            f(&re["hub"]["total"]["p50_ms"]) - f(&re["direct_reset_in_slot"]["total"]["p50_ms"]),
            f(&re["hub"]["total"]["p99_ms"]) - f(&re["direct_reset_in_slot"]["total"]["p99_ms"]),
        );
        println!(
            "hub RSS idle {:.1} MiB, peak {:.1} MiB; spawns {}, retired {}",
            f(&re["mem_idle"]["rss_mib"]),
            f(&re["mem_after"]["hwm_mib"]),
            re["spawns"],
            re["retired"]
        );
    }
    let c = &r["cpu"];
    if c.is_object() {
        println!(
            "\n## 4. CPU per request of one real claude process ({} turns)\n",
            c["runs"]
        );
        println!("| step | CPU per request | wall per request |\n|---|---|---|");
        for (name, key) in [("turn", "turn"), ("`/clear`", "clear")] {
            println!(
                "| {name} | {:.1} ms | {:.1} ms |",
                f(&c[format!("{key}_cpu_ms")]),
                f(&c[format!("{key}_wall_ms")])
            );
        }
        println!(
            "\nfloor of the closed-loop latency at {} clients on {} cores: {:.0} ms",
            c["clients"],
            c["cores"],
            f(&c["saturated_latency_floor_ms"])
        );
    }
    if let Some(ro) = r.get("router") {
        print_router(ro);
    }
}

fn print_router(ro: &Value) {
    println!(
        "\n## 5. Router over {} workers running fake-claude\n",
        ro["workers"]
    );
    println!(
        "router RSS idle (workers discovered): {:.1} MiB (HWM {:.1} MiB)\n",
        f(&ro["router_mem_idle"]["rss_mib"]),
        f(&ro["router_mem_idle"]["hwm_mib"])
    );
    println!(
        "| clients | pause | path | TTFT p50 | TTFT p99 | total p50 | total p99 | req/s | n | errors | router CPU/req | workers CPU/req |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for l in ro["levels"].as_array().into_iter().flatten() {
        for (name, key, cpu) in [
            ("direct (worker protocol)", "direct", "direct_cpu"),
            ("through the router", "router", "router_cpu"),
        ] {
            let v = &l[key];
            println!(
                "| {} | {} ms | {name} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.0} | {} | {} | {:.0} µs | {:.0} µs |",
                l["clients"],
                l["pause_ms"],
                f(&v["ttft"]["p50_ms"]),
                f(&v["ttft"]["p99_ms"]),
                f(&v["total"]["p50_ms"]),
                f(&v["total"]["p99_ms"]),
                f(&v["rps"]),
                v["ok"],
                v["errors"],
                f(&l[cpu]["router_cpu_us_per_request"]),
                f(&l[cpu]["workers_cpu_us_per_request"])
            );
        }
        let ad = &l["added"];
        println!(
            "| {} | {} ms | **router-added** | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | | | | | |",
            l["clients"],
            l["pause_ms"],
            f(&ad["ttft_p50_ms"]),
            f(&ad["ttft_p99_ms"]),
            f(&ad["total_p50_ms"]),
            f(&ad["total_p99_ms"])
        );
    }
    let st = &ro["streams"];
    println!(
        "\n{} slow streams ({} words, {} ms apart): {} complete and correct, {} wrong text, errors {}; peak open {}, peak streaming at once {}; TTFT p50 {:.0} ms p99 {:.0} ms, total p50 {:.0} ms p99 {:.0} ms; wall {:.1} s",
        st["streams"],
        st["words"],
        st["delay_ms"],
        st["ok"],
        st["wrong_text"],
        st["errors"],
        st["peak_open_requests"],
        st["peak_streaming_at_once"],
        f(&st["ttft"]["p50_ms"]),
        f(&st["ttft"]["p99_ms"]),
        f(&st["total"]["p50_ms"]),
        f(&st["total"]["p99_ms"]),
        f(&st["wall_s"])
    );
    println!(
        "router RSS before {:.1} MiB, peak sampled {:.1} MiB, HWM {:.1} MiB; router CPU {:.2} s for the streams",
        f(&st["router_mem_before"]["rss_mib"]),
        f(&st["router_peak_rss_sampled_mib"]),
        f(&st["router_mem_after"]["hwm_mib"]),
        f(&st["cpu"]["router_cpu_s"])
    );
}
