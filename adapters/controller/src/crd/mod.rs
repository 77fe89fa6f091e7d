//! The custom resources of group `c8s.dev`, version `v1alpha1`: [`Pipeline`],
//! [`PipelineRun`], [`RepositoryConnection`] and [`ConcoursePipeline`], derived with kube's
//! `CustomResource`; [`crds`] and [`crd_yaml`] give their definitions.
//!
//! A `Pipeline` embeds the `.c8s.yaml` model type itself
//! ([`c8s_pipeline_model::Pipeline`]): there is one definition of a step.

mod structural;

use c8s_pipeline_model::Pipeline as PipelineDefinition;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use structural::{make_structural, structural_violations};

/// The API group of every c8s resource.
pub const GROUP: &str = "c8s.dev";
/// The version of every c8s resource.
pub const VERSION: &str = "v1alpha1";

/// A `.c8s.yaml` pipeline as a namespaced resource, plus what a webhook
/// trigger needs.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "c8s.dev",
    version = "v1alpha1",
    kind = "Pipeline",
    namespaced,
    shortname = "c8spipeline",
    category = "c8s",
    printcolumn = r#"{"name":"Repository","type":"string","jsonPath":".spec.pipeline.repository"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// The pipeline, exactly as written in `.c8s.yaml` (sidecar files loaded).
    pub pipeline: PipelineDefinition,
    /// Which pushes start a run; none means runs are only created by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
}

/// Which pushes start a run of a [`Pipeline`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// The [`RepositoryConnection`] (same namespace) whose webhook deliveries
    /// count.
    pub connection: String,
    /// The repository a push must come from (`owner/name` or its clone URL);
    /// empty means the pipeline's own `repository`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    /// Branch globs a push must match; empty means the pipeline's `branches`
    /// (and every branch when those are empty too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<String>,
}

/// A Concourse pipeline as a namespaced resource (what `fly set-pipeline`
/// gives Concourse): the controller keeps one `c8s watch` of it running, a
/// one-replica Deployment and a ConfigMap with the text, both owned by it,
/// which checks its resources and runs each build their new versions
/// trigger.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "c8s.dev",
    version = "v1alpha1",
    kind = "ConcoursePipeline",
    namespaced,
    status = "ConcoursePipelineStatus",
    shortname = "c8sconcourse",
    category = "c8s",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Watcher","type":"string","jsonPath":".status.watcher"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ConcoursePipelineSpec {
    /// The pipeline's text, as written in `pipeline.yml`.
    pub pipeline: String,
    /// The ServiceAccount (same namespace) the watcher runs as: its rights
    /// are all the watcher has (pods, their logs, ConfigMaps, Events, and
    /// the Secrets its pipeline reads, by name).
    pub service_account_name: String,
    /// `((var))` values, as `fly set-pipeline -v NAME=VALUE` gives them.
    /// They are the watcher's arguments, visible to whoever reads the
    /// Deployment: a credential belongs in a Secret.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, String>,
    /// Steps of one build at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
}

/// How a [`ConcoursePipeline`]'s watcher stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConcoursePipelineStatus {
    /// `Ready`: `True` (reason `WatcherApplied`) once the watcher's
    /// Deployment and ConfigMap are applied for this generation; `False`
    /// with reason `InvalidPipeline` and the located errors when the text
    /// is not a pipeline c8s can run (the watcher of the last valid text,
    /// if any, goes on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The watcher's Deployment (and ConfigMap) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watcher: Option<String>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One run of a pipeline: what to run and, in its status, how it went.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "c8s.dev",
    version = "v1alpha1",
    kind = "PipelineRun",
    namespaced,
    status = "PipelineRunStatus",
    shortname = "c8srun",
    category = "c8s",
    printcolumn = r#"{"name":"Pipeline","type":"string","jsonPath":".status.pipeline"}"#,
    printcolumn = r#"{"name":"Branch","type":"string","jsonPath":".spec.branch"}"#,
    printcolumn = r#"{"name":"Build","type":"integer","jsonPath":".spec.build"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Started","type":"date","jsonPath":".status.startTime"}"#,
    printcolumn = r#"{"name":"Completed","type":"date","jsonPath":".status.completionTime"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunSpec {
    /// The [`Pipeline`] to run, by name in the run's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_ref: Option<String>,
    /// The pipeline to run, embedded (used when `pipelineRef` is not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineDefinition>,
    /// The commit to check out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit: String,
    /// The branch the commit is on (decides conditional steps).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub branch: String,
    /// The build number, part of every object name.
    #[serde(default)]
    pub build: u64,
    /// Who or what started the run (`webhook:github:<delivery>`, `cli:<user>`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub triggered_by: String,
    /// Set to true to cancel the run: running steps are deleted, the rest
    /// skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
    /// At most this many steps at once; 0 or absent means the controller's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Keep running the steps that do not depend on a failed one (`c8s run
    /// --continue-on-failure`); by default the run stops at its first
    /// failure (fail-fast).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_failure: bool,
}

/// Where a [`PipelineRun`] is: the run state `c8s run` reports too
/// ([`c8s_kube::RunState`]), one type for both.
pub use c8s_kube::RunState as RunPhase;

/// The JSON schema of [`RunPhase`] (c8s-kube derives no schema): a string,
/// one of the phases' names.
fn run_phase_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = RunPhase::ALL.iter().map(|p| p.as_str()).collect();
    schemars::json_schema!({ "type": "string", "enum": names })
}

/// Where one step is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StepPhase {
    /// Not started.
    #[default]
    Pending,
    /// Its pod or Job exists and has not finished.
    Running,
    /// It succeeded.
    Succeeded,
    /// It failed for good.
    Failed,
    /// Skipped (a dependency failed, a branch condition) or cancelled.
    Skipped,
}

/// The observed state of a [`PipelineRun`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunStatus {
    /// Where the run is.
    #[serde(default)]
    #[schemars(schema_with = "run_phase_schema")]
    pub phase: RunPhase,
    /// The pipeline's name, from `pipelineRef` or the embedded pipeline (a
    /// printer column takes one path, so the controller copies it here).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline: String,
    /// The pipeline this run runs, as resolved when the controller first saw
    /// the run (embedded, or the `Pipeline` that `pipelineRef` named then).
    /// The run keeps it: editing or deleting that Pipeline never changes a
    /// run in flight (Tekton keeps `status.pipelineSpec` for the same reason).
    /// Only the controller writes it and c8s validates it, so its schema is
    /// an object kept whole: the definition's schema would double otherwise,
    /// past what `kubectl apply` can keep in its annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kept_object")]
    pub pipeline_spec: Option<PipelineDefinition>,
    /// `Succeeded` (`Unknown` while the run runs, then `True` or `False`
    /// with reason `Succeeded`, `Failed`, `Cancelled`, `PipelineRunTimeout`
    /// or `InvalidSpec`, as Tekton's PipelineRun says), `Queued`,
    /// `QuotaExceeded`: the reasons behind the phase, as meta/v1 Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// When the first step started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the run ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One entry per step (per matrix combination), in pipeline order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepRunStatus>,
}

/// The schema of a value kept whole: an object whose fields the API server
/// neither checks nor prunes.
fn kept_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A condition of a run: Kubernetes' own meta/v1 `Condition` (type,
/// status `True`/`False`/`Unknown`, reason, message, lastTransitionTime,
/// observedGeneration), as the API conventions ask
/// (<https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#typical-status-properties>).
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// The schema of meta/v1 `Condition`s, listed by type (k8s-openapi's types
/// carry no JSON Schema of their own).
fn conditions_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"type": "string", "maxLength": 316},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "reason": {"type": "string", "maxLength": 1024},
                "message": {"type": "string", "maxLength": 32768},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0}
            }
        }
    })
}

/// How one step went.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRunStatus {
    /// The step's name (with `-<matrix id>` for a matrix combination).
    pub name: String,
    /// Where it is.
    pub phase: StepPhase,
    /// The Pod of its latest attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The Job of its latest attempt, when steps run as Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The latest attempt, 0 for the first.
    #[serde(default)]
    pub attempt: u32,
    /// `main`'s exit code, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// A CamelCase reason (`Error`, `OOMKilled`, `DependencyFailed`...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// What happened, naming the container (never a secret value).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When it started running (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// The retries it has spent, by budget (the rule of `c8s run`: the
    /// controller's own budgets for image pulls and disruptions first,
    /// then the step's `retries`).
    #[serde(default, skip_serializing_if = "RetriesSpentStatus::is_zero")]
    pub retries: RetriesSpentStatus,
    /// When attempt `attempt` failed and gets another: the
    /// next attempt starts then (RFC 3339; the retry backoff). Set once per
    /// failed attempt, so a reconcile that sees the failed pod again does
    /// not count it twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// Its latest attempt's logs in the log archive, once it ended (with
    /// the controller's `--log-archive-bucket`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archived_logs: Vec<ArchivedLogStatus>,
    /// Why its logs are not (all) in the archive: they could not be masked,
    /// or the upload failed. The step's result does not depend on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_archive_error: Option<String>,
}

/// One archived log of a step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedLogStatus {
    /// The attempt, 0 for the first.
    pub attempt: u32,
    /// The container.
    pub container: String,
    /// The object's key in the bucket.
    pub key: String,
    /// The object's URL (fetching it needs the archive's credentials).
    pub url: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The retries a step has spent, by budget.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetriesSpentStatus {
    /// New pods after an image pull back-off (the controller's own budget).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub image_pulls: u32,
    /// New pods after an eviction or a lost pod (the controller's own budget).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disruptions: u32,
    /// The step's own `retries` spent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub user: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RetriesSpentStatus {
    /// Nothing spent.
    pub fn is_zero(&self) -> bool {
        *self == RetriesSpentStatus::default()
    }
}

impl From<RetriesSpentStatus> for c8s_kube::RetriesSpent {
    fn from(s: RetriesSpentStatus) -> Self {
        c8s_kube::RetriesSpent {
            image_pulls: s.image_pulls,
            disruptions: s.disruptions,
            user: s.user,
        }
    }
}

impl From<c8s_kube::RetriesSpent> for RetriesSpentStatus {
    fn from(s: c8s_kube::RetriesSpent) -> Self {
        RetriesSpentStatus {
            image_pulls: s.image_pulls,
            disruptions: s.disruptions,
            user: s.user,
        }
    }
}

/// A Git host connection: where webhook deliveries come from and the Secret
/// that proves them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "c8s.dev",
    version = "v1alpha1",
    kind = "RepositoryConnection",
    namespaced,
    shortname = "c8sconn",
    category = "c8s",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryConnectionSpec {
    /// The Git host.
    pub provider: Provider,
    /// The Secret key holding the webhook secret (GitHub/Bitbucket HMAC key,
    /// GitLab token).
    pub webhook_secret: SecretKeyRef,
}

/// A Git host that sends webhooks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// GitHub: `X-Hub-Signature-256`.
    Github,
    /// GitLab: `X-Gitlab-Token`.
    Gitlab,
    /// Bitbucket Cloud: `X-Hub-Signature`.
    Bitbucket,
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key in it.
    pub key: String,
}

/// The three CustomResourceDefinitions, structural, in a fixed order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    use kube::CustomResourceExt;
    [
        Pipeline::crd(),
        PipelineRun::crd(),
        RepositoryConnection::crd(),
        ConcoursePipeline::crd(),
    ]
    .into_iter()
    .map(make_structural)
    .collect()
}

/// The CRDs as one multi-document YAML stream (what `c8s crd` prints).
pub fn crd_yaml() -> Result<String, c8s_pod_builder::Error> {
    c8s_pod_builder::to_canonical_yaml_stream(&crds())
}
