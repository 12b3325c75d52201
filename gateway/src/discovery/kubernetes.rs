//! Kubernetes discovery: reflectors over the LLMProviders a router serves (namespace + label
//! selector) and the EndpointSlices of worker Services (labelled by the operator with the
//! provider's name). An endpoint counts while its slice says it is ready; a draining or
//! unready pod drops out at once.

use std::collections::BTreeSet;
use std::path::PathBuf;

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use llm_mcp_hub_crds::{LLMProvider, labels};
use tokio::sync::watch;

use super::{DiscoveryError, Endpoint, Endpoints, token_file_in};
use crate::config::KubernetesDiscovery;

/// Port name of the worker Service (`http`).
const WORKER_PORT_NAME: &str = "http";

pub async fn start(
    config: &KubernetesDiscovery,
    token_dir: Option<PathBuf>,
    statics: Vec<Endpoint>,
) -> Result<Endpoints, DiscoveryError> {
    let client = Client::try_default()
        .await
        .map_err(|e| DiscoveryError::Kubernetes(format!("no cluster access: {e}")))?;
    let namespace = if config.namespace.is_empty() {
        client.default_namespace().to_string()
    } else {
        config.namespace.clone()
    };
    tracing::info!(%namespace, selector = %config.label_selector, "discovering workers in Kubernetes");

    let providers: Api<LLMProvider> = Api::namespaced(client.clone(), &namespace);
    let slices: Api<EndpointSlice> = Api::namespaced(client, &namespace);
    let provider_watch = watcher::Config::default().labels(&config.label_selector);
    let slice_watch = watcher::Config::default().labels(&format!(
        "{}={},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::COMPONENT,
        labels::COMPONENT_WORKER
    ));

    let (provider_store, provider_writer) = reflector::store();
    let (slice_store, slice_writer) = reflector::store();
    let (tx, rx) = watch::channel(None);
    let (changed_tx, mut changed_rx) = tokio::sync::mpsc::channel::<()>(1);

    // Each reflector nudges the publisher on every change; the publisher recomputes the whole
    // endpoint set from both stores, so events never need to be interpreted one by one.
    let reflect = |stream: futures::stream::BoxStream<'static, ()>| {
        let changed = changed_tx.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            while stream.next().await.is_some() {
                let _ = changed.try_send(());
            }
        })
    };
    reflect(
        watcher(providers, provider_watch)
            .default_backoff()
            .reflect(provider_writer)
            .filter_map(|e| async move { log_error("LLMProviders", e) })
            .boxed(),
    );
    reflect(
        watcher(slices, slice_watch)
            .default_backoff()
            .reflect(slice_writer)
            .filter_map(|e| async move { log_error("EndpointSlices", e) })
            .boxed(),
    );

    tokio::spawn(async move {
        let (p, s) = (provider_store.clone(), slice_store.clone());
        let synced = async {
            let _ = p.wait_until_ready().await;
            let _ = s.wait_until_ready().await;
        };
        synced.await;
        loop {
            let mut endpoints = endpoints_of(&provider_store, &slice_store, token_dir.as_ref());
            endpoints.extend(statics.iter().cloned());
            let changed = tx.send_if_modified(|current| {
                if current.as_ref() == Some(&endpoints) {
                    false
                } else {
                    tracing::info!(workers = endpoints.len(), "worker endpoints changed");
                    *current = Some(endpoints);
                    true
                }
            });
            let _ = changed;
            if changed_rx.recv().await.is_none() {
                return;
            }
        }
    });
    Ok(rx)
}

fn log_error<T>(what: &str, event: Result<T, watcher::Error>) -> Option<()> {
    match event {
        Ok(_) => Some(()),
        Err(e) => {
            tracing::warn!(error = %e, "watching {what} failed; retrying with backoff");
            None
        }
    }
}

fn endpoints_of(
    providers: &Store<LLMProvider>,
    slices: &Store<EndpointSlice>,
    token_dir: Option<&PathBuf>,
) -> Vec<Endpoint> {
    let served: BTreeSet<String> = providers.state().iter().map(|p| p.name_any()).collect();
    let slices: Vec<EndpointSlice> = slices.state().iter().map(|s| (**s).clone()).collect();
    endpoints_from(&served, &slices, token_dir)
}

/// The ready worker endpoints of the served providers, sorted (pure, for tests).
pub fn endpoints_from(
    served: &BTreeSet<String>,
    slices: &[EndpointSlice],
    token_dir: Option<&PathBuf>,
) -> Vec<Endpoint> {
    let mut out = BTreeSet::new();
    for slice in slices {
        let Some(provider) = slice.labels().get(labels::PROVIDER) else {
            continue;
        };
        if !served.contains(provider) {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find_map(|p| {
            (p.name.as_deref() == Some(WORKER_PORT_NAME))
                .then_some(p.port)
                .flatten()
        }) else {
            continue;
        };
        let ipv6 = slice.address_type == "IPv6";
        for endpoint in &slice.endpoints {
            // Kubernetes: an unknown readiness is to be read as ready.
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            for address in &endpoint.addresses {
                let host = if ipv6 {
                    format!("[{address}]")
                } else {
                    address.clone()
                };
                out.insert(Endpoint {
                    provider: provider.clone(),
                    url: format!("http://{host}:{port}"),
                    token_file: token_file_in(token_dir, provider),
                });
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{
        Endpoint as SliceEndpoint, EndpointConditions, EndpointPort,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn slice(provider: &str, port: &str, endpoints: &[(&str, Option<bool>)]) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{provider}-workers-abc")),
                labels: Some([(labels::PROVIDER.to_string(), provider.to_string())].into()),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            ports: Some(vec![EndpointPort {
                name: Some(port.into()),
                port: Some(8081),
                ..EndpointPort::default()
            }]),
            endpoints: endpoints
                .iter()
                .map(|(ip, ready)| SliceEndpoint {
                    addresses: vec![ip.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        ..EndpointConditions::default()
                    }),
                    ..SliceEndpoint::default()
                })
                .collect(),
        }
    }

    #[test]
    fn ready_endpoints_of_served_providers_only() {
        let served = BTreeSet::from(["claude".to_string()]);
        let slices = [
            slice(
                "claude",
                "http",
                &[
                    ("10.0.0.1", Some(true)),
                    ("10.0.0.2", Some(false)),
                    ("10.0.0.3", None),
                ],
            ),
            slice("gemini", "http", &[("10.0.0.9", Some(true))]),
            slice("claude", "metrics", &[("10.0.0.4", Some(true))]),
        ];
        let dir = PathBuf::from("/tokens");
        let e = endpoints_from(&served, &slices, Some(&dir));
        let urls: Vec<_> = e.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(urls, ["http://10.0.0.1:8081", "http://10.0.0.3:8081"]);
        assert_eq!(e[0].token_file, Some(PathBuf::from("/tokens/claude")));
    }
}
