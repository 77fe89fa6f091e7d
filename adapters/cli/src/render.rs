//! `c8s render`: a pipeline (every matrix combination), a task config, or a
//! sidecar file, rendered as Pods or Jobs — a multi-document YAML stream or a
//! JSON `List` that `kubectl apply -f -` accepts. The bytes are exactly those
//! of `c8s_pod_builder::to_canonical_yaml_stream` / `to_canonical_json_list`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use c8s_pipeline_model::Errors;
use c8s_pipeline_model::scheduler::Condition;
use c8s_pipeline_model::{PlanIdentity, TaskPlan, TaskStep};
use c8s_pod_builder::{Object, RunContext, SidecarMode, YamlStream};
use clap::{Args, ValueEnum};

use crate::documents::{self, DirSource, Kind};

/// Options of `c8s render`.
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// A `.c8s.yaml` pipeline, a Concourse task config, or a sidecar file.
    pub file: String,
    /// What the file is; detected from its content when absent.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// The run's branch (evaluates `branches` and `conditional`; fetched when no commit is given).
    #[arg(long)]
    pub branch: Option<String>,
    /// The commit to check out.
    #[arg(long, default_value = "")]
    pub commit: String,
    /// The build number.
    #[arg(long, default_value_t = 1)]
    pub build: u64,
    /// The run's id, part of every object's name and its `c8s.dev/run` label
    /// (default: `local`; `c8s run`: a new id for each run).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Namespace of the objects (omitted when empty).
    #[arg(long, default_value = "")]
    pub namespace: String,
    /// Git repository to clone (default: the pipeline's `repository`).
    #[arg(long)]
    pub repository: Option<String>,
    /// Emit batch/v1 Jobs instead of Pods.
    #[arg(long)]
    pub job: bool,
    /// Sidecar mode (default: native from Kubernetes 1.29 on).
    #[arg(long, value_enum)]
    pub sidecars: Option<Mode>,
    /// Target Kubernetes minor version (1.N); below 29 selects legacy sidecars.
    #[arg(long, default_value_t = c8s_pod_builder::context::DEFAULT_KUBERNETES_MINOR)]
    pub kubernetes_minor: u32,
    /// PersistentVolumeClaim for artifacts.
    #[arg(long, default_value = "c8s-artifacts")]
    pub artifact_claim: String,
    /// PersistentVolumeClaim for caches.
    #[arg(long, default_value = "c8s-cache")]
    pub cache_claim: String,
    /// Secret with git credentials for `git-clone` (keys `username`/`password`,
    /// or `ssh-privatekey`/`known_hosts`); never put credentials in the URL.
    #[arg(long)]
    pub git_secret: Option<String>,
    /// Deadline of steps without a `timeout` (and of task configs), a duration such as `1h`.
    #[arg(long, default_value = "1h", value_parser = parse_seconds)]
    pub default_timeout: u64,
    /// `sizeLimit` of the workspace emptyDir (a quantity; empty: none).
    #[arg(long, default_value = c8s_pod_builder::context::DEFAULT_WORKSPACE_SIZE_LIMIT)]
    pub workspace_size: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: Format,
    /// Pod overrides (over the file's own).
    #[command(flatten)]
    pub pod: crate::pod_flags::PodFlags,
    /// Concourse options.
    #[command(flatten)]
    pub concourse: crate::concourse::ConcourseArgs,
}

/// A Go-style duration (`90s`, `1h30m`) as seconds, for clap.
pub fn parse_seconds(text: &str) -> Result<u64, String> {
    c8s_pipeline_model::parse_duration(text)
}

/// `--sidecars`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Restartable init containers (Kubernetes >= 1.29).
    Native,
    /// Plain containers (older clusters).
    Legacy,
}

/// `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A multi-document YAML stream.
    Yaml,
    /// A JSON `List`.
    Json,
}

/// What a file turned into: the plans, and the repository they clone.
pub struct LoadedPlans {
    /// One plan per pod, in a stable order; a pipeline's `finally` steps last.
    pub plans: Vec<TaskPlan>,
    /// The pipeline's repository (empty for task configs and sidecar files).
    pub repository: String,
    /// Each step's direct dependencies, by step name (empty outside pipelines).
    pub depends_on: BTreeMap<String, Vec<String>>,
    /// The condition each step runs under, by step name (a Concourse job's
    /// hooks and `try`; empty otherwise).
    pub conditions: BTreeMap<String, Condition>,
    /// When the run succeeded, over the steps' names (a Concourse build's
    /// result); `None`: when every step did.
    pub outcome: Option<Condition>,
    /// The pipeline's whole-run deadline in seconds, if it sets one.
    pub timeout_seconds: Option<u64>,
    /// What was read but is not done as written (Concourse notes, Secrets a
    /// run needs), for the command to print as `warning:` lines.
    pub warnings: Vec<String>,
    /// Concourse steps known only when the job runs (`FILE:LINE:COL: why`):
    /// rendered without them, never run without them.
    pub deferred: Vec<String>,
    /// The task files of deferred steps `c8s run` reads from artifacts once
    /// the steps making them ran.
    pub fetch: Vec<c8s_pipeline_model::concourse::FetchFile>,
    /// A Concourse job's put steps, each with the resource it makes a
    /// version of (by step name).
    pub puts: BTreeMap<String, String>,
    /// Values kept out of step logs besides Secrets', each with what it is
    /// (a Concourse `load_var`'s value read while the job runs).
    pub redact: Vec<(String, String)>,
}

impl LoadedPlans {
    /// One plan on its own: no dependencies, conditions or notes.
    pub fn single(plan: TaskPlan) -> Self {
        Self {
            plans: vec![plan],
            repository: String::new(),
            depends_on: BTreeMap::new(),
            conditions: BTreeMap::new(),
            outcome: None,
            timeout_seconds: None,
            warnings: Vec::new(),
            deferred: Vec::new(),
            fetch: Vec::new(),
            puts: BTreeMap::new(),
            redact: Vec::new(),
        }
    }

    /// Prints [`LoadedPlans::warnings`] on stderr, one `warning:` line each.
    pub fn print_warnings(&self) {
        for warning in &self.warnings {
            eprintln!("warning: {warning}");
        }
    }
}

/// The main container of a rendered sidecar file: it only proves the sidecars started.
const SIDECAR_CHECK_IMAGE: &str = "busybox:1.37.0";

/// Parses `bytes` (from `file`) as `kind` and lowers it to plans:
/// a pipeline expands to every matrix combination (for `branch`); a task
/// config becomes one plan (pipeline = file stem, step `task`); a sidecar file
/// becomes one plan whose `main` waits for the sidecars and exits.
/// `concourse` holds the Concourse options (vars, artifacts...).
pub fn load_plans_for(
    file: &str,
    bytes: &[u8],
    kind: Option<Kind>,
    branch: Option<&str>,
    concourse: &crate::concourse::ConcourseArgs,
) -> Result<LoadedPlans, Errors> {
    let text = c8s_pipeline_model::sidecar::yaml::as_utf8(file, bytes)
        .map_err(c8s_pipeline_model::Error::document)?;
    let stem = Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| s.trim_end_matches(".c8s"))
        .filter(|s| !s.is_empty())
        .unwrap_or("c8s")
        .to_owned();
    let reader = DirSource::beside(file);
    match kind.unwrap_or_else(|| documents::detect(file, text)) {
        Kind::Pipeline => {
            let pipeline = c8s_pipeline_model::parse_pipeline(file, text, &reader)?;
            let run = pipeline.expand(branch)?;
            let depends_on = pipeline
                .steps
                .iter()
                .map(|step| (step.name.clone(), step.depends_on.clone()))
                .collect();
            Ok(LoadedPlans {
                plans: run.plans.into_iter().chain(run.finally).collect(),
                timeout_seconds: run.timeout_seconds,
                repository: run.repository,
                depends_on,
                conditions: BTreeMap::new(),
                outcome: None,
                warnings: Vec::new(),
                deferred: Vec::new(),
                fetch: Vec::new(),
                puts: BTreeMap::new(),
                redact: Vec::new(),
            })
        }
        Kind::Task => {
            // fly execute takes vars for a task config too.
            let config = c8s_pipeline_model::parse_task_config_with(file, text, &concourse.vars()?)?;
            let mut plan = c8s_pipeline_model::visit_task(&stem, &TaskStep::new("task", config), &reader)?;
            crate::concourse::apply_checkout_input(&mut plan, concourse);
            Ok(LoadedPlans::single(plan))
        }
        kind @ (Kind::TaskStep | Kind::Concourse) => {
            let lowered = crate::concourse::lower(file, text, concourse, kind == Kind::TaskStep)?;
            Ok(LoadedPlans {
                plans: lowered.plans,
                repository: String::new(),
                depends_on: lowered.depends_on,
                conditions: lowered.conditions,
                outcome: lowered.outcome,
                timeout_seconds: None,
                warnings: lowered.warnings,
                deferred: lowered.deferred,
                fetch: lowered.fetch,
                puts: lowered.puts,
                redact: lowered.redact,
            })
        }
        Kind::Sidecars => {
            let sidecars = c8s_pipeline_model::sidecar::parse_sidecars(file, text)
                .map_err(c8s_pipeline_model::sidecar::ErrorList::convert)?;
            let mut plan = TaskPlan::new(PlanIdentity::new(stem, "sidecars"), SIDECAR_CHECK_IMAGE);
            plan.command = vec!["sh".into(), "-ec".into(), "echo \"c8s: sidecars are up\"".into()];
            plan.sidecars = sidecars;
            Ok(LoadedPlans::single(plan))
        }
    }
}

/// The run id of `c8s render` and `c8s helm pipeline` without `--run-id`
/// (the output does not change from one call to the next).
pub const DEFAULT_RUN_ID: &str = "local";

/// The run context the flags describe.
pub fn context(args: &RenderArgs, repository: &str) -> RunContext {
    let run_id = args.run_id.as_deref().unwrap_or(DEFAULT_RUN_ID);
    let mut ctx = RunContext::new(run_id, args.build)
        .with_commit(args.commit.clone())
        .with_branch(args.branch.clone().unwrap_or_default())
        .with_repository(args.repository.clone().unwrap_or_else(|| repository.to_owned()))
        .with_namespace(args.namespace.clone())
        .with_artifact_claim(args.artifact_claim.clone())
        .with_cache_claim(args.cache_claim.clone())
        .with_kubernetes_minor(args.kubernetes_minor)
        .with_default_deadline_seconds(i64::try_from(args.default_timeout).unwrap_or(i64::MAX))
        .with_workspace_size_limit(args.workspace_size.clone());
    if let Some(secret) = &args.git_secret {
        ctx = ctx.with_git_secret(secret.clone());
    }
    if let Some(mode) = args.sidecars {
        ctx = ctx.with_sidecar_mode(match mode {
            Mode::Native => SidecarMode::Native,
            Mode::Legacy => SidecarMode::Legacy,
        });
    }
    args.pod.apply(ctx)
}

/// One line per pod a `podSpecPatch` (the file's or `--patch`) changed: the
/// Pod Security level it ends at, since a patch may lower it.
pub fn security_notes(plans: &[TaskPlan], ctx: &RunContext) -> Vec<String> {
    plans
        .iter()
        .filter(|plan| plan.pod.pod_spec_patch.is_some() || ctx.pod.pod_spec_patch.is_some())
        .filter_map(|plan| c8s_pod_builder::render_pod(plan, ctx).ok())
        .map(|pod| {
            let level = pod
                .spec
                .as_ref()
                .and_then(c8s_pod_builder::pod_security_level)
                .map_or("none (privileged)", |l| l.as_str());
            let name = pod.metadata.name.unwrap_or_default();
            format!("c8s: {name}: patched; meets Pod Security level {level}")
        })
        .collect()
}

/// Renders every plan (as Pods, or Jobs with `job`) and serialises them
/// canonically; YAML is written one object at a time.
pub fn render_plans(
    plans: &[TaskPlan],
    ctx: &RunContext,
    job: bool,
    format: Format,
) -> Result<String, c8s_pod_builder::Error> {
    let render = |plan: &TaskPlan| -> Result<Object, c8s_pod_builder::Error> {
        if job {
            c8s_pod_builder::render_job(plan, ctx).map(Object::from)
        } else {
            c8s_pod_builder::render_pod(plan, ctx).map(Object::from)
        }
    };
    match format {
        Format::Yaml => {
            let mut stream = YamlStream::new();
            for plan in plans {
                stream.push(&render(plan)?)?;
            }
            Ok(stream.finish())
        }
        Format::Json => {
            let objects = plans.iter().map(render).collect::<Result<Vec<_>, _>>()?;
            c8s_pod_builder::to_canonical_json_list(&objects)
        }
    }
}

/// Runs `c8s render`: input errors go through `report` (file:line:column and
/// a snippet), output through `print`. Exit code 1 on any error.
pub fn run(args: &RenderArgs, report: fn(&str, &Errors) -> String, print: fn(&str) -> ExitCode) -> ExitCode {
    let file = args.file.as_str();
    let loaded = std::fs::read(file)
        .map_err(|e| {
            Errors::from(c8s_pipeline_model::Error::Read {
                file: file.to_owned(),
                reason: c8s_pipeline_model::sidecar::load::read_reason(&e),
            })
        })
        .and_then(|bytes| load_plans_for(file, &bytes, args.kind, args.branch.as_deref(), &args.concourse));
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{}", report(file, &errors));
            return ExitCode::from(1);
        }
    };
    loaded.print_warnings();
    if loaded.plans.is_empty() {
        let branch = args.branch.as_deref().unwrap_or("");
        eprintln!("c8s: {file}: nothing to render: no step runs on branch {branch:?}");
    }
    let ctx = context(args, &loaded.repository);
    match render_plans(&loaded.plans, &ctx, args.job, args.output) {
        Ok(text) => {
            for note in security_notes(&loaded.plans, &ctx) {
                eprintln!("{note}");
            }
            print(&text)
        }
        Err(e) => {
            eprintln!("error: {file}: {e}");
            ExitCode::from(1)
        }
    }
}
