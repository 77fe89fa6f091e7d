//! `render_pod` and `render_job`: a plan's containers in `pod_layout` order,
//! the volumes they need, names, labels, and the Job wrapper. Every object is
//! validated before it is returned.

use c8s_pipeline_model::{ContainerRole, TaskPlan, pod_layout};
use c8s_sidecar_core::paths::{self, PathError};
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::containers::{
    self, ARTIFACTS_VOLUME, CACHE_VOLUME, GIT_CREDENTIALS_VOLUME, HOME_VOLUME, WORKSPACE_VOLUME,
};
use crate::context::{RunContext, SidecarMode};
use crate::names::{self, NameParts};
use crate::overrides;
use crate::{Error, contract, validate};

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

/// The pipeline name that applies: the context's override or the plan's.
fn pipeline_name<'a>(plan: &'a TaskPlan, ctx: &'a RunContext) -> &'a str {
    if ctx.pipeline.is_empty() {
        &plan.identity.pipeline
    } else {
        &ctx.pipeline
    }
}

/// The name `render_pod`/`render_job` give `plan` under `ctx`.
pub fn object_name(plan: &TaskPlan, ctx: &RunContext) -> String {
    names::object_name(&NameParts {
        pipeline: pipeline_name(plan, ctx),
        step: &plan.identity.step,
        matrix_id: plan.identity.matrix_id.as_deref(),
        build: ctx.build,
        run_id: &ctx.run_id,
    })
}

fn render_parts(plan: &TaskPlan, ctx: &RunContext, job: bool) -> Result<(ObjectMeta, core::PodSpec), Error> {
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
    let name = object_name(plan, ctx);
    let plan = &*overrides::with_ephemeral_storage(plan);
    let mut metadata = metadata(plan, ctx, &name)?;
    let mut spec = pod_spec(plan, ctx, mode);
    overrides::apply(plan, ctx, &mut metadata, &mut spec)?;
    Ok((metadata, spec))
}

fn metadata(plan: &TaskPlan, ctx: &RunContext, name: &str) -> Result<ObjectMeta, Error> {
    for key in ctx.labels.keys().chain(ctx.annotations.keys()) {
        if contract::is_reserved_key(key) {
            return Err(Error::ReservedLabel { key: key.clone() });
        }
    }
    let pipeline = pipeline_name(plan, ctx);
    let mut labels = ctx.labels.clone();
    labels.extend([
        (contract::NAME_LABEL.to_owned(), contract::APP_NAME.to_owned()),
        (contract::INSTANCE_LABEL.to_owned(), name.to_owned()),
        (
            contract::COMPONENT_LABEL.to_owned(),
            contract::COMPONENT_STEP.to_owned(),
        ),
        (
            contract::MANAGED_BY_LABEL.to_owned(),
            contract::MANAGED_BY_VALUE.to_owned(),
        ),
        (contract::PIPELINE_LABEL.to_owned(), names::label_value(pipeline)),
        (contract::RUN_LABEL.to_owned(), names::label_value(&ctx.run_id)),
        (
            contract::STEP_LABEL.to_owned(),
            names::label_value(&plan.identity.step),
        ),
        (contract::BUILD_LABEL.to_owned(), ctx.build.to_string()),
    ]);
    if let Some(id) = &plan.identity.matrix_id {
        labels.insert(contract::MATRIX_KEY.to_owned(), names::label_value(id));
    }
    // A step the user retries says which attempt it is; the runner sets it on each pod.
    if plan.retries.as_ref().is_some_and(|r| r.limit > 0) {
        labels.insert(
            c8s_pipeline_model::finally::ATTEMPT_LABEL.to_owned(),
            "1".to_owned(),
        );
    }
    // The unshortened facts, for people and tools (label values may be hashed).
    let mut annotations = ctx.annotations.clone();
    let facts = [
        (contract::PIPELINE_ANNOTATION, pipeline),
        (contract::STEP_ANNOTATION, plan.identity.step.as_str()),
        (contract::RUN_ID_ANNOTATION, ctx.run_id.as_str()),
        (contract::REPOSITORY_ANNOTATION, ctx.repository.as_str()),
        (contract::COMMIT_ANNOTATION, ctx.commit.as_str()),
        (contract::BRANCH_ANNOTATION, ctx.branch.as_str()),
    ];
    for (key, value) in facts {
        if !value.is_empty() {
            annotations.insert(key.to_owned(), value.to_owned());
        }
    }
    if !plan.identity.matrix.is_empty() {
        let matrix: Vec<String> = plan
            .identity
            .matrix
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        annotations.insert(contract::MATRIX_KEY.to_owned(), matrix.join(","));
    }
    Ok(ObjectMeta {
        name: Some(name.to_owned()),
        namespace: (!ctx.namespace.is_empty()).then(|| ctx.namespace.clone()),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: ctx.owner_reference.clone().map(|o| vec![o]),
        ..Default::default()
    })
}

/// Artifact key of `step`'s outputs in this run: `<pipeline>/<run>/<matrix>/<step>`.
fn artifact_dir(plan: &TaskPlan, ctx: &RunContext, step: &str) -> String {
    let matrix = plan.identity.matrix_id.as_deref().unwrap_or("");
    [pipeline_name(plan, ctx), &ctx.run_id, matrix, step]
        .map(names::path_segment)
        .join("/")
}

fn pod_spec(plan: &TaskPlan, ctx: &RunContext, mode: SidecarMode) -> core::PodSpec {
    let cache_prefix = names::path_segment(pipeline_name(plan, ctx));
    let shared_mounts = containers::main_mounts(plan, &cache_prefix);
    let checkout = containers::checkout_dir(plan.checkout.as_deref());
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
    let (inputs, outputs) = (plan.artifact_inputs(), plan.saved_outputs());
    if !inputs.is_empty() || !outputs.is_empty() {
        volumes.push(pvc(ARTIFACTS_VOLUME, &ctx.artifact_claim));
    }
    if !plan.caches.is_empty() {
        volumes.push(pvc(CACHE_VOLUME, &ctx.cache_claim));
    }

    let mut init = Vec::new();
    let mut regular = Vec::new();
    let mut legacy_sidecars = Vec::new();
    let (mut next_input, mut next_sidecar) = (inputs.iter(), plan.sidecars.iter());
    for laid_out in pod_layout(plan) {
        match (laid_out.role, laid_out.name.as_str()) {
            (ContainerRole::Init, contract::GIT_CLONE) => init.push(containers::git_clone(ctx, &checkout)),
            (ContainerRole::Init, name) => {
                if let Some(input) = next_input.next() {
                    let artifact = format!(
                        "{}/{}.tar",
                        artifact_dir(plan, ctx, &input.step),
                        input.output.trim_end_matches('/')
                    );
                    let path = input.path.trim_end_matches('/');
                    init.push(containers::extract_input(name, ctx, &artifact, path, &checkout));
                }
            }
            (ContainerRole::Sidecar, _) => {
                if let Some(config) = next_sidecar.next() {
                    let config = crate::services::with_defaults(config);
                    let scratch: Vec<String> = (0..config.scratch.len())
                        .map(|i| names::scratch_volume_name(&config.name, i))
                        .collect();
                    for volume in &scratch {
                        volumes.push(core::Volume {
                            name: volume.clone(),
                            empty_dir: Some(Default::default()),
                            ..Default::default()
                        });
                    }
                    let container = containers::pod_sidecar(
                        &config,
                        ctx,
                        mode,
                        shared_mounts.clone(),
                        &scratch,
                        &checkout,
                    );
                    match mode {
                        SidecarMode::Native => init.push(container),
                        SidecarMode::Legacy => legacy_sidecars.push(container),
                    }
                }
            }
            (ContainerRole::Regular, contract::MAIN) => {
                let waits = match mode {
                    SidecarMode::Legacy => containers::legacy_waits(plan),
                    SidecarMode::Native => String::new(),
                };
                regular.push(containers::main(
                    plan,
                    ctx,
                    shared_mounts.clone(),
                    &checkout,
                    &waits,
                ));
            }
            (ContainerRole::Regular, _) => {
                let dir = artifact_dir(plan, ctx, &plan.identity.step);
                regular.push(containers::artifact_helper(ctx, &dir, &outputs, &checkout));
            }
        }
    }
    // Legacy sidecars are plain containers after main (and artifact-helper).
    regular.extend(legacy_sidecars);

    let has_account = ctx.service_account.is_some();
    let mut spec = core::PodSpec {
        // Every pod gets a deadline: a stuck step (or a sidecar that never gets
        // ready, restarted by the kubelet) ends at the latest here.
        active_deadline_seconds: Some(plan.timeout_seconds.map_or(ctx.default_deadline_seconds, |s| {
            i64::try_from(s).unwrap_or(i64::MAX)
        })),
        automount_service_account_token: (!has_account).then_some(false),
        containers: regular,
        enable_service_links: Some(false),
        host_aliases: crate::service_names::host_aliases(plan),
        init_containers: Some(init),
        node_selector: (!ctx.node_selector.is_empty()).then(|| ctx.node_selector.clone()),
        priority_class_name: ctx.priority_class.clone(),
        restart_policy: Some("Never".to_owned()),
        security_context: Some(containers::pod_security_context(ctx)),
        service_account_name: ctx.service_account.clone(),
        tolerations: (!ctx.tolerations.is_empty()).then(|| ctx.tolerations.clone()),
        volumes: Some(volumes),
        ..Default::default()
    };
    crate::concourse::apply(plan, &mut spec);
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
