//! End-to-end tests against a real API server (the one in `KUBECONFIG`), opt-in with
//! `LLM_MCP_HUB_E2E_CLUSTER=1`. The test suite runs them against a control plane it builds and
//! starts itself (`tests/kube/run.sh`: etcd, kube-apiserver, kube-controller-manager, no kubelet);
//! a kind cluster made from `kind-config.yaml` works too:
//!
//! ```sh
//! kind create cluster --config kind-config.yaml
//! LLM_MCP_HUB_E2E_CLUSTER=1 cargo test -p llm-mcp-hub-operator --test e2e_cluster -- --nocapture
//! ```
//!
//! The suite applies the CRDs, runs the controllers in-process (no operator image needed), creates
//! Secrets and resources in a fresh namespace, waits for the objects, the status and the Events,
//! checks that a second reconcile pass writes nothing, that a Secret change rolls the workers and
//! that a missing Secret is reported, then stops the controllers, deletes the resources and checks
//! that the garbage collector (kube-controller-manager) deletes everything they owned. A second
//! test runs the leader election against the API server's optimistic concurrency.
//!
//! With `LLM_MCP_HUB_E2E_OPERATOR_SA=<namespace>/<serviceaccount>` (the chart's, installed by
//! `helm install`), the controllers use a token of that ServiceAccount, so they have exactly the
//! permissions the chart grants. Worker and router pods need the hub image and a kubelet; the
//! suite only requires the objects and conditions the operator itself is responsible for.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, Config, ResourceExt};
use llm_mcp_hub_crds::{HubGateway, LLMProvider, labels};
use llm_mcp_hub_operator::builders::{BuildConfig, FIELD_MANAGER};
use llm_mcp_hub_operator::leader::{LeaderElector, LeaseConfig};
use llm_mcp_hub_operator::metrics::Metrics;
use llm_mcp_hub_operator::reconcile::{Context, gateway, provider};
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

/// The client the controllers use: a token of the chart's ServiceAccount when
/// `LLM_MCP_HUB_E2E_OPERATOR_SA=<namespace>/<name>` is set, else the test's own (admin) client.
async fn operator_client(admin: &Client) -> Client {
    let Ok(sa) = std::env::var("LLM_MCP_HUB_E2E_OPERATOR_SA") else {
        eprintln!(
            "e2e_cluster: the controllers use the admin client (set LLM_MCP_HUB_E2E_OPERATOR_SA to use the chart's ServiceAccount)"
        );
        return admin.clone();
    };
    let (ns, name) = sa
        .split_once('/')
        .expect("LLM_MCP_HUB_E2E_OPERATOR_SA is <namespace>/<name>");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("a token for the operator's ServiceAccount (is the chart installed?)")
        .status
        .expect("TokenRequest status")
        .token;
    // The admin configuration's server and CA, with nothing of its identity but this token.
    let mut config = Config::infer().await.expect("KUBECONFIG");
    config.auth_info = serde_json::from_value(json!({ "token": token })).unwrap();
    let client = Client::try_from(config).expect("client");
    // It really is the ServiceAccount: what the chart does not grant is refused.
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(&nodes, Err(kube::Error::Api(s)) if s.code == 403),
        "the operator's ServiceAccount must not list Nodes: {nodes:?}"
    );
    eprintln!("e2e_cluster: the controllers use a token of ServiceAccount {sa}");
    client
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
        .create(&PostParams::default(), &namespace(&ns))
        .await
        .expect("namespace created");

    // The controllers, in-process, watching only the test namespace.
    let op_client = operator_client(&client).await;
    let shutdown = CancellationToken::new();
    let ctx = Arc::new(Context::new(
        op_client.clone(),
        BuildConfig::default(),
        Metrics::new(),
        Some("e2e".to_owned()),
    ));
    let controllers = tokio::spawn(llm_mcp_hub_operator::controller::run(
        op_client.clone(),
        ctx.clone(),
        Some(ns.clone()),
        shutdown.clone(),
    ));

    let result = tokio::spawn(scenario(client.clone(), ns.clone(), ctx, shutdown.clone())).await;

    shutdown.cancel();
    let _ = controllers.await;
    let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// Every namespaced kind the API server lists (core, apps, the CRDs, ...).
async fn listable_kinds(client: &Client) -> Vec<kube::discovery::ApiResource> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("API discovery");
    let mut kinds = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope == Scope::Namespaced && caps.supports_operation(verbs::LIST) {
                kinds.push(ar);
            }
        }
    }
    kinds
}

/// What the operator has written in a namespace: each object that it manages a field of (its
/// resourceVersion and the operator's managedFields entries: operation, subresource, time) and
/// each Event it published. A write shows as a changed or new entry.
async fn operator_writes(
    client: &Client,
    ns: &str,
    kinds: &[kube::discovery::ApiResource],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for ar in kinds {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
        let Ok(list) = api.list(&ListParams::default()).await else {
            continue;
        };
        for obj in list {
            let mine: Vec<_> = obj
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .filter(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
                .map(|m| {
                    format!(
                        "{}{}@{}",
                        m.operation.as_deref().unwrap_or_default(),
                        m.subresource
                            .as_deref()
                            .map(|s| format!("/{s}"))
                            .unwrap_or_default(),
                        m.time.as_ref().map(|t| t.0.to_string()).unwrap_or_default()
                    )
                })
                .collect();
            let reported_by_operator = obj
                .data
                .get("reportingController")
                .and_then(|v| v.as_str())
                .is_some_and(|c| c == FIELD_MANAGER);
            if !mine.is_empty() || reported_by_operator {
                out.insert(
                    format!("{}/{}", ar.plural, obj.name_any()),
                    format!(
                        "rv={} {}",
                        obj.resource_version().unwrap_or_default(),
                        mine.join(" ")
                    ),
                );
            }
        }
    }
    out
}

/// Waits until the operator's writes in `ns` stay the same for 3 seconds, and returns them.
async fn settled_writes(
    client: &Client,
    ns: &str,
    kinds: &[kube::discovery::ApiResource],
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut last = operator_writes(client, ns, kinds).await;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = operator_writes(client, ns, kinds).await;
        if now == last {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the operator kept writing: {}",
            diff(&last, &now).join("\n")
        );
        last = now;
    }
}

fn diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in after {
        match before.get(k) {
            None => out.push(format!("new: {k}: {v}")),
            Some(b) if b != v => out.push(format!("changed: {k}:\n  before {b}\n  after  {v}")),
            _ => {}
        }
    }
    for k in before.keys().filter(|k| !after.contains_key(*k)) {
        out.push(format!("gone: {k}"));
    }
    out
}

/// The operator's Events about one object, as "type reason".
async fn events_about(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.reporting_controller.as_deref() == Some(FIELD_MANAGER)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .map(|e| {
            format!(
                "{} {}",
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default()
            )
        })
        .collect()
}

async fn scenario(client: Client, ns: String, ctx: Arc<Context>, controllers: CancellationToken) {
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

    // Events: one when the Ready condition changed, none on later passes.
    eventually("a Warning Event about the missing Secret", || {
        let c = client.clone();
        let ns = ns.clone();
        async move {
            events_about(&c, &ns, "broken")
                .await
                .contains(&"Warning SecretNotFound".to_owned())
                .then_some(())
        }
    })
    .await;
    eventually(
        "an Event about the claude provider's Ready condition",
        || {
            let c = client.clone();
            let ns = ns.clone();
            async move { (!events_about(&c, &ns, "claude").await.is_empty()).then_some(()) }
        },
    )
    .await;

    // A second pass writes nothing: the reconcilers run again over every resource, and neither
    // the objects' managed fields nor their resourceVersions change, and no Event is added.
    let kinds = listable_kinds(&client).await;
    let before = settled_writes(&client, &ns, &kinds).await;
    assert!(
        before.keys().any(|k| k.starts_with("deployments/"))
            && before.keys().any(|k| k.starts_with("llmproviders/"))
            && before.keys().any(|k| k.starts_with("hubgateways/")),
        "the operator's writes are seen: {before:#?}"
    );
    for name in ["claude", "broken"] {
        let p = providers.get(name).await.unwrap();
        provider::reconcile(Arc::new(p), ctx.clone())
            .await
            .expect("second LLMProvider pass");
    }
    let g = gateways.get("main").await.unwrap();
    gateway::reconcile(Arc::new(g), ctx.clone())
        .await
        .expect("second HubGateway pass");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = operator_writes(&client, &ns, &kinds).await;
    let changes = diff(&before, &after);
    assert!(
        changes.is_empty(),
        "a second reconcile pass wrote:\n{}",
        changes.join("\n")
    );
    eprintln!(
        "e2e_cluster: second pass over {} objects the operator wrote: no write",
        before.len()
    );

    // Deleting the resources deletes what they own: the garbage collector of the
    // controller-manager does it (the controllers are stopped first, so it is not the operator).
    controllers.cancel();
    let owned = |kinds: Vec<kube::discovery::ApiResource>, client: Client, ns: String| async move {
        let mut names = Vec::new();
        let lp = ListParams::default().labels(&format!(
            "{}={}",
            labels::MANAGED_BY,
            labels::MANAGED_BY_VALUE
        ));
        for ar in &kinds {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, ar);
            if let Ok(list) = api.list(&lp).await {
                names.extend(
                    list.into_iter()
                        .map(|o| format!("{}/{}", ar.plural, o.name_any())),
                );
            }
        }
        names
    };
    let before_delete = owned(kinds.clone(), client.clone(), ns.clone()).await;
    for expected in [
        "deployments/claude-main",
        "services/claude-workers",
        "deployments/main-router",
        "statefulsets/main-redis",
        "secrets/main-redis-auth",
    ] {
        assert!(
            before_delete.iter().any(|n| n == expected),
            "{expected} among the operator's objects: {before_delete:?}"
        );
    }
    providers
        .delete("claude", &DeleteParams::foreground())
        .await
        .unwrap();
    providers
        .delete("broken", &DeleteParams::background())
        .await
        .unwrap();
    gateways
        .delete("main", &DeleteParams::background())
        .await
        .unwrap();
    let started = Instant::now();
    let mut left = Vec::new();
    let collected = tokio::time::timeout(TIMEOUT, async {
        loop {
            left = owned(kinds.clone(), client.clone(), ns.clone()).await;
            if left.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    assert!(
        collected.is_ok(),
        "garbage collection left objects of the operator: {left:?}"
    );
    eprintln!(
        "e2e_cluster: {} objects garbage-collected in {:.1}s",
        before_delete.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Leader election against the API server: creation and take-over races have one winner,
/// a released Lease is taken at once, an abandoned one only after its duration.
#[tokio::test]
async fn leader_election_against_a_real_api_server() {
    if !enabled() {
        return;
    }
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG points at a cluster");
    let ns = format!("llm-mcp-hub-e2e-lease-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &namespace(&ns))
        .await
        .expect("namespace created");
    let result = tokio::spawn(election(client.clone(), ns.clone())).await;
    let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn election(client: Client, ns: String) {
    let elector = |lease: &str, id: &str| {
        let mut cfg = LeaseConfig::new(lease, &ns, id);
        cfg.lease_duration = Duration::from_secs(4);
        cfg.renew_deadline = Duration::from_secs(3);
        cfg.retry_period = Duration::from_millis(250);
        LeaderElector::new(client.clone(), cfg)
    };

    // Races: both replicas create the Lease at once, then both take a released Lease at once.
    for round in 0..5 {
        let lease = format!("race-{round}");
        let (mut a, mut b) = (elector(&lease, "a"), elector(&lease, "b"));
        let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(
            ra ^ rb,
            "creating {lease}: exactly one leader (a {ra}, b {rb})"
        );
        let (winner, loser) = if ra {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        assert!(
            winner.try_acquire_or_renew().await.unwrap(),
            "the leader renews"
        );
        assert!(
            !loser.try_acquire_or_renew().await.unwrap(),
            "the other waits"
        );
        winner.release().await.unwrap();
        let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(
            ra ^ rb,
            "taking released {lease}: exactly one leader (a {ra}, b {rb})"
        );
    }

    // Hand-over: a released Lease is taken at the next try; an abandoned one after its duration.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &ns);
    let holder = |name: &'static str| {
        let leases = leases.clone();
        async move {
            leases
                .get(name)
                .await
                .unwrap()
                .spec
                .unwrap()
                .holder_identity
                .unwrap_or_default()
        }
    };
    let (mut a, mut b) = (elector("handover", "a"), elector("handover", "b"));
    a.acquire().await;
    assert!(!b.try_acquire_or_renew().await.unwrap());
    a.release().await.unwrap();
    assert_eq!(holder("handover").await, "");
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "a released Lease is taken at once"
    );
    assert_eq!(holder("handover").await, "b");

    // b stops renewing (as if killed): a takes over only after the lease duration.
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), a.acquire())
        .await
        .expect("a takes over the abandoned Lease");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4),
        "taken over after {waited:?}, before the 4 s lease duration ran out"
    );
    assert_eq!(holder("handover").await, "a");
    let transitions = leases
        .get("handover")
        .await
        .unwrap()
        .spec
        .unwrap()
        .lease_transitions;
    assert_eq!(transitions, Some(2), "two transitions: a to b, b to a");
    // The old leader notices at its next renewal and steps down.
    tokio::time::timeout(Duration::from_secs(10), b.keep())
        .await
        .expect("the replaced leader's keep() returns");
}
