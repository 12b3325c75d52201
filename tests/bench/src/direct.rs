//! The CLIs driven without the hub: fresh one-shot runs, and long-lived claude processes
//! (real or fake) fed one turn after another.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

use llm_mcp_hub::provider::{Adapter, Message, ProviderKind, Role};

use crate::client::Timing;

fn claude() -> &'static dyn Adapter {
    ProviderKind::Claude.adapter()
}

/// How to start one CLI: the program, its arguments and its whole environment.
#[derive(Clone)]
pub struct CliSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Files the arguments name, relative to the working directory (the hub's launch spec, e.g.
    /// claude's system prompt file), written before the start.
    pub files: Vec<(PathBuf, String)>,
    /// Private working and temp directories are made below this.
    pub scratch_root: PathBuf,
}

impl CliSpec {
    /// A command in a fresh empty working directory with a private `TMPDIR`, in its own
    /// process group.
    fn command(&self) -> anyhow::Result<(Command, tempfile::TempDir)> {
        std::fs::create_dir_all(&self.scratch_root)?;
        let dir = tempfile::Builder::new()
            .prefix("direct-")
            .tempdir_in(&self.scratch_root)?;
        let work = dir.path().join("work");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&work)?;
        std::fs::create_dir(&tmp)?;
        for (rel, contents) in &self.files {
            let path = work.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, contents)?;
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("TMPDIR", &tmp)
            .current_dir(&work)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        Ok((cmd, dir))
    }
}

/// What a line of a CLI's stream-json output means for the timing.
enum Seen {
    Text,
    Done,
    Failed(String),
    Other,
}

fn claude_line(line: &str) -> Seen {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return Seen::Other;
    };
    match v.get("type").and_then(Value::as_str) {
        Some("stream_event") => {
            let e = &v["event"];
            if e["type"] == "content_block_delta"
                && e["delta"]["type"] == "text_delta"
                && e["delta"]["text"].as_str().is_some_and(|t| !t.is_empty())
            {
                Seen::Text
            } else {
                Seen::Other
            }
        }
        Some("result") => {
            if v["is_error"] == true {
                Seen::Failed(format!("result: {}", v["result"]))
            } else {
                Seen::Done
            }
        }
        _ => Seen::Other,
    }
}

fn gemini_line(line: &str) -> Seen {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return Seen::Other;
    };
    match v.get("type").and_then(Value::as_str) {
        Some("message")
            if v["role"] == "assistant" && v["content"].as_str().is_some_and(|t| !t.is_empty()) =>
        {
            Seen::Text
        }
        Some("result") if v["status"] == "success" => Seen::Done,
        Some("result") => Seen::Failed(format!("result: {}", v["error"])),
        _ => Seen::Other,
    }
}

/// One run of a one-shot CLI: spawn, prompt on stdin (closed), read to the result.
/// `exited` is when the process was gone.
pub struct OneShot {
    pub timing: Timing,
    pub exited: Duration,
}

async fn one_shot(
    spec: &CliSpec,
    prompt: &str,
    classify: fn(&str) -> Seen,
) -> anyhow::Result<OneShot> {
    let (mut cmd, _dir) = spec.command()?;
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| spec.program.display().to_string())?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(prompt.as_bytes()).await?;
    drop(stdin);
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut ttft = None;
    let total = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .map_err(|_| anyhow!("no output for 60 s"))??
            .ok_or_else(|| anyhow!("stdout closed before the result"))?;
        match classify(&line) {
            Seen::Text if ttft.is_none() => ttft = Some(start.elapsed()),
            Seen::Done => break start.elapsed(),
            Seen::Failed(e) => bail!(e),
            _ => {}
        }
    };
    // Drain the rest so the CLI is not blocked on a full pipe, then wait for the exit.
    while let Ok(Ok(Some(_))) =
        tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await
    {}
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let exited = start.elapsed();
    if !matches!(status, Ok(Ok(s)) if s.success()) {
        bail!("exit {status:?}");
    }
    Ok(OneShot {
        timing: Timing {
            ttft: ttft.ok_or_else(|| anyhow!("no text delta"))?,
            total,
        },
        exited,
    })
}

pub async fn claude_one_shot(spec: &CliSpec, prompt: &str) -> anyhow::Result<OneShot> {
    one_shot(spec, prompt, claude_line).await
}

pub async fn gemini_one_shot(spec: &CliSpec, prompt: &str) -> anyhow::Result<OneShot> {
    one_shot(spec, prompt, gemini_line).await
}

/// A long-lived `claude -p --input-format stream-json` process (or the fake one).
pub struct LongLived {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pgid: Pid,
    _dir: tempfile::TempDir,
}

impl LongLived {
    pub async fn spawn(spec: &CliSpec) -> anyhow::Result<LongLived> {
        let (mut cmd, dir) = spec.command()?;
        let mut child = cmd
            .spawn()
            .with_context(|| spec.program.display().to_string())?;
        let pgid = Pid::from_raw(child.id().context("pid")? as i32);
        let stdin = child.stdin.take().context("stdin")?;
        let lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        Ok(LongLived {
            child,
            stdin,
            lines,
            pgid,
            _dir: dir,
        })
    }

    /// Writes one stdin line exactly as the hub encodes it.
    async fn send(&mut self, line: &[u8]) -> anyhow::Result<()> {
        self.stdin.write_all(line).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// One user turn, timed from `start` to the first text delta and to the `result`.
    pub async fn turn(&mut self, text: &str, start: Instant) -> anyhow::Result<Timing> {
        let turn = claude().encode_turn(&[Message::text(Role::User, text.to_owned())]);
        self.send(&turn).await?;
        let mut ttft = None;
        loop {
            let line = self.next_line().await?;
            match claude_line(&line) {
                Seen::Text if ttft.is_none() => ttft = Some(start.elapsed()),
                Seen::Done => {
                    return Ok(Timing {
                        ttft: ttft.ok_or_else(|| anyhow!("no text delta"))?,
                        total: start.elapsed(),
                    });
                }
                Seen::Failed(e) => bail!(e),
                _ => {}
            }
        }
    }

    /// `/clear`, read to its empty result (what the hub does between two requests).
    pub async fn clear(&mut self) -> anyhow::Result<()> {
        self.send(claude().reset_turn().expect("claude resets with /clear"))
            .await?;
        loop {
            let line = self.next_line().await?;
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["type"] == "result"
            {
                if v["local_command"] != "clear" || v["is_error"] == true {
                    bail!("unexpected /clear result: {line}");
                }
                return Ok(());
            }
        }
    }

    /// CPU time (user + system) used so far by every live process of this CLI's group, from
    /// /proc: counts what a process costs the machine, whatever else is running.
    pub fn cpu_time(&self) -> Duration {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        let mut total = 0u64;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // Fields after the command name, which may itself hold spaces: state is 3rd,
            // pgrp 5th, utime 14th and stime 15th of the whole line.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.get(2).and_then(|f| f.parse::<i32>().ok()) != Some(self.pgid.as_raw()) {
                continue;
            }
            for i in [11, 12] {
                total += fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        Duration::from_secs_f64(total as f64 / ticks)
    }

    async fn next_line(&mut self) -> anyhow::Result<String> {
        tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .map_err(|_| anyhow!("no output for 60 s"))??
            .ok_or_else(|| anyhow!("stdout closed: exit {:?}", self.child.try_wait()))
    }
}

impl Drop for LongLived {
    fn drop(&mut self) {
        let _ = killpg(self.pgid, Signal::SIGKILL);
    }
}

/// Long-lived processes shared by concurrent clients the way the hub shares its pool: a
/// client waits for a free process, runs its turn, and the process is `/clear`ed before the
/// next client gets it. The client's clock runs from asking for a process to the `result`.
///
/// With `reset_in_slot` the `/clear` runs after the turn has returned, while the process still
/// holds its slot (what the hub does): a client that comes straight back may wait for it.
/// Without it the client itself waits for the `/clear` off the clock, so only the turn counts.
pub struct DirectPool {
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<LongLived>>,
    reset_in_slot: bool,
}

impl DirectPool {
    pub async fn start(spec: &CliSpec, n: usize, reset_in_slot: bool) -> anyhow::Result<Arc<Self>> {
        let mut procs = Vec::with_capacity(n);
        for _ in 0..n {
            procs.push(LongLived::spawn(spec).await?);
        }
        Ok(Arc::new(DirectPool {
            slots: Arc::new(Semaphore::new(n)),
            idle: Mutex::new(procs),
            reset_in_slot,
        }))
    }

    pub async fn turn(self: &Arc<Self>, text: &str) -> Result<Timing, String> {
        let start = Instant::now();
        // Bounded: a process that failed takes its slot with it, and with all of them gone a
        // client would otherwise wait forever.
        let permit =
            tokio::time::timeout(Duration::from_secs(60), self.slots.clone().acquire_owned())
                .await
                .map_err(|_| "no process free for 60 s".to_string())?
                .map_err(|e| e.to_string())?;
        let Some(mut p) = self.idle.lock().expect("idle lock").pop() else {
            return Err("no process left".into());
        };
        let timing = match p.turn(text, start).await {
            Ok(t) => t,
            Err(e) => {
                // The process is dropped (killed); its slot goes with it.
                permit.forget();
                return Err(e.to_string());
            }
        };
        let pool = self.clone();
        let reset = async move {
            if p.clear().await.is_ok() {
                pool.idle.lock().expect("idle lock").push(p);
                drop(permit);
            } else {
                permit.forget();
            }
        };
        if self.reset_in_slot {
            tokio::spawn(reset);
        } else {
            reset.await;
        }
        Ok(timing)
    }
}
