//! LLMProvider → worker Deployments, Service, PodDisruptionBudget, NetworkPolicy, worker-token
//! Secret, status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use llm_mcp_hub_crds::{AccountStatus, LLMProvider, LLMProviderStatus, condition, labels};

use super::status::{
    failures, measured, publish_status, report_problem, rolling_out, set_degraded,
};
use super::{Context, Error, SecretNeed, apply, random_alphanumeric, read_generated, read_secrets};
use crate::builders::hash_parts;
use crate::builders::worker::{self, WorkerInputs};
use crate::conditions;
use crate::validate;
use crate::workers;

/// Kind label in metrics and logs.
pub const KIND: &str = "LLMProvider";

/// How often a healthy provider is looked at again without any change.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How soon a provider whose rollout is in progress is looked at again.
pub const PROGRESS_RECHECK: Duration = Duration::from_secs(15);
/// How soon a provider with ready pods whose workers have not answered is looked at again.
pub const WORKERS_RECHECK: Duration = Duration::from_secs(3);

/// Reconciles one LLMProvider.
pub async fn reconcile(p: Arc<LLMProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(p.as_ref(), &ctx, reconcile_inner(&p, &ctx)).await
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
    if let Err(problem) = validate::provider(&p.spec).and_then(|()| {
        validate::image(
            p.spec.image.as_deref(),
            &ctx.config.allowed_image_registries,
            "spec.image",
        )
    }) {
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

    // The router→worker token is generated once and kept in the owned Secret; deleting the
    // Secret rotates it (the workers roll, the routers' projected copies follow).
    let worker_token = read_generated(
        &ctx.client,
        &ns,
        &worker::worker_token_secret_name(&name),
        worker::WORKER_TOKEN_KEY,
        worker::is_usable_worker_token,
    )
    .await?
    .unwrap_or_else(|| random_alphanumeric(worker::WORKER_TOKEN_LEN));

    // 2. Apply. The token Secret goes first: the worker pods do not start without it.
    let inputs = WorkerInputs {
        secret_hashes: hashes,
        worker_token,
    };
    let objs = worker::build(p, &ctx.config, &inputs);
    apply(&ctx.client, &ns, &objs.token_secret).await?;
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
        if super::controlled_by(&d, &uid) && !wanted.contains(&d.name_any()) {
            tracing::info!(%ns, deployment = %d.name_any(), "deleting worker Deployment of a removed account");
            super::delete_exact(&ctx.client, &ns, &d).await?;
        }
    }

    // 4. Status, with what the workers say of their accounts when the operator asks them.
    let now = Timestamp::now();
    let (mut status, progressing) = status_from(p, &applied, now);
    let mut recheck = if progressing {
        PROGRESS_RECHECK
    } else {
        RESYNC
    };
    if let Some(probe) = &ctx.workers {
        let answers = probe
            .observe(
                &ns,
                &worker::service_name(&name),
                worker::WORKER_PORT,
                &inputs.worker_token,
            )
            .await;
        let waiting = apply_observation(p, &mut status, &answers, now);
        if waiting {
            // Ready pods whose workers have not answered yet: soon, not at the next interval.
            recheck = recheck.min(WORKERS_RECHECK);
        } else if status.ready_replicas > 0 {
            recheck = recheck.min(probe.interval);
        }
    }
    publish_status(p, ctx, &ns, status).await?;
    Ok(Action::requeue(recheck))
}

/// Folds the workers' answers into `status`: each account's `usageLimitedUntil`, the
/// provider's (the earliest reset, while every account is limited), and the Ready condition,
/// which also needs some worker whose CLI is logged in. Returns whether it held Ready back
/// because no worker has answered yet.
pub fn apply_observation(
    p: &LLMProvider,
    status: &mut LLMProviderStatus,
    answers: &[Option<workers::WorkerAnswer>],
    now: Timestamp,
) -> bool {
    let observed = workers::Observation::from_answers(answers, now.as_second());
    observed.apply(
        &mut status.accounts,
        &workers::answered_accounts(answers),
        now.as_second(),
    );
    let limits: Vec<_> = status
        .accounts
        .iter()
        .map(|a| a.usage_limited_until.clone())
        .collect();
    status.usage_limited_until = if !limits.is_empty() && limits.iter().all(Option::is_some) {
        limits.into_iter().flatten().min_by_key(|t| t.0)
    } else {
        None
    };
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == condition::READY && c.status == "True");
    if ready && observed.logged_in == 0 {
        let (reason, message) = if observed.answered == 0 {
            (
                "WorkersNotAnswering",
                format!(
                    "0/{} ready worker pods answered their status yet",
                    observed.asked
                ),
            )
        } else {
            (
                "NotLoggedIn",
                format!(
                    "no worker's CLI is logged in ({} answered): check the accounts' Secrets",
                    observed.answered
                ),
            )
        };
        // Ready is set against the object's own status, not the pods' verdict just computed:
        // a provider held back on every pass keeps the time it became not ready.
        let previous = p.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == condition::READY)
                .cloned()
        });
        status.conditions.retain(|c| c.type_ != condition::READY);
        status.conditions.extend(previous);
        conditions::set(
            &mut status.conditions,
            condition::READY,
            false,
            reason,
            message,
            p.meta().generation,
            now,
        );
        return observed.answered == 0;
    }
    false
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
        ready_total += ready;
        if rolling_out(d, per_account) {
            progressing = true;
        }
        if let Some(msg) = failures(&st).last() {
            failed = Some(format!("Deployment {}: {msg}", d.name_any()));
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
    set_degraded(&mut conds, failed.as_deref(), generation, now);
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
