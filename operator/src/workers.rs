//! What the worker pods say about their accounts: the operator asks each ready worker for its
//! status (the worker protocol's `GET /internal/v1/status`, with the LLMProvider's worker
//! credential), so that an LLMProvider is Ready only once some worker's CLI is logged in, and
//! its status shows which account is usage-limited until when. Vendors' limits change without
//! any Kubernetes event, so a provider with workers is looked at again every `interval`.
//!
//! The HTTP part is [`WorkerProbe::observe`]; what the answers mean for the status is the pure
//! [`Observation::from_answers`] and [`Observation::apply`].

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use llm_mcp_hub_crds::{AccountStatus, labels};
use serde::Deserialize;

/// The worker protocol's status path (the hub's `wire::STATUS_PATH`).
pub const STATUS_PATH: &str = "/internal/v1/status";

/// The part of a worker's status the operator reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkerAnswer {
    #[serde(default)]
    pub account: Option<String>,
    /// `ready`, `degraded`, `usage_limited`, `not_logged_in`, `unavailable`.
    pub health: String,
    /// Unix time a usage limit resets, while one stands.
    #[serde(default)]
    pub limited_until: Option<i64>,
}

impl WorkerAnswer {
    /// Whether the worker's CLI runs on a login that the vendor accepts (a usage limit is a
    /// logged-in account that is out of its window).
    pub fn logged_in(&self) -> bool {
        matches!(self.health.as_str(), "ready" | "degraded" | "usage_limited")
    }
}

/// What the workers of one LLMProvider answered in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// Workers that answered.
    pub answered: usize,
    /// Workers asked (ready endpoints).
    pub asked: usize,
    /// Answers whose CLI is logged in.
    pub logged_in: usize,
    /// Per account: the latest reset among its workers' usage limits, if any stands.
    pub limited_until: BTreeMap<String, i64>,
}

impl Observation {
    /// Folds the answers of `asked` workers (an unreachable one is `None`) into an observation;
    /// limits that reset before `now` (unix seconds) are over.
    pub fn from_answers(answers: &[Option<WorkerAnswer>], now: i64) -> Observation {
        let mut o = Observation {
            asked: answers.len(),
            ..Observation::default()
        };
        for a in answers.iter().flatten() {
            o.answered += 1;
            if a.logged_in() {
                o.logged_in += 1;
            }
            if a.health == "usage_limited"
                && let (Some(account), Some(until)) = (&a.account, a.limited_until)
                && until > now
            {
                let slot = o.limited_until.entry(account.clone()).or_insert(until);
                *slot = (*slot).max(until);
            }
        }
        o
    }

    /// Sets each account's `usageLimitedUntil` from this round: set while one of its workers
    /// reports a limit, cleared when its workers answered without one. An account none of
    /// whose workers answered keeps what it had, until that time has passed.
    pub fn apply(&self, accounts: &mut [AccountStatus], answered_accounts: &[String], now: i64) {
        for acc in accounts.iter_mut() {
            if let Some(until) = self.limited_until.get(&acc.name) {
                acc.usage_limited_until = Timestamp::from_second(*until).ok().map(Time);
                continue;
            }
            let answered = answered_accounts.contains(&acc.name);
            let past = acc
                .usage_limited_until
                .as_ref()
                .is_some_and(|t| t.0.as_second() <= now);
            if answered || past {
                acc.usage_limited_until = None;
            }
        }
    }
}

/// The accounts that some worker answered for.
pub fn answered_accounts(answers: &[Option<WorkerAnswer>]) -> Vec<String> {
    let mut v: Vec<String> = answers
        .iter()
        .flatten()
        .filter_map(|a| a.account.clone())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The addresses of the ready endpoints of one Service's EndpointSlices.
pub fn ready_addresses(slices: &[EndpointSlice]) -> Vec<String> {
    let mut out = Vec::new();
    for s in slices {
        for e in &s.endpoints {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
            let terminating = e
                .conditions
                .as_ref()
                .and_then(|c| c.terminating)
                .unwrap_or(false);
            if ready && !terminating {
                out.extend(e.addresses.iter().cloned());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Asks workers for their status.
#[derive(Clone)]
pub struct WorkerProbe {
    http: HttpClient<HttpConnector, Empty<Bytes>>,
    slices: Store<EndpointSlice>,
    /// How long one worker may take to answer.
    pub timeout: Duration,
    /// How often a provider with workers is looked at again.
    pub interval: Duration,
}

impl WorkerProbe {
    pub fn new(slices: Store<EndpointSlice>, timeout: Duration, interval: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let http = HttpClient::builder(TokioExecutor::new()).build(connector);
        WorkerProbe {
            http,
            slices,
            timeout,
            interval,
        }
    }

    /// The ready workers behind Service `service` in `ns`, each asked once, at once.
    pub async fn observe(
        &self,
        ns: &str,
        service: &str,
        port: i32,
        token: &str,
    ) -> Vec<Option<WorkerAnswer>> {
        let slices: Vec<EndpointSlice> = self
            .slices
            .state()
            .iter()
            .filter(|s| {
                s.namespace().as_deref() == Some(ns)
                    && s.labels()
                        .get("kubernetes.io/service-name")
                        .map(String::as_str)
                        == Some(service)
            })
            .map(|s| s.as_ref().clone())
            .collect();
        let asks = ready_addresses(&slices)
            .into_iter()
            .map(|addr| self.ask(addr, port, token));
        futures::future::join_all(asks).await
    }

    async fn ask(&self, addr: String, port: i32, token: &str) -> Option<WorkerAnswer> {
        let host = if addr.contains(':') {
            format!("[{addr}]")
        } else {
            addr
        };
        let request = ::http::Request::get(format!("http://{host}:{port}{STATUS_PATH}"))
            .header(::http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Empty::new())
            .ok()?;
        let answer = async {
            let response = self.http.request(request).await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let body = response.into_body().collect().await.ok()?.to_bytes();
            serde_json::from_slice::<WorkerAnswer>(&body).ok()
        };
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(a) => a,
            Err(_) => {
                tracing::debug!(worker = %host, "worker status timed out");
                None
            }
        }
    }
}

/// Label selector of the worker Services' EndpointSlices (they carry their Service's labels).
pub fn worker_slices_selector() -> String {
    format!(
        "{}={},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::COMPONENT,
        labels::COMPONENT_WORKER
    )
}

/// A store of the worker Services' EndpointSlices in `namespace` (all: `None`), kept current
/// by a reflector task that ends with the process.
pub fn watch_worker_slices(client: Client, namespace: Option<&str>) -> Store<EndpointSlice> {
    let api: Api<EndpointSlice> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(
            api,
            watcher::Config::default().labels(&worker_slices_selector()),
        ),
    )
    .default_backoff()
    .applied_objects();
    tokio::spawn(stream.for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "worker EndpointSlice watch");
        }
    }));
    reader
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(account: &str, health: &str, until: Option<i64>) -> Option<WorkerAnswer> {
        Some(WorkerAnswer {
            account: Some(account.to_owned()),
            health: health.to_owned(),
            limited_until: until,
        })
    }

    fn account(name: &str, until: Option<i64>) -> AccountStatus {
        AccountStatus {
            name: name.to_owned(),
            deployment: format!("claude-{name}"),
            ready_replicas: 1,
            usage_limited_until: until.map(|t| Time(Timestamp::from_second(t).unwrap())),
        }
    }

    #[test]
    fn the_workers_status_is_read_as_the_hub_writes_it() {
        let a: WorkerAnswer = serde_json::from_value(json!({
            "protocol": "1", "provider": "claude", "kind": "claude", "account": "a",
            "models": ["sonnet"], "default_model": "sonnet", "health": "usage_limited",
            "limited_until": 1_900_000_000, "accepting": true, "draining": false,
            "capacity": {}, "limits": {}, "version": "0.1.0", "instance": "x"
        }))
        .unwrap();
        assert_eq!(a.account.as_deref(), Some("a"));
        assert!(a.logged_in());
        assert_eq!(a.limited_until, Some(1_900_000_000));
    }

    #[test]
    fn logged_in_counts_every_answer_whose_cli_the_vendor_accepts() {
        let o = Observation::from_answers(
            &[
                answer("a", "ready", None),
                answer("b", "not_logged_in", None),
                answer("c", "usage_limited", Some(2_000)),
                None,
            ],
            1_000,
        );
        assert_eq!((o.asked, o.answered, o.logged_in), (4, 3, 2));
        assert_eq!(o.limited_until, BTreeMap::from([("c".to_owned(), 2_000)]));
    }

    #[test]
    fn an_account_is_limited_until_its_latest_workers_reset_and_a_past_reset_is_over() {
        let o = Observation::from_answers(
            &[
                answer("a", "usage_limited", Some(1_500)),
                answer("a", "usage_limited", Some(1_800)),
                answer("b", "usage_limited", Some(900)),
            ],
            1_000,
        );
        assert_eq!(o.limited_until, BTreeMap::from([("a".to_owned(), 1_800)]));
    }

    #[test]
    fn limits_are_set_cleared_when_answered_without_one_and_kept_while_unanswered() {
        let answers = [
            answer("a", "usage_limited", Some(5_000)),
            answer("b", "ready", None),
        ];
        let o = Observation::from_answers(&answers, 1_000);
        let mut accounts = vec![
            account("a", None),
            account("b", Some(4_000)),
            account("c", Some(3_000)),
            account("d", Some(500)),
        ];
        o.apply(&mut accounts, &answered_accounts(&answers), 1_000);
        let until: Vec<Option<i64>> = accounts
            .iter()
            .map(|a| a.usage_limited_until.as_ref().map(|t| t.0.as_second()))
            .collect();
        // a: reported; b: answered without a limit; c: no answer, kept; d: no answer, past.
        assert_eq!(until, vec![Some(5_000), None, Some(3_000), None]);
    }

    #[test]
    fn only_ready_endpoints_that_are_not_terminating_are_asked() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "s", "namespace": "hub"},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true, "terminating": false}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.4"], "conditions": {"ready": true, "terminating": true}},
                {"addresses": ["10.0.0.5"]}
            ]
        }))
        .unwrap();
        assert_eq!(ready_addresses(&[slice]), vec!["10.0.0.1", "10.0.0.2"]);
    }
}
