//! Concourse task steps (`task:` with `file:` or `config:`) and the planner
//! step that lowers one into a [`TaskPlan`] (Concourse's `VisitTask`): the
//! step's `image:`, `params`, `input_mapping`, `output_mapping`,
//! `privileged`, `timeout`, `attempts` and sidecar files applied to the
//! config's plan.

use c8s_sidecar_core::validate::Locator;
use c8s_sidecar_core::{EnvVar, FieldPath, SourceReader, yaml};
use serde_derive::{Deserialize, Serialize};

use crate::error::Errors;

use super::fields::Fields;
use super::node::{self, At, Node, Report};
use super::read_task::read_config;
use super::task::{TaskConfig, task_plan};
use super::vars::{Vars, interpolate};
use crate::duration::parse_duration;
use crate::ordered::OrderedMap;
use crate::plan::{PlanIdentity, PlanInput, TaskPlan};
use crate::sidecar_files;

/// The keys of a task step (hooks and `across` are read by the pipeline).
pub const TASK_STEP_KEYS: [&str; 14] = [
    "task",
    "file",
    "config",
    "image",
    "params",
    "vars",
    "input_mapping",
    "output_mapping",
    "privileged",
    "timeout",
    "attempts",
    "tags",
    "sidecars",
    "container_limits",
];

/// A task step of a build plan: a task config and how the step runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TaskStep {
    /// The step's name (`task:`).
    pub name: String,
    /// The task config (`config:`, or read from `file:`).
    pub config: TaskConfig,
    /// Sidecar files to load through a [`SourceReader`], after the inline ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecar_files: Vec<String>,
    /// The image from the step's `image:` artifact, as a reference to pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Registry credentials of that image (an `imagePullSecrets` name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    /// `params`: override and extend the config's params.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub params: OrderedMap<String>,
    /// `input_mapping`: task input name → artifact name in the build.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub input_mapping: OrderedMap<String>,
    /// `output_mapping`: task output name → artifact name in the build.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub output_mapping: OrderedMap<String>,
    /// `privileged: true`: the pod then meets only the privileged profile.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// `timeout`, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// `attempts`: how many times the step runs before it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

impl TaskStep {
    /// A step `name` running `config`, with nothing else set.
    pub fn new(name: impl Into<String>, config: TaskConfig) -> Self {
        Self {
            name: name.into(),
            config,
            sidecar_files: Vec::new(),
            image: None,
            image_pull_secret: None,
            params: OrderedMap::new(),
            input_mapping: OrderedMap::new(),
            output_mapping: OrderedMap::new(),
            privileged: false,
            timeout_seconds: None,
            attempts: None,
        }
    }

    /// The artifact name this step's task input `input` reads.
    pub fn input_artifact<'a>(&'a self, input: &'a str) -> &'a str {
        self.input_mapping.get(input).map_or(input, String::as_str)
    }

    /// The artifact name this step's task output `output` becomes.
    pub fn output_artifact<'a>(&'a self, output: &'a str) -> &'a str {
        self.output_mapping.get(output).map_or(output, String::as_str)
    }
}

/// Where a build's artifacts come from: the producing step and its output directory.
pub trait ArtifactSource {
    /// The step and output directory that produce artifact `name`, if known.
    fn producer(&self, name: &str) -> Option<(String, String)>;
}

/// Standalone steps: artifact `x` is output `x` of a step named `x`.
pub struct SameName;

impl ArtifactSource for SameName {
    fn producer(&self, name: &str) -> Option<(String, String)> {
        Some((name.to_owned(), name.to_owned()))
    }
}

/// Reads a task step mapping at `path` of document `text`. The config comes
/// from `config:` or from `file:` read through `reader` (interpolated with
/// the step's `vars` over `vars`); `image:` is resolved by `image_of`.
pub fn read_task_step(
    node: &Node,
    path: &FieldPath,
    text: &str,
    vars: &Vars,
    reader: &dyn SourceReader,
    report: &mut Report<'_>,
) -> Option<(TaskStep, Option<String>)> {
    match read_task_step_in_build(node, path, text, vars, reader, false, report)? {
        TaskRead::Step(step, image) => Some((*step, image)),
        TaskRead::FileNotFound { .. } => None,
    }
}

/// What reading a task step of a build plan found.
pub(super) enum TaskRead {
    /// The step, and the artifact its `image:` names.
    Step(Box<TaskStep>, Option<String>),
    /// Its `file:` (`ARTIFACT/PATH`) is not where c8s reads files: the
    /// lowering defers the step when an earlier step produces ARTIFACT.
    FileNotFound {
        /// The step's name.
        name: String,
        /// `file:`.
        file: String,
        /// Where `file` is written.
        file_at: At,
        /// The reader's words.
        reason: String,
    },
}

/// [`read_task_step`]; with `defer_missing`, a `file:` in an artifact that
/// the reader does not have is [`TaskRead::FileNotFound`], not an error
/// (any other read failure still is).
pub(super) fn read_task_step_in_build(
    node: &Node,
    path: &FieldPath,
    text: &str,
    vars: &Vars,
    reader: &dyn SourceReader,
    defer_missing: bool,
    report: &mut Report<'_>,
) -> Option<TaskRead> {
    let f = Fields::new(node, path.clone(), &TASK_STEP_KEYS, report)?;
    let name = f.required("task", report)?;
    let config = match (f.get("config"), f.string("file", report)) {
        (Some(config), None) => read_config(config, &f.at("config"), text, report),
        (None, Some(file)) => match reader.read(&file) {
            Err(e) if defer_missing && e.kind() == std::io::ErrorKind::NotFound && file.contains('/') => {
                return Some(TaskRead::FileNotFound {
                    name,
                    file_at: f.key_at("file"),
                    file,
                    reason: c8s_sidecar_core::load::read_reason(&e),
                });
            }
            read => read_task_file(&file, read, &f, vars, report),
        },
        (Some(_), Some(_)) => {
            report.error(node.at, path, "give `config` or `file`, not both");
            None
        }
        (None, None) => {
            report.error(node.at, path, "a task step needs `config` or `file`");
            None
        }
    }?;
    let mut step = TaskStep::new(name, config);
    step.params = f.string_map("params", report).into_iter().collect();
    step.input_mapping = f.string_map("input_mapping", report).into_iter().collect();
    step.output_mapping = f.string_map("output_mapping", report).into_iter().collect();
    step.privileged = f.flag("privileged", report);
    step.sidecar_files = f.strings("sidecars", report);
    if let Some(timeout) = f.string("timeout", report) {
        match parse_duration(&timeout) {
            Ok(seconds) => step.timeout_seconds = Some(seconds),
            Err(reason) => report.error(node.at, &f.at("timeout"), format!("{timeout:?}: {reason}")),
        }
    }
    step.attempts = f
        .number("attempts", report)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    if step.attempts == Some(0) {
        report.error(node.at, &f.at("attempts"), "attempts must be at least 1");
    }
    if let Some(node) = f.get("container_limits")
        && let Some(lf) = Fields::new(node, f.at("container_limits"), &["cpu", "memory"], report)
    {
        let mut limits = step.config.container_limits.unwrap_or_default();
        limits.cpu = lf.number("cpu", report).or(limits.cpu);
        limits.memory = lf.number("memory", report).or(limits.memory);
        step.config.container_limits = Some(limits);
    }
    let image = f.string("image", report);
    Some(TaskRead::Step(Box::new(step), image))
}

fn read_task_file(
    file: &str,
    read: std::io::Result<Vec<u8>>,
    f: &Fields<'_>,
    vars: &Vars,
    report: &mut Report<'_>,
) -> Option<TaskConfig> {
    let at = f.key_at("file");
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) => {
            let reason = c8s_sidecar_core::load::read_reason(&e);
            report.error(
                at,
                &f.at("file"),
                format!("cannot read task file {file:?}: {reason}"),
            );
            return None;
        }
    };
    let text = match yaml::as_utf8(file, &bytes) {
        Ok(text) => text,
        Err(e) => {
            report.extend(crate::error::Error::document(e).into());
            return None;
        }
    };
    let mut step_vars = vars.clone();
    let mut local = Vec::new();
    for (name, value) in f.string_map("vars", report) {
        // A load_var value passes through as its placeholder, for the task's params.
        if value.contains("((.:") {
            local.push(name.clone());
        }
        step_vars.set(name, value);
    }
    match parse_step_task_file(file, text, &step_vars) {
        Ok(config) => {
            let mut outside = config.clone();
            outside.params = OrderedMap::new();
            if !local.is_empty() && format!("{outside:?}").contains("((.:") {
                report.error(
                    f.key_at("vars"),
                    &f.at("vars"),
                    format!("{} holds a load_var value, which c8s reads in the task's params only (in its pod, when it runs); task file {file:?} uses it outside params", local.join(", ")),
                );
                return None;
            }
            Some(config)
        }
        Err(errors) => {
            report.extend(errors);
            None
        }
    }
}

/// Parses a task config file with `vars` interpolated. Registry credentials
/// in `image_resource.source` are not interpolated: they become an
/// `imagePullSecrets` reference, their values never needed.
pub fn parse_task_config_with(file: &str, text: &str, vars: &Vars) -> Result<TaskConfig, Errors> {
    let mut doc = node::parse(file, text)?;
    let mut report = Report::new(file);
    interpolate(&mut doc, vars, &is_credential_path, &mut report);
    let config = read_config(&doc, &FieldPath::root(), text, &mut report);
    report.finish()?;
    config.ok_or_else(|| Errors::new(Vec::new()))
}

/// A task file read for a step: a var with no value may stay in `params`
/// (a credential, passed to the pod from a Secret).
fn parse_step_task_file(file: &str, text: &str, vars: &Vars) -> Result<TaskConfig, Errors> {
    let mut doc = node::parse(file, text)?;
    let mut report = Report::new(file);
    let in_params = |path: &FieldPath| matches!(path.segments().first(), Some(c8s_sidecar_core::Segment::Key(k)) if k == "params");
    super::vars::interpolate_lenient(&mut doc, vars, &is_credential_path, &in_params, &mut report);
    let config = read_config(&doc, &FieldPath::root(), text, &mut report);
    report.finish()?;
    config.ok_or_else(|| Errors::new(Vec::new()))
}

/// Whether `path` is a registry credential (`…image_resource.source.password`).
pub fn is_credential_path(path: &FieldPath) -> bool {
    use c8s_sidecar_core::Segment;
    let segments = path.segments();
    let Some(Segment::Key(last)) = segments.last() else {
        return false;
    };
    if !super::image::CREDENTIAL_KEYS.contains(&last.as_str()) {
        return false;
    }
    segments
        .iter()
        .any(|s| matches!(s, Segment::Key(k) if k == "source" || k == "registry_mirror"))
        && segments
            .iter()
            .any(|s| matches!(s, Segment::Key(k) if k == "image_resource" || k == "source"))
}

/// Parses and validates a Concourse task config without vars, reporting
/// every problem (a `((var))` is an error naming it).
pub fn parse_task_config(file: &str, text: &str) -> Result<TaskConfig, Errors> {
    parse_task_config_with(file, text, &Vars::new())
}

/// The planner step for a task step (Concourse's `VisitTask`) where artifact
/// `x` is output `x` of step `x`; see [`visit_task_with`].
pub fn visit_task(pipeline: &str, step: &TaskStep, reader: &dyn SourceReader) -> Result<TaskPlan, Errors> {
    visit_task_with(pipeline, step, reader, &SameName)
}

/// The planner step for a task step: the config's plan with the step's
/// settings, inputs read from the artifacts `artifacts` names, and the
/// sidecars of the step's files added after the inline ones (read through
/// `reader`; a missing file, invalid YAML, and a name or port used twice —
/// across files or with an inline sidecar — are errors naming the files).
pub fn visit_task_with(
    pipeline: &str,
    step: &TaskStep,
    reader: &dyn SourceReader,
    artifacts: &dyn ArtifactSource,
) -> Result<TaskPlan, Errors> {
    let mut plan = task_plan(PlanIdentity::new(pipeline, &step.name), &step.config);
    let mut report = Report::new("the task step");
    if let Some(image) = &step.image {
        plan.image = image.clone();
        plan.image_pull_secrets = step.image_pull_secret.iter().cloned().collect();
    }
    if plan.image.contains("((") {
        report.error(
            (0, 0),
            &FieldPath::root().key("image_resource"),
            format!(
                "task {:?}: its image {:?} uses a var with no value: give it with -v",
                step.name, plan.image
            ),
        );
    }
    if plan.image.is_empty() {
        report.error(
            (0, 0),
            &FieldPath::root().key("image_resource"),
            format!(
                "task {:?} names no image: give its config an `image_resource`, or the step an `image:`",
                step.name
            ),
        );
    }
    for (name, value) in step.params.iter() {
        match plan.env.iter_mut().find(|e| e.name == name) {
            Some(env) => *env = EnvVar::value(name, value),
            None => plan.env.push(EnvVar::value(name, value)),
        }
    }
    plan.inputs.clear();
    for input in &step.config.inputs {
        let artifact = step.input_artifact(&input.name);
        let Some((producer, output)) = artifacts.producer(artifact) else {
            if !input.optional {
                report.error(
                    (0, 0),
                    &FieldPath::root().key("inputs"),
                    format!(
                        "task {:?}: input {:?} (artifact {artifact:?}) is produced by no earlier step",
                        step.name, input.name
                    ),
                );
            }
            continue;
        };
        let mut planned = PlanInput::new(producer, output);
        planned.path = input.path.clone().unwrap_or_else(|| input.name.clone());
        planned.optional = input.optional;
        plan.inputs.push(planned);
    }
    plan.privileged = step.privileged;
    plan.timeout_seconds = step.timeout_seconds.or(plan.timeout_seconds);
    plan.attempts = step.attempts;
    report.finish()?;
    if step.sidecar_files.is_empty() {
        return Ok(plan);
    }
    let mut locator = Locator::new();
    let config_doc = locator.add("the task config", "");
    let mut errors = Vec::new();
    let files = sidecar_files::read_all(reader, step.sidecar_files.iter(), config_doc + 1, &mut errors);
    for loaded in &files {
        locator.add(&loaded.path, &loaded.text);
    }
    let mut findings = Vec::new();
    sidecar_files::check_files(&files, &mut findings);
    let loaded = sidecar_files::check_step(
        config_doc,
        &FieldPath::root(),
        &step.config.sidecars,
        &step.sidecar_files,
        &files,
        &mut findings,
    );
    errors.extend(crate::error::locate(
        &locator,
        sidecar_files::dedup(findings),
        config_doc,
    ));
    if !errors.is_empty() {
        return Err(Errors::new(errors));
    }
    plan.sidecars.extend(loaded);
    Ok(plan)
}

/// Whether a document is a task step (`task:` with `config:` or `file:`).
pub fn is_task_step(doc: &Node) -> bool {
    doc.get("task").is_some() && (doc.get("config").is_some() || doc.get("file").is_some())
}

/// Parses a file holding one task step (the form of a job's plan entry):
/// `vars` are interpolated, `file:` is read through `reader`. A step read
/// alone has no earlier get to give an `image:` artifact, so `image:` is
/// rejected there; use the config's `image_resource`.
///
/// ```
/// use c8s_pipeline_model::{MemorySource, Vars, concourse::step::parse_task_step};
/// let text = "task: unit\nconfig:\n  platform: linux\n  image_resource: { type: registry-image, source: { repository: golang } }\n  run: { path: go }\nprivileged: true\ntimeout: 1h\n";
/// let step = parse_task_step("step.yml", text, &Vars::new(), &MemorySource::new()).unwrap();
/// assert!(step.privileged);
/// assert_eq!(step.timeout_seconds, Some(3600));
/// ```
pub fn parse_task_step(
    file: &str,
    text: &str,
    vars: &Vars,
    reader: &dyn SourceReader,
) -> Result<TaskStep, Errors> {
    let mut doc = node::parse(file, text)?;
    let mut report = Report::new(file);
    interpolate(&mut doc, vars, &is_credential_path, &mut report);
    let step = read_task_step(&doc, &FieldPath::root(), text, vars, reader, &mut report);
    if let Some((_, Some(image))) = &step {
        let at = doc
            .entries()
            .and_then(|e| e.iter().find(|e| e.key == "image"))
            .map_or(doc.at, |e| e.at);
        report.error(
            at,
            &FieldPath::root().key("image"),
            format!("`image: {image}` names an artifact a get step fetched; a step read alone has none: give the config an `image_resource`"),
        );
    }
    report.finish()?;
    step.map(|(s, _)| s).ok_or_else(|| Errors::new(Vec::new()))
}
