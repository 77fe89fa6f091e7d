//! `TaskPlan`: the one intermediate form. Both front-ends (Concourse task
//! configs and `.c8s.yaml` pipeline steps, after matrix substitution) lower into
//! it, and pod-builder renders it. Everything a pod needs is here.

use std::collections::BTreeMap;

use c8s_sidecar_core::{EnvVar, Resources, SidecarConfig};
use serde_derive::{Deserialize, Serialize};

use crate::pod::PodOverrides;

/// Everything needed to run one step of one matrix combination as one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TaskPlan {
    /// Which pipeline, step and matrix combination this plan is.
    pub identity: PlanIdentity,
    /// The main container's image.
    pub image: String,
    /// ENTRYPOINT override for `main` (e.g. `["sh", "-ec"]`); empty keeps the image's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments for `main`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Working directory of `main`, relative to the workspace (`source`), or absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Environment of `main`, in order: literal values and Secret references
    /// (`EnvVar::secret`); secret values never appear in a plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Where the repository is cloned, relative to the workspace; `None`: the
    /// workspace itself. (A Concourse task's first input, e.g. `source`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<String>,
    /// Artifacts to extract into the workspace before `main` starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<PlanInput>,
    /// Directories (relative to the workspace) to save as artifacts after `main`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// Results `main` publishes: it writes each to `$C8S_RESULTS/<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<String>,
    /// Env vars of `main` read from earlier steps' results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result_env: Vec<crate::results::ResultEnv>,
    /// Concourse `load_var` values `main`'s env uses (`((.:NAME))` in an env
    /// value), read from their files in the pod before the command runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_vars: Vec<crate::local_vars::LocalVar>,
    /// Directories (relative to the workspace) kept between runs on the cache volume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<String>,
    /// Sidecar services, validated, in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<SidecarConfig>,
    /// Requests and limits of `main`.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// The step's deadline in seconds (becomes `activeDeadlineSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// The UID `main` runs as, when the image needs a specific one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// Opt out of the restricted profile for `main` (kaniko, docker-in-docker).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub run_as_root: bool,
    /// Pod overrides: scheduling, identity, extra metadata, `podSpecPatch`.
    #[serde(default, skip_serializing_if = "PodOverrides::is_empty")]
    pub pod: PodOverrides,
    /// No `git-clone`: every input is an artifact (Concourse steps).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_checkout: bool,
    /// Secrets the kubelet pulls images with (`imagePullSecrets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// `main` runs privileged (Concourse `privileged: true`); the pod then
    /// meets only the privileged Pod Security profile.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// How many times the runner may run the step before it fails (Concourse `attempts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The user's retries of this step (`retries`), apart from the runner's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<crate::Retries>,
    /// A `finally` step: it starts once every other step has finished.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finally: bool,
}

/// Who a plan is: the parts of its name.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PlanIdentity {
    /// Pipeline name (or the task config's name).
    pub pipeline: String,
    /// Step name.
    pub step: String,
    /// Stable short id of the matrix combination, if the pipeline has a matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_id: Option<String>,
    /// The combination's values, by dimension.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matrix: BTreeMap<String, String>,
}

impl PlanIdentity {
    /// A pipeline step outside any matrix.
    pub fn new(pipeline: impl Into<String>, step: impl Into<String>) -> Self {
        Self {
            pipeline: pipeline.into(),
            step: step.into(),
            matrix_id: None,
            matrix: BTreeMap::new(),
        }
    }
}

/// An artifact another step produced, to be unpacked into this step's workspace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PlanInput {
    /// The producing step.
    pub step: String,
    /// The producing step's output directory (relative to its workspace).
    pub output: String,
    /// Where to unpack it, relative to this step's workspace (defaults to `output`).
    pub path: String,
    /// The step starts without it when the artifact is absent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Only this file of the artifact is unpacked (a path inside it), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

impl PlanInput {
    /// Output `output` of `step`, unpacked at the same relative path.
    pub fn new(step: impl Into<String>, output: impl Into<String>) -> Self {
        let output = output.into();
        Self {
            step: step.into(),
            path: output.clone(),
            output,
            optional: false,
            member: None,
        }
    }
}

impl TaskPlan {
    /// A plan that runs `image` with nothing else set.
    pub fn new(identity: PlanIdentity, image: impl Into<String>) -> Self {
        Self {
            identity,
            image: image.into(),
            command: Vec::new(),
            args: Vec::new(),
            working_dir: None,
            env: Vec::new(),
            checkout: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            results: Vec::new(),
            result_env: Vec::new(),
            local_vars: Vec::new(),
            caches: Vec::new(),
            sidecars: Vec::new(),
            resources: Resources::default(),
            timeout_seconds: None,
            run_as_user: None,
            run_as_root: false,
            pod: PodOverrides::default(),
            skip_checkout: false,
            image_pull_secrets: Vec::new(),
            privileged: false,
            attempts: None,
            retries: None,
            finally: false,
        }
    }
}
