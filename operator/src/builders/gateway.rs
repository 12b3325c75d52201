//! Objects of a HubGateway: router Deployment, Service, ConfigMap, ServiceAccount + Role +
//! RoleBinding, optional Ingress, and the session store (managed Redis StatefulSet or an external URL).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    ClientIPConfig, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, ExecAction,
    KeyToPath, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, Secret, SecretProjection, SecretVolumeSource, Service, ServiceAccount,
    ServicePort, ServiceSpec, SessionAffinityConfig, Volume, VolumeMount, VolumeProjection,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyEgressRule,
    NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, ServiceBackendPort,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use llm_mcp_hub_crds::{HubGateway, SessionStoreMode, labels};

use super::worker::{WORKER_TOKEN_KEY, worker_token_secret_name};
use super::{
    BuildConfig, HUB_UID, REDIS_UID, admit_only, base_labels, container_security, dns_egress,
    empty_dir, env, hash_parts, http_container_port, http_probe, http_service_port, meta,
    pod_security, pull_secrets, resources_or, scheduled, secret_env, surge_rollout,
};

/// Port the routers listen on.
pub const ROUTER_PORT: i32 = 8080;
/// Port of Redis.
pub const REDIS_PORT: i32 = 6379;
/// Directory of the router's configuration.
pub const CONFIG_DIR: &str = "/etc/llm-mcp-hub";
/// Directory the API keys Secret is mounted at.
pub const KEYS_DIR: &str = "/etc/llm-mcp-hub/keys";
/// Directory of the served providers' worker tokens: one file per provider, named after it.
pub const WORKER_TOKENS_DIR: &str = "/etc/llm-mcp-hub/worker-tokens";

/// What a HubGateway becomes.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayObjects {
    /// Identity of the router pods.
    pub service_account: ServiceAccount,
    /// Read-only access to what the router discovers (EndpointSlices, LLMProviders).
    pub role: Role,
    /// Binds the Role to the ServiceAccount.
    pub role_binding: RoleBinding,
    /// The router's `config.toml`.
    pub config_map: ConfigMap,
    /// Router pods.
    pub deployment: Deployment,
    /// Service in front of the routers.
    pub service: Service,
    /// What the routers may reach: DNS, the API server, the namespace's workers and Redis.
    pub network_policy: NetworkPolicy,
    /// Optional Ingress.
    pub ingress: Option<Ingress>,
    /// Managed Redis, when the session store is `Managed`.
    pub redis: Option<RedisObjects>,
}

/// The managed Redis of a gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisObjects {
    /// Generated password, URL and `redis.conf`.
    pub secret: Secret,
    /// Headless Service of the StatefulSet.
    pub service: Service,
    /// The Redis StatefulSet (one replica, append-only file on a PVC).
    pub stateful_set: StatefulSet,
    /// Lets only this gateway's routers reach Redis.
    pub network_policy: NetworkPolicy,
}

/// What the reconciler read before building.
#[derive(Clone, Debug, Default)]
pub struct GatewayInputs {
    /// Hash of the Secrets the routers read (API keys, external Redis URL).
    pub secret_hash: String,
    /// Password of the managed Redis (kept from the existing Secret, or freshly generated).
    pub redis_password: Option<String>,
    /// Names of the LLMProviders the gateway serves (those its providerSelector matches); their
    /// worker tokens are projected into the router pods.
    pub served_providers: Vec<String>,
}

/// Name shared by the router Deployment, Service, ConfigMap, ServiceAccount, Role and RoleBinding.
pub fn router_name(gw: &str) -> String {
    format!("{gw}-router")
}

/// Name of the Redis StatefulSet, its headless Service and NetworkPolicy.
pub fn redis_name(gw: &str) -> String {
    format!("{gw}-redis")
}

/// Name of the generated Redis auth Secret.
pub fn redis_secret_name(gw: &str) -> String {
    format!("{gw}-redis-auth")
}

/// The URL clients use: the Ingress host when there is one, else the Service's cluster DNS name.
pub fn url(g: &HubGateway) -> String {
    match &g.spec.ingress {
        Some(ing) => {
            let scheme = if ing.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", ing.host)
        }
        None => {
            let port = g.spec.service.port;
            let host = format!(
                "{}.{}.svc",
                router_name(&g.name_any()),
                g.namespace().unwrap_or_default()
            );
            if port == 80 {
                format!("http://{host}")
            } else {
                format!("http://{host}:{port}")
            }
        }
    }
}

/// A label selector in the string form of `kubectl -l`; empty selects everything.
pub fn selector_string(sel: Option<&LabelSelector>) -> String {
    let Some(sel) = sel else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        match e.operator.as_str() {
            "In" => parts.push(format!("{} in ({values})", e.key)),
            "NotIn" => parts.push(format!("{} notin ({values})", e.key)),
            "Exists" => parts.push(e.key.clone()),
            "DoesNotExist" => parts.push(format!("!{}", e.key)),
            other => parts.push(format!("{} {other} ({values})", e.key)),
        }
    }
    parts.join(",")
}

fn toml_string(s: &str) -> String {
    // A JSON string literal is a valid TOML basic string for everything serde_json escapes.
    serde_json::to_string(s).expect("strings serialize")
}

/// The router's `config.toml`.
pub fn router_config(g: &HubGateway) -> String {
    format!(
        "# Generated by llm-mcp-hub-operator from HubGateway {name}; edits are overwritten.\n\
         session_ttl_secs = {ttl}\n\n\
         [discovery]\nworker_token_dir = {dir}\n\n\
         [discovery.kubernetes]\nnamespace = {ns}\nlabel_selector = {sel}\n",
        name = g.name_any(),
        ttl = g.spec.session_ttl_secs,
        dir = toml_string(WORKER_TOKENS_DIR),
        ns = toml_string(&g.namespace().unwrap_or_default()),
        sel = toml_string(&selector_string(g.spec.provider_selector.as_ref())),
    )
}

/// The routers' view of the served providers' worker tokens: file `<p>` holds the token of
/// LLMProvider `<p>`. Each source is optional, so a router starts before a new provider's Secret
/// exists, and the kubelet updates the files in place when a Secret appears or changes. Sorted by
/// name, so the pod template only changes when the set of providers does.
pub fn worker_tokens_volume(served_providers: &[String]) -> Volume {
    let names: BTreeSet<&str> = served_providers.iter().map(String::as_str).collect();
    let sources = names
        .into_iter()
        .map(|p| VolumeProjection {
            secret: Some(SecretProjection {
                name: worker_token_secret_name(p),
                items: Some(vec![KeyToPath {
                    key: WORKER_TOKEN_KEY.to_owned(),
                    path: p.to_owned(),
                    ..KeyToPath::default()
                }]),
                optional: Some(true),
            }),
            ..VolumeProjection::default()
        })
        .collect();
    Volume {
        name: "worker-tokens".to_owned(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o440),
            sources: Some(sources),
        }),
        ..Volume::default()
    }
}

fn gateway_labels(g: &HubGateway, component: &str) -> BTreeMap<String, String> {
    let mut l = base_labels(&g.name_any(), component);
    l.insert(labels::GATEWAY.to_owned(), g.name_any());
    l
}

fn gateway_selector(g: &HubGateway, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::GATEWAY.to_owned(), g.name_any()),
        (labels::COMPONENT.to_owned(), component.to_owned()),
    ])
}

/// MCP sessions (`Mcp-Session-Id`, SSE's `sessionId`) live in the router that opened them, so
/// a client must keep reaching that router: a cookie at the Ingress (ingress-nginx's and
/// Traefik's, for clients that keep cookies, as the MCP SDKs' HTTP clients do), and the
/// client's address at the Service (in-cluster clients). The cookie's name.
pub const STICKY_COOKIE: &str = "llm-mcp-hub-router";
/// How long the Service keeps a client on its router after its last packet.
pub const STICKY_SECS: i32 = 3600;

/// Streaming-friendly, router-sticky Ingress annotations (ingress-nginx); the spec's own
/// annotations win.
pub fn ingress_annotations(user: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([
        (
            "nginx.ingress.kubernetes.io/affinity".to_owned(),
            "cookie".to_owned(),
        ),
        (
            "nginx.ingress.kubernetes.io/affinity-mode".to_owned(),
            "persistent".to_owned(),
        ),
        (
            "nginx.ingress.kubernetes.io/session-cookie-name".to_owned(),
            STICKY_COOKIE.to_owned(),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-buffering".to_owned(),
            "off".to_owned(),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-request-buffering".to_owned(),
            "off".to_owned(),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-read-timeout".to_owned(),
            "3600".to_owned(),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-send-timeout".to_owned(),
            "3600".to_owned(),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-body-size".to_owned(),
            "16m".to_owned(),
        ),
    ]);
    a.extend(user.clone());
    a
}

/// Builds all objects of a gateway.
pub fn build(g: &HubGateway, cfg: &BuildConfig, inputs: &GatewayInputs) -> GatewayObjects {
    let name = g.name_any();
    let ns = g.namespace().unwrap_or_default();
    let spec = &g.spec;
    let rname = router_name(&name);
    let router_labels = gateway_labels(g, labels::COMPONENT_ROUTER);

    let service_account = ServiceAccount {
        metadata: meta(g, &rname, router_labels.clone()),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };
    let role = Role {
        metadata: meta(g, &rname, router_labels.clone()),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec!["discovery.k8s.io".to_owned()]),
                resources: Some(vec!["endpointslices".to_owned()]),
                verbs: vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
                ..PolicyRule::default()
            },
            PolicyRule {
                api_groups: Some(vec![llm_mcp_hub_crds::GROUP.to_owned()]),
                resources: Some(vec!["llmproviders".to_owned()]),
                verbs: vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
                ..PolicyRule::default()
            },
        ]),
    };
    let role_binding = RoleBinding {
        metadata: meta(g, &rname, router_labels.clone()),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: rname.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: rname.clone(),
            namespace: Some(ns.clone()),
            ..Subject::default()
        }]),
    };
    let config = router_config(g);
    let config_map = ConfigMap {
        metadata: meta(g, &rname, router_labels.clone()),
        data: Some(BTreeMap::from([("config.toml".to_owned(), config.clone())])),
        ..ConfigMap::default()
    };

    let (redis_secret, redis_key) = match spec.session_store.mode {
        SessionStoreMode::Managed => (redis_secret_name(&name), "url".to_owned()),
        SessionStoreMode::External => {
            let ext = spec.session_store.external.clone().unwrap_or_default();
            let key = ext.url_key().to_owned();
            (ext.url_secret_ref.name, key)
        }
    };
    let keys_key = spec.api_keys_key().to_owned();
    let router_image = spec.image.clone().unwrap_or_else(|| cfg.image.clone());
    let router = Container {
        name: "router".to_owned(),
        image: Some(router_image),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        command: Some(vec!["llm-mcp-hub".to_owned()]),
        args: Some(vec![
            "router".to_owned(),
            "--listen".to_owned(),
            format!("0.0.0.0:{ROUTER_PORT}"),
            "--config".to_owned(),
            format!("{CONFIG_DIR}/config.toml"),
        ]),
        ports: Some(vec![http_container_port(ROUTER_PORT)]),
        env: Some(vec![
            env("HOME", "/tmp"),
            env("TMPDIR", "/tmp"),
            env("LLM_MCP_HUB_LOG_FORMAT", "json"),
            env(
                "LLM_MCP_HUB_API_KEYS_FILE",
                format!("{KEYS_DIR}/{keys_key}"),
            ),
            secret_env("LLM_MCP_HUB_REDIS_URL", &redis_secret, &redis_key),
        ]),
        resources: Some(resources_or(
            spec.resources.as_ref(),
            "100m",
            "128Mi",
            "512Mi",
        )),
        security_context: Some(container_security()),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 2)),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "config".to_owned(),
                mount_path: format!("{CONFIG_DIR}/config.toml"),
                sub_path: Some("config.toml".to_owned()),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "api-keys".to_owned(),
                mount_path: KEYS_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "worker-tokens".to_owned(),
                mount_path: WORKER_TOKENS_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };
    let config_hash = hash_parts([("config.toml", config.as_bytes())]);
    let deployment = Deployment {
        metadata: meta(g, &rname, router_labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            revision_history_limit: Some(3),
            selector: LabelSelector {
                match_labels: Some(gateway_selector(g, labels::COMPONENT_ROUTER)),
                ..LabelSelector::default()
            },
            strategy: Some(surge_rollout()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(router_labels.clone()),
                    annotations: Some(BTreeMap::from([
                        (labels::ANNOTATION_CONFIG_HASH.to_owned(), config_hash),
                        (
                            labels::ANNOTATION_SECRET_HASH.to_owned(),
                            inputs.secret_hash.clone(),
                        ),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(scheduled(
                    PodSpec {
                        service_account_name: Some(rname.clone()),
                        // The router talks to the API server (discovery), so it needs its token.
                        automount_service_account_token: Some(true),
                        enable_service_links: Some(false),
                        security_context: Some(pod_security(HUB_UID)),
                        termination_grace_period_seconds: Some(60),
                        containers: vec![router],
                        volumes: Some(vec![
                            empty_dir("tmp", "256Mi"),
                            Volume {
                                name: "config".to_owned(),
                                config_map: Some(ConfigMapVolumeSource {
                                    name: rname.clone(),
                                    default_mode: Some(0o444),
                                    ..ConfigMapVolumeSource::default()
                                }),
                                ..Volume::default()
                            },
                            Volume {
                                name: "api-keys".to_owned(),
                                secret: Some(SecretVolumeSource {
                                    secret_name: Some(spec.api_keys_secret_ref.name.clone()),
                                    default_mode: Some(0o440),
                                    optional: Some(false),
                                    ..SecretVolumeSource::default()
                                }),
                                ..Volume::default()
                            },
                            worker_tokens_volume(&inputs.served_providers),
                        ]),
                        image_pull_secrets: pull_secrets(&spec.image_pull_secrets),
                        ..PodSpec::default()
                    },
                    &spec.scheduling,
                )),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };

    let mut svc_meta = meta(g, &rname, router_labels.clone());
    // Traefik reads its sticky cookie from the Service (see STICKY_COOKIE).
    let mut svc_annotations = BTreeMap::from([
        (
            "traefik.ingress.kubernetes.io/service.sticky.cookie".to_owned(),
            "true".to_owned(),
        ),
        (
            "traefik.ingress.kubernetes.io/service.sticky.cookie.name".to_owned(),
            STICKY_COOKIE.to_owned(),
        ),
    ]);
    svc_annotations.extend(spec.service.annotations.clone());
    svc_meta.annotations = Some(svc_annotations);
    let service = Service {
        metadata: svc_meta,
        spec: Some(ServiceSpec {
            type_: Some(spec.service.type_.as_str().to_owned()),
            selector: Some(gateway_selector(g, labels::COMPONENT_ROUTER)),
            ports: Some(vec![http_service_port(spec.service.port)]),
            session_affinity: Some("ClientIP".to_owned()),
            session_affinity_config: Some(SessionAffinityConfig {
                client_ip: Some(ClientIPConfig {
                    timeout_seconds: Some(STICKY_SECS),
                }),
            }),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };

    let ingress = spec.ingress.as_ref().map(|ing| {
        let mut m = meta(g, &name, router_labels.clone());
        m.annotations = Some(ingress_annotations(&ing.annotations));
        Ingress {
            metadata: m,
            spec: Some(IngressSpec {
                ingress_class_name: ing.class_name.clone(),
                tls: ing.tls.as_ref().map(|t| {
                    vec![IngressTLS {
                        hosts: Some(vec![ing.host.clone()]),
                        secret_name: Some(t.secret_name.clone()),
                    }]
                }),
                rules: Some(vec![IngressRule {
                    host: Some(ing.host.clone()),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some("/".to_owned()),
                            path_type: "Prefix".to_owned(),
                            backend: IngressBackend {
                                service: Some(IngressServiceBackend {
                                    name: rname.clone(),
                                    port: Some(ServiceBackendPort {
                                        name: Some("http".to_owned()),
                                        ..ServiceBackendPort::default()
                                    }),
                                }),
                                ..IngressBackend::default()
                            },
                        }],
                    }),
                }]),
                ..IngressSpec::default()
            }),
            ..Ingress::default()
        }
    });

    let redis = match spec.session_store.mode {
        SessionStoreMode::Managed => Some(redis_objects(
            g,
            inputs.redis_password.as_deref().unwrap_or_default(),
        )),
        SessionStoreMode::External => None,
    };

    let network_policy = router_egress(g, meta(g, &rname, router_labels.clone()));
    GatewayObjects {
        service_account,
        role,
        role_binding,
        config_map,
        deployment,
        service,
        network_policy,
        ingress,
        redis,
    }
}

/// The routers' egress (their ingress is left open: clients come through the Service or an
/// Ingress controller from anywhere): DNS; the API server (443, and 6443 where a network plugin
/// sees the endpoint port), which they watch for LLMProviders and EndpointSlices; the workers
/// of the namespace on their port; the managed Redis, or an external one on 6379/6380 (one
/// elsewhere needs a NetworkPolicy of its own: policies add up).
fn router_egress(g: &HubGateway, metadata: ObjectMeta) -> NetworkPolicy {
    let tcp = |port: i32| NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    };
    let pods = |labels: BTreeMap<String, String>| {
        Some(vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }])
    };
    let redis = match g.spec.session_store.mode {
        SessionStoreMode::Managed => NetworkPolicyEgressRule {
            to: pods(gateway_selector(g, labels::COMPONENT_REDIS)),
            ports: Some(vec![tcp(REDIS_PORT)]),
        },
        SessionStoreMode::External => NetworkPolicyEgressRule {
            to: None,
            ports: Some(vec![tcp(REDIS_PORT), tcp(REDIS_PORT + 1)]),
        },
    };
    NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(gateway_selector(g, labels::COMPONENT_ROUTER)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Egress".to_owned()]),
            egress: Some(vec![
                dns_egress(),
                NetworkPolicyEgressRule {
                    to: None,
                    ports: Some(vec![tcp(443), tcp(6443)]),
                },
                NetworkPolicyEgressRule {
                    to: pods(BTreeMap::from([(
                        labels::COMPONENT.to_owned(),
                        labels::COMPONENT_WORKER.to_owned(),
                    )])),
                    ports: Some(vec![tcp(super::worker::WORKER_PORT)]),
                },
                redis,
            ]),
            ingress: None,
        }),
    }
}

/// `redis.conf` of the managed Redis.
pub fn redis_conf(password: &str) -> String {
    format!(
        "port {REDIS_PORT}\nbind * -::*\nprotected-mode no\ndir /data\nappendonly yes\n\
         appendfsync everysec\nsave \"\"\nmaxmemory-policy noeviction\nrequirepass {password}\n"
    )
}

fn redis_objects(g: &HubGateway, password: &str) -> RedisObjects {
    let name = g.name_any();
    let ns = g.namespace().unwrap_or_default();
    let rname = redis_name(&name);
    let sname = redis_secret_name(&name);
    let labels_ = gateway_labels(g, labels::COMPONENT_REDIS);
    let managed = &g.spec.session_store.managed;
    let url = format!("redis://:{password}@{rname}.{ns}.svc:{REDIS_PORT}/0");
    let secret = Secret {
        metadata: meta(g, &sname, labels_.clone()),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (
                "password".to_owned(),
                ByteString(password.as_bytes().to_vec()),
            ),
            ("url".to_owned(), ByteString(url.into_bytes())),
            (
                "redis.conf".to_owned(),
                ByteString(redis_conf(password).into_bytes()),
            ),
        ])),
        ..Secret::default()
    };
    let service = Service {
        metadata: meta(g, &rname, labels_.clone()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(gateway_selector(g, labels::COMPONENT_REDIS)),
            ports: Some(vec![ServicePort {
                name: Some("redis".to_owned()),
                port: REDIS_PORT,
                target_port: Some(IntOrString::String("redis".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let ping = Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                "sh".to_owned(),
                "-c".to_owned(),
                "redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG".to_owned(),
            ]),
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    let container = Container {
        name: "redis".to_owned(),
        image: Some(managed.image.clone()),
        command: Some(vec![
            "redis-server".to_owned(),
            "/etc/redis/redis.conf".to_owned(),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("redis".to_owned()),
            container_port: REDIS_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        // redis-cli reads the password from REDISCLI_AUTH, so it never shows in a command line.
        env: Some(vec![secret_env("REDISCLI_AUTH", &sname, "password")]),
        resources: Some(resources_or(
            managed.resources.as_ref(),
            "50m",
            "64Mi",
            "256Mi",
        )),
        security_context: Some(container_security()),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(10),
            ..ping.clone()
        }),
        readiness_probe: Some(Probe {
            period_seconds: Some(5),
            ..ping
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".to_owned(),
                mount_path: "/data".to_owned(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "config".to_owned(),
                mount_path: "/etc/redis".to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };
    let conf_hash = hash_parts([("redis.conf", redis_conf(password).as_bytes())]);
    let stateful_set = StatefulSet {
        metadata: meta(g, &rname, labels_.clone()),
        spec: Some(StatefulSetSpec {
            service_name: Some(rname.clone()),
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(gateway_selector(g, labels::COMPONENT_REDIS)),
                ..LabelSelector::default()
            },
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Delete".to_owned()),
                    when_scaled: Some("Retain".to_owned()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels_.clone()),
                    annotations: Some(BTreeMap::from([(
                        labels::ANNOTATION_SECRET_HASH.to_owned(),
                        conf_hash,
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(pod_security(REDIS_UID)),
                    termination_grace_period_seconds: Some(30),
                    containers: vec![container],
                    volumes: Some(vec![
                        Volume {
                            name: "config".to_owned(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(sname.clone()),
                                default_mode: Some(0o440),
                                items: Some(vec![KeyToPath {
                                    key: "redis.conf".to_owned(),
                                    path: "redis.conf".to_owned(),
                                    ..KeyToPath::default()
                                }]),
                                ..SecretVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        empty_dir("tmp", "64Mi"),
                    ]),
                    image_pull_secrets: pull_secrets(&g.spec.image_pull_secrets),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".to_owned()),
                    labels: Some(labels_.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                    storage_class_name: managed.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_owned(),
                            managed.storage.clone(),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    };
    let network_policy = admit_only(
        meta(g, &rname, labels_),
        gateway_selector(g, labels::COMPONENT_REDIS),
        gateway_selector(g, labels::COMPONENT_ROUTER),
        REDIS_PORT,
        // Redis only answers: no egress at all.
        Vec::new(),
    );
    RedisObjects {
        secret,
        service,
        stateful_set,
        network_policy,
    }
}

/// The SA token is mounted by the pod spec only (explicit `automountServiceAccountToken: true`),
/// the ServiceAccount itself does not auto-mount.
#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn selector_strings() {
        assert_eq!(selector_string(None), "");
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("tier".to_owned(), "gold".to_owned())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "team".to_owned(),
                    operator: "In".to_owned(),
                    values: Some(vec!["a".to_owned(), "b".to_owned()]),
                },
                LabelSelectorRequirement {
                    key: "legacy".to_owned(),
                    operator: "DoesNotExist".to_owned(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            selector_string(Some(&sel)),
            "tier=gold,team in (a,b),!legacy"
        );
    }
}
