//! Cluster mode under test: `llm-mcp-hub worker` processes (each with its own fake model
//! server, standing for one subscription account) and `llm-mcp-hub router` processes in front
//! of them, all real binaries and real CLIs on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fake_models::{FakeServer, TokenState};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::{
    cli_bin_dir, free_port, http_client, hub_binary, private_dir, processes_under, write_script,
};

/// The credential routers present to workers in these tests.
pub const WORKER_TOKEN: &str = "test-worker-credential-0123456789";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Claude,
    Gemini,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Claude => "claude",
            Kind::Gemini => "gemini",
        }
    }
}

/// What a worker is started with.
pub struct WorkerSpec {
    pub kind: Kind,
    /// The provider name (an LLMProvider's name).
    pub provider: String,
    pub account: String,
    /// Port to listen on (a free one when `None`); a router can list a worker before it runs.
    pub port: Option<u16>,
    /// Address to listen on (default 127.0.0.1).
    pub host: Option<String>,
    /// Extra `[providers.<name>]` lines.
    pub provider_toml: String,
    /// Extra top-level lines.
    pub top_toml: String,
}

impl WorkerSpec {
    pub fn new(kind: Kind, provider: &str, account: &str) -> WorkerSpec {
        WorkerSpec {
            kind,
            provider: provider.into(),
            account: account.into(),
            port: None,
            host: None,
            provider_toml: String::new(),
            top_toml: String::new(),
        }
    }
}

/// A running worker and the fake model server its account talks to.
pub struct Worker {
    pub url: String,
    pub port: u16,
    pub fake: FakeServer,
    pub scratch: PathBuf,
    pub token_file: PathBuf,
    pub log_path: PathBuf,
    pub spec_provider: String,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Worker {
    pub async fn start(spec: WorkerSpec) -> Worker {
        let dir = private_dir();
        let root = dir.path();
        let fake = match spec.kind {
            Kind::Claude => FakeServer::anthropic().await,
            // gemini on its Google login, as a worker pod runs it.
            Kind::Gemini => crate::google(root).await,
        };
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let scratch = root.join("scratch");
        let clis = cli_bin_dir();
        // The wrapper stands for this account's vendor endpoint; the hub strips such variables
        // itself, so only a wrapper (a test) can set them.
        let wrapper = match spec.kind {
            Kind::Claude => format!(
                "#!/bin/sh\nexport ANTHROPIC_BASE_URL={}\nexec {} \"$@\"\n",
                fake.base_url,
                clis.join("claude").display()
            ),
            Kind::Gemini => {
                let login = fake.gemini_login(&clis.join("gemini"), root, TokenState::Fresh);
                format!("#!/bin/sh\nexec {} \"$@\"\n", login.cli.display())
            }
        };
        let command = bin.join(spec.kind.as_str());
        write_script(&command, &wrapper);
        let gemini_home = root.join("gemini-home");
        std::fs::create_dir_all(gemini_home.join(".gemini")).unwrap();
        let token_file = root.join("worker-token");
        std::fs::write(&token_file, format!("{WORKER_TOKEN}\n")).unwrap();
        let port = spec.port.unwrap_or_else(free_port);
        let host = spec.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        let config = format!(
            "scratch_dir = \"{}\"\nshutdown_grace_secs = 20\n{}\n[providers.{}]\nkind = \"{}\"\ncommand = \"{}\"\n{}\n",
            scratch.display(),
            spec.top_toml,
            spec.provider,
            spec.kind.as_str(),
            command.display(),
            spec.provider_toml,
        );
        let config_path = root.join("worker.toml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = root.join("worker.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(hub_binary())
            .args(["worker", "--provider", spec.kind.as_str(), "--listen"])
            .arg(format!("{host}:{port}"))
            .arg("--config")
            .arg(&config_path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("CLAUDE_CODE_OAUTH_TOKEN", format!("oauth-{}", spec.account))
            .env("GEMINI_CLI_HOME", &gemini_home)
            .env("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
            .env("LLM_MCP_HUB_PROVIDER_NAME", &spec.provider)
            .env("LLM_MCP_HUB_ACCOUNT", &spec.account)
            .env("LLM_MCP_HUB_WORKER_TOKEN_FILE", &token_file)
            .env("RUST_LOG", "info,llm_mcp_hub=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start a worker");
        let worker = Worker {
            url: format!("http://{host}:{port}"),
            port,
            fake,
            scratch,
            token_file,
            log_path,
            spec_provider: spec.provider,
            child: Some(child),
            _dir: dir,
        };
        worker.wait_warm().await;
        worker
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The worker's own status (with the credential).
    pub async fn status(&self) -> Option<Value> {
        let r = http_client()
            .get(format!("{}/internal/v1/status", self.url))
            .bearer_auth(WORKER_TOKEN)
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Waits until the worker accepts turns with a warm CLI waiting.
    async fn wait_warm(&self) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(s) = self.status().await
                && s["accepting"] == true
                && s["capacity"]["idle"].as_u64() >= Some(1)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not become warm; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("worker running") as i32
    }

    /// `kill -9` of the worker (its CLIs die with it: parent-death signal).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// SIGTERM; returns the child to wait on.
    pub fn terminate(&mut self) -> Child {
        let child = self.child.take().expect("worker running");
        kill(
            Pid::from_raw(child.id().expect("pid") as i32),
            Signal::SIGTERM,
        )
        .unwrap();
        child
    }

    /// CLI processes working in this worker's scratch directories.
    pub fn cli_pids(&self) -> Vec<i32> {
        processes_under(&self.scratch)
    }

    /// Conversation requests this worker's account sent to its model.
    pub fn turns(&self) -> usize {
        self.fake
            .chat_requests()
            .iter()
            .filter(|r| r.is_generation())
            .count()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        for pid in processes_under(&self.scratch) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// A static-discovery entry for a worker.
pub fn static_entry(provider: &str, url: &str, token_file: &Path) -> String {
    format!(
        "[[discovery.static]]\nprovider = \"{provider}\"\nurl = \"{url}\"\ntoken_file = \"{}\"\n",
        token_file.display()
    )
}

/// A running router.
pub struct Router {
    pub base: String,
    pub http: reqwest::Client,
    pub log_path: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Router {
    /// A router over `discovery` (TOML: `[[discovery.static]]` entries…) with extra top-level
    /// `top` lines (`redis_url`, keys…), given before the discovery tables.
    pub async fn start(top: &str, discovery: &str) -> Router {
        Router::start_with_env(top, discovery, &[]).await
    }

    pub async fn start_with_env(top: &str, discovery: &str, env: &[(&str, &str)]) -> Router {
        let dir = private_dir();
        let root = dir.path();
        let port = free_port();
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\nshutdown_grace_secs = 10\n{top}\n[routing]\nstatus_interval_ms = 300\neject_base_ms = 500\neject_max_ms = 2000\n\n{discovery}\n"
        );
        let config_path = root.join("router.toml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = root.join("router.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(hub_binary())
            .args(["router", "--config"])
            .arg(&config_path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", root)
            .env("RUST_LOG", "info,llm_mcp_hub=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start a router");
        let router = Router {
            base: format!("http://127.0.0.1:{port}"),
            http: http_client(),
            log_path,
            child: Some(child),
            _dir: dir,
        };
        router.wait_ready().await;
        router
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "router not ready; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The `/v1/providers` entry of `provider`.
    pub async fn provider(&self, provider: &str) -> Value {
        let all = self.get_json("/v1/providers").await;
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == provider)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until `provider` has `n` ready workers.
    pub async fn wait_ready_workers(&self, provider: &str, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let p = self.provider(provider).await;
            if p["ready_workers"].as_u64() == Some(n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{provider}: wanted {n} ready workers, have {p}\nrouter log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn chat(&self, body: Value, session: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = self.http.post(self.url("/v1/chat/completions")).json(&body);
        if let Some(s) = session {
            request = request.header("X-Session-ID", s);
        }
        request
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}
