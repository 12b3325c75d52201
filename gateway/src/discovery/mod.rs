//! Where a router finds its workers. Two sources behind one interface: a static list from the
//! configuration, and Kubernetes (LLMProviders matching a selector, and the EndpointSlices of
//! their worker Services). Each source publishes the complete current set of endpoints; the
//! router's worker table follows it.

pub mod kubernetes;

use std::path::PathBuf;

use tokio::sync::watch;

use crate::config::DiscoveryConfig;

/// One worker as discovery knows it. Its account, models and health come from the worker's
/// own status endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The provider the worker serves.
    pub provider: String,
    /// Base URL, `http://10.1.2.3:8081`.
    pub url: String,
    /// Where the worker's credential is read from.
    pub token_file: Option<PathBuf>,
}

/// The endpoints currently known; `None` until every source has made its first pass.
pub type Endpoints = watch::Receiver<Option<Vec<Endpoint>>>;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("no discovery source: configure [discovery.kubernetes] and/or [[discovery.static]]")]
    Unconfigured,
    #[error("Kubernetes discovery: {0}")]
    Kubernetes(String),
}

/// Starts the configured sources; the receiver sees their union.
pub async fn start(config: &DiscoveryConfig) -> Result<Endpoints, DiscoveryError> {
    let statics = static_endpoints(config);
    match &config.kubernetes {
        Some(k8s) => kubernetes::start(k8s, config.worker_token_dir.clone(), statics).await,
        None if statics.is_empty() => Err(DiscoveryError::Unconfigured),
        None => Ok(watch::channel(Some(statics)).1),
    }
}

/// The `[[discovery.static]]` entries.
pub fn static_endpoints(config: &DiscoveryConfig) -> Vec<Endpoint> {
    config
        .static_workers
        .iter()
        .map(|w| Endpoint {
            provider: w.provider.clone(),
            url: w.url.trim_end_matches('/').to_string(),
            token_file: w
                .token_file
                .clone()
                .or_else(|| token_file_in(config.worker_token_dir.as_ref(), &w.provider)),
        })
        .collect()
}

/// `<dir>/<provider>`: where the operator mounts each provider's worker credential.
pub fn token_file_in(dir: Option<&PathBuf>, provider: &str) -> Option<PathBuf> {
    dir.map(|d| d.join(provider))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StaticWorker;

    #[test]
    fn static_entries_take_the_token_dir_unless_they_name_a_file() {
        let config = DiscoveryConfig {
            worker_token_dir: Some(PathBuf::from("/tokens")),
            kubernetes: None,
            static_workers: vec![
                StaticWorker {
                    provider: "claude".into(),
                    url: "http://127.0.0.1:8081/".into(),
                    token_file: None,
                },
                StaticWorker {
                    provider: "gemini".into(),
                    url: "http://127.0.0.1:8082".into(),
                    token_file: Some(PathBuf::from("/elsewhere")),
                },
            ],
        };
        let e = static_endpoints(&config);
        assert_eq!(e[0].url, "http://127.0.0.1:8081");
        assert_eq!(e[0].token_file, Some(PathBuf::from("/tokens/claude")));
        assert_eq!(e[1].token_file, Some(PathBuf::from("/elsewhere")));
    }
}
