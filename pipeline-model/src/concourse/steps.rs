//! The steps of a job's build plan (`atc/steps.go`): a step is the mapping
//! with exactly one step key (`get`, `put`, `task`, `in_parallel`, `do`,
//! `try`, `set_pipeline`, `load_var`; `aggregate` is the old `in_parallel`)
//! plus modifiers (`timeout`, `attempts`, `tags`, `across`) and hooks.

use std::collections::{BTreeMap, BTreeSet};

use c8s_sidecar_core::{FieldPath, SourceReader};

use super::fields::Fields;
use super::node::{At, Node, Report, Value};
use super::step::{TASK_STEP_KEYS, TaskRead, TaskStep, read_task_step_in_build};
use super::vars::{Vars, var_refs};
use crate::duration::parse_duration;

/// One step with its modifiers and hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Step {
    /// What the step does.
    pub kind: StepKind,
    /// Hooks by kind (`on_success`, `on_failure`, `on_error`, `on_abort`, `ensure`).
    pub hooks: Vec<(String, Step)>,
    /// `timeout` in seconds.
    pub timeout_seconds: Option<u64>,
    /// `attempts`.
    pub attempts: Option<u32>,
    /// Where it is written.
    pub at: At,
    /// Its path in the document.
    pub path: FieldPath,
    /// For one copy of an `across` step: what makes its name unique (its
    /// values and their id, [`super::across::copy_suffix`]).
    pub copy: Option<String>,
}

/// The kinds of step.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepKind {
    /// `get`: fetch a version of a resource as artifact `name`.
    Get {
        /// The artifact name.
        name: String,
        /// The resource.
        resource: String,
        /// `passed:` jobs.
        passed: Vec<String>,
        /// `trigger`.
        trigger: bool,
        /// `params`.
        params: Option<Node>,
        /// `version` (a pinned mapping; `latest`/`every` are None).
        version: Option<Node>,
        /// `version: every`: each version in turn, not only the newest.
        every: bool,
    },
    /// `put`: push to a resource, then (unless `no_get`) fetch what was pushed.
    Put {
        /// The step name (and the artifact of the implicit get).
        name: String,
        /// The resource.
        resource: String,
        /// `params`.
        params: Option<Node>,
        /// `get_params`.
        get_params: Option<Node>,
        /// `inputs`: `None` for all artifacts (Concourse's default), or a list.
        inputs: Option<Vec<String>>,
        /// `no_get`.
        no_get: bool,
    },
    /// `task`.
    Task {
        /// The task step.
        step: Box<TaskStep>,
        /// The artifact named by `image:`.
        image: Option<String>,
    },
    /// `in_parallel` (or `aggregate`), or one var's level of an `across`.
    InParallel {
        /// The steps.
        steps: Vec<Step>,
        /// `limit` (`max_in_flight` of an across var): at most this many at once.
        limit: Option<usize>,
        /// `fail_fast`: once one did not succeed, the rest do not start.
        fail_fast: bool,
    },
    /// `do`.
    Do(Vec<Step>),
    /// `try`.
    Try(Box<Step>),
    /// `set_pipeline`: configures a pipeline on a Concourse server.
    SetPipeline(String),
    /// `load_var`: reads a file of an artifact into a local var.
    LoadVar(LoadVar),
    /// A `task` whose `file:` is not where c8s reads files now: it lives in
    /// an artifact (`ARTIFACT/PATH`) a step fetches when the job runs, so its
    /// config is known only then (Concourse reads task files when the step
    /// runs; `fly validate-pipeline` never reads them).
    DeferredTask {
        /// The step's name (`task:`).
        name: String,
        /// `file:`.
        file: String,
        /// Where `file` is written.
        file_at: At,
        /// Why it could not be read now.
        reason: String,
    },
    /// A step with `across` whose values are a `load_var`'s
    /// (`values: ((.:list))`): its copies are known once the job runs and a
    /// runner read the file (Concourse expands an across step when it runs).
    DeferredAcross {
        /// The step's name (what its step key names).
        name: String,
        /// The local var its values read.
        var: String,
    },
}

/// A `load_var` step: `file` (`ARTIFACT/PATH`) read as `format` into local
/// var `((.:name))` (`atc/exec/load_var_step.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadVar {
    /// The local var's name.
    pub name: String,
    /// `file`: the artifact, then the path inside it.
    pub file: String,
    /// `format`, or the one the file's extension names (`json`, `yml`,
    /// `yaml`, `trim`, `raw`), else `trim`.
    pub format: LoadVarFormat,
    /// Where `file` is written.
    pub file_at: (u32, u32),
    /// `reveal: true`: the value may be printed in step logs. Otherwise
    /// Concourse redacts it from the build's output, as it redacts
    /// credentials (`atc/exec/load_var_step.go` adds the var with
    /// `redact = !reveal`); c8s masks the values it reads itself.
    pub reveal: bool,
}

/// How a `load_var` file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadVarFormat {
    /// `json`: a JSON value.
    Json,
    /// `yaml` or `yml`: a YAML value.
    Yaml,
    /// `trim`: the text without surrounding whitespace.
    Trim,
    /// `raw`: the text as it is.
    Raw,
}

impl LoadVarFormat {
    /// Whether the value is a structure (`json`, `yaml`), read field by field.
    pub fn is_structured(self) -> bool {
        matches!(self, Self::Json | Self::Yaml)
    }
}

impl LoadVarFormat {
    fn of_word(word: &str) -> Option<Self> {
        match word {
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            "trim" => Some(Self::Trim),
            "raw" => Some(Self::Raw),
            _ => None,
        }
    }
}

impl Step {
    /// Calls `f` on this step, its children and hooks, depth first.
    pub fn visit(&self, f: &mut dyn FnMut(&Step)) {
        f(self);
        match &self.kind {
            StepKind::InParallel { steps, .. } | StepKind::Do(steps) => steps.iter().for_each(|s| s.visit(f)),
            StepKind::Try(step) => step.visit(f),
            _ => {}
        }
        for (_, hook) in &self.hooks {
            hook.visit(f);
        }
    }
}

pub use super::keys::HOOKS;
use super::keys::KINDS;

const MODIFIERS: [&str; 5] = ["timeout", "attempts", "tags", "across", "fail_fast"];

/// What reading nested steps needs besides the nodes: the file's text (for
/// task configs written inline), the vars and the reader of task files.
#[derive(Clone, Copy)]
struct Context<'a> {
    text: &'a str,
    vars: &'a Vars,
    reader: &'a dyn SourceReader,
    /// The job's `load_var`s: var name → `file` ([`load_var_files`]).
    load_vars: &'a BTreeMap<String, String>,
}

/// Reads a list of steps of a job whose `load_var`s are `load_vars`
/// ([`load_var_files`]).
pub fn read_plan(
    nodes: &[Node],
    path: &FieldPath,
    text: &str,
    vars: &Vars,
    reader: &dyn SourceReader,
    load_vars: &BTreeMap<String, String>,
    report: &mut Report<'_>,
) -> Vec<Step> {
    let cx = Context {
        text,
        vars,
        reader,
        load_vars,
    };
    plan(cx, nodes, path, report)
}

/// Every `load_var` step written under `node` (a job): var name → `file`.
pub fn load_var_files(node: &Node) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk_maps(node, &mut |map| {
        if let (Some(name), Some(file)) = (
            map.get("load_var").and_then(Node::scalar),
            map.get("file").and_then(Node::scalar),
        ) {
            out.insert(name.to_owned(), file.to_owned());
        }
    });
    out
}

/// The local vars whose values an `across` under `node` (a job) takes
/// (`values: ((.:list))`).
pub fn across_local_vars(node: &Node) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk_maps(node, &mut |map| {
        let Some(Value::Seq(vars)) = map.get("across").map(|n| &n.value) else {
            return;
        };
        out.extend(vars.iter().filter_map(|v| local_values(v.get("values")?)));
    });
    out
}

/// The local var a `values` written as `((.:NAME))` (whole) reads.
fn local_values(values: &Node) -> Option<String> {
    let text = values.scalar()?;
    let refs = var_refs(text);
    match refs.as_slice() {
        [r] if r.range == (0..text.len()) => r.name.strip_prefix(".:").map(str::to_owned),
        _ => None,
    }
}

fn walk_maps(node: &Node, f: &mut dyn FnMut(&Node)) {
    match &node.value {
        Value::Map(entries) => {
            f(node);
            for entry in entries {
                walk_maps(&entry.node, f);
            }
        }
        Value::Seq(items) => items.iter().for_each(|item| walk_maps(item, f)),
        _ => {}
    }
}

fn plan(cx: Context<'_>, nodes: &[Node], path: &FieldPath, report: &mut Report<'_>) -> Vec<Step> {
    let single = nodes.len() == 1
        && path
            .segments()
            .last()
            .is_some_and(|s| matches!(s, c8s_sidecar_core::Segment::Key(_)));
    nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let at = if single { path.clone() } else { path.index(i) };
            read_step(cx, n, &at, report)
        })
        .collect()
}

/// The one step a node (the last of a list read from it) is, if any.
fn one_step(cx: Context<'_>, node: &Node, path: &FieldPath, report: &mut Report<'_>) -> Option<Step> {
    plan(cx, std::slice::from_ref(node), path, report).pop()
}

fn read_step(cx: Context<'_>, node: &Node, path: &FieldPath, report: &mut Report<'_>) -> Option<Step> {
    let kind = step_key(node, path, report)?;
    let allowed = allowed_keys(kind);
    let f = Fields::new(node, path.clone(), &allowed, report)?;
    if f.has("across") {
        return read_across(cx, node, &f, path, report);
    }
    let kind = read_kind(cx, kind, node, &f, path, report)?;
    Some(read_modifiers(cx, kind, node, &f, path, report))
}

/// The step key of a step: exactly one of [`KINDS`], else reported.
fn step_key(node: &Node, path: &FieldPath, report: &mut Report<'_>) -> Option<&'static str> {
    let Some(entries) = node.entries() else {
        report.error(
            node.at,
            path,
            format!("a step is a mapping, found {}", node.kind()),
        );
        return None;
    };
    let present: Vec<&'static str> = KINDS
        .iter()
        .copied()
        .filter(|k| entries.iter().any(|e| e.key == *k))
        .collect();
    match present.as_slice() {
        [one] => Some(*one),
        [] => {
            report.error(
                node.at,
                path,
                format!("no step key: a step needs one of {}", KINDS.join(", ")),
            );
            None
        }
        many => {
            report.error(
                node.at,
                path,
                format!("a step has exactly one step key, found {}", many.join(" and ")),
            );
            None
        }
    }
}

/// The keys a step of `kind` may have: modifiers, hooks and its own.
fn allowed_keys(kind: &'static str) -> Vec<&'static str> {
    let mut allowed: Vec<&'static str> = MODIFIERS.iter().chain(HOOKS.iter()).copied().collect();
    let specific: &[&'static str] = match kind {
        "get" => &["get", "resource", "passed", "trigger", "params", "version"],
        "put" => &["put", "resource", "params", "get_params", "inputs", "no_get"],
        "task" => &TASK_STEP_KEYS,
        "in_parallel" => &["in_parallel"],
        "aggregate" => &["aggregate"],
        "do" => &["do"],
        "try" => &["try"],
        "set_pipeline" => &[
            "set_pipeline",
            "file",
            "vars",
            "var_files",
            "team",
            "instance_vars",
        ],
        _ => &["load_var", "file", "format", "reveal"],
    };
    allowed.extend(specific);
    allowed
}

/// What a step of `kind` does, from its own keys.
fn read_kind(
    cx: Context<'_>,
    kind: &str,
    node: &Node,
    f: &Fields<'_>,
    path: &FieldPath,
    report: &mut Report<'_>,
) -> Option<StepKind> {
    Some(match kind {
        "get" => read_get(f, report)?,
        "put" => read_put(f, report)?,
        "task" => {
            let entries = node.entries().unwrap_or_default();
            let only_task = Node {
                value: super::node::Value::Map(
                    entries
                        .iter()
                        .filter(|e| TASK_STEP_KEYS.contains(&e.key.as_str()))
                        .cloned()
                        .collect(),
                ),
                at: node.at,
            };
            match read_task_step_in_build(&only_task, path, cx.text, cx.vars, cx.reader, true, report)? {
                TaskRead::Step(step, image) => StepKind::Task { step, image },
                TaskRead::FileNotFound {
                    name,
                    file,
                    file_at,
                    reason,
                } => StepKind::DeferredTask {
                    name,
                    file,
                    file_at,
                    reason,
                },
            }
        }
        "in_parallel" | "aggregate" => {
            let inner = f.get(kind)?;
            let (mut limit, mut fail_fast) = (None, false);
            let (list, list_path) = match inner.get("steps") {
                Some(steps) => {
                    let g = Fields::new(inner, f.at(kind), &["steps", "limit", "fail_fast"], report)?;
                    // Concourse reads a limit below 1 as no limit (`InParallel` in atc/exec/in_parallel.go).
                    limit = g
                        .number("limit", report)
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|n| *n > 0);
                    fail_fast = g.flag("fail_fast", report);
                    (steps, f.at(kind).key("steps"))
                }
                None => (inner, f.at(kind)),
            };
            let steps = super::fields::list(list, &list_path, report);
            StepKind::InParallel {
                steps: plan(cx, steps, &list_path, report),
                limit,
                fail_fast,
            }
        }
        "do" => {
            let steps = f.list("do", report);
            StepKind::Do(plan(cx, steps, &f.at("do"), report))
        }
        "try" => StepKind::Try(Box::new(one_step(cx, f.get("try")?, &f.at("try"), report)?)),
        "set_pipeline" => StepKind::SetPipeline(f.required("set_pipeline", report)?),
        _ => read_load_var(f, report)?,
    })
}

/// A `load_var` step. As in Concourse, `format` is the one given, else the
/// one the file's extension names, else `trim`.
fn read_load_var(f: &Fields<'_>, report: &mut Report<'_>) -> Option<StepKind> {
    let name = f.required("load_var", report)?;
    let file = f.required("file", report)?;
    let format = match f.string("format", report) {
        Some(word) => match LoadVarFormat::of_word(&word) {
            Some(format) => format,
            None => {
                report.error(
                    f.key_at("format"),
                    &f.at("format"),
                    format!("invalid format {word:?}: one of json, yaml, yml, trim, raw"),
                );
                return None;
            }
        },
        None => std::path::Path::new(&file)
            .extension()
            .and_then(|ext| ext.to_str())
            .and_then(LoadVarFormat::of_word)
            .unwrap_or(LoadVarFormat::Trim),
    };
    let reveal = f.flag("reveal", report);
    Some(StepKind::LoadVar(LoadVar {
        name,
        file,
        format,
        file_at: f.key_at("file"),
        reveal,
    }))
}

/// A `get` step.
fn read_get(f: &Fields<'_>, report: &mut Report<'_>) -> Option<StepKind> {
    let name = f.required("get", report)?;
    Some(StepKind::Get {
        resource: f.string("resource", report).unwrap_or_else(|| name.clone()),
        passed: f.strings("passed", report),
        trigger: f.flag("trigger", report),
        params: f.get("params").cloned(),
        version: f.get("version").filter(|v| v.entries().is_some()).cloned(),
        every: f.get("version").and_then(Node::scalar) == Some("every"),
        name,
    })
}

/// A `put` step.
fn read_put(f: &Fields<'_>, report: &mut Report<'_>) -> Option<StepKind> {
    let name = f.required("put", report)?;
    let inputs = match f.get("inputs") {
        Some(n) if n.scalar() == Some("all") => None,
        Some(n) if n.scalar() == Some("detect") => None,
        Some(_) => Some(f.strings("inputs", report)),
        None => None,
    };
    Some(StepKind::Put {
        resource: f.string("resource", report).unwrap_or_else(|| name.clone()),
        params: f.get("params").cloned(),
        get_params: f.get("get_params").cloned(),
        no_get: f.flag("no_get", report),
        inputs,
        name,
    })
}

/// The step with its modifiers (`across`, `attempts`, `timeout`) and hooks.
fn read_modifiers(
    cx: Context<'_>,
    kind: StepKind,
    node: &Node,
    f: &Fields<'_>,
    path: &FieldPath,
    report: &mut Report<'_>,
) -> Step {
    let mut step = Step {
        kind,
        hooks: Vec::new(),
        timeout_seconds: None,
        attempts: f
            .number("attempts", report)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        at: node.at,
        path: path.clone(),
        copy: None,
    };
    if let Some(timeout) = f.string("timeout", report) {
        match parse_duration(&timeout) {
            Ok(s) => step.timeout_seconds = Some(s),
            Err(reason) => report.error(node.at, &f.at("timeout"), format!("{timeout:?}: {reason}")),
        }
    }
    step.hooks = read_hooks(cx, f, report);
    step
}

/// The hooks of a step, in [`HOOKS`] order.
fn read_hooks(cx: Context<'_>, f: &Fields<'_>, report: &mut Report<'_>) -> Vec<(String, Step)> {
    let mut hooks = Vec::new();
    for hook in HOOKS {
        if let Some(inner) = f.get(hook)
            && let Some(s) = one_step(cx, inner, &f.at(hook), report)
        {
            hooks.push((hook.to_owned(), s));
        }
    }
    hooks
}

/// A step with `across` (<https://concourse-ci.org/across-step.html>): one
/// `in_parallel` level per var (the first outermost, its `max_in_flight`
/// as the limit, the step's `fail_fast`), a copy of the step without its
/// hooks per combination, and the hooks around the whole (hooks wrap the
/// across step, as `StepPrecedence` in `atc/steps.go` parses them first).
fn read_across(
    cx: Context<'_>,
    node: &Node,
    f: &Fields<'_>,
    path: &FieldPath,
    report: &mut Report<'_>,
) -> Option<Step> {
    let Some(list) = f.get("across") else {
        report.error(node.at, &f.at("across"), "`across` needs a list of vars");
        return None;
    };
    // c8s does not run set_pipeline (no pipeline server): each copy would be
    // the same note, and its values (often a load_var's, known only when the
    // build runs) are never needed.
    // The whole across step as one step of `kind`, with its hooks.
    let whole = |kind: StepKind, report: &mut Report<'_>| Step {
        kind,
        hooks: read_hooks(cx, f, report),
        timeout_seconds: None,
        attempts: None,
        at: node.at,
        path: path.clone(),
        copy: None,
    };
    if let Some(name) = f.get("set_pipeline").and_then(Node::scalar) {
        return Some(whole(StepKind::SetPipeline(name.to_owned()), report));
    }
    // Values a load_var holds are known once a runner read its file.
    let list = match local_across_values(cx, list, &f.at("across"), report)? {
        Ok(list) => list,
        Err(var) => {
            let key = step_key(node, path, &mut Report::new(report.file())).unwrap_or("across");
            let name = f.get(key).and_then(Node::scalar).unwrap_or(key).to_owned();
            return Some(whole(StepKind::DeferredAcross { name, var }, report));
        }
    };
    let list = &list;
    let vars = super::across::read_vars(list, &f.at("across"), report)?;
    let fail_fast = f.flag("fail_fast", report);
    let mut template = node.clone();
    if let super::node::Value::Map(entries) = &mut template.value {
        entries.retain(|e| e.key != "across" && e.key != "fail_fast" && !HOOKS.contains(&e.key.as_str()));
    }
    let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
    let mut copies = Vec::new();
    for values in super::across::combinations(&vars) {
        let mut copy = template.clone();
        let mut locals = Vars::new();
        for (var, value) in vars.iter().zip(&values) {
            locals.set_node(var.name.clone(), (*value).clone());
        }
        super::across::substitute(&mut copy, &locals, &names);
        // The copy's `((vars))`, as the pipeline's were (those of an across
        // step inside it wait for that step's copies).
        let nested = super::across::across_steps(&copy, path);
        let keep =
            |p: &FieldPath| super::step::is_credential_path(p) || super::across::in_template(p, &nested);
        super::vars::interpolate_lenient_at(
            &mut copy,
            path,
            cx.vars,
            &keep,
            &super::vars::lenient_path,
            report,
        );
        let mut step = read_step(cx, &copy, path, report)?;
        step.copy = Some(super::across::copy_suffix(&vars, &values));
        copies.push(step);
    }
    let level = |steps: Vec<Step>, var: &super::across::AcrossVar| Step {
        kind: StepKind::InParallel {
            steps,
            limit: var.max_in_flight,
            fail_fast,
        },
        hooks: Vec::new(),
        timeout_seconds: None,
        attempts: None,
        at: node.at,
        path: path.clone(),
        copy: None,
    };
    // Group the copies level by level, the last var innermost.
    let mut steps = copies;
    for var in vars.iter().rev() {
        let group = var.values.len().max(1);
        let mut grouped = Vec::new();
        let mut rest = steps.into_iter().peekable();
        while rest.peek().is_some() {
            grouped.push(level(rest.by_ref().take(group).collect(), var));
        }
        steps = grouped;
    }
    let mut outer = match steps.len() {
        1 => steps.pop()?,
        // A var with no values: nothing to run, and the step succeeds.
        _ => level(steps, vars.first()?),
    };
    outer.hooks = read_hooks(cx, f, report);
    Some(outer)
}

/// `list` (an `across`) with each `values: ((.:NAME))` replaced by the
/// value a runner read from that `load_var`'s file (given to the reader
/// under `FetchFile::VAR_PREFIX`), as Concourse reads the var when the step
/// runs: `Ok(Err(NAME))` when a file is not read yet; `None`, reported,
/// when the var names no `load_var` of the job or its value is unreadable.
fn local_across_values(
    cx: Context<'_>,
    list: &Node,
    path: &FieldPath,
    report: &mut Report<'_>,
) -> Option<Result<Node, String>> {
    let mut list = list.clone();
    let Value::Seq(vars) = &mut list.value else {
        return Some(Ok(list));
    };
    for (i, var) in vars.iter_mut().enumerate() {
        let Value::Map(entries) = &mut var.value else {
            continue;
        };
        for entry in entries.iter_mut().filter(|e| e.key == "values") {
            let Some(name) = local_values(&entry.node) else {
                continue;
            };
            let at = path.index(i).key("values");
            let Some(file) = cx.load_vars.get(&name) else {
                report.error(
                    entry.node.at,
                    &at,
                    format!("((.:{name})) names no load_var of this job (across values from a local var are a load_var's, read when the job runs)"),
                );
                return None;
            };
            let key = format!("{}{file}", super::keys::VAR_PREFIX);
            let Ok(bytes) = cx.reader.read(&key) else {
                return Some(Err(name));
            };
            let read = std::str::from_utf8(&bytes)
                .ok()
                .filter(|text| *text != super::keys::UNREADABLE_VAR)
                .and_then(|text| super::node::parse(file, text).ok());
            let Some(mut values) = read else {
                report.error(
                    entry.node.at,
                    &at,
                    format!("((.:{name})): load_var `{name}`'s file {file:?} could not be read from its artifact as a list of values"),
                );
                return None;
            };
            relocate(&mut values, entry.node.at);
            entry.node = values;
        }
    }
    Some(Ok(list))
}

/// Puts `node` and everything in it at `at` (a value read from a file, its
/// errors located where the var is written).
fn relocate(node: &mut Node, at: At) {
    node.at = at;
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|item| relocate(item, at)),
        Value::Map(entries) => {
            for entry in entries {
                entry.at = at;
                relocate(&mut entry.node, at);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(report: Report<'_>) -> String {
        report.finish().err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn a_step_has_exactly_one_step_key() {
        let node = super::super::node::parse("p.yml", "get: repo\nput: image\n").expect("yaml");
        let mut report = Report::new("p.yml");
        assert_eq!(step_key(&node, &FieldPath::root(), &mut report), None);
        assert!(errors(report).contains("exactly one step key, found get and put"));

        let node = super::super::node::parse("p.yml", "task: unit\n").expect("yaml");
        let mut report = Report::new("p.yml");
        assert_eq!(step_key(&node, &FieldPath::root(), &mut report), Some("task"));
        assert!(report.is_clean());
    }

    #[test]
    fn every_step_allows_modifiers_and_hooks_and_its_own_keys() {
        let get = allowed_keys("get");
        assert!(get.contains(&"timeout") && get.contains(&"ensure") && get.contains(&"passed"));
        assert!(!get.contains(&"no_get"));
        assert!(allowed_keys("aggregate").contains(&"aggregate"));
    }
}
