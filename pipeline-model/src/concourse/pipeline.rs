//! A Concourse `pipeline.yml`, read strictly with located errors:
//! `resources`, `resource_types`, `jobs` (with `plan`, hooks, `serial`,
//! `max_in_flight`), `groups`, `display`, `var_sources`. The rules follow
//! `atc/config.go` and `atc/configvalidate`: names unique, every `resource:`
//! and `passed:` names something that exists, `passed:` jobs use the resource.

use c8s_sidecar_core::{FieldPath, SourceReader};

use crate::error::Errors;

use super::fields::Fields;
use super::node::{self, At, Node, Report};
pub use super::steps::HOOKS;
use super::steps::{Step, StepKind, read_plan};
use super::vars::{Vars, interpolate_lenient, lenient_path};

/// A parsed pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConcoursePipeline {
    /// The pipeline's name (the file stem unless given).
    pub name: String,
    /// `resources`.
    pub resources: Vec<Resource>,
    /// `resource_types`.
    pub resource_types: Vec<Resource>,
    /// `jobs`.
    pub jobs: Vec<Job>,
    /// `groups`: name and job names.
    pub groups: Vec<(String, Vec<String>)>,
    /// Things c8s accepted but does not do, one sentence each (shown by `validate`).
    pub notes: Vec<String>,
    /// The `-v` values it was read with (image references of resources use them).
    pub vars: Vars,
}

/// A resource or resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resource {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: String,
    /// `source`, as written (vars in it are resolved at run time from a Secret).
    pub source: Node,
    /// A pinned `version`.
    pub version: Option<Node>,
    /// `privileged` (resource types).
    pub privileged: bool,
    /// `check_every` in seconds: how often its versions are checked
    /// (default one minute; `None`: `never`).
    pub check_every: Option<u64>,
    /// `webhook_token`: the token of the webhook that asks for a check of
    /// it at once (its `((vars))` given with `-v`).
    pub webhook_token: Option<String>,
    /// Where it is written.
    pub at: At,
}

/// How often Concourse checks a resource when `check_every` is not given:
/// the web node's `--resource-checking-interval`, default `1m`
/// (`atc/atccmd/command.go`).
pub const DEFAULT_CHECK_EVERY: u64 = 60;

/// A job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Job {
    /// Its name.
    pub name: String,
    /// `serial`/`serial_groups`/`max_in_flight`: how many builds may run at once (None: any).
    pub max_in_flight: Option<u64>,
    /// `serial_groups`: the builds of every job in one of these groups run
    /// one at a time across the group.
    pub serial_groups: Vec<String>,
    /// The build plan.
    pub plan: Vec<Step>,
    /// Job-level hooks, by kind (`on_success`, `on_failure`, `on_error`, `on_abort`, `ensure`).
    pub hooks: Vec<(String, Step)>,
    /// The local vars whose values an `across` of the job takes
    /// (`values: ((.:list))`): a runner reads their `load_var`s' files.
    pub across_reads: std::collections::BTreeSet<String>,
    /// Where it is written.
    pub at: At,
}

impl Job {
    /// The jobs this job's gets name in `passed:`.
    pub fn passed(&self) -> Vec<String> {
        let mut out = Vec::new();
        for step in &self.plan {
            step.visit(&mut |s| {
                if let StepKind::Get { passed, .. } = &s.kind {
                    out.extend(passed.iter().cloned());
                }
            });
        }
        out.sort();
        out.dedup();
        out
    }
}

const TOP_KEYS: [&str; 6] = [
    "resources",
    "resource_types",
    "jobs",
    "groups",
    "display",
    "var_sources",
];

/// Whether `text` looks like a Concourse pipeline (a top-level `jobs` list).
pub fn is_pipeline(doc: &Node) -> bool {
    doc.get("jobs")
        .is_some_and(|j| matches!(j.value, node::Value::Seq(_)))
}

/// Parses a pipeline. `-v` values are interpolated; vars with no value may
/// stay only in resource `source`s and `params` (credentials, passed from
/// Secrets at run time); task files are read through `reader`.
pub fn parse_concourse_pipeline(
    file: &str,
    text: &str,
    vars: &Vars,
    reader: &dyn SourceReader,
) -> Result<ConcoursePipeline, Errors> {
    let mut doc = node::parse(file, text)?;
    let mut report = Report::new(file);
    // Keys Concourse ignores are not interpolated either (spruce operators are still found).
    // The copied part of an `across` step is interpolated per copy, after its `((.:var))`.
    let across = super::across::across_steps(&doc, &FieldPath::root());
    // Nor are the parts of a set_pipeline step, which c8s does not run.
    let set_pipelines = super::across::set_pipeline_steps(&doc, &FieldPath::root());
    let keep = |path: &FieldPath| {
        super::step::is_credential_path(path)
            || super::across::in_template(path, &across)
            || super::across::under_any(path, &set_pipelines)
            || matches!(path.segments(), [c8s_sidecar_core::Segment::Key(k)] if !TOP_KEYS.contains(&k.as_str()))
    };
    interpolate_lenient(&mut doc, vars, &keep, &lenient_path, &mut report);
    for entry in doc.entries().unwrap_or_default() {
        if !TOP_KEYS.contains(&entry.key.as_str()) {
            super::vars::find_templates(&entry.node, &FieldPath::root().key(&entry.key), &mut report);
        }
    }
    let mut notes = Vec::new();
    let top = Fields::new(&doc, FieldPath::root(), &TOP_KEYS, &mut Report::new(file));
    for entry in doc.entries().unwrap_or_default() {
        if !TOP_KEYS.contains(&entry.key.as_str()) {
            // Concourse ignores other top-level keys (used to hold YAML anchors); so does c8s, aloud.
            notes.push(format!(
                "{file}:{}:{}: top-level `{}` is not part of a pipeline; ignored",
                entry.at.0, entry.at.1, entry.key
            ));
        }
    }
    let Some(top) = top else {
        report.error(
            doc.at,
            &FieldPath::root(),
            format!("a pipeline is a mapping, found {}", doc.kind()),
        );
        return Err(report.finish().err().unwrap_or_else(|| Errors::new(Vec::new())));
    };
    let resources = read_resources(&top, "resources", &mut report);
    let resource_types = read_resources(&top, "resource_types", &mut report);
    let mut jobs = Vec::new();
    let jobs_path = top.at("jobs");
    if !top.has("jobs") {
        report.error(doc.at, &jobs_path, "`jobs` is required");
    }
    for (i, node) in top.list("jobs", &mut report).iter().enumerate() {
        if let Some(job) = read_job(
            node,
            &jobs_path.index(i),
            text,
            vars,
            reader,
            &mut report,
            &mut notes,
        ) {
            if jobs.iter().any(|j: &Job| j.name == job.name) {
                report.error(
                    node.at,
                    &jobs_path.index(i).key("name"),
                    format!("job `{}` is defined twice", job.name),
                );
            }
            jobs.push(job);
        }
    }
    let mut groups = Vec::new();
    let groups_path = top.at("groups");
    for (i, node) in top.list("groups", &mut report).iter().enumerate() {
        let Some(g) = Fields::new(
            node,
            groups_path.index(i),
            &["name", "jobs", "resources"],
            &mut report,
        ) else {
            continue;
        };
        let name = g.required("name", &mut report).unwrap_or_default();
        let members = g.strings("jobs", &mut report);
        for member in &members {
            let glob = member.contains('*');
            if !glob && !jobs.iter().any(|j| &j.name == member) {
                report.error(
                    node.at,
                    &groups_path.index(i).key("jobs"),
                    format!("group `{name}` lists job `{member}`, which is not defined"),
                );
            }
        }
        groups.push((name, members));
    }
    if top.has("var_sources") {
        notes.push("var_sources: c8s reads no credential manager; vars with no -v value reach containers from Secrets c8s names".to_owned());
    }
    let stem = file.rsplit('/').next().unwrap_or(file);
    let name = stem.trim_end_matches(".yml").trim_end_matches(".yaml").to_owned();
    let pipeline = ConcoursePipeline {
        name,
        resources,
        resource_types,
        jobs,
        groups,
        notes,
        vars: vars.clone(),
    };
    check_references(&pipeline, &doc, &mut report);
    report.into_result(pipeline)
}

fn read_resources(top: &Fields<'_>, key: &str, report: &mut Report<'_>) -> Vec<Resource> {
    let path = top.at(key);
    let allowed = [
        "name",
        "type",
        "source",
        "version",
        "check_every",
        "check_timeout",
        "icon",
        "tags",
        "public",
        "webhook_token",
        "expose_build_created_by",
        "privileged",
        "params",
        "defaults",
        "old_name",
        "unique_version_history",
    ];
    let mut out: Vec<Resource> = Vec::new();
    for (i, node) in top.list(key, report).iter().enumerate() {
        let at = path.index(i);
        let Some(f) = Fields::new(node, at.clone(), &allowed, report) else {
            continue;
        };
        let (Some(name), Some(kind)) = (f.required("name", report), f.required("type", report)) else {
            continue;
        };
        if out.iter().any(|r| r.name == name) {
            report.error(
                node.at,
                &at.key("name"),
                format!("{key} entry `{name}` is defined twice"),
            );
        }
        out.push(Resource {
            name,
            kind,
            source: f.get("source").cloned().unwrap_or(Node {
                value: node::Value::Null,
                at: node.at,
            }),
            version: f
                .get("version")
                .filter(|v| v.scalar() != Some("every") && v.scalar() != Some("latest"))
                .cloned(),
            privileged: f.flag("privileged", report),
            check_every: check_every(&f, &at, report),
            webhook_token: f.get("webhook_token").and_then(|n| n.scalar()).map(str::to_owned),
            at: node.at,
        });
    }
    out
}

/// `check_every`: a Go duration written `1m`, `30s`, `1h30m`, or `never`.
fn check_every(f: &Fields<'_>, at: &FieldPath, report: &mut Report<'_>) -> Option<u64> {
    let Some(node) = f.get("check_every") else {
        return Some(DEFAULT_CHECK_EVERY);
    };
    match node.scalar() {
        Some("never") => None,
        Some(text) => match crate::duration::parse_duration(text) {
            // Go's time.ParseDuration takes fractions and ms too: those
            // are refused here, with the field named, rather than guessed.
            Err(_) => {
                report.error(
                    node.at,
                    &at.key("check_every"),
                    format!("`check_every` {text:?} is not a duration such as 1m, 30s or 1h (or `never`)"),
                );
                Some(DEFAULT_CHECK_EVERY)
            }
            // A zero interval is Concourse's default.
            Ok(0) => Some(DEFAULT_CHECK_EVERY),
            Ok(seconds) => Some(seconds),
        },
        None => {
            report.error(
                node.at,
                &at.key("check_every"),
                "`check_every` is a duration such as 1m, or `never`",
            );
            Some(DEFAULT_CHECK_EVERY)
        }
    }
}

fn read_job(
    node: &Node,
    path: &FieldPath,
    text: &str,
    vars: &Vars,
    reader: &dyn SourceReader,
    report: &mut Report<'_>,
    notes: &mut Vec<String>,
) -> Option<Job> {
    let mut allowed = vec![
        "name",
        "old_name",
        "plan",
        "serial",
        "serial_groups",
        "max_in_flight",
        "build_log_retention",
        "build_logs_to_retain",
        "public",
        "disable_manual_trigger",
        "interruptible",
        "on_success",
        "on_failure",
        "on_error",
        "on_abort",
        "ensure",
    ];
    // Concourse reads jobs leniently (unknown keys are ignored); c8s says so.
    for entry in node.entries().unwrap_or_default() {
        if !allowed.contains(&entry.key.as_str()) {
            notes.push(format!(
                "{}:{}:{}: job field `{}` is not part of a Concourse job; ignored",
                report.file(),
                entry.at.0,
                entry.at.1,
                entry.key
            ));
            allowed.push(&entry.key);
        }
    }
    let f = Fields::new(node, path.clone(), &allowed, report)?;
    let name = f.required("name", report)?;
    if !f.has("plan") {
        report.error(node.at, &f.at("plan"), "`plan` is required");
    }
    let load_vars = super::steps::load_var_files(node);
    let plan = read_plan(
        f.list("plan", report),
        &f.at("plan"),
        text,
        vars,
        reader,
        &load_vars,
        report,
    );
    let serial_groups = f.strings("serial_groups", report);
    let serial = f.flag("serial", report) || !serial_groups.is_empty();
    let max_in_flight = if serial {
        Some(1)
    } else {
        f.number("max_in_flight", report)
    };
    let mut hooks = Vec::new();
    for hook in HOOKS {
        if let Some(step) = f.get(hook)
            && let Some(mut steps) = Some(read_plan(
                std::slice::from_ref(step),
                &f.at(hook),
                text,
                vars,
                reader,
                &load_vars,
                report,
            ))
            && let Some(step) = steps.pop()
        {
            hooks.push((hook.to_owned(), step));
        }
    }
    Some(Job {
        name,
        max_in_flight,
        serial_groups,
        plan,
        hooks,
        across_reads: super::steps::across_local_vars(node),
        at: node.at,
    })
}

/// Every `resource:`, `passed:` and `image:` names something that exists.
fn check_references(pipeline: &ConcoursePipeline, doc: &Node, report: &mut Report<'_>) {
    let _ = doc;
    for job in &pipeline.jobs {
        let mut steps = Vec::new();
        for step in job.plan.iter().chain(job.hooks.iter().map(|(_, s)| s)) {
            step.visit(&mut |s| steps.push(s.clone()));
        }
        for step in &steps {
            let (resource, passed) = match &step.kind {
                StepKind::Get { resource, passed, .. } => (resource, passed.as_slice()),
                StepKind::Put { resource, .. } => (resource, &[][..]),
                _ => continue,
            };
            if !pipeline.resources.iter().any(|r| &r.name == resource) {
                report.error(
                    step.at,
                    &step.path,
                    format!("resource `{resource}` is not defined in `resources`"),
                );
            }
            for upstream in passed {
                match pipeline.jobs.iter().find(|j| &j.name == upstream) {
                    None => report.error(
                        step.at,
                        &step.path.key("passed"),
                        format!("passed: job `{upstream}` is not defined"),
                    ),
                    Some(up) if !uses(up, resource) => report.error(
                        step.at,
                        &step.path.key("passed"),
                        format!("passed: job `{upstream}` does not use resource `{resource}`"),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
    for resource in &pipeline.resources {
        let builtin = super::image::builtin_image(&resource.kind).is_some();
        if !builtin && !pipeline.resource_types.iter().any(|t| t.name == resource.kind) {
            report.error(
                resource.at,
                &FieldPath::root().key("resources"),
                format!(
                    "resource `{}` has type `{}`, which is neither a core type nor in `resource_types`",
                    resource.name, resource.kind
                ),
            );
        }
    }
}

fn uses(job: &Job, resource: &str) -> bool {
    let mut found = false;
    for step in job.plan.iter().chain(job.hooks.iter().map(|(_, s)| s)) {
        step.visit(&mut |s| match &s.kind {
            StepKind::Get { resource: r, .. } | StepKind::Put { resource: r, .. } if r == resource => {
                found = true
            }
            _ => {}
        });
    }
    found
}
