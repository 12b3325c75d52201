//! Reconcilers of LLMProvider and HubGateway, and what they share.

pub mod gateway;
pub mod provider;
pub mod status;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::builders::{BuildConfig, FIELD_MANAGER};
use crate::metrics::Metrics;
use crate::validate::Problem;
use crate::workers::WorkerProbe;

/// Errors that make a reconcile fail (and be retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// The resource has no namespace (it is namespaced, so this is a bug or a broken object).
    #[error("object has no namespace")]
    NoNamespace,
}

impl Error {
    /// Short label for metrics.
    pub fn metric_label(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(s)) => format!("api_{}", s.code),
            Error::Kube(_) => "client".to_owned(),
            Error::NoNamespace => "no_namespace".to_owned(),
        }
    }
}

/// State shared by every reconcile.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Event recorder (events.k8s.io/v1).
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Metrics,
    /// Settings that shape the built objects.
    pub config: BuildConfig,
    /// Asks the worker pods how their accounts are (None: status from the Deployments only).
    pub workers: Option<WorkerProbe>,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for the given client.
    pub fn new(
        client: Client,
        config: BuildConfig,
        metrics: Metrics,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            config,
            workers: None,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The same context, asking the workers through `probe` as well.
    pub fn with_workers(mut self, probe: WorkerProbe) -> Self {
        self.workers = Some(probe);
        self
    }

    fn key<K: Resource>(obj: &K) -> String {
        format!(
            "{}/{}/{}",
            std::any::type_name::<K>(),
            obj.meta().namespace.as_deref().unwrap_or(""),
            obj.meta().name.as_deref().unwrap_or("")
        )
    }

    /// Forgets the failures of an object after a successful reconcile.
    pub fn succeeded<K: Resource>(&self, obj: &K) {
        self.failures
            .lock()
            .expect("not poisoned")
            .remove(&Self::key(obj));
    }

    /// Records a failure and returns how long to wait: 1 s doubling up to 5 min.
    pub fn backoff<K: Resource>(&self, obj: &K) -> Duration {
        let mut map = self.failures.lock().expect("not poisoned");
        let n = map.entry(Self::key(obj)).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n)
    }

    /// Publishes an event about an object; failures to publish are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}

/// The delay after `n` consecutive failures.
pub fn backoff_delay(n: u32) -> Duration {
    let secs = 1u64
        .checked_shl(n.saturating_sub(1))
        .unwrap_or(u64::MAX)
        .min(300);
    Duration::from_secs(secs)
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Server-side applies one namespaced object with the operator's field manager.
pub async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(&obj.name_any(), &pp, &Patch::Apply(obj)).await?)
}

/// Whether `obj` is controlled by the resource whose uid is `owner_uid`.
pub fn controlled_by<K: Resource>(obj: &K, owner_uid: &str) -> bool {
    obj.owner_references()
        .iter()
        .any(|o| o.uid == owner_uid && o.controller == Some(true))
}

/// Deletes exactly this object: the uid precondition makes the API server refuse if the name
/// now belongs to a different object (deleted and re-created since it was read).
pub async fn delete_exact<K>(client: &Client, ns: &str, obj: &K) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: obj.uid(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&obj.name_any(), &params).await {
        Ok(_) => Ok(()),
        // Gone already, or replaced by another object of the same name: nothing of ours left.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the object named `name` if this operator made it for the resource `owner_uid`. An
/// object of that name that someone else made (a user's own Ingress, say) is left alone.
pub async fn delete_owned<K>(
    client: &Client,
    ns: &str,
    name: &str,
    owner_uid: &str,
) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let Some(obj) = api.get_opt(name).await? else {
        return Ok(());
    };
    if !controlled_by(&obj, owner_uid) {
        tracing::info!(%ns, name, kind = %K::kind(&()), "not deleting an object this resource does not own");
        return Ok(());
    }
    delete_exact(client, ns, &obj).await
}

/// A random string of ASCII letters and digits, for generated credentials (safe inside a URL, an
/// HTTP header and a file, with nothing to escape or trim).
pub fn random_alphanumeric(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

/// The value of `key` in the Secret `name`, if the Secret exists and `keep` accepts the value.
/// Generated credentials are read back this way so that they are made once and then kept.
pub async fn read_generated(
    client: &Client,
    ns: &str,
    name: &str,
    key: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Option<String>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(key))
        .and_then(|b| String::from_utf8(b.0).ok())
        .filter(|v| keep(v)))
}

/// A Secret key that must exist for a resource to work.
pub struct SecretNeed<'a> {
    /// Secret name.
    pub name: &'a str,
    /// Key inside it.
    pub key: &'a str,
    /// Which field asked for it (for messages).
    pub field: String,
}

/// Reads the needed Secrets; returns a hash of the needed keys' data per Secret name, or the
/// first problem (missing Secret or key).
pub async fn read_secrets(
    client: &Client,
    ns: &str,
    needs: &[SecretNeed<'_>],
) -> Result<Result<BTreeMap<String, Vec<u8>>, Problem>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut cache: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    let mut data = BTreeMap::new();
    for need in needs {
        if !cache.contains_key(need.name) {
            let s = api.get_opt(need.name).await?;
            cache.insert(need.name.to_owned(), s);
        }
        let Some(secret) = cache.get(need.name).and_then(Option::as_ref) else {
            return Ok(Err(Problem::new(
                "SecretNotFound",
                format!("Secret {ns}/{} ({}) does not exist", need.name, need.field),
            )));
        };
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(need.key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(need.key))
                    .map(|s| s.clone().into_bytes())
            });
        match value {
            Some(v) if !v.is_empty() => {
                data.insert(format!("{}/{}", need.name, need.key), v);
            }
            _ => {
                return Ok(Err(Problem::new(
                    "SecretKeyMissing",
                    format!(
                        "Secret {ns}/{} has no (non-empty) key {:?} ({})",
                        need.name, need.key, need.field
                    ),
                )));
            }
        }
    }
    Ok(Ok(data))
}

/// The error policy of both controllers: count, log, and retry with exponential backoff.
pub fn error_policy<K: Resource>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context>,
    kind: &str,
) -> Action {
    let delay = ctx.backoff(obj.as_ref());
    ctx.metrics
        .errors
        .with_label_values(&[kind, &err.metric_label()])
        .inc();
    tracing::warn!(
        kind,
        name = obj.meta().name.as_deref().unwrap_or(""),
        namespace = obj.meta().namespace.as_deref().unwrap_or(""),
        error = %err,
        retry_in_secs = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_delay(1), Duration::from_secs(1));
        assert_eq!(backoff_delay(2), Duration::from_secs(2));
        assert_eq!(backoff_delay(5), Duration::from_secs(16));
        assert_eq!(backoff_delay(20), Duration::from_secs(300));
        assert_eq!(backoff_delay(200), Duration::from_secs(300));
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("héllo".to_owned(), 2), "h");
        assert_eq!(truncate("abc".to_owned(), 10), "abc");
    }
}
