//! Pure functions from a custom resource (plus what the reconciler read, e.g. Secret hashes) to the
//! typed Kubernetes objects the operator applies. No I/O here, so every object is unit-tested and
//! snapshotted.

pub mod gateway;
pub mod worker;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, EmptyDirVolumeSource, HTTPGetAction, PodSecurityContext, Probe,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use llm_mcp_hub_crds::labels;
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
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self {
            image: default_image(),
        }
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
