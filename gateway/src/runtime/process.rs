//! One CLI subprocess: spawned in its own process group, in a private scratch directory, with an
//! allow-listed environment; what it says is read as events (`output`).
//!
//! Dropping a `CliProcess` kills its whole process group, so a cancelled request, a timeout or
//! a panic can never leave a CLI (or anything it started) behind.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::output::{Output, ProcessEvent, lossy_lines};
use super::tool_server::{Registration, ToolServer};
use crate::provider::tools::{self, McpStep};
use crate::provider::{Adapter, CliEvent, ControlReply, LaunchProfile, process_env};

/// The longest stdout/stderr line the hub reads; claude's `result` line carries the whole answer.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// Stderr lines kept for logs when a process fails.
const STDERR_TAIL_LINES: usize = 20;
/// Longest stderr line kept (longer ones are skipped, and reading goes on).
const MAX_STDERR_LINE_BYTES: usize = 64 * 1024;

/// The scratch root must be this user's alone: owned by the effective uid, not writable by group
/// or others.
fn check_scratch_root(root: &std::path::Path) -> Result<(), SpawnError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(root).map_err(SpawnError::Scratch)?;
    let ours = meta.uid() == nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || !ours || meta.mode() & 0o022 != 0 {
        return Err(SpawnError::UnsafeScratch(root.display().to_string()));
    }
    Ok(())
}

/// Creates `path` afresh (never through an existing file or symlink), readable by this user only.
fn write_new(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(contents.as_bytes())
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How to start processes of one provider.
#[derive(Clone)]
pub struct Launcher {
    pub adapter: &'static dyn Adapter,
    pub command: PathBuf,
    pub configured_env: BTreeMap<String, String>,
    /// Where scratch directories are made.
    pub scratch_root: PathBuf,
    /// Added to the hub's nice value for its processes (0: the hub's own priority).
    pub nice: i32,
}

pub struct CliProcess {
    pub id: u64,
    pub profile: LaunchProfile,
    pub started: Instant,
    pub turns: u32,
    /// Turns after which the pool retires this process (its `max_requests_per_process`, less
    /// a little jitter so processes started together are not all replaced at once).
    pub recycle_at: u32,
    /// What the metrics call this process's retirement once `recycle_at` is reached.
    pub recycle_reason: &'static str,
    /// The conversation id the CLI last reported (its init line); a reset must change it or
    /// say so otherwise.
    pub session_id: Option<String>,
    adapter: &'static dyn Adapter,
    /// The process's route on the tools server (CLIs that take tools over HTTP).
    tool_route: Option<Registration>,
    child: Child,
    pgid: Option<Pid>,
    stdin: Option<ChildStdin>,
    output: Output,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// `/proc/<pid>/statm`, kept open so reading the resident memory is one `pread`.
    statm: Option<std::fs::File>,
    /// When `rss_bytes_due` last read `statm`.
    rss_read_at: Option<Instant>,
    // Removed when the process is dropped: the CLI's temp files may hold the conversation.
    _scratch: tempfile::TempDir,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot create a scratch directory: {0}")]
    Scratch(std::io::Error),
    /// Another user could plant or swap files the CLI reads (its settings, its prompt).
    #[error(
        "refusing the scratch root {0}: it must be a directory owned by this user and writable by no one else (chmod go-w, or set scratch_dir)"
    )]
    UnsafeScratch(String),
    #[error(
        "'{0}' was not found: install the CLI and log in, put it on PATH, or set the provider's `command`"
    )]
    NotFound(String),
    #[error("cannot start the tools server: {0}")]
    ToolServer(std::io::Error),
    #[error("cannot start '{command}': {source}")]
    Exec {
        command: String,
        source: std::io::Error,
    },
}

/// A CLI is in its own process group, so nothing reaches it when the hub is killed outright
/// (SIGKILL, OOM killer): it would live on, holding a login, until its stdin's end is noticed —
/// never, while it waits on a model. The kernel kills it when the hub goes (Linux
/// `PR_SET_PDEATHSIG`). The signal follows the thread that spawned the child; these are the
/// runtime's worker threads, which live as long as the hub.
fn die_with_the_hub(cmd: &mut Command) {
    let hub = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec; prctl(2) and getppid(2) are
    // async-signal-safe and nothing is allocated.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The hub may have gone between fork and prctl, when no signal could be sent.
            if nix::unistd::getppid().as_raw() as u32 != hub {
                return Err(std::io::Error::other("the hub exited while starting a CLI"));
            }
            Ok(())
        });
    }
}

/// Lowers the child's scheduling priority below the hub's before it runs the CLI: its nice
/// value becomes the hub's plus `nice` (the kernel caps it at 19).
fn yield_to_the_hub(cmd: &mut Command, nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: the closure runs in the child between fork and exec; nice(2) is a plain system
    // call and nothing is allocated. The child has one thread, so this is the whole process;
    // the CLI's own threads inherit it.
    unsafe {
        cmd.pre_exec(move || {
            // -1 is also a valid result: only errno tells a failure.
            Errno::clear();
            if nix::libc::nice(nice) == -1 && Errno::last_raw() != 0 {
                return Err(Errno::last().into());
            }
            Ok(())
        });
    }
}

impl Launcher {
    pub async fn spawn(&self, profile: &LaunchProfile) -> Result<CliProcess, SpawnError> {
        std::fs::create_dir_all(&self.scratch_root).map_err(SpawnError::Scratch)?;
        check_scratch_root(&self.scratch_root)?;
        let scratch = tempfile::Builder::new()
            .prefix("llm-hub-")
            .tempdir_in(&self.scratch_root)
            .map_err(SpawnError::Scratch)?;
        let dir = scratch.path();
        let work = dir.join("work");
        let tmp = dir.join("tmp");
        for d in [&work, &tmp] {
            std::fs::create_dir(d).map_err(SpawnError::Scratch)?;
        }
        let (stderr_tx, stderr_events) = mpsc::unbounded_channel();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        // A CLI that takes tools over HTTP gets its own route on the hub's tools server,
        // removed with the process.
        let (tool_route, endpoint) = match &profile.tools {
            Some(tools) if self.adapter.tools_over_http() => {
                let server = ToolServer::shared().await.map_err(SpawnError::ToolServer)?;
                let (route, endpoint) = server.register(tools.clone(), calls_tx);
                (Some(route), Some(endpoint))
            }
            _ => (None, None),
        };
        let spec = self.adapter.launch(
            profile,
            dir,
            &|name| std::env::var(name).ok(),
            endpoint.as_ref(),
        );
        for (rel, contents) in &spec.files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(SpawnError::Scratch)?;
            }
            write_new(&path, contents).map_err(SpawnError::Scratch)?;
        }
        for (rel, target) in &spec.links {
            if target.exists() {
                let link = dir.join(rel);
                if let Some(parent) = link.parent() {
                    std::fs::create_dir_all(parent).map_err(SpawnError::Scratch)?;
                }
                std::os::unix::fs::symlink(target, &link).map_err(SpawnError::Scratch)?;
            }
        }
        let mut env = process_env(&spec, std::env::vars(), &self.configured_env);
        env.insert("TMPDIR".into(), tmp.to_string_lossy().into_owned());

        let mut cmd = Command::new(&self.command);
        cmd.args(&spec.args)
            .env_clear()
            .envs(&env)
            // An empty working directory: gemini puts the folder's file tree into the prompt.
            .current_dir(&work)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        die_with_the_hub(&mut cmd);
        yield_to_the_hub(&mut cmd, self.nice);
        let mut child = cmd.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => {
                SpawnError::NotFound(self.command.display().to_string())
            }
            _ => SpawnError::Exec {
                command: self.command.display().to_string(),
                source,
            },
        })?;
        let pgid = child.id().map(|p| Pid::from_raw(p as i32));
        // Absent where there is no procfs: memory-based recycling is then off.
        let statm = child
            .id()
            .and_then(|pid| std::fs::File::open(format!("/proc/{pid}/statm")).ok());
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));

        let adapter = self.adapter;
        let stdout = child.stdout.take().expect("stdout is piped");
        let output = Output::new(adapter, stdout, MAX_LINE_BYTES, stderr_events, calls);
        if let Some(stderr) = child.stderr.take() {
            let tail = stderr_tail.clone();
            tokio::spawn(async move {
                // Drained to the end whatever it holds: a reader that stopped would leave the
                // CLI blocked on a full pipe.
                let mut lines = lossy_lines(stderr, MAX_STDERR_LINE_BYTES);
                while let Some(line) = lines.next().await {
                    if let Some(event) = adapter.parse_stderr(&line) {
                        let _ = stderr_tx.send(event);
                    }
                    let mut tail = tail.lock().expect("stderr tail lock");
                    if tail.len() == STDERR_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        }
        let mut stdin = child.stdin.take();
        if let (Some(primer), Some(pipe)) = (adapter.primer(), stdin.as_mut()) {
            // A failure here shows again at the prompt's write, where it is reported.
            let _ = pipe.write_all(primer).await;
        }
        Ok(CliProcess {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            profile: profile.clone(),
            started: Instant::now(),
            turns: 0,
            recycle_at: u32::MAX,
            recycle_reason: "recycled",
            session_id: None,
            adapter,
            tool_route,
            child,
            pgid,
            stdin,
            output,
            stderr_tail,
            statm,
            rss_read_at: None,
            _scratch: scratch,
        })
    }
}

impl CliProcess {
    pub fn pid(&self) -> Option<u32> {
        self.pgid.map(|p| p.as_raw() as u32)
    }

    /// Writes to stdin; `close` ends stdin afterwards (one-shot CLIs read until EOF).
    pub async fn write(&mut self, bytes: &[u8], close: bool) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stdin closed"))?;
        stdin.write_all(bytes).await?;
        stdin.flush().await?;
        if close {
            self.stdin = None;
        }
        Ok(())
    }

    /// The next event of the CLI (`Closed` once its stdout has ended). Its requests to the hub are answered here, whatever the
    /// caller is doing (a turn, a reset, a warm-up): the MCP handshake and tool listing from the
    /// process's tool set, anything else refused. Only a call to a client's tool comes out, as
    /// `ToolCallWaiting`: its answer is the client's to give.
    pub async fn next_event(&mut self) -> ProcessEvent {
        loop {
            let event = self.output.next().await;
            let reply = match event {
                ProcessEvent::Cli(CliEvent::ToolServer {
                    request_id,
                    message,
                }) => {
                    let step = match &self.profile.tools {
                        Some(tools) => tools::mcp_step(tools, &message),
                        None => tools::mcp_step(&tools::ToolSet::new(Vec::new()), &message),
                    };
                    match step {
                        McpStep::Reply(answer) => (request_id, ControlReply::Mcp(answer)),
                        McpStep::Nothing => (
                            request_id,
                            ControlReply::Mcp(serde_json::json!({"jsonrpc": "2.0", "result": {}})),
                        ),
                        McpStep::Call {
                            rpc_id,
                            name,
                            tool_use_id,
                            arguments,
                        } => {
                            return ProcessEvent::Cli(CliEvent::ToolCallWaiting {
                                request_id,
                                rpc_id,
                                tool_use_id,
                                name,
                                arguments,
                            });
                        }
                    }
                }
                ProcessEvent::Cli(CliEvent::ControlRequest {
                    request_id,
                    subtype,
                }) => {
                    tracing::debug!(%subtype, "refusing a CLI's control request");
                    (
                        request_id,
                        ControlReply::Refused("not supported by this host"),
                    )
                }
                other => return other,
            };
            if let Some(line) = self.adapter.control_reply(&reply.0, reply.1) {
                // A broken stdin shows as the process closing, which the caller handles.
                let _ = self.write(&line, false).await;
            }
        }
    }

    /// Answers a tool call the CLI waits on with the client's result.
    pub async fn answer_tool_call(
        &mut self,
        request_id: &str,
        rpc_id: &serde_json::Value,
        result: &str,
    ) -> std::io::Result<()> {
        if let Some(route) = &self.tool_route {
            // A call the CLI gave up on needs no answer; the CLI reports what it did instead.
            route.answer(request_id, result.to_string());
            return Ok(());
        }
        let reply = ControlReply::Mcp(tools::call_result(rpc_id, result));
        match self.adapter.control_reply(request_id, reply) {
            Some(line) => self.write(&line, false).await,
            None => Err(std::io::Error::other("this CLI takes no tool results")),
        }
    }

    /// Drops what a process printed while it sat idle.
    pub fn drain_events(&mut self) {
        self.output.drain();
    }

    /// True while the process has not exited.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit code once the process is gone, waiting briefly for it to finish exiting.
    pub async fn exit_code(&mut self) -> Option<i32> {
        match tokio::time::timeout(std::time::Duration::from_secs(2), self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => None,
        }
    }

    /// The CLI's resident memory in bytes (its own process, not its children), or `None` when
    /// it cannot be read (no procfs, or the process is gone).
    pub fn rss_bytes(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let file = self.statm.as_ref()?;
        let mut buf = [0u8; 128];
        // procfs regenerates the file for a read at offset 0: always the current figure.
        let n = file.read_at(&mut buf, 0).ok()?;
        statm_rss_bytes(std::str::from_utf8(&buf[..n]).ok()?, page_size())
    }

    /// `rss_bytes` on the first call and then once `every` has passed since the last read;
    /// `None` in between.
    pub fn rss_bytes_due(&mut self, every: std::time::Duration) -> Option<u64> {
        if self.rss_read_at.is_some_and(|at| at.elapsed() < every) {
            return None;
        }
        self.rss_read_at = Some(Instant::now());
        self.rss_bytes()
    }

    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().expect("stderr tail lock");
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn kill_group(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // The group may already be gone; that is the outcome we want anyway.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |p| p as u64)
    })
}

/// The resident set in bytes from a `/proc/<pid>/statm` line (sizes in pages: total, resident, …).
fn statm_rss_bytes(statm: &str, page: u64) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page)
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        self.kill_group();
        // kill_on_drop then makes tokio reap the child in the background: no zombie.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resident_set_is_the_second_statm_field_in_pages() {
        assert_eq!(
            statm_rss_bytes("183645 52431 9120 1 0 60121 0\n", 4096),
            Some(52431 * 4096)
        );
        assert_eq!(statm_rss_bytes("183645\n", 4096), None);
        assert_eq!(statm_rss_bytes("", 4096), None);
    }

    use crate::provider::ProviderKind;

    #[tokio::test]
    async fn a_process_runs_below_the_hub_and_reports_its_resident_memory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        // Takes the claude adapter's arguments and waits on stdin.
        let cli = dir.path().join("cli");
        std::fs::write(&cli, "#!/bin/sh\nexec cat\n").unwrap();
        std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o700)).unwrap();
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o700)).unwrap();
        let launcher = Launcher {
            adapter: ProviderKind::Claude.adapter(),
            command: cli,
            configured_env: BTreeMap::new(),
            scratch_root: scratch,
            nice: 7,
        };
        let profile = LaunchProfile {
            model: "sonnet".into(),
            system: None,
            tools: None,
        };
        let process = launcher.spawn(&profile).await.unwrap();
        let pid = process.pid().unwrap();
        // It runs below the hub: the hub's nice value plus the configured 7.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        // From the state on: the state is field 3 of stat(5), the nice value field 19.
        let nice: i32 = fields[19 - 3].parse().unwrap();
        // SAFETY: a plain system call.
        let own = unsafe { nix::libc::getpriority(nix::libc::PRIO_PROCESS as _, 0) };
        assert_eq!(nice, (own + 7).min(19));
        let status = format!("/proc/{pid}/status");
        let vm_rss_kib = || {
            std::fs::read_to_string(&status)
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        };
        // The process may still be starting: compare once two reads around the kernel's own
        // figure agree.
        for _ in 0..100 {
            let before = process.rss_bytes().expect("procfs is there");
            let kib = vm_rss_kib();
            if process.rss_bytes() == Some(before) && kib.is_some() {
                assert!(before > 0);
                assert_eq!(Some(before / 1024), kib, "statm and status disagree");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the resident memory never held still");
    }

    #[tokio::test]
    async fn a_missing_cli_is_named_with_the_fix() {
        let scratch = tempfile::tempdir().unwrap();
        let launcher = Launcher {
            adapter: ProviderKind::Claude.adapter(),
            command: PathBuf::from("/nonexistent/claude"),
            configured_env: BTreeMap::new(),
            scratch_root: scratch.path().to_path_buf(),
            nice: 0,
        };
        let profile = LaunchProfile {
            model: "sonnet".into(),
            system: None,
            tools: None,
        };
        let Err(err) = launcher.spawn(&profile).await else {
            panic!("spawned a missing binary")
        };
        assert!(matches!(err, SpawnError::NotFound(_)), "{err}");
        assert!(err.to_string().contains("PATH"));
        // Nothing is left behind in the scratch root.
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_scratch_root_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_scratch_root(dir.path()).is_ok());
        for mode in [0o777, 0o770, 0o702] {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(
                matches!(
                    check_scratch_root(dir.path()),
                    Err(SpawnError::UnsafeScratch(_))
                ),
                "{mode:o}"
            );
        }
    }

    #[test]
    fn scratch_files_are_created_afresh_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("system-prompt.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_new(&link, "planted?").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let fresh = dir.path().join("fresh.txt");
        write_new(&fresh, "ok").unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
