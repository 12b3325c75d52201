//! Shared fixtures of the operator's tests: sample resources and a scripted mock API server
//! (kube-rs's tower-test pattern).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::{Client, Resource};
use llm_mcp_hub_crds::{HubGateway, HubGatewaySpec, LLMProvider, LLMProviderSpec};
use serde_json::{Value, json};

pub const NS: &str = "hub";

fn with_meta<K: Resource>(mut obj: K, uid: &str) -> K {
    let m = obj.meta_mut();
    m.namespace = Some(NS.to_owned());
    m.uid = Some(uid.to_owned());
    m.generation = Some(1);
    m.resource_version = Some("100".to_owned());
    obj
}

/// A claude provider with two accounts, model limits, resources and scheduling.
pub fn claude_provider() -> LLMProvider {
    let spec: LLMProviderSpec = serde_json::from_value(json!({
        "kind": "claude",
        "models": {"allowed": ["sonnet", "opus", "haiku"], "default": "sonnet"},
        "credentials": {"accounts": [
            {"name": "alice", "secretRef": {"name": "claude-alice"}},
            {"name": "bob", "secretRef": {"name": "claude-bob", "key": "oauth-token"}}
        ]},
        "replicas": 2,
        "concurrency": 8,
        "timeouts": {"requestSecs": 600},
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "3Gi"}},
        "scheduling": {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}],
            "priorityClassName": "llm-workers"
        }
    }))
    .unwrap();
    with_meta(
        LLMProvider::new("claude", spec),
        "11111111-1111-1111-1111-111111111111",
    )
}

/// A gemini provider with one account and every default.
pub fn gemini_provider() -> LLMProvider {
    let spec: LLMProviderSpec = serde_json::from_value(json!({
        "kind": "gemini",
        "credentials": {"accounts": [{"name": "main", "secretRef": {"name": "gemini-oauth"}}]},
    }))
    .unwrap();
    with_meta(
        LLMProvider::new("gemini", spec),
        "22222222-2222-2222-2222-222222222222",
    )
}

/// A gateway with managed Redis, an Ingress with TLS and a provider selector.
pub fn managed_gateway() -> HubGateway {
    let spec: HubGatewaySpec = serde_json::from_value(json!({
        "replicas": 2,
        "apiKeysSecretRef": {"name": "hub-api-keys"},
        "providerSelector": {"matchLabels": {"tier": "gold"}},
        "sessionTtlSecs": 7200,
        "sessionStore": {"mode": "Managed", "managed": {"storage": "2Gi", "storageClassName": "fast"}},
        "ingress": {"host": "hub.example.com", "className": "nginx", "tls": {"secretName": "hub-tls"},
                    "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "32m"}}
    }))
    .unwrap();
    with_meta(
        HubGateway::new("main", spec),
        "33333333-3333-3333-3333-333333333333",
    )
}

/// A gateway with an external Redis, a LoadBalancer Service and no Ingress.
pub fn external_gateway() -> HubGateway {
    let spec: HubGatewaySpec = serde_json::from_value(json!({
        "replicas": 1,
        "apiKeysSecretRef": {"name": "hub-api-keys", "key": "api-keys.txt"},
        "sessionStore": {"mode": "External", "external": {"urlSecretRef": {"name": "redis-url"}}},
        "service": {"type": "LoadBalancer", "port": 443, "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}}
    }))
    .unwrap();
    with_meta(
        HubGateway::new("edge", spec),
        "44444444-4444-4444-4444-444444444444",
    )
}

/// A Secret as the API server returns it.
pub fn secret(name: &str, data: &[(&str, &str)]) -> Value {
    use base64_lite::encode;
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String(encode(v.as_bytes()))))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": NS, "resourceVersion": "1"},
           "data": data})
}

/// Minimal base64 (standard alphabet, padded), to avoid a dependency for test fixtures.
pub mod base64_lite {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pub fn encode(b: &[u8]) -> String {
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            out.push(T[(n >> 18) as usize & 63] as char);
            out.push(T[(n >> 12) as usize & 63] as char);
            out.push(if c.len() > 1 {
                T[(n >> 6) as usize & 63] as char
            } else {
                '='
            });
            out.push(if c.len() > 2 {
                T[n as usize & 63] as char
            } else {
                '='
            });
        }
        out
    }
}

/// A Kubernetes `Status` error body.
pub fn status_error(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
           "code": code, "reason": reason, "message": message, "metadata": {}})
}

/// What the mock answers.
pub enum Reply {
    /// Status and JSON body.
    Json(u16, Value),
    /// Echo the request body back (what server-side apply returns, modulo server fields),
    /// merged with the given JSON (e.g. a `status`).
    Echo(Value),
}

/// One expected request.
pub struct Step {
    pub method: Method,
    /// Expected path and query, exactly (query parameters as kube sends them).
    pub path: String,
    pub reply: Reply,
}

impl Step {
    pub fn new(method: Method, path: impl Into<String>, reply: Reply) -> Self {
        Self {
            method,
            path: path.into(),
            reply,
        }
    }
}

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub body: Value,
}

fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

/// A scripted API server: answers requests in order and fails the test on any unexpected one.
/// Requests to the events API are answered and recorded but do not consume steps, so event
/// publishing can be asserted separately.
pub struct MockApi {
    pub client: Client,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl MockApi {
    pub fn start(steps: Vec<Step>) -> Self {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, NS);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let mut steps: VecDeque<Step> = steps.into();
        let task = tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let method = req.method().clone();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let bytes = req
                    .into_body()
                    .collect_bytes()
                    .await
                    .map_err(|e| e.to_string())?;
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes)
                        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
                };
                seen2.lock().unwrap().push(Seen {
                    method: method.clone(),
                    path: path.clone(),
                    body: body.clone(),
                });
                let (code, reply) = if path.starts_with("/apis/events.k8s.io/") {
                    let mut b = body.clone();
                    merge(&mut b, &json!({"metadata": {"resourceVersion": "1"}}));
                    (201, b)
                } else {
                    let Some(step) = steps.pop_front() else {
                        eprintln!("mock API server: unexpected request {method} {path}");
                        return Err(format!("unexpected request {method} {path}"));
                    };
                    if step.method != method || step.path != path {
                        let e = format!(
                            "expected {} {}, got {method} {path}",
                            step.method, step.path
                        );
                        eprintln!("mock API server: {e}");
                        return Err(e);
                    }
                    match step.reply {
                        Reply::Json(code, v) => (code, v),
                        Reply::Echo(extra) => {
                            let mut b = body.clone();
                            merge(
                                &mut b,
                                &json!({"metadata": {"resourceVersion": "2", "generation": 1}}),
                            );
                            merge(&mut b, &extra);
                            (200, b)
                        }
                    }
                };
                let resp = Response::builder()
                    .status(StatusCode::from_u16(code).unwrap())
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap();
                send.send_response(resp);
            }
            if let Some(s) = steps.front() {
                return Err(format!("request never made: {} {}", s.method, s.path));
            }
            Ok(())
        });
        Self { client, seen, task }
    }

    /// Drops the client and checks every step was used and nothing unexpected came.
    pub async fn finish(self) -> Vec<Seen> {
        drop(self.client);
        let result = tokio::time::timeout(std::time::Duration::from_secs(10), self.task)
            .await
            .expect("mock finished")
            .expect("mock task did not panic");
        if let Err(e) = result {
            panic!("mock API server: {e}");
        }
        Arc::try_unwrap(self.seen)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_else(|a| a.lock().unwrap().clone())
    }
}

/// The apply query kube sends for server-side apply with force.
pub const APPLY: &str = "?&force=true&fieldManager=llm-mcp-hub-operator";
