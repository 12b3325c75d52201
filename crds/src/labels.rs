//! Label keys and values put on every object the operator creates.
//!
//! The router relies on them to discover workers: it lists the EndpointSlices of worker Services
//! selected by [`MANAGED_BY`]`=`[`MANAGED_BY_VALUE`] and [`PROVIDER`]`=<LLMProvider name>`.

/// Standard label naming the tool that manages an object.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`] on every object the operator creates.
pub const MANAGED_BY_VALUE: &str = "llm-mcp-hub-operator";
/// Standard label naming the application.
pub const NAME: &str = "app.kubernetes.io/name";
/// Value of [`NAME`] on every object the operator creates.
pub const NAME_VALUE: &str = "llm-mcp-hub";
/// Standard label naming the instance (the name of the owning custom resource).
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// Standard label naming the component: [`COMPONENT_WORKER`], [`COMPONENT_ROUTER`] or [`COMPONENT_REDIS`].
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// Component value of worker pods and their Service.
pub const COMPONENT_WORKER: &str = "worker";
/// Component value of router pods and their Service.
pub const COMPONENT_ROUTER: &str = "router";
/// Component value of the managed Redis.
pub const COMPONENT_REDIS: &str = "redis";
/// Name of the LLMProvider a worker object belongs to.
pub const PROVIDER: &str = "llm-mcp-hub.dev/provider";
/// Provider kind (claude, gemini) of a worker object.
pub const PROVIDER_KIND: &str = "llm-mcp-hub.dev/provider-kind";
/// Account (of the LLMProvider's credentials) a worker Deployment serves.
pub const ACCOUNT: &str = "llm-mcp-hub.dev/account";
/// Name of the HubGateway a router or Redis object belongs to.
pub const GATEWAY: &str = "llm-mcp-hub.dev/gateway";

/// Pod-template annotation holding a hash of the referenced Secrets' data: a change rolls the pods.
pub const ANNOTATION_SECRET_HASH: &str = "llm-mcp-hub.dev/secret-hash";
/// Pod-template annotation holding a hash of the router configuration.
pub const ANNOTATION_CONFIG_HASH: &str = "llm-mcp-hub.dev/config-hash";
