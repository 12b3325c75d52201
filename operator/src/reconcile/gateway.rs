//! HubGateway → router Deployment, Service, ConfigMap, RBAC, Ingress, session store, status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use llm_mcp_hub_crds::{
    HubGateway, HubGatewayStatus, LLMProvider, ManagedRedisSpec, SessionStoreMode, condition,
};

use super::status::{
    failures, measured, publish_status, report_problem, rolling_out, set_degraded,
};
use super::{
    Context, Error, SecretNeed, apply, delete_owned, random_alphanumeric, read_generated,
    read_secrets,
};
use crate::builders::gateway::{self, GatewayInputs};
use crate::builders::hash_parts;
use crate::conditions;
use crate::validate;

/// Kind label in metrics and logs.
pub const KIND: &str = "HubGateway";
/// How often a healthy gateway is looked at again without any change.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How soon a gateway whose rollout is in progress is looked at again.
pub const PROGRESS_RECHECK: Duration = Duration::from_secs(15);

/// Reconciles one HubGateway.
pub async fn reconcile(g: Arc<HubGateway>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(g.as_ref(), &ctx, reconcile_inner(&g, &ctx)).await
}

/// Generates a Redis password (alphanumeric, so it is safe inside a URL).
pub fn generate_password() -> String {
    random_alphanumeric(32)
}

async fn reconcile_inner(g: &HubGateway, ctx: &Context) -> Result<Action, Error> {
    if g.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = g.namespace().ok_or(Error::NoNamespace)?;
    let name = g.name_any();
    let spec = &g.spec;

    // 1. Check everything before writing anything.
    let allowed = &ctx.config.allowed_image_registries;
    let checked = validate::gateway(spec)
        .and_then(|()| validate::image(spec.image.as_deref(), allowed, "spec.image"))
        .and_then(|()| {
            // The default Redis image is the operator's choice, not an override.
            let image = &spec.session_store.managed.image;
            if spec.session_store.mode == SessionStoreMode::Managed
                && *image != ManagedRedisSpec::default().image
            {
                validate::image(Some(image), allowed, "spec.sessionStore.managed.image")
            } else {
                Ok(())
            }
        });
    if let Err(problem) = checked {
        return report_problem(g, ctx, &ns, problem).await;
    }
    let mut needs = vec![SecretNeed {
        name: &spec.api_keys_secret_ref.name,
        key: spec.api_keys_key(),
        field: "apiKeysSecretRef".to_owned(),
    }];
    if let (SessionStoreMode::External, Some(ext)) =
        (spec.session_store.mode, &spec.session_store.external)
    {
        needs.push(SecretNeed {
            name: &ext.url_secret_ref.name,
            key: ext.url_key(),
            field: "sessionStore.external.urlSecretRef".to_owned(),
        });
    }
    let data = match read_secrets(&ctx.client, &ns, &needs).await? {
        Ok(d) => d,
        Err(problem) => return report_problem(g, ctx, &ns, problem).await,
    };
    let secret_hash = hash_parts(data.iter().map(|(k, v)| (k.as_str(), v.as_slice())));

    // The managed Redis password is generated once and kept in the owned Secret.
    let redis_password = if spec.session_store.mode == SessionStoreMode::Managed {
        let kept = read_generated(
            &ctx.client,
            &ns,
            &gateway::redis_secret_name(&name),
            "password",
            |p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()),
        )
        .await?;
        Some(kept.unwrap_or_else(generate_password))
    } else {
        None
    };

    // Which providers the gateway serves.
    let providers: Api<LLMProvider> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = gateway::selector_string(spec.provider_selector.as_ref());
    let mut served: Vec<String> = providers
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    served.sort();

    // 2. Apply.
    let objs = gateway::build(
        g,
        &ctx.config,
        &GatewayInputs {
            secret_hash,
            redis_password,
            served_providers: served.clone(),
        },
    );
    let c = &ctx.client;
    let uid = g.uid().unwrap_or_default();
    apply(c, &ns, &objs.service_account).await?;
    apply(c, &ns, &objs.role).await?;
    apply(c, &ns, &objs.role_binding).await?;
    apply(c, &ns, &objs.config_map).await?;
    apply(c, &ns, &objs.network_policy).await?;
    let mut redis_ready = true;
    match &objs.redis {
        Some(r) => {
            apply(c, &ns, &r.secret).await?;
            apply(c, &ns, &r.service).await?;
            apply(c, &ns, &r.network_policy).await?;
            let sts = apply(c, &ns, &r.stateful_set).await?;
            redis_ready = sts
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                >= 1;
        }
        None => {
            // Switched to an external store: remove the managed Redis (its PVC goes with the
            // StatefulSet's retention policy).
            let rname = gateway::redis_name(&name);
            delete_owned::<StatefulSet>(c, &ns, &rname, &uid).await?;
            delete_owned::<Service>(c, &ns, &rname, &uid).await?;
            delete_owned::<NetworkPolicy>(c, &ns, &rname, &uid).await?;
            delete_owned::<Secret>(c, &ns, &gateway::redis_secret_name(&name), &uid).await?;
        }
    }
    apply(c, &ns, &objs.service).await?;
    let deployment = apply(c, &ns, &objs.deployment).await?;
    match &objs.ingress {
        Some(ing) => {
            apply(c, &ns, ing).await?;
        }
        None => delete_owned::<Ingress>(c, &ns, &name, &uid).await?,
    }

    // 3. Status.
    let (status, progressing) = status_from(g, &deployment, redis_ready, served, Timestamp::now());
    publish_status(g, ctx, &ns, status).await?;
    Ok(Action::requeue(if progressing {
        PROGRESS_RECHECK
    } else {
        RESYNC
    }))
}

/// Computes the status. Returns it and whether a rollout is in progress.
pub fn status_from(
    g: &HubGateway,
    deployment: &Deployment,
    redis_ready: bool,
    served: Vec<String>,
    now: Timestamp,
) -> (HubGatewayStatus, bool) {
    let old = g.status.clone().unwrap_or_default();
    let generation = g.meta().generation;
    let desired = g.spec.replicas;
    let st = deployment.status.clone().unwrap_or_default();
    let ready = st.ready_replicas.unwrap_or(0);
    let progressing = rolling_out(deployment, desired) || !redis_ready;
    let failed = failures(&st).next();
    let mut conds = old.conditions.clone();
    let (is_ready, reason, message) = if let Some(msg) = &failed {
        (
            false,
            "DeploymentFailed",
            format!("router Deployment: {msg}"),
        )
    } else if desired == 0 {
        (
            false,
            "ScaledToZero",
            "replicas is 0: no router runs".to_owned(),
        )
    } else if !redis_ready {
        (
            false,
            "SessionStoreNotReady",
            "the managed Redis is not ready yet".to_owned(),
        )
    } else if served.is_empty() {
        (
            false,
            "NoProviders",
            "no LLMProvider in the namespace matches providerSelector".to_owned(),
        )
    } else if ready == 0 {
        (
            false,
            "RoutersNotReady",
            format!("0/{desired} router pods ready"),
        )
    } else {
        (
            true,
            "RoutersReady",
            format!(
                "{ready}/{desired} router pods ready, serving {}",
                served.join(", ")
            ),
        )
    };
    conditions::set(
        &mut conds,
        condition::READY,
        is_ready,
        reason,
        message,
        generation,
        now,
    );
    conditions::set(
        &mut conds,
        condition::PROGRESSING,
        progressing,
        if progressing {
            "RollingOut"
        } else {
            "RolloutComplete"
        },
        format!("{ready}/{desired} router pods ready and up to date"),
        generation,
        now,
    );
    set_degraded(&mut conds, failed.as_deref(), generation, now);
    let status = HubGatewayStatus {
        conditions: conds,
        observed_generation: generation,
        url: Some(gateway::url(g)),
        served_providers: served,
        replicas: desired,
        ready_replicas: ready,
    };
    (status, progressing)
}
