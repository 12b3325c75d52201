//! LLMProvider → worker Deployments, Service, PodDisruptionBudget, NetworkPolicy, status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use llm_mcp_hub_crds::{AccountStatus, LLMProvider, LLMProviderStatus, condition, labels};
use serde_json::json;

use super::{Context, Error, SecretNeed, apply, read_secrets};
use crate::builders::{FIELD_MANAGER, hash_parts, worker};
use crate::conditions;
use crate::validate::{self, Problem};

/// Kind label in metrics and logs.
pub const KIND: &str = "LLMProvider";

/// How often a healthy provider is looked at again without any change.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How soon a provider whose rollout is in progress is looked at again.
pub const PROGRESS_RECHECK: Duration = Duration::from_secs(15);

/// Reconciles one LLMProvider.
pub async fn reconcile(p: Arc<LLMProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciles.with_label_values(&[KIND]).inc();
    let result = reconcile_inner(&p, &ctx).await;
    ctx.metrics
        .duration
        .with_label_values(&[KIND])
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.succeeded(p.as_ref());
    }
    result
}

async fn reconcile_inner(p: &LLMProvider, ctx: &Context) -> Result<Action, Error> {
    if p.meta().deletion_timestamp.is_some() {
        // Owned objects go with it (garbage collection); nothing to do.
        return Ok(Action::await_change());
    }
    let ns = p.namespace().ok_or(Error::NoNamespace)?;
    let name = p.name_any();
    tracing::debug!(%ns, %name, "reconciling LLMProvider");

    // 1. Everything is checked before anything is written, so a bad spec never leaves a
    //    half-applied set of objects: the last good objects stay as they were.
    if let Err(problem) = validate::provider(&p.spec) {
        return report_problem(p, ctx, &ns, problem).await;
    }
    let needs: Vec<SecretNeed<'_>> = p
        .spec
        .credentials
        .accounts
        .iter()
        .map(|a| SecretNeed {
            name: &a.secret_ref.name,
            key: p.spec.secret_key(a),
            field: format!("account {}", a.name),
        })
        .collect();
    let data = match read_secrets(&ctx.client, &ns, &needs).await? {
        Ok(d) => d,
        Err(problem) => return report_problem(p, ctx, &ns, problem).await,
    };
    let hashes: BTreeMap<String, String> = p
        .spec
        .credentials
        .accounts
        .iter()
        .map(|a| {
            let k = format!("{}/{}", a.secret_ref.name, p.spec.secret_key(a));
            let bytes = data.get(&k).map(Vec::as_slice).unwrap_or_default();
            (a.name.clone(), hash_parts([(k.as_str(), bytes)]))
        })
        .collect();

    // 2. Apply.
    let objs = worker::build(p, &ctx.config, &hashes);
    apply(&ctx.client, &ns, &objs.service).await?;
    apply(&ctx.client, &ns, &objs.pdb).await?;
    apply(&ctx.client, &ns, &objs.network_policy).await?;
    let mut applied = Vec::with_capacity(objs.deployments.len());
    for d in &objs.deployments {
        applied.push(apply(&ctx.client, &ns, d).await?);
    }

    // 3. Prune Deployments of accounts that were removed from the spec.
    let wanted: BTreeSet<String> = objs.deployments.iter().map(|d| d.name_any()).collect();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = deployments
        .list(&ListParams::default().labels(&worker::deployments_label_selector(p)))
        .await?;
    let uid = p.uid().unwrap_or_default();
    for d in existing.items {
        let owned = d
            .owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true));
        if owned && !wanted.contains(&d.name_any()) {
            tracing::info!(%ns, deployment = %d.name_any(), "deleting worker Deployment of a removed account");
            super::delete_if_exists::<Deployment>(&ctx.client, &ns, &d.name_any()).await?;
        }
    }

    // 4. Status.
    let (status, progressing) = status_from(p, &applied, Timestamp::now());
    publish_status(p, ctx, &ns, status).await?;
    Ok(Action::requeue(if progressing {
        PROGRESS_RECHECK
    } else {
        RESYNC
    }))
}

/// Computes the status from the applied Deployments. Returns it and whether a rollout is in
/// progress.
pub fn status_from(
    p: &LLMProvider,
    deployments: &[Deployment],
    now: Timestamp,
) -> (LLMProviderStatus, bool) {
    let old = p.status.clone().unwrap_or_default();
    let generation = p.meta().generation;
    let per_account = p.spec.replicas;
    let mut ready_total = 0;
    let mut progressing = false;
    let mut failed: Option<String> = None;
    let mut accounts = Vec::new();
    for d in deployments {
        let st = d.status.clone().unwrap_or_default();
        let ready = st.ready_replicas.unwrap_or(0);
        let updated = st.updated_replicas.unwrap_or(0);
        let total = st.replicas.unwrap_or(0);
        ready_total += ready;
        let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        if !observed || ready < per_account || updated < per_account || total > per_account {
            progressing = true;
        }
        for c in st.conditions.iter().flatten() {
            let stuck = c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded");
            let replica_failure = c.type_ == "ReplicaFailure" && c.status == "True";
            if stuck || replica_failure {
                failed = Some(format!(
                    "Deployment {}: {}",
                    d.name_any(),
                    c.message.clone().unwrap_or_default()
                ));
            }
        }
        let account = d.labels().get(labels::ACCOUNT).cloned().unwrap_or_default();
        let usage_limited_until = old
            .accounts
            .iter()
            .find(|a| a.name == account)
            .and_then(|a| a.usage_limited_until.clone());
        accounts.push(AccountStatus {
            name: account,
            deployment: d.name_any(),
            ready_replicas: ready,
            usage_limited_until,
        });
    }
    let desired = per_account * deployments.len() as i32;
    let mut conds = old.conditions.clone();
    let (ready, reason, message) = if let Some(msg) = &failed {
        (false, "DeploymentFailed", msg.clone())
    } else if per_account == 0 {
        (
            false,
            "ScaledToZero",
            "replicas is 0: no worker runs".to_owned(),
        )
    } else if ready_total >= desired && !progressing {
        (
            true,
            "WorkersReady",
            format!("{ready_total}/{desired} worker pods ready"),
        )
    } else if ready_total > 0 {
        (
            true,
            "PartiallyReady",
            format!("{ready_total}/{desired} worker pods ready, rollout in progress"),
        )
    } else {
        (
            false,
            "WorkersNotReady",
            format!("0/{desired} worker pods ready"),
        )
    };
    conditions::set(
        &mut conds,
        condition::READY,
        ready,
        reason,
        message,
        generation,
        now,
    );
    if progressing {
        conditions::set(
            &mut conds,
            condition::PROGRESSING,
            true,
            "RollingOut",
            format!("{ready_total}/{desired} worker pods ready and up to date"),
            generation,
            now,
        );
    } else {
        conditions::set(
            &mut conds,
            condition::PROGRESSING,
            false,
            "RolloutComplete",
            "all worker Deployments are up to date",
            generation,
            now,
        );
    }
    match &failed {
        Some(msg) => conditions::set(
            &mut conds,
            condition::DEGRADED,
            true,
            "DeploymentFailed",
            msg.clone(),
            generation,
            now,
        ),
        None => conditions::set(
            &mut conds,
            condition::DEGRADED,
            false,
            "AsExpected",
            "no problem found",
            generation,
            now,
        ),
    }
    let status = LLMProviderStatus {
        conditions: conds,
        observed_generation: generation,
        replicas: desired,
        ready_replicas: ready_total,
        service_name: Some(worker::service_name(&p.name_any())),
        accounts,
        usage_limited_until: old.usage_limited_until,
    };
    (status, progressing)
}

/// A spec or Secret problem: condition, Warning event, no error (so no hot retry loop); the
/// Secret watch or a spec change brings the provider back.
async fn report_problem(
    p: &LLMProvider,
    ctx: &Context,
    ns: &str,
    problem: Problem,
) -> Result<Action, Error> {
    ctx.metrics
        .problems
        .with_label_values(&[KIND, problem.reason])
        .inc();
    tracing::warn!(%ns, name = %p.name_any(), reason = problem.reason, message = %problem.message, "LLMProvider cannot be reconciled");
    let now = Timestamp::now();
    let old = p.status.clone().unwrap_or_default();
    let generation = p.meta().generation;
    let mut conds = old.conditions.clone();
    conditions::set(
        &mut conds,
        condition::READY,
        false,
        problem.reason,
        &problem.message,
        generation,
        now,
    );
    conditions::set(
        &mut conds,
        condition::DEGRADED,
        true,
        problem.reason,
        &problem.message,
        generation,
        now,
    );
    conditions::set(
        &mut conds,
        condition::PROGRESSING,
        false,
        problem.reason,
        "waiting for the problem to be fixed",
        generation,
        now,
    );
    let status = LLMProviderStatus {
        conditions: conds,
        observed_generation: generation,
        ..old
    };
    publish_status(p, ctx, ns, status).await?;
    Ok(Action::requeue(RESYNC))
}

/// Applies the status (server-side apply on the status subresource) and publishes an event when
/// the Ready condition changes.
async fn publish_status(
    p: &LLMProvider,
    ctx: &Context,
    ns: &str,
    status: LLMProviderStatus,
) -> Result<(), Error> {
    let before = p
        .status
        .as_ref()
        .and_then(|s| conditions::get(&s.conditions, condition::READY))
        .map(|(s, r)| (s.to_owned(), r.to_owned()));
    let after = conditions::get(&status.conditions, condition::READY)
        .map(|(s, r)| (s.to_owned(), r.to_owned()));
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::READY)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    if p.status.as_ref() != Some(&status) {
        let api: Api<LLMProvider> = Api::namespaced(ctx.client.clone(), ns);
        let patch = json!({
            "apiVersion": llm_mcp_hub_crds::API_VERSION,
            "kind": KIND,
            "status": status,
        });
        api.patch_status(
            &p.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    if before != after
        && let Some((s, reason)) = after
    {
        let type_ = if s == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(p, type_, &reason, "Reconcile", message).await;
    }
    Ok(())
}
