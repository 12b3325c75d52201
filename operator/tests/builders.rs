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
use llm_mcp_hub_operator::builders::worker::{self, WorkerInputs, WorkerObjects};
use serde::Serialize;
use support::*;

fn cfg() -> BuildConfig {
    BuildConfig {
        image: "ghcr.io/llm-mcp-hub/llm-mcp-hub:0.1.0".to_owned(),
        ..BuildConfig::default()
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

/// A fixed worker token, so snapshots are stable.
const WORKER_TOKEN: &str = "W0rkerT0kenW0rkerT0kenW0rkerT0ke";

fn worker_inputs(p: &LLMProvider) -> WorkerInputs {
    WorkerInputs {
        secret_hashes: hashes(p),
        worker_token: WORKER_TOKEN.to_owned(),
    }
}

fn workers(p: &LLMProvider) -> WorkerObjects {
    worker::build(p, &cfg(), &worker_inputs(p))
}

fn gateway_objects(
    g: &HubGateway,
    secret_hash: &str,
    redis_password: Option<&str>,
    served: &[&str],
) -> GatewayObjects {
    let inputs = GatewayInputs {
        secret_hash: secret_hash.to_owned(),
        redis_password: redis_password.map(str::to_owned),
        served_providers: served.iter().map(|s| (*s).to_owned()).collect(),
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
    let mut docs = vec![
        v(&o.token_secret),
        v(&o.service),
        v(&o.pdb),
        v(&o.network_policy),
    ];
    docs.extend(o.deployments.iter().map(v));
    docs
}

fn gateway_docs(o: &GatewayObjects) -> Vec<serde_json::Value> {
    let mut docs = vec![
        v(&o.service_account),
        v(&o.role),
        v(&o.role_binding),
        v(&o.config_map),
        v(&o.network_policy),
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
    // Given unsorted: the projected sources come out sorted by provider name.
    let o = gateway_objects(
        &managed_gateway(),
        "hash-of-keys",
        Some("s3cretPassw0rd"),
        &["gemini", "claude"],
    );
    check_snapshot("hubgateway-managed-redis", &gateway_docs(&o));
}

#[test]
fn snapshot_external_gateway() {
    // Serving nothing yet: the worker-tokens volume is there, empty.
    let o = gateway_objects(&external_gateway(), "hash-of-keys-and-url", None, &[]);
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
            assert_eq!(mounts, ["/tmp", "/home/hub", worker::WORKER_TOKEN_DIR]);
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
    let mut inputs = worker_inputs(&p);
    let a = worker::build(&p, &cfg(), &inputs);
    inputs.secret_hashes.insert("main".into(), "another".into());
    let b = worker::build(&p, &cfg(), &inputs);
    // A rotated worker token rolls the workers too: they read it once, at start.
    inputs.worker_token = "another-token".into();
    let c = worker::build(&p, &cfg(), &inputs);
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
    assert_ne!(ann(&b), ann(&c));
    assert!(
        !ann(&c).contains("another-token"),
        "only a hash of the token is in the pod template"
    );
}

#[test]
fn everything_is_owned_and_labelled() {
    let p = claude_provider();
    let o = workers(&p);
    let g = managed_gateway();
    let go = gateway_objects(&g, "h", Some("p"), &["claude"]);
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
    // Out: DNS and HTTPS only (the vendor), nothing else.
    assert_eq!(
        np.policy_types.as_deref(),
        Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
    );
    let mut ports: Vec<(String, String)> = np
        .egress
        .as_ref()
        .unwrap()
        .iter()
        .flat_map(|rule| {
            assert!(rule.to.is_none());
            rule.ports.clone().unwrap()
        })
        .map(|p| (p.protocol.unwrap(), format!("{:?}", p.port.unwrap())))
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        [
            ("TCP".to_owned(), "Int(443)".to_owned()),
            ("TCP".to_owned(), "Int(53)".to_owned()),
            ("UDP".to_owned(), "Int(53)".to_owned()),
        ]
    );
}

#[test]
fn router_contract() {
    let g = managed_gateway();
    let o = gateway_objects(&g, "h", Some("pw"), &["claude", "gemini"]);
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
    assert_eq!(
        cfg_toml,
        "# Generated by llm-mcp-hub-operator from HubGateway main; edits are overwritten.\n\
         session_ttl_secs = 7200\n\
         \n\
         [discovery]\n\
         worker_token_dir = \"/etc/llm-mcp-hub/worker-tokens\"\n\
         \n\
         [discovery.kubernetes]\n\
         namespace = \"hub\"\n\
         label_selector = \"tier=gold\"\n"
    );
    let all = gateway_objects(&external_gateway(), "h", None, &[]);
    assert!(
        all.config_map.data.as_ref().unwrap()["config.toml"]
            .ends_with("[discovery.kubernetes]\nnamespace = \"hub\"\nlabel_selector = \"\"\n"),
        "no selector: every provider of the namespace"
    );
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
    let o = gateway_objects(&g, "h", Some("pw123"), &[]);
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
    // Redis only answers: its policy allows no egress at all.
    assert!(
        np.policy_types
            .as_ref()
            .unwrap()
            .contains(&"Egress".to_owned())
    );
    assert!(np.egress.is_none(), "Egress with no rule denies all");
}

#[test]
fn external_redis_uses_the_users_secret_and_no_statefulset() {
    let g = external_gateway();
    let o = gateway_objects(&g, "h", None, &[]);
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

#[test]
fn worker_token_secret_is_owned_and_mounted_into_the_worker_only() {
    assert_eq!(
        worker::WORKER_TOKEN_FILE,
        format!("{}/{}", worker::WORKER_TOKEN_DIR, worker::WORKER_TOKEN_KEY)
    );
    for p in [claude_provider(), gemini_provider()] {
        let name = p.metadata.name.clone().unwrap();
        let o = workers(&p);
        let s = &o.token_secret;
        assert_eq!(
            s.metadata.name.as_deref(),
            Some(format!("{name}-worker-token").as_str())
        );
        assert_eq!(
            s.metadata.name.clone().unwrap(),
            worker::worker_token_secret_name(&name)
        );
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(
            s.metadata.labels.as_ref(),
            o.service.metadata.labels.as_ref(),
            "labelled as the other worker objects"
        );
        assert_eq!(s.data.as_ref().unwrap()["token"].0, WORKER_TOKEN.as_bytes());
        for d in &o.deployments {
            let pod = pod(d);
            let vol = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == "worker-token")
                .unwrap();
            let sv = vol.secret.as_ref().unwrap();
            assert_eq!(
                sv.secret_name.as_deref(),
                Some(worker::worker_token_secret_name(&name).as_str())
            );
            assert_eq!(sv.default_mode, Some(0o440));
            let c = &pod.containers[0];
            let m = c
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.name == "worker-token")
                .unwrap();
            assert_eq!(m.mount_path, "/etc/llm-mcp-hub/worker-token");
            assert_eq!(m.read_only, Some(true));
            let env = c.env.as_ref().unwrap();
            let file = env
                .iter()
                .find(|e| e.name == "LLM_MCP_HUB_WORKER_TOKEN_FILE")
                .unwrap();
            assert_eq!(
                file.value.as_deref(),
                Some("/etc/llm-mcp-hub/worker-token/token")
            );
            for init in pod.init_containers.iter().flatten() {
                assert!(
                    init.volume_mounts
                        .iter()
                        .flatten()
                        .all(|m| m.name != "worker-token"),
                    "{}",
                    init.name
                );
            }
        }
    }
}

#[test]
fn generated_worker_tokens_are_kept_only_when_sound() {
    assert!(worker::is_usable_worker_token(WORKER_TOKEN));
    assert!(!worker::is_usable_worker_token(""));
    assert!(!worker::is_usable_worker_token("short"));
    assert!(!worker::is_usable_worker_token(&format!("{WORKER_TOKEN} ")));
    assert!(!worker::is_usable_worker_token(&"é".repeat(32)));
}

#[test]
fn routers_get_the_served_providers_tokens_projected() {
    let g = managed_gateway();
    let o = gateway_objects(&g, "h", Some("pw"), &["gemini", "claude", "gemini"]);
    let pod = pod(&o.deployment);
    let vol = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "worker-tokens")
        .unwrap();
    let proj = vol.projected.as_ref().unwrap();
    let sources: Vec<(String, String, String, Option<bool>)> = proj
        .sources
        .iter()
        .flatten()
        .map(|s| {
            let s = s.secret.as_ref().unwrap();
            let item = &s.items.as_ref().unwrap()[0];
            assert_eq!(s.items.as_ref().unwrap().len(), 1);
            (
                s.name.clone(),
                item.key.clone(),
                item.path.clone(),
                s.optional,
            )
        })
        .collect();
    let src = |p: &str| {
        (
            format!("{p}-worker-token"),
            "token".to_owned(),
            p.to_owned(),
            Some(true),
        )
    };
    assert_eq!(sources, [src("claude"), src("gemini")]);
    let m = pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "worker-tokens")
        .unwrap();
    assert_eq!(m.mount_path, gateway::WORKER_TOKENS_DIR);
    assert_eq!(m.mount_path, "/etc/llm-mcp-hub/worker-tokens");
    assert_eq!(m.read_only, Some(true));

    // The set of served providers is part of the pod template (routers roll when it changes);
    // the order they were found in is not.
    let template = |served: &[&str]| {
        gateway_objects(&g, "h", Some("pw"), served)
            .deployment
            .spec
            .unwrap()
            .template
    };
    assert_eq!(
        template(&["claude", "gemini"]),
        template(&["gemini", "claude"])
    );
    assert_ne!(template(&["claude"]), template(&["claude", "gemini"]));
}

/// The routers reach DNS, the API server, the namespace's workers and their Redis, nothing
/// else; their ingress is left open (clients come from anywhere).
#[test]
fn router_egress_is_dns_api_server_workers_and_redis() {
    let o = gateway_objects(&managed_gateway(), "h", Some("pw"), &["claude"]);
    let np = o.network_policy.spec.as_ref().unwrap();
    assert_eq!(np.policy_types.as_deref(), Some(&["Egress".to_owned()][..]));
    assert!(np.ingress.is_none());
    let sel = np
        .pod_selector
        .as_ref()
        .unwrap()
        .match_labels
        .as_ref()
        .unwrap();
    assert_eq!(sel[labels::COMPONENT], "router");
    let rules: Vec<(Option<String>, Vec<i32>)> = np
        .egress
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| {
            let to = r.to.as_ref().map(|peers| {
                let labels = peers[0]
                    .pod_selector
                    .as_ref()
                    .unwrap()
                    .match_labels
                    .as_ref()
                    .unwrap();
                labels[labels::COMPONENT].clone()
            });
            let ports = r
                .ports
                .as_ref()
                .unwrap()
                .iter()
                .map(|p| match p.port {
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => n,
                    _ => panic!("numeric ports"),
                })
                .collect();
            (to, ports)
        })
        .collect();
    assert_eq!(
        rules,
        [
            (None, vec![53, 53]),
            (None, vec![443, 6443]),
            (Some("worker".to_owned()), vec![8081]),
            (Some("redis".to_owned()), vec![6379]),
        ]
    );
}
