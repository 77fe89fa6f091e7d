//! `render_pod` and `render_job`: one walk from a plan to a validated object.
//! The plan and context are checked, the pod's identity (names, labels,
//! annotations, paths) is computed once (the `identity` module), the containers
//! are built from it ([`crate::containers`]), the pod spec is put together
//! here, the overrides applied, and the object validated.

use c8s_pipeline_model::TaskPlan;
use c8s_sidecar_core::paths::{self, PathError};
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::containers::{self, PodContainers};
use crate::context::{RunContext, SidecarMode};
use crate::error::Error;
use crate::identity::PodIdentity;
use crate::parts::{
    ARTIFACTS_VOLUME, CACHE_VOLUME, GIT_CREDENTIALS_VOLUME, HOME_VOLUME, WORKSPACE_VOLUME,
    pod_security_context,
};
use crate::{concourse, overrides, service_names, validate};

pub use crate::identity::object_name;

/// Renders `plan` as a Pod (restartPolicy Never), validated.
///
/// ```
/// use c8s_pod_builder::{render_pod, RunContext};
/// use c8s_pod_builder::model::{PlanIdentity, TaskPlan};
/// let plan = TaskPlan::new(PlanIdentity::new("shop", "unit"), "golang:1.23");
/// let pod = render_pod(&plan, &RunContext::new("run-1", 3)).unwrap();
/// assert!(pod.metadata.name.unwrap().starts_with("shop-unit-b3-"));
/// ```
pub fn render_pod(plan: &TaskPlan, ctx: &RunContext) -> Result<core::Pod, Error> {
    let (metadata, spec) = render_parts(plan, ctx, false)?;
    let pod = core::Pod {
        metadata,
        spec: Some(spec),
        ..Default::default()
    };
    validate::validate_pod(&pod)?;
    Ok(pod)
}

/// Renders `plan` as a `batch/v1` Job: `backoffLimit: 0`, the step timeout as
/// `activeDeadlineSeconds`, `ttlSecondsAfterFinished`, and a pod failure
/// policy that ignores node disruptions. Validated.
pub fn render_job(plan: &TaskPlan, ctx: &RunContext) -> Result<batch::Job, Error> {
    let (metadata, spec) = render_parts(plan, ctx, true)?;
    let template_meta = ObjectMeta {
        labels: metadata.labels.clone(),
        annotations: metadata.annotations.clone(),
        ..Default::default()
    };
    let job = batch::Job {
        spec: Some(batch::JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: spec.active_deadline_seconds,
            ttl_seconds_after_finished: Some(ctx.job_ttl_seconds),
            pod_failure_policy: Some(batch::PodFailurePolicy {
                rules: vec![batch::PodFailurePolicyRule {
                    action: "Ignore".to_owned(),
                    on_pod_conditions: Some(vec![disruption_target()]),
                    ..Default::default()
                }],
            }),
            template: core::PodTemplateSpec {
                metadata: Some(template_meta),
                spec: Some(spec),
            },
            ..Default::default()
        }),
        metadata,
        ..Default::default()
    };
    validate::validate_job(&job)?;
    Ok(job)
}

/// `{type: DisruptionTarget, status: "True"}`; `status` became optional in 1.35.
fn disruption_target() -> batch::PodFailurePolicyOnPodConditionsPattern {
    #[allow(unused_mut)]
    let mut pattern = batch::PodFailurePolicyOnPodConditionsPattern {
        type_: "DisruptionTarget".to_owned(),
        ..Default::default()
    };
    k8s_openapi::k8s_if_le_1_34! {
        pattern.status = "True".to_owned();
    }
    k8s_openapi::k8s_if_ge_1_35! {
        pattern.status = Some("True".to_owned());
    }
    pattern
}

fn render_parts(plan: &TaskPlan, ctx: &RunContext, job: bool) -> Result<(ObjectMeta, core::PodSpec), Error> {
    let mode = check(plan, ctx, job)?;
    let identity = PodIdentity::new(plan, ctx)?;
    let containers = containers::for_pod(plan, ctx, &identity, mode);
    let mut spec = pod_spec(plan, ctx, &identity, containers);
    overrides::apply(plan, ctx, &mut spec)?;
    Ok((identity.metadata, spec))
}

/// Checks `plan` and `ctx` before anything is built, and what the plan asks
/// of the sidecar mode that applies (returned) and of a Job.
fn check(plan: &TaskPlan, ctx: &RunContext, job: bool) -> Result<SidecarMode, Error> {
    plan.validate().map_err(Error::InvalidPlan)?;
    let mode = ctx.effective_sidecar_mode()?;
    ctx.check()?;
    check_paths(plan)?;
    if mode == SidecarMode::Legacy && !plan.sidecars.is_empty() {
        if job {
            return Err(Error::LegacyJobWithSidecars {
                step: plan.identity.step.clone(),
            });
        }
        if plan.command.is_empty() && !containers::legacy_waits(plan).is_empty() {
            return Err(Error::LegacyNeedsCommand {
                step: plan.identity.step.clone(),
            });
        }
    }
    if !plan.outputs.is_empty() && plan.command.is_empty() {
        return Err(Error::OutputsNeedCommand {
            step: plan.identity.step.clone(),
        });
    }
    if (!plan.results.is_empty() || !plan.result_env.is_empty()) && plan.command.is_empty() {
        return Err(Error::ResultsNeedCommand {
            step: plan.identity.step.clone(),
        });
    }
    if !plan.local_vars.is_empty() && plan.command.is_empty() {
        return Err(Error::LocalVarsNeedCommand {
            step: plan.identity.step.clone(),
        });
    }
    Ok(mode)
}

/// The pod's volumes: workspace and homes, git credentials when the context
/// names a Secret, the artifact and cache claims when the plan uses them, then
/// the sidecars' scratch directories.
fn volumes(
    plan: &TaskPlan,
    ctx: &RunContext,
    identity: &PodIdentity,
    scratch: Vec<core::Volume>,
) -> Vec<core::Volume> {
    let size_limit = (!ctx.workspace_size_limit.is_empty())
        .then(|| k8s_openapi::apimachinery::pkg::api::resource::Quantity(ctx.workspace_size_limit.clone()));
    let mut volumes = vec![
        core::Volume {
            name: WORKSPACE_VOLUME.to_owned(),
            empty_dir: Some(core::EmptyDirVolumeSource {
                size_limit,
                ..Default::default()
            }),
            ..Default::default()
        },
        core::Volume {
            name: HOME_VOLUME.to_owned(),
            empty_dir: Some(Default::default()),
            ..Default::default()
        },
    ];
    if let Some(secret) = &ctx.git_secret {
        volumes.push(core::Volume {
            name: GIT_CREDENTIALS_VOLUME.to_owned(),
            secret: Some(core::SecretVolumeSource {
                secret_name: Some(secret.clone()),
                // Read-only for the fsGroup; ssh accepts a key that another UID (root) owns.
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let pvc = |name: &str, claim: &str| core::Volume {
        name: name.to_owned(),
        persistent_volume_claim: Some(core::PersistentVolumeClaimVolumeSource {
            claim_name: claim.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    if !identity.inputs.is_empty() || !plan.saved_outputs().is_empty() {
        volumes.push(pvc(ARTIFACTS_VOLUME, &ctx.artifact_claim));
    }
    if !plan.caches.is_empty() {
        volumes.push(pvc(CACHE_VOLUME, &ctx.cache_claim));
    }
    volumes.extend(scratch);
    volumes
}

/// The pod spec around `containers`: volumes, deadline, security context,
/// service names and the context's scheduling settings, then what Concourse
/// steps add.
fn pod_spec(
    plan: &TaskPlan,
    ctx: &RunContext,
    identity: &PodIdentity,
    containers: PodContainers,
) -> core::PodSpec {
    let has_account = ctx.pod.service_account_name.is_some();
    let mut spec = core::PodSpec {
        // Every pod gets a deadline: a stuck step (or a sidecar that never gets
        // ready, restarted by the kubelet) ends at the latest here.
        active_deadline_seconds: Some(plan.timeout_seconds.map_or(ctx.default_deadline_seconds, |s| {
            i64::try_from(s).unwrap_or(i64::MAX)
        })),
        automount_service_account_token: (!has_account).then_some(false),
        containers: containers.regular,
        enable_service_links: Some(false),
        host_aliases: service_names::host_aliases(plan),
        init_containers: Some(containers.init),
        node_selector: (!ctx.pod.node_selector.is_empty()).then(|| ctx.pod.node_selector.clone()),
        priority_class_name: ctx.pod.priority_class_name.clone(),
        restart_policy: Some("Never".to_owned()),
        security_context: Some(pod_security_context(ctx)),
        service_account_name: ctx.pod.service_account_name.clone(),
        tolerations: (!ctx.pod.tolerations.is_empty()).then(|| ctx.pod.tolerations.clone()),
        volumes: Some(volumes(plan, ctx, identity, containers.volumes)),
        ..Default::default()
    };
    concourse::apply(plan, &mut spec);
    spec
}

/// Checks the workspace-relative paths of `plan`: outputs, inputs, caches
/// must be relative without `..`; the working dir may also be absolute.
fn check_paths(plan: &TaskPlan) -> Result<(), Error> {
    let step = &plan.identity.step;
    let bad = |field: String, path: &str, reason: PathError| Error::InvalidPath {
        step: step.clone(),
        field,
        path: path.to_owned(),
        reason,
    };
    let relative = |field: String, path: &str| -> Result<(), Error> {
        paths::workspace_relative(path).map_err(|reason| bad(field, path, reason))
    };
    for (i, output) in plan.outputs.iter().enumerate() {
        relative(format!("outputs[{i}]"), output)?;
    }
    for (i, cache) in plan.caches.iter().enumerate() {
        relative(format!("caches[{i}]"), cache)?;
    }
    for (i, input) in plan.inputs.iter().enumerate() {
        relative(format!("inputs[{i}].output"), &input.output)?;
        relative(format!("inputs[{i}].path"), &input.path)?;
    }
    if let Some(dir) = &plan.checkout {
        relative("checkout".to_owned(), dir)?;
    }
    if let Some(dir) = &plan.working_dir {
        paths::clean(dir).map_err(|reason| bad("workingDir".to_owned(), dir, reason))?;
    }
    Ok(())
}
