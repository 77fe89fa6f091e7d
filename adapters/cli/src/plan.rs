//! `c8s plan`: what a pipeline run will do — matrix combinations, layers,
//! skipped steps, the critical path and resources — as text, JSON, or a
//! drawing (Graphviz `dot`, Mermaid).
//!
//! The critical path uses each step's `timeout` as its duration estimate, or
//! 1 second for a step without one (a timeout is the only duration a
//! pipeline file states, and it bounds the step); skipped steps count 0.
//!
//! Resources: each step's effective requests/limits are those of its pod
//! (KEP-753, including the containers c8s adds). The run's peak assumes the
//! matrix combinations run side by side and layers one after another: per
//! resource, the largest sum over one layer of every combination.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use c8s_pipeline_model::Errors;
use c8s_pipeline_model::resources::{EffectiveResources, ResourceList, RunResources};
use c8s_pipeline_model::{CriticalPath, Dag, Pipeline, RunPlan};
use clap::ValueEnum;
use serde::Serialize;

use crate::input::DirSource;

/// How `c8s plan` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For programs.
    Json,
    /// A Graphviz digraph (critical path in red, skipped steps dashed).
    Dot,
    /// A Mermaid flowchart (same highlighting).
    Mermaid,
}

/// Everything `c8s plan` shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    run: RunPlan,
    critical_path: CriticalPath,
    steps: Vec<StepRow>,
    resources: RunResources,
    #[serde(skip)]
    edges: Vec<(String, String)>,
}

/// One step in the report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StepRow {
    name: String,
    layer: usize,
    depends_on: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
    sidecars: Vec<String>,
    effective: EffectiveResources,
}

/// Parses `file` (sidecar files relative to its directory), expands it for
/// `branch` and gathers the report.
pub fn plan(file: &str, bytes: &[u8], branch: Option<&str>) -> Result<PlanReport, Errors> {
    let text = c8s_sidecar_core::yaml::as_utf8(file, bytes).map_err(c8s_pipeline_model::Error::document)?;
    let pipeline = c8s_pipeline_model::parse_pipeline(file, text, &DirSource::beside(file))?;
    let run = pipeline.expand(branch)?;
    let dag = pipeline.dag().map_err(|e| {
        Errors::from(c8s_pipeline_model::Error::Syntax {
            at: c8s_sidecar_core::Position::file(file),
            message: e.to_string(),
        })
    })?;
    Ok(report(&pipeline, &dag, run))
}

fn report(pipeline: &Pipeline, dag: &Dag, run: RunPlan) -> PlanReport {
    // Skipped steps take no time, so the path is the one the run really waits for.
    let estimate = |step: &str| match pipeline.step(step) {
        Some(_) if run.skipped.contains_key(step) => 0,
        Some(s) => s.timeout_seconds().unwrap_or(1),
        None => 0,
    };
    let critical_path = dag.critical_path(estimate);
    let mut by_step: BTreeMap<&str, EffectiveResources> = BTreeMap::new();
    for plan in &run.plans {
        by_step
            .entry(plan.identity.step.as_str())
            .or_insert_with(|| c8s_pipeline_model::plan_effective_resources(plan));
    }
    let resources = run.resources();
    let steps = run
        .layers
        .iter()
        .enumerate()
        .flat_map(|(layer, names)| names.iter().map(move |n| (layer, n)))
        .filter_map(|(layer, name)| {
            let step = pipeline.step(name)?;
            Some(StepRow {
                name: name.clone(),
                layer: layer + 1,
                depends_on: dag.dependencies(name).into_iter().map(str::to_owned).collect(),
                timeout_seconds: step.timeout_seconds(),
                skipped: run.skipped.get(name).map(ToString::to_string),
                sidecars: step
                    .sidecars
                    .iter()
                    .chain(&step.loaded_sidecars)
                    .map(|s| s.name.clone())
                    .collect(),
                effective: by_step.get(name.as_str()).cloned().unwrap_or_default(),
            })
        })
        .collect();
    let edges = dag
        .steps()
        .flat_map(|s| {
            dag.dependencies(s)
                .into_iter()
                .map(move |d| (d.to_owned(), s.to_owned()))
        })
        .collect();
    PlanReport {
        run,
        critical_path,
        steps,
        resources,
        edges,
    }
}

/// The report in `format`.
pub fn render(report: &PlanReport, format: Format) -> String {
    match format {
        Format::Text => text(report),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Dot => dot(report),
        Format::Mermaid => mermaid(report),
    }
}

fn list(list: &ResourceList) -> String {
    if list.is_empty() {
        return "-".to_owned();
    }
    let parts: Vec<String> = list.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

fn text(r: &PlanReport) -> String {
    let mut out = String::new();
    let branch = r
        .run
        .branch
        .as_deref()
        .unwrap_or("any (conditions not evaluated)");
    let _ = writeln!(out, "pipeline {} on branch {branch}", r.run.pipeline);
    if r.run.combinations.is_empty() {
        let _ = writeln!(out, "matrix: none (1 run)");
    } else {
        let _ = writeln!(out, "matrix: {} combinations", r.run.combinations.len());
        for c in &r.run.combinations {
            let _ = writeln!(out, "  {}  {}", c.id, c.label());
        }
    }
    let _ = writeln!(out, "layers:");
    for (i, layer) in r.run.layers.iter().enumerate() {
        let _ = writeln!(out, "  {}: {}", i + 1, layer.join(", "));
    }
    if r.run.skipped.is_empty() {
        let _ = writeln!(out, "skipped: none");
    } else {
        let _ = writeln!(out, "skipped:");
        for (step, reason) in &r.run.skipped {
            let _ = writeln!(out, "  {step}: {reason}");
        }
    }
    let _ = writeln!(
        out,
        "critical path: {} ({}s; estimate: each step's timeout, 1s without one)",
        r.critical_path.steps.join(" -> "),
        r.critical_path.total
    );
    let _ = writeln!(out, "steps (effective resources of one pod):");
    let _ = writeln!(
        out,
        "  {:<20} {:>5} {:>8}  {:<28} {:<28} SIDECARS",
        "STEP", "LAYER", "TIMEOUT", "REQUESTS", "LIMITS"
    );
    for s in &r.steps {
        let timeout = s.timeout_seconds.map_or("-".to_owned(), |t| format!("{t}s"));
        let name = if s.skipped.is_some() {
            format!("{} (skipped)", s.name)
        } else {
            s.name.clone()
        };
        let sidecars = if s.sidecars.is_empty() {
            "-".to_owned()
        } else {
            s.sidecars.join(",")
        };
        let _ = writeln!(
            out,
            "  {:<20} {:>5} {:>8}  {:<28} {:<28} {sidecars}",
            name,
            s.layer,
            timeout,
            list(&s.effective.requests),
            list(&s.effective.limits)
        );
    }
    if !r.run.finally.is_empty() {
        let mut names: Vec<&str> = r.run.finally.iter().map(|p| p.identity.step.as_str()).collect();
        names.dedup();
        let _ = writeln!(
            out,
            "finally (after every other step, whatever the outcome): {}",
            names.join(", ")
        );
    }
    let _ = writeln!(out, "run ({} pods):", r.run.plans.len() + r.run.finally.len());
    let _ = writeln!(out, "  peak requests:  {}", list(&r.resources.peak.requests));
    let _ = writeln!(out, "  peak limits:    {}", list(&r.resources.peak.limits));
    let _ = writeln!(out, "  total requests: {}", list(&r.resources.total.requests));
    out
}

fn on_critical_path(r: &PlanReport, from: &str, to: &str) -> bool {
    r.critical_path
        .steps
        .windows(2)
        .any(|w| w[0] == from && w[1] == to)
}

fn dot(r: &PlanReport) -> String {
    let mut out = format!(
        "digraph {:?} {{\n  rankdir=LR;\n  node [shape=box];\n",
        r.run.pipeline
    );
    for s in &r.steps {
        let mut attrs = Vec::new();
        if r.critical_path.steps.contains(&s.name) {
            attrs.push("color=red, penwidth=2".to_owned());
        }
        if s.skipped.is_some() {
            attrs.push("style=dashed, fontcolor=gray".to_owned());
        }
        if attrs.is_empty() {
            let _ = writeln!(out, "  {:?};", s.name);
        } else {
            let _ = writeln!(out, "  {:?} [{}];", s.name, attrs.join(", "));
        }
    }
    for (from, to) in &r.edges {
        let style = if on_critical_path(r, from, to) {
            " [color=red, penwidth=2]"
        } else {
            ""
        };
        let _ = writeln!(out, "  {from:?} -> {to:?}{style};");
    }
    out.push_str("}\n");
    out
}

fn mermaid(r: &PlanReport) -> String {
    let mut out = String::from("flowchart LR\n");
    for s in &r.steps {
        let label = if s.skipped.is_some() {
            format!("{} (skipped)", s.name)
        } else {
            s.name.clone()
        };
        let _ = writeln!(out, "  {}[\"{label}\"]", mermaid_id(&s.name));
    }
    let mut critical_links = Vec::new();
    for (i, (from, to)) in r.edges.iter().enumerate() {
        let _ = writeln!(out, "  {} --> {}", mermaid_id(from), mermaid_id(to));
        if on_critical_path(r, from, to) {
            critical_links.push(i.to_string());
        }
    }
    out.push_str("  classDef critical stroke:#d00,stroke-width:3px\n");
    out.push_str("  classDef skipped stroke-dasharray:5 5,color:#888\n");
    let critical: Vec<String> = r.critical_path.steps.iter().map(|s| mermaid_id(s)).collect();
    if !critical.is_empty() {
        let _ = writeln!(out, "  class {} critical", critical.join(","));
    }
    let skipped: Vec<String> = r.run.skipped.keys().map(|s| mermaid_id(s)).collect();
    if !skipped.is_empty() {
        let _ = writeln!(out, "  class {} skipped", skipped.join(","));
    }
    if !critical_links.is_empty() {
        let _ = writeln!(
            out,
            "  linkStyle {} stroke:#d00,stroke-width:3px",
            critical_links.join(",")
        );
    }
    out
}

/// Step names are DNS labels; `-` is fine in Mermaid ids but `end` is a keyword.
fn mermaid_id(step: &str) -> String {
    format!("s_{}", step.replace('-', "_"))
}
