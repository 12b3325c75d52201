//! Objects of an LLMProvider: one worker Deployment per account, a Service, a PodDisruptionBudget, a
//! NetworkPolicy that lets only routers in, and the Secret with the router→worker credential.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, PodSpec, PodTemplateSpec, Secret, SecretVolumeSource, Service, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use llm_mcp_hub_crds::{AccountSpec, LLMProvider, ProviderKind, labels};

use super::{
    BuildConfig, HUB_UID, admit_only, base_labels, container_security, dns_egress, empty_dir, env,
    hash_parts, http_container_port, http_probe, http_service_port, https_egress, meta,
    operator_peer, pod_security, pull_secrets, resources_or, scheduled, secret_env,
    secret_env_optional, surge_rollout,
};

/// Port the workers listen on.
pub const WORKER_PORT: i32 = 8081;
/// Writable home of the hub's containers.
pub const HOME: &str = "/home/hub";
/// Where an account's Secret is mounted read-only (followed by `/<account>/`).
pub const CREDENTIALS_DIR: &str = "/var/run/llm-mcp-hub/credentials";
/// Key of the worker-token Secret that holds the router→worker credential.
pub const WORKER_TOKEN_KEY: &str = "token";
/// Where a worker's own token Secret is mounted read-only.
pub const WORKER_TOKEN_DIR: &str = "/etc/llm-mcp-hub/worker-token";
/// The file the worker reads its token from: [`WORKER_TOKEN_DIR`]`/`[`WORKER_TOKEN_KEY`].
pub const WORKER_TOKEN_FILE: &str = "/etc/llm-mcp-hub/worker-token/token";
/// Environment variable naming [`WORKER_TOKEN_FILE`] for the worker.
pub const WORKER_TOKEN_FILE_ENV: &str = "LLM_MCP_HUB_WORKER_TOKEN_FILE";
/// Length of a generated worker token (alphanumerics: about 190 bits).
pub const WORKER_TOKEN_LEN: usize = 32;

/// Everything an LLMProvider becomes.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerObjects {
    /// Service the routers discover workers through (via its EndpointSlices).
    pub service: Service,
    /// Keeps at most one worker pod of the provider voluntarily disrupted at a time.
    pub pdb: PodDisruptionBudget,
    /// Lets only routers reach the workers.
    pub network_policy: NetworkPolicy,
    /// One Deployment per account, in the order of `spec.credentials.accounts`.
    pub deployments: Vec<Deployment>,
    /// The router→worker credential (`<p>-worker-token`, key [`WORKER_TOKEN_KEY`]), mounted into
    /// the workers and projected into the routers that serve the provider.
    pub token_secret: Secret,
}

/// What the reconciler read (or generated) before building.
#[derive(Clone, Debug, Default)]
pub struct WorkerInputs {
    /// Hash of each account's Secret data, by account name.
    pub secret_hashes: BTreeMap<String, String>,
    /// The router→worker token (kept from the existing Secret, or freshly generated).
    pub worker_token: String,
}

/// Name of the worker Service (and PDB, NetworkPolicy) of a provider.
pub fn service_name(provider: &str) -> String {
    format!("{provider}-workers")
}

/// Name of the Secret holding the router→worker token of a provider.
pub fn worker_token_secret_name(provider: &str) -> String {
    format!("{provider}-worker-token")
}

/// Whether a token read back from the worker-token Secret is kept: only what the operator would
/// have generated itself (at least [`WORKER_TOKEN_LEN`] letters and digits), so a truncated or
/// hand-edited value is replaced rather than trusted as a credential.
pub fn is_usable_worker_token(token: &str) -> bool {
    token.len() >= WORKER_TOKEN_LEN && token.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Name of the worker Deployment of one account.
pub fn deployment_name(provider: &str, account: &str) -> String {
    format!("{provider}-{account}")
}

/// Labels of every worker object of a provider.
pub fn provider_labels(p: &LLMProvider) -> BTreeMap<String, String> {
    let mut l = base_labels(&p.name_any(), labels::COMPONENT_WORKER);
    l.insert(labels::PROVIDER.to_owned(), p.name_any());
    l.insert(
        labels::PROVIDER_KIND.to_owned(),
        p.spec.kind.as_str().to_owned(),
    );
    l
}

/// Selector of all worker pods of a provider.
pub fn provider_selector(p: &LLMProvider) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::PROVIDER.to_owned(), p.name_any()),
        (
            labels::COMPONENT.to_owned(),
            labels::COMPONENT_WORKER.to_owned(),
        ),
    ])
}

/// Label selector string matching every worker Deployment of a provider (used to prune).
pub fn deployments_label_selector(p: &LLMProvider) -> String {
    format!(
        "{}={},{}={},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::PROVIDER,
        p.name_any(),
        labels::COMPONENT,
        labels::COMPONENT_WORKER
    )
}

/// Builds all worker objects.
pub fn build(p: &LLMProvider, cfg: &BuildConfig, inputs: &WorkerInputs) -> WorkerObjects {
    let name = p.name_any();
    let svc_name = service_name(&name);
    let service = Service {
        metadata: meta(p, &svc_name, provider_labels(p)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(provider_selector(p)),
            ports: Some(vec![http_service_port(WORKER_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let pdb = PodDisruptionBudget {
        metadata: meta(p, &svc_name, provider_labels(p)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(provider_selector(p)),
                ..LabelSelector::default()
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    };
    let mut network_policy = admit_only(
        meta(p, &svc_name, provider_labels(p)),
        provider_selector(p),
        router_pod_selector(),
        WORKER_PORT,
        // A worker calls its vendor (HTTPS) and nothing else: no API server (it mounts no
        // service-account token), no other pod.
        vec![dns_egress(), https_egress()],
    );
    // The operator asks the workers how their accounts are (operator/src/workers.rs).
    if let Some(rule) = network_policy
        .spec
        .as_mut()
        .and_then(|s| s.ingress.as_mut())
        .and_then(|rules| rules.first_mut())
    {
        rule.from
            .get_or_insert_with(Vec::new)
            .push(operator_peer(cfg.operator_namespace.as_deref()));
    }
    let token_secret = Secret {
        metadata: meta(p, worker_token_secret_name(&name), provider_labels(p)),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            WORKER_TOKEN_KEY.to_owned(),
            ByteString(inputs.worker_token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    let deployments = p
        .spec
        .credentials
        .accounts
        .iter()
        .map(|a| {
            let account_hash = inputs
                .secret_hashes
                .get(&a.name)
                .map(String::as_str)
                .unwrap_or("");
            // The worker reads its token once at start, so a new token must roll the pods; the
            // routers read theirs live from a projected volume and need no roll.
            let hash = hash_parts([
                ("credentials", account_hash.as_bytes()),
                ("worker-token", inputs.worker_token.as_bytes()),
            ]);
            deployment(p, cfg, a, &hash)
        })
        .collect();
    WorkerObjects {
        service,
        pdb,
        network_policy,
        deployments,
        token_secret,
    }
}

/// Labels that identify router pods (of any HubGateway) in a namespace.
pub fn router_pod_selector() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::COMPONENT.to_owned(),
            labels::COMPONENT_ROUTER.to_owned(),
        ),
        (
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        ),
    ])
}

fn deployment(p: &LLMProvider, cfg: &BuildConfig, account: &AccountSpec, hash: &str) -> Deployment {
    let name = p.name_any();
    let spec = &p.spec;
    let kind = spec.kind;
    let mut labels = provider_labels(p);
    labels.insert(labels::ACCOUNT.to_owned(), account.name.clone());
    let mut selector = provider_selector(p);
    selector.insert(labels::ACCOUNT.to_owned(), account.name.clone());
    let secret_key = spec.secret_key(account).to_owned();
    let cred_dir = format!("{CREDENTIALS_DIR}/{}", account.name);

    let mut env_vars = vec![
        env("HOME", HOME),
        env("TMPDIR", "/tmp"),
        env("LLM_MCP_HUB_CONCURRENCY", spec.concurrency.to_string()),
        env(
            "LLM_MCP_HUB_REQUEST_TIMEOUT_SECS",
            spec.timeouts.request_secs.to_string(),
        ),
        env("LLM_MCP_HUB_MODELS", spec.models.allowed.join(",")),
        env(
            "LLM_MCP_HUB_DEFAULT_MODEL",
            spec.models.default.clone().unwrap_or_default(),
        ),
        env("LLM_MCP_HUB_LOG_FORMAT", "json"),
        env("LLM_MCP_HUB_PROVIDER_NAME", name.clone()),
        env("LLM_MCP_HUB_ACCOUNT", account.name.clone()),
        env(WORKER_TOKEN_FILE_ENV, WORKER_TOKEN_FILE),
    ];
    if kind == ProviderKind::Claude {
        env_vars.push(secret_env(
            "CLAUDE_CODE_OAUTH_TOKEN",
            &account.secret_ref.name,
            &secret_key,
        ));
    }
    if kind == ProviderKind::Gemini {
        // A Google Workspace account's Code Assist needs its Google Cloud project; a personal
        // account has none in its Secret and gets none.
        env_vars.push(secret_env_optional(
            "GOOGLE_CLOUD_PROJECT",
            &account.secret_ref.name,
            GEMINI_PROJECT_KEY,
            true,
        ));
    }

    let home_mounts = vec![
        VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "home".to_owned(),
            mount_path: HOME.to_owned(),
            ..VolumeMount::default()
        },
    ];
    let mut volumes = vec![
        empty_dir("tmp", "1Gi"),
        empty_dir("home", "1Gi"),
        Volume {
            name: "worker-token".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(worker_token_secret_name(&name)),
                default_mode: Some(0o440),
                optional: Some(false),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    let mut init_containers = Vec::new();
    if let Some(script) = install_credentials_script(kind, &cred_dir, &secret_key) {
        volumes.push(Volume {
            name: "credentials".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(account.secret_ref.name.clone()),
                default_mode: Some(0o440),
                optional: Some(false),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        let mut mounts = home_mounts.clone();
        mounts.push(VolumeMount {
            name: "credentials".to_owned(),
            mount_path: cred_dir.clone(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        init_containers.push(Container {
            name: "install-credentials".to_owned(),
            image: Some(image(cfg, spec.image.as_deref())),
            image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
            command: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), script]),
            security_context: Some(container_security()),
            resources: Some(resources_or(None, "10m", "16Mi", "64Mi")),
            volume_mounts: Some(mounts),
            ..Container::default()
        });
    }

    // Only the worker checks the routers' token; the init container has no use for it.
    let mut worker_mounts = home_mounts;
    worker_mounts.push(VolumeMount {
        name: "worker-token".to_owned(),
        mount_path: WORKER_TOKEN_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    });
    let container = Container {
        name: "worker".to_owned(),
        image: Some(image(cfg, spec.image.as_deref())),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        command: Some(vec!["llm-mcp-hub".to_owned()]),
        args: Some(vec![
            "worker".to_owned(),
            "--provider".to_owned(),
            kind.as_str().to_owned(),
            "--listen".to_owned(),
            format!("0.0.0.0:{WORKER_PORT}"),
        ]),
        ports: Some(vec![http_container_port(WORKER_PORT)]),
        env: Some(env_vars),
        resources: Some(resources_or(
            spec.resources.as_ref(),
            "250m",
            "512Mi",
            "2Gi",
        )),
        security_context: Some(container_security()),
        startup_probe: Some(http_probe("/healthz", 2, 60)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 2)),
        volume_mounts: Some(worker_mounts),
        ..Container::default()
    };

    let pod = scheduled(
        PodSpec {
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            // The worker kills a CLI's whole process group; what the CLI had started is then
            // re-parented to PID 1. With a shared process namespace PID 1 is the pod's pause
            // process, which reaps them; the worker as PID 1 would leave them as zombies.
            share_process_namespace: Some(true),
            security_context: Some(pod_security(HUB_UID)),
            termination_grace_period_seconds: Some(i64::from(spec.timeouts.request_secs) + 15),
            init_containers: (!init_containers.is_empty()).then_some(init_containers),
            containers: vec![container],
            volumes: Some(volumes),
            image_pull_secrets: pull_secrets(&spec.image_pull_secrets),
            ..PodSpec::default()
        },
        &spec.scheduling,
    );

    Deployment {
        metadata: meta(p, deployment_name(&name, &account.name), labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            revision_history_limit: Some(3),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            strategy: Some(surge_rollout()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(
                        labels::ANNOTATION_SECRET_HASH.to_owned(),
                        hash.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn image(cfg: &BuildConfig, spec_image: Option<&str>) -> String {
    spec_image.map_or_else(|| cfg.image.clone(), str::to_owned)
}

/// The optional key of a gemini account's Secret naming its Google Cloud project.
pub const GEMINI_PROJECT_KEY: &str = "googleCloudProject";

/// Default gemini settings: OAuth login, no built-in tools, no MCP servers.
pub const GEMINI_SETTINGS: &str = r#"{"security":{"auth":{"selectedType":"oauth-personal"}},"tools":{"core":[]},"mcp":{"allowed":[]}}"#;

/// The init container's script that copies a file-based login (gemini) from the read-only Secret
/// into the writable home, where the CLI can rewrite refreshed tokens. None for claude, whose
/// token comes as an environment variable.
pub fn install_credentials_script(kind: ProviderKind, cred_dir: &str, key: &str) -> Option<String> {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let src = quote(&format!("{cred_dir}/{key}"));
    match kind {
        ProviderKind::Claude => None,
        ProviderKind::Gemini => Some(format!(
            "set -eu\numask 077\nmkdir -p {HOME}/.gemini\ncp {src} {HOME}/.gemini/oauth_creds.json\n\
             if [ -f {settings} ]; then cp {settings} {HOME}/.gemini/settings.json; \
             else printf '%s' {default} > {HOME}/.gemini/settings.json; fi\n",
            settings = quote(&format!("{cred_dir}/settings.json")),
            default = quote(GEMINI_SETTINGS),
        )),
    }
}
