//! The router's knowledge of its workers: the endpoints discovery reports, each worker's last
//! status, requests in flight from this router, failures and ejections, and usage limits per
//! account (learned from statuses and from failed requests, so one limited request moves all
//! traffic of that account away at once).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::pick::View;
use crate::config::RoutingConfig;
use crate::discovery::Endpoint;
use crate::provider::ProviderError;
use crate::runtime::HealthState;
use crate::runtime::health::unix_now;
use crate::wire::WorkerStatus;

/// One worker.
#[derive(Debug)]
pub struct Worker {
    pub endpoint: Endpoint,
    pub status: Option<WorkerStatus>,
    pub in_flight: Arc<AtomicUsize>,
    failures: u32,
    ejected_until: Option<Instant>,
    pub last_error: Option<String>,
}

impl Worker {
    fn new(endpoint: Endpoint) -> Worker {
        Worker {
            endpoint,
            status: None,
            in_flight: Arc::new(AtomicUsize::new(0)),
            failures: 0,
            ejected_until: None,
            last_error: None,
        }
    }

    pub fn ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|until| until > now)
    }

    pub fn account(&self) -> Option<&str> {
        self.status.as_ref().and_then(|s| s.account.as_deref())
    }
}

/// What a request holds while it runs on a worker: counts it in flight.
pub struct Lease {
    pub url: String,
    pub provider: String,
    pub account: Option<String>,
    pub token_file: Option<PathBuf>,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Inner {
    /// By URL.
    workers: BTreeMap<String, Worker>,
    /// (provider, account) → Unix time its usage limit resets.
    account_limits: HashMap<(String, String), i64>,
    synced: bool,
}

pub struct WorkerTable {
    inner: RwLock<Inner>,
    routing: RoutingConfig,
    tokens: RwLock<HashMap<PathBuf, String>>,
}

impl WorkerTable {
    pub fn new(routing: RoutingConfig) -> WorkerTable {
        WorkerTable {
            inner: RwLock::default(),
            routing,
            tokens: RwLock::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().expect("worker table lock")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().expect("worker table lock")
    }

    pub fn synced(&self) -> bool {
        self.read().synced
    }

    /// Follows discovery: new endpoints join (status unknown until read), gone ones leave.
    /// Requests in flight on a removed worker keep running; it just gets no new ones.
    pub fn set_endpoints(&self, endpoints: &[Endpoint]) {
        let mut inner = self.write();
        inner.synced = true;
        inner
            .workers
            .retain(|url, w| endpoints.iter().any(|e| &e.url == url && *e == w.endpoint));
        for e in endpoints {
            inner
                .workers
                .entry(e.url.clone())
                .or_insert_with(|| Worker::new(e.clone()));
        }
    }

    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.read()
            .workers
            .values()
            .map(|w| w.endpoint.clone())
            .collect()
    }

    /// Reads every credential file the workers need; a rotated Secret is picked up here.
    pub fn reload_tokens(&self) {
        let files: Vec<PathBuf> = self
            .read()
            .workers
            .values()
            .filter_map(|w| w.endpoint.token_file.clone())
            .collect();
        let mut tokens = HashMap::new();
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    tokens.insert(file, text.trim().to_string());
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "cannot read a worker credential")
                }
            }
        }
        *self.tokens.write().expect("tokens lock") = tokens;
    }

    pub fn token(&self, file: Option<&PathBuf>) -> Option<String> {
        let file = file?;
        if let Some(t) = self.tokens.read().expect("tokens lock").get(file) {
            return Some(t.clone());
        }
        // Not read yet (a worker that just appeared): read it now.
        let text = std::fs::read_to_string(file).ok()?.trim().to_string();
        self.tokens
            .write()
            .expect("tokens lock")
            .insert(file.clone(), text.clone());
        Some(text)
    }

    /// Records a status read. A worker that answers is no longer failing.
    pub fn record_status(&self, url: &str, result: Result<WorkerStatus, String>) {
        let mut inner = self.write();
        let Inner {
            workers,
            account_limits,
            ..
        } = &mut *inner;
        let Some(worker) = workers.get_mut(url) else {
            return;
        };
        match result {
            Ok(status) => {
                if status.provider != worker.endpoint.provider {
                    tracing::warn!(url, discovered = %worker.endpoint.provider, reports = %status.provider,
                        "a worker serves another provider than discovery says; leaving it out");
                    worker.status = None;
                    return;
                }
                if let (Some(account), Some(until)) = (&status.account, status.limited_until)
                    && status.health == HealthState::UsageLimited
                {
                    let key = (status.provider.clone(), account.clone());
                    let entry = account_limits.entry(key).or_insert(until);
                    *entry = (*entry).max(until);
                }
                worker.status = Some(status);
                worker.failures = 0;
                worker.ejected_until = None;
                worker.last_error = None;
            }
            Err(error) => {
                eject(worker, &self.routing, &error);
            }
        }
    }

    /// Records a request that failed on a worker before its first byte.
    pub fn record_failure(&self, lease: &Lease, error: &str) {
        if let Some(worker) = self.write().workers.get_mut(&lease.url) {
            eject(worker, &self.routing, error);
        }
    }

    /// Records what a worker's own error says about it or its account.
    pub fn record_provider_error(&self, lease: &Lease, error: &ProviderError) {
        let mut inner = self.write();
        match error {
            ProviderError::UsageLimited { resets_at, .. } => {
                if let Some(account) = &lease.account {
                    let until = resets_at.unwrap_or_else(|| unix_now() + 60);
                    inner
                        .account_limits
                        .insert((lease.provider.clone(), account.clone()), until);
                }
                if let Some(w) = inner.workers.get_mut(&lease.url)
                    && let Some(s) = w.status.as_mut()
                {
                    s.health = HealthState::UsageLimited;
                    s.limited_until = *resets_at;
                }
            }
            ProviderError::NotLoggedIn { .. } => {
                if let Some(s) = inner
                    .workers
                    .get_mut(&lease.url)
                    .and_then(|w| w.status.as_mut())
                {
                    s.health = HealthState::NotLoggedIn;
                }
            }
            ProviderError::Unavailable { .. }
            | ProviderError::Spawn { .. }
            | ProviderError::LockDown { .. } => {
                if let Some(s) = inner
                    .workers
                    .get_mut(&lease.url)
                    .and_then(|w| w.status.as_mut())
                {
                    s.accepting = false;
                }
            }
            _ => {}
        }
    }

    /// Views of a provider's workers for `pick::choose`, in a stable order, with their URLs.
    /// The provider's workers as the choice sees them; `instance` names the worker process
    /// that holds the request's waiting turn, if any.
    pub fn views(
        &self,
        provider: &str,
        tried: &[String],
        instance: Option<&str>,
    ) -> Vec<(String, View)> {
        let inner = self.read();
        let now = Instant::now();
        inner
            .workers
            .values()
            .filter(|w| w.endpoint.provider == provider)
            .map(|w| {
                let status = w.status.as_ref();
                let account_limit = w
                    .account()
                    .and_then(|a| {
                        inner
                            .account_limits
                            .get(&(provider.to_string(), a.to_string()))
                    })
                    .copied();
                let status_limit = status
                    .filter(|s| s.health == HealthState::UsageLimited)
                    .and_then(|s| s.limited_until);
                let view = View {
                    known: status.is_some(),
                    accepting: status.is_some_and(|s| s.accepting && !s.draining),
                    health: status.map_or(HealthState::Unavailable, |s| s.health),
                    limited_until: account_limit.max(status_limit),
                    ejected: w.ejected(now),
                    tried: tried.contains(&w.endpoint.url),
                    in_flight: w.in_flight.load(Ordering::Relaxed),
                    max_concurrency: status.map_or(1, |s| s.capacity.max_concurrency),
                    holds_turn: instance
                        .is_some_and(|i| status.is_some_and(|s| !i.is_empty() && s.instance == i)),
                };
                (w.endpoint.url.clone(), view)
            })
            .collect()
    }

    /// Takes a lease on a worker (counted in flight until dropped).
    pub fn lease(&self, url: &str) -> Option<Lease> {
        let inner = self.read();
        let w = inner.workers.get(url)?;
        w.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            url: url.to_string(),
            provider: w.endpoint.provider.clone(),
            account: w.account().map(String::from),
            token_file: w.endpoint.token_file.clone(),
            in_flight: w.in_flight.clone(),
        })
    }

    /// Runs `f` over every worker (for `/v1/providers` and metrics).
    pub fn with_workers<T>(
        &self,
        f: impl FnOnce(&mut dyn Iterator<Item = &Worker>, &dyn Fn(&str, &str) -> Option<i64>) -> T,
    ) -> T {
        let inner = self.read();
        let now = unix_now();
        let limit = |provider: &str, account: &str| {
            inner
                .account_limits
                .get(&(provider.to_string(), account.to_string()))
                .copied()
                .filter(|until| *until > now)
        };
        f(&mut inner.workers.values(), &limit)
    }
}

/// Leaves a failing worker out for a while, longer with each failure in a row.
fn eject(worker: &mut Worker, routing: &RoutingConfig, error: &str) {
    worker.failures = worker.failures.saturating_add(1);
    let doubling = 2u64.saturating_pow(worker.failures.saturating_sub(1).min(16));
    let pause = Duration::from_millis(
        routing
            .eject_base_ms
            .saturating_mul(doubling)
            .min(routing.eject_max_ms),
    );
    worker.ejected_until = Some(Instant::now() + pause);
    if worker.last_error.as_deref() != Some(error) {
        tracing::warn!(url = %worker.endpoint.url, provider = %worker.endpoint.provider,
            failures = worker.failures, pause_ms = pause.as_millis() as u64, %error, "worker failing; left out for a while");
    }
    worker.last_error = Some(error.to_string());
}
