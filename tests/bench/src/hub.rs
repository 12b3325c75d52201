//! The `llm-mcp-hub` binary under test: started with a generated config, watched through
//! `/proc/<pid>/status` and its HTTP endpoints, stopped with SIGTERM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::process::{Child, Command};

pub struct Hub {
    pub base: String,
    pub scratch: PathBuf,
    pub log_path: PathBuf,
    http: reqwest::Client,
    child: Option<Child>,
    pid: u32,
}

/// Memory of one process from `/proc/<pid>/status`, in KiB (its children are not counted).
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Mem {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

pub fn proc_mem(pid: u32) -> Mem {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Mem {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// User + system CPU time of one process from `/proc/<pid>/stat` (zero when it is gone).
pub fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: fields are counted after its closing parenthesis,
    // where utime and stime are the 12th and 13th.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let per_sec = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / per_sec)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Hub {
    /// Starts `bin serve` with `providers` (TOML provider tables) in `dir`, with only `env`.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        providers: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Hub> {
        std::fs::create_dir_all(dir)?;
        let scratch = dir.join("scratch");
        let port = free_port();
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\nscratch_dir = \"{}\"\nshutdown_grace_secs = 5\n\n{providers}\n",
            scratch.display()
        );
        let config_path = dir.join("hub.toml");
        std::fs::write(&config_path, config)?;
        let log_path = dir.join("hub.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let pid = child.id().context("hub pid")?;
        let hub = Hub {
            base: format!("http://127.0.0.1:{port}"),
            scratch,
            log_path,
            http: crate::client::http_client(),
            child: Some(child),
            pid,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = hub.http.get(format!("{}/healthz", hub.base)).send().await
                && r.status().is_success()
            {
                return Ok(hub);
            }
            if Instant::now() > deadline {
                bail!("the hub did not come up; log:\n{}", hub.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn mem(&self) -> Mem {
        proc_mem(self.pid)
    }

    /// CPU time the hub itself has used so far (user + system, its children not counted).
    pub fn cpu(&self) -> Duration {
        proc_cpu(self.pid)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub async fn providers(&self) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/v1/providers", self.base))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Waits until `provider` has at least `n` idle processes.
    pub async fn wait_idle(&self, provider: &str, n: u64, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let providers = self.providers().await?;
            let idle = providers["data"]
                .as_array()
                .and_then(|list| list.iter().find(|p| p["name"] == provider))
                .and_then(|p| p["pool"]["idle"].as_u64())
                .unwrap_or(0);
            if idle >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{provider}: {idle} idle processes after {limit:?}, wanted {n}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The samples of a Prometheus metric family: label set → value.
    pub async fn metric(&self, name: &str) -> BTreeMap<String, f64> {
        let Ok(r) = self.http.get(format!("{}/metrics", self.base)).send().await else {
            return BTreeMap::new();
        };
        let text = r.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| {
                let (labels, value) = l[name.len()..].rsplit_once(' ')?;
                Some((labels.trim().to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// SIGTERM, wait for the exit, then kill whatever CLI process is left in its scratch tree.
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
            if tokio::time::timeout(Duration::from_secs(15), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        sweep(&self.scratch);
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        sweep(&self.scratch);
    }
}

/// Kills every process whose working directory lies under `dir`.
pub fn sweep(dir: &Path) {
    for pid in e2e::processes_under(dir) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}
