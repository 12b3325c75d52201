//! Where the operator and the binary meet: the pods the operator's own builders produce are
//! run as local processes with exactly their command, arguments, environment and files (mount
//! paths mapped to temporary directories, the listen port made free), and must serve.
//!
//! The router test also needs a real API server (`tests/kube/plane.sh`; `scripts/test` starts
//! one and sets `KUBECONFIG`): the router watches LLMProviders and EndpointSlices with the
//! permissions of the Role the operator gives it (impersonating its ServiceAccount), and the
//! test stands in for the kubelet and the EndpointSlice controller — it runs the workers and
//! publishes their addresses. The API server refuses loopback endpoint addresses, so the workers
//! listen on addresses of a veth pair the test creates.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e::cluster::{Kind, WORKER_TOKEN, Worker, WorkerSpec};
use e2e::pod::{LocalContainer, Objects, container_of};
use e2e::redis::RedisServer;
use e2e::{free_port, http_client, hub_binary, private_dir, sse_data, user, write_script};
use fake_models::{FakeServer, TokenState};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt, ResourceExt};
use llm_mcp_hub_crds::{HubGateway, LLMProvider};
use llm_mcp_hub_operator::builders::BuildConfig;
use llm_mcp_hub_operator::builders::gateway::{self, GatewayInputs};
use llm_mcp_hub_operator::builders::worker::{self, WorkerInputs};
use serde_json::{Value, json};

/// A bin directory standing for the image's PATH: `llm-mcp-hub` and a `claude` that talks to
/// `fake` (the wrapper is the only place a base URL can be set; the hub strips it).
fn image_path(root: &std::path::Path, fake: &FakeServer) -> std::path::PathBuf {
    let bin = root.join("image-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(hub_binary(), bin.join("llm-mcp-hub")).unwrap();
    let claude = e2e::cli_bin_dir().join("claude");
    write_script(
        &bin.join("claude"),
        &format!(
            "#!/bin/sh\nexport ANTHROPIC_BASE_URL={}\nexec {} \"$@\"\n",
            fake.base_url,
            claude.display()
        ),
    );
    bin
}

fn provider(name: &str, labels: Value) -> LLMProvider {
    serde_json::from_value(json!({
        "apiVersion": "llm-mcp-hub.dev/v1alpha1",
        "kind": "LLMProvider",
        "metadata": {"name": name, "namespace": "hub", "uid": format!("uid-{name}"), "labels": labels},
        "spec": {
            "kind": "claude",
            "models": {"allowed": ["sonnet", "haiku"], "default": "haiku"},
            "credentials": {"accounts": [{"name": "personal", "secretRef": {"name": "claude-login"}}]},
            "concurrency": 2
        }
    }))
    .unwrap()
}

/// The operator's worker objects for `p`, and its worker-token Secret as a pod reads it
/// (name, key → value).
fn build_workers(p: &LLMProvider) -> (worker::WorkerObjects, (String, BTreeMap<String, String>)) {
    let objects = worker::build(
        p,
        &BuildConfig::default(),
        &WorkerInputs {
            secret_hashes: BTreeMap::new(),
            worker_token: WORKER_TOKEN.into(),
        },
    );
    let secret = &objects.token_secret;
    let data = secret
        .data
        .clone()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect();
    let named = (secret.name_any(), data);
    (objects, named)
}

/// Starts a prepared worker container on a free port of 127.0.0.1, its output in
/// `root/worker.log`: the child, its base URL and the log's path.
fn start_worker(
    local: &LocalContainer,
    bin: &std::path::Path,
    root: &std::path::Path,
) -> (tokio::process::Child, String, std::path::PathBuf) {
    let port = free_port();
    let log_path = root.join("worker.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = local
        .command(bin, &format!("127.0.0.1:{port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker as the operator deploys it");
    (child, format!("http://127.0.0.1:{port}"), log_path)
}

async fn wait_http_ok(url: &str, log: &std::path::Path) {
    let http = http_client();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_started_exactly_as_the_operator_deploys_it_serves() {
    let fake = FakeServer::anthropic().await;
    let p = provider("claude-max", json!({}));
    let (objects, token_secret) = build_workers(&p);
    let deployment = &objects.deployments[0];
    let (pod, container) = container_of(deployment, "worker");
    let dir = private_dir();
    let root = dir.path();
    let secrets = Objects {
        secrets: BTreeMap::from([
            (
                "claude-login".to_string(),
                BTreeMap::from([("token".to_string(), "oauth-personal".to_string())]),
            ),
            token_secret,
        ]),
        config_maps: BTreeMap::new(),
    };
    let local = LocalContainer::prepare(pod, container, &secrets, root);
    let bin = image_path(root, &fake);
    let (mut child, base, log_path) = start_worker(&local, &bin, root);
    // The probes the Deployment declares.
    for probe in [
        &container.startup_probe,
        &container.liveness_probe,
        &container.readiness_probe,
    ] {
        let path = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|g| g.path.clone())
            .expect("an HTTP probe");
        wait_http_ok(&format!("{base}{path}"), &log_path).await;
    }
    let http = http_client();
    let status: Value = http
        .get(format!("{base}/internal/v1/status"))
        .bearer_auth(WORKER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["provider"], "claude-max", "{status}");
    assert_eq!(status["kind"], "claude");
    assert_eq!(status["account"], "personal");
    assert_eq!(status["models"], json!(["sonnet", "haiku"]));
    assert_eq!(status["default_model"], "haiku");
    assert_eq!(status["capacity"]["max_concurrency"], 2);
    assert_eq!(status["limits"]["request_timeout_secs"], 300);

    let r = http
        .post(format!("{base}/internal/v1/chat"))
        .bearer_auth(WORKER_TOKEN)
        .json(&json!({"provider": "claude-max", "model": "haiku",
                      "messages": [{"role": "user", "content": "[[reply:as deployed]]"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text: String = sse_data(r)
        .await
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|e| e["text"].as_str().map(String::from))
        .collect();
    assert_eq!(text, "as deployed");
    let turn = fake
        .chat_requests()
        .into_iter()
        .find(|r| r.last_user_text().contains("as deployed"))
        .expect("the turn reached the model");
    assert!(
        turn.model().unwrap_or_default().contains("haiku"),
        "{:?}",
        turn.model()
    );
    assert_eq!(
        turn.header("authorization"),
        Some("Bearer oauth-personal"),
        "the account's login from its Secret"
    );
    let _ = child.start_kill();
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gemini_worker_deployed_by_the_operator_runs_on_its_google_login_from_the_secret() {
    // The operator's gemini pod: an init container copies the account's login from its Secret
    // into the writable home, then the worker runs gemini on it. Both run here exactly as built,
    // against the fake Google; the Secret also names a Workspace account's project.
    let dir = private_dir();
    let root = dir.path();
    let fake = e2e::google(root).await;
    let login = fake.gemini_login(
        &e2e::cli_bin_dir().join("gemini"),
        &root.join("login"),
        TokenState::Fresh,
    );
    let mut p = provider("gemini-work", json!({}));
    p.spec.kind = llm_mcp_hub_crds::ProviderKind::Gemini;
    p.spec.models = serde_json::from_value(json!({"allowed": ["gemini-2.5-flash"]})).unwrap();
    p.spec.credentials.accounts[0].secret_ref.name = "gemini-login".into();
    let (objects, token_secret) = build_workers(&p);
    let secrets = Objects {
        secrets: BTreeMap::from([
            (
                "gemini-login".to_string(),
                BTreeMap::from([
                    (
                        "oauth_creds.json".to_string(),
                        std::fs::read_to_string(&login.creds_file).unwrap(),
                    ),
                    (
                        worker::GEMINI_PROJECT_KEY.to_string(),
                        "workspace-project-7".to_string(),
                    ),
                ]),
            ),
            token_secret,
        ]),
        config_maps: BTreeMap::new(),
    };
    let deployment = &objects.deployments[0];
    let pod_dir = root.join("pod");
    let bin = root.join("image-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(hub_binary(), bin.join("llm-mcp-hub")).unwrap();
    std::os::unix::fs::symlink(&login.cli, bin.join("gemini")).unwrap();

    let (pod, init) = container_of(deployment, "install-credentials");
    let status = LocalContainer::prepare(pod, init, &secrets, &pod_dir)
        .command(&bin, "unused")
        .status()
        .await
        .unwrap();
    assert!(status.success(), "the init container failed: {status}");

    let (pod, container) = container_of(deployment, "worker");
    let local = LocalContainer::prepare(pod, container, &secrets, &pod_dir);
    let (mut child, base, log_path) = start_worker(&local, &bin, root);
    wait_http_ok(&format!("{base}/readyz"), &log_path).await;
    let r = http_client()
        .post(format!("{base}/internal/v1/chat"))
        .bearer_auth(WORKER_TOKEN)
        .json(
            &json!({"provider": "gemini-work", "model": "gemini-2.5-flash",
                      "messages": [{"role": "user", "content": "[[reply:as deployed]]"}]}),
        )
        .send()
        .await
        .unwrap();
    let status = r.status();
    let events = sse_data(r).await;
    assert_eq!(
        status,
        200,
        "{events:?}\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|e| e["text"].as_str().map(String::from))
        .collect();
    assert_eq!(
        text,
        "as deployed",
        "{events:?}\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let calls = fake.google_calls();
    let generation = calls
        .iter()
        .find(|c| c.path.ends_with(":streamGenerateContent"))
        .expect("the turn reached Code Assist");
    let sent: Value = serde_json::from_str(&generation.body).unwrap();
    assert_eq!(
        sent["project"], "workspace-project-7",
        "the project from the Secret"
    );
    assert!(generation.bearer.is_some(), "the login from the Secret");
    let _ = child.start_kill();
    let _ = child.wait().await;
}

const OPT_IN: &str = "LLM_MCP_HUB_E2E_KUBE";

fn kube_enabled() -> bool {
    let on =
        std::env::var(OPT_IN).is_ok_and(|v| v == "1") && std::env::var_os("KUBECONFIG").is_some();
    if !on {
        eprintln!(
            "skipped: needs a test API server ({OPT_IN}=1 and KUBECONFIG; scripts/test starts one with tests/kube/plane.sh)"
        );
    }
    on
}

/// A veth pair whose two ends carry non-loopback addresses of this host (removed on drop).
struct TestAddresses {
    link: String,
    pub addrs: [String; 2],
}

impl TestAddresses {
    fn create() -> TestAddresses {
        let n = std::process::id() % 200 + 20;
        let link = format!("hubt{n}");
        let addrs = [format!("10.79.{n}.2"), format!("10.79.{n}.3")];
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("ip (iproute2)");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &link])
            .output();
        let peer = format!("{link}p");
        ip(&["link", "add", &link, "type", "veth", "peer", "name", &peer]);
        ip(&["addr", "add", &format!("{}/32", addrs[0]), "dev", &link]);
        ip(&["addr", "add", &format!("{}/32", addrs[1]), "dev", &peer]);
        ip(&["link", "set", &link, "up"]);
        ip(&["link", "set", &peer, "up"]);
        TestAddresses { link, addrs }
    }
}

impl Drop for TestAddresses {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

fn slice(name: &str, provider: &str, port: u16, addresses: &[&str]) -> EndpointSlice {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/service-name": format!("{provider}-workers"),
            "app.kubernetes.io/managed-by": "llm-mcp-hub-operator",
            "app.kubernetes.io/component": "worker",
            "llm-mcp-hub.dev/provider": provider,
        }},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": addresses.iter().map(|a| json!({"addresses": [a], "conditions": {"ready": true}})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

async fn publish(api: &Api<EndpointSlice>, s: &EndpointSlice) {
    api.patch(
        &s.name_any(),
        &PatchParams::apply("e2e-kubelet").force(),
        &Patch::Apply(s),
    )
    .await
    .expect("publish the EndpointSlice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_router_started_as_the_operator_deploys_it_follows_kubernetes_discovery() {
    if !kube_enabled() {
        return;
    }
    let client = Client::try_default().await.expect("KUBECONFIG");
    let ns = format!("discovery-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("create the namespace");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [LLMProvider::crd(), HubGateway::crd()] {
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply the CRDs");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let crd = crds.get("llmproviders.llm-mcp-hub.dev").await.unwrap();
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            break;
        }
        assert!(Instant::now() < deadline, "CRD not established");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Two LLMProviders the gateway serves (tier=gold) would be the usual case; one is enough
    // here, plus one it must not serve.
    let providers: Api<LLMProvider> = Api::namespaced(client.clone(), &ns);
    for (name, tier) in [("claude", "gold"), ("other", "bronze")] {
        let mut p = provider(name, json!({"tier": tier}));
        p.metadata.namespace = Some(ns.clone());
        p.metadata.uid = None;
        providers
            .create(&PostParams::default(), &p)
            .await
            .expect("create an LLMProvider");
    }

    let gw: HubGateway = serde_json::from_value(json!({
        "apiVersion": "llm-mcp-hub.dev/v1alpha1", "kind": "HubGateway",
        "metadata": {"name": "hub", "namespace": ns, "uid": "uid-hub"},
        "spec": {
            "apiKeysSecretRef": {"name": "hub-keys"},
            "providerSelector": {"matchLabels": {"tier": "gold"}},
            "sessionStore": {"mode": "External", "external": {"urlSecretRef": {"name": "redis-url"}}}
        }
    }))
    .unwrap();
    let objects = gateway::build(
        &gw,
        &BuildConfig::default(),
        &GatewayInputs {
            secret_hash: String::new(),
            redis_password: None,
            served_providers: vec!["claude".into()],
        },
    );
    // The router's identity and permissions, exactly as the operator makes them.
    let pp = PatchParams::apply("e2e").force();
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .patch(
            &objects.service_account.name_any(),
            &pp,
            &Patch::Apply(&without_owner(&objects.service_account)),
        )
        .await
        .unwrap();
    Api::<Role>::namespaced(client.clone(), &ns)
        .patch(
            &objects.role.name_any(),
            &pp,
            &Patch::Apply(&without_owner(&objects.role)),
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .patch(
            &objects.role_binding.name_any(),
            &pp,
            &Patch::Apply(&without_owner(&objects.role_binding)),
        )
        .await
        .unwrap();

    let addresses = TestAddresses::create();
    let port = free_port();
    let start = |account: &str, host: &str| {
        let mut spec = WorkerSpec::new(Kind::Claude, "claude", account);
        spec.host = Some(host.to_string());
        spec.port = Some(port);
        Worker::start(spec)
    };
    let (a, b) = tokio::join!(
        start("a", &addresses.addrs[0]),
        start("b", &addresses.addrs[1])
    );

    // The router pod, as deployed.
    let redis = RedisServer::start().await;
    let (key, key_entry) = (
        "hub-key-for-discovery",
        e2e::api_key_entry("n8n", "hub-key-for-discovery", None),
    );
    let key_file = key_entry.replace("[[api_keys]]", "[[keys]]");
    let config_toml = objects.config_map.data.clone().unwrap()["config.toml"].clone();
    let secrets = Objects {
        secrets: BTreeMap::from([
            (
                "hub-keys".to_string(),
                BTreeMap::from([("keys".to_string(), key_file)]),
            ),
            (
                "redis-url".to_string(),
                BTreeMap::from([("url".to_string(), redis.url.clone())]),
            ),
            (
                worker::worker_token_secret_name("claude"),
                BTreeMap::from([("token".to_string(), WORKER_TOKEN.to_string())]),
            ),
        ]),
        config_maps: BTreeMap::from([(
            objects.config_map.name_any(),
            BTreeMap::from([("config.toml".to_string(), config_toml)]),
        )]),
    };
    let dir = private_dir();
    let root = dir.path();
    let (pod, container) = container_of(&objects.deployment, "router");
    let local = LocalContainer::prepare(pod, container, &secrets, root);
    // In a pod the router reads its ServiceAccount token; here it acts as that account.
    let kubeconfig = impersonating_kubeconfig(
        root,
        &format!(
            "system:serviceaccount:{ns}:{}",
            objects.service_account.name_any()
        ),
    );
    let fake = FakeServer::anthropic().await;
    let bin = image_path(root, &fake);
    let router_port = free_port();
    let log_path = root.join("router.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut router = local
        .command(&bin, &format!("127.0.0.1:{router_port}"))
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info,llm_mcp_hub=debug")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the router as the operator deploys it");
    let base = format!("http://127.0.0.1:{router_port}");
    wait_http_ok(&format!("{base}/readyz"), &log_path).await;
    let http = http_client();
    let router_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let ready_workers = |provider: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let all: Value = http
                .get(format!("{base}/v1/providers"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            all["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == provider)
                .map(|p| p["ready_workers"].as_u64().unwrap_or(0))
        }
    };
    let wait_ready = |n: u64| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while ready_workers("claude").await != Some(n) {
            assert!(
                Instant::now() < deadline,
                "wanted {n} ready claude workers; router log:\n{}",
                router_log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let chat = |text: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&json!({"model": "claude", "messages": [user(&text)]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    publish(
        &slices,
        &slice("claude-workers-1", "claude", port, &[&addresses.addrs[0]]),
    )
    .await;
    publish(
        &slices,
        &slice("other-workers-1", "other", port, &[&addresses.addrs[1]]),
    )
    .await;
    wait_ready(1).await;
    assert_eq!(
        ready_workers("other").await,
        None,
        "a provider outside the selector is not served"
    );
    for i in 0..3 {
        chat(format!("[[reply:first{i}]]")).await;
    }
    assert_eq!((a.turns(), b.turns()), (3, 0));

    // A new worker appears in the slice: it gets traffic.
    publish(
        &slices,
        &slice(
            "claude-workers-1",
            "claude",
            port,
            &[&addresses.addrs[0], &addresses.addrs[1]],
        ),
    )
    .await;
    wait_ready(2).await;
    for i in 0..12 {
        chat(format!("[[reply:both{i}]]")).await;
    }
    assert!(
        b.turns() > 0 && a.turns() > 3,
        "both workers answer: a {} b {}",
        a.turns(),
        b.turns()
    );

    // A worker removed from the slice gets nothing more.
    publish(
        &slices,
        &slice("claude-workers-1", "claude", port, &[&addresses.addrs[1]]),
    )
    .await;
    wait_ready(1).await;
    let a_before = a.turns();
    for i in 0..4 {
        chat(format!("[[reply:only-b{i}]]")).await;
    }
    assert_eq!(a.turns(), a_before, "the removed worker got traffic");

    let _ = router.start_kill();
    let _ = router.wait().await;
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    drop(addresses);
}

/// The object without owner references (the test has no HubGateway object to own them).
fn without_owner<K: Clone + kube::Resource>(k: &K) -> K {
    let mut k = k.clone();
    k.meta_mut().owner_references = None;
    k
}

/// A copy of `KUBECONFIG` whose user acts as `user` (the API server checks that account's
/// permissions, not the admin's).
fn impersonating_kubeconfig(dir: &std::path::Path, user: &str) -> std::path::PathBuf {
    let path = std::env::var("KUBECONFIG").unwrap();
    let mut config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for u in config["users"].as_sequence_mut().unwrap() {
        u["user"]["as"] = serde_yaml_ng::Value::String(user.to_string());
    }
    let out = dir.join("router.kubeconfig");
    std::fs::write(&out, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    out
}
