//! Pure functions from a custom resource (plus what the reconciler read, e.g. Secret hashes) to the
//! typed Kubernetes objects the operator applies. No I/O here, so every object is unit-tested and
//! snapshotted.

pub mod gateway;
pub mod worker;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    LocalObjectReference, PodSecurityContext, PodSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, ServicePort, Volume,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use llm_mcp_hub_crds::{SchedulingSpec, labels};
use sha2::{Digest, Sha256};

/// The field manager of every server-side apply of the operator.
pub const FIELD_MANAGER: &str = "llm-mcp-hub-operator";

/// Default image of workers and routers (`ghcr.io/llm-mcp-hub/llm-mcp-hub:<version>`).
pub fn default_image() -> String {
    format!(
        "ghcr.io/llm-mcp-hub/llm-mcp-hub:{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Settings of the operator that shape what it builds.
#[derive(Clone, Debug)]
pub struct BuildConfig {
    /// Image used when a resource does not name one.
    pub image: String,
    /// Registries (or registry paths) a resource's own image may come from; empty: any.
    pub allowed_image_registries: Vec<String>,
    /// The operator's own namespace: its pods may ask the workers for their status (their
    /// NetworkPolicy admits them). None: the operator's pods are looked for in each worker's
    /// namespace.
    pub operator_namespace: Option<String>,
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self {
            image: default_image(),
            allowed_image_registries: Vec::new(),
            operator_namespace: None,
        }
    }
}

/// The operator's pods (the chart's labels), in `namespace` when given.
pub fn operator_peer(namespace: Option<&str>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([
                (labels::NAME.to_owned(), labels::NAME_VALUE.to_owned()),
                (labels::COMPONENT.to_owned(), "operator".to_owned()),
            ])),
            ..LabelSelector::default()
        }),
        namespace_selector: namespace.map(|ns| LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                ns.to_owned(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

/// The user and group the hub's containers run as.
pub const HUB_UID: i64 = 10001;
/// The user and group of the Redis image (`redis:*-alpine`).
pub const REDIS_UID: i64 = 999;

/// The controller owner reference of a custom resource, set on everything built from it, so
/// that deleting the resource deletes them (garbage collection).
pub fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    let meta = owner.meta();
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Object metadata: name, namespace, labels, owner.
pub fn meta<K: Resource<DynamicType = ()>>(
    owner: &K,
    name: impl Into<String>,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: owner.meta().namespace.clone(),
        labels: Some(labels),
        owner_references: Some(vec![owner_ref(owner)]),
        ..ObjectMeta::default()
    }
}

/// Labels every managed object carries.
pub fn base_labels(instance: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), labels::NAME_VALUE.to_owned()),
        (labels::INSTANCE.to_owned(), instance.to_owned()),
        (labels::COMPONENT.to_owned(), component.to_owned()),
        (
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        ),
    ])
}

/// Pod security settings shared by every pod the operator builds.
pub fn pod_security(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// Container security settings: non-root, read-only root filesystem, no capabilities.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// An HTTP probe on the container port named `http`.
pub fn http_probe(path: &str, period: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// An emptyDir volume with a size limit.
pub fn empty_dir(name: &str, size: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity(size.to_owned())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// Resource requirements: the spec's, or the given defaults.
pub fn resources_or(
    spec: Option<&ResourceRequirements>,
    cpu_request: &str,
    memory_request: &str,
    memory_limit: &str,
) -> ResourceRequirements {
    spec.cloned().unwrap_or_else(|| ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu_request.to_owned())),
            ("memory".to_owned(), Quantity(memory_request.to_owned())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity(memory_limit.to_owned()),
        )])),
        ..ResourceRequirements::default()
    })
}

/// An environment variable with a literal value.
pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// An environment variable read from a Secret key; the pod does not start without it.
pub fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    secret_env_optional(name, secret, key, false)
}

/// An environment variable from a Secret key that may be absent (`optional` true: then unset).
pub fn secret_env_optional(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(optional),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The container port named `http`, which the probes and the Service target.
pub fn http_container_port(port: i32) -> ContainerPort {
    ContainerPort {
        name: Some("http".to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

/// A Service port forwarding to the container port named `http`.
pub fn http_service_port(port: i32) -> ServicePort {
    ServicePort {
        name: Some("http".to_owned()),
        port,
        target_port: Some(IntOrString::String("http".to_owned())),
        protocol: Some("TCP".to_owned()),
        app_protocol: Some("http".to_owned()),
        ..ServicePort::default()
    }
}

/// Rolling update that starts a new pod before stopping an old one, so capacity never drops.
pub fn surge_rollout() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".to_owned()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(1)),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    }
}

/// The image pull secrets of a pod, left out of the applied object rather than sent empty.
pub fn pull_secrets(secrets: &[LocalObjectReference]) -> Option<Vec<LocalObjectReference>> {
    (!secrets.is_empty()).then(|| secrets.to_vec())
}

/// A pod spec with the resource's scheduling settings; unset ones are left out of the applied
/// object rather than sent empty.
pub fn scheduled(pod: PodSpec, sched: &SchedulingSpec) -> PodSpec {
    PodSpec {
        node_selector: (!sched.node_selector.is_empty()).then(|| sched.node_selector.clone()),
        tolerations: (!sched.tolerations.is_empty()).then(|| sched.tolerations.clone()),
        affinity: sched.affinity.clone(),
        topology_spread_constraints: (!sched.topology_spread_constraints.is_empty())
            .then(|| sched.topology_spread_constraints.clone()),
        priority_class_name: sched.priority_class_name.clone(),
        ..pod
    }
}

/// Egress to DNS (UDP and TCP 53), anywhere: cluster DNS lives outside the namespace.
pub fn dns_egress() -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: None,
        ports: Some(
            ["UDP", "TCP"]
                .into_iter()
                .map(|protocol| NetworkPolicyPort {
                    port: Some(IntOrString::Int(53)),
                    protocol: Some(protocol.to_owned()),
                    ..NetworkPolicyPort::default()
                })
                .collect(),
        ),
    }
}

/// Egress to HTTPS (TCP 443), anywhere: the vendors' APIs and login endpoints have no fixed
/// addresses.
pub fn https_egress() -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: None,
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(443)),
            protocol: Some("TCP".to_owned()),
            ..NetworkPolicyPort::default()
        }]),
    }
}

/// A NetworkPolicy that lets only the `from` pods of the same namespace reach `port` of `pods`,
/// and lets `pods` reach only what `egress` allows (nothing when it is empty).
pub fn admit_only(
    metadata: ObjectMeta,
    pods: BTreeMap<String, String>,
    from: BTreeMap<String, String>,
    port: i32,
    egress: Vec<NetworkPolicyEgressRule>,
) -> NetworkPolicy {
    let selector = |labels| LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    };
    NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(pods)),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            // No rules is left out, not sent empty: the API server drops an empty list, and
            // every apply would then change the object. Egress in policyTypes alone denies all.
            egress: (!egress.is_empty()).then_some(egress),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(selector(from)),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(port)),
                    protocol: Some("TCP".to_owned()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
        }),
    }
}

/// Hex SHA-256 of labelled parts, order-sensitive; used for rollout annotations.
pub fn hash_parts<'a>(parts: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut h = Sha256::new();
    for (label, bytes) in parts {
        h.update((label.len() as u64).to_be_bytes());
        h.update(label.as_bytes());
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    let digest = h.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}
