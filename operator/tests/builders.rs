//! Builders: properties of the generated objects, and reviewed snapshots of them.
//!
//! Snapshots live in `operator/tests/snapshots/`. After an intended change, regenerate them with
//! `UPDATE_SNAPSHOTS=1 cargo test -p llm-mcp-hub-operator --test builders`, review the diff, and
//! commit it. `scripts/check-manifests` validates them against the Kubernetes schemas.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodSpec;
use llm_mcp_hub_crds::{HubGateway, LLMProvider, labels};
use llm_mcp_hub_operator::builders::BuildConfig;
use llm_mcp_hub_operator::builders::gateway::{self, GatewayInputs, GatewayObjects};
use llm_mcp_hub_operator::builders::worker::{self, WorkerObjects};
use serde::Serialize;
use support::*;

fn cfg() -> BuildConfig {
    BuildConfig {
        image: "ghcr.io/llm-mcp-hub/llm-mcp-hub:0.1.0".to_owned(),
    }
}

fn hashes(p: &LLMProvider) -> BTreeMap<String, String> {
    p.spec
        .credentials
        .accounts
        .iter()
        .map(|a| (a.name.clone(), format!("hash-of-{}", a.name)))
        .collect()
}

fn workers(p: &LLMProvider) -> WorkerObjects {
    worker::build(p, &cfg(), &hashes(p))
}

fn gateway_objects(
    g: &HubGateway,
    secret_hash: &str,
    redis_password: Option<&str>,
) -> GatewayObjects {
    let inputs = GatewayInputs {
        secret_hash: secret_hash.to_owned(),
        redis_password: redis_password.map(str::to_owned),
    };
    gateway::build(g, &cfg(), &inputs)
}

fn yaml_docs(docs: &[serde_json::Value]) -> String {
    let mut out = String::from(
        "# Snapshot of objects built by llm-mcp-hub-operator; regenerate with UPDATE_SNAPSHOTS=1.\n",
    );
    for d in docs {
        out.push_str("---\n");
        out.push_str(&llm_mcp_hub_crds::yaml_1_1_safe(
            &serde_yaml_ng::to_string(d).unwrap(),
        ));
    }
    out
}

fn v<T: Serialize>(t: &T) -> serde_json::Value {
    serde_json::to_value(t).unwrap()
}

fn worker_docs(o: &WorkerObjects) -> Vec<serde_json::Value> {
    let mut docs = vec![v(&o.service), v(&o.pdb), v(&o.network_policy)];
    docs.extend(o.deployments.iter().map(v));
    docs
}

fn gateway_docs(o: &GatewayObjects) -> Vec<serde_json::Value> {
    let mut docs = vec![
        v(&o.service_account),
        v(&o.role),
        v(&o.role_binding),
        v(&o.config_map),
    ];
    if let Some(r) = &o.redis {
        docs.extend([
            v(&r.secret),
            v(&r.service),
            v(&r.network_policy),
            v(&r.stateful_set),
        ]);
    }
    docs.extend([v(&o.service), v(&o.deployment)]);
    if let Some(i) = &o.ingress {
        docs.push(v(i));
    }
    docs
}

fn check_snapshot(name: &str, docs: &[serde_json::Value]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.yaml"));
    let text = yaml_docs(docs);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} missing ({e}); run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert!(
        committed == text,
        "{} differs from the built objects; run with UPDATE_SNAPSHOTS=1 and review the diff",
        path.display()
    );
}

#[test]
fn snapshot_claude_provider() {
    check_snapshot(
        "llmprovider-claude",
        &worker_docs(&workers(&claude_provider())),
    );
}

#[test]
fn snapshot_gemini_provider() {
    check_snapshot(
        "llmprovider-gemini",
        &worker_docs(&workers(&gemini_provider())),
    );
}

#[test]
fn snapshot_managed_gateway() {
    let o = gateway_objects(&managed_gateway(), "hash-of-keys", Some("s3cretPassw0rd"));
    check_snapshot("hubgateway-managed-redis", &gateway_docs(&o));
}

#[test]
fn snapshot_external_gateway() {
    let o = gateway_objects(&external_gateway(), "hash-of-keys-and-url", None);
    check_snapshot("hubgateway-external-redis", &gateway_docs(&o));
}

fn pod(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn assert_locked_down(pod: &PodSpec, token_mounted: bool) {
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    assert_eq!(pod.automount_service_account_token, Some(token_mounted));
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop,
            Some(vec!["ALL".to_owned()]),
            "{}",
            c.name
        );
        assert!(c.resources.is_some(), "{}", c.name);
    }
}

#[test]
fn worker_pods_are_locked_down_and_probed() {
    for p in [claude_provider(), gemini_provider()] {
        let o = workers(&p);
        for d in &o.deployments {
            let pod = pod(d);
            assert_locked_down(pod, false);
            // The pause process, as PID 1, reaps what a killed CLI group leaves behind.
            assert_eq!(pod.share_process_namespace, Some(true));
            let c = &pod.containers[0];
            assert_eq!(
                c.args.as_ref().unwrap(),
                &[
                    "worker",
                    "--provider",
                    p.spec.kind.as_str(),
                    "--listen",
                    "0.0.0.0:8081"
                ]
            );
            assert_eq!(c.ports.as_ref().unwrap()[0].name.as_deref(), Some("http"));
            assert_eq!(
                c.liveness_probe
                    .as_ref()
                    .unwrap()
                    .http_get
                    .as_ref()
                    .unwrap()
                    .path
                    .as_deref(),
                Some("/healthz")
            );
            assert_eq!(
                c.readiness_probe
                    .as_ref()
                    .unwrap()
                    .http_get
                    .as_ref()
                    .unwrap()
                    .path
                    .as_deref(),
                Some("/readyz")
            );
            let mounts: Vec<&str> = c
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| m.mount_path.as_str())
                .collect();
            assert_eq!(mounts, ["/tmp", "/home/hub"]);
        }
    }
}

#[test]
fn claude_token_comes_from_a_secret_key_ref_per_account() {
    let p = claude_provider();
    let o = workers(&p);
    assert_eq!(o.deployments.len(), 2);
    let names: Vec<String> = o
        .deployments
        .iter()
        .map(|d| d.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["claude-alice", "claude-bob"]);
    for (d, (secret, key)) in o
        .deployments
        .iter()
        .zip([("claude-alice", "token"), ("claude-bob", "oauth-token")])
    {
        let env = pod(d).containers[0].env.as_ref().unwrap();
        let tok = env
            .iter()
            .find(|e| e.name == "CLAUDE_CODE_OAUTH_TOKEN")
            .unwrap();
        assert!(tok.value.is_none());
        let r = tok
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!((r.name.as_str(), r.key.as_str()), (secret, key));
        let get = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
                .unwrap()
        };
        assert_eq!(get("LLM_MCP_HUB_MODELS"), "sonnet,opus,haiku");
        assert_eq!(get("LLM_MCP_HUB_DEFAULT_MODEL"), "sonnet");
        assert_eq!(get("LLM_MCP_HUB_CONCURRENCY"), "8");
        assert_eq!(get("LLM_MCP_HUB_REQUEST_TIMEOUT_SECS"), "600");
        assert_eq!(get("LLM_MCP_HUB_LOG_FORMAT"), "json");
        assert_eq!(get("HOME"), "/home/hub");
        assert!(
            pod(d).init_containers.is_none(),
            "claude needs no credential copy"
        );
    }
}

#[test]
fn gemini_credentials_are_copied_into_a_writable_home() {
    let p = gemini_provider();
    let o = workers(&p);
    let pod = pod(&o.deployments[0]);
    let init = &pod.init_containers.as_ref().unwrap()[0];
    let script = &init.command.as_ref().unwrap()[2];
    assert!(script.contains("cp '/var/run/llm-mcp-hub/credentials/main/oauth_creds.json' /home/hub/.gemini/oauth_creds.json"), "{script}");
    assert!(script.contains("settings.json"));
    let cred = init
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "credentials")
        .unwrap();
    assert_eq!(cred.read_only, Some(true));
    assert_eq!(cred.mount_path, "/var/run/llm-mcp-hub/credentials/main");
    // The worker itself does not see the Secret volume, only the copy in its home.
    assert!(
        pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .all(|m| m.name != "credentials")
    );
    let env = pod.containers[0].env.as_ref().unwrap();
    assert!(env.iter().all(|e| e.name != "CLAUDE_CODE_OAUTH_TOKEN"));
}

#[test]
fn secret_change_changes_the_pod_template_hash() {
    let p = gemini_provider();
    let mut h = hashes(&p);
    let a = worker::build(&p, &cfg(), &h);
    h.insert("main".into(), "another".into());
    let b = worker::build(&p, &cfg(), &h);
    let ann = |o: &WorkerObjects| {
        o.deployments[0]
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[labels::ANNOTATION_SECRET_HASH]
            .clone()
    };
    assert_ne!(ann(&a), ann(&b));
}

#[test]
fn everything_is_owned_and_labelled() {
    let p = claude_provider();
    let o = workers(&p);
    let g = managed_gateway();
    let go = gateway_objects(&g, "h", Some("p"));
    let docs: Vec<serde_json::Value> = worker_docs(&o)
        .into_iter()
        .chain(gateway_docs(&go))
        .collect();
    for d in docs {
        let m = &d["metadata"];
        let owner = &m["ownerReferences"][0];
        assert_eq!(owner["controller"], true, "{}", m["name"]);
        assert_eq!(owner["blockOwnerDeletion"], true);
        assert_eq!(m["namespace"], NS);
        assert_eq!(
            m["labels"][labels::MANAGED_BY],
            labels::MANAGED_BY_VALUE,
            "{}",
            m["name"]
        );
    }
}

#[test]
fn worker_service_carries_discovery_labels_and_policy_admits_only_routers() {
    let p = claude_provider();
    let o = workers(&p);
    let l = o.service.metadata.labels.as_ref().unwrap();
    assert_eq!(l[labels::PROVIDER], "claude");
    assert_eq!(l[labels::MANAGED_BY], labels::MANAGED_BY_VALUE);
    assert_eq!(o.service.metadata.name.as_deref(), Some("claude-workers"));
    let np = o.network_policy.spec.as_ref().unwrap();
    let from = &np.ingress.as_ref().unwrap()[0].from.as_ref().unwrap()[0];
    let sel = from
        .pod_selector
        .as_ref()
        .unwrap()
        .match_labels
        .as_ref()
        .unwrap();
    assert_eq!(sel[labels::COMPONENT], "router");
    assert!(
        from.namespace_selector.is_none(),
        "routers of the same namespace only"
    );
}

#[test]
fn router_contract() {
    let g = managed_gateway();
    let o = gateway_objects(&g, "h", Some("pw"));
    let pod = pod(&o.deployment);
    assert_locked_down(pod, true);
    let c = &pod.containers[0];
    assert_eq!(
        c.args.as_ref().unwrap(),
        &[
            "router",
            "--listen",
            "0.0.0.0:8080",
            "--config",
            "/etc/llm-mcp-hub/config.toml"
        ]
    );
    let env = c.env.as_ref().unwrap();
    let redis = env
        .iter()
        .find(|e| e.name == "LLM_MCP_HUB_REDIS_URL")
        .unwrap();
    let r = redis
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (r.name.as_str(), r.key.as_str()),
        ("main-redis-auth", "url")
    );
    let keys = env
        .iter()
        .find(|e| e.name == "LLM_MCP_HUB_API_KEYS_FILE")
        .unwrap();
    assert_eq!(keys.value.as_deref(), Some("/etc/llm-mcp-hub/keys/keys"));
    let cfg_toml = &o.config_map.data.as_ref().unwrap()["config.toml"];
    assert!(cfg_toml.contains("session_ttl_secs = 7200"));
    assert!(cfg_toml.contains("[discovery]\nnamespace = \"hub\"\nlabel_selector = \"tier=gold\""));
    // Role: read-only, only what the router needs.
    for rule in o.role.rules.as_ref().unwrap() {
        assert_eq!(rule.verbs, ["get", "list", "watch"]);
    }
    let res: Vec<String> = o
        .role
        .rules
        .as_ref()
        .unwrap()
        .iter()
        .flat_map(|r| r.resources.clone().unwrap())
        .collect();
    assert_eq!(res, ["endpointslices", "llmproviders"]);
    // Ingress: streaming settings, user override kept.
    let ann = o
        .ingress
        .as_ref()
        .unwrap()
        .metadata
        .annotations
        .as_ref()
        .unwrap();
    assert_eq!(ann["nginx.ingress.kubernetes.io/proxy-buffering"], "off");
    assert_eq!(
        ann["nginx.ingress.kubernetes.io/proxy-read-timeout"],
        "3600"
    );
    assert_eq!(ann["nginx.ingress.kubernetes.io/proxy-body-size"], "32m");
    assert_eq!(gateway::url(&g), "https://hub.example.com");
}

#[test]
fn managed_redis_is_persistent_authenticated_and_fenced() {
    let g = managed_gateway();
    let o = gateway_objects(&g, "h", Some("pw123"));
    let r = o.redis.as_ref().unwrap();
    assert_eq!(
        r.service.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );
    let sts = r.stateful_set.spec.as_ref().unwrap();
    assert_eq!(sts.service_name.as_deref(), Some("main-redis"));
    let pvc = &sts.volume_claim_templates.as_ref().unwrap()[0];
    assert_eq!(
        pvc.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("fast")
    );
    let conf = String::from_utf8(r.secret.data.as_ref().unwrap()["redis.conf"].0.clone()).unwrap();
    assert!(conf.contains("appendonly yes") && conf.contains("requirepass pw123"));
    let url = String::from_utf8(r.secret.data.as_ref().unwrap()["url"].0.clone()).unwrap();
    assert_eq!(url, "redis://:pw123@main-redis.hub.svc:6379/0");
    let pod = sts.template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    assert!(c.readiness_probe.as_ref().unwrap().exec.is_some());
    assert!(c.liveness_probe.is_some());
    assert_eq!(
        c.security_context
            .as_ref()
            .unwrap()
            .read_only_root_filesystem,
        Some(true)
    );
    let np = r.network_policy.spec.as_ref().unwrap();
    let sel = np.ingress.as_ref().unwrap()[0].from.as_ref().unwrap()[0]
        .pod_selector
        .as_ref()
        .unwrap()
        .match_labels
        .clone()
        .unwrap();
    assert_eq!(sel[labels::GATEWAY], "main");
    assert_eq!(sel[labels::COMPONENT], "router");
}

#[test]
fn external_redis_uses_the_users_secret_and_no_statefulset() {
    let g = external_gateway();
    let o = gateway_objects(&g, "h", None);
    assert!(o.redis.is_none());
    assert!(o.ingress.is_none());
    let env = pod(&o.deployment).containers[0].env.clone().unwrap();
    let r = env
        .iter()
        .find(|e| e.name == "LLM_MCP_HUB_REDIS_URL")
        .unwrap()
        .value_from
        .clone()
        .unwrap()
        .secret_key_ref
        .unwrap();
    assert_eq!((r.name.as_str(), r.key.as_str()), ("redis-url", "url"));
    assert_eq!(gateway::url(&g), "http://edge-router.hub.svc:443");
    assert_eq!(
        o.service.spec.as_ref().unwrap().type_.as_deref(),
        Some("LoadBalancer")
    );
}
