//! A pod's identity, computed once from the plan and the run context before
//! any container is built: its name, labels and annotations (the context's,
//! c8s's own, then the plan's pod overrides'), and the names and paths derived
//! from the pipeline, run and step (checkout, cache prefix, artifact keys,
//! scratch volumes). Everything after reads it; nothing recomputes it.

use std::collections::BTreeMap;

use c8s_pipeline_model::TaskPlan;
use c8s_sidecar_core::contract;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::context::RunContext;
use crate::error::Error;
use crate::names::{self, NameParts};
use crate::parts::checkout_dir;
use crate::services;

/// Where an artifact input comes from and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputPaths {
    /// The tar file, relative to the artifact volume.
    pub(crate) artifact: String,
    /// The directory it is unpacked into, relative to the workspace.
    pub(crate) path: String,
    /// The one file of the artifact unpacked, when only one is.
    pub(crate) member: Option<String>,
}

/// Everything about a pod that its plan and run decide before any container:
/// the object's metadata and the names and paths the containers share.
#[derive(Debug, Clone)]
pub(crate) struct PodIdentity {
    /// Name, namespace, labels, annotations and owner of the object.
    pub(crate) metadata: ObjectMeta,
    /// The checkout's absolute path.
    pub(crate) checkout: String,
    /// The pipeline's directory on the cache volume.
    pub(crate) cache_prefix: String,
    /// One entry per artifact input, in [`TaskPlan::artifact_inputs`] order.
    pub(crate) inputs: Vec<InputPaths>,
    /// This step's directory on the artifact volume.
    pub(crate) outputs_dir: String,
    /// The scratch volume names of each sidecar, in plan order.
    pub(crate) scratch_volumes: Vec<Vec<String>>,
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

impl PodIdentity {
    /// The identity of `plan`'s pod under `ctx`. Fails when the context or
    /// the plan's pod overrides set a label or annotation key c8s reserves.
    pub(crate) fn new(plan: &TaskPlan, ctx: &RunContext) -> Result<Self, Error> {
        let pod = &plan.pod;
        let extra = [
            &ctx.pod.labels,
            &ctx.pod.annotations,
            &pod.labels,
            &pod.annotations,
        ];
        if let Some(key) = extra
            .iter()
            .flat_map(|map| map.keys())
            .find(|key| contract::is_reserved_key(key))
        {
            return Err(Error::ReservedLabel { key: key.clone() });
        }
        let pipeline = pipeline_name(plan, ctx);
        let name = object_name(plan, ctx);
        let mut labels = labels(plan, ctx, pipeline, &name);
        let mut annotations = annotations(plan, ctx, pipeline);
        // The plan's own labels and annotations never replace the context's or c8s's.
        for (k, v) in &pod.labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &pod.annotations {
            annotations.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let metadata = ObjectMeta {
            name: Some(name),
            namespace: (!ctx.namespace.is_empty()).then(|| ctx.namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: ctx.owner_reference.clone().map(|o| vec![o]),
            ..Default::default()
        };
        // Artifact key of a step's outputs in this run: `<pipeline>/<run>/<matrix>/<step>`.
        let matrix = plan.identity.matrix_id.as_deref().unwrap_or("");
        let artifact_dir = |step: &str| {
            [pipeline, &ctx.run_id, matrix, step]
                .map(names::path_segment)
                .join("/")
        };
        let inputs = plan
            .artifact_inputs()
            .iter()
            .map(|input| InputPaths {
                artifact: format!(
                    "{}/{}.tar",
                    artifact_dir(&input.step),
                    input.output.trim_end_matches('/')
                ),
                path: input.path.trim_end_matches('/').to_owned(),
                member: input.member.clone(),
            })
            .collect();
        let scratch_volumes = plan
            .sidecars
            .iter()
            .map(|config| {
                (0..services::scratch_count(config))
                    .map(|i| names::scratch_volume_name(&config.name, i))
                    .collect()
            })
            .collect();
        Ok(Self {
            metadata,
            checkout: checkout_dir(plan.checkout.as_deref()),
            cache_prefix: names::path_segment(pipeline),
            inputs,
            outputs_dir: artifact_dir(&plan.identity.step),
            scratch_volumes,
        })
    }
}

/// The context's labels with c8s's own: app, instance, pipeline, run, step,
/// build, matrix id and (for a step the user retries) the attempt.
fn labels(plan: &TaskPlan, ctx: &RunContext, pipeline: &str, name: &str) -> BTreeMap<String, String> {
    let mut labels = ctx.pod.labels.clone();
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
    labels
}

/// The context's annotations with the unshortened facts, for people and tools
/// (label values may be hashed).
fn annotations(plan: &TaskPlan, ctx: &RunContext, pipeline: &str) -> BTreeMap<String, String> {
    let mut annotations = ctx.pod.annotations.clone();
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
    annotations
}
