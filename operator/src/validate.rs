//! Checks of a spec the API server cannot make (or that an older CRD might not have made). A
//! failed check becomes a condition reason and a Warning event, never a crash.

use llm_mcp_hub_crds::models::is_known_model;
use llm_mcp_hub_crds::{HubGatewaySpec, LLMProviderSpec, SessionStoreMode};

/// Most worker pods one LLMProvider may ask for (replicas × accounts).
pub const MAX_WORKER_PODS: i32 = 100;

/// Why a spec cannot be reconciled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason, used in conditions and events.
    pub reason: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl Problem {
    /// A problem with a reason and a message.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Validates an LLMProvider spec.
pub fn provider(spec: &LLMProviderSpec) -> Result<(), Problem> {
    let accounts = spec.credentials.accounts.len() as i32;
    if accounts == 0 {
        return Err(Problem::new(
            "NoAccounts",
            "spec.credentials.accounts must list at least one account",
        ));
    }
    let mut names: Vec<&str> = spec
        .credentials
        .accounts
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Problem::new(
            "DuplicateAccount",
            format!("account name {:?} is used twice", w[0]),
        ));
    }
    if !(0..=20).contains(&spec.replicas)
        || spec.replicas.saturating_mul(accounts) > MAX_WORKER_PODS
    {
        return Err(Problem::new(
            "InvalidReplicas",
            format!(
                "replicas {} per account × {accounts} accounts is impossible: replicas must be 0..=20 \
                 and at most {MAX_WORKER_PODS} worker pods in all",
                spec.replicas
            ),
        ));
    }
    if !(1..=64).contains(&spec.concurrency) {
        return Err(Problem::new(
            "InvalidConcurrency",
            format!("concurrency {} must be 1..=64", spec.concurrency),
        ));
    }
    let kind = spec.kind;
    let models = spec.models.allowed.iter().chain(spec.models.default.iter());
    if let Some(unknown) = models.into_iter().find(|m| !is_known_model(kind, m)) {
        return Err(Problem::new(
            "UnknownModel",
            format!("model {unknown:?} is not a {kind} model"),
        ));
    }
    if let Some(d) = &spec.models.default
        && !spec.models.allowed.is_empty()
        && !spec.models.allowed.contains(d)
    {
        return Err(Problem::new(
            "UnknownModel",
            format!("default model {d:?} is not in models.allowed"),
        ));
    }
    Ok(())
}

/// Checks an image a resource asks for against the operator's allow-list of registries (each
/// entry a registry, `ghcr.io`, or a registry and path, `ghcr.io/llm-mcp-hub`). An empty list
/// allows any image. Without a list, whoever may write an LLMProvider could run any image with
/// the account Secrets it names mounted.
pub fn image(image: Option<&str>, allowed: &[String], field: &str) -> Result<(), Problem> {
    let Some(image) = image else {
        return Ok(());
    };
    if allowed.is_empty() {
        return Ok(());
    }
    let full = qualified(image);
    let permitted = allowed.iter().any(|entry| {
        let entry = entry.trim_end_matches('/');
        !entry.is_empty()
            && full
                .strip_prefix(entry)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    if permitted {
        Ok(())
    } else {
        Err(Problem::new(
            "ImageNotAllowed",
            format!(
                "{field} '{image}' is not from an allowed registry ({})",
                allowed.join(", ")
            ),
        ))
    }
}

/// An image reference with its registry spelled out, as the container runtime reads it: a first
/// component with a `.` or `:`, or `localhost`, is a registry; otherwise it is Docker Hub.
fn qualified(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => image.to_owned(),
        Some(_) => format!("docker.io/{image}"),
        None => format!("docker.io/library/{image}"),
    }
}

/// Validates a HubGateway spec.
pub fn gateway(spec: &HubGatewaySpec) -> Result<(), Problem> {
    if !(0..=50).contains(&spec.replicas) {
        return Err(Problem::new(
            "InvalidReplicas",
            format!("replicas {} must be 0..=50", spec.replicas),
        ));
    }
    if spec.session_store.mode == SessionStoreMode::External
        && spec.session_store.external.is_none()
    {
        return Err(Problem::new(
            "InvalidSessionStore",
            "sessionStore.mode is External but sessionStore.external is missing",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> LLMProviderSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn images_come_from_allowed_registries_only() {
        let allowed = vec![
            "ghcr.io/llm-mcp-hub".to_owned(),
            "registry.example:5000".to_owned(),
        ];
        for ok in [
            None,
            Some("ghcr.io/llm-mcp-hub/llm-mcp-hub:1.2"),
            Some("ghcr.io/llm-mcp-hub/x@sha256:abc"),
            Some("registry.example:5000/team/hub:latest"),
        ] {
            assert_eq!(image(ok, &allowed, "spec.image"), Ok(()), "{ok:?}");
        }
        for bad in [
            "ghcr.io/someone-else/hub:1",
            "ghcr.io/llm-mcp-hub-evil/hub:1",
            "ghcr.io.evil.example/llm-mcp-hub/hub:1",
            "llm-mcp-hub",
            "library/redis:7",
            "registry.example:5001/team/hub",
            "localhost/hub",
        ] {
            let e = image(Some(bad), &allowed, "spec.image").unwrap_err();
            assert_eq!(e.reason, "ImageNotAllowed", "{bad}");
        }
        // Docker Hub spelled out, and no list at all.
        let hub = vec!["docker.io/library".to_owned()];
        assert_eq!(image(Some("redis:7.4-alpine"), &hub, "x"), Ok(()));
        assert!(image(Some("evil/redis"), &hub, "x").is_err());
        assert_eq!(image(Some("anything/at:all"), &[], "x"), Ok(()));
    }

    #[test]
    fn good_spec_passes() {
        let s = spec(
            json!({"kind": "claude", "models": {"allowed": ["sonnet", "opus"], "default": "sonnet"},
            "credentials": {"accounts": [{"name": "a", "secretRef": {"name": "s"}}]}}),
        );
        assert_eq!(provider(&s), Ok(()));
    }

    #[test]
    fn unknown_model() {
        let s = spec(
            json!({"kind": "claude", "models": {"allowed": ["gemini-2.5-pro"]},
            "credentials": {"accounts": [{"name": "a", "secretRef": {"name": "s"}}]}}),
        );
        assert_eq!(provider(&s).unwrap_err().reason, "UnknownModel");
    }

    #[test]
    fn impossible_replicas() {
        let s = spec(json!({"kind": "gemini", "replicas": 20,
            "credentials": {"accounts": (0..6).map(|i| json!({"name": format!("a{i}"), "secretRef": {"name": "s"}})).collect::<Vec<_>>()}}));
        assert_eq!(provider(&s).unwrap_err().reason, "InvalidReplicas");
        let s = spec(json!({"kind": "gemini", "replicas": -1,
            "credentials": {"accounts": [{"name": "a", "secretRef": {"name": "s"}}]}}));
        assert_eq!(provider(&s).unwrap_err().reason, "InvalidReplicas");
    }

    #[test]
    fn duplicate_accounts() {
        let s = spec(json!({"kind": "claude",
            "credentials": {"accounts": [{"name": "a", "secretRef": {"name": "s"}}, {"name": "a", "secretRef": {"name": "t"}}]}}));
        assert_eq!(provider(&s).unwrap_err().reason, "DuplicateAccount");
    }
}
