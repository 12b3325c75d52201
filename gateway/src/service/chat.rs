//! Chat: resolves the client's `model` to a provider and CLI model, then runs the request on
//! the backend.

use std::sync::Arc;

use futures::stream::BoxStream;

use crate::backend::{Backend, ChatRequest, ProviderInfo};
use crate::provider::{ChatEvent, Message, ProviderError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    pub provider: String,
    pub model: String,
}

impl ResolvedModel {
    /// The id clients see in responses: `provider/model`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("The model '{model}' does not exist. Available models: {}", available.join(", "))]
    ModelNotFound {
        model: String,
        available: Vec<String>,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

#[derive(Clone)]
pub struct ChatService {
    backend: Arc<dyn Backend>,
}

impl ChatService {
    pub fn new(backend: Arc<dyn Backend>) -> ChatService {
        ChatService { backend }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.backend.providers()
    }

    /// Every id a client may put in `model`: each provider name and each `provider/model`.
    pub fn model_ids(&self) -> Vec<String> {
        model_ids(&self.providers())
    }

    pub fn resolve(&self, model: &str) -> Result<ResolvedModel, ServiceError> {
        resolve(&self.providers(), model)
    }

    /// Starts a chat on the backend. The stream yields deltas, then `Done`, or an error.
    pub fn chat(
        &self,
        model: &ResolvedModel,
        system: Option<String>,
        messages: Vec<Message>,
    ) -> BoxStream<'static, Result<ChatEvent, ProviderError>> {
        self.backend.chat(ChatRequest {
            provider: model.provider.clone(),
            model: model.model.clone(),
            system,
            messages,
        })
    }
}

pub fn model_ids(providers: &[ProviderInfo]) -> Vec<String> {
    providers
        .iter()
        .flat_map(|p| {
            std::iter::once(p.name.clone())
                .chain(p.models.iter().map(|m| format!("{}/{m}", p.name)))
        })
        .collect()
}

/// `claude` → its default model; `claude/opus` → that model if allowed; a bare CLI model name
/// (`gemini-2.5-pro`) → the one provider that lists it.
pub fn resolve(providers: &[ProviderInfo], model: &str) -> Result<ResolvedModel, ServiceError> {
    let not_found = || ServiceError::ModelNotFound {
        model: model.to_string(),
        available: model_ids(providers),
    };
    let (provider, cli_model) = match model.split_once('/') {
        Some((p, m)) => (p, Some(m)),
        None => (model, None),
    };
    if let Some(p) = providers.iter().find(|p| p.name == provider) {
        let cli_model = cli_model.unwrap_or(&p.default_model);
        return if p.models.iter().any(|m| m == cli_model) {
            Ok(ResolvedModel {
                provider: p.name.clone(),
                model: cli_model.to_string(),
            })
        } else {
            Err(not_found())
        };
    }
    let mut owners = providers
        .iter()
        .filter(|p| cli_model.is_none() && p.models.iter().any(|m| m == model));
    match (owners.next(), owners.next()) {
        (Some(p), None) => Ok(ResolvedModel {
            provider: p.name.clone(),
            model: model.to_string(),
        }),
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Limits;
    use crate::provider::ProviderKind;
    use crate::runtime::{HealthState, PoolStatus};

    fn provider(name: &str, models: &[&str]) -> ProviderInfo {
        ProviderInfo {
            name: name.into(),
            kind: ProviderKind::Claude,
            models: models.iter().map(|m| m.to_string()).collect(),
            default_model: models[0].into(),
            health: HealthState::Ready,
            limited_until: None,
            last_error: None,
            ready_workers: 1,
            pool: PoolStatus {
                busy: 0,
                idle: 0,
                queued: 0,
                max_concurrency: 1,
                max_queue: 1,
            },
            limits: Limits {
                max_concurrency: 1,
                max_queue: 1,
                request_timeout_secs: 1,
                idle_timeout_secs: 1,
            },
        }
    }

    #[test]
    fn resolves_names_and_paths() {
        let ps = [
            provider("claude", &["sonnet", "opus"]),
            provider("gemini", &["gemini-2.5-pro"]),
        ];
        let r = |m| resolve(&ps, m).map(|r| r.id());
        assert_eq!(r("claude").unwrap(), "claude/sonnet");
        assert_eq!(r("claude/opus").unwrap(), "claude/opus");
        assert_eq!(r("gemini-2.5-pro").unwrap(), "gemini/gemini-2.5-pro");
        let err = r("claude/gpt-4").unwrap_err();
        assert!(err.to_string().contains("claude/sonnet"), "{err}");
        assert!(r("gpt-4o").is_err());
        assert!(r("").is_err());
    }
}
