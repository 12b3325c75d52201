//! Reconcilers against a scripted mock API server: the exact requests (server-side apply of each
//! object, status apply, events) and the error paths.

mod support;

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use llm_mcp_hub_operator::builders::BuildConfig;
use llm_mcp_hub_operator::leader::{LeaderElector, LeaseConfig};
use llm_mcp_hub_operator::metrics::Metrics;
use llm_mcp_hub_operator::reconcile::{self, Context, gateway, provider};
use serde_json::{Value, json};
use support::*;

fn ctx(mock: &MockApi) -> Arc<Context> {
    Arc::new(Context::new(
        mock.client.clone(),
        BuildConfig {
            image: "img:test".to_owned(),
            ..BuildConfig::default()
        },
        Metrics::new(),
        Some("test".to_owned()),
    ))
}

const CORE: &str = "/api/v1/namespaces/hub";
const APPS: &str = "/apis/apps/v1/namespaces/hub";
const NET: &str = "/apis/networking.k8s.io/v1/namespaces/hub";
const POLICY: &str = "/apis/policy/v1/namespaces/hub";
const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/hub";
const HUB: &str = "/apis/llm-mcp-hub.dev/v1alpha1/namespaces/hub";

fn apply(path: String) -> Step {
    Step::new(
        Method::PATCH,
        format!("{path}{APPLY}"),
        Reply::Echo(json!({})),
    )
}

fn apply_with_status(path: String, status: Value) -> Step {
    Step::new(
        Method::PATCH,
        format!("{path}{APPLY}"),
        Reply::Echo(json!({"status": status})),
    )
}

/// Status applies answer with the whole resource, as the API server does.
fn status_apply(path: String, obj: Value) -> Step {
    Step::new(
        Method::PATCH,
        format!("{path}{APPLY}"),
        Reply::Json(200, obj),
    )
}

fn gemini_json() -> Value {
    serde_json::to_value(gemini_provider()).unwrap()
}

fn ready_deployment(replicas: i32) -> Value {
    json!({"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas})
}

fn empty_list(kind: &str) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": []})
}

const WORKER_SELECTOR: &str = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dllm-mcp-hub-operator%2Cllm-mcp-hub.dev%2Fprovider%3Dgemini%2Capp.kubernetes.io%2Fcomponent%3Dworker";

fn events(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| s.path.starts_with("/apis/events.k8s.io/"))
        .collect()
}

fn status_body(seen: &[Seen], kind_path: &str) -> Value {
    seen.iter()
        .find(|s| s.path.starts_with(kind_path) && s.path.contains("/status?"))
        .map(|s| s.body.clone())
        .expect("a status apply")
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
}

fn not_found() -> Reply {
    Reply::Json(404, status_error(404, "NotFound", "not found"))
}

/// Index of the worker Deployment's apply in [`gemini_steps`].
const GEMINI_DEPLOYMENT_STEP: usize = 6;

/// A reconcile of the gemini provider that finds `existing_token` as its worker-token Secret
/// (none: the Secret does not exist yet).
fn gemini_steps(existing_token: Option<Value>) -> Vec<Step> {
    vec![
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/gemini-oauth"),
            Reply::Json(
                200,
                secret(
                    "gemini-oauth",
                    &[("oauth_creds.json", "{\"refresh_token\":\"r\"}")],
                ),
            ),
        ),
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/gemini-worker-token"),
            match existing_token {
                Some(s) => Reply::Json(200, s),
                None => not_found(),
            },
        ),
        apply(format!("{CORE}/secrets/gemini-worker-token")),
        apply(format!("{CORE}/services/gemini-workers")),
        apply(format!("{POLICY}/poddisruptionbudgets/gemini-workers")),
        apply(format!("{NET}/networkpolicies/gemini-workers")),
        apply_with_status(
            format!("{APPS}/deployments/gemini-main"),
            ready_deployment(1),
        ),
        Step::new(
            Method::GET,
            format!("{APPS}/deployments?&{WORKER_SELECTOR}"),
            Reply::Json(200, empty_list("DeploymentList")),
        ),
        status_apply(format!("{HUB}/llmproviders/gemini/status"), gemini_json()),
    ]
}

fn gemini_happy_steps() -> Vec<Step> {
    gemini_steps(None)
}

/// The body of the first request to a path that contains `part`.
fn body_of<'a>(seen: &'a [Seen], part: &str) -> &'a Value {
    &seen
        .iter()
        .find(|s| s.path.contains(part))
        .unwrap_or_else(|| panic!("no request to {part}"))
        .body
}

fn pod_annotation(deployment: &Value) -> &str {
    deployment["spec"]["template"]["metadata"]["annotations"]["llm-mcp-hub.dev/secret-hash"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn provider_applies_every_object_then_status_and_event() {
    let mock = MockApi::start(gemini_happy_steps());
    let ctx = ctx(&mock);
    let action = provider::reconcile(Arc::new(gemini_provider()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(provider::RESYNC));
    drop(ctx);
    let seen = mock.finish().await;

    let kinds: Vec<&str> = seen
        .iter()
        .filter(|s| s.method == Method::PATCH && !s.path.contains("/status"))
        .map(|s| s.body["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Secret",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "Deployment"
        ],
        "the worker-token Secret first: the pods do not start without it"
    );
    let dep = seen
        .iter()
        .find(|s| s.path.contains("/deployments/gemini-main"))
        .unwrap();
    assert_eq!(
        dep.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:test"
    );
    assert!(
        dep.body["spec"]["template"]["metadata"]["annotations"]["llm-mcp-hub.dev/secret-hash"]
            .as_str()
            .unwrap()
            .len()
            == 32
    );

    let status = status_body(&seen, HUB);
    assert_eq!(status["apiVersion"], "llm-mcp-hub.dev/v1alpha1");
    assert_eq!(status["kind"], "LLMProvider");
    assert_eq!(status["status"]["observedGeneration"], 1);
    assert_eq!(status["status"]["readyReplicas"], 1);
    assert_eq!(status["status"]["serviceName"], "gemini-workers");
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert_eq!(condition(&status, "Ready")["reason"], "WorkersReady");
    assert_eq!(condition(&status, "Progressing")["status"], "False");
    assert_eq!(condition(&status, "Degraded")["status"], "False");

    let ev = events(&seen);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].method, Method::POST);
    assert_eq!(ev[0].body["type"], "Normal");
    assert_eq!(ev[0].body["reason"], "WorkersReady");
    assert_eq!(ev[0].body["regarding"]["kind"], "LLMProvider");
}

#[tokio::test]
async fn provider_reconcile_is_idempotent_no_status_write_when_nothing_changed() {
    // First pass to learn the status the operator writes.
    let mock = MockApi::start(gemini_happy_steps());
    let c = ctx(&mock);
    provider::reconcile(Arc::new(gemini_provider()), c.clone())
        .await
        .unwrap();
    drop(c);
    let first = mock.finish().await;
    let status = status_body(&first, HUB)["status"].clone();
    let token = body_of(&first, "/secrets/gemini-worker-token?").clone();

    // Second pass with that status and token Secret stored: the same applies, no status write,
    // no event.
    let mut p = gemini_provider();
    p.status = Some(serde_json::from_value(status).unwrap());
    let mut steps = gemini_steps(Some(token));
    steps.pop();
    let mock = MockApi::start(steps);
    let c = ctx(&mock);
    provider::reconcile(Arc::new(p), c.clone()).await.unwrap();
    drop(c);
    let seen = mock.finish().await;
    assert!(seen.iter().all(|s| !s.path.contains("/status")));
    assert!(events(&seen).is_empty());
    for part in ["/secrets/gemini-worker-token?", "/deployments/gemini-main?"] {
        assert_eq!(body_of(&seen, part), body_of(&first, part), "{part}");
    }
}

#[tokio::test]
async fn provider_generates_a_worker_token_once_and_mounts_it() {
    let mock = MockApi::start(gemini_happy_steps());
    let c = ctx(&mock);
    provider::reconcile(Arc::new(gemini_provider()), c.clone())
        .await
        .unwrap();
    drop(c);
    let seen = mock.finish().await;
    let secret = body_of(&seen, "/secrets/gemini-worker-token?");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"],
        "LLMProvider"
    );
    assert_eq!(secret["metadata"]["ownerReferences"][0]["controller"], true);
    // 32 alphanumerics, base64: 44 characters.
    let b64 = secret["data"]["token"].as_str().unwrap();
    assert_eq!(b64.len(), 44, "{b64}");
    let dep = body_of(&seen, "/deployments/gemini-main?");
    let volumes = dep["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["name"] == "worker-token"
                && v["secret"]["secretName"] == "gemini-worker-token"),
        "{volumes:?}"
    );
}

#[tokio::test]
async fn provider_keeps_a_sound_worker_token_and_replaces_a_bad_one() {
    const KEPT: &str = "keepThisWorkerTokenKeepThisWorke";
    let run = |existing: &'static str| async move {
        let mock = MockApi::start(gemini_steps(Some(secret(
            "gemini-worker-token",
            &[("token", existing)],
        ))));
        let c = ctx(&mock);
        provider::reconcile(Arc::new(gemini_provider()), c.clone())
            .await
            .unwrap();
        drop(c);
        mock.finish().await
    };
    let kept = run(KEPT).await;
    assert_eq!(
        body_of(&kept, "/secrets/gemini-worker-token?")["data"]["token"],
        base64_lite::encode(KEPT.as_bytes())
    );
    // Too short to be one the operator made: replaced by a fresh one, and the workers roll.
    let replaced = run("short").await;
    let token = body_of(&replaced, "/secrets/gemini-worker-token?")["data"]["token"]
        .as_str()
        .unwrap();
    assert_ne!(token, base64_lite::encode(b"short"));
    assert_eq!(token.len(), 44);
    assert_ne!(
        pod_annotation(body_of(&kept, "/deployments/gemini-main?")),
        pod_annotation(body_of(&replaced, "/deployments/gemini-main?")),
    );
}

#[tokio::test]
async fn provider_with_missing_secret_reports_and_creates_nothing() {
    let mock = MockApi::start(vec![
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/gemini-oauth"),
            Reply::Json(
                404,
                status_error(404, "NotFound", "secrets \"gemini-oauth\" not found"),
            ),
        ),
        status_apply(format!("{HUB}/llmproviders/gemini/status"), gemini_json()),
    ]);
    let c = ctx(&mock);
    let action = provider::reconcile(Arc::new(gemini_provider()), c.clone())
        .await
        .unwrap();
    assert_eq!(
        action,
        Action::requeue(provider::RESYNC),
        "no error: no hot retry loop"
    );
    assert_eq!(
        c.metrics
            .problems
            .with_label_values(&["LLMProvider", "SecretNotFound"])
            .get(),
        1
    );
    drop(c);
    let seen = mock.finish().await;
    let status = status_body(&seen, HUB);
    assert_eq!(condition(&status, "Ready")["status"], "False");
    assert_eq!(condition(&status, "Ready")["reason"], "SecretNotFound");
    assert!(
        condition(&status, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains("hub/gemini-oauth")
    );
    assert_eq!(condition(&status, "Degraded")["status"], "True");
    let ev = events(&seen);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].body["type"], "Warning");
    assert_eq!(ev[0].body["reason"], "SecretNotFound");
}

#[tokio::test]
async fn provider_with_missing_secret_key_reports_it() {
    let mock = MockApi::start(vec![
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/gemini-oauth"),
            Reply::Json(200, secret("gemini-oauth", &[("wrong", "x")])),
        ),
        status_apply(format!("{HUB}/llmproviders/gemini/status"), gemini_json()),
    ]);
    let c = ctx(&mock);
    provider::reconcile(Arc::new(gemini_provider()), c.clone())
        .await
        .unwrap();
    drop(c);
    let seen = mock.finish().await;
    let status = status_body(&seen, HUB);
    assert_eq!(condition(&status, "Ready")["reason"], "SecretKeyMissing");
    assert!(
        condition(&status, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains("oauth_creds.json")
    );
}

#[tokio::test]
async fn provider_with_unknown_model_reads_nothing_and_writes_only_status() {
    let mut p = gemini_provider();
    p.spec.models.allowed = vec!["sonnet".into()];
    let mock = MockApi::start(vec![status_apply(
        format!("{HUB}/llmproviders/gemini/status"),
        gemini_json(),
    )]);
    let c = ctx(&mock);
    provider::reconcile(Arc::new(p), c.clone()).await.unwrap();
    drop(c);
    let seen = mock.finish().await;
    let status = status_body(&seen, HUB);
    assert_eq!(condition(&status, "Ready")["reason"], "UnknownModel");
    assert_eq!(events(&seen)[0].body["reason"], "UnknownModel");
}

#[tokio::test]
async fn provider_with_impossible_replicas_is_reported() {
    let mut p = gemini_provider();
    p.spec.replicas = 500;
    let mock = MockApi::start(vec![status_apply(
        format!("{HUB}/llmproviders/gemini/status"),
        gemini_json(),
    )]);
    let c = ctx(&mock);
    provider::reconcile(Arc::new(p), c.clone()).await.unwrap();
    drop(c);
    let seen = mock.finish().await;
    assert_eq!(
        condition(&status_body(&seen, HUB), "Ready")["reason"],
        "InvalidReplicas"
    );
}

/// With an allow-list of registries, an LLMProvider naming an image from elsewhere is refused
/// before anything is read or written: it cannot pair its account Secrets with any image.
#[tokio::test]
async fn provider_with_an_image_outside_the_allowed_registries_is_refused() {
    let mut p = gemini_provider();
    p.spec.image = Some("evil.example/exfiltrate:latest".into());
    let mock = MockApi::start(vec![status_apply(
        format!("{HUB}/llmproviders/gemini/status"),
        gemini_json(),
    )]);
    let c = Arc::new(Context::new(
        mock.client.clone(),
        BuildConfig {
            image: "img:test".to_owned(),
            allowed_image_registries: vec!["ghcr.io/llm-mcp-hub".to_owned()],
            ..BuildConfig::default()
        },
        Metrics::new(),
        Some("test".to_owned()),
    ));
    provider::reconcile(Arc::new(p), c.clone()).await.unwrap();
    drop(c);
    let seen = mock.finish().await;
    let status = status_body(&seen, HUB);
    assert_eq!(condition(&status, "Ready")["reason"], "ImageNotAllowed");
    assert_eq!(events(&seen)[0].body["reason"], "ImageNotAllowed");
}

#[tokio::test]
async fn provider_api_error_fails_the_reconcile_and_backs_off() {
    let mock = MockApi::start(vec![
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/gemini-oauth"),
            Reply::Json(200, secret("gemini-oauth", &[("oauth_creds.json", "x")])),
        ),
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/gemini-worker-token"),
            not_found(),
        ),
        apply(format!("{CORE}/secrets/gemini-worker-token")),
        Step::new(
            Method::PATCH,
            format!("{CORE}/services/gemini-workers{APPLY}"),
            Reply::Json(500, status_error(500, "InternalError", "etcd is sad")),
        ),
    ]);
    let c = ctx(&mock);
    let p = Arc::new(gemini_provider());
    let err = provider::reconcile(p.clone(), c.clone()).await.unwrap_err();
    assert!(err.to_string().contains("etcd is sad"), "{err}");
    let a1 = reconcile::error_policy(p.clone(), &err, c.clone(), provider::KIND);
    let a2 = reconcile::error_policy(p.clone(), &err, c.clone(), provider::KIND);
    assert_eq!(a1, Action::requeue(Duration::from_secs(1)));
    assert_eq!(a2, Action::requeue(Duration::from_secs(2)));
    assert_eq!(
        c.metrics
            .errors
            .with_label_values(&["LLMProvider", "api_500"])
            .get(),
        2
    );
    drop(c);
    let seen = mock.finish().await;
    assert!(
        seen.iter().all(|s| !s.path.contains("/status")),
        "no status written on a transient error"
    );
}

#[tokio::test]
async fn provider_prunes_deployments_of_removed_accounts() {
    let p = gemini_provider();
    let uid = p.metadata.uid.clone().unwrap();
    let stale = |name: &str, owner_uid: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "ownerReferences": [{"apiVersion": "llm-mcp-hub.dev/v1alpha1", "kind": "LLMProvider", "name": "gemini", "uid": owner_uid, "controller": true}]},
            "spec": {"selector": {}, "template": {}}
        })
    };
    let mut steps = gemini_happy_steps();
    steps.truncate(GEMINI_DEPLOYMENT_STEP + 1);
    steps.push(Step::new(Method::GET, format!("{APPS}/deployments?&{WORKER_SELECTOR}"), Reply::Json(200, json!({
        "apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "1"},
        "items": [stale("gemini-main", &uid), stale("gemini-old", &uid), stale("gemini-foreign", "someone-else")]
    }))));
    steps.push(Step::new(
        Method::DELETE,
        format!("{APPS}/deployments/gemini-old?"),
        Reply::Json(200, status_error(200, "", "")),
    ));
    steps.push(status_apply(
        format!("{HUB}/llmproviders/gemini/status"),
        gemini_json(),
    ));
    let mock = MockApi::start(steps);
    let c = ctx(&mock);
    provider::reconcile(Arc::new(p), c.clone()).await.unwrap();
    drop(c);
    mock.finish().await;
}

#[tokio::test]
async fn provider_rollout_in_progress_is_progressing_and_rechecked_soon() {
    let mut steps = gemini_happy_steps();
    steps[GEMINI_DEPLOYMENT_STEP] = apply_with_status(
        format!("{APPS}/deployments/gemini-main"),
        json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0}),
    );
    let mock = MockApi::start(steps);
    let c = ctx(&mock);
    let action = provider::reconcile(Arc::new(gemini_provider()), c.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(provider::PROGRESS_RECHECK));
    drop(c);
    let seen = mock.finish().await;
    let status = status_body(&seen, HUB);
    assert_eq!(condition(&status, "Ready")["reason"], "WorkersNotReady");
    assert_eq!(condition(&status, "Progressing")["status"], "True");
}

fn managed_gateway_steps(existing_redis_secret: Option<Value>) -> Vec<Step> {
    vec![
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/hub-api-keys"),
            Reply::Json(200, secret("hub-api-keys", &[("keys", "k1\n")])),
        ),
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/main-redis-auth"),
            match existing_redis_secret {
                Some(s) => Reply::Json(200, s),
                None => Reply::Json(404, status_error(404, "NotFound", "not found")),
            },
        ),
        Step::new(
            Method::GET,
            format!("{HUB}/llmproviders?&labelSelector=tier%3Dgold"),
            Reply::Json(
                200,
                json!({
                    "apiVersion": "llm-mcp-hub.dev/v1alpha1", "kind": "LLMProviderList", "metadata": {"resourceVersion": "1"},
                    "items": [serde_json::to_value(gemini_provider()).unwrap(), serde_json::to_value(claude_provider()).unwrap()]
                }),
            ),
        ),
        apply(format!("{CORE}/serviceaccounts/main-router")),
        apply(format!("{RBAC}/roles/main-router")),
        apply(format!("{RBAC}/rolebindings/main-router")),
        apply(format!("{CORE}/configmaps/main-router")),
        apply(format!("{NET}/networkpolicies/main-router")),
        apply(format!("{CORE}/secrets/main-redis-auth")),
        apply(format!("{CORE}/services/main-redis")),
        apply(format!("{NET}/networkpolicies/main-redis")),
        apply_with_status(
            format!("{APPS}/statefulsets/main-redis"),
            json!({"replicas": 1, "readyReplicas": 1}),
        ),
        apply(format!("{CORE}/services/main-router")),
        apply_with_status(
            format!("{APPS}/deployments/main-router"),
            ready_deployment(2),
        ),
        apply(format!("{NET}/ingresses/main")),
        status_apply(
            format!("{HUB}/hubgateways/main/status"),
            serde_json::to_value(managed_gateway()).unwrap(),
        ),
    ]
}

#[tokio::test]
async fn gateway_with_managed_redis_applies_everything_and_reports_url_and_providers() {
    let mock = MockApi::start(managed_gateway_steps(None));
    let c = ctx(&mock);
    let action = gateway::reconcile(Arc::new(managed_gateway()), c.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(gateway::RESYNC));
    drop(c);
    let seen = mock.finish().await;
    let status = status_body(&seen, HUB);
    assert_eq!(status["kind"], "HubGateway");
    assert_eq!(status["status"]["url"], "https://hub.example.com");
    assert_eq!(
        status["status"]["servedProviders"],
        json!(["claude", "gemini"])
    );
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert_eq!(condition(&status, "Ready")["reason"], "RoutersReady");
    // A fresh password was generated: 32 alphanumerics, also inside the URL.
    let secret = seen
        .iter()
        .find(|s| s.path.contains("/secrets/main-redis-auth?"))
        .unwrap();
    let pw_b64 = secret.body["data"]["password"].as_str().unwrap();
    assert_eq!(pw_b64.len(), 44);
    assert_eq!(events(&seen)[0].body["reason"], "RoutersReady");
    // The routers get the worker tokens of exactly the providers they serve.
    let dep = body_of(&seen, "/deployments/main-router?");
    let tokens = dep["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "worker-tokens")
        .unwrap();
    let sources: Vec<(&str, &str)> = tokens["projected"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["secret"]["name"].as_str().unwrap(),
                s["secret"]["items"][0]["path"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("claude-worker-token", "claude"),
            ("gemini-worker-token", "gemini")
        ]
    );
}

#[tokio::test]
async fn gateway_keeps_the_existing_redis_password() {
    let existing = secret("main-redis-auth", &[("password", "keepThisPassword")]);
    let mock = MockApi::start(managed_gateway_steps(Some(existing)));
    let c = ctx(&mock);
    gateway::reconcile(Arc::new(managed_gateway()), c.clone())
        .await
        .unwrap();
    drop(c);
    let seen = mock.finish().await;
    let secret = seen
        .iter()
        .find(|s| s.path.contains("/secrets/main-redis-auth?"))
        .unwrap();
    assert_eq!(
        secret.body["data"]["password"],
        base64_lite::encode(b"keepThisPassword")
    );
}

#[tokio::test]
async fn gateway_with_external_redis_removes_managed_objects_and_has_no_ingress() {
    const EDGE_UID: &str = "44444444-4444-4444-4444-444444444444";
    // What the gateway once made (controlled by it), and same-named objects a user made.
    let existing = |api_version: &str, kind: &str, name: &str, uid: &str, owner: Option<&str>| {
        let owners: Vec<Value> = owner
            .map(|o| json!({"apiVersion": "llm-mcp-hub.dev/v1alpha1", "kind": "HubGateway", "name": "edge", "uid": o, "controller": true}))
            .into_iter()
            .collect();
        Reply::Json(
            200,
            json!({
                "apiVersion": api_version, "kind": kind,
                "metadata": {"name": name, "namespace": NS, "uid": uid, "ownerReferences": owners}
            }),
        )
    };
    let mock = MockApi::start(vec![
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/hub-api-keys"),
            Reply::Json(200, secret("hub-api-keys", &[("api-keys.txt", "k")])),
        ),
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/redis-url"),
            Reply::Json(200, secret("redis-url", &[("url", "redis://r:6379")])),
        ),
        Step::new(
            Method::GET,
            format!("{HUB}/llmproviders?&labelSelector="),
            Reply::Json(200, empty_list("LLMProviderList")),
        ),
        apply(format!("{CORE}/serviceaccounts/edge-router")),
        apply(format!("{RBAC}/roles/edge-router")),
        apply(format!("{RBAC}/rolebindings/edge-router")),
        apply(format!("{CORE}/configmaps/edge-router")),
        apply(format!("{NET}/networkpolicies/edge-router")),
        Step::new(
            Method::GET,
            format!("{APPS}/statefulsets/edge-redis"),
            existing(
                "apps/v1",
                "StatefulSet",
                "edge-redis",
                "sts-uid-1",
                Some(EDGE_UID),
            ),
        ),
        Step::new(
            Method::DELETE,
            format!("{APPS}/statefulsets/edge-redis?"),
            Reply::Json(200, status_error(200, "", "")),
        ),
        Step::new(
            Method::GET,
            format!("{CORE}/services/edge-redis"),
            not_found(),
        ),
        Step::new(
            Method::GET,
            format!("{NET}/networkpolicies/edge-redis"),
            existing(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                "edge-redis",
                "np-uid-1",
                Some("someone-else"),
            ),
        ),
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/edge-redis-auth"),
            not_found(),
        ),
        apply(format!("{CORE}/services/edge-router")),
        apply_with_status(
            format!("{APPS}/deployments/edge-router"),
            ready_deployment(1),
        ),
        // The user's own Ingress of the same name stays.
        Step::new(
            Method::GET,
            format!("{NET}/ingresses/edge"),
            existing("networking.k8s.io/v1", "Ingress", "edge", "ing-uid-1", None),
        ),
        status_apply(
            format!("{HUB}/hubgateways/edge/status"),
            serde_json::to_value(external_gateway()).unwrap(),
        ),
    ]);
    let c = ctx(&mock);
    gateway::reconcile(Arc::new(external_gateway()), c.clone())
        .await
        .unwrap();
    drop(c);
    let seen = mock.finish().await;
    let deletes: Vec<_> = seen.iter().filter(|s| s.method == Method::DELETE).collect();
    assert_eq!(deletes.len(), 1, "only what the gateway owns is deleted");
    assert_eq!(
        deletes[0].body["preconditions"]["uid"], "sts-uid-1",
        "the delete is pinned to the object that was read"
    );
    let status = status_body(&seen, HUB);
    assert_eq!(condition(&status, "Ready")["reason"], "NoProviders");
    assert_eq!(status["status"]["url"], "http://edge-router.hub.svc:443");
}

#[tokio::test]
async fn gateway_with_missing_api_keys_secret_reports_and_creates_nothing() {
    let mock = MockApi::start(vec![
        Step::new(
            Method::GET,
            format!("{CORE}/secrets/hub-api-keys"),
            Reply::Json(404, status_error(404, "NotFound", "not found")),
        ),
        status_apply(
            format!("{HUB}/hubgateways/main/status"),
            serde_json::to_value(managed_gateway()).unwrap(),
        ),
    ]);
    let c = ctx(&mock);
    gateway::reconcile(Arc::new(managed_gateway()), c.clone())
        .await
        .unwrap();
    drop(c);
    let seen = mock.finish().await;
    let status = status_body(&seen, HUB);
    assert_eq!(condition(&status, "Ready")["reason"], "SecretNotFound");
    assert!(
        condition(&status, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains("apiKeysSecretRef")
    );
    assert_eq!(events(&seen)[0].body["type"], "Warning");
}

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/hub/leases";

fn lease(holder: &str, duration: i32) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "op", "namespace": NS, "resourceVersion": "7"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                    "renewTime": "2026-01-01T00:00:00.000000Z", "leaseTransitions": 3}})
}

fn lease_cfg(duration: Duration) -> LeaseConfig {
    LeaseConfig {
        lease_duration: duration,
        ..LeaseConfig::new("op", NS, "me")
    }
}

#[tokio::test]
async fn leader_creates_a_missing_lease() {
    let mock = MockApi::start(vec![
        Step::new(
            Method::GET,
            format!("{LEASES}/op"),
            Reply::Json(404, status_error(404, "NotFound", "not found")),
        ),
        Step::new(Method::POST, format!("{LEASES}?"), Reply::Echo(json!({}))),
    ]);
    let mut el = LeaderElector::new(mock.client.clone(), lease_cfg(Duration::from_secs(15)));
    assert!(el.try_acquire_or_renew().await.unwrap());
    drop(el);
    let seen = mock.finish().await;
    assert_eq!(seen[1].body["spec"]["holderIdentity"], "me");
    assert_eq!(seen[1].body["spec"]["leaseDurationSeconds"], 15);
}

#[tokio::test]
async fn leader_does_not_take_a_lease_another_replica_holds() {
    let mock = MockApi::start(vec![Step::new(
        Method::GET,
        format!("{LEASES}/op"),
        Reply::Json(200, lease("other", 15)),
    )]);
    let mut el = LeaderElector::new(mock.client.clone(), lease_cfg(Duration::from_secs(15)));
    assert!(!el.try_acquire_or_renew().await.unwrap());
    drop(el);
    mock.finish().await;
}

#[tokio::test]
async fn leader_takes_over_an_expired_lease_with_optimistic_locking() {
    let mock = MockApi::start(vec![
        Step::new(
            Method::GET,
            format!("{LEASES}/op"),
            Reply::Json(200, lease("other", 0)),
        ),
        Step::new(Method::PUT, format!("{LEASES}/op?"), Reply::Echo(json!({}))),
    ]);
    let mut el = LeaderElector::new(mock.client.clone(), lease_cfg(Duration::from_secs(0)));
    assert!(el.try_acquire_or_renew().await.unwrap());
    drop(el);
    let seen = mock.finish().await;
    assert_eq!(
        seen[1].body["metadata"]["resourceVersion"], "7",
        "replace carries the read resourceVersion"
    );
    assert_eq!(seen[1].body["spec"]["holderIdentity"], "me");
    assert_eq!(seen[1].body["spec"]["leaseTransitions"], 4);
}

#[tokio::test]
async fn leader_loses_a_race_on_conflict() {
    let mock = MockApi::start(vec![
        Step::new(
            Method::GET,
            format!("{LEASES}/op"),
            Reply::Json(200, lease("other", 0)),
        ),
        Step::new(
            Method::PUT,
            format!("{LEASES}/op?"),
            Reply::Json(
                409,
                status_error(409, "Conflict", "the object has been modified"),
            ),
        ),
    ]);
    let mut el = LeaderElector::new(mock.client.clone(), lease_cfg(Duration::from_secs(0)));
    assert!(!el.try_acquire_or_renew().await.unwrap());
    drop(el);
    mock.finish().await;
}

#[tokio::test]
async fn leader_renews_its_own_lease() {
    let mock = MockApi::start(vec![
        Step::new(
            Method::GET,
            format!("{LEASES}/op"),
            Reply::Json(200, lease("me", 15)),
        ),
        Step::new(Method::PUT, format!("{LEASES}/op?"), Reply::Echo(json!({}))),
    ]);
    let mut el = LeaderElector::new(mock.client.clone(), lease_cfg(Duration::from_secs(15)));
    assert!(el.try_acquire_or_renew().await.unwrap());
    drop(el);
    let seen = mock.finish().await;
    assert_eq!(
        seen[1].body["spec"]["leaseTransitions"], 3,
        "a renewal is not a transition"
    );
}

/// Ready worker Deployments of both accounts of `claude_provider()`.
fn ready_claude_deployments() -> Vec<k8s_openapi::api::apps::v1::Deployment> {
    ["alice", "bob"]
        .iter()
        .map(|a| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("claude-{a}"), "generation": 1,
                             "labels": {"llm-mcp-hub.dev/account": a}},
                "status": ready_deployment(2)
            }))
            .unwrap()
        })
        .collect()
}

fn worker_answer(
    account: &str,
    health: &str,
    until: Option<i64>,
) -> Option<llm_mcp_hub_operator::workers::WorkerAnswer> {
    Some(llm_mcp_hub_operator::workers::WorkerAnswer {
        account: Some(account.to_owned()),
        health: health.to_owned(),
        limited_until: until,
    })
}

fn ready_of(status: &llm_mcp_hub_crds::LLMProviderStatus) -> (String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    (c.status.clone(), c.reason.clone())
}

#[test]
fn a_provider_is_ready_only_once_a_worker_says_its_cli_is_logged_in() {
    let p = claude_provider();
    let now = k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap();
    let ds = ready_claude_deployments();
    let (base, _) = provider::status_from(&p, &ds, now);
    assert_eq!(ready_of(&base).0, "True");

    let mut s = base.clone();
    assert!(
        provider::apply_observation(&p, &mut s, &[None, None], now),
        "waits for answers"
    );
    assert_eq!(ready_of(&s), ("False".into(), "WorkersNotAnswering".into()));

    // Held back on the next pass too: the condition keeps the time it became not ready, so the
    // status does not change on every pass.
    let mut held = p.clone();
    held.status = Some(s.clone());
    let later = k8s_openapi::jiff::Timestamp::from_second(1_000_030).unwrap();
    let (mut again, _) = provider::status_from(&held, &ds, later);
    provider::apply_observation(&held, &mut again, &[None, None], later);
    assert_eq!(again.conditions, s.conditions, "no change on a second pass");

    let mut s = base.clone();
    let answers = [
        worker_answer("alice", "not_logged_in", None),
        worker_answer("bob", "not_logged_in", None),
    ];
    assert!(!provider::apply_observation(&p, &mut s, &answers, now));
    assert_eq!(ready_of(&s), ("False".into(), "NotLoggedIn".into()));

    let mut s = base.clone();
    let answers = [
        worker_answer("alice", "not_logged_in", None),
        worker_answer("bob", "ready", None),
        None,
    ];
    provider::apply_observation(&p, &mut s, &answers, now);
    assert_eq!(ready_of(&s), ("True".into(), "WorkersReady".into()));
}

#[test]
fn the_status_names_each_usage_limited_account_and_the_provider_only_when_all_are() {
    let p = claude_provider();
    let now = k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap();
    let (base, _) = provider::status_from(&p, &ready_claude_deployments(), now);
    let until = |s: &llm_mcp_hub_crds::LLMProviderStatus, name: &str| {
        s.accounts
            .iter()
            .find(|a| a.name == name)
            .unwrap()
            .usage_limited_until
            .as_ref()
            .map(|t| t.0.as_second())
    };

    let mut s = base.clone();
    let answers = [
        worker_answer("alice", "ready", None),
        worker_answer("bob", "usage_limited", Some(1_000_900)),
    ];
    provider::apply_observation(&p, &mut s, &answers, now);
    assert_eq!(
        (until(&s, "alice"), until(&s, "bob")),
        (None, Some(1_000_900))
    );
    assert!(s.usage_limited_until.is_none(), "alice still serves");
    assert_eq!(ready_of(&s).0, "True");

    let answers = [
        worker_answer("alice", "usage_limited", Some(1_000_300)),
        worker_answer("bob", "usage_limited", Some(1_000_900)),
    ];
    provider::apply_observation(&p, &mut s, &answers, now);
    assert_eq!(
        s.usage_limited_until.as_ref().map(|t| t.0.as_second()),
        Some(1_000_300),
        "the earliest reset"
    );
    assert_eq!(ready_of(&s).0, "True", "a limited account is logged in");
}
