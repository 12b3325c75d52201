//! The Kubernetes operator of LLM MCP Hub: reconciles `LLMProvider` and `HubGateway` resources
//! into worker and router Deployments, Services, RBAC, a session store and NetworkPolicies.

pub mod builders;
pub mod conditions;
pub mod controller;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod validate;
pub mod workers;
