//! `router` mode: providers answered by worker processes (pods) over the worker protocol.
//!
//! Discovery (`crate::discovery`) says where the workers are; a poller reads each worker's
//! status (login, usage limit, load, draining); `pick` chooses the least loaded eligible worker
//! for each request. A request that fails before its first byte reached the client (worker
//! unreachable, busy, draining, limited, logged out) is tried on another worker, up to
//! `routing.max_attempts`; once a byte went out it never is. Dropping a turn's stream closes the
//! connection to the worker, which cancels the turn there and kills its CLI.

mod client;
pub mod pick;
mod table;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use self::client::{Broken, OpenError, WorkerClient, WorkerEvents};
use self::table::{Lease, WorkerTable};
use super::{AccountInfo, Backend, ChatRequest, ProviderInfo, ProviderModels, Readiness};
use crate::config::Config;
use crate::discovery::{self, DiscoveryError};
use crate::metrics::Metrics;
use crate::provider::{ChatEvent, ProviderError};
use crate::runtime::health::unix_now;
use crate::runtime::{HealthState, PoolStatus};
use crate::wire::{WorkerChatRequest, WorkerStatus};

/// Extra time the router gives a worker beyond the provider's own request deadline (which the
/// worker enforces), before it gives up on a worker that went silent.
const DEADLINE_MARGIN: Duration = Duration::from_secs(15);

/// How one worker took a request, before anything reached the client.
enum Attempt {
    /// It answers: its first event, the rest of its stream, and the turn's deadline.
    Answering {
        first: ChatEvent,
        events: WorkerEvents,
        deadline: tokio::time::Instant,
    },
    /// Another worker may answer instead; this one's error, in case none does.
    Retry(ProviderError),
    /// The request fails with this, whichever worker would take it.
    Fail(ProviderError),
}

pub struct RemoteBackend {
    table: Arc<WorkerTable>,
    client: WorkerClient,
    max_attempts: u32,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

impl RemoteBackend {
    /// Starts discovery and the status poller.
    pub async fn start(config: &Config, metrics: Arc<Metrics>) -> Result<Self, DiscoveryError> {
        let routing = config.routing.clone();
        let mut endpoints = discovery::start(&config.discovery).await?;
        let table = Arc::new(WorkerTable::new(routing.clone()));
        let client = WorkerClient::new(
            Duration::from_millis(routing.connect_timeout_ms),
            Duration::from_millis(routing.status_timeout_ms),
        );
        let stop = CancellationToken::new();
        let poll_now = Arc::new(tokio::sync::Notify::new());

        // Follow discovery; a worker that appears is asked for its status at once, so it gets
        // traffic within one round trip rather than one poll interval.
        tokio::spawn({
            let (table, stop, poll_now) = (table.clone(), stop.clone(), poll_now.clone());
            async move {
                loop {
                    if let Some(list) = endpoints.borrow_and_update().clone() {
                        table.set_endpoints(&list);
                        poll_now.notify_one();
                    }
                    tokio::select! {
                        changed = endpoints.changed() => if changed.is_err() { return },
                        () = stop.cancelled() => return,
                    }
                }
            }
        });
        tokio::spawn({
            let (table, client, stop, metrics) =
                (table.clone(), client.clone(), stop.clone(), metrics.clone());
            let every = Duration::from_millis(routing.status_interval_ms);
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = poll_now.notified() => {}
                        () = stop.cancelled() => return,
                    }
                    poll_statuses(&table, &client).await;
                    publish_worker_gauges(&table, &metrics);
                }
            }
        });
        Ok(RemoteBackend {
            table,
            client,
            max_attempts: routing.max_attempts,
            metrics,
            stop,
        })
    }
}

async fn poll_statuses(table: &WorkerTable, client: &WorkerClient) {
    table.reload_tokens();
    let polls = table.endpoints().into_iter().map(|e| async move {
        let token = table.token(e.token_file.as_ref());
        let result = client.status(&e.url, token.as_deref()).await;
        table.record_status(&e.url, result);
    });
    futures::future::join_all(polls).await;
}

fn publish_worker_gauges(table: &WorkerTable, metrics: &Metrics) {
    metrics.workers.reset();
    let now = Instant::now();
    let unix = unix_now();
    table.with_workers(|workers, account_limit| {
        for w in workers {
            let state = match &w.status {
                _ if w.ejected(now) => "failing",
                None => "unknown",
                Some(s) if !s.accepting || s.draining => "not_accepting",
                Some(s)
                    if s.limited_until.is_some_and(|u| u > unix)
                        || w.account()
                            .and_then(|a| account_limit(&w.endpoint.provider, a))
                            .is_some() =>
                {
                    "limited"
                }
                Some(_) => "ready",
            };
            metrics
                .workers
                .with_label_values(&[&w.endpoint.provider, state])
                .inc();
        }
    });
}

/// Failures before the first byte after which another worker is worth trying: the turn did
/// not run (or could not have used the model).
fn worth_another_worker(e: &ProviderError) -> bool {
    matches!(
        e,
        ProviderError::Busy { .. }
            | ProviderError::UsageLimited { .. }
            | ProviderError::NotLoggedIn { .. }
            | ProviderError::Unavailable { .. }
            | ProviderError::Spawn { .. }
            | ProviderError::LockDown { .. }
    )
}

/// Chooses a worker of `provider` not tried yet, and counts the request on it.
fn pick(
    table: &WorkerTable,
    provider: &str,
    tried: &[String],
    instance: Option<&str>,
) -> Result<Lease, ProviderError> {
    let views = table.views(provider, tried, instance);
    let only_views: Vec<_> = views.iter().map(|(_, v)| v.clone()).collect();
    let index = pick::choose(
        provider,
        &only_views,
        unix_now(),
        rand::random::<u32>() as usize,
    )?;
    table
        .lease(&views[index].0)
        .ok_or_else(|| ProviderError::Unavailable {
            provider: provider.to_string(),
            detail: "the chosen worker just left".into(),
        })
}

/// A provider as `/v1/providers` shows it, from its workers' statuses: ready while some worker
/// can take a turn; else usage-limited (earliest reset) when every account is limited, not
/// logged in when every worker says so, and unavailable otherwise.
fn provider_info(
    name: String,
    workers: &[&table::Worker],
    now: Instant,
    unix: i64,
    account_limit: &dyn Fn(&str, &str) -> Option<i64>,
) -> ProviderInfo {
    let reported: Vec<_> = workers.iter().filter_map(|w| w.status.as_ref()).collect();
    let first = reported.first();
    let limit_of = |w: &table::Worker| -> Option<i64> {
        let own = w
            .status
            .as_ref()
            .filter(|s| s.health == HealthState::UsageLimited)
            .and_then(|s| s.limited_until);
        let account = w.account().and_then(|a| account_limit(&name, a));
        own.max(account).filter(|u| *u > unix)
    };
    let serving = |w: &table::Worker| {
        !w.ejected(now)
            && limit_of(w).is_none()
            && w.status.as_ref().is_some_and(|s| {
                s.accepting
                    && !s.draining
                    && !matches!(
                        s.health,
                        HealthState::NotLoggedIn | HealthState::Unavailable
                    )
            })
    };
    let ready_workers = workers.iter().filter(|w| serving(w)).count();
    let limits: Vec<i64> = workers.iter().filter_map(|w| limit_of(w)).collect();
    let (health, limited_until) = if ready_workers > 0 {
        (HealthState::Ready, None)
    } else if !limits.is_empty() {
        (HealthState::UsageLimited, limits.iter().min().copied())
    } else if !reported.is_empty()
        && reported
            .iter()
            .all(|s| s.health == HealthState::NotLoggedIn)
    {
        (HealthState::NotLoggedIn, None)
    } else {
        (HealthState::Unavailable, None)
    };
    let mut pool = PoolStatus::default();
    for s in &reported {
        pool.busy += s.capacity.busy;
        pool.idle += s.capacity.idle;
        pool.queued += s.capacity.queued;
        pool.max_concurrency += s.capacity.max_concurrency;
        pool.max_queue += s.capacity.max_queue;
    }
    let mut accounts: BTreeMap<String, AccountInfo> = BTreeMap::new();
    for w in workers {
        let Some(account) = w.account() else {
            continue;
        };
        let entry = accounts
            .entry(account.to_string())
            .or_insert_with(|| AccountInfo {
                name: account.to_string(),
                health: HealthState::Unavailable,
                limited_until: None,
                ready_workers: 0,
                workers: 0,
            });
        entry.workers += 1;
        if serving(w) {
            entry.ready_workers += 1;
            entry.health = HealthState::Ready;
        } else if let Some(until) = limit_of(w) {
            if entry.health != HealthState::Ready {
                entry.health = HealthState::UsageLimited;
                entry.limited_until = Some(entry.limited_until.map_or(until, |u| u.min(until)));
            }
        } else if entry.health == HealthState::Unavailable
            && let Some(s) = &w.status
        {
            entry.health = s.health;
        }
    }
    ProviderInfo {
        kind: first.map(|s| s.kind),
        models: first.map(|s| s.models.clone()).unwrap_or_default(),
        default_model: first.map(|s| s.default_model.clone()).unwrap_or_default(),
        health,
        limited_until,
        // The workers' errors name their addresses: clients get the class only.
        last_error: (ready_workers == 0 && workers.iter().any(|w| w.last_error.is_some()))
            .then(|| crate::backend::LastError::of(health)),
        ready_workers,
        pool,
        limits: first.map(|s| s.limits.clone()).unwrap_or_default(),
        cli: first.and_then(|s| s.cli.clone()),
        accounts: accounts.into_values().collect(),
        name,
    }
}

/// Every provider's description, from its workers.
fn provider_infos(
    workers: &mut dyn Iterator<Item = &table::Worker>,
    account_limit: &dyn Fn(&str, &str) -> Option<i64>,
) -> Vec<ProviderInfo> {
    let (now, unix) = (Instant::now(), unix_now());
    let mut by_provider: BTreeMap<String, Vec<&table::Worker>> = BTreeMap::new();
    for w in workers {
        by_provider
            .entry(w.endpoint.provider.clone())
            .or_default()
            .push(w);
    }
    by_provider
        .into_iter()
        .map(|(name, workers)| provider_info(name, &workers, now, unix, account_limit))
        .collect()
}

/// Each provider's models as `provider_info` reads them: from the first of its workers that
/// reported; none (and no timeout) while none has.
fn provider_models(workers: &mut dyn Iterator<Item = &table::Worker>) -> Arc<[ProviderModels]> {
    let mut first: BTreeMap<&str, Option<&WorkerStatus>> = BTreeMap::new();
    for w in workers {
        let status = first.entry(w.endpoint.provider.as_str()).or_default();
        if status.is_none() {
            *status = w.status.as_ref();
        }
    }
    first
        .into_iter()
        .map(|(name, status)| ProviderModels {
            name: name.to_string(),
            models: status.map(|s| s.models.clone()).unwrap_or_default(),
            default_model: status.map(|s| s.default_model.clone()).unwrap_or_default(),
            request_timeout_secs: status.map_or(0, |s| s.limits.request_timeout_secs),
        })
        .collect()
}

fn lost(provider: &str, reason: &str) -> ProviderError {
    ProviderError::Crashed {
        provider: provider.to_string(),
        detail: format!("the worker went away mid-answer: {reason}"),
    }
}

impl Backend for RemoteBackend {
    fn models(&self) -> Arc<[ProviderModels]> {
        self.table
            .with_workers(|workers, _| provider_models(workers))
    }

    fn providers(&self) -> Vec<ProviderInfo> {
        self.table.with_workers(provider_infos)
    }

    fn chat(&self, request: ChatRequest) -> BoxStream<'static, Result<ChatEvent, ProviderError>> {
        let this = RemoteTurn {
            table: self.table.clone(),
            client: self.client.clone(),
            max_attempts: self.max_attempts,
            metrics: self.metrics.clone(),
        };
        this.run(request)
    }

    fn readiness(&self) -> Readiness {
        let synced = self.table.synced();
        Readiness {
            ready: synced,
            detail: if synced {
                format!("{} workers discovered", self.table.endpoints().len())
            } else {
                "worker discovery has not completed its first pass".into()
            },
        }
    }

    fn shutdown(&self) {
        self.stop.cancel();
    }
}

/// What one turn needs, detached from the backend's lifetime.
struct RemoteTurn {
    table: Arc<WorkerTable>,
    client: WorkerClient,
    max_attempts: u32,
    metrics: Arc<Metrics>,
}

impl RemoteTurn {
    fn attempt(&self, provider: &str, result: &str) {
        self.metrics
            .worker_attempts
            .with_label_values(&[provider, result])
            .inc();
    }

    fn finish(&self, provider: &str, started: Instant, outcome: Result<(), &ProviderError>) {
        let label = match outcome {
            Ok(()) => "ok",
            Err(e) => {
                if !matches!(e, ProviderError::Busy { .. }) {
                    tracing::warn!(%provider, error = %e, kind = e.kind(), "chat request failed");
                }
                if let ProviderError::Crashed { detail, .. } = e {
                    tracing::debug!(%provider, %detail, "failure detail");
                }
                e.kind()
            }
        };
        self.metrics
            .requests
            .with_label_values(&[provider, label])
            .inc();
        self.metrics
            .request_duration
            .with_label_values(&[provider])
            .observe(started.elapsed().as_secs_f64());
    }

    /// The provider's request deadline as its workers report it.
    fn request_timeout_of(&self, provider: &str) -> Option<u64> {
        self.table.with_workers(|workers, _| {
            workers
                .filter(|w| w.endpoint.provider == provider)
                .find_map(|w| w.status.as_ref().map(|s| s.limits.request_timeout_secs))
        })
    }

    /// Opens the turn on `lease`'s worker and waits for its first event. Nothing has reached
    /// the client yet, so the outcome decides whether this worker answers or another is tried.
    async fn try_worker(
        &self,
        lease: &Lease,
        provider: &str,
        request: &WorkerChatRequest,
        timeout: Duration,
    ) -> Attempt {
        let token = self.table.token(lease.token_file.as_ref());
        let opened = tokio::time::timeout(
            timeout,
            self.client.chat(&lease.url, token.as_deref(), request),
        )
        .await
        .unwrap_or_else(|_| Err(OpenError::Unreachable("timed out opening the turn".into())));
        let mut events = match opened {
            Ok(events) => events,
            Err(OpenError::Refused(e)) if worth_another_worker(&e) => {
                self.table.record_provider_error(lease, &e);
                return Attempt::Retry(e);
            }
            Err(OpenError::Refused(e)) => return Attempt::Fail(e),
            Err(e) => return self.unreachable(lease, provider, e.to_string()),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(first))) => Attempt::Answering {
                first,
                events,
                deadline,
            },
            Ok(Some(Err(Broken::Provider(e)))) => {
                self.table.record_provider_error(lease, &e);
                if worth_another_worker(&e) {
                    Attempt::Retry(e)
                } else {
                    Attempt::Fail(e)
                }
            }
            Ok(Some(Err(Broken::Connection(reason)))) => self.unreachable(lease, provider, reason),
            Ok(None) => self.unreachable(
                lease,
                provider,
                "the worker closed the stream before answering".into(),
            ),
            Err(_) => Attempt::Fail(ProviderError::Timeout {
                provider: provider.into(),
                after: timeout,
            }),
        }
    }

    /// A worker that could not be reached, or dropped the turn before answering: counted
    /// against it, and another one is tried.
    fn unreachable(&self, lease: &Lease, provider: &str, reason: String) -> Attempt {
        self.table.record_failure(lease, &reason);
        Attempt::Retry(ProviderError::Unavailable {
            provider: provider.into(),
            detail: reason,
        })
    }

    /// The next event of a turn that has reached the client already: a failure now ends the
    /// request, since another worker could not take back what went out.
    async fn relay_next(
        &self,
        lease: &Lease,
        provider: &str,
        events: &mut WorkerEvents,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<ChatEvent, ProviderError> {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(event))) => Ok(event),
            Ok(Some(Err(Broken::Provider(e)))) => {
                self.table.record_provider_error(lease, &e);
                Err(e)
            }
            Ok(Some(Err(Broken::Connection(reason)))) => {
                self.table.record_failure(lease, &reason);
                Err(lost(provider, &reason))
            }
            Ok(None) => Err(lost(provider, "the stream ended before the turn did")),
            Err(_) => Err(ProviderError::Timeout {
                provider: provider.into(),
                after: timeout,
            }),
        }
    }

    fn run(self, request: ChatRequest) -> BoxStream<'static, Result<ChatEvent, ProviderError>> {
        Box::pin(async_stream::stream! {
            let provider = request.provider.clone();
            let started = Instant::now();
            // Tool results go back to the worker whose process waits on them, named in the
            // call ids it handed out.
            let instance = crate::runtime::parked::park_named(&request.messages)
                .and_then(crate::runtime::parked::instance_of_park)
                .map(String::from);
            let wire_request = WorkerChatRequest {
                provider: request.provider,
                model: request.model,
                system: request.system,
                messages: request.messages,
                tools: request.tools.map(|t| t.tools().to_vec()),
                owner: request.owner,
            };
            let mut tried: Vec<String> = Vec::new();
            let mut last_error: Option<ProviderError> = None;
            let deadline_after = |limits: Option<u64>| {
                Duration::from_secs(limits.unwrap_or(300)) + DEADLINE_MARGIN
            };
            loop {
                if tried.len() as u32 >= self.max_attempts {
                    let e = last_error.take().unwrap_or_else(|| ProviderError::Unavailable {
                        provider: provider.clone(),
                        detail: "no attempt left".into(),
                    });
                    self.finish(&provider, started, Err(&e));
                    yield Err(e);
                    return;
                }
                let lease = match pick(&self.table, &provider, &tried, instance.as_deref()) {
                    Ok(lease) => lease,
                    Err(e) => {
                        // Out of workers after real attempts: the last worker's own answer
                        // (busy, limited…) says more than "no healthy worker".
                        let e = match (e, last_error.take()) {
                            (ProviderError::Unavailable { .. }, Some(last)) => last,
                            (e, _) => e,
                        };
                        self.finish(&provider, started, Err(&e));
                        yield Err(e);
                        return;
                    }
                };
                tried.push(lease.url.clone());
                let timeout = deadline_after(self.request_timeout_of(&provider));
                let (first, mut events, deadline) = match self.try_worker(&lease, &provider, &wire_request, timeout).await {
                    Attempt::Answering { first, events, deadline } => (first, events, deadline),
                    Attempt::Retry(e) => {
                        self.attempt(&provider, "retried");
                        last_error = Some(e);
                        continue;
                    }
                    Attempt::Fail(e) => {
                        self.attempt(&provider, "failed");
                        self.finish(&provider, started, Err(&e));
                        yield Err(e);
                        return;
                    }
                };
                self.attempt(&provider, "ok");
                self.metrics
                    .time_to_first_token
                    .with_label_values(&[&provider])
                    .observe(started.elapsed().as_secs_f64());
                let mut next = Some(first);
                // From here on bytes went out: failures end the stream, never retry.
                loop {
                    let event = match next.take() {
                        Some(event) => event,
                        None => match self.relay_next(&lease, &provider, &mut events, deadline, timeout).await {
                            Ok(event) => event,
                            Err(e) => {
                                self.finish(&provider, started, Err(&e));
                                yield Err(e);
                                return;
                            }
                        },
                    };
                    let done = matches!(event, ChatEvent::Done { .. });
                    yield Ok(event);
                    if done {
                        self.finish(&provider, started, Ok(()));
                        return;
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Limits;
    use crate::config::RoutingConfig;
    use crate::discovery::Endpoint;
    use crate::provider::ProviderKind;

    fn endpoint(provider: &str, url: &str) -> Endpoint {
        Endpoint {
            provider: provider.into(),
            url: url.into(),
            token_file: None,
        }
    }

    fn status(provider: &str, models: &[&str], timeout: u64) -> WorkerStatus {
        WorkerStatus {
            protocol: "1".into(),
            provider: provider.into(),
            kind: ProviderKind::Claude,
            account: None,
            models: models.iter().map(|m| m.to_string()).collect(),
            default_model: models[0].into(),
            health: HealthState::Ready,
            limited_until: None,
            accepting: true,
            draining: false,
            capacity: PoolStatus::default(),
            limits: Limits {
                request_timeout_secs: timeout,
                ..Limits::default()
            },
            version: "0".into(),
            instance: "i".into(),
            cli: None,
        }
    }

    #[test]
    fn requests_are_routed_by_the_models_the_full_description_shows() {
        let table = WorkerTable::new(RoutingConfig::default());
        table.set_endpoints(&[
            endpoint("claude", "http://a"),
            endpoint("claude", "http://b"),
            endpoint("gemini", "http://c"),
        ]);
        // The first claude worker has not reported yet; gemini's none.
        table.record_status("http://b", Ok(status("claude", &["opus", "haiku"], 120)));

        let models = table.with_workers(|workers, _| provider_models(workers));
        let names: Vec<_> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["claude", "gemini"]);
        assert_eq!(models[0].models, ["opus", "haiku"]);
        assert_eq!(models[0].default_model, "opus");
        assert_eq!(models[0].request_timeout_secs, 120);
        assert!(models[1].models.is_empty() && models[1].default_model.is_empty());

        // The same as the description `/v1/providers` gives.
        let infos = table.with_workers(provider_infos);
        assert_eq!(models.len(), infos.len());
        for (m, info) in models.iter().zip(&infos) {
            assert_eq!(
                (&m.name, &m.models, &m.default_model, m.request_timeout_secs),
                (
                    &info.name,
                    &info.models,
                    &info.default_model,
                    info.limits.request_timeout_secs
                )
            );
        }
    }
}
