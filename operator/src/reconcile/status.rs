//! Status reporting shared by both reconcilers: conditions, the status apply, the Ready event.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use llm_mcp_hub_crds::{HubGateway, HubGatewayStatus, LLMProvider, LLMProviderStatus, condition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Context, Error, gateway, provider};
use crate::builders::FIELD_MANAGER;
use crate::conditions;
use crate::validate::Problem;

/// The part of a status every reconciled resource shares.
pub trait ConditionStatus: Clone + Default + PartialEq + Serialize {
    /// Ready, Progressing, Degraded, ...
    fn conditions(&self) -> &[Condition];
    /// Mutable access, to set conditions in place.
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    /// Records which `metadata.generation` the status was computed from.
    fn set_observed_generation(&mut self, generation: Option<i64>);
}

/// A custom resource that a reconciler of this operator owns the status of.
pub trait Reconciled:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + HasStatus<Status: ConditionStatus>
    + Clone
    + Debug
    + DeserializeOwned
{
    /// Kind label in metrics and logs, and the `kind` of the status apply.
    const KIND: &'static str;
    /// How soon a resource with a spec or Secret problem is looked at again without a change.
    const RESYNC: Duration;
}

macro_rules! condition_status {
    ($status:ty) => {
        impl ConditionStatus for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.conditions
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
        }
    };
}

condition_status!(LLMProviderStatus);
condition_status!(HubGatewayStatus);

impl Reconciled for LLMProvider {
    const KIND: &'static str = provider::KIND;
    const RESYNC: Duration = provider::RESYNC;
}

impl Reconciled for HubGateway {
    const KIND: &'static str = gateway::KIND;
    const RESYNC: Duration = gateway::RESYNC;
}

/// Runs one reconcile with its metrics, and resets the object's backoff when it succeeds.
pub async fn measured<K: Reconciled>(
    obj: &K,
    ctx: &Context,
    reconcile: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciles.with_label_values(&[K::KIND]).inc();
    let result = reconcile.await;
    ctx.metrics
        .duration
        .with_label_values(&[K::KIND])
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.succeeded(obj);
    }
    result
}

/// A spec or Secret problem: condition, Warning event, no error (so no hot retry loop); the
/// Secret watch or a spec change brings the resource back.
pub async fn report_problem<K: Reconciled>(
    obj: &K,
    ctx: &Context,
    ns: &str,
    problem: Problem,
) -> Result<Action, Error> {
    ctx.metrics
        .problems
        .with_label_values(&[K::KIND, problem.reason])
        .inc();
    tracing::warn!(%ns, name = %obj.name_any(), reason = problem.reason, message = %problem.message, "{} cannot be reconciled", K::KIND);
    let now = Timestamp::now();
    let generation = obj.meta().generation;
    // Everything but the conditions stays as last reported: it still describes what runs.
    let mut status = obj.status().cloned().unwrap_or_default();
    let conds = status.conditions_mut();
    conditions::set(
        conds,
        condition::READY,
        false,
        problem.reason,
        &problem.message,
        generation,
        now,
    );
    conditions::set(
        conds,
        condition::DEGRADED,
        true,
        problem.reason,
        &problem.message,
        generation,
        now,
    );
    conditions::set(
        conds,
        condition::PROGRESSING,
        false,
        problem.reason,
        "waiting for the problem to be fixed",
        generation,
        now,
    );
    status.set_observed_generation(generation);
    publish_status(obj, ctx, ns, status).await?;
    Ok(Action::requeue(K::RESYNC))
}

/// Applies the status (server-side apply on the status subresource) and publishes an event when
/// the Ready condition changes.
pub async fn publish_status<K: Reconciled>(
    obj: &K,
    ctx: &Context,
    ns: &str,
    status: K::Status,
) -> Result<(), Error> {
    let ready = |s: &K::Status| {
        conditions::get(s.conditions(), condition::READY).map(|(s, r)| (s.to_owned(), r.to_owned()))
    };
    let before = obj.status().and_then(ready);
    let after = ready(&status);
    let message = status
        .conditions()
        .iter()
        .find(|c| c.type_ == condition::READY)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    // An unchanged status is not written: every write would wake the watchers of the resource.
    if obj.status() != Some(&status) {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
        let patch = json!({
            "apiVersion": llm_mcp_hub_crds::API_VERSION,
            "kind": K::KIND,
            "status": status,
        });
        api.patch_status(
            &obj.name_any(),
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
        ctx.event(obj, type_, &reason, "Reconcile", message).await;
    }
    Ok(())
}

/// Whether a Deployment has yet to reach `desired` ready, up-to-date replicas (and no more).
pub fn rolling_out(d: &Deployment, desired: i32) -> bool {
    let none = DeploymentStatus::default();
    let st = d.status.as_ref().unwrap_or(&none);
    let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    !observed
        || st.ready_replicas.unwrap_or(0) < desired
        || st.updated_replicas.unwrap_or(0) < desired
        || st.replicas.unwrap_or(0) > desired
}

/// The messages of the conditions that say a Deployment's rollout failed (stuck past its
/// progress deadline, or pods that cannot be created), in the Deployment's order.
pub fn failures(st: &DeploymentStatus) -> impl Iterator<Item = String> + '_ {
    st.conditions.iter().flatten().filter_map(|c| {
        let stuck = c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded");
        let replica_failure = c.type_ == "ReplicaFailure" && c.status == "True";
        (stuck || replica_failure).then(|| c.message.clone().unwrap_or_default())
    })
}

/// Sets Degraded from the failure found, if any.
pub fn set_degraded(
    conds: &mut Vec<Condition>,
    failed: Option<&str>,
    generation: Option<i64>,
    now: Timestamp,
) {
    match failed {
        Some(msg) => conditions::set(
            conds,
            condition::DEGRADED,
            true,
            "DeploymentFailed",
            msg,
            generation,
            now,
        ),
        None => conditions::set(
            conds,
            condition::DEGRADED,
            false,
            "AsExpected",
            "no problem found",
            generation,
            now,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentCondition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cond(type_: &str, status: &str, reason: Option<&str>, message: &str) -> DeploymentCondition {
        DeploymentCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.map(str::to_owned),
            message: Some(message.to_owned()),
            ..DeploymentCondition::default()
        }
    }

    #[test]
    fn failures_are_stuck_rollouts_and_replica_failures_in_order() {
        let st = DeploymentStatus {
            conditions: Some(vec![
                cond("Available", "False", None, "not available"),
                cond("ReplicaFailure", "True", Some("FailedCreate"), "quota"),
                cond("Progressing", "True", Some("ReplicaSetUpdated"), "going"),
                cond(
                    "Progressing",
                    "False",
                    Some("ProgressDeadlineExceeded"),
                    "stuck",
                ),
            ]),
            ..DeploymentStatus::default()
        };
        assert_eq!(failures(&st).collect::<Vec<_>>(), ["quota", "stuck"]);
        assert_eq!(failures(&DeploymentStatus::default()).next(), None);
    }

    #[test]
    fn rolling_out_until_the_generation_is_observed_and_replicas_match() {
        let d = |generation: i64, observed: i64, ready: i32, updated: i32, total: i32| Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                replicas: Some(total),
                ..DeploymentStatus::default()
            }),
            ..Deployment::default()
        };
        assert!(!rolling_out(&d(2, 2, 2, 2, 2), 2));
        assert!(rolling_out(&d(3, 2, 2, 2, 2), 2));
        assert!(rolling_out(&d(2, 2, 1, 2, 2), 2));
        assert!(rolling_out(&d(2, 2, 2, 1, 2), 2));
        assert!(rolling_out(&d(2, 2, 2, 2, 3), 2));
        assert!(rolling_out(&Deployment::default(), 1));
        assert!(!rolling_out(&Deployment::default(), 0));
    }
}
