//! Lowering a job's build plan into a DAG of [`TaskPlan`]s: one pod per
//! get, put and task step, as in Concourse's Kubernetes runtime. Steps in
//! sequence depend on the step before; `in_parallel` branches share their
//! predecessors; hooks run after their step under a condition; artifacts
//! flow by name from the step that produced them.

use std::collections::{BTreeMap, BTreeSet};

use c8s_sidecar_core::{FieldPath, SourceReader};
use serde_derive::Serialize;

use crate::error::Errors;

use super::node::{Node as YamlNode, Report};
use super::pipeline::{ConcoursePipeline, Job};
use super::resource::{self, SecretNeed};
use super::runtime::{Hook, Node, Parallel};
use super::step::{ArtifactSource, visit_task_with};
use super::steps::{LoadVar, LoadVarFormat, Step, StepKind};
use crate::plan::{PlanIdentity, PlanInput, TaskPlan};
use crate::scheduler::Condition;

/// When a step runs, given how the steps it depends on ended, as `c8s plan`
/// shows it (the exact rule `c8s run` follows is [`JobPlan::conditions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// All succeeded (the plan's normal order, `on_success`).
    Success,
    /// One failed (`on_failure`).
    Failure,
    /// The step errored (`on_error`): its timeout, an infrastructure fault.
    Error,
    /// The build was aborted while the step ran (`on_abort`).
    Abort,
    /// However they ended (`ensure`, and steps after a `try`).
    Always,
}

/// One pod of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct JobStep {
    /// The pod's plan (`identity.step` is unique in the job).
    pub plan: TaskPlan,
    /// `get`, `put` or `task`.
    pub kind: &'static str,
    /// The steps it waits for.
    pub depends_on: Vec<String>,
    /// When it runs.
    pub when: When,
    /// Its failure does not fail the build (inside `try`).
    pub allow_failure: bool,
    /// For a put, the resource it makes a version of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub puts: Option<String>,
}

/// A job lowered to pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct JobPlan {
    /// The job's name.
    pub job: String,
    /// The pods, in plan order.
    pub steps: Vec<JobStep>,
    /// Secrets c8s references and the user creates.
    pub secrets: Vec<SecretNeed>,
    /// Steps c8s does not run, and why.
    pub skipped: Vec<String>,
    /// Steps known only when the job runs (a task `file:` in an artifact an
    /// earlier step fetches, and the steps that may read what it makes),
    /// each `LINE:COL: why`; they have no pod here.
    pub deferred: Vec<String>,
    /// The task files of deferred steps that can be read once the steps
    /// before them ran: each is in an artifact a step of this plan makes.
    /// A runner fetches them, gives them to the reader and lowers again
    /// (`c8s run` does).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fetch: Vec<FetchFile>,
    /// How many builds may run at once.
    pub max_in_flight: Option<u64>,
    /// The condition each pod runs under, by step (how Concourse runs
    /// hooks, `try` and the steps after a failure: [`super::runtime`]).
    #[serde(skip)]
    pub conditions: BTreeMap<String, Condition>,
    /// When the build succeeded: its plan, with the job's hooks, succeeded.
    #[serde(skip)]
    pub outcome: Condition,
    /// Values a runner keeps out of step logs, each with what it is
    /// (`load_var NAME.FIELD`): the `load_var` values this lowering wrote
    /// into pods whose steps do not say `reveal: true`. Never serialized:
    /// they are what must not be shown.
    #[serde(skip)]
    pub redact: Vec<(String, String)>,
}

/// A task `file:` read from an artifact when the job runs: Concourse reads
/// it when the step starts (`atc/exec/task_step.go` loads the config from
/// the artifact), so a runner reads it once `producer` has made the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FetchFile {
    /// The deferred step: a task, or the var of a `load_var`.
    pub step: String,
    /// The file, as written (`ARTIFACT/PATH`).
    pub file: String,
    /// The path the lowering asks its reader for, to find the file once it
    /// was read: `file` for a task file, [`FetchFile::VAR_PREFIX`] and
    /// `file` for a `load_var`'s.
    pub key: String,
    /// The path inside the artifact.
    pub path: String,
    /// The step (`identity.step`) whose output holds the artifact.
    pub producer: String,
    /// That step's output directory.
    pub output: String,
}

impl FetchFile {
    /// Task `step`'s `file` (`ARTIFACT/PATH`), at `path` inside the artifact
    /// that output `output` of step `producer` holds.
    pub fn new(
        step: impl Into<String>,
        file: impl Into<String>,
        path: impl Into<String>,
        producer: impl Into<String>,
        output: impl Into<String>,
    ) -> Self {
        let file = file.into();
        Self {
            step: step.into(),
            key: file.clone(),
            file,
            path: path.into(),
            producer: producer.into(),
            output: output.into(),
        }
    }

    /// What the lowering's reader is asked for a `load_var` file's text, so
    /// that only a runner that read it from the artifact answers (never a
    /// file of the same name beside the pipeline).
    pub const VAR_PREFIX: &'static str = super::keys::VAR_PREFIX;

    /// What a runner gives the reader for a `load_var` file it could not
    /// read from the artifact: every `((.:var))` and `((.:var.field))` of
    /// that var then stands for this same text, so that the job still
    /// lowers whole and the runner finds the steps that read the var (their
    /// env holds it) and errors them without running them, as Concourse's
    /// `load_var` errors the build (its `on_error` and `ensure` hooks run).
    pub const UNREADABLE_VAR: &'static str = super::keys::UNREADABLE_VAR;

    /// [`FetchFile::new`] for the file of `load_var` `name`.
    pub fn for_var(
        name: impl Into<String>,
        file: &str,
        path: impl Into<String>,
        producer: impl Into<String>,
        output: impl Into<String>,
    ) -> Self {
        let mut fetch = Self::new(name, file, path, producer, output);
        fetch.key = format!("{}{file}", Self::VAR_PREFIX);
        fetch
    }

    /// The plan of a pod that prints this file (step `read-STEP-TAG` of
    /// `pipeline`, after the producer): its one input unpacks only that file
    /// of the producer's artifact (as a `load_var` reads one) and `main`,
    /// running `image` (which needs `cat`), prints it.
    pub fn reader_plan(&self, pipeline: &str, image: &str, tag: &str) -> TaskPlan {
        const DIR: &str = ".c8s/fetch";
        let identity = PlanIdentity::new(pipeline, format!("read-{}-{tag}", self.step));
        let mut plan = TaskPlan::new(identity, image);
        let mut input = PlanInput::new(&self.producer, &self.output);
        input.path = DIR.to_owned();
        input.member = Some(self.path.clone());
        plan.inputs = vec![input];
        plan.command = vec!["cat".to_owned(), format!("{DIR}/{}", self.path)];
        plan.skip_checkout = true;
        plan
    }
}

struct Lowering<'a> {
    pipeline: &'a ConcoursePipeline,
    job: &'a Job,
    reader: &'a dyn SourceReader,
    versions: &'a BTreeMap<String, String>,
    out: JobPlan,
    artifacts: BTreeMap<String, (String, String)>,
    locals: super::load_var::Locals,
    /// The local vars the job's steps read (`((.:NAME…))`, by `NAME`):
    /// in any params, and in a get's or put's params.
    reads: LocalReads,
    /// The deferred steps so far, by name: what they make is unknown.
    deferred: Vec<String>,
    errors: Vec<crate::error::Error>,
}

/// The local vars a job's steps read, by base name (`((.:repo.ref))`
/// reads `repo`).
#[derive(Default)]
struct LocalReads {
    /// In any step's params.
    any: BTreeSet<String>,
    /// In a get's or put's `params` or `get_params`: JSON written before
    /// the pod runs, so a runner reads the value first.
    resource: BTreeSet<String>,
}

impl LocalReads {
    fn of(job: &Job) -> Self {
        let mut reads = Self::default();
        let mut visit = |step: &Step| {
            let mut add = |text: &str, resource: bool| {
                for r in super::vars::var_refs(text) {
                    if let Some(name) = r.name.strip_prefix(".:") {
                        let base = name.split('.').next().unwrap_or(name).to_owned();
                        if resource {
                            reads.resource.insert(base.clone());
                        }
                        reads.any.insert(base);
                    }
                }
            };
            match &step.kind {
                StepKind::Task { step: task, .. } => {
                    for (_, value) in task.config.params.iter().chain(task.params.iter()) {
                        add(value, false);
                    }
                }
                StepKind::Get { params, .. } => {
                    add(&params.as_ref().map(YamlNode::to_json).unwrap_or_default(), true)
                }
                StepKind::Put {
                    params, get_params, ..
                } => {
                    for node in [params, get_params].into_iter().flatten() {
                        add(&node.to_json(), true);
                    }
                }
                _ => {}
            }
        };
        for step in &job.plan {
            step.visit(&mut visit);
        }
        for (_, hook) in &job.hooks {
            hook.visit(&mut visit);
        }
        // An across step's values: known to the lowering before its copies are.
        reads.any.extend(job.across_reads.iter().cloned());
        reads.resource.extend(job.across_reads.iter().cloned());
        reads
    }
}

impl ArtifactSource for BTreeMap<String, (String, String)> {
    fn producer(&self, name: &str) -> Option<(String, String)> {
        self.get(name).cloned()
    }
}

/// Lowers job `job` of `pipeline`. `versions` gives versions of resources
/// as JSON (`--version RESOURCE=JSON`); others are found by a check.
pub fn lower_job(
    pipeline: &ConcoursePipeline,
    job: &str,
    reader: &dyn SourceReader,
    versions: &BTreeMap<String, String>,
    file: &str,
) -> Result<JobPlan, Errors> {
    let Some(found) = pipeline.jobs.iter().find(|j| j.name == job) else {
        let names: Vec<&str> = pipeline.jobs.iter().map(|j| j.name.as_str()).collect();
        let mut report = Report::new(file);
        report.error(
            (1, 1),
            &FieldPath::root().key("jobs"),
            format!("no job `{job}`; jobs: {}", names.join(", ")),
        );
        return Err(report.finish().err().unwrap_or_else(|| Errors::new(Vec::new())));
    };
    let mut l = Lowering {
        pipeline,
        job: found,
        reader,
        versions,
        out: JobPlan {
            job: job.to_owned(),
            steps: Vec::new(),
            secrets: Vec::new(),
            skipped: Vec::new(),
            deferred: Vec::new(),
            fetch: Vec::new(),
            max_in_flight: found.max_in_flight,
            conditions: BTreeMap::new(),
            outcome: Condition::True,
            redact: Vec::new(),
        },
        artifacts: BTreeMap::new(),
        locals: super::load_var::Locals::default(),
        reads: LocalReads::of(found),
        deferred: Vec::new(),
        errors: Vec::new(),
    };
    let mut report = Report::new(file);
    let (tails, plan) = l.sequence(&found.plan, Vec::new(), When::Success, false, &mut report);
    let mut hooks = Vec::new();
    for (hook, step) in &found.hooks {
        let (_, node) = l.hook(hook, step, &tails, &mut report);
        hooks.push((Hook::of_key(hook), node));
    }
    let root = Node::hooked(plan, hooks);
    root.conditions(Condition::True, &mut l.out.conditions);
    l.out.outcome = root.ok();
    let unused = l.locals.unused();
    l.out.skipped.extend(unused);
    l.out.redact = l.locals.redacted();
    l.out.secrets.sort();
    l.out.secrets.dedup();
    report.extend(Errors::new(std::mem::take(&mut l.errors)));
    report.into_result(l.out)
}

impl Lowering<'_> {
    fn sequence(
        &mut self,
        steps: &[Step],
        mut after: Vec<String>,
        mut when: When,
        soft: bool,
        report: &mut Report<'_>,
    ) -> (Vec<String>, Node) {
        let mut nodes = Vec::new();
        for step in steps {
            let node;
            (after, node) = self.step(step, after, when, soft, report);
            nodes.push(node);
            when = When::Success;
        }
        (after, Node::Do(nodes))
    }

    fn hook(
        &mut self,
        hook: &str,
        step: &Step,
        after: &[String],
        report: &mut Report<'_>,
    ) -> (Vec<String>, Node) {
        let when = match hook {
            "on_success" => When::Success,
            "on_failure" => When::Failure,
            "on_error" => When::Error,
            "on_abort" => When::Abort,
            _ => When::Always,
        };
        self.step(step, after.to_vec(), when, false, report)
    }

    fn step(
        &mut self,
        step: &Step,
        after: Vec<String>,
        when: When,
        soft: bool,
        report: &mut Report<'_>,
    ) -> (Vec<String>, Node) {
        let (mut tails, node) = match &step.kind {
            StepKind::InParallel {
                steps,
                limit,
                fail_fast,
            } => {
                let mut tails = Vec::new();
                let mut nodes = Vec::new();
                for s in steps {
                    let (t, node) = self.step(s, after.clone(), when, soft, report);
                    tails.extend(t);
                    nodes.push(node);
                }
                let how = Parallel {
                    limit: *limit,
                    fail_fast: *fail_fast,
                };
                (tails, Node::InParallel { children: nodes, how })
            }
            StepKind::Do(steps) => self.sequence(steps, after, when, soft, report),
            StepKind::Try(inner) => {
                let (tails, node) = self.step(inner, after, when, true, report);
                (tails, Node::Try(Box::new(node)))
            }
            StepKind::SetPipeline(name) => {
                self.out.skipped.push(format!(
                    "{}:{}: set_pipeline `{name}` not run: c8s has no pipeline server (render that pipeline with c8s instead)",
                    step.at.0, step.at.1
                ));
                (after, Node::Do(Vec::new()))
            }
            StepKind::DeferredTask {
                name,
                file,
                file_at,
                reason,
            } => {
                let (artifact, path) = file.split_once('/').unwrap_or((file, ""));
                match self.artifacts.get(artifact) {
                    Some((producer, output)) => {
                        let why = format!(
                            "its file {file:?} is read from artifact `{artifact}`, which step `{producer}` fetches when the job runs"
                        );
                        self.out
                            .fetch
                            .push(FetchFile::new(name, file, path, producer, output));
                        self.defer(name, step, &why);
                    }
                    None => {
                        report.error(
                            *file_at,
                            &step.path.key("file"),
                            format!("cannot read task file {file:?}: {reason}, and no step before this one produces artifact `{artifact}` (give it with --artifact {artifact}=DIR)"),
                        );
                        // What it would make is unknown: later steps add no derived errors.
                        self.deferred.push(name.clone());
                    }
                }
                (after, Node::Do(Vec::new()))
            }
            StepKind::LoadVar(load) => match self.load_var(load, step, report) {
                // Its file was not in its artifact when the job ran: the
                // step errors, so nothing after it runs.
                Some(plan) => self.push_step(plan, "load_var", after, when, soft, None),
                None => (after, Node::Do(Vec::new())),
            },
            StepKind::DeferredAcross { name, var } => {
                // Its load_var is read by a runner (`LocalReads`): the
                // copies render once the job is lowered with the value.
                let why =
                    format!("its across values are ((.:{var})), set by a load_var read when the job runs");
                self.defer(name, step, &why);
                (after, Node::Do(Vec::new()))
            }
            _ if let Some((name, why)) = self.needs_deferred(step) => {
                self.defer(&name, step, &why);
                (after, Node::Do(Vec::new()))
            }
            _ => match self.pod(step, report) {
                Some((plan, kind)) => {
                    let puts = match &step.kind {
                        StepKind::Put { resource, .. } => Some(resource.clone()),
                        _ => None,
                    };
                    self.push_step(plan, kind, after, when, soft, puts)
                }
                None => (after, Node::Do(Vec::new())),
            },
        };
        let base = tails.clone();
        let mut hooks = Vec::new();
        for (hook, h) in &step.hooks {
            let (hook_tails, hook_node) = self.hook(hook, h, &base, report);
            if hook == "on_success" || hook == "ensure" {
                tails.extend(hook_tails);
            }
            hooks.push((Hook::of_key(hook), hook_node));
        }
        (tails, Node::hooked(node, hooks))
    }

    /// Adds `plan` as a step of the job after `after`: its one tail and node.
    fn push_step(
        &mut self,
        plan: TaskPlan,
        kind: &'static str,
        after: Vec<String>,
        when: When,
        soft: bool,
        puts: Option<String>,
    ) -> (Vec<String>, Node) {
        let id = plan.identity.step.clone();
        self.out.steps.push(JobStep {
            plan,
            kind,
            depends_on: after,
            when,
            allow_failure: soft,
            puts,
        });
        (vec![id.clone()], Node::Leaf(id))
    }

    /// A `load_var`: no pod (the tasks whose params use the var read its
    /// file themselves), deferred when its artifact may come from a
    /// deferred step, read when the job runs when it is a structure.
    /// A runner that could not read its file from the artifact (given
    /// [`FetchFile::UNREADABLE_VAR`]) makes it a step: [`unread_load_var`].
    fn load_var(&mut self, load: &LoadVar, step: &Step, report: &mut Report<'_>) -> Option<TaskPlan> {
        let artifact = load.file.split('/').next().unwrap_or_default();
        let mut unread = None;
        match self.deferred.last() {
            // Its file may be in what a deferred step makes: known
            // when that step is, and so are the steps that read it.
            Some(before) if !self.artifacts.contains_key(artifact) => {
                let why = format!(
                    "artifact `{artifact}` it reads may be made by step `{before}`, deferred to run time"
                );
                self.locals.defer(&load.name);
                self.defer(&load.name, step, &why);
            }
            // A structure (json, yaml), or a value a resource's params
            // read (JSON written before its pod runs): read when the job
            // runs, then known to the lowering (`c8s run` reads it).
            _ if (load.format.is_structured() || self.reads.resource.contains(&load.name))
                && self.artifacts.contains_key(artifact) =>
            {
                if self.structured_var(load, step, artifact, report) {
                    let id = self.unique_id(&load.name, step);
                    unread = Some(unread_load_var(&self.pipeline.name, id, &load.name));
                }
            }
            // No pod: the steps whose params use the var read its file themselves.
            _ => self
                .locals
                .load(load, step.at, &step.path, &self.artifacts, report),
        }
        // Its value made an across step's copies (read when the job was).
        if self.job.across_reads.contains(&load.name) {
            self.locals.mark_used(&load.name);
        }
        unread
    }

    /// A `json` or `yaml` `load_var` (or one a resource's params or an
    /// across step's values read) of `artifact`: its value when the
    /// reader has the file (a runner read it from the artifact), else the
    /// var is deferred, with the file to read; `true` when the runner
    /// could not read it ([`FetchFile::UNREADABLE_VAR`]).
    fn structured_var(
        &mut self,
        load: &LoadVar,
        step: &Step,
        artifact: &str,
        report: &mut Report<'_>,
    ) -> bool {
        let Some((producer, output)) = self.artifacts.get(artifact).cloned() else {
            return false;
        };
        let path = load.file.split_once('/').map_or("", |(_, p)| p);
        let fetch = FetchFile::for_var(&load.name, &load.file, path, producer.as_str(), output);
        match self.reader.read(&fetch.key) {
            Ok(bytes) => {
                self.locals.known(load, step.at, &step.path, &bytes, report);
                bytes == FetchFile::UNREADABLE_VAR.as_bytes()
            }
            Err(_) => {
                let why = format!(
                    "its {} value is read from artifact `{artifact}`, which step `{producer}` makes when the job runs",
                    match load.format {
                        LoadVarFormat::Json => "json",
                        LoadVarFormat::Yaml => "yaml",
                        // Read for a resource's params.
                        _ => "text",
                    }
                );
                self.out.fetch.push(fetch);
                self.locals.defer(&load.name);
                self.defer(&load.name, step, &why);
                false
            }
        }
    }

    /// Notes step `name` (at `step`) as known only when the job runs.
    fn defer(&mut self, name: &str, step: &Step, why: &str) {
        self.out.deferred.push(format!(
            "{}:{}: step `{name}` deferred to run time: {why}",
            step.at.0, step.at.1
        ));
        self.deferred.push(name.to_owned());
    }

    /// When a deferred step came before, a task or put that may read what
    /// it makes is deferred too: a task whose params use a local var a
    /// deferred `load_var` sets, a task input or `image:` no known step
    /// produces, or a put's inputs (all artifacts unless it lists them).
    /// Its name and why.
    fn needs_deferred(&self, step: &Step) -> Option<(String, String)> {
        if let Some((name, var)) = self.reads_deferred_var(step) {
            let base = var.split('.').next().unwrap_or(&var);
            let by = if self.locals.is_version(base) {
                format!("the version get `{base}` fetches, known when it ran")
            } else {
                "a load_var deferred to run time".to_owned()
            };
            return Some((name, format!("its params use ((.:{var})), set by {by}")));
        }
        let before = self.deferred.last()?;
        let unknown = |artifact: &str| !self.artifacts.contains_key(artifact);
        match &step.kind {
            StepKind::Task { step: task, image } => {
                let input = task
                    .config
                    .inputs
                    .iter()
                    .filter(|i| !i.optional)
                    .map(|i| task.input_artifact(&i.name))
                    .chain(image.as_deref())
                    .find(|a| unknown(a))?;
                let why = format!(
                    "artifact `{input}` it reads may be made by step `{before}`, deferred to run time"
                );
                Some((task.name.clone(), why))
            }
            StepKind::Put { name, inputs, .. } => {
                let why = match inputs {
                    None => format!(
                        "it takes every artifact of the build, which may include what deferred step `{before}` makes"
                    ),
                    Some(list) => {
                        let input = list.iter().find(|a| unknown(a))?;
                        format!(
                            "artifact `{input}` it takes may be made by step `{before}`, deferred to run time"
                        )
                    }
                };
                Some((name.clone(), why))
            }
            _ => None,
        }
    }

    /// A task, get or put whose params read a local var known only when
    /// the job runs: its name and the var (`NAME` or `NAME.FIELD`).
    fn reads_deferred_var(&self, step: &Step) -> Option<(String, String)> {
        let in_nodes = |name: &String, nodes: [&Option<YamlNode>; 2]| {
            nodes
                .into_iter()
                .flatten()
                .find_map(|node| self.locals.deferred_in(&node.to_json()))
                .map(|var| (name.clone(), var))
        };
        match &step.kind {
            StepKind::Task { step: task, .. } => task
                .config
                .params
                .iter()
                .chain(task.params.iter())
                .find_map(|(_, value)| self.locals.deferred_in(value))
                .map(|var| (task.name.clone(), var)),
            StepKind::Get { name, params, .. } => in_nodes(name, [params, &None]),
            StepKind::Put {
                name,
                params,
                get_params,
                ..
            } => in_nodes(name, [params, get_params]),
            _ => None,
        }
    }

    /// Get step `name`'s version as the local var `((.:NAME))`, for the
    /// steps after it that read it: known when the version was given,
    /// else saved by the get's pod and read by a runner once it ran (the
    /// var deferred until then, and so are the steps that read it).
    fn version_var(
        &mut self,
        name: &str,
        step: &Step,
        plan: &mut TaskPlan,
        given: Option<&str>,
        report: &mut Report<'_>,
    ) {
        if let Some(json) = given {
            self.locals
                .fetched(name, step.at, &step.path, json.as_bytes(), report);
            return;
        }
        resource::save_version(plan, name);
        let dir = resource::version_dir(name);
        let file = format!("{dir}/{}", resource::VERSION_FILE);
        let fetch = FetchFile::for_var(
            name,
            &file,
            resource::VERSION_FILE,
            plan.identity.step.clone(),
            dir,
        );
        match self.reader.read(&fetch.key) {
            Ok(bytes) => self.locals.fetched(name, step.at, &step.path, &bytes, report),
            Err(_) => {
                self.out.fetch.push(fetch);
                self.locals.defer_version(name);
            }
        }
    }

    /// A get's or put's `params` (and a put's `get_params`) with the local
    /// vars the lowering knows written in (`((.:repo.ref))`, as Concourse
    /// interpolates a resource's params when the step runs); `None`,
    /// reported, when one remains that no runner reads before the pod.
    fn resource_params(&mut self, step: &Step, report: &mut Report<'_>) -> Option<[Option<YamlNode>; 2]> {
        let mut nodes = match &step.kind {
            StepKind::Get { params, .. } => [params.clone(), None],
            StepKind::Put {
                params, get_params, ..
            } => [params.clone(), get_params.clone()],
            _ => return Some([None, None]),
        };
        for (key, node) in ["params", "get_params"].into_iter().zip(nodes.iter_mut()) {
            let Some(node) = node else {
                continue;
            };
            let path = step.path.key(key);
            if !self.write_known_locals(node, step.at, &path, report) {
                return None;
            }
            if let Some(local) = super::vars::var_refs(&node.to_json())
                .into_iter()
                .find(|r| r.name.starts_with(".:"))
            {
                report.error(
                    step.at,
                    &path,
                    format!("(({})) has no value before this step runs: a resource's params take a get's version, or a load_var's value read from an artifact a step before made", local.name),
                );
                return None;
            }
        }
        Some(nodes)
    }

    /// Writes the known local vars into every scalar of `node` (a value
    /// becomes a string, as interpolated text is); `false` when a field a
    /// var lacks was reported.
    fn write_known_locals(
        &mut self,
        node: &mut YamlNode,
        at: (u32, u32),
        path: &FieldPath,
        report: &mut Report<'_>,
    ) -> bool {
        let mut ok = true;
        match &mut node.value {
            super::node::Value::Scalar { text, plain } if text.contains("((.:") => {
                let before = text.clone();
                for reason in self.locals.write_known(text) {
                    report.error(at, path, reason);
                    ok = false;
                }
                if *text != before {
                    *plain = false;
                }
            }
            super::node::Value::Scalar { .. } => {}
            super::node::Value::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    ok &= self.write_known_locals(item, at, &path.index(i), report);
                }
            }
            super::node::Value::Map(entries) => {
                for entry in entries {
                    ok &= self.write_known_locals(&mut entry.node, at, &path.key(&entry.key), report);
                }
            }
            super::node::Value::Null => {}
        }
        ok
    }

    /// The step's id in the job: `JOB.NAME`, with an across copy's suffix,
    /// and `-2`, `-3`… when the name is taken.
    fn unique_id(&self, name: &str, step: &Step) -> String {
        let base = match &step.copy {
            Some(copy) => format!("{}.{name}-{copy}", self.job.name),
            None => format!("{}.{name}", self.job.name),
        };
        let mut id = base.clone();
        let mut n = 2;
        while self.out.steps.iter().any(|s| s.plan.identity.step == id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }

    fn pod(&mut self, step: &Step, report: &mut Report<'_>) -> Option<(TaskPlan, &'static str)> {
        let pipeline = self.pipeline;
        let [params, get_params] = self.resource_params(step, report)?;
        let (mut plan, kind) = match &step.kind {
            StepKind::Get {
                name,
                resource,
                version,
                ..
            } => {
                let res = pipeline.resources.iter().find(|r| &r.name == resource)?;
                let identity = PlanIdentity::new(&pipeline.name, self.unique_id(name, step));
                let version = self
                    .versions
                    .get(resource)
                    .cloned()
                    .or_else(|| resource::version_json(version.as_ref()))
                    .or_else(|| resource::version_json(res.version.as_ref()));
                let given = version.clone();
                let mut plan = resource::get_plan(
                    pipeline,
                    identity,
                    name,
                    res,
                    params.as_ref(),
                    version,
                    &mut self.out.secrets,
                    report,
                )?;
                if self.reads.any.contains(name) {
                    self.version_var(name, step, &mut plan, given.as_deref(), report);
                }
                self.artifacts
                    .insert(name.clone(), (plan.identity.step.clone(), name.clone()));
                (plan, "get")
            }
            StepKind::Put {
                name,
                resource,
                inputs,
                no_get,
                ..
            } => {
                let res = pipeline.resources.iter().find(|r| &r.name == resource)?;
                let identity = PlanIdentity::new(&pipeline.name, self.unique_id(name, step));
                let mut plan = resource::put_plan(
                    pipeline,
                    identity,
                    name,
                    res,
                    params.as_ref(),
                    get_params.as_ref(),
                    *no_get,
                    &mut self.out.secrets,
                    report,
                )?;
                for (artifact, (producer, output)) in &self.artifacts {
                    if inputs.as_ref().is_none_or(|list| list.contains(artifact)) {
                        let mut input = crate::plan::PlanInput::new(producer, output);
                        input.path = artifact.clone();
                        plan.inputs.push(input);
                    }
                }
                if !no_get {
                    self.artifacts.insert(
                        name.clone(),
                        (plan.identity.step.clone(), resource::implicit_get_dir(name)),
                    );
                }
                (plan, "put")
            }
            StepKind::Task { step: task, image } => {
                let mut task = (**task).clone();
                if let Some(artifact) = image {
                    match self.image_of(artifact, step, report) {
                        Some((reference, secret)) => {
                            task.image = Some(reference);
                            task.image_pull_secret = secret;
                        }
                        None if !report.is_clean() => return None,
                        None => {
                            report.error(step.at, &step.path.key("image"), format!("image artifact `{artifact}` is not fetched by a get of a registry-image or docker-image resource earlier in the job"));
                            return None;
                        }
                    }
                }
                let id = self.unique_id(&task.name, step);
                let mut plan = match visit_task_with(&pipeline.name, &task, self.reader, &self.artifacts) {
                    Ok(plan) => plan,
                    Err(errors) => {
                        for e in errors {
                            report.error(step.at, &step.path, e.to_string());
                        }
                        return None;
                    }
                };
                plan.identity.step = id.clone();
                for output in &task.config.outputs {
                    let dir = output.path.clone().unwrap_or_else(|| output.name.clone());
                    self.artifacts
                        .insert(task.output_artifact(&output.name).to_owned(), (id.clone(), dir));
                }
                super::params::secret_params(
                    &self.pipeline.name,
                    &mut plan,
                    step,
                    &mut self.out.secrets,
                    &mut self.locals,
                    report,
                );
                (plan, "task")
            }
            _ => return None,
        };
        apply_modifiers(&mut plan, step);
        Some((plan, kind))
    }

    /// The image a get of a registry resource fetched as `artifact`; its
    /// `repository` and `tag` may use `-v` values (credentials stay out).
    fn image_of(
        &self,
        artifact: &str,
        step: &Step,
        report: &mut Report<'_>,
    ) -> Option<(String, Option<String>)> {
        let mut found = None;
        for s in &self.job.plan {
            s.visit(&mut |s| {
                if let StepKind::Get { name, resource, .. } = &s.kind
                    && name == artifact
                {
                    found = Some(resource.clone());
                }
            });
        }
        let resource = self
            .pipeline
            .resources
            .iter()
            .find(|r| Some(&r.name) == found.as_ref())?;
        let mut source = resource.source.clone();
        let mut vars_report = Report::new(report.file());
        let credential = |p: &FieldPath| matches!(p.segments().last(), Some(c8s_sidecar_core::Segment::Key(k)) if super::image::CREDENTIAL_KEYS.contains(&k.as_str()));
        super::vars::interpolate(&mut source, &self.pipeline.vars, &credential, &mut vars_report);
        if let Err(errors) = vars_report.finish() {
            report.extend(errors);
            return None;
        }
        let path = step.path.key("image");
        let mut image =
            super::image::ImageResource::from_parts(&resource.kind, Some(&source), None, &path, report)?;
        let digest = self
            .versions
            .get(&resource.name)
            .and_then(|v| v.split("\"digest\":\"").nth(1))
            .and_then(|d| d.split('"').next());
        if let Some(digest) = digest {
            image.digest = Some(digest.to_owned());
        }
        Some((image.reference(), image.pull_secret()))
    }
}

/// The step (`id`) a `load_var` of `name` becomes when a runner could not
/// read its file from the artifact: Concourse's `load_var` step errors the
/// build then (`atc/exec/load_var_step.go` returns the error), so the steps
/// after it never run and the job's `on_error` and `ensure` hooks do. Its
/// env holds [`FetchFile::UNREADABLE_VAR`], by which the runner errors it
/// without creating its pod (`c8s run`'s `run_fetch::unreadable_steps`).
fn unread_load_var(pipeline: &str, id: String, name: &str) -> TaskPlan {
    let mut plan = TaskPlan::new(PlanIdentity::new(pipeline, id), "busybox");
    plan.command = vec!["false".to_owned()];
    plan.env = vec![c8s_sidecar_core::EnvVar::value(
        "C8S_LOAD_VAR",
        format!("{name}: {}", FetchFile::UNREADABLE_VAR),
    )];
    plan.skip_checkout = true;
    plan
}

/// The step modifiers that shape the pod's plan: `timeout` (the pod's
/// deadline) and `attempts`.
fn apply_modifiers(plan: &mut TaskPlan, step: &Step) {
    if let Some(t) = step.timeout_seconds {
        plan.timeout_seconds = Some(t);
    }
    if let Some(attempts) = step.attempts {
        plan.attempts = Some(attempts);
        // `attempts` wraps the step inside its hooks (`StepPrecedence` in
        // atc/steps.go): the same pod spec runs again, up to `attempts`
        // times, after a failure or an error (atc/exec/retry_step.go),
        // before any hook sees the result. A retry after a step's own
        // timeout is the one case c8s leaves out (its `any` excludes it).
        if attempts > 1 {
            plan.retries = Some(crate::retries::Retries::any(attempts - 1));
        }
    }
}
