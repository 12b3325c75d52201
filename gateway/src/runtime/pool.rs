//! A bounded pool of CLI processes for one provider.
//!
//! - At most `max_concurrency` requests run at once; up to `max_queue` more wait up to
//!   `queue_timeout`; beyond that a request gets `Busy` (429) at once.
//! - Processes are keyed by launch profile (model + system prompt). `warm_processes` of the
//!   default profile are started ahead of time, so a request does not pay the CLI's start-up.
//! - A long-lived process goes back to the pool only after a verified reset; anything else
//!   (a cancelled request, a timeout, a failed reset, an error) retires it, killing its process
//!   group.
//! - A long-lived process is recycled after about `max_requests_per_process` turns; its
//!   successor starts when it begins its last one, so no request waits for a start-up.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout_at;

use super::health::{Health, HealthState};
use super::output::ProcessEvent;
use super::parked::{self, Parking, Waiting};
use super::process::{CliProcess, Launcher};
use super::turn::{Call, Reset, ResetReading, Step, TurnState};
use crate::config::ProviderConfig;
use crate::metrics::Metrics;
use crate::provider::{
    ChatEvent, CliEvent, Failure, LaunchProfile, Message, ProcessMode, ProviderError, ProviderKind,
    Role, ToolSet, gemini,
};

/// Retry-After suggested to a client turned away because the pool is full.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(2);
/// Longest pause between attempts to replace processes that fail to start.
const MAX_SPAWN_BACKOFF: Duration = Duration::from_secs(30);
/// A process's memory is read after a request at most this often: a real CLI grows by well
/// under a MiB per request and takes seconds per request anyway, while reading procfs after
/// every turn of a fast one cost ≈ 2.5 % of the hub's CPU.
const RSS_READ_INTERVAL: Duration = Duration::from_secs(1);

pub struct Pool {
    name: String,
    cfg: ProviderConfig,
    launcher: Launcher,
    metrics: Arc<Metrics>,
    /// This provider's per-request series, looked up once.
    series: crate::metrics::ProviderSeries,
    default_profile: LaunchProfile,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    idle: Mutex<VecDeque<CliProcess>>,
    /// Warm processes being started right now, until parked or failed (so refills do not
    /// overshoot, and a request can wait for one instead of starting its own).
    starting: AtomicUsize,
    /// Woken when a warm process is parked, or fails to come up.
    parked: tokio::sync::Notify,
    consecutive_failures: AtomicU32,
    health: Mutex<Health>,
    /// Set once resets proved unverifiable: processes answer one request each.
    one_shot: AtomicBool,
    unverified_resets: AtomicU32,
    /// What `<command> --version` said, read at start.
    cli: Mutex<Option<super::version::CliVersion>>,
    /// Processes waiting on the client's tool results.
    parking: Arc<Parking>,
}

/// A snapshot for `/v1/providers` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub busy: usize,
    pub idle: usize,
    pub queued: usize,
    pub max_concurrency: usize,
    pub max_queue: usize,
    /// Processes waiting on their client's tool results (they hold no slot).
    #[serde(default)]
    pub parked: usize,
}

impl Pool {
    pub fn new(
        name: String,
        cfg: ProviderConfig,
        launcher: Launcher,
        metrics: Arc<Metrics>,
    ) -> Arc<Pool> {
        let default_profile = LaunchProfile {
            model: cfg.default_model.clone(),
            system: Some(cfg.default_system_prompt.clone()),
            tools: None,
        };
        let parking = Parking::new(
            cfg.max_parked_tool_turns,
            Duration::from_secs(cfg.tool_result_timeout_secs),
        );
        Arc::new(Pool {
            permits: Arc::new(Semaphore::new(cfg.max_concurrency)),
            series: metrics.provider_series(&name),
            name,
            cfg,
            launcher,
            metrics,
            default_profile,
            waiting: AtomicUsize::new(0),
            idle: Mutex::new(VecDeque::new()),
            starting: AtomicUsize::new(0),
            parked: tokio::sync::Notify::new(),
            consecutive_failures: AtomicU32::new(0),
            health: Mutex::new(Health::default()),
            one_shot: AtomicBool::new(false),
            unverified_resets: AtomicU32::new(0),
            cli: Mutex::new(None),
            parking,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    pub fn health(&self) -> Health {
        self.health.lock().expect("health lock").clone()
    }

    pub fn status(&self) -> PoolStatus {
        let max = self.cfg.max_concurrency;
        PoolStatus {
            busy: max - self.permits.available_permits().min(max),
            idle: self.idle.lock().expect("idle lock").len(),
            queued: self.waiting.load(Ordering::Relaxed),
            max_concurrency: max,
            max_queue: self.cfg.max_queue,
            parked: self.parking.count(),
        }
    }

    /// The profile a request runs under: its model, and its system prompt or the default one.
    pub fn profile(
        &self,
        model: &str,
        system: Option<String>,
        tools: Option<ToolSet>,
    ) -> LaunchProfile {
        LaunchProfile {
            model: model.to_string(),
            system: Some(system.unwrap_or_else(|| self.cfg.default_system_prompt.clone())),
            tools,
        }
    }

    /// How processes serve now: the adapter's mode, unless resets proved unverifiable.
    pub fn mode(&self) -> ProcessMode {
        if self.one_shot.load(Ordering::Relaxed) {
            ProcessMode::OneShot
        } else {
            self.launcher.adapter.mode()
        }
    }

    /// The CLI's version and where it stands against the supported range, once read.
    pub fn cli(&self) -> Option<super::version::CliVersion> {
        self.cli.lock().expect("cli lock").clone()
    }

    /// Starts the warm processes and reads the CLI's version. Call once, inside the runtime.
    pub fn start(self: &Arc<Self>) {
        self.refill_warm();
        if self.cfg.kind == ProviderKind::Gemini {
            self.warn_of_another_gemini_login();
        }
        let pool = self.clone();
        tokio::spawn(async move {
            let kind = pool.cfg.kind;
            let found = super::version::read(&pool.launcher.command, kind).await;
            match &found {
                Some(v) => {
                    let mode = pool.mode();
                    v.log(&pool.name, mode);
                    pool.metrics
                        .cli_info
                        .with_label_values(&[&pool.name, &v.version, v.support.as_str()])
                        .set(1);
                }
                None => {
                    tracing::warn!(provider = %pool.name, command = %pool.launcher.command.display(),
                    "cannot read the CLI's version (--version); its behaviour is checked at runtime only")
                }
            }
            *pool.cli.lock().expect("cli lock") = found;
        });
    }

    /// The hub runs gemini on its Google login only; a user whose settings chose an API key or
    /// another login learns why the hub does not use it (or says the login is missing).
    fn warn_of_another_gemini_login(&self) {
        let Some(path) = gemini::user_settings_path(&|name| std::env::var(name).ok()) else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        if let Some(selected) = gemini::other_login_selected(&text) {
            tracing::warn!(provider = %self.name, settings = %path.display(), %selected,
                "gemini's settings select another login; the hub runs gemini on its Google login (oauth-personal) only: run `gemini` once and choose \"Login with Google\"");
        }
    }

    /// Resets cannot be proven on this CLI version: stop reusing processes. Each request then
    /// takes a pre-started process that answers once, which still skips the start-up.
    fn fall_back_to_one_shot(&self) {
        if !self.one_shot.swap(true, Ordering::Relaxed) {
            let version = self
                .cli()
                .map(|v| v.version)
                .unwrap_or_else(|| "unknown".into());
            tracing::warn!(provider = %self.name, %version,
                "this CLI's reset between requests cannot be verified: serving pre-started one-shot processes instead of reusing them");
        }
    }

    /// Kills every idle process; in-flight requests end when their streams are dropped.
    pub fn shutdown(&self) {
        let drained: Vec<_> = self.idle.lock().expect("idle lock").drain(..).collect();
        for p in drained {
            self.retire(p, "shutdown");
        }
        self.parking.clear();
        self.update_gauges();
    }

    /// Runs one chat request: text deltas (and tool calls), then `Done`, or one error. Dropping
    /// the stream before it ends cancels the request and kills the CLI's process group.
    ///
    /// A request that ends with tool results continues the parked process that made the calls
    /// when `owner` parked it and the results answer its calls unchanged; otherwise a fresh
    /// process answers from the rendered conversation.
    pub fn chat(
        self: &Arc<Self>,
        profile: LaunchProfile,
        messages: Vec<Message>,
        owner: String,
    ) -> BoxStream<'static, Result<ChatEvent, ProviderError>> {
        let pool = self.clone();
        Box::pin(async_stream::stream! {
            let started = Instant::now();
            let gate = pool.health.lock().expect("health lock").gate(
                &pool.name,
                Duration::from_secs(pool.cfg.login_recheck_secs),
            );
            if let Err(e) = gate {
                pool.finish_request(started, Err(&e));
                yield Err(e);
                return;
            }
            let brings_results = messages.last().is_some_and(|m| m.role == Role::Tool);
            let mut resumed = if brings_results { pool.parking.resume(&messages, &owner) } else { None };
            // At most twice: a parked process that turns out dead before it said anything is
            // replaced by a fresh one (it may die, or be still exiting, when it is taken).
            loop {
                let resuming = resumed.is_some();
                // `asked`: the calls a resumed process asked for while it was parked.
                let (mut lease, mut answers, asked) = match pool.take_process(resumed.take(), &profile).await {
                    Ok(taken) => taken,
                    Err(e) => {
                        pool.finish_request(started, Err(&e));
                        yield Err(e);
                        return;
                    }
                };
                let deadline = tokio::time::Instant::now() + pool.cfg.request_timeout();
                let mut first_token = true;
                // Calls handed to the client that the CLI waits on: they go with it to its parking.
                let mut waiting = Vec::new();
                let outcome: Result<TurnEnd, ProviderError> = 'turn: {
                    let process = lease.process.as_mut().expect("lease holds a process");
                    if let Err(e) = pool.send_request(process, &messages, answers.as_mut(), asked).await {
                        break 'turn Err(e);
                    }
                    let mut turn = TurnState::new(
                        &pool.name,
                        pool.launcher.adapter,
                        profile.tools.as_ref(),
                        pool.cfg.max_upstream_retries,
                        answers.is_some(),
                    );
                    loop {
                        let event = match pool.next_cli_event(process, deadline).await {
                            Ok(event) => event,
                            Err(e) => break 'turn Err(e),
                        };
                        match turn.on_event(event) {
                            Step::Nothing => {}
                            Step::Session(id) => process.session_id = Some(id),
                            Step::Text(text) => {
                                if first_token {
                                    first_token = false;
                                    pool.series.time_to_first_token.observe(started.elapsed().as_secs_f64());
                                }
                                yield Ok(ChatEvent::Delta(text));
                            }
                            Step::Waiting(call) => match answers.as_mut().and_then(|a| a.take(&call)) {
                                Some(text) => {
                                    if let Err(e) = process.answer_tool_call(&call.request_id, &call.rpc_id, &text).await {
                                        break 'turn Err(pool.crashed(process, format!("cannot answer a tool call: {e}")).await);
                                    }
                                }
                                // A call of the answer being handed out, answered by the client's
                                // next request.
                                None => {
                                    waiting.push(call);
                                    if let Some(calls) = turn.handed_out() {
                                        break 'turn Ok(TurnEnd::ToolCalls(calls));
                                    }
                                }
                            },
                            Step::Calls(calls) => break 'turn Ok(TurnEnd::ToolCalls(calls)),
                            Step::Answered { text, usage } => {
                                if let Some(text) = text {
                                    yield Ok(ChatEvent::Delta(text));
                                }
                                break 'turn Ok(TurnEnd::Answered(usage));
                            }
                            Step::Failed(e) => break 'turn Err(e),
                        }
                    }
                };
                if resuming && first_token && matches!(outcome, Err(ProviderError::Crashed { .. })) {
                    tracing::debug!(provider = %pool.name, "the process parked on tool calls died; answering afresh");
                    drop(lease);
                    continue;
                }
                if brings_results {
                    let how = if resuming { "parked" } else { "fresh" };
                    pool.metrics.tool_continuations.with_label_values(&[&pool.name, how]).inc();
                }
                match outcome {
                    Ok(TurnEnd::Answered(usage)) => {
                        pool.finish_request(started, Ok(()));
                        pool.clone().release(lease);
                        yield Ok(ChatEvent::Done { usage });
                    }
                    Ok(TurnEnd::ToolCalls(made)) => {
                        pool.finish_request(started, Ok(()));
                        let handed = pool.park_on_calls(lease, made, owner.clone(), waiting);
                        yield Ok(ChatEvent::ToolCalls(handed));
                        yield Ok(ChatEvent::Done { usage: None });
                    }
                    Err(e) => {
                        pool.finish_request(started, Err(&e));
                        // The lease drops here and kills the process group.
                        drop(lease);
                        yield Err(e);
                    }
                }
                return;
            }
        })
    }

    /// The process that answers a request, with the results it is owed: the parked one the
    /// request's tool results continue (taking a concurrency slot again), or one of the pool's.
    async fn take_process(
        self: &Arc<Self>,
        resumed: Option<(parked::ParkedTurn, HashMap<String, String>)>,
        profile: &LaunchProfile,
    ) -> Result<(Lease, Option<parked::Answers>, Vec<Waiting>), ProviderError> {
        let Some((parked, results)) = resumed else {
            return Ok((self.acquire(profile).await?, None, Vec::new()));
        };
        let permit = self.acquire_permit().await?;
        let lease = Lease {
            pool: self.clone(),
            process: Some(parked.process),
            permit: Some(permit),
        };
        Ok((
            lease,
            Some(parked::Answers::new(parked.calls, results)),
            parked.waiting,
        ))
    }

    /// Hands the request to its process: the prompt, or to a process resumed from its parking
    /// the results of the calls it `asked` for while it waited (later ones are answered as they
    /// come).
    async fn send_request(
        &self,
        process: &mut CliProcess,
        messages: &[Message],
        answers: Option<&mut parked::Answers>,
        asked: Vec<Waiting>,
    ) -> Result<(), ProviderError> {
        let Some(results) = answers else {
            process.drain_events();
            let input = self.launcher.adapter.encode_turn(messages);
            let close = self.mode() == ProcessMode::OneShot;
            if let Err(e) = process.write(&input, close).await {
                return Err(self
                    .crashed(process, format!("cannot write the prompt: {e}"))
                    .await);
            }
            return Ok(());
        };
        for w in asked {
            let text = results
                .take(&w)
                .unwrap_or_else(|| MISSING_RESULT.to_string());
            if let Err(e) = process
                .answer_tool_call(&w.request_id, &w.rpc_id, &text)
                .await
            {
                return Err(self
                    .crashed(process, format!("cannot answer a tool call: {e}"))
                    .await);
            }
        }
        Ok(())
    }

    /// The process's next event within the request's deadline and the silence limit; its
    /// exit, or a timeout, as the request's error.
    async fn next_cli_event(
        &self,
        process: &mut CliProcess,
        deadline: tokio::time::Instant,
    ) -> Result<CliEvent, ProviderError> {
        let silence_limit = tokio::time::Instant::now() + self.cfg.idle_timeout();
        let wait_until = deadline.min(silence_limit);
        match timeout_at(wait_until, process.next_event()).await {
            Ok(ProcessEvent::Cli(event)) => Ok(event),
            Ok(ProcessEvent::Closed) => {
                let code = process.exit_code().await;
                let failure = self
                    .launcher
                    .adapter
                    .classify_exit(code, &process.stderr_tail());
                if matches!(failure, Failure::Crashed(_)) {
                    self.metrics.crashes.with_label_values(&[&self.name]).inc();
                }
                Err(ProviderError::from_failure(&self.name, failure))
            }
            Err(_) => Err(ProviderError::Timeout {
                provider: self.name.clone(),
                after: if wait_until == deadline {
                    self.cfg.request_timeout()
                } else {
                    self.cfg.idle_timeout()
                },
            }),
        }
    }

    /// Parks the process on the calls its model made, until the client's results come back
    /// (without a concurrency slot), and returns the calls as the client gets them.
    fn park_on_calls(
        &self,
        mut lease: Lease,
        made: Vec<Call>,
        owner: String,
        waiting: Vec<Waiting>,
    ) -> Vec<crate::provider::ToolCall> {
        let (park, pending) = parked::name_calls(made);
        let handed: Vec<_> = pending.iter().map(|c| c.call.clone()).collect();
        let process = lease.process.take().expect("lease holds a process");
        drop(lease);
        for turn in self.parking.park(park, process, owner, pending, waiting) {
            self.retire(turn.process, "tool_wait_evicted");
        }
        self.metrics
            .tool_calls
            .with_label_values(&[&self.name])
            .inc_by(handed.len() as u64);
        self.update_gauges();
        handed
    }

    async fn crashed(&self, process: &mut CliProcess, detail: String) -> ProviderError {
        self.metrics.crashes.with_label_values(&[&self.name]).inc();
        let code = process.exit_code().await;
        ProviderError::Crashed {
            provider: self.name.clone(),
            detail: format!("{detail} (exit {code:?}): {}", process.stderr_tail()),
        }
    }

    fn finish_request(&self, started: Instant, outcome: Result<(), &ProviderError>) {
        self.series
            .request_duration
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(()) => {
                self.health.lock().expect("health lock").record_success();
                self.consecutive_failures.store(0, Ordering::Relaxed);
                self.series.answered.inc();
            }
            Err(e) => {
                self.health
                    .lock()
                    .expect("health lock")
                    .record_failure(e, Duration::from_secs(self.cfg.usage_limit_backoff_secs));
                // Replacements of crashing processes are started with growing pauses, so a CLI
                // that dies at once cannot turn every request into a spawn storm.
                if matches!(
                    e,
                    ProviderError::Crashed { .. }
                        | ProviderError::Spawn { .. }
                        | ProviderError::LockDown { .. }
                ) {
                    self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
                }
                match e {
                    ProviderError::Busy { .. } => {}
                    _ => {
                        tracing::warn!(provider = %self.name, error = %e, kind = e.kind(), "chat request failed")
                    }
                }
                if let ProviderError::Crashed { detail, .. } = e {
                    tracing::debug!(provider = %self.name, %detail, "CLI failure detail");
                }
                self.metrics
                    .requests
                    .with_label_values(&[&self.name, e.kind()])
                    .inc();
            }
        }
    }

    async fn acquire(self: &Arc<Self>, profile: &LaunchProfile) -> Result<Lease, ProviderError> {
        let permit = self.acquire_permit().await?;
        let process = match self.take_idle(profile) {
            Some(p) => p,
            None => match self.wait_for_warm(profile).await {
                Some(p) => p,
                None => self.spawn(profile).await?,
            },
        };
        // One-shot processes are used up: start their successors now. Long-lived ones come
        // back after their reset, so they are replaced only when retired.
        if self.mode() == ProcessMode::OneShot {
            if *profile == self.default_profile {
                self.refill_warm();
            } else {
                self.clone().prestart(profile.clone());
            }
        }
        let lease = Lease {
            pool: self.clone(),
            process: Some(process),
            permit: Some(permit),
        };
        self.update_gauges();
        Ok(lease)
    }

    /// A concurrency slot, waiting in the bounded queue when all are taken.
    async fn acquire_permit(&self) -> Result<OwnedSemaphorePermit, ProviderError> {
        let busy = || ProviderError::Busy {
            provider: self.name.clone(),
            retry_after: BUSY_RETRY_AFTER,
        };
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.cfg.max_queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(busy());
                }
                self.update_gauges();
                let waited = tokio::time::timeout(
                    self.cfg.queue_timeout(),
                    self.permits.clone().acquire_owned(),
                )
                .await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        self.update_gauges();
                        return Err(busy());
                    }
                }
            }
        };
        Ok(permit)
    }

    /// When a warm process of this profile is already starting (a recycle just retired one),
    /// waits for it rather than starting a second one: it began earlier, so it is ready
    /// sooner, and the pool does not spawn twice per recycle. `None` when none is starting or
    /// it did not come up (the caller then starts its own).
    async fn wait_for_warm(&self, profile: &LaunchProfile) -> Option<CliProcess> {
        if *profile != self.default_profile {
            return None;
        }
        let limit = Duration::from_millis(self.cfg.reset_timeout_ms) + Duration::from_secs(30);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let parked = self.parked.notified();
            tokio::pin!(parked);
            // Registered before looking again, so a park in between is not missed.
            parked.as_mut().enable();
            if let Some(p) = self.take_idle(profile) {
                return Some(p);
            }
            if self.starting.load(Ordering::Acquire) == 0 {
                return None;
            }
            if timeout_at(deadline, parked).await.is_err() {
                return None;
            }
        }
    }

    fn take_idle(&self, profile: &LaunchProfile) -> Option<CliProcess> {
        let mut idle = self.idle.lock().expect("idle lock");
        loop {
            let pos = idle.iter().position(|p| p.profile == *profile)?;
            let mut p = idle.remove(pos).expect("position is in range");
            if p.is_alive() {
                return Some(p);
            }
            drop(idle);
            self.metrics.crashes.with_label_values(&[&self.name]).inc();
            tracing::warn!(provider = %self.name, pid = ?p.pid(), stderr = %p.stderr_tail(), "idle CLI process died");
            idle = self.idle.lock().expect("idle lock");
        }
    }

    async fn spawn(&self, profile: &LaunchProfile) -> Result<CliProcess, ProviderError> {
        match self.launcher.spawn(profile).await {
            Ok(mut p) => {
                p.recycle_at = recycle_limit(self.cfg.max_requests_per_process, rand::random());
                self.metrics.spawns.with_label_values(&[&self.name]).inc();
                tracing::debug!(provider = %self.name, pid = ?p.pid(), model = %profile.model, "started CLI process");
                Ok(p)
            }
            Err(e) => Err(ProviderError::Spawn {
                provider: self.name.clone(),
                detail: e.to_string(),
            }),
        }
    }

    /// Starts one process of `profile` in the background and parks it idle.
    fn prestart(self: Arc<Self>, profile: LaunchProfile) {
        let failures = self.consecutive_failures.load(Ordering::Relaxed);
        tokio::spawn(async move { self.start_and_park(&profile, failures).await });
    }

    /// Starts one process of `profile` (after a backoff when starts have been failing) and parks
    /// it once it can answer; a failed start counts against the provider's health.
    async fn start_and_park(&self, profile: &LaunchProfile, failures: u32) {
        if failures > 0 {
            tokio::time::sleep(spawn_backoff(failures)).await;
        }
        match self.spawn(profile).await {
            Ok(p) => self.park_when_ready(p).await,
            Err(e) => {
                self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
                self.health
                    .lock()
                    .expect("health lock")
                    .record_failure(&e, Duration::ZERO);
                tracing::warn!(provider = %self.name, error = %e, "cannot start a CLI process ahead of a request");
            }
        }
    }

    /// Tops up the warm processes of the default profile.
    fn refill_warm(self: &Arc<Self>) {
        if self.health().state == HealthState::Unavailable
            && self.consecutive_failures.load(Ordering::Relaxed) > 8
        {
            return;
        }
        // Busy long-lived processes come back after their request: they count as warm, or
        // every recycle under load would start a burst of processes only to evict them.
        let busy = match self.mode() {
            ProcessMode::LongLived => self.status().busy,
            ProcessMode::OneShot => 0,
        };
        let idle = {
            let idle = self.idle.lock().expect("idle lock");
            idle.iter()
                .filter(|p| p.profile == self.default_profile)
                .count()
        };
        let have = idle + busy + self.starting.load(Ordering::Acquire);
        for _ in have..self.cfg.warm_processes {
            self.start_warm();
        }
    }

    /// Starts one process of the default profile in the background and parks it when ready.
    /// While it starts it counts as warm (`starting`), so a refill does not start another.
    fn start_warm(self: &Arc<Self>) {
        self.starting.fetch_add(1, Ordering::AcqRel);
        let pool = self.clone();
        let failures = self.consecutive_failures.load(Ordering::Relaxed);
        tokio::spawn(async move {
            pool.start_and_park(&pool.default_profile, failures).await;
            pool.starting.fetch_sub(1, Ordering::AcqRel);
            pool.parked.notify_waiters();
        });
    }

    /// Parks a process started ahead of time once it can answer at once. A long-lived CLI
    /// prints nothing until its first turn, so it is given a reset turn: the clean answer proves
    /// it has started up, and the next request does not pay for its start-up.
    async fn park_when_ready(&self, mut process: CliProcess) {
        // A fresh process holds no conversation, so a clean answer is all the warm-up must
        // show; whether this version's reset can be proven matters only between requests.
        if let Some(line) = self.launcher.adapter.reset_turn() {
            // Start-up takes longer than a reset: allow for both.
            let limit = Duration::from_millis(self.cfg.reset_timeout_ms) + Duration::from_secs(30);
            if reset(&mut process, Some(line), limit).await == Reset::Failed {
                tracing::warn!(provider = %self.name, stderr = %process.stderr_tail(), "a pre-started CLI did not come up");
                self.metrics.crashes.with_label_values(&[&self.name]).inc();
                self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.park(process);
    }

    /// Puts a ready process into the idle set, evicting the oldest one when it is full.
    fn park(&self, process: CliProcess) {
        let evicted = {
            let mut idle = self.idle.lock().expect("idle lock");
            idle.push_back(process);
            self.parked.notify_waiters();
            let mut evicted = Vec::new();
            while idle.len() > self.cfg.max_idle() {
                // Prefer evicting a process of a non-default profile, then the most used one
                // (a process whose successor just came up is the nearest to its recycling).
                let pos = idle
                    .iter()
                    .position(|p| p.profile != self.default_profile)
                    .or_else(|| {
                        (0..idle.len()).max_by_key(|&i| (idle[i].turns, std::cmp::Reverse(i)))
                    })
                    .unwrap_or(0);
                evicted.extend(idle.remove(pos));
            }
            evicted
        };
        for p in evicted {
            self.retire(p, "evicted");
        }
        self.update_gauges();
    }

    /// Hands a process that just answered back to the pool: long-lived ones after a verified
    /// reset, one-shot ones never. The request's slot stays taken until this is done.
    fn release(self: Arc<Self>, mut lease: Lease) {
        let Some(mut process) = lease.process.take() else {
            return;
        };
        let permit = lease.permit.take();
        drop(lease);
        process.turns += 1;
        if self.mode() == ProcessMode::OneShot {
            drop(permit);
            drop(process);
            self.update_gauges();
            return;
        }
        let rss_cap = self.cfg.max_process_rss_mib.saturating_mul(1024 * 1024);
        let rss = if rss_cap > 0 {
            process.rss_bytes_due(RSS_READ_INTERVAL)
        } else {
            None
        };
        let max_age = Duration::from_secs(self.cfg.max_process_age_secs);
        let too_old = process.started.elapsed() >= max_age;
        match wear_of(
            process.turns,
            process.recycle_at,
            process.recycle_reason,
            too_old,
            rss,
            rss_cap,
        ) {
            Wear::Worn(reason) => {
                drop(permit);
                tracing::debug!(provider = %self.name, pid = ?process.pid(), rss, turns = process.turns, "{reason}: retiring");
                self.retire(process, reason);
                self.refill_warm();
                return;
            }
            Wear::OneMoreTurn(reason) => {
                process.recycle_at = process.turns + 1;
                process.recycle_reason = reason;
                if process.profile == self.default_profile {
                    // Its next turn is its last: the successor starts now, beside it, so the
                    // request after that finds a ready process instead of waiting for a start-up.
                    self.start_warm();
                }
            }
            Wear::Fresh => {}
        }
        tokio::spawn(async move {
            let line = self.launcher.adapter.reset_turn();
            let outcome = reset(
                &mut process,
                line,
                Duration::from_millis(self.cfg.reset_timeout_ms),
            )
            .await;
            drop(permit);
            match outcome {
                Reset::Verified => {
                    self.unverified_resets.store(0, Ordering::Relaxed);
                    self.park(process);
                }
                Reset::Unproven => {
                    // Clean, but nothing showed the conversation was dropped: never reuse it.
                    self.retire(process, "reset_unverified");
                    let n = self.unverified_resets.fetch_add(1, Ordering::Relaxed) + 1;
                    if n >= UNVERIFIED_RESETS_BEFORE_ONE_SHOT {
                        self.fall_back_to_one_shot();
                    }
                    self.refill_warm();
                }
                Reset::Failed => {
                    tracing::warn!(provider = %self.name, pid = ?process.pid(), "reset did not come back clean; retiring the process");
                    self.retire(process, "reset_failed");
                    self.refill_warm();
                }
            }
        });
    }

    fn retire(&self, process: CliProcess, reason: &str) {
        self.metrics
            .retired
            .with_label_values(&[&self.name, reason])
            .inc();
        tracing::debug!(provider = %self.name, pid = ?process.pid(), reason, "retiring CLI process");
        drop(process);
    }

    fn update_gauges(&self) {
        let status = self.status();
        self.series.idle.set(status.idle as i64);
        self.series.busy.set(status.busy as i64);
        self.series.queued.set(status.queued as i64);
    }
}

/// How a turn ended when it did not fail.
enum TurnEnd {
    Answered(Option<crate::provider::Usage>),
    /// The model called the client's tools.
    ToolCalls(Vec<Call>),
}

/// Given to the CLI for a call the follow-up did not answer (it cannot happen on a resumed
/// turn, which needs every result, but a CLI may ask for a call it never announced).
const MISSING_RESULT: &str = "error: the client sent no result for this call";

/// Resets that came back clean but unproven, in a row, after which the pool stops reusing
/// processes and serves pre-started one-shot ones: this CLI version's reset cannot be checked.
const UNVERIFIED_RESETS_BEFORE_ONE_SHOT: u32 = 2;

/// Sends the adapter's reset turn and reads how it came back.
async fn reset(process: &mut CliProcess, line: Option<&[u8]>, limit: Duration) -> Reset {
    let Some(line) = line else {
        return Reset::Failed;
    };
    process.drain_events();
    if process.write(line, false).await.is_err() {
        return Reset::Failed;
    }
    let deadline = tokio::time::Instant::now() + limit;
    let mut reading = ResetReading::new(process.session_id.take());
    let verdict = loop {
        match timeout_at(deadline, process.next_event()).await {
            Ok(ProcessEvent::Cli(event)) => {
                if let Some(verdict) = reading.on_event(event) {
                    break verdict;
                }
            }
            Ok(ProcessEvent::Closed) | Err(_) => break Reset::Failed,
        }
    };
    process.session_id = reading.session_id();
    verdict
}

/// What a long-lived process that just answered has left in it.
#[derive(Debug, PartialEq, Eq)]
enum Wear {
    Fresh,
    /// It takes one more request, then is retired for this reason.
    OneMoreTurn(&'static str),
    /// Retired now, for this reason (the metrics' label).
    Worn(&'static str),
}

/// Decides from the turns served, the age and the resident memory (`rss` against `rss_cap`, in
/// bytes; a cap of 0 is off) whether a process goes on serving.
fn wear_of(
    turns: u32,
    recycle_at: u32,
    recycle_reason: &'static str,
    too_old: bool,
    rss: Option<u64>,
    rss_cap: u64,
) -> Wear {
    let reaches = |bytes: u64| rss_cap > 0 && rss.is_some_and(|r| r >= bytes);
    if turns >= recycle_at {
        Wear::Worn(recycle_reason)
    } else if too_old {
        Wear::Worn("recycled")
    } else if reaches(rss_cap) {
        Wear::Worn("memory")
    } else if turns + 1 == recycle_at {
        Wear::OneMoreTurn(recycle_reason)
    } else if reaches(rss_cap / 10 * 9) {
        Wear::OneMoreTurn("memory")
    } else {
        Wear::Fresh
    }
}

/// The turns after which a process is recycled: `max` less up to a tenth, picked by `random`,
/// so processes started at the same time are not all replaced at once. Never below 1.
fn recycle_limit(max: u32, random: u32) -> u32 {
    let spread = max / 10 + 1;
    max.saturating_sub(random % spread).max(1)
}

fn spawn_backoff(failures: u32) -> Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(MAX_SPAWN_BACKOFF)
        .with_factor(2.0)
        .without_max_times()
        .build()
        .nth(failures.saturating_sub(1) as usize)
        .unwrap_or(MAX_SPAWN_BACKOFF)
}

/// A request's hold on one process and one concurrency slot. Dropped before `release`, it
/// kills the process: the request was cancelled, timed out or failed.
struct Lease {
    pool: Arc<Pool>,
    process: Option<CliProcess>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            self.pool.retire(process, "aborted");
            self.permit.take();
            self.pool.update_gauges();
            self.pool.refill_warm();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycle_limits_spread_below_the_maximum_and_never_reach_zero() {
        let limits: std::collections::BTreeSet<u32> =
            (0..1000).map(|r| recycle_limit(100, r)).collect();
        assert_eq!(limits.first(), Some(&90));
        assert_eq!(limits.last(), Some(&100));
        assert_eq!(limits.len(), 11);
        assert_eq!(recycle_limit(1, 7), 1);
        assert_eq!(recycle_limit(0, 7), 1);
        assert_eq!(recycle_limit(u32::MAX, 0), u32::MAX);
    }

    #[test]
    fn a_process_is_retired_by_its_turns_its_age_or_its_memory() {
        const MIB: u64 = 1024 * 1024;
        let cap = 320 * MIB;
        let fresh = |turns, rss| wear_of(turns, 100, "recycled", false, rss, cap);
        assert_eq!(fresh(10, Some(200 * MIB)), Wear::Fresh);
        assert_eq!(
            fresh(10, None),
            Wear::Fresh,
            "unreadable memory does not retire"
        );
        assert_eq!(fresh(99, Some(200 * MIB)), Wear::OneMoreTurn("recycled"));
        assert_eq!(fresh(100, Some(200 * MIB)), Wear::Worn("recycled"));
        // From 90 % of the cap one more request, at the cap none.
        assert_eq!(fresh(10, Some(cap / 10 * 9)), Wear::OneMoreTurn("memory"));
        assert_eq!(fresh(10, Some(cap)), Wear::Worn("memory"));
        // Once its last turn is set the process goes under the reason it was given.
        assert_eq!(
            wear_of(11, 11, "memory", false, Some(250 * MIB), cap),
            Wear::Worn("memory")
        );
        assert_eq!(
            wear_of(10, 100, "recycled", true, Some(MIB), cap),
            Wear::Worn("recycled")
        );
        // A cap of 0 is off, however large the process.
        assert_eq!(
            wear_of(10, 100, "recycled", false, Some(u64::MAX), 0),
            Wear::Fresh
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(spawn_backoff(1), Duration::from_millis(100));
        assert!(spawn_backoff(3) > spawn_backoff(2));
        assert!(spawn_backoff(40) <= MAX_SPAWN_BACKOFF);
    }
}
