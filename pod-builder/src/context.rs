//! `RunContext`: the facts from outside a plan that a rendered pod depends on —
//! which run and build this is, where the code and the artifacts live, and how
//! the target cluster wants pods shaped. Pure data: no clock, no randomness, no
//! environment; the caller fills it in.

use c8s_pipeline_model::PodOverrides;
use k8s_openapi::api::core::v1::{Affinity, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_derive::{Deserialize, Serialize};

/// The Kubernetes minor version assumed when none is given (1.33, where native
/// sidecars are GA).
pub const DEFAULT_KUBERNETES_MINOR: u32 = 33;

/// The first Kubernetes minor version with native sidecars on by default.
pub const NATIVE_SIDECARS_MIN_MINOR: u32 = 29;

/// Image of the `git-clone` init container.
pub const DEFAULT_GIT_IMAGE: &str = "alpine/git:2.47.2";

/// Image of the input-extraction and `artifact-helper` containers.
pub const DEFAULT_HELPER_IMAGE: &str = "busybox:1.37.0";

/// How sidecars are placed in the pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SidecarMode {
    /// Restartable init containers (`restartPolicy: Always`) gated by a
    /// `startupProbe`; needs Kubernetes >= 1.29.
    #[default]
    Native,
    /// Plain containers next to `main` with a `readinessProbe`; the kube
    /// adapter deletes the pod once `main` (and `artifact-helper`) finished.
    Legacy,
}

/// Which Pod Security Standard c8s shapes its containers for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SecurityProfile {
    /// Pod Security "restricted": non-root UID, seccomp RuntimeDefault, all
    /// capabilities dropped, no privilege escalation. A container that opts out
    /// with `runAsRoot` lowers its pod to baseline.
    #[default]
    Restricted,
    /// Pod Security "baseline": images run as the user they declare and keep the
    /// runtime's default capabilities; privilege escalation stays off.
    Baseline,
}

impl SecurityProfile {
    /// The profile's name as Pod Security admission spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            SecurityProfile::Restricted => "restricted",
            SecurityProfile::Baseline => "baseline",
        }
    }
}

/// Everything about a run that is not in a [`TaskPlan`](crate::model::TaskPlan).
///
/// ```
/// use c8s_pod_builder::{RunContext, SidecarMode};
/// let ctx = RunContext::new("run-42", 7)
///     .with_commit("0123456789abcdef0123456789abcdef01234567")
///     .with_branch("main")
///     .with_namespace("ci")
///     .with_kubernetes_minor(28);
/// assert_eq!(ctx.effective_sidecar_mode().unwrap(), SidecarMode::Legacy);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RunContext {
    /// Pipeline name override; empty uses the plan's `identity.pipeline`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline: String,
    /// The run's id (unique per run; becomes a label and part of the name hash).
    pub run_id: String,
    /// The build number (`-b<N>` in object names).
    pub build: u64,
    /// The commit to check out (a full SHA); empty fetches `branch`.
    #[serde(default)]
    pub commit: String,
    /// The branch the run is for.
    #[serde(default)]
    pub branch: String,
    /// Git URL to clone into the workspace; empty leaves the workspace empty.
    #[serde(default)]
    pub repository: String,
    /// Namespace of the rendered objects; empty leaves it to `kubectl -n`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Owner of the rendered objects, for garbage collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_reference: Option<OwnerReference>,
    /// PersistentVolumeClaim holding artifacts (inputs and outputs).
    pub artifact_claim: String,
    /// PersistentVolumeClaim holding caches.
    pub cache_claim: String,
    /// Requested sidecar mode; see [`RunContext::effective_sidecar_mode`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar_mode: Option<SidecarMode>,
    /// Target Kubernetes minor version (1.`N`).
    pub kubernetes_minor: u32,
    /// Security profile the containers are shaped for.
    #[serde(default)]
    pub security_profile: SecurityProfile,
    /// UID used for containers that do not ask for one (restricted profile).
    pub default_run_as_user: i64,
    /// Pod `fsGroup`, so that volumes are writable by every container.
    pub fs_group: i64,
    /// Pod overrides of every pod, over each plan's own: the fields a
    /// pipeline or a step sets, with Kubernetes' own tolerations and affinity.
    /// Labels and annotations go on every object (c8s's own keys are
    /// reserved) and win over the plan's, as the node selector's entries do;
    /// tolerations and image pull secrets come after the plan's; affinity,
    /// service account (which also turns token automounting on), RuntimeClass,
    /// PriorityClass and `main`'s ephemeral storage replace the plan's;
    /// `podSpecPatch` applies after the plan's (same merge rules). Its fields
    /// read as the context's own (`ctx.labels`).
    #[serde(flatten)]
    pub pod: PodOverrides<Toleration, Affinity>,
    /// Seconds a finished Job is kept (`ttlSecondsAfterFinished`).
    pub job_ttl_seconds: i32,
    /// Image of the `git-clone` init container.
    pub git_image: String,
    /// Image of the input-extraction and `artifact-helper` containers.
    pub helper_image: String,
    /// `activeDeadlineSeconds` of a pod whose plan sets no timeout (default
    /// 3600): no pod runs forever.
    #[serde(default = "default_deadline")]
    pub default_deadline_seconds: i64,
    /// `sizeLimit` of the workspace emptyDir (default `10Gi`); empty: none.
    #[serde(default = "default_workspace_size")]
    pub workspace_size_limit: String,
    /// Secret with git credentials, mounted into `git-clone` only: keys
    /// `username`/`password` (HTTPS) or `ssh-privatekey`/`known_hosts` (SSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_secret: Option<String>,
}

/// `activeDeadlineSeconds` of a pod whose plan sets no timeout.
pub const DEFAULT_DEADLINE_SECONDS: i64 = 3600;

/// `sizeLimit` of the workspace emptyDir.
pub const DEFAULT_WORKSPACE_SIZE_LIMIT: &str = "10Gi";

fn default_deadline() -> i64 {
    DEFAULT_DEADLINE_SECONDS
}

fn default_workspace_size() -> String {
    DEFAULT_WORKSPACE_SIZE_LIMIT.to_owned()
}

impl RunContext {
    /// A context for run `run_id`, build `build`, with every default:
    /// Kubernetes 1.33, native sidecars, restricted profile, UID/fsGroup 1000,
    /// claims `c8s-artifacts` and `c8s-cache`, Job TTL 3600 s.
    pub fn new(run_id: impl Into<String>, build: u64) -> Self {
        Self {
            pipeline: String::new(),
            run_id: run_id.into(),
            build,
            commit: String::new(),
            branch: String::new(),
            repository: String::new(),
            namespace: String::new(),
            owner_reference: None,
            artifact_claim: "c8s-artifacts".to_owned(),
            cache_claim: "c8s-cache".to_owned(),
            sidecar_mode: None,
            kubernetes_minor: DEFAULT_KUBERNETES_MINOR,
            security_profile: SecurityProfile::Restricted,
            default_run_as_user: 1000,
            fs_group: 1000,
            pod: PodOverrides::default(),
            job_ttl_seconds: 3600,
            git_image: DEFAULT_GIT_IMAGE.to_owned(),
            helper_image: DEFAULT_HELPER_IMAGE.to_owned(),
            default_deadline_seconds: DEFAULT_DEADLINE_SECONDS,
            workspace_size_limit: DEFAULT_WORKSPACE_SIZE_LIMIT.to_owned(),
            git_secret: None,
        }
    }

    /// Sets the deadline of pods whose plan sets no timeout.
    pub fn with_default_deadline_seconds(mut self, seconds: i64) -> Self {
        self.default_deadline_seconds = seconds;
        self
    }

    /// Sets the workspace emptyDir's `sizeLimit` (empty: none).
    pub fn with_workspace_size_limit(mut self, limit: impl Into<String>) -> Self {
        self.workspace_size_limit = limit.into();
        self
    }

    /// Sets the git credentials Secret (mounted into `git-clone` only).
    pub fn with_git_secret(mut self, name: impl Into<String>) -> Self {
        self.git_secret = Some(name.into());
        self
    }

    /// Checks the facts rendering depends on: a full commit, a valid branch,
    /// a repository URL without credentials, usable settings.
    pub fn check(&self) -> Result<(), crate::Error> {
        crate::git::check(
            &self.commit,
            &self.branch,
            &self.repository,
            self.git_secret.as_deref(),
        )?;
        if !(1..=i64::from(i32::MAX)).contains(&self.default_deadline_seconds) {
            return Err(crate::Error::InvalidSetting {
                field: "defaultDeadlineSeconds",
                reason: format!(
                    "must be between 1 and 2147483647 (is {})",
                    self.default_deadline_seconds
                ),
            });
        }
        if !self.workspace_size_limit.is_empty()
            && let Err(reason) = self.workspace_size_limit.parse::<c8s_sidecar_core::Quantity>()
        {
            return Err(crate::Error::InvalidSetting {
                field: "workspaceSizeLimit",
                reason: reason.to_string(),
            });
        }
        Ok(())
    }

    /// Overrides the pipeline name taken from the plan.
    pub fn with_pipeline(mut self, pipeline: impl Into<String>) -> Self {
        self.pipeline = pipeline.into();
        self
    }

    /// Sets the commit to check out.
    pub fn with_commit(mut self, commit: impl Into<String>) -> Self {
        self.commit = commit.into();
        self
    }

    /// Sets the branch.
    pub fn with_branch(mut self, branch: impl Into<String>) -> Self {
        self.branch = branch.into();
        self
    }

    /// Sets the repository URL to clone.
    pub fn with_repository(mut self, repository: impl Into<String>) -> Self {
        self.repository = repository.into();
        self
    }

    /// Sets the namespace.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the owner reference.
    pub fn with_owner_reference(mut self, owner: OwnerReference) -> Self {
        self.owner_reference = Some(owner);
        self
    }

    /// Sets the owner from plain values, so that deleting the owner deletes the
    /// rendered objects (garbage collection; the owner must be in the same
    /// namespace). `controller` and `blockOwnerDeletion` stay unset.
    ///
    /// ```
    /// # use c8s_pod_builder::RunContext;
    /// let ctx = RunContext::new("run-1", 1).with_owner("batch/v1", "Job", "ci-run-1", "5f2c…");
    /// assert_eq!(ctx.owner_reference.unwrap().kind, "Job");
    /// ```
    pub fn with_owner(
        self,
        api_version: impl Into<String>,
        kind: impl Into<String>,
        name: impl Into<String>,
        uid: impl Into<String>,
    ) -> Self {
        self.with_owner_reference(OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            ..Default::default()
        })
    }

    /// Sets the artifact PersistentVolumeClaim.
    pub fn with_artifact_claim(mut self, claim: impl Into<String>) -> Self {
        self.artifact_claim = claim.into();
        self
    }

    /// Sets the cache PersistentVolumeClaim.
    pub fn with_cache_claim(mut self, claim: impl Into<String>) -> Self {
        self.cache_claim = claim.into();
        self
    }

    /// Forces a sidecar mode (otherwise chosen from the Kubernetes version).
    pub fn with_sidecar_mode(mut self, mode: SidecarMode) -> Self {
        self.sidecar_mode = Some(mode);
        self
    }

    /// Sets the target Kubernetes minor version (1.`minor`).
    pub fn with_kubernetes_minor(mut self, minor: u32) -> Self {
        self.kubernetes_minor = minor;
        self
    }

    /// Sets the security profile.
    pub fn with_security_profile(mut self, profile: SecurityProfile) -> Self {
        self.security_profile = profile;
        self
    }

    /// Adds a label to every object.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.pod.labels.insert(key.into(), value.into());
        self
    }

    /// Adds an annotation to every object.
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.pod.annotations.insert(key.into(), value.into());
        self
    }

    /// Sets the service account.
    pub fn with_service_account(mut self, name: impl Into<String>) -> Self {
        self.pod.service_account_name = Some(name.into());
        self
    }

    /// Sets the priority class.
    pub fn with_priority_class(mut self, name: impl Into<String>) -> Self {
        self.pod.priority_class_name = Some(name.into());
        self
    }

    /// Adds a node selector entry.
    pub fn with_node_selector(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.pod.node_selector.insert(key.into(), value.into());
        self
    }

    /// Adds a toleration.
    pub fn with_toleration(mut self, toleration: Toleration) -> Self {
        self.pod.tolerations.push(toleration);
        self
    }

    /// Sets the affinity of every pod.
    pub fn with_affinity(mut self, affinity: Affinity) -> Self {
        self.pod.affinity = Some(affinity);
        self
    }

    /// Adds a Secret to pull images with.
    pub fn with_image_pull_secret(mut self, name: impl Into<String>) -> Self {
        self.pod.image_pull_secrets.push(name.into());
        self
    }

    /// Sets the RuntimeClass.
    pub fn with_runtime_class(mut self, name: impl Into<String>) -> Self {
        self.pod.runtime_class_name = Some(name.into());
        self
    }

    /// Sets a patch applied to every pod's `spec` (JSON merge patch; lists of
    /// named items merge by `name`). Needs the default feature `pod-spec-patch`:
    /// without it rendering refuses the patch.
    pub fn with_pod_spec_patch(mut self, patch: serde_json::Value) -> Self {
        self.pod.pod_spec_patch = Some(patch);
        self
    }

    /// Tolerates the taint `key=value:effect` (operator `Equal`); `effect` is
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    ///
    /// ```
    /// # use c8s_pod_builder::RunContext;
    /// let ctx = RunContext::new("run-1", 1).with_taint_toleration("dedicated", "ci", "NoSchedule");
    /// assert_eq!(ctx.pod.tolerations[0].operator.as_deref(), Some("Equal"));
    /// ```
    pub fn with_taint_toleration(
        self,
        key: impl Into<String>,
        value: impl Into<String>,
        effect: impl Into<String>,
    ) -> Self {
        self.with_toleration(Toleration {
            key: Some(key.into()),
            operator: Some("Equal".to_owned()),
            value: Some(value.into()),
            effect: Some(effect.into()),
            ..Default::default()
        })
    }

    /// Tolerates every taint with `key` and `effect`, whatever its value
    /// (operator `Exists`).
    pub fn with_key_toleration(self, key: impl Into<String>, effect: impl Into<String>) -> Self {
        self.with_toleration(Toleration {
            key: Some(key.into()),
            operator: Some("Exists".to_owned()),
            effect: Some(effect.into()),
            ..Default::default()
        })
    }

    /// Sets how long a finished Job is kept.
    pub fn with_job_ttl_seconds(mut self, seconds: i32) -> Self {
        self.job_ttl_seconds = seconds;
        self
    }

    /// The sidecar mode that applies: the requested one, or native from
    /// Kubernetes 1.29 on and legacy below. Forcing native below 1.29 is an
    /// error, because an older API server silently drops `restartPolicy` from
    /// init containers and the "sidecar" would block `main` forever.
    pub fn effective_sidecar_mode(&self) -> Result<SidecarMode, crate::Error> {
        let native_ok = self.kubernetes_minor >= NATIVE_SIDECARS_MIN_MINOR;
        match self.sidecar_mode {
            Some(SidecarMode::Native) if !native_ok => Err(crate::Error::NativeSidecarsUnsupported {
                kubernetes_minor: self.kubernetes_minor,
            }),
            Some(mode) => Ok(mode),
            None if native_ok => Ok(SidecarMode::Native),
            None => Ok(SidecarMode::Legacy),
        }
    }
}
