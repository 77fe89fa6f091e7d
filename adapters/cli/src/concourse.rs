//! Concourse files in the CLI: task steps and pipelines (detected from their
//! content), `-v NAME=VALUE`, `--vars-file`, `--version RESOURCE=JSON`,
//! `--concourse-job NAME`, and `c8s plan` for pipelines (the jobs and their
//! `passed:` graph, or one job's step DAG).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use c8s_pipeline_model::concourse::step::parse_task_step;
use c8s_pipeline_model::concourse::{
    self, ConcoursePipeline, FetchFile, JobPlan, lower_job, parse_concourse_pipeline,
};
use c8s_pipeline_model::scheduler::Condition;
use c8s_pipeline_model::sidecar::{Position, SourceReader};
use c8s_pipeline_model::{Error, Errors};
use c8s_pipeline_model::{TaskPlan, Vars, visit_task};
use clap::Args;

use crate::input::Kind;
use crate::plan::Format;

/// Options for Concourse files.
#[derive(Debug, Clone, Default, Args)]
pub struct ConcourseArgs {
    /// A value for a `((var))`, as fly takes it (repeatable).
    #[arg(short = 'v', long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// A YAML file of var values (repeatable; later files win).
    #[arg(long = "vars-file", value_name = "FILE")]
    pub vars_files: Vec<String>,
    /// The version a get fetches, as JSON (else a check finds the newest).
    #[arg(long = "version", value_name = "RESOURCE=JSON")]
    pub versions: Vec<String>,
    /// Where task `file:`s of an artifact are read from (default: the
    /// current directory for every artifact).
    #[arg(long = "artifact", value_name = "NAME=DIR")]
    pub artifacts: Vec<String>,
    /// A task input that is the repository checkout (cloned by `git-clone` at
    /// its path) instead of an artifact, as `fly execute` uploads a local dir.
    #[arg(long = "checkout-input", value_name = "INPUT")]
    pub checkout_input: Option<String>,
    /// The job of a Concourse pipeline to render or run (default: every job).
    #[arg(long = "concourse-job", value_name = "NAME")]
    pub concourse_job: Option<String>,
    /// Task files `c8s run` read from artifacts while the job ran, by
    /// `ARTIFACT/PATH` (not a flag).
    #[arg(skip)]
    pub fetched: BTreeMap<String, Vec<u8>>,
}

fn usage(message: String) -> Errors {
    Errors::from(Error::Syntax {
        at: Position::file("<command line>"),
        message,
    })
}

impl ConcourseArgs {
    /// The vars of `-v` and `--vars-file`.
    pub fn vars(&self) -> Result<Vars, Errors> {
        let mut vars = Vars::new();
        for file in &self.vars_files {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Errors::from(Error::Read {
                    file: file.clone(),
                    reason: c8s_pipeline_model::sidecar::load::read_reason(&e),
                })
            })?;
            vars.add_file(file, &text)?;
        }
        for pair in &self.vars {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| usage(format!("-v {pair:?}: expected NAME=VALUE")))?;
            vars.set(name, value);
        }
        Ok(vars)
    }

    /// `--version` pairs, as resource → JSON.
    pub fn versions(&self) -> Result<BTreeMap<String, String>, Errors> {
        self.versions
            .iter()
            .map(|pair| {
                let (name, json) = pair
                    .split_once('=')
                    .ok_or_else(|| usage(format!("--version {pair:?}: expected RESOURCE=JSON")))?;
                let json = json.trim();
                if !(json.starts_with('{') && json.ends_with('}')) {
                    return Err(usage(format!(
                        "--version {name}: {json:?} is not a JSON object like {{\"ref\":\"abc\"}}"
                    )));
                }
                Ok((name.to_owned(), json.to_owned()))
            })
            .collect()
    }

    fn reader(&self) -> Result<ArtifactReader, Errors> {
        let mut dirs = BTreeMap::new();
        for pair in &self.artifacts {
            let (name, dir) = pair
                .split_once('=')
                .ok_or_else(|| usage(format!("--artifact {pair:?}: expected NAME=DIR")))?;
            dirs.insert(name.to_owned(), PathBuf::from(dir));
        }
        Ok(ArtifactReader {
            dirs,
            fetched: self.fetched.clone(),
        })
    }
}

/// Reads `ARTIFACT/path` from what `c8s run` fetched from that artifact,
/// else from the directory given for ARTIFACT, else `path` from the current
/// directory (c8s run at the root of the artifact's repository).
/// A file missing from a directory given for its artifact is an error of its
/// own (not `NotFound`): the user said where it is, so it is not deferred to
/// the run as a file of an artifact fetched then.
struct ArtifactReader {
    dirs: BTreeMap<String, PathBuf>,
    fetched: BTreeMap<String, Vec<u8>>,
}

impl SourceReader for ArtifactReader {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        if let Some(bytes) = self.fetched.get(path) {
            return Ok(bytes.clone());
        }
        // A load_var's file is only ever what the run read from its artifact.
        if path.starts_with(FetchFile::VAR_PREFIX) {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        let (artifact, rest) = path.split_once('/').unwrap_or(("", path));
        match self.dirs.get(artifact) {
            Some(dir) => std::fs::read(dir.join(rest)).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => std::io::Error::other(format!(
                    "{rest} is not in {} (--artifact {artifact})",
                    dir.display()
                )),
                _ => e,
            }),
            None => std::fs::read(rest).or_else(|_| std::fs::read(path)),
        }
    }
}

/// With `--checkout-input NAME`, input NAME of a task plan is cloned from
/// the repository instead of unpacked from an artifact.
pub fn apply_checkout_input(plan: &mut TaskPlan, args: &ConcourseArgs) {
    if let Some(name) = &args.checkout_input {
        plan.checkout_input(name);
    }
}

/// A Concourse file lowered to pods.
pub struct Lowered {
    /// The pods' plans.
    pub plans: Vec<TaskPlan>,
    /// Each plan's dependencies, by step.
    pub depends_on: BTreeMap<String, Vec<String>>,
    /// The condition each plan runs under, by step: how Concourse runs
    /// hooks, `try` and a job after the jobs its `passed:` names.
    pub conditions: BTreeMap<String, Condition>,
    /// When the run succeeded (every job's build did); `None` for a task step.
    pub outcome: Option<Condition>,
    /// What the user should know (notes, Secrets to create, steps not run).
    pub warnings: Vec<String>,
    /// Steps known only when the job runs, `FILE:LINE:COL: why` (also in
    /// `warnings`).
    pub deferred: Vec<String>,
    /// The task files of deferred steps that a run reads from artifacts
    /// once the steps making them ran.
    pub fetch: Vec<FetchFile>,
    /// The put steps, each with the resource it makes a version of.
    pub puts: BTreeMap<String, String>,
    /// Values kept out of step logs, each with what it is (`load_var`
    /// values read while the job runs, without `reveal: true`).
    pub redact: Vec<(String, String)>,
}

/// Reads a pipeline with the options' vars.
pub fn pipeline(file: &str, text: &str, args: &ConcourseArgs) -> Result<ConcoursePipeline, Errors> {
    parse_concourse_pipeline(file, text, &args.vars()?, &args.reader()?)
}

fn jobs(file: &str, pipeline: &ConcoursePipeline, args: &ConcourseArgs) -> Result<Vec<JobPlan>, Errors> {
    let reader = args.reader()?;
    let versions = args.versions()?;
    let names: Vec<String> = match &args.concourse_job {
        Some(job) => vec![job.clone()],
        None => pipeline.jobs.iter().map(|j| j.name.clone()).collect(),
    };
    names
        .iter()
        .map(|job| lower_job(pipeline, job, &reader, &versions, file))
        .collect()
}

/// Refuses `lowered` for a command that renders the pipeline whole before
/// it runs (`c8s helm pipeline`; `c8s run` when it cannot read the files
/// while the job runs) when steps of it are known only when the job runs.
pub fn refuse_deferred(file: &str, deferred: &[String]) -> Result<(), Errors> {
    if deferred.is_empty() {
        return Ok(());
    }
    Err(Errors::from(Error::Syntax {
        at: Position::file(file),
        message: format!(
            "{} step(s) are known only when the job runs (a task file in an artifact a step fetches then), and a chart holds every pod before a run (c8s run reads such files while the job runs): give that artifact's checkout with --artifact NAME=DIR:\n  {}",
            deferred.len(),
            deferred.join("\n  ")
        ),
    }))
}

/// Lowers a task step or a pipeline (its `--concourse-job`, or every job),
/// with the condition each step runs under (hooks run as Concourse runs
/// them) and the run's outcome.
pub fn lower(file: &str, text: &str, args: &ConcourseArgs, step_file: bool) -> Result<Lowered, Errors> {
    let stem = Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("concourse");
    if step_file {
        let reader = args.reader()?;
        let step = parse_task_step(file, text, &args.vars()?, &reader)?;
        let mut plan = visit_task(stem, &step, &reader)?;
        apply_checkout_input(&mut plan, args);
        let warnings = privileged_warning(&plan).into_iter().collect();
        return Ok(Lowered {
            plans: vec![plan],
            depends_on: BTreeMap::new(),
            conditions: BTreeMap::new(),
            outcome: None,
            warnings,
            deferred: Vec::new(),
            fetch: Vec::new(),
            puts: BTreeMap::new(),
            redact: Vec::new(),
        });
    }
    let pipeline = pipeline(file, text, args)?;
    let mut out = Lowered {
        plans: Vec::new(),
        depends_on: BTreeMap::new(),
        conditions: BTreeMap::new(),
        outcome: None,
        warnings: pipeline.notes.clone(),
        deferred: Vec::new(),
        fetch: Vec::new(),
        puts: BTreeMap::new(),
        redact: Vec::new(),
    };
    let lowered = jobs(file, &pipeline, args)?;
    // Concourse runs a job only with versions that went through every job
    // its `get`s name in `passed:`, i.e. after those jobs' builds succeeded
    // (https://concourse-ci.org/get-step.html#schema.get.passed). When every
    // job is lowered into one run, a job's first steps wait for every step of
    // those jobs; with `--concourse-job` the one job has no upstream here.
    // A job's steps run only if those jobs' builds succeeded (their outcomes).
    let mut steps_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut outcome_of: BTreeMap<String, Condition> = BTreeMap::new();
    for job in &lowered {
        let steps = job.steps.iter().map(|s| s.plan.identity.step.clone());
        steps_of.insert(job.job.clone(), steps.collect());
        outcome_of.insert(job.job.clone(), job.outcome.clone());
    }
    let passed = |job: &str| -> Vec<String> {
        pipeline
            .jobs
            .iter()
            .find(|j| j.name == job)
            .map(|j| j.passed())
            .unwrap_or_default()
    };
    out.outcome = Some(Condition::all(lowered.iter().map(|j| j.outcome.clone())));
    for job in lowered {
        let upstream = passed(&job.job);
        let after_jobs: Vec<String> = upstream
            .iter()
            .filter_map(|up| steps_of.get(up))
            .flatten()
            .cloned()
            .collect();
        let upstream_ok = Condition::all(upstream.iter().filter_map(|up| outcome_of.get(up)).cloned());
        out.warnings
            .extend(job.skipped.iter().map(|s| format!("{file}:{s}")));
        out.deferred
            .extend(job.deferred.iter().map(|s| format!("{file}:{s}")));
        out.fetch.extend(job.fetch.iter().cloned());
        out.redact.extend(job.redact.iter().cloned());
        for secret in &job.secrets {
            out.warnings.push(format!(
                "needs Secret {} key {}: {}",
                secret.name,
                secret.key,
                secret.how()
            ));
        }
        for step in job.steps {
            out.warnings.extend(privileged_warning(&step.plan));
            let own = job.conditions.get(&step.plan.identity.step).cloned();
            let condition = Condition::all([upstream_ok.clone(), own.unwrap_or(Condition::True)]);
            out.conditions.insert(step.plan.identity.step.clone(), condition);
            let mut depends_on = step.depends_on.clone();
            if depends_on.is_empty() {
                depends_on.extend(after_jobs.iter().cloned());
            }
            out.depends_on.insert(step.plan.identity.step.clone(), depends_on);
            if let Some(resource) = step.puts {
                out.puts.insert(step.plan.identity.step.clone(), resource);
            }
            out.plans.push(step.plan);
        }
    }
    out.warnings.extend(out.deferred.iter().cloned());
    out.warnings.sort();
    out.warnings.dedup();
    Ok(out)
}

fn privileged_warning(plan: &TaskPlan) -> Option<String> {
    plan.privileged.then(|| {
        format!(
            "{}: privileged: its pod meets only the privileged Pod Security profile (namespaces enforcing baseline or restricted reject it)",
            plan.identity.step
        )
    })
}

/// `c8s plan` for a pipeline: without `--concourse-job`, the jobs and their
/// `passed:` graph; with it, that job's step DAG.
pub fn plan(file: &str, text: &str, args: &ConcourseArgs, format: Format) -> Result<String, Errors> {
    let pipeline = pipeline(file, text, args)?;
    let mut deferred = Vec::new();
    let (nodes, edges): (Vec<Node>, Vec<Edge>) = match &args.concourse_job {
        None => {
            let nodes = pipeline
                .jobs
                .iter()
                .map(|j| (j.name.clone(), "job".to_owned()))
                .collect();
            let edges = pipeline
                .jobs
                .iter()
                .flat_map(|j| {
                    j.passed()
                        .into_iter()
                        .map(move |up| (up, j.name.clone(), "passed".to_owned()))
                })
                .collect();
            (nodes, edges)
        }
        Some(_) => {
            let job = jobs(file, &pipeline, args)?.remove(0);
            deferred = job.deferred.iter().map(|d| format!("{file}:{d}")).collect();
            let nodes = job
                .steps
                .iter()
                .map(|s| (s.plan.identity.step.clone(), s.kind.to_owned()))
                .collect();
            let edges = job
                .steps
                .iter()
                .flat_map(|s| {
                    let when = format!("{:?}", s.when).to_lowercase();
                    s.depends_on
                        .iter()
                        .map(move |d| (d.clone(), s.plan.identity.step.clone(), when.clone()))
                })
                .collect();
            (nodes, edges)
        }
    };
    Ok(graph(&nodes, &edges, &deferred, format))
}

/// A graph node: name and kind.
type Node = (String, String);
/// A graph edge: from, to, and when it is taken.
type Edge = (String, String, String);

/// The graph in `format`, then the job's deferred steps (`FILE:LINE:COL: why`),
/// which have no node: their config is known only when the job runs.
fn graph(nodes: &[Node], edges: &[Edge], deferred: &[String], format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Text => {
            for (name, kind) in nodes {
                let after: Vec<String> = edges
                    .iter()
                    .filter(|(_, to, _)| to == name)
                    .map(|(from, _, when)| {
                        if when == "success" || when == "passed" {
                            from.clone()
                        } else {
                            format!("{from} ({when})")
                        }
                    })
                    .collect();
                if after.is_empty() {
                    out.push_str(&format!("{kind} {name}\n"));
                } else {
                    out.push_str(&format!("{kind} {name}  <- {}\n", after.join(", ")));
                }
            }
            deferred
                .iter()
                .for_each(|d| out.push_str(&format!("deferred {d}\n")));
        }
        Format::Json => {
            let mut value = serde_json::json!({
                "nodes": nodes.iter().map(|(n, k)| serde_json::json!({"name": n, "kind": k})).collect::<Vec<_>>(),
                "edges": edges.iter().map(|(f, t, w)| serde_json::json!({"from": f, "to": t, "when": w})).collect::<Vec<_>>(),
            });
            if !deferred.is_empty() {
                value["deferred"] = serde_json::json!(deferred);
            }
            out = serde_json::to_string_pretty(&value).unwrap_or_default();
            out.push('\n');
        }
        Format::Dot => {
            out.push_str("digraph concourse {\n  rankdir=LR;\n");
            deferred
                .iter()
                .for_each(|d| out.push_str(&format!("  // deferred {d}\n")));
            for (name, kind) in nodes {
                out.push_str(&format!("  {name:?} [label={:?}];\n", format!("{kind} {name}")));
            }
            for (from, to, when) in edges {
                let style = if when == "success" || when == "passed" {
                    String::new()
                } else {
                    format!(" [style=dashed, label={when:?}]")
                };
                out.push_str(&format!("  {from:?} -> {to:?}{style};\n"));
            }
            out.push_str("}\n");
        }
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            let id = |name: &str| {
                format!(
                    "n{}",
                    nodes.iter().position(|(n, _)| n == name).unwrap_or(usize::MAX)
                )
            };
            for (name, kind) in nodes {
                out.push_str(&format!(
                    "  {}[\"{kind} {}\"]\n",
                    id(name),
                    name.replace('"', "'")
                ));
            }
            for (from, to, when) in edges {
                if when == "success" || when == "passed" {
                    out.push_str(&format!("  {} --> {}\n", id(from), id(to)));
                } else {
                    out.push_str(&format!("  {} -.->|{when}| {}\n", id(from), id(to)));
                }
            }
            deferred
                .iter()
                .for_each(|d| out.push_str(&format!("  %% deferred {d}\n")));
        }
    }
    out
}

/// Whether `text` is a Concourse pipeline or task step (parsed only when
/// the cheap look is unsure).
pub fn detect(file: &str, text: &str) -> Option<Kind> {
    let doc = concourse::node::parse(file, text).ok()?;
    if concourse::is_pipeline(&doc) {
        Some(Kind::Concourse)
    } else if concourse::is_task_step(&doc) {
        Some(Kind::TaskStep)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSED: &str = "\
resources:
- name: repo
  type: git
  source: { uri: https://github.com/example/app.git }
jobs:
- name: unit
  plan:
  - get: repo
  - task: test
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: golang } }
      inputs: [{ name: repo }]
      run: { path: go, args: [test, ./...], dir: repo }
- name: ship
  plan:
  - get: repo
    passed: [unit]
  - task: package
    config:
      platform: linux
      image_resource: { type: registry-image, source: { repository: alpine } }
      inputs: [{ name: repo }]
      run: { path: tar, args: [-czf, /tmp/app.tgz, repo] }
";

    #[test]
    fn a_job_waits_for_every_step_of_the_jobs_it_passed() {
        let args = ConcourseArgs {
            versions: vec![r#"repo={"ref":"9f2c1d4e5b6a7980a1b2c3d4e5f60718293a4b5c"}"#.to_owned()],
            ..ConcourseArgs::default()
        };
        let lowered = lower("app.yml", PASSED, &args, false).unwrap_or_else(|e| panic!("{e}"));
        let steps: Vec<&str> = lowered.plans.iter().map(|p| p.identity.step.as_str()).collect();
        let unit: Vec<String> = steps
            .iter()
            .filter(|s| s.contains("unit"))
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(unit.len(), 2, "{steps:?}");
        let ship_get = steps
            .iter()
            .find(|s| s.contains("ship") && s.contains("repo"))
            .unwrap_or_else(|| panic!("{steps:?}"));
        assert_eq!(lowered.depends_on[*ship_get], unit, "{:?}", lowered.depends_on);
        // Within a job, later steps keep their own dependencies.
        let package = steps
            .iter()
            .find(|s| s.contains("package"))
            .unwrap_or_else(|| panic!("{steps:?}"));
        assert_eq!(lowered.depends_on[*package], [(*ship_get).to_owned()]);
        // And they run only if the upstream build succeeded.
        let unit_ok = Condition::all(unit.iter().map(|s| Condition::Succeeded(s.clone())));
        assert_eq!(lowered.conditions[*ship_get], unit_ok);
    }

    const HOOKS: &str = "\
jobs:
- name: unit
  plan:
  - try:
      task: flaky
      config: &cfg
        platform: linux
        image_resource: { type: registry-image, source: { repository: alpine } }
        run: { path: 'true' }
  - task: test
    config: *cfg
    on_failure: { task: tell, config: *cfg }
    ensure: { task: clean, config: *cfg }
  on_abort: { task: abort, config: *cfg }
";

    #[test]
    fn hooks_are_lowered_with_their_conditions_and_not_left_out() {
        let lowered =
            lower("hooks.yml", HOOKS, &ConcourseArgs::default(), false).unwrap_or_else(|e| panic!("{e}"));
        let steps: Vec<&str> = lowered.plans.iter().map(|p| p.identity.step.as_str()).collect();
        assert_eq!(
            steps,
            ["unit.flaky", "unit.test", "unit.tell", "unit.clean", "unit.abort"]
        );
        assert!(
            lowered.warnings.iter().all(|w| !w.contains("not run")),
            "{:?}",
            lowered.warnings
        );
        let c = &lowered.conditions;
        let s = |step: &str| step.to_owned();
        assert_eq!(c["unit.flaky"], Condition::True);
        // After a try: whatever the try did.
        assert_eq!(c["unit.test"], Condition::True);
        assert_eq!(c["unit.tell"], Condition::Failed(s("unit.test")));
        assert_eq!(
            c["unit.clean"],
            Condition::all([Condition::Ended(s("unit.test")), Condition::Ended(s("unit.tell"))])
        );
        assert_eq!(
            c["unit.abort"],
            Condition::any(
                ["unit.flaky", "unit.test", "unit.tell", "unit.clean"].map(|x| Condition::Aborted(s(x)))
            )
        );
        assert_eq!(
            lowered.outcome,
            Some(Condition::all([
                Condition::Succeeded(s("unit.test")),
                Condition::Succeeded(s("unit.clean"))
            ]))
        );
    }
}
