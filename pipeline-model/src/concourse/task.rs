//! Concourse task configs (`task.yml`) with inline `sidecars`, and their
//! lowering to a [`TaskPlan`]. The rules follow Concourse's own task config
//! parser (`atc/task.go`, `atc/configvalidate`): `params` with no value are
//! `""`, a config may leave the image to its step (`image:`), inputs are
//! artifacts from whatever produced them (a get, another task), never "the
//! clone".

use std::collections::BTreeMap;

use c8s_sidecar_core::{EnvVar, Quantity, QuantityFormat, SidecarConfig};
use serde_derive::{Deserialize, Serialize};

use crate::ordered::OrderedMap;
use crate::plan::{PlanIdentity, PlanInput, TaskPlan};

pub use super::image::{ImageResource, ImageSource};

/// A Concourse task config, plus inline `sidecars`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[non_exhaustive]
pub struct TaskConfig {
    /// The platform; only `linux` runs on Kubernetes.
    pub platform: String,
    /// The image the task runs in; absent when the step's `image:` gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_resource: Option<ImageResource>,
    /// `rootfs_uri` (`docker:///repo#tag`), the older way to name the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_uri: Option<String>,
    /// Artifacts the task needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<TaskInput>,
    /// Artifacts the task produces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<TaskOutput>,
    /// Directories kept between runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<TaskCache>,
    /// Environment variables, in written order, with their text as written.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, serde_json::Value>")
    )]
    pub params: OrderedMap<String>,
    /// What to run.
    pub run: TaskRun,
    /// CPU shares (a relative weight, 1024 = one core) and memory bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_limits: Option<ContainerLimits>,
    /// Sidecar services, same schema as a sidecar file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<SidecarConfig>,
}

/// A task input: an artifact mounted at `path` (default: `name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[non_exhaustive]
pub struct TaskInput {
    /// The artifact's name.
    pub name: String,
    /// Where to put it, relative to the working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Whether the task runs without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// A task output: a directory saved as the artifact `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[non_exhaustive]
pub struct TaskOutput {
    /// The artifact's name.
    pub name: String,
    /// The directory (default: `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A cached directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[non_exhaustive]
pub struct TaskCache {
    /// The directory.
    pub path: String,
}

/// `run`: the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[non_exhaustive]
pub struct TaskRun {
    /// The program (relative to `dir`, or on the `PATH`).
    pub path: String,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The working directory, relative to the task's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// `root` or a numeric UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// `container_limits` in Concourse units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields)
)]
#[non_exhaustive]
pub struct ContainerLimits {
    /// CPU shares: a relative weight, 1024 is one core's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u64>,
    /// Memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
}

impl TaskConfig {
    /// A linux task running `run_path` in `repository:tag`.
    pub fn new(repository: impl Into<String>, tag: Option<String>, run_path: impl Into<String>) -> Self {
        Self {
            platform: "linux".to_owned(),
            image_resource: Some(ImageResource::registry(repository, tag)),
            rootfs_uri: None,
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

    /// The image reference, from `image_resource` (`repository[:tag]`, or
    /// `repository@digest` when a digest is pinned) or `rootfs_uri`; `None`
    /// when the step must give it.
    pub fn image(&self) -> Option<String> {
        if let Some(resource) = &self.image_resource {
            return Some(resource.reference());
        }
        let uri = self.rootfs_uri.as_deref()?;
        let rest = uri.strip_prefix("docker:///")?;
        Some(match rest.split_once('#') {
            Some((repo, tag)) => format!("{repo}:{tag}"),
            None => rest.to_owned(),
        })
    }
}

/// The Concourse task directory: inputs, outputs, caches and `run.dir` are
/// relative to it. Concourse uses a per-build directory; c8s uses the
/// workspace volume, so `source` here is `/workspace/source` there.
pub const TASK_DIR: &str = ".";

/// Lowers a (validated) task config to a plan. Inputs are artifacts: input
/// `x` is output `x` of the step named `x` (Concourse names artifacts in one
/// namespace per build), unpacked at its `path`; no repository is cloned.
/// `container_limits.cpu` shares become `requests.cpu` (shares are a
/// relative weight under contention, which is what a request is), memory
/// becomes `limits.memory` (a hard cap in both); 0 means none.
///
/// ```
/// let text = "\
/// platform: linux
/// image_resource: { type: registry-image, source: { repository: golang, tag: 1.20 } }
/// inputs: [{ name: repo }]
/// params: { GOFLAGS: }
/// run: { path: go, args: [test, ./...], dir: repo }
/// container_limits: { cpu: 512, memory: 2147483648 }
/// ";
/// let config = c8s_pipeline_model::parse_task_config("task.yml", text).unwrap();
/// let plan = c8s_pipeline_model::task_plan(c8s_pipeline_model::PlanIdentity::new("ci", "test"), &config);
/// assert_eq!(plan.image, "golang:1.20");
/// assert_eq!(plan.env[0].value.as_deref(), Some(""));
/// assert_eq!(plan.resources.requests["cpu"].to_string(), "500m");
/// assert_eq!(plan.resources.limits["memory"].to_string(), "2Gi");
/// assert!(plan.skip_checkout);
/// ```
pub fn task_plan(identity: PlanIdentity, config: &TaskConfig) -> TaskPlan {
    let mut plan = TaskPlan::new(identity, config.image().unwrap_or_default());
    plan.skip_checkout = true;
    plan.command = vec![config.run.path.clone()];
    plan.args = config.run.args.clone();
    plan.working_dir = config.run.dir.clone();
    plan.env = config.params.iter().map(|(k, v)| EnvVar::value(k, v)).collect();
    plan.inputs = config
        .inputs
        .iter()
        .map(|i| {
            let mut input = PlanInput::new(&i.name, &i.name);
            input.path = i.path.clone().unwrap_or_else(|| i.name.clone());
            input.optional = i.optional;
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
    if let Some(resource) = &config.image_resource
        && let Some(secret) = resource.pull_secret()
    {
        plan.image_pull_secrets.push(secret);
    }
    if let Some(limits) = config.container_limits {
        if let Some(shares) = limits.cpu.filter(|&c| c > 0) {
            let millis = (i128::from(shares) * 1000 + 1023) / 1024;
            let cpu = Quantity::from_nanos(millis * 1_000_000, QuantityFormat::DecimalSi);
            plan.resources.requests = BTreeMap::from([("cpu".to_owned(), cpu)]);
        }
        if let Some(bytes) = limits.memory.filter(|&m| m > 0) {
            let nanos = i128::from(bytes) * 1_000_000_000;
            let memory = Quantity::from_nanos(nanos, QuantityFormat::BinarySi);
            plan.resources.limits = BTreeMap::from([("memory".to_owned(), memory)]);
        }
    }
    match config.run.user.as_deref() {
        Some("root") | Some("0") => plan.run_as_root = true,
        Some(uid) => plan.run_as_user = uid.parse().ok(),
        None => {}
    }
    plan
}
