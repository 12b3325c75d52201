//! Wiring of the two kube-runtime controllers: what they watch and how events map to resources.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
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

/// LLMProviders that reference a Secret.
pub fn providers_using_secret(
    store: &Store<LLMProvider>,
    secret: &Secret,
) -> Vec<ObjectRef<LLMProvider>> {
    let ns = secret.namespace();
    let name = secret.name_any();
    store
        .state()
        .iter()
        .filter(|p| p.namespace() == ns)
        .filter(|p| {
            p.spec
                .credentials
                .accounts
                .iter()
                .any(|a| a.secret_ref.name == name)
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// HubGateways that reference a Secret (API keys, external Redis URL).
pub fn gateways_using_secret(
    store: &Store<HubGateway>,
    secret: &Secret,
) -> Vec<ObjectRef<HubGateway>> {
    let ns = secret.namespace();
    let name = secret.name_any();
    store
        .state()
        .iter()
        .filter(|g| g.namespace() == ns)
        .filter(|g| {
            g.spec.api_keys_secret_ref.name == name
                || (g.spec.session_store.mode == SessionStoreMode::External
                    && g.spec
                        .session_store
                        .external
                        .as_ref()
                        .is_some_and(|e| e.url_secret_ref.name == name))
        })
        .map(|g| ObjectRef::from_obj(g.as_ref()))
        .collect()
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
        .watches(api::<Secret>(&client, ns), Config::default(), move |s| {
            providers_using_secret(&provider_store, &s)
        })
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
        .watches(api::<Secret>(&client, ns), Config::default(), move |s| {
            gateways_using_secret(&gw_store, &s)
        })
        // A new, changed or deleted LLMProvider changes the served providers of the gateways of
        // its namespace.
        .watches(
            api::<LLMProvider>(&client, ns),
            Config::default(),
            move |p: LLMProvider| {
                let pns = p.namespace();
                gw_store2
                    .state()
                    .iter()
                    .filter(|g| g.namespace() == pns)
                    .map(|g| ObjectRef::from_obj(g.as_ref()))
                    .collect::<Vec<_>>()
            },
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
