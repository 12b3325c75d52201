//! End-to-end tests against a real cluster (the one in `KUBECONFIG`), opt-in with
//! `LLM_MCP_HUB_E2E_CLUSTER=1`. `kind-config.yaml` at the top of the repository makes one:
//!
//! ```sh
//! kind create cluster --config kind-config.yaml
//! LLM_MCP_HUB_E2E_CLUSTER=1 cargo test -p llm-mcp-hub-operator --test e2e_cluster -- --nocapture
//! ```
//!
//! The suite applies the CRDs, runs the controllers in-process (no operator image needed), creates
//! Secrets and resources in a fresh namespace, waits for the objects and the status, checks that a
//! Secret change rolls the workers and that a missing Secret is reported, deletes the resources and
//! checks garbage collection. Worker and router pods need the hub image to become ready; the suite
//! only requires the objects and conditions the operator itself is responsible for.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use llm_mcp_hub_crds::{HubGateway, LLMProvider, labels};
use llm_mcp_hub_operator::builders::{BuildConfig, FIELD_MANAGER};
use llm_mcp_hub_operator::metrics::Metrics;
use llm_mcp_hub_operator::reconcile::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const OPT_IN: &str = "LLM_MCP_HUB_E2E_CLUSTER";
const TIMEOUT: Duration = Duration::from_secs(120);

fn enabled() -> bool {
    match std::env::var(OPT_IN) {
        Ok(v) if v == "1" || v.eq_ignore_ascii_case("true") => true,
        _ => {
            eprintln!(
                "e2e_cluster: skipped: set {OPT_IN}=1 (and KUBECONFIG to a test cluster, e.g. from kind-config.yaml) to run it"
            );
            false
        }
    }
}

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn secret(name: &str, ns: &str, key: &str, value: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some([(key.to_owned(), ByteString(value.as_bytes().to_vec()))].into()),
        ..Secret::default()
    }
}

async fn apply_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in llm_mcp_hub_crds::crds() {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("CRD applies (the schema is accepted by the API server)");
        eventually(&format!("CRD {name} established"), || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let c = crds.get(&name).await.ok()?;
                c.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
    }
}

#[tokio::test]
async fn operator_against_a_real_cluster() {
    if !enabled() {
        return;
    }
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG points at a cluster");
    apply_crds(&client).await;

    let ns = format!("llm-mcp-hub-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.clone()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .expect("namespace created");

    // The controllers, in-process, watching only the test namespace.
    let shutdown = CancellationToken::new();
    let ctx = Arc::new(Context::new(
        client.clone(),
        BuildConfig::default(),
        Metrics::new(),
        Some("e2e".to_owned()),
    ));
    let controllers = tokio::spawn(llm_mcp_hub_operator::controller::run(
        client.clone(),
        ctx,
        Some(ns.clone()),
        shutdown.clone(),
    ));

    let result = tokio::spawn(scenario(client.clone(), ns.clone())).await;

    shutdown.cancel();
    let _ = controllers.await;
    let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn scenario(client: Client, ns: String) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let providers: Api<LLMProvider> = Api::namespaced(client.clone(), &ns);
    let gateways: Api<HubGateway> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();

    secrets
        .create(&pp, &secret("claude-oauth", &ns, "token", "token-1"))
        .await
        .unwrap();
    secrets
        .create(&pp, &secret("hub-api-keys", &ns, "keys", "key-1\n"))
        .await
        .unwrap();

    let provider: LLMProvider = serde_json::from_value(json!({
        "apiVersion": "llm-mcp-hub.dev/v1alpha1", "kind": "LLMProvider",
        "metadata": {"name": "claude", "namespace": ns, "labels": {"tier": "gold"}},
        "spec": {"kind": "claude", "models": {"allowed": ["sonnet"], "default": "sonnet"},
                 "credentials": {"accounts": [{"name": "main", "secretRef": {"name": "claude-oauth"}}]}}
    }))
    .unwrap();
    providers
        .create(&pp, &provider)
        .await
        .expect("LLMProvider accepted by the CRD schema");

    // Objects appear, owned by the LLMProvider.
    let dep = eventually("worker Deployment", || {
        let d = deployments.clone();
        async move { d.get_opt("claude-main").await.ok().flatten() }
    })
    .await;
    assert_eq!(dep.owner_references()[0].kind, "LLMProvider");
    let hash1 = dep
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap()[labels::ANNOTATION_SECRET_HASH]
        .clone();
    let svc: Api<Service> = Api::namespaced(client.clone(), &ns);
    assert!(svc.get_opt("claude-workers").await.unwrap().is_some());
    let pdb: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    assert!(pdb.get_opt("claude-workers").await.unwrap().is_some());
    let np: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    assert!(np.get_opt("claude-workers").await.unwrap().is_some());

    // Status: observed generation and the three conditions.
    eventually("LLMProvider status", || {
        let p = providers.clone();
        async move {
            let st = p.get("claude").await.ok()?.status?;
            (st.observed_generation == Some(1)
                && ["Ready", "Progressing", "Degraded"]
                    .iter()
                    .all(|t| st.conditions.iter().any(|c| c.type_ == *t)))
            .then_some(())
        }
    })
    .await;

    // A Secret change rolls the workers.
    secrets
        .patch(
            "claude-oauth",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"token": "token-2"}})),
        )
        .await
        .unwrap();
    eventually("secret hash to change", || {
        let d = deployments.clone();
        let hash1 = hash1.clone();
        async move {
            let d = d.get("claude-main").await.ok()?;
            let h = d
                .spec?
                .template
                .metadata?
                .annotations?
                .get(labels::ANNOTATION_SECRET_HASH)?
                .clone();
            (h != hash1).then_some(())
        }
    })
    .await;

    // A missing Secret is reported, nothing is created for it.
    let broken: LLMProvider = serde_json::from_value(json!({
        "apiVersion": "llm-mcp-hub.dev/v1alpha1", "kind": "LLMProvider",
        "metadata": {"name": "broken", "namespace": ns},
        "spec": {"kind": "gemini", "credentials": {"accounts": [{"name": "main", "secretRef": {"name": "nope"}}]}}
    }))
    .unwrap();
    providers.create(&pp, &broken).await.unwrap();
    eventually("SecretNotFound condition", || {
        let p = providers.clone();
        async move {
            let st = p.get("broken").await.ok()?.status?;
            st.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "SecretNotFound")
                .then_some(())
        }
    })
    .await;
    assert!(deployments.get_opt("broken-main").await.unwrap().is_none());

    // The immutable kind is enforced by the API server (CEL transition rule).
    let change = providers
        .patch(
            "claude",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"kind": "gemini"}})),
        )
        .await;
    assert!(change.is_err(), "changing spec.kind must be rejected");

    // A gateway with managed Redis.
    let gw: HubGateway = serde_json::from_value(json!({
        "apiVersion": "llm-mcp-hub.dev/v1alpha1", "kind": "HubGateway",
        "metadata": {"name": "main", "namespace": ns},
        "spec": {"replicas": 1, "apiKeysSecretRef": {"name": "hub-api-keys"},
                 "providerSelector": {"matchLabels": {"tier": "gold"}}}
    }))
    .unwrap();
    gateways
        .create(&pp, &gw)
        .await
        .expect("HubGateway accepted by the CRD schema");
    eventually("router Deployment", || {
        let d = deployments.clone();
        async move { d.get_opt("main-router").await.ok().flatten() }
    })
    .await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    eventually("Redis StatefulSet", || {
        let s = sts.clone();
        async move { s.get_opt("main-redis").await.ok().flatten() }
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = cms.get("main-router").await.unwrap();
    assert!(cm.data.unwrap()["config.toml"].contains("label_selector = \"tier=gold\""));
    eventually("HubGateway status with served providers", || {
        let g = gateways.clone();
        async move {
            let st = g.get("main").await.ok()?.status?;
            (st.served_providers == ["claude"] && st.url.is_some()).then_some(())
        }
    })
    .await;

    // Deleting the resources deletes what they own (garbage collection).
    providers
        .delete("claude", &DeleteParams::foreground())
        .await
        .unwrap();
    gateways
        .delete("main", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("garbage collection of worker and router objects", || {
        let d = deployments.clone();
        let s = sts.clone();
        async move {
            let gone = d.get_opt("claude-main").await.ok()?.is_none()
                && d.get_opt("main-router").await.ok()?.is_none()
                && s.get_opt("main-redis").await.ok()?.is_none();
            gone.then_some(())
        }
    })
    .await;
}
