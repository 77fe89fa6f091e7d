//! The pod contract: the label keys, annotation keys and container names that
//! pod-builder writes and the adapters read. One module owns them, as Tekton's
//! `pkg/apis/pipeline/register.go` does for its builder and reconciler.
//!
//! ```
//! use c8s_sidecar_core::contract;
//!
//! assert!(contract::is_reserved_container_name("main"));
//! assert!(contract::is_reserved_container_name("c8s-input-0"));
//! assert!(!contract::is_reserved_container_name("postgres"));
//! assert_eq!(contract::input_container_name(2), "c8s-input-2");
//! ```

/// Prefix of every label and annotation key c8s owns.
pub const KEY_PREFIX: &str = "c8s.dev/";
/// Prefix of the Kubernetes recommended labels c8s sets
/// (<https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/>).
pub const RECOMMENDED_PREFIX: &str = "app.kubernetes.io/";
/// Key prefixes a caller's own labels and annotations may not use.
pub const RESERVED_KEY_PREFIXES: [&str; 2] = [KEY_PREFIX, RECOMMENDED_PREFIX];

/// `app.kubernetes.io/name`: always [`APP_NAME`].
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: the object's name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/component`: always [`COMPONENT_STEP`].
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by`: always [`MANAGED_BY_VALUE`]; how adapters find c8s objects.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`NAME_LABEL`].
pub const APP_NAME: &str = "c8s";
/// The value of [`COMPONENT_LABEL`].
pub const COMPONENT_STEP: &str = "step";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "c8s";
/// The label selector that finds every object c8s created.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=c8s";

/// Label: the pipeline (a label value, hash-shortened when too long).
pub const PIPELINE_LABEL: &str = "c8s.dev/pipeline";
/// Label: the run id (a label value, hash-shortened when too long).
pub const RUN_LABEL: &str = "c8s.dev/run";
/// Label: the step (a label value, hash-shortened when too long).
pub const STEP_LABEL: &str = "c8s.dev/step";
/// Label: the build number.
pub const BUILD_LABEL: &str = "c8s.dev/build";
/// Label: the matrix combination id; annotation: the combination (`k=v,…`).
pub const MATRIX_KEY: &str = "c8s.dev/matrix";

/// Annotation: the pipeline name, unshortened.
pub const PIPELINE_ANNOTATION: &str = "c8s.dev/pipeline";
/// Annotation: the step name, unshortened.
pub const STEP_ANNOTATION: &str = "c8s.dev/step";
/// Annotation: the run id, unshortened.
pub const RUN_ID_ANNOTATION: &str = "c8s.dev/run-id";
/// Annotation: the repository URL.
pub const REPOSITORY_ANNOTATION: &str = "c8s.dev/repository";
/// Annotation: the commit.
pub const COMMIT_ANNOTATION: &str = "c8s.dev/commit";
/// Annotation: the branch.
pub const BRANCH_ANNOTATION: &str = "c8s.dev/branch";

/// The init container that clones the repository.
pub const GIT_CLONE: &str = "git-clone";
/// The step's own container; its exit code is the step's result.
pub const MAIN: &str = "main";
/// The container that saves a step's outputs.
pub const ARTIFACT_HELPER: &str = "artifact-helper";
/// Prefix of every other container name c8s creates (`c8s-input-N`).
pub const RESERVED_PREFIX: &str = "c8s-";
/// Container names c8s itself creates in every pod (besides [`RESERVED_PREFIX`]).
pub const RESERVED_NAMES: [&str; 3] = [MAIN, ARTIFACT_HELPER, GIT_CLONE];

/// The name of the init container that unpacks input number `index`.
pub fn input_container_name(index: usize) -> String {
    format!("{RESERVED_PREFIX}input-{index}")
}

/// Whether a user's container (a sidecar) may not take this name.
pub fn is_reserved_container_name(name: &str) -> bool {
    RESERVED_NAMES.contains(&name) || name.starts_with(RESERVED_PREFIX)
}

/// Whether a caller's label or annotation key is in a prefix c8s owns.
pub fn is_reserved_key(key: &str) -> bool {
    RESERVED_KEY_PREFIXES.iter().any(|p| key.starts_with(p))
}
