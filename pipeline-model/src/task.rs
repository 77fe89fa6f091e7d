//! Concourse task configs (<https://concourse-ci.org/tasks.html>) with inline `sidecars`, and the planner
//! step that lowers a task step — config plus sidecar files — into a
//! [`TaskPlan`] (Concourse's `VisitTask`).

use std::collections::BTreeMap;

use c8s_sidecar_core::validate::{self, Finding, Locator};
use c8s_sidecar_core::{
    EnvVar, Errors, FieldPath, Problem, Quantity, QuantityFormat, SidecarConfig, SourceReader, names,
};
use serde::{Deserialize, Serialize};

use crate::check::{Subject, is_clean_relative};
use crate::ordered::OrderedMap;
use crate::plan::{PlanIdentity, PlanInput, TaskPlan};
use crate::sidecar_files;

/// A Concourse `task.yml`, plus inline `sidecars`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TaskConfig {
    /// The platform; only `linux` runs on Kubernetes.
    pub platform: String,
    /// The image the task runs in.
    pub image_resource: ImageResource,
    /// Artifacts the task needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<TaskInput>,
    /// Artifacts the task produces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<TaskOutput>,
    /// Directories kept between runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<TaskCache>,
    /// Environment variables, in order.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub params: OrderedMap<String>,
    /// What to run.
    pub run: TaskRun,
    /// CPU shares (1024 = one core) and memory bytes; 0 or absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_limits: Option<ContainerLimits>,
    /// Sidecar services, same schema as a sidecar file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<SidecarConfig>,
}

/// `image_resource`: a `registry-image` and its `source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ImageResource {
    /// The resource type; only `registry-image` is supported.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where the image is.
    pub source: ImageSource,
}

/// `image_resource.source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ImageSource {
    /// The image repository, e.g. `golang`.
    pub repository: String,
    /// The tag (default `latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// A task input: an artifact of the build, mounted at `path` (default: `name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TaskInput {
    /// The artifact's name.
    pub name: String,
    /// Where to put it, relative to the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Whether the task runs without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// A task output: a directory saved as the artifact `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TaskOutput {
    /// The artifact's name.
    pub name: String,
    /// The directory, relative to the workspace (default: `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A cached directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TaskCache {
    /// The directory, relative to the workspace.
    pub path: String,
}

/// `run`: the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TaskRun {
    /// The program (relative to `dir`, or on the `PATH`).
    pub path: String,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The working directory, relative to the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// `root` or a numeric UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// `container_limits` in Concourse units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ContainerLimits {
    /// CPU shares: 1024 is one core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u64>,
    /// Memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
}

/// A task step of a build plan: a task config and the sidecar files it adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TaskStep {
    /// The step's name.
    pub name: String,
    /// The task config.
    pub config: TaskConfig,
    /// Sidecar files to load through a [`SourceReader`], after the inline ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecar_files: Vec<String>,
}

impl TaskStep {
    /// A step `name` running `config`, with no sidecar files.
    pub fn new(name: impl Into<String>, config: TaskConfig) -> Self {
        Self {
            name: name.into(),
            config,
            sidecar_files: Vec::new(),
        }
    }
}

impl TaskConfig {
    /// A linux task running `run_path` in `repository:tag`.
    pub fn new(repository: impl Into<String>, tag: Option<String>, run_path: impl Into<String>) -> Self {
        Self {
            platform: "linux".to_owned(),
            image_resource: ImageResource {
                kind: "registry-image".to_owned(),
                source: ImageSource {
                    repository: repository.into(),
                    tag,
                },
            },
            inputs: Vec::new(),
            outputs: Vec::new(),
            caches: Vec::new(),
            params: OrderedMap::new(),
            run: TaskRun {
                path: run_path.into(),
                args: Vec::new(),
                dir: None,
                user: None,
            },
            container_limits: None,
            sidecars: Vec::new(),
        }
    }

    /// The image reference: `repository:tag`, or `repository` without a tag.
    pub fn image(&self) -> String {
        let source = &self.image_resource.source;
        match &source.tag {
            Some(tag) => format!("{}:{tag}", source.repository),
            None => source.repository.clone(),
        }
    }

    /// Checks a config built in code against every rule.
    pub fn validate(&self) -> Result<(), Errors> {
        let mut locator = Locator::new();
        let doc = locator.add("<input>", "");
        let findings = check_task(self, doc);
        if findings.is_empty() {
            Ok(())
        } else {
            Err(locator.locate(findings))
        }
    }
}

/// Parses and validates a Concourse task config, reporting every problem.
///
/// ```
/// let text = "\
/// platform: linux
/// image_resource: { type: registry-image, source: { repository: golang, tag: \"1.23\" } }
/// run: { path: go, args: [test, ./...] }
/// container_limits: { cpu: 512, memory: 2147483648 }
/// ";
/// let config = c8s_pipeline_model::parse_task_config("task.yml", text).unwrap();
/// let plan = c8s_pipeline_model::task_plan(c8s_pipeline_model::PlanIdentity::new("ci", "test"), &config);
/// assert_eq!(plan.image, "golang:1.23");
/// assert_eq!(plan.resources.limits["cpu"].to_string(), "500m");
/// assert_eq!(plan.resources.limits["memory"].to_string(), "2Gi");
/// ```
pub fn parse_task_config(file: &str, text: &str) -> Result<TaskConfig, Errors> {
    let config: TaskConfig = c8s_sidecar_core::yaml::from_str(file, text)?;
    let mut locator = Locator::new();
    let doc = locator.add(file, text);
    let findings = check_task(&config, doc);
    if findings.is_empty() {
        Ok(config)
    } else {
        Err(locator.locate(findings))
    }
}

fn check_task(config: &TaskConfig, doc: usize) -> Vec<Finding> {
    let root = FieldPath::root();
    let mut findings = validate::check_list(&config.sidecars, doc, &root.key("sidecars"));
    let mut s = Subject::at(&mut findings, doc, root.clone(), None);
    if config.platform != "linux" {
        let value = config.platform.clone();
        s.problem(
            root.key("platform"),
            Problem::Unsupported {
                value,
                expected: "linux".to_owned(),
            },
        );
    }
    let image = root.key("image_resource");
    if config.image_resource.kind != "registry-image" {
        let value = config.image_resource.kind.clone();
        let expected = "registry-image".to_owned();
        s.problem(image.key("type"), Problem::Unsupported { value, expected });
    }
    let reference = config.image();
    if config.image_resource.source.repository.is_empty() {
        s.problem(image.key("source").key("repository"), Problem::Empty);
    } else if let Err(reason) = names::image_reference(&reference) {
        let at = image.key("source").key("repository");
        s.problem(
            at,
            Problem::InvalidImage {
                value: reference,
                reason,
            },
        );
    }
    let mut dirs: Vec<(FieldPath, &str)> = Vec::new();
    for (i, input) in config.inputs.iter().enumerate() {
        dirs.push((
            root.key("inputs").index(i),
            input.path.as_deref().unwrap_or(&input.name),
        ));
    }
    for (i, output) in config.outputs.iter().enumerate() {
        dirs.push((
            root.key("outputs").index(i),
            output.path.as_deref().unwrap_or(&output.name),
        ));
    }
    for (i, cache) in config.caches.iter().enumerate() {
        dirs.push((root.key("caches").index(i).key("path"), &cache.path));
    }
    if let Some(dir) = &config.run.dir {
        dirs.push((root.key("run").key("dir"), dir));
    }
    for (at, dir) in dirs {
        if !is_clean_relative(dir) {
            s.problem(
                at,
                Problem::InvalidRelativePath {
                    value: dir.to_owned(),
                },
            );
        }
    }
    for (name, _) in config.params.iter() {
        if let Err(reason) = names::env_var_name(name) {
            let value = name.to_owned();
            s.problem(
                root.key("params").key(name),
                Problem::InvalidEnvName { value, reason },
            );
        }
    }
    if config.run.path.is_empty() {
        s.problem(root.key("run").key("path"), Problem::Empty);
    }
    if let Some(user) = &config.run.user
        && user != "root"
        && user.parse::<u32>().is_err()
    {
        let expected = "root or a numeric UID (Kubernetes cannot look up user names)".to_owned();
        s.problem(
            root.key("run").key("user"),
            Problem::Unsupported {
                value: user.clone(),
                expected,
            },
        );
    }
    findings
}

/// Lowers a (validated) task config to a plan. Concourse units become
/// Kubernetes ones: `cpu` shares / 1024 cores (in millicores, rounded up),
/// `memory` bytes; a limit of 0 means none. `run.user: root` opts out of the
/// restricted profile; a numeric user becomes `runAsUser`. The first input is
/// the repository checkout (`git-clone` clones into its `path`, e.g. `source`);
/// every other input `x` becomes output `x` of the step named `x` (Concourse
/// names artifacts in one namespace), unpacked at its `path`.
pub fn task_plan(identity: PlanIdentity, config: &TaskConfig) -> TaskPlan {
    let mut plan = TaskPlan::new(identity, config.image());
    plan.command = vec![config.run.path.clone()];
    plan.args = config.run.args.clone();
    plan.working_dir = config.run.dir.clone();
    plan.env = config.params.iter().map(|(k, v)| EnvVar::value(k, v)).collect();
    plan.checkout = config
        .inputs
        .first()
        .map(|i| i.path.clone().unwrap_or_else(|| i.name.clone()));
    plan.inputs = config
        .inputs
        .iter()
        .skip(1)
        .map(|i| {
            let mut input = PlanInput::new(&i.name, &i.name);
            input.path = i.path.clone().unwrap_or_else(|| i.name.clone());
            input
        })
        .collect();
    plan.outputs = config
        .outputs
        .iter()
        .map(|o| o.path.clone().unwrap_or_else(|| o.name.clone()))
        .collect();
    plan.caches = config.caches.iter().map(|c| c.path.clone()).collect();
    plan.sidecars = config.sidecars.clone();
    if let Some(limits) = config.container_limits {
        let mut map = BTreeMap::new();
        if let Some(shares) = limits.cpu.filter(|&c| c > 0) {
            let millis = (i128::from(shares) * 1000 + 1023) / 1024;
            map.insert(
                "cpu".to_owned(),
                Quantity::from_nanos(millis * 1_000_000, QuantityFormat::DecimalSi),
            );
        }
        if let Some(bytes) = limits.memory.filter(|&m| m > 0) {
            let nanos = i128::from(bytes) * 1_000_000_000;
            map.insert(
                "memory".to_owned(),
                Quantity::from_nanos(nanos, QuantityFormat::BinarySi),
            );
        }
        plan.resources.limits = map;
    }
    match config.run.user.as_deref() {
        Some("root") => plan.run_as_root = true,
        Some(uid) => plan.run_as_user = uid.parse().ok(),
        None => {}
    }
    plan
}

/// The planner step for a task step (Concourse's `VisitTask`): the config's
/// plan, with the sidecars of the step's files added after the inline ones.
/// Files are read through `reader`; a missing file, invalid YAML, and a name
/// or port used twice (across files or with an inline sidecar) are errors
/// naming the file. A step without sidecar files plans exactly like
/// [`task_plan`].
pub fn visit_task(pipeline: &str, step: &TaskStep, reader: &dyn SourceReader) -> Result<TaskPlan, Errors> {
    step.config.validate()?;
    let mut plan = task_plan(PlanIdentity::new(pipeline, &step.name), &step.config);
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
    errors.extend(locator.locate(sidecar_files::dedup(findings)));
    if !errors.is_empty() {
        return Err(Errors::new(errors));
    }
    plan.sidecars.extend(loaded);
    Ok(plan)
}
