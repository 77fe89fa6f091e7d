//! The one error type of pod-builder.

use std::fmt;

/// One broken rule in a rendered object, at a field path such as
/// `spec.initContainers[2].ports[0].name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where, as a JSON-style field path in the object.
    pub path: String,
    /// What is wrong, for people.
    pub message: String,
}

impl Violation {
    /// A violation at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn join(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a plan could not be rendered or serialised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Native sidecars were forced for a cluster older than Kubernetes 1.29.
    #[error(
        "native sidecars need Kubernetes >= 1.29, but the target is 1.{kubernetes_minor}: \
         an older API server drops `restartPolicy` from init containers and the pod would hang; \
         use legacy sidecars"
    )]
    NativeSidecarsUnsupported {
        /// The target minor version.
        kubernetes_minor: u32,
    },
    /// A workspace-relative path (output, input, cache, working dir) is unusable.
    #[error("step {step:?}: {field} {path:?} {reason}")]
    InvalidPath {
        /// The step.
        step: String,
        /// Which field (`outputs[0]`, `caches[1]`, `workingDir`, ...).
        field: String,
        /// The path as given.
        path: String,
        /// Why it is unusable.
        reason: c8s_sidecar_core::paths::PathError,
    },
    /// The plan breaks a rule of [`TaskPlan::validate`](c8s_pipeline_model::TaskPlan::validate):
    /// every problem, typed (`Problem::PortConflict`, `Problem::ReservedName`, ...).
    #[error("{0}")]
    InvalidPlan(#[source] c8s_pipeline_model::Errors),
    /// The step declares outputs but no command, so c8s cannot tell when it ends.
    #[error(
        "step {step:?}: outputs need an explicit command (c8s wraps it to signal artifact-helper when main ends)"
    )]
    OutputsNeedCommand {
        /// The step.
        step: String,
    },
    /// A step that publishes or reads step results has no command to wrap.
    #[error(
        "step {step:?}: results need an explicit command (c8s wraps it to check the results it writes and to load the results it reads into env)"
    )]
    ResultsNeedCommand {
        /// The step.
        step: String,
    },
    /// A step whose env uses Concourse local vars (`load_var`) has no command.
    #[error(
        "step {step:?}: a param holding a load_var value needs an explicit command (c8s wraps it to read the value into env)"
    )]
    LocalVarsNeedCommand {
        /// The step.
        step: String,
    },
    /// An extra label from the run context uses a key c8s sets itself.
    #[error("label {key:?} is reserved for c8s; choose another key")]
    ReservedLabel {
        /// The label key.
        key: String,
    },
    /// A pod override (a toleration, the affinity, `podSpecPatch`) does not
    /// fit the Kubernetes PodSpec.
    #[error("{field}: {reason}")]
    InvalidOverride {
        /// Which override, with the field path inside it.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The rendered object breaks rules the API server enforces; nothing is returned.
    #[error("{kind} {name:?} would be rejected: {}", join(.violations))]
    Invalid {
        /// `Pod` or `Job`.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// Every broken rule.
        violations: Vec<Violation>,
    },
    /// `--commit` is not a full hex object name.
    #[error(
        "commit {commit:?} must be a full hex object name (40 or 64 hex digits); resolve short names and refs before the run"
    )]
    InvalidCommit {
        /// The commit as given.
        commit: String,
    },
    /// The branch breaks git's ref name rules (git-check-ref-format).
    #[error("branch {branch:?} is not a valid git branch name: {reason}")]
    InvalidBranch {
        /// The branch as given.
        branch: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The repository URL embeds credentials; they would land in the pod spec.
    #[error(
        "repository {repository} embeds credentials in its URL (shown here without them); \
         put them in a git credentials Secret and pass its name (--git-secret)"
    )]
    CredentialsInUrl {
        /// The URL without its user information.
        repository: String,
    },
    /// The repository URL would be read by git as an option.
    #[error("repository {repository:?} must not start with `-`")]
    InvalidRepository {
        /// The URL as given.
        repository: String,
    },
    /// A run-context setting is unusable.
    #[error("run context {field}: {reason}")]
    InvalidSetting {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A legacy-mode Job with sidecars: nothing stops the sidecars, so the Job never completes.
    #[error(
        "step {step:?}: a Job with sidecars needs native sidecars (Kubernetes >= 1.29): with legacy \
         sidecars nothing stops them when main ends and the Job never completes; render Pods instead \
         (the runner deletes a legacy pod when main ends)"
    )]
    LegacyJobWithSidecars {
        /// The step.
        step: String,
    },
    /// Legacy sidecars are waited for by `main`'s wrapper, which needs `main`'s command.
    #[error(
        "step {step:?}: with legacy sidecars, main needs an explicit command (c8s wraps it to wait \
         until the sidecars answer)"
    )]
    LegacyNeedsCommand {
        /// The step.
        step: String,
    },
    /// Serialising to YAML or JSON failed.
    #[error("cannot serialise to {format}: {reason}")]
    Serialize {
        /// `yaml` or `json`.
        format: &'static str,
        /// The serializer's message.
        reason: String,
    },
}
