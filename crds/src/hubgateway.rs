//! `HubGateway`: one entry point of the hub (router pods, Service, optional Ingress, session store).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ImagePullPolicy, SchedulingSpec, SecretKeyRef};

/// Desired state of a HubGateway: router pods serving the OpenAI-compatible API and MCP in front of
/// the LLMProviders it selects.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "llm-mcp-hub.dev",
    version = "v1alpha1",
    kind = "HubGateway",
    plural = "hubgateways",
    singular = "hubgateway",
    shortname = "hgw",
    category = "llm-mcp-hub",
    namespaced,
    status = "HubGatewayStatus",
    derive = "PartialEq",
    doc = "A HubGateway is one entry point of the hub: router pods serving the OpenAI-compatible REST API \
           and MCP, a Service, an optional Ingress and a session store, in front of the LLMProviders of \
           its namespace that its selector matches.",
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url", description = "Where clients reach the gateway"),
    printcolumn(name = "Providers", type_ = "string", json_path = ".status.servedProviders", description = "LLMProviders served"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Ready condition"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Reason of the Ready condition", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40")
        .message("name must be a DNS label of at most 40 characters starting with a letter (it prefixes the gateway objects' names)")
        .reason(Reason::FieldValueInvalid)
)]
#[serde(rename_all = "camelCase")]
pub struct HubGatewaySpec {
    /// Router pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 50))]
    pub replicas: i32,

    /// Secret holding the hub API keys file (key default `keys`), mounted at
    /// `/etc/llm-mcp-hub/keys/`. These are the hub's own client keys, never a vendor API key.
    pub api_keys_secret_ref: SecretKeyRef,

    /// LLMProviders of this namespace the gateway serves, by label. Omitted: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_selector: Option<LabelSelector>,

    /// How long an idle session is kept, in seconds (default one hour).
    #[serde(default = "default_session_ttl")]
    #[schemars(range(min = 60, max = 2592000))]
    pub session_ttl_secs: i32,

    /// Where sessions are stored.
    #[serde(default)]
    pub session_store: SessionStoreSpec,

    /// The Service in front of the routers.
    #[serde(default)]
    pub service: ServiceSpec,

    /// An Ingress for the gateway, configured for streaming (no buffering, long timeouts).
    /// Omitted: no Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// CPU and memory of the router container. Defaults: requests 100m CPU / 128Mi, limit 512Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Router image. Defaults to the operator's image setting (`ghcr.io/llm-mcp-hub/llm-mcp-hub:<version>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Pull policy of the router image (default: Kubernetes' default for the tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets used to pull the router and Redis images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Where the router pods may run.
    #[serde(default, skip_serializing_if = "is_default")]
    pub scheduling: SchedulingSpec,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn default_replicas() -> i32 {
    2
}

fn default_session_ttl() -> i32 {
    3600
}

/// Where sessions live.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = Rule::new("self.mode != 'External' || has(self.external)")
        .message("sessionStore.external is required when sessionStore.mode is External")
)]
#[serde(rename_all = "camelCase")]
pub struct SessionStoreSpec {
    /// `Managed`: the operator runs a Redis StatefulSet for this gateway. `External`: use the Redis
    /// URL in `external.urlSecretRef`.
    #[serde(default)]
    pub mode: SessionStoreMode,
    /// Settings of the managed Redis (mode `Managed`).
    #[serde(default)]
    pub managed: ManagedRedisSpec,
    /// Settings of an external Redis (mode `External`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRedisSpec>,
}

/// Session store mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SessionStoreMode {
    /// A Redis StatefulSet managed by the operator.
    #[default]
    Managed,
    /// A Redis the user runs.
    External,
}

/// The managed Redis StatefulSet.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRedisSpec {
    /// Redis image.
    #[serde(default = "default_redis_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Size of the persistent volume holding the append-only file.
    #[serde(default = "default_redis_storage")]
    pub storage: Quantity,
    /// StorageClass of the volume. Omitted: the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// CPU and memory of the Redis container. Defaults: requests 50m CPU / 64Mi, limit 256Mi memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ManagedRedisSpec {
    fn default() -> Self {
        Self {
            image: default_redis_image(),
            storage: default_redis_storage(),
            storage_class_name: None,
            resources: None,
        }
    }
}

fn default_redis_image() -> String {
    "redis:7.4-alpine".to_owned()
}

fn default_redis_storage() -> Quantity {
    Quantity("1Gi".to_owned())
}

/// A Redis the user runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRedisSpec {
    /// Secret key (default `url`) holding the Redis URL, e.g. `rediss://:password@host:6379/0`.
    pub url_secret_ref: SecretKeyRef,
}

/// The Service in front of the routers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Service port (the routers listen on 8080).
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Extra annotations of the Service (e.g. for a cloud load balancer).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            type_: ServiceType::default(),
            port: default_service_port(),
            annotations: BTreeMap::new(),
        }
    }
}

fn default_service_port() -> i32 {
    80
}

/// Kubernetes Service type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Also through a cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The value Kubernetes expects in a Service's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// The Ingress of a gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name clients use.
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
        )
    )]
    pub host: String,
    /// IngressClass. Omitted: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// TLS for the host. Omitted: plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTlsSpec>,
    /// Extra annotations; they override the streaming defaults the operator sets
    /// (ingress-nginx: no proxy buffering, 3600 s read and send timeouts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// TLS of an Ingress.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressTlsSpec {
    /// Secret (type kubernetes.io/tls) holding the certificate and key of the host.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// Observed state of a HubGateway.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HubGatewayStatus {
    /// Conditions: Ready, Progressing, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where clients reach the gateway (the Ingress host, else the Service's cluster DNS name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Names of the LLMProviders the gateway serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub served_providers: Vec<String>,
    /// Desired router pods.
    #[serde(default)]
    pub replicas: i32,
    /// Ready router pods.
    #[serde(default)]
    pub ready_replicas: i32,
}

impl HubGatewaySpec {
    /// Key of the API keys file in its Secret.
    pub fn api_keys_key(&self) -> &str {
        self.api_keys_secret_ref.key.as_deref().unwrap_or("keys")
    }
}

impl ExternalRedisSpec {
    /// Key of the URL in its Secret.
    pub fn url_key(&self) -> &str {
        self.url_secret_ref.key.as_deref().unwrap_or("url")
    }
}
