//! `LLMProvider`: one vendor CLI subscription served by worker pods.

use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ImagePullPolicy, SchedulingSpec, SecretKeyRef};

/// Desired state of an LLMProvider: which vendor CLI, which subscription accounts, how many worker pods.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "llm-mcp-hub.dev",
    version = "v1alpha1",
    kind = "LLMProvider",
    plural = "llmproviders",
    singular = "llmprovider",
    shortname = "llmp",
    category = "llm-mcp-hub",
    namespaced,
    status = "LLMProviderStatus",
    derive = "PartialEq",
    doc = "An LLMProvider runs one vendor CLI (claude or gemini), logged in with one or more \
           subscription accounts, as worker pods that HubGateways route requests to.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind", description = "Vendor CLI"),
    printcolumn(name = "Models", type_ = "string", json_path = ".spec.models.allowed", description = "Allowed models (empty: any)"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Ready condition"),
    printcolumn(name = "Pods", type_ = "integer", json_path = ".status.readyReplicas", description = "Ready worker pods", priority = 1),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Reason of the Ready condition", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40")
        .message("name must be a DNS label of at most 40 characters starting with a letter (it prefixes the worker objects' names)")
        .reason(Reason::FieldValueInvalid)
)]
#[serde(rename_all = "camelCase")]
pub struct LLMProviderSpec {
    /// Which vendor CLI the workers run. Immutable: create a new LLMProvider to change it.
    #[x_kube(validation = Rule::new("self == oldSelf").message("kind is immutable; create a new LLMProvider instead"))]
    pub kind: ProviderKind,

    /// Which models clients may ask this provider for, and the default one.
    #[serde(default)]
    pub models: ModelsSpec,

    /// Subscription accounts (OAuth credentials in Secrets). Each account gets its own worker
    /// Deployment named `<name>-<account>`.
    pub credentials: CredentialsSpec,

    /// Worker pods per account.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 20))]
    pub replicas: i32,

    /// Maximum concurrent requests one worker pod serves (`LLM_MCP_HUB_CONCURRENCY`).
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: i32,

    /// Time limits of a request.
    #[serde(default)]
    pub timeouts: TimeoutsSpec,

    /// CPU and memory of the worker container. Defaults: requests 250m CPU / 512Mi, limit 2Gi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Worker image. Defaults to the operator's image setting (`ghcr.io/llm-mcp-hub/llm-mcp-hub:<version>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Pull policy of the worker image (default: Kubernetes' default for the tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets used to pull the worker image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Where the worker pods may run.
    #[serde(default, skip_serializing_if = "is_default")]
    pub scheduling: SchedulingSpec,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn default_replicas() -> i32 {
    1
}

fn default_concurrency() -> i32 {
    4
}

/// The vendor CLI a provider runs.
// Only kinds the `llm-mcp-hub` worker can run belong here: a kind the API server accepts but the
// worker cannot start ends in crash-looping pods. OpenAI's Codex CLI is planned and is added when
// the binary runs it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Anthropic's Claude Code (`claude`), logged in with `CLAUDE_CODE_OAUTH_TOKEN`.
    Claude,
    /// Google's Gemini CLI (`gemini`), logged in with `~/.gemini/oauth_creds.json`.
    Gemini,
}

impl ProviderKind {
    /// The lowercase name used on the command line and in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claude => "claude",
            Self::Gemini => "gemini",
        }
    }

    /// The default key of an account's Secret for this kind.
    pub fn default_secret_key(self) -> &'static str {
        match self {
            Self::Claude => "token",
            Self::Gemini => "oauth_creds.json",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Models a provider serves.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = Rule::new("!has(self.default) || !has(self.allowed) || size(self.allowed) == 0 || self.default in self.allowed")
        .message("models.default must be one of models.allowed")
)]
#[serde(rename_all = "camelCase")]
pub struct ModelsSpec {
    /// Models clients may request (CLI model names or aliases, e.g. `sonnet`, `gemini-2.5-pro`).
    /// Empty: any model the CLI accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(
            length(min = 1, max = 128),
            regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
        )
    )]
    pub allowed: Vec<String>,
    /// Model used when a request names only the provider. Empty: the CLI's own default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
    )]
    pub default: Option<String>,
}

/// Subscription credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSpec {
    /// One entry per subscription account; names are unique.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(min = 1, max = 16))]
    pub accounts: Vec<AccountSpec>,
}

/// One subscription account and the Secret holding its OAuth login.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountSpec {
    /// Account name: a DNS label of at most 20 characters, used in the worker Deployment's name.
    #[schemars(
        length(min = 1, max = 20),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Secret with the account's login. claude: key (default `token`) holds the token printed by
    /// `claude setup-token`, passed as `CLAUDE_CODE_OAUTH_TOKEN`. gemini: key (default
    /// `oauth_creds.json`) holds `~/.gemini/oauth_creds.json`; an optional `googleCloudProject`
    /// key names the Google Cloud project a Workspace account needs (`GOOGLE_CLOUD_PROJECT`); an
    /// optional `settings.json` key is copied to `~/.gemini/settings.json` (the worker selects and
    /// enforces the Google login whatever it says).
    pub secret_ref: SecretKeyRef,
}

/// Time limits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutsSpec {
    /// Longest time one request may take, in seconds (`LLM_MCP_HUB_REQUEST_TIMEOUT_SECS`).
    #[serde(default = "default_request_secs")]
    #[schemars(range(min = 1, max = 3600))]
    pub request_secs: i32,
}

impl Default for TimeoutsSpec {
    fn default() -> Self {
        Self {
            request_secs: default_request_secs(),
        }
    }
}

fn default_request_secs() -> i32 {
    300
}

/// Observed state of an LLMProvider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LLMProviderStatus {
    /// Conditions: Ready, Progressing, Degraded, and Authenticated (reported by the workers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Desired worker pods over all accounts.
    #[serde(default)]
    pub replicas: i32,
    /// Ready worker pods over all accounts.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Name of the Service the routers discover this provider's workers through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Per-account state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub accounts: Vec<AccountStatus>,
    /// When every account is usage-limited: the earliest time one becomes usable again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_limited_until: Option<Time>,
}

/// Observed state of one account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// Account name (from `spec.credentials.accounts`).
    pub name: String,
    /// Worker Deployment serving the account.
    #[serde(default)]
    pub deployment: String,
    /// Ready worker pods of the account.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The account is usage-limited until this time (reported by the workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_limited_until: Option<Time>,
}

impl LLMProviderSpec {
    /// The Secret key of an account, with the kind's default applied.
    pub fn secret_key<'a>(&self, account: &'a AccountSpec) -> &'a str {
        account
            .secret_ref
            .key
            .as_deref()
            .unwrap_or(self.kind.default_secret_key())
    }
}
