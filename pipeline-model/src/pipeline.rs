//! The `.c8s.yaml` pipeline format (an example: `examples/pipelines/orders.c8s.yaml`)
//! as Rust types; [`parse_pipeline`](crate::parse_pipeline) reads it.

use std::sync::Arc;

use c8s_sidecar_core::{Resources, SidecarConfig};
use serde_derive::{Deserialize, Serialize};

use crate::matrix::{DEFAULT_MAX_COMBINATIONS, Matrix};
use crate::ordered::OrderedMap;
use crate::pod::{Affinity, EphemeralStorage, PodOverrides, Toleration};
use crate::retries::Retries;

/// A pipeline: steps arranged as a DAG, optionally run once per matrix combination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Pipeline {
    /// The pipeline's name, a DNS-1123 label.
    pub name: String,
    /// The git repository each step's workspace is cloned from.
    pub repository: String,
    /// Globs a run's branch must match; empty means every branch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<String>,
    /// Whole-run deadline, a Go-style duration (`1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// The build matrix, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<Matrix>,
    /// The steps, in the order written.
    pub steps: Vec<Step>,
    /// Steps that run once every other step has finished, whatever its
    /// outcome (also after a failure or a cancel), with the outcomes as env.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finally: Vec<Step>,
    /// Retries of every step that does not declare its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Pod overrides for every step (a step's own override them).
    #[serde(flatten)]
    pub pod: PodOverrides,
    /// The file it was read from, so that errors found later point at lines.
    #[serde(skip)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub(crate) source: Source,
}

/// One step: a container image and the commands to run in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Step {
    /// The step's name, a DNS-1123 label unique in the pipeline.
    pub name: String,
    /// The image of the main container; may use `${{ matrix.X }}`.
    pub image: String,
    /// Shell commands, run in order under `sh -ec`; may use `${{ matrix.X }}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// Requests and limits of the main container.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// The step's deadline, a Go-style duration (`30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Directories (relative to the workspace) kept between runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<String>,
    /// Steps that must succeed before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Literal environment variables, in order; values may use `${{ matrix.X }}`,
    /// or be a whole result of an earlier step, `${{ steps.STEP.results.NAME }}`.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub env: OrderedMap<String>,
    /// Environment variables whose values come from Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretEnv>,
    /// Inline sidecars (same schema as a sidecar file); image, env values,
    /// command and args may use `${{ matrix.X }}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<SidecarConfig>,
    /// Sidecar files to load, as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecar_files: Vec<String>,
    /// The sidecars loaded from `sidecar_files`, in file order (filled by
    /// [`parse_pipeline`](crate::parse_pipeline); never written by users).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loaded_sidecars: Vec<SidecarConfig>,
    /// Directories (relative to the workspace) saved as artifacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// Artifacts of earlier steps to unpack before this step starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<StepInput>,
    /// Small values this step publishes (a digest, a version, a URL): it
    /// writes each to `$C8S_RESULTS/<name>`; steps that depend on it read
    /// them as env, `NAME: "${{ steps.STEP.results.NAME }}"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<String>,
    /// Run only when the condition holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditional: Option<Conditional>,
    /// The UID the main container runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// Opt out of the restricted security profile (kaniko, docker-in-docker).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub run_as_root: bool,
    /// How often the step runs again after it failed (over the pipeline's `retries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Pod overrides of this step, over the pipeline's.
    #[serde(flatten)]
    pub pod: PodOverrides,
}

/// An environment variable from a Secret key: `{ secretRef, key, envVar }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SecretEnv {
    /// The Secret's name.
    pub secret_ref: String,
    /// The key in the Secret.
    pub key: String,
    /// The environment variable to set.
    pub env_var: String,
}

impl SecretEnv {
    /// `env_var` from `key` of Secret `secret_ref`.
    pub fn new(secret_ref: impl Into<String>, key: impl Into<String>, env_var: impl Into<String>) -> Self {
        Self {
            secret_ref: secret_ref.into(),
            key: key.into(),
            env_var: env_var.into(),
        }
    }
}

/// An artifact of an earlier step: `{ step, output }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct StepInput {
    /// The producing step (a transitive dependency).
    pub step: String,
    /// One of its declared outputs.
    pub output: String,
}

impl StepInput {
    /// Output `output` of step `step`.
    pub fn new(step: impl Into<String>, output: impl Into<String>) -> Self {
        Self {
            step: step.into(),
            output: output.into(),
        }
    }
}

/// When a step runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Conditional {
    /// Branch globs; the step runs only on a matching branch.
    #[serde(default)]
    pub branches: Vec<String>,
}

impl Conditional {
    /// Run only on branches matching one of `branches`.
    pub fn branches<S: Into<String>>(branches: impl IntoIterator<Item = S>) -> Self {
        Self {
            branches: branches.into_iter().map(Into::into).collect(),
        }
    }
}

impl Pipeline {
    /// A pipeline with a name, a repository and steps.
    pub fn new(name: impl Into<String>, repository: impl Into<String>, steps: Vec<Step>) -> Self {
        Self {
            name: name.into(),
            repository: repository.into(),
            branches: Vec::new(),
            timeout: None,
            matrix: None,
            steps,
            finally: Vec::new(),
            retries: None,
            pod: PodOverrides::default(),
            source: Default::default(),
        }
    }

    /// The step named `name` (a `finally` step included).
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.all_steps().find(|s| s.name == name)
    }

    /// The steps, then the `finally` steps.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(&self.finally)
    }
}

impl Step {
    /// A step running `image` with nothing else set.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            commands: Vec::new(),
            resources: Resources::default(),
            timeout: None,
            caches: Vec::new(),
            depends_on: Vec::new(),
            env: OrderedMap::new(),
            secrets: Vec::new(),
            sidecars: Vec::new(),
            sidecar_files: Vec::new(),
            loaded_sidecars: Vec::new(),
            outputs: Vec::new(),
            inputs: Vec::new(),
            results: Vec::new(),
            conditional: None,
            run_as_user: None,
            run_as_root: false,
            retries: None,
            pod: PodOverrides::default(),
        }
    }

    /// This step with `retries`.
    pub fn with_retries(mut self, retries: Retries) -> Self {
        self.retries = Some(retries);
        self
    }

    /// This step with `commands`.
    pub fn with_commands<S: Into<String>>(mut self, commands: impl IntoIterator<Item = S>) -> Self {
        self.commands = commands.into_iter().map(Into::into).collect();
        self
    }

    /// This step depending on `steps`.
    pub fn depends_on<S: Into<String>>(mut self, steps: impl IntoIterator<Item = S>) -> Self {
        self.depends_on = steps.into_iter().map(Into::into).collect();
        self
    }

    /// The step's timeout in seconds, if it has a valid one.
    pub fn timeout_seconds(&self) -> Option<u64> {
        self.timeout
            .as_deref()
            .and_then(|t| crate::parse_duration(t).ok())
    }

    /// Whether the step runs on `branch` (no condition: always).
    pub fn runs_on(&self, branch: &str) -> bool {
        self.conditional.as_ref().is_none_or(|c| {
            c.branches.is_empty() || c.branches.iter().any(|g| crate::branch_matches(g, branch))
        })
    }
}

/// Knobs for validation and expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineOptions {
    /// The most matrix combinations allowed (default 256).
    pub max_combinations: usize,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            max_combinations: DEFAULT_MAX_COMBINATIONS,
        }
    }
}

impl PipelineOptions {
    /// Sets the matrix cap.
    pub fn with_max_combinations(mut self, max: usize) -> Self {
        self.max_combinations = max;
        self
    }
}

/// Declares a strict document struct: its own fields, then the pod override
/// fields a pipeline and a step share, written once here (serde's `flatten`
/// cannot be combined with `deny_unknown_fields`, which gives the "unknown
/// field" errors), with `pod_overrides()` taking them out as [`PodOverrides`].
macro_rules! document_with_pod_overrides {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        $vis struct $name {
            $($(#[$fmeta])* $field: $ty,)*
            #[serde(default)]
            node_selector: std::collections::BTreeMap<String, String>,
            #[serde(default)]
            tolerations: Vec<Toleration>,
            #[serde(default)]
            affinity: Option<Affinity>,
            #[serde(default)]
            image_pull_secrets: Vec<String>,
            #[serde(default)]
            service_account_name: Option<String>,
            #[serde(default)]
            runtime_class_name: Option<String>,
            #[serde(default)]
            priority_class_name: Option<String>,
            #[serde(default)]
            labels: std::collections::BTreeMap<String, String>,
            #[serde(default)]
            annotations: std::collections::BTreeMap<String, String>,
            #[serde(default)]
            ephemeral_storage: Option<EphemeralStorage>,
            #[serde(default)]
            pod_spec_patch: Option<serde_json::Value>,
        }

        impl $name {
            /// The pod override fields, taken out of the document.
            fn pod_overrides(&mut self) -> PodOverrides {
                PodOverrides {
                    node_selector: std::mem::take(&mut self.node_selector),
                    tolerations: std::mem::take(&mut self.tolerations),
                    affinity: self.affinity.take(),
                    image_pull_secrets: std::mem::take(&mut self.image_pull_secrets),
                    service_account_name: self.service_account_name.take(),
                    runtime_class_name: self.runtime_class_name.take(),
                    priority_class_name: self.priority_class_name.take(),
                    labels: std::mem::take(&mut self.labels),
                    annotations: std::mem::take(&mut self.annotations),
                    ephemeral_storage: self.ephemeral_storage.take(),
                    pod_spec_patch: self.pod_spec_patch.take(),
                }
            }
        }
    };
}

document_with_pod_overrides! {
    /// The pipeline file as written: like [`Pipeline`], but strict and without
    /// the fields c8s fills in.
    pub(crate) struct PipelineDoc {
        name: String,
        repository: String,
        #[serde(default)]
        branches: Vec<String>,
        #[serde(default)]
        timeout: Option<String>,
        #[serde(default)]
        matrix: Option<Matrix>,
        steps: Vec<StepDoc>,
        #[serde(default)]
        finally: Vec<StepDoc>,
        #[serde(default)]
        retries: Option<Retries>,
    }
}

document_with_pod_overrides! {
    /// One step as written.
    struct StepDoc {
        name: String,
        image: String,
        #[serde(default)]
        commands: Vec<String>,
        #[serde(default)]
        resources: Resources,
        #[serde(default)]
        timeout: Option<String>,
        #[serde(default)]
        caches: Vec<String>,
        #[serde(default)]
        depends_on: Vec<String>,
        #[serde(default)]
        env: OrderedMap<String>,
        #[serde(default)]
        secrets: Vec<SecretEnv>,
        #[serde(default)]
        sidecars: Vec<SidecarConfig>,
        #[serde(default)]
        sidecar_files: Vec<String>,
        #[serde(default)]
        outputs: Vec<String>,
        #[serde(default)]
        inputs: Vec<StepInput>,
        #[serde(default)]
        results: Vec<String>,
        #[serde(default)]
        conditional: Option<Conditional>,
        #[serde(default)]
        run_as_user: Option<i64>,
        #[serde(default)]
        run_as_root: bool,
        #[serde(default)]
        retries: Option<Retries>,
    }
}

impl From<PipelineDoc> for Pipeline {
    fn from(mut doc: PipelineDoc) -> Self {
        let pod = doc.pod_overrides();
        Pipeline {
            name: doc.name,
            repository: doc.repository,
            branches: doc.branches,
            timeout: doc.timeout,
            matrix: doc.matrix,
            steps: doc.steps.into_iter().map(Step::from).collect(),
            finally: doc.finally.into_iter().map(Step::from).collect(),
            retries: doc.retries,
            pod,
            source: Default::default(),
        }
    }
}

impl From<StepDoc> for Step {
    fn from(mut d: StepDoc) -> Self {
        let pod = d.pod_overrides();
        Self {
            name: d.name,
            image: d.image,
            commands: d.commands,
            resources: d.resources,
            timeout: d.timeout,
            caches: d.caches,
            depends_on: d.depends_on,
            env: d.env,
            secrets: d.secrets,
            sidecars: d.sidecars,
            sidecar_files: d.sidecar_files,
            loaded_sidecars: Vec::new(),
            outputs: d.outputs,
            inputs: d.inputs,
            results: d.results,
            conditional: d.conditional,
            run_as_user: d.run_as_user,
            run_as_root: d.run_as_root,
            retries: d.retries,
            pod,
        }
    }
}

/// The file a pipeline was read from, kept so that rules checked after
/// parsing (by [`Pipeline::validate`] and [`Pipeline::expand`]) point at its
/// lines. Where a pipeline was written is not part of its value: every two
/// sources compare equal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Source(pub(crate) Option<Arc<(String, String)>>);

impl PartialEq for Source {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Source {}
