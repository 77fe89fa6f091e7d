//! The pipeline chart: the objects pod-builder renders, as data in
//! `values.yaml`, and one static template that applies the overrides.

use c8s_pod_builder::model::TaskPlan;
use c8s_pod_builder::{Object, RunContext, SidecarMode, render_job, render_pod};
use serde::Serialize;

use crate::chart::{Chart, chart_yaml, check_chart_name};
use crate::{Error, yaml};

const OBJECTS: &str = include_str!("templates/objects.yaml");
const NOTES: &str = include_str!("templates/pipeline-NOTES.txt");
const VALUES_HEADER: &str = include_str!("templates/pipeline-values-header.txt");

/// `run`: the run's identity.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunValues<'a> {
    build: u64,
    run_id: &'a str,
    branch: &'a str,
    commit: &'a str,
}

/// One entry of `objects`: a step's object, in one form for both sidecar
/// modes (`object`) or one per mode (`native`, `legacy`).
#[derive(Serialize)]
struct Entry<'a> {
    step: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<Object>,
    #[serde(skip_serializing_if = "Option::is_none")]
    native: Option<Object>,
    #[serde(skip_serializing_if = "Option::is_none")]
    legacy: Option<Object>,
}

/// Builds chart `name` rendering `plans` (one Pod, or Job with `job`, per
/// plan, in order) under `ctx`.
///
/// `values.yaml` holds every object as pod-builder renders it, in both
/// sidecar modes when they differ (native only when `ctx` targets
/// Kubernetes >= 1.29), so `helm template` with default values prints the
/// same objects as `c8s render` with the same context. Overridable values:
/// `namespace`, `run.commit`, `sidecarMode` and `images.<step>`; `run.build`,
/// `run.runId` and `run.branch` are fixed when the chart is generated (they
/// decide object names and which steps run), and the templates refuse other
/// values with a message that says so.
pub fn pipeline_chart(name: &str, plans: &[TaskPlan], ctx: &RunContext, job: bool) -> Result<Chart, Error> {
    check_chart_name(name)?;
    if plans.is_empty() {
        return Err(Error::NoPlans);
    }
    let default_mode = ctx.effective_sidecar_mode().map_err(|source| Error::Render {
        what: "the run context".to_owned(),
        source,
    })?;
    let native_ok = ctx.kubernetes_minor >= c8s_pod_builder::context::NATIVE_SIDECARS_MIN_MINOR;
    let native_ctx = ctx.clone().with_sidecar_mode(SidecarMode::Native);
    let legacy_ctx = ctx.clone().with_sidecar_mode(SidecarMode::Legacy);
    let render = |plan: &TaskPlan, ctx: &RunContext| -> Result<Object, Error> {
        let rendered = if job {
            render_job(plan, ctx).map(Object::from)
        } else {
            render_pod(plan, ctx).map(Object::from)
        };
        rendered.map_err(|source| Error::Render {
            what: format!("step {:?}", plan.identity.step),
            source,
        })
    };
    let mut entries = Vec::with_capacity(plans.len());
    for plan in plans {
        // A legacy Job with sidecars could never complete: it has no legacy form.
        let legacy = match render(plan, &legacy_ctx) {
            Err(Error::Render {
                source: c8s_pod_builder::Error::LegacyJobWithSidecars { .. },
                ..
            }) if native_ok => None,
            other => Some(other?),
        };
        let native = if native_ok {
            Some(render(plan, &native_ctx)?)
        } else {
            None
        };
        let entry = match (native, legacy) {
            (Some(native), Some(legacy)) if native == legacy => Entry {
                step: &plan.identity.step,
                object: Some(native),
                native: None,
                legacy: None,
            },
            (native, legacy) => Entry {
                step: &plan.identity.step,
                object: None,
                native,
                legacy,
            },
        };
        entries.push(entry);
    }

    let mut values = yaml::comment(VALUES_HEADER, 0);
    values.push_str(
        "\n# The run. Only commit may change; the others are fixed at generation (names, steps).\n",
    );
    values.push_str(&yaml::entry(
        "run",
        &RunValues {
            build: ctx.build,
            run_id: &ctx.run_id,
            branch: &ctx.branch,
            commit: &ctx.commit,
        },
        0,
    )?);
    values.push_str("\n# Namespace of every object (\"\": none, kubectl -n / helm -n decides).\n");
    values.push_str(&yaml::entry("namespace", &ctx.namespace, 0)?);
    values.push_str("\n# native (restartable init containers, Kubernetes >= 1.29) or legacy.\n");
    let mode = match default_mode {
        SidecarMode::Native => "native",
        SidecarMode::Legacy => "legacy",
    };
    values.push_str(&yaml::entry("sidecarMode", &mode, 0)?);
    values.push_str("\n# Per-step image of the main container, e.g. images: { unit: golang:1.24 }.\n");
    values.push_str("images: {}\n");
    values.push_str("\n# The objects c8s rendered (data: never edited by hand, never run as templates).\n");
    values.push_str(&yaml::entry("objects", &entries, 0)?);

    let kind = if job { "Jobs" } else { "Pods" };
    let description = format!("{kind} of a c8s run of {name}, rendered by c8s");
    let mut chart = Chart::new(name);
    chart.add("Chart.yaml", chart_yaml(name, &description));
    chart.add("values.yaml", values);
    chart.add("templates/objects.yaml", OBJECTS.to_owned());
    chart.add("templates/NOTES.txt", NOTES.to_owned());
    Ok(chart)
}
