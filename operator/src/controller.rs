//! Wiring of the two kube-runtime controllers: what they watch and how events map to resources.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Config;
use kube::{Api, Client, Resource, ResourceExt};
use llm_mcp_hub_crds::{HubGateway, LLMProvider, SessionStoreMode, labels};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::reconcile::{Context, error_policy, gateway, provider};

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn owned() -> Config {
    Config::default().labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE
    ))
}

/// Secrets as metadata only: a change only triggers a reconcile, which then reads the few
/// Secrets it needs, so the operator never receives the data of every Secret it may watch.
fn secret_metadata(client: &Client, ns: Option<&str>) -> Api<PartialObjectMeta<Secret>> {
    api::<PartialObjectMeta<Secret>>(client, ns)
}

/// The stored objects of namespace `ns` that `wanted` picks.
fn refs_in<K>(
    store: &Store<K>,
    ns: Option<String>,
    wanted: impl Fn(&K) -> bool,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|o| o.namespace() == ns && wanted(o))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// LLMProviders that reference a Secret (given as the Secret or only its metadata), and the one
/// that controls it (its worker-token Secret), so that a deleted token is made again at once.
pub fn providers_using_secret(
    store: &Store<LLMProvider>,
    secret: &impl ResourceExt,
) -> Vec<ObjectRef<LLMProvider>> {
    let name = secret.name_any();
    let controller_uid = secret
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone());
    refs_in(store, secret.namespace(), |p| {
        p.spec
            .credentials
            .accounts
            .iter()
            .any(|a| a.secret_ref.name == name)
            || (controller_uid.is_some() && p.uid() == controller_uid)
    })
}

/// The LLMProvider whose worker Service an EndpointSlice belongs to (its provider label).
pub fn provider_of_slice(s: EndpointSlice) -> Option<ObjectRef<LLMProvider>> {
    let provider = s.labels().get(labels::PROVIDER)?;
    Some(ObjectRef::new(provider).within(&s.namespace()?))
}

/// HubGateways that reference a Secret (API keys, external Redis URL).
pub fn gateways_using_secret(
    store: &Store<HubGateway>,
    secret: &impl ResourceExt,
) -> Vec<ObjectRef<HubGateway>> {
    let name = secret.name_any();
    refs_in(store, secret.namespace(), |g| {
        g.spec.api_keys_secret_ref.name == name
            || (g.spec.session_store.mode == SessionStoreMode::External
                && g.spec
                    .session_store
                    .external
                    .as_ref()
                    .is_some_and(|e| e.url_secret_ref.name == name))
    })
}

/// Runs both controllers until `shutdown` is cancelled.
pub async fn run(
    client: Client,
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: CancellationToken,
) {
    let ns = namespace.as_deref();
    let cfg = ControllerConfig::default().concurrency(8);

    let providers = Controller::new(api::<LLMProvider>(&client, ns), Config::default())
        .with_config(cfg.clone());
    let provider_store = providers.store();
    let providers = providers
        .owns(api::<Deployment>(&client, ns), owned())
        .owns(api::<Service>(&client, ns), owned())
        .owns(api::<PodDisruptionBudget>(&client, ns), owned())
        .owns(api::<NetworkPolicy>(&client, ns), owned())
        .watches(secret_metadata(&client, ns), Config::default(), move |s| {
            providers_using_secret(&provider_store, &s)
        })
        // A worker that turns ready (or stops) changes what its workers answer: the provider's
        // status is looked at again at once rather than at the next interval. The probe reads
        // the same slices from a store of its own (workers::watch_worker_slices): sharing one
        // watch needs kube-runtime's unstable stream features, and the filtered set is small.
        .watches(
            api::<EndpointSlice>(&client, ns),
            Config::default().labels(&crate::workers::worker_slices_selector()),
            provider_of_slice,
        )
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            provider::reconcile,
            |obj, err, ctx| error_policy(obj, err, ctx, provider::KIND),
            ctx.clone(),
        )
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "LLMProvider controller event");
            }
        });

    let gateways =
        Controller::new(api::<HubGateway>(&client, ns), Config::default()).with_config(cfg);
    let gw_store = gateways.store();
    let gw_store2 = gateways.store();
    let gateways = gateways
        .owns(api::<Deployment>(&client, ns), owned())
        .owns(api::<StatefulSet>(&client, ns), owned())
        .owns(api::<Service>(&client, ns), owned())
        .owns(api::<ConfigMap>(&client, ns), owned())
        .owns(api::<ServiceAccount>(&client, ns), owned())
        .owns(api::<Role>(&client, ns), owned())
        .owns(api::<RoleBinding>(&client, ns), owned())
        .owns(api::<Ingress>(&client, ns), owned())
        .owns(api::<NetworkPolicy>(&client, ns), owned())
        .watches(secret_metadata(&client, ns), Config::default(), move |s| {
            gateways_using_secret(&gw_store, &s)
        })
        // A new, changed or deleted LLMProvider changes the served providers of the gateways of
        // its namespace.
        .watches(
            api::<LLMProvider>(&client, ns),
            Config::default(),
            move |p: LLMProvider| refs_in(&gw_store2, p.namespace(), |_| true),
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            gateway::reconcile,
            |obj, err, ctx| error_policy(obj, err, ctx, gateway::KIND),
            ctx,
        )
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "HubGateway controller event");
            }
        });

    futures::join!(providers, gateways);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn store<K>(objs: Vec<K>) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let mut w = Writer::default();
        for o in objs {
            w.apply_watcher_event(&Event::Apply(o));
        }
        w.as_reader()
    }

    fn obj<K: DeserializeOwned>(kind: &str, ns: &str, name: &str, spec: serde_json::Value) -> K {
        serde_json::from_value(json!({
            "apiVersion": llm_mcp_hub_crds::API_VERSION, "kind": kind,
            "metadata": {"name": name, "namespace": ns}, "spec": spec
        }))
        .unwrap()
    }

    fn secret(ns: &str, name: &str) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(ns.to_owned()),
                ..Default::default()
            },
            ..Secret::default()
        }
    }

    fn names<K: Resource<DynamicType = ()>>(refs: Vec<ObjectRef<K>>) -> Vec<String> {
        let mut n: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        n.sort();
        n
    }

    #[test]
    fn secrets_map_to_the_resources_of_their_namespace_that_use_them() {
        let provider = |ns, name, secret| {
            obj::<LLMProvider>(
                "LLMProvider",
                ns,
                name,
                json!({"kind": "claude", "credentials": {"accounts": [{"name": "a", "secretRef": {"name": secret}}]}}),
            )
        };
        let providers = store(vec![
            provider("hub", "p1", "s1"),
            provider("hub", "p2", "s2"),
            provider("other", "p3", "s1"),
        ]);
        assert_eq!(
            names(providers_using_secret(&providers, &secret("hub", "s1"))),
            ["p1"]
        );
        // A provider's own worker-token Secret maps back to it, by its controller's uid.
        let mut providers_with_uid = vec![provider("hub", "p1", "s1"), provider("hub", "p2", "s2")];
        providers_with_uid[1].metadata.uid = Some("uid-p2".to_owned());
        let providers_with_uid = store(providers_with_uid);
        let mut token = secret("hub", "p2-worker-token");
        token.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: llm_mcp_hub_crds::API_VERSION.to_owned(),
                kind: "LLMProvider".to_owned(),
                name: "p2".to_owned(),
                uid: "uid-p2".to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        ]);
        assert_eq!(
            names(providers_using_secret(&providers_with_uid, &token)),
            ["p2"]
        );
        token.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert!(providers_using_secret(&providers_with_uid, &token).is_empty());

        let gateway = |name, store| {
            obj::<HubGateway>(
                "HubGateway",
                "hub",
                name,
                json!({"apiKeysSecretRef": {"name": "keys"}, "sessionStore": store}),
            )
        };
        let gateways = store(vec![
            gateway("managed", json!({"mode": "Managed"})),
            gateway(
                "external",
                json!({"mode": "External", "external": {"urlSecretRef": {"name": "url"}}}),
            ),
        ]);
        assert_eq!(
            names(gateways_using_secret(&gateways, &secret("hub", "keys"))),
            ["external", "managed"]
        );
        assert_eq!(
            names(gateways_using_secret(&gateways, &secret("hub", "url"))),
            ["external"]
        );
        assert!(gateways_using_secret(&gateways, &secret("other", "keys")).is_empty());
    }

    /// The Secret watch asks the API server for metadata only, never for Secret data.
    #[tokio::test]
    async fn secrets_are_watched_as_metadata_only() {
        use http::{Request, Response};
        use kube::client::Body;

        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "hub");
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("a request");
            let accept = request
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let list = serde_json::json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                "metadata": {"resourceVersion": "1"}, "items": []
            });
            send.send_response(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&list).unwrap()))
                    .unwrap(),
            );
            (request.uri().path().to_owned(), accept)
        });
        secret_metadata(&client, Some("hub"))
            .list(&Default::default())
            .await
            .unwrap();
        let (path, accept) = server.await.unwrap();
        assert_eq!(path, "/api/v1/namespaces/hub/secrets");
        assert!(accept.contains("as=PartialObjectMetadataList"), "{accept}");
    }
}
