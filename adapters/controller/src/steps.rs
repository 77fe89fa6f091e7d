//! A run's steps: the pipeline expanded for the run's branch, each plan
//! rendered by pod-builder (owned by the `PipelineRun`), with its
//! dependencies in the same matrix combination. The same objects `c8s run`
//! creates, so both paths start identical pods.

use std::collections::BTreeMap;

use c8s_kube::StepObject;
use c8s_pipeline_model::finally::step_status_env;
use c8s_pipeline_model::resources::{ResourceList, plan_effective_resources, run_resources};
use c8s_pipeline_model::{Dag, Pipeline as PipelineDefinition, Retries, TaskPlan};
use c8s_pod_builder::RunContext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::error::Error;

/// One step of a run: its object's base name (the DAG node), the object, its
/// dependencies and timeout.
#[derive(Clone, Debug)]
pub struct RunStep {
    /// The object's name for attempt 0; retries add `-r1`, `-r2`...
    pub name: String,
    /// What to create.
    pub object: StepObject,
    /// Base names of the steps that must succeed first.
    pub after: Vec<String>,
    /// The step's own timeout, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// A `finally` step: it starts once every other step has finished.
    pub finally: bool,
    /// For a `finally` step: each outcome variable and the base name of the
    /// step object it reports (empty when a branch condition skipped it).
    pub outcome_env: Vec<(String, String)>,
    /// The user's retries of this step.
    pub retries: Option<Retries>,
}

/// What a run will do, computed from its pipeline alone.
#[derive(Clone, Debug)]
pub struct RunSteps {
    /// The steps in render order.
    pub steps: Vec<RunStep>,
    /// Their graph.
    pub dag: Dag,
    /// The run's whole timeout, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The most the run requests at once (its busiest layer), for the quota
    /// pre-check.
    pub peak_requests: ResourceList,
    /// Steps skipped by branch conditions, by name, with why.
    pub skipped: Vec<(String, String)>,
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
    let mut names: BTreeMap<(String, Option<String>), String> = BTreeMap::new();
    let mut rendered: Vec<(&TaskPlan, String, StepObject)> = Vec::new();
    for plan in plan.plans.iter().chain(&plan.finally) {
        let object = if job {
            StepObject::Job(Box::new(c8s_pod_builder::render_job(plan, &ctx)?))
        } else {
            StepObject::Pod(Box::new(c8s_pod_builder::render_pod(plan, &ctx)?))
        };
        let name = c8s_pod_builder::object_name(plan, &ctx);
        names.insert(
            (plan.identity.step.clone(), plan.identity.matrix_id.clone()),
            name.clone(),
        );
        rendered.push((plan, name, object));
    }
    let mut layer_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, layer) in plan.layers.iter().enumerate() {
        for step in layer {
            layer_of.insert(step, i);
        }
    }
    let mut layers = vec![Vec::new(); plan.layers.len()];
    let mut finally_layer = Vec::new();
    let mut steps = Vec::new();
    for (task, name, object) in rendered {
        let definition = pipeline.step(&task.identity.step);
        let after = definition
            .map(|s| s.depends_on.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|dep| {
                names
                    .get(&(dep.clone(), task.identity.matrix_id.clone()))
                    .cloned()
            })
            .collect();
        if task.finally {
            // Finally steps run after every layer: they count as one more.
            finally_layer.push(plan_effective_resources(task));
        } else if let Some(layer) = layer_of
            .get(task.identity.step.as_str())
            .and_then(|i| layers.get_mut(*i))
        {
            layer.push(plan_effective_resources(task));
        }
        let outcome_env = if task.finally {
            pipeline
                .steps
                .iter()
                .map(|other| {
                    let object = names
                        .get(&(other.name.clone(), task.identity.matrix_id.clone()))
                        .cloned()
                        .unwrap_or_default();
                    (step_status_env(&other.name), object)
                })
                .collect()
        } else {
            Vec::new()
        };
        steps.push(RunStep {
            name,
            object,
            after,
            timeout_ms: task.timeout_seconds.map(|s| s.saturating_mul(1000)),
            finally: task.finally,
            outcome_env,
            retries: task.retries.clone(),
        });
    }
    if !finally_layer.is_empty() {
        layers.push(finally_layer);
    }
    let dag = Dag::new(steps.iter().map(|s| (s.name.as_str(), s.after.iter())))
        .map_err(|e| Error::Pipeline(e.to_string()))?;
    let peak = run_resources(layers.iter().map(|l| l.iter())).peak;
    let timeout_ms = pipeline
        .timeout
        .as_deref()
        .and_then(|t| c8s_pipeline_model::parse_duration(t).ok())
        .map(|s| s.saturating_mul(1000));
    let skipped = plan
        .skipped
        .iter()
        .map(|(step, why)| (step.clone(), why.to_string()))
        .collect();
    Ok(RunSteps {
        steps,
        dag,
        timeout_ms,
        peak_requests: peak.requests,
        skipped,
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

/// The ownerReference every object of `run` carries: the run controls it,
/// so deleting the run deletes them (garbage collection, not a reaper).
pub fn owner_of(run: &crate::crd::PipelineRun) -> Option<OwnerReference> {
    use kube::Resource;
    run.controller_owner_ref(&())
}
