//! Providers answered in this process, by pools of CLI subprocesses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};

use super::{Backend, ChatRequest, CliInfo, Limits, ProviderInfo, ProviderModels, Readiness};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::provider::{ChatEvent, ProcessMode, ProviderError};
use crate::runtime::{HealthState, Launcher, Pool};

pub struct LocalBackend {
    pools: BTreeMap<String, Arc<Pool>>,
    /// From the configuration, which does not change while the hub runs.
    models: Arc<[ProviderModels]>,
}

impl LocalBackend {
    /// Builds a pool per enabled provider. Pools start their warm processes on `start`.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> LocalBackend {
        let pools = config
            .providers
            .iter()
            .filter(|(_, p)| p.enabled)
            .map(|(name, p)| {
                let launcher = Launcher {
                    adapter: p.kind.adapter(),
                    command: resolve_command(&p.command),
                    configured_env: p.env.clone(),
                    scratch_root: config.scratch_root(),
                    nice: p.process_nice,
                };
                let pool = Pool::new(name.clone(), p.clone(), launcher, metrics.clone());
                (name.clone(), pool)
            })
            .collect::<BTreeMap<_, _>>();
        let models = pools
            .values()
            .map(|pool| {
                let cfg = pool.config();
                ProviderModels {
                    name: pool.name().to_string(),
                    models: cfg.models.clone(),
                    default_model: cfg.default_model.clone(),
                    request_timeout_secs: cfg.request_timeout_secs,
                }
            })
            .collect();
        LocalBackend { pools, models }
    }

    pub fn start(&self) {
        for pool in self.pools.values() {
            pool.start();
        }
    }
}

fn cli_info(pool: &Pool) -> CliInfo {
    let (oldest, newest) = crate::runtime::version::tested_range(pool.config().kind);
    let found = pool.cli();
    CliInfo {
        version: found.as_ref().map(|v| v.version.clone()),
        support: found.map(|v| v.support),
        oldest_tested: oldest.into(),
        newest_tested: newest.into(),
        mode: match pool.mode() {
            ProcessMode::LongLived => "long_lived".into(),
            ProcessMode::OneShot => "one_shot".into(),
        },
    }
}

/// A bare command name is looked up on PATH once, so logs and errors show what runs.
fn resolve_command(command: &Path) -> PathBuf {
    if command.components().count() > 1 {
        return command.to_path_buf();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(command))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| command.to_path_buf())
}

impl Backend for LocalBackend {
    fn models(&self) -> Arc<[ProviderModels]> {
        self.models.clone()
    }

    fn providers(&self) -> Vec<ProviderInfo> {
        self.pools
            .values()
            .map(|pool| {
                let cfg = pool.config();
                let health = pool.health();
                let status = pool.status();
                let serving = health.is_serving();
                ProviderInfo {
                    name: pool.name().to_string(),
                    kind: Some(cfg.kind),
                    models: cfg.models.clone(),
                    default_model: cfg.default_model.clone(),
                    health: health.state,
                    limited_until: health
                        .limited_until
                        .filter(|_| health.state == HealthState::UsageLimited),
                    last_error: health
                        .last_error
                        .as_ref()
                        .map(|_| super::LastError::of(health.state)),
                    ready_workers: if serving {
                        status.max_concurrency - status.busy
                    } else {
                        0
                    },
                    pool: status,
                    limits: Limits {
                        max_concurrency: cfg.max_concurrency,
                        max_queue: cfg.max_queue,
                        request_timeout_secs: cfg.request_timeout_secs,
                        idle_timeout_secs: cfg.idle_timeout_secs,
                    },
                    cli: Some(cli_info(pool)),
                    accounts: Vec::new(),
                }
            })
            .collect()
    }

    fn chat(&self, request: ChatRequest) -> BoxStream<'static, Result<ChatEvent, ProviderError>> {
        match self.pools.get(&request.provider) {
            Some(pool)
                if request.tools.is_some() && !pool.config().kind.adapter().supports_tools() =>
            {
                stream::once(async move {
                    Err(ProviderError::Unsupported {
                        provider: request.provider,
                        what: "tools (function calling) yet: use a claude provider for them".into(),
                    })
                })
                .boxed()
            }
            Some(pool) => {
                let profile = pool.profile(&request.model, request.system, request.tools);
                pool.chat(profile, request.messages, request.owner)
            }
            None => stream::once(async move {
                Err(ProviderError::Spawn {
                    provider: request.provider,
                    detail: "no such provider".into(),
                })
            })
            .boxed(),
        }
    }

    /// Ready while some provider can answer. A usage limit keeps the process ready: it
    /// answers with the reset time at once, which a router needs to route around the account.
    fn readiness(&self) -> Readiness {
        let serving: Vec<_> = self
            .pools
            .values()
            .filter(|pool| {
                let recheck = Duration::from_secs(pool.config().login_recheck_secs);
                pool.health().can_answer(recheck)
            })
            .map(|pool| pool.name().to_string())
            .collect();
        Readiness {
            ready: !serving.is_empty(),
            detail: if serving.is_empty() {
                "no provider can answer: the CLIs cannot start or are not logged in".into()
            } else {
                format!("serving: {}", serving.join(", "))
            },
        }
    }

    fn shutdown(&self) {
        for pool in self.pools.values() {
            pool.shutdown();
        }
    }
}
