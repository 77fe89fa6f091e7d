//! A run's steps: the pipeline expanded for the run's branch, each plan
//! rendered by pod-builder (owned by the `PipelineRun`), with its
//! dependencies in the same matrix combination. The same objects `c8s run`
//! creates, so both paths start identical pods.

use std::collections::BTreeMap;

use std::time::Duration;

use c8s_kube::{ObjectKind, Step};
use c8s_pipeline_model::resources::{ResourceList, plan_effective_resources, run_resources};
use c8s_pipeline_model::scheduler::Condition;
use c8s_pipeline_model::{Dag, Pipeline as PipelineDefinition, TaskPlan};
use c8s_pod_builder::RunContext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::error::Error;

/// One step of a run: the step `c8s run` runs, built by the same
/// [`c8s_kube::plan_steps`].
pub type RunStep = Step;

/// What a run will do, computed from its pipeline alone.
#[derive(Clone, Debug)]
pub struct RunSteps {
    /// The steps in render order.
    pub steps: Vec<RunStep>,
    /// Their graph.
    pub dag: Dag,
    /// The run's whole timeout.
    pub timeout: Option<Duration>,
    /// The most the run requests at once (its busiest layer), for the quota
    /// pre-check.
    pub peak_requests: ResourceList,
    /// Steps skipped by branch conditions, by name, with why.
    pub skipped: Vec<(String, String)>,
    /// When the run succeeded, over the steps' names (a Concourse build's
    /// result: a failed step under `try`, or one whose `on_failure` hook
    /// ran, may leave it succeeded); `None`: when every step did.
    pub outcome: Option<Condition>,
}

impl RunSteps {
    /// The kinds of object the steps are (Pods, Jobs with `--job`): what
    /// the reconcile lists, so that a run of pods needs no right to list
    /// Jobs.
    pub fn kinds(&self) -> Vec<ObjectKind> {
        let mut kinds: Vec<ObjectKind> = self.steps.iter().map(|s| s.object.kind()).collect();
        kinds.sort_by_key(|k| *k == ObjectKind::Job);
        kinds.dedup();
        kinds
    }
}

/// Expands `pipeline` for `ctx.branch` and renders every step (as Jobs with
/// `job`), each owned by `owner`.
pub fn run_steps(
    pipeline: &PipelineDefinition,
    ctx: &RunContext,
    owner: OwnerReference,
    job: bool,
) -> Result<RunSteps, Error> {
    let branch = Some(ctx.branch.as_str()).filter(|b| !b.is_empty());
    let plan = pipeline
        .expand(branch)
        .map_err(|e| Error::Pipeline(e.to_string()))?;
    let ctx = ctx.clone().with_owner_reference(owner);
    let depends_on: BTreeMap<String, Vec<String>> = pipeline
        .steps
        .iter()
        .map(|s| (s.name.clone(), s.depends_on.clone()))
        .collect();
    let plans: Vec<TaskPlan> = plan.plans.iter().chain(&plan.finally).cloned().collect();
    let steps = c8s_kube::plan_steps(&plans, &depends_on, &ctx, job)?;
    let mut layer_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, layer) in plan.layers.iter().enumerate() {
        for step in layer {
            layer_of.insert(step, i);
        }
    }
    let mut layers = vec![Vec::new(); plan.layers.len()];
    let mut finally_layer = Vec::new();
    for task in &plans {
        if task.finally {
            // Finally steps run after every layer: they count as one more.
            finally_layer.push(plan_effective_resources(task));
        } else if let Some(layer) = layer_of
            .get(task.identity.step.as_str())
            .and_then(|i| layers.get_mut(*i))
        {
            layer.push(plan_effective_resources(task));
        }
    }
    if !finally_layer.is_empty() {
        layers.push(finally_layer);
    }
    let dag = Dag::new(steps.iter().map(|s| (s.name.as_str(), s.depends_on.iter())))
        .map_err(|e| Error::Pipeline(e.to_string()))?;
    let peak = run_resources(layers.iter().map(|l| l.iter())).peak;
    let timeout = pipeline
        .timeout
        .as_deref()
        .and_then(|t| c8s_pipeline_model::parse_duration(t).ok())
        .map(Duration::from_secs);
    let skipped = plan
        .skipped
        .iter()
        .map(|(step, why)| (step.clone(), why.to_string()))
        .collect();
    Ok(RunSteps {
        steps,
        dag,
        timeout,
        peak_requests: peak.requests,
        skipped,
        outcome: None,
    })
}

/// The render context of `run` (its name is the run id), in `namespace`.
pub fn run_context(
    run: &crate::crd::PipelineRun,
    pipeline: &PipelineDefinition,
    namespace: &str,
) -> RunContext {
    let name = run.metadata.name.clone().unwrap_or_default();
    RunContext::new(name, run.spec.build)
        .with_commit(run.spec.commit.clone())
        .with_branch(run.spec.branch.clone())
        .with_repository(pipeline.repository.clone())
        .with_namespace(namespace.to_owned())
}

/// The ownerReference every object made for `owner` carries (a run's pods,
/// a ConcoursePipeline's watcher): the owner controls it, so deleting the
/// owner deletes them (garbage collection, not a reaper), and with
/// `blockOwnerDeletion` a foreground delete of the owner waits until they
/// are gone ("Owners and Dependents",
/// <https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/>).
/// Setting it needs `update` on the owner's `finalizers` subresource where
/// the OwnerReferencesPermissionEnforcement admission plugin runs; the
/// chart's Role grants it. `None` for an object without a uid.
pub fn owner_of<K: kube::Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    owner.controller_owner_ref(&()).map(|owner| OwnerReference {
        block_owner_deletion: Some(true),
        ..owner
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{PipelineRun, PipelineRunSpec};

    #[test]
    fn a_run_controls_its_objects_and_blocks_its_own_deletion_until_they_are_gone() {
        let mut run = PipelineRun::new("shop-b7", PipelineRunSpec::default());
        run.metadata.uid = Some("0f0e".into());
        let owner = owner_of(&run).unwrap_or_default();
        assert_eq!(
            (owner.controller, owner.block_owner_deletion, owner.uid.as_str()),
            (Some(true), Some(true), "0f0e")
        );
        // No uid (never stored): no reference at all.
        run.metadata.uid = None;
        assert!(owner_of(&run).is_none());
    }
}
