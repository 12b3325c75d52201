//! Harness for cross-component tests: starts the real `llm-mcp-hub` binary against the real
//! `claude` and `gemini` CLIs (from `tests/cli`, pinned), which talk to fake model servers on
//! 127.0.0.1.
//!
//! The hub binary must be built first (`cargo build -p llm-mcp-hub`; `scripts/test` does it),
//! and the CLIs installed (`npm ci --prefix tests/cli`).

pub mod cluster;
pub mod pod;
pub mod redis;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fake_models::{FakeServer, TokenState};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::process::{Child, Command};

/// Where the pinned CLIs are installed.
pub fn cli_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LLM_MCP_HUB_TEST_CLI_BIN") {
        return PathBuf::from(dir);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/node_modules/.bin");
    assert!(
        dir.join("claude").exists() && dir.join("gemini").exists(),
        "the pinned CLIs are missing: run `npm ci --prefix tests/cli` (scripts/test does it)"
    );
    dir.canonicalize().expect("CLI dir")
}

/// A fake Google for gemini's login in `dir` (see `fake_models::FakeServer::google`).
pub async fn google(dir: &Path) -> FakeServer {
    FakeServer::google(&dir.join("google"))
        .await
        .unwrap_or_else(|e| panic!("start the fake Google: {e}"))
}

/// The target directory of this build (`target/debug`).
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> → target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lies in target/<profile>/deps")
        .to_path_buf()
}

/// An HTTP client for tests. reqwest in this workspace needs a TLS provider installed first
/// (see `llm_mcp_hub::tls`).
pub fn http_client() -> reqwest::Client {
    llm_mcp_hub::tls::install_crypto_provider();
    reqwest::Client::new()
}

pub fn hub_binary() -> PathBuf {
    let bin = build_dir().join("llm-mcp-hub");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p llm-mcp-hub` first (scripts/test does it)",
        bin.display()
    );
    bin
}

/// A private directory for one test. It lies in the build tree, not /tmp: gemini refuses
/// settings files below a world-writable directory.
pub fn private_dir() -> tempfile::TempDir {
    let root = private_root();
    std::fs::create_dir_all(&root).expect("e2e tmp root");
    tempfile::Builder::new()
        .prefix("hub-")
        .tempdir_in(root)
        .expect("private dir")
}

/// The build tree when no directory above it is writable by others (a checkout under /tmp is),
/// else a directory in the user's cache.
fn private_root() -> PathBuf {
    let in_build = build_dir().join("e2e-tmp");
    if !has_shared_ancestor(&in_build) {
        return in_build;
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let fallback = home.join(".cache").join("llm-mcp-hub-tests");
    assert!(
        !has_shared_ancestor(&fallback),
        "no private directory for the tests: {} and {} both lie below a group- or world-writable directory",
        in_build.display(),
        fallback.display()
    );
    fallback
}

/// True when a directory above `path` is writable by group or others.
fn has_shared_ancestor(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .skip(1)
        .filter_map(|dir| std::fs::metadata(dir).ok())
        .any(|meta| meta.permissions().mode() & 0o022 != 0)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Options for one hub under test: extra TOML lines per provider and at top level.
#[derive(Default, Clone)]
pub struct HubOptions {
    pub top: String,
    pub claude: String,
    pub gemini: String,
    /// Start without the gemini provider (saves ≈1.5 s of CPU per warm process).
    pub no_gemini: bool,
    pub no_claude: bool,
    /// Overrides the scratch directory (to test an unsafe one).
    pub scratch_dir: Option<PathBuf>,
    /// A shell filter the claude wrapper pipes the CLI's stdout through (to imitate a version
    /// that prints other lines).
    pub claude_stdout_filter: Option<String>,
    /// Whether gemini's login starts with a valid access token or one it must refresh.
    pub gemini_token: TokenState,
    /// Shell lines the gemini wrapper runs before the CLI (to imitate an environment the CLI
    /// would otherwise see).
    pub gemini_prelude: Option<String>,
    /// Variables added to the hub's own environment.
    pub hub_env: Vec<(String, String)>,
    /// The user's gemini `settings.json` as the hub finds it at start (default: the Google login).
    pub gemini_user_settings: Option<String>,
}

impl HubOptions {
    /// Only claude, with extra `[providers.claude]` lines.
    pub fn claude_only(claude: &str) -> HubOptions {
        HubOptions {
            no_gemini: true,
            claude: claude.into(),
            ..Default::default()
        }
    }

    /// Only gemini, with extra `[providers.gemini]` lines.
    pub fn gemini_only(gemini: &str) -> HubOptions {
        HubOptions {
            no_claude: true,
            gemini: gemini.into(),
            ..Default::default()
        }
    }

    /// Extra top-level configuration lines.
    pub fn with_top(mut self, top: &str) -> HubOptions {
        self.top = top.into();
        self
    }
}

pub struct Hub {
    pub base: String,
    pub anthropic: FakeServer,
    pub gemini: FakeServer,
    pub http: reqwest::Client,
    pub scratch: PathBuf,
    /// The gemini home the hub was started with (its login and settings).
    pub gemini_home: PathBuf,
    child: Option<Child>,
    pub log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Hub {
    pub async fn start() -> Hub {
        Hub::start_with(HubOptions::default()).await
    }

    pub async fn start_with(opts: HubOptions) -> Hub {
        let anthropic = FakeServer::anthropic().await;
        let dir = private_dir();
        let root = dir.path();
        let clis = cli_bin_dir();
        // gemini runs on its Google login, as in production, against a fake Google (which
        // needs root; claude-only hubs do without it).
        let gemini = if opts.no_gemini {
            FakeServer::gemini().await
        } else {
            google(root).await
        };

        // Wrappers point the real CLIs at the fake servers. Only a test does this: the hub
        // itself strips ANTHROPIC_BASE_URL and every API key from the CLI's environment.
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let run_claude = match &opts.claude_stdout_filter {
            Some(filter) => format!("{} \"$@\" | {filter}", clis.join("claude").display()),
            None => format!("exec {} \"$@\"", clis.join("claude").display()),
        };
        write_script(
            &bin.join("claude"),
            &format!(
                "#!/bin/sh\nexport ANTHROPIC_BASE_URL={}\n{run_claude}\n",
                anthropic.base_url,
            ),
        );
        let gemini_home = if opts.no_gemini {
            root.join("gemini-home")
        } else {
            let login = gemini.gemini_login(&clis.join("gemini"), root, opts.gemini_token);
            let prelude = opts.gemini_prelude.as_deref().unwrap_or_default();
            write_script(
                &bin.join("gemini"),
                &format!(
                    "#!/bin/sh\n{prelude}\nexec {} \"$@\"\n",
                    login.cli.display()
                ),
            );
            if let Some(settings) = &opts.gemini_user_settings {
                std::fs::write(login.home.join(".gemini/settings.json"), settings).unwrap();
            }
            login.home
        };
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let scratch = opts
            .scratch_dir
            .clone()
            .unwrap_or_else(|| root.join("scratch"));

        let port = free_port();
        let mut config = format!(
            "listen = \"127.0.0.1:{port}\"\nscratch_dir = \"{}\"\nshutdown_grace_secs = 10\n{}\n",
            scratch.display(),
            opts.top
        );
        if !opts.no_claude {
            config += &format!(
                "[providers.claude]\nkind = \"claude\"\ncommand = \"{}\"\n{}\n",
                bin.join("claude").display(),
                opts.claude
            );
        } else {
            config += "[providers.claude]\nenabled = false\n";
        }
        if !opts.no_gemini {
            config += &format!(
                "[providers.gemini]\nkind = \"gemini\"\ncommand = \"{}\"\n{}\n",
                bin.join("gemini").display(),
                opts.gemini
            );
        } else {
            config += "[providers.gemini]\nkind = \"gemini\"\nenabled = false\n";
        }
        let config_path = root.join("hub.toml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = root.join("hub.log");
        let log = std::fs::File::create(&log_path).unwrap();

        let child = Command::new(hub_binary())
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("CLAUDE_CODE_OAUTH_TOKEN", "test-oauth-token")
            .env("GEMINI_CLI_HOME", &gemini_home)
            // Planted to prove the hub never hands an API key to a CLI.
            .env("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
            .env("OPENAI_API_KEY", "sk-must-not-leak")
            .env("RUST_LOG", "info,llm_mcp_hub=debug")
            .envs(opts.hub_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start the hub");
        let hub = Hub {
            base: format!("http://127.0.0.1:{port}"),
            anthropic,
            gemini,
            http: http_client(),
            scratch,
            gemini_home,
            child: Some(child),
            log_path,
            _dir: dir,
        };
        hub.wait_ready().await;
        hub
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("hub did not start; log:\n{}", self.log());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("hub running")
    }

    /// POSTs a chat completion request.
    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .expect("request reaches the hub")
    }

    /// Sends a chat request in the background, to overlap it with others.
    pub fn spawn_chat(
        &self,
        body: Value,
        session: Option<&str>,
    ) -> tokio::task::JoinHandle<reqwest::Response> {
        let mut request = self.http.post(self.url("/v1/chat/completions")).json(&body);
        if let Some(session) = session {
            request = request.header("X-Session-ID", session);
        }
        tokio::spawn(async move { request.send().await.expect("request reaches the hub") })
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
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

    /// PIDs of every live process working in the hub's scratch directories: the CLIs and
    /// anything they started.
    pub fn cli_pids(&self) -> Vec<i32> {
        processes_under(&self.scratch)
    }

    /// Waits until `check` holds for the CLI process list, or panics with the log.
    pub async fn wait_for_clis(&self, what: &str, check: impl Fn(&[i32]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pids = self.cli_pids();
            if check(&pids) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: CLI processes now {pids:?}\nhub log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the provider reports `n` idle (warm) processes.
    pub async fn wait_idle(&self, provider: &str, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let providers = self.get_json("/v1/providers").await;
            let idle = providers["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == provider)
                .map(|p| p["pool"]["idle"].as_u64().unwrap());
            if idle >= Some(n) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{provider}: {idle:?} idle processes, wanted {n}\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the hub to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("hub running");
        let pid = Pid::from_raw(child.id().expect("pid") as i32);
        kill(pid, Signal::SIGTERM).unwrap();
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("hub exits after SIGTERM")
            .unwrap()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        // The CLIs must not outlive a test even when the hub is killed hard.
        for pid in processes_under(&self.scratch) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Processes whose working directory lies under `dir` (zombies have none and are left out).
pub fn processes_under(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

/// An error response's status and OpenAI-shaped body.
pub async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON error body"))
}

/// The `content` of each message of a session as `/v1/sessions/{id}` returns it.
pub fn message_texts(session: &Value) -> Vec<String> {
    session["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().expect("text content").to_string())
        .collect()
}

/// Reads an SSE response into its `data:` payloads.
pub async fn sse_data(response: reqwest::Response) -> Vec<String> {
    let text = response.text().await.expect("stream body");
    text.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(|d| d.trim().to_string())
        .collect()
}

/// The user message for a fake model directive plus some text.
pub fn user(text: &str) -> Value {
    serde_json::json!({"role": "user", "content": text})
}

/// A client's function tool, `get_weather(city)`, as OpenAI's `tools` list.
pub fn weather_tool() -> Value {
    serde_json::json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

/// A user message the fake model answers by calling `get_weather(city)`, named as `provider`'s
/// CLI names the client's tools to the model.
pub fn asks_for_weather(provider: &str, city: &str) -> Value {
    let prefix = if provider == "gemini" {
        "mcp_hub_"
    } else {
        "mcp__hub__"
    };
    user(&format!(
        "weather in {city}? [[tool:{prefix}get_weather:{{\"city\":\"{city}\"}}]]"
    ))
}

/// A `[[api_keys]]` TOML entry for `key` (for `HubOptions::top`).
pub fn api_key_entry(id: &str, key: &str, providers: Option<&[&str]>) -> String {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    let providers = providers
        .map(|p| format!("providers = {p:?}\n"))
        .unwrap_or_default();
    format!("[[api_keys]]\nid = \"{id}\"\nsha256 = \"{hash}\"\n{providers}")
}

impl Hub {
    /// `llm-mcp-hub mcp-stdio` with this hub's configuration file and environment, for MCP
    /// tests: with no `args` it runs its own providers in-process (next to the running hub's);
    /// `--hub-url` makes it forward to a hub instead. stdin/stdout are left to the MCP client;
    /// the file returned is for its stderr (`mcp-stdio.log` beside the hub's log).
    pub fn mcp_stdio_command(&self, args: &[&str]) -> (Command, std::fs::File) {
        let root = self.log_path.parent().expect("hub dir");
        let log = std::fs::File::create(root.join("mcp-stdio.log")).unwrap();
        let mut command = Command::new(hub_binary());
        command
            .arg("mcp-stdio")
            .arg("--config")
            .arg(root.join("hub.toml"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", root.join("home"))
            .env("CLAUDE_CODE_OAUTH_TOKEN", "test-oauth-token")
            .env("GEMINI_CLI_HOME", root.join("gemini-home"))
            .env("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
            .env("RUST_LOG", "info,llm_mcp_hub=debug")
            .kill_on_drop(true);
        (command, log)
    }

    /// What `mcp-stdio` wrote to stderr.
    pub fn mcp_stdio_log(&self) -> String {
        let root = self.log_path.parent().expect("hub dir");
        std::fs::read_to_string(root.join("mcp-stdio.log")).unwrap_or_default()
    }
}
