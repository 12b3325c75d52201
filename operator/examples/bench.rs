//! Operator benchmarks (results in BENCHMARKS.md):
//!
//! 1. LLMProvider reconciles per second against an in-process mock API server that answers at once
//!    (so the number is the operator's own cost: building objects, serializing applies, status),
//!    sequentially and with 8 reconciles in flight (the controller's concurrency).
//! 2. Resident memory of a reflector store holding 1,000 LLMProviders (what the controller caches).
//!
//! Run: `cargo run --release -p llm-mcp-hub-operator --example bench`

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector;
use kube::runtime::watcher;
use llm_mcp_hub_crds::{LLMProvider, LLMProviderSpec};
use llm_mcp_hub_operator::builders::BuildConfig;
use llm_mcp_hub_operator::metrics::Metrics;
use llm_mcp_hub_operator::reconcile::{Context, provider};
use serde_json::{Value, json};

fn provider_obj(i: usize) -> LLMProvider {
    let spec: LLMProviderSpec = serde_json::from_value(json!({
        "kind": "claude",
        "models": {"allowed": ["sonnet", "opus", "haiku"], "default": "sonnet"},
        "credentials": {"accounts": [{"name": "main", "secretRef": {"name": format!("claude-{i}")}}]},
        "replicas": 2,
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "3Gi"}}
    }))
    .unwrap();
    let mut p = LLMProvider::new(&format!("claude-{i}"), spec);
    p.metadata.namespace = Some(format!("team-{}", i % 20));
    p.metadata.uid = Some(format!("00000000-0000-0000-0000-{i:012}"));
    p.metadata.generation = Some(1);
    p.metadata.resource_version = Some(format!("{}", 1000 + i));
    p.metadata.labels = Some([("tier".to_owned(), "gold".to_owned())].into());
    p
}

fn secret_json() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "resourceVersion": "1"},
           "data": {"token": "dG9rZW4="}})
}

async fn answer(req: Request<Body>, status_obj: Arc<Value>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = if method == http::Method::GET && path.contains("/secrets/") {
        secret_json()
    } else if method == http::Method::GET {
        json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": []})
    } else if path.ends_with("/status") {
        (*status_obj).clone()
    } else {
        let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if path.contains("/deployments/") {
            v["status"] = json!({"observedGeneration": 0, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2});
        }
        v
    };
    Ok(Response::builder()
        .status(if path.contains("/events") { 201 } else { 200 })
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|n| n.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let p = provider_obj(1);
    let status_obj = Arc::new(serde_json::to_value(&p).unwrap());
    let svc = tower::service_fn(move |req| answer(req, status_obj.clone()));
    let client = Client::new(svc, "default");
    let ctx = Arc::new(Context::new(
        client,
        BuildConfig::default(),
        Metrics::new(),
        None,
    ));
    let p = Arc::new(p);

    // Warm-up.
    for _ in 0..200 {
        provider::reconcile(p.clone(), ctx.clone()).await.unwrap();
    }
    let n = 5000;
    let t = Instant::now();
    for _ in 0..n {
        provider::reconcile(p.clone(), ctx.clone()).await.unwrap();
    }
    let seq = n as f64 / t.elapsed().as_secs_f64();
    println!("reconciles/s, sequential:       {seq:.0}  ({n} reconciles, 7 API calls each)");

    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (p, ctx) = (p.clone(), ctx.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..n / 8 {
                provider::reconcile(p.clone(), ctx.clone()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let par = n as f64 / t.elapsed().as_secs_f64();
    println!("reconciles/s, 8 in flight:      {par:.0}");

    // Memory of 1,000 cached LLMProviders (with status), as the controller's reflector keeps them.
    let before = rss_kib();
    let (reader, mut writer) = reflector::store::<LLMProvider>();
    writer.apply_watcher_event(&watcher::Event::Init);
    for i in 0..1000 {
        let mut obj = provider_obj(i);
        let (status, _) = provider::status_from(&obj, &[], k8s_openapi::jiff::Timestamp::now());
        obj.status = Some(status);
        writer.apply_watcher_event(&watcher::Event::InitApply(obj));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let after = rss_kib();
    assert_eq!(reader.state().len(), 1000);
    println!(
        "RSS with 1,000 LLMProviders cached: {} KiB total, {} KiB for the store (before: {} KiB)",
        after,
        after.saturating_sub(before),
        before
    );
}
