//! The small cluster interface the scheduler is generic over.
//!
//! [`crate::KubeCluster`] implements it with kube-rs, `sim::SimCluster` (feature `test-util`)
//! in memory with virtual time.

use std::collections::BTreeMap;
use std::future::Future;

use futures::stream::BoxStream;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::observe::PodObservation;

pub use c8s_pipeline_model::contract::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_SELECTOR, RUN_LABEL, STEP_LABEL,
};

/// What a step submits: a Pod, or a Job wrapping one.
#[derive(Clone, Debug, PartialEq)]
pub enum StepObject {
    /// A bare pod (`restartPolicy: Never`).
    Pod(Box<Pod>),
    /// A Job with `backoffLimit: 0`; its one pod is what is observed.
    Job(Box<Job>),
}

impl StepObject {
    /// The object's `metadata.name`, if set.
    pub fn name(&self) -> Option<&str> {
        match self {
            StepObject::Pod(pod) => pod.metadata.name.as_deref(),
            StepObject::Job(job) => job.metadata.name.as_deref(),
        }
    }

    /// The object's kind.
    pub fn kind(&self) -> ObjectKind {
        match self {
            StepObject::Pod(_) => ObjectKind::Pod,
            StepObject::Job(_) => ObjectKind::Job,
        }
    }

    /// The object's labels (and, for a Job, its pod template's) with `key=value` set.
    pub fn set_label(&mut self, key: &str, value: &str) {
        let set = |meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            meta.labels
                .get_or_insert_with(Default::default)
                .insert(key.to_owned(), value.to_owned());
        };
        match self {
            StepObject::Pod(pod) => set(&mut pod.metadata),
            StepObject::Job(job) => {
                set(&mut job.metadata);
                if let Some(spec) = job.spec.as_mut() {
                    set(spec.template.metadata.get_or_insert_with(Default::default));
                }
            }
        }
    }

    /// The value of label `key`, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        let meta = match self {
            StepObject::Pod(pod) => &pod.metadata,
            StepObject::Job(job) => &job.metadata,
        };
        meta.labels.as_ref()?.get(key).map(String::as_str)
    }

    /// Sets env variable `name` of the `main` container to `value` (every
    /// entry of that name; appended when there is none).
    pub fn set_main_env(&mut self, name: &str, value: &str) {
        let spec = match self {
            StepObject::Pod(pod) => pod.spec.as_mut(),
            StepObject::Job(job) => job.spec.as_mut().and_then(|s| s.template.spec.as_mut()),
        };
        let Some(main) = spec.and_then(|s| {
            s.containers
                .iter_mut()
                .find(|c| c.name == crate::observe::MAIN_CONTAINER)
        }) else {
            return;
        };
        let env = main.env.get_or_insert_with(Vec::new);
        let mut found = false;
        for var in env.iter_mut().filter(|v| v.name == name) {
            var.value = Some(value.to_owned());
            var.value_from = None;
            found = true;
        }
        if !found {
            env.push(k8s_openapi::api::core::v1::EnvVar {
                name: name.to_owned(),
                value: Some(value.to_owned()),
                value_from: None,
            });
        }
    }

    /// The value of `main`'s env variable `name`, if it has a literal one.
    pub fn main_env(&self, name: &str) -> Option<&str> {
        let spec = match self {
            StepObject::Pod(pod) => pod.spec.as_ref(),
            StepObject::Job(job) => job.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
        }?;
        let main = spec
            .containers
            .iter()
            .find(|c| c.name == crate::observe::MAIN_CONTAINER)?;
        main.env
            .as_ref()?
            .iter()
            .rev()
            .find(|v| v.name == name)?
            .value
            .as_deref()
    }

    /// The names of the pod's containers as the spec lists them: init
    /// containers (native sidecars, `git-clone`, `c8s-input-N`) in order,
    /// then the regular ones (`main`, sidecars, `artifact-helper`).
    pub fn container_names(&self) -> Vec<String> {
        let spec = match self {
            StepObject::Pod(pod) => pod.spec.as_ref(),
            StepObject::Job(job) => job.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
        };
        let Some(spec) = spec else { return Vec::new() };
        let init = spec.init_containers.iter().flatten();
        init.chain(&spec.containers).map(|c| c.name.clone()).collect()
    }

    /// A copy named `name`.
    pub fn renamed(&self, name: &str) -> StepObject {
        let mut copy = self.clone();
        match &mut copy {
            StepObject::Pod(pod) => pod.metadata.name = Some(name.to_owned()),
            StepObject::Job(job) => job.metadata.name = Some(name.to_owned()),
        }
        copy
    }
}

/// The kinds of object c8s creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ObjectKind {
    /// `v1/Pod`.
    Pod,
    /// `batch/v1/Job`.
    Job,
}

/// A created object: its kind and name in the cluster's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Pod or Job.
    pub kind: ObjectKind,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectRef {
    /// A reference to the object of `kind` called `name`.
    pub fn new(kind: ObjectKind, name: impl Into<String>) -> Self {
        ObjectRef {
            kind,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            ObjectKind::Pod => "pod",
            ObjectKind::Job => "job",
        };
        write!(f, "{kind}/{}", self.name)
    }
}

/// One run record found by [`Cluster::list_records`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ListedRecord {
    /// The run it belongs to (its `c8s.dev/run` label).
    pub run: String,
    /// When it was created (the run's first start).
    pub created_at: Option<Timestamp>,
}

impl ListedRecord {
    /// The record of `run`, created at `created_at`.
    pub fn new(run: impl Into<String>, created_at: Option<Timestamp>) -> Self {
        ListedRecord {
            run: run.into(),
            created_at,
        }
    }
}

/// One object found by [`Cluster::list`], as the reaper needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedObject {
    /// The object.
    pub object: ObjectRef,
    /// Its `c8s.dev/run` label, if any.
    pub run: Option<String>,
    /// Its `metadata.creationTimestamp`.
    pub created_at: Option<Timestamp>,
    /// Whether it has finished: a pod in phase Succeeded/Failed, a Job with a
    /// Complete or Failed condition.
    pub finished: bool,
    /// Whether a Job owns it (deleting the Job deletes it).
    pub owned_by_job: bool,
}

/// One core/v1 Event about an object, as the runner reads it to explain why a
/// pod does not start (`FailedScheduling`, `FailedMount`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEvent {
    /// `Normal` or `Warning`.
    pub type_: String,
    /// The machine-readable reason, e.g. `FailedScheduling`.
    pub reason: String,
    /// The human-readable message.
    pub message: String,
}

/// A stream of observations of one step's pod. An `Err` item means the watch
/// broke; the caller subscribes again.
pub type ObservationStream = BoxStream<'static, Result<PodObservation>>;

/// The changes a run's one watch sees: the pod behind `object` (the pod
/// itself, or a Job's pod) now looks like this; a [`crate::PodPhase::Gone`]
/// observation when it no longer exists. An `Err` item means the watch broke;
/// the caller subscribes again (which relists).
pub type RunWatchStream = BoxStream<'static, Result<(ObjectRef, PodObservation)>>;

/// The item a run watch yields after each list (its first, and every relist
/// after a re-subscription or a 410 Gone): every object of the run that
/// exists was yielded before it. An object name is never empty, so the item
/// cannot be mistaken for an object's. A [`Cluster::watch_run`] that yields it
/// says so with [`Cluster::watch_run_marks_lists`].
pub fn end_of_list() -> (ObjectRef, PodObservation) {
    (ObjectRef::new(ObjectKind::Pod, ""), PodObservation::default())
}

/// Whether a run watch's item is [`end_of_list`].
pub fn is_end_of_list(object: &ObjectRef) -> bool {
    object.name.is_empty()
}

/// A stream of raw log chunks. Raw chunks may hold secrets: they only ever go
/// into a [`crate::LogMasker`].
pub type LogStream = BoxStream<'static, Result<Vec<u8>>>;

/// The operations the scheduler needs from a cluster. All of them act in the
/// implementation's one namespace.
pub trait Cluster: Send + Sync {
    /// Creates `object`, which must carry a name.
    fn create(&self, object: &StepObject) -> impl Future<Output = Result<ObjectRef>> + Send;

    /// Observes the pod behind `object` (the Job's pod for a Job): the current
    /// state first, then every change. The stream yields a
    /// [`crate::PodPhase::Gone`] observation when the pod no longer exists.
    fn observe(&self, object: &ObjectRef) -> impl Future<Output = Result<ObservationStream>> + Send;

    /// Watches every pod of run `run_id` (label `c8s.dev/run=<run_id>`) with
    /// one watch: the current state first, then every change. `None` when the
    /// cluster cannot, and the runner falls back to [`Cluster::observe`] per
    /// object (the default).
    fn watch_run(&self, run_id: &str) -> impl Future<Output = Result<Option<RunWatchStream>>> + Send {
        let _ = run_id;
        std::future::ready(Ok(None))
    }

    /// Whether [`Cluster::watch_run`]'s stream yields [`end_of_list`] after
    /// each list. The runner then reads from the first list whether a run id
    /// is already live (no request of its own) and judges objects missing
    /// from a relist from the cluster; otherwise it lists once. The default
    /// says no.
    fn watch_run_marks_lists(&self) -> bool {
        false
    }

    /// Streams the log of `container` in the pod behind `object`, following it
    /// until the container ends.
    fn logs(&self, object: &ObjectRef, container: &str) -> impl Future<Output = Result<LogStream>> + Send;

    /// Deletes `object` with background propagation and waits until it is gone.
    /// An object that does not exist counts as deleted.
    fn delete(&self, object: &ObjectRef) -> impl Future<Output = Result<()>> + Send;

    /// Requests the deletion of `object` with background propagation and
    /// returns once the API server accepted it: the object may linger for its
    /// grace period (it has a `deletionTimestamp`). An object that does not
    /// exist counts as deleted. The default waits until it is gone
    /// ([`Cluster::delete`]).
    fn start_delete(&self, object: &ObjectRef) -> impl Future<Output = Result<()>> + Send {
        self.delete(object)
    }

    /// The run record of run `run_id` (a small object holding what the run
    /// must not forget: finished steps whose objects are deleted, retries
    /// made), as key/value entries; `None` when there is none. The default
    /// keeps no records (a run cannot be resumed).
    fn load_record(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>>> + Send {
        let _ = run_id;
        std::future::ready(Ok(None))
    }

    /// Creates run `run_id`'s record holding `entries`: `true` when created,
    /// `false` when it already existed (it is left as it was). The default
    /// keeps nothing and says created.
    fn create_record(
        &self,
        run_id: &str,
        entries: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<bool>> + Send {
        let _ = (run_id, entries);
        std::future::ready(Ok(true))
    }

    /// Sets `entries` in run `run_id`'s record, creating it if needed; other
    /// entries are kept.
    fn save_record(
        &self,
        run_id: &str,
        entries: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (run_id, entries);
        std::future::ready(Ok(()))
    }

    /// Deletes run `run_id`'s record (a missing one counts as deleted).
    fn delete_record(&self, run_id: &str) -> impl Future<Output = Result<()>> + Send {
        let _ = run_id;
        std::future::ready(Ok(()))
    }

    /// Every run record in the namespace (for the reaper). The default
    /// finds none, for clusters that keep no records.
    fn list_records(&self) -> impl Future<Output = Result<Vec<ListedRecord>>> + Send {
        std::future::ready(Ok(Vec::new()))
    }

    /// The Events whose `involvedObject` is `object` (oldest first). The
    /// default finds none, for clusters that cannot list Events.
    fn events(&self, object: &ObjectRef) -> impl Future<Output = Result<Vec<ObjectEvent>>> + Send {
        let _ = object;
        std::future::ready(Ok(Vec::new()))
    }

    /// Lists the pods and Jobs matching a label selector such as [`MANAGED_SELECTOR`].
    fn list(&self, label_selector: &str) -> impl Future<Output = Result<Vec<ListedObject>>> + Send;

    /// Lists the objects of `kinds` matching a label selector: a runner
    /// whose steps are all pods lists no Jobs, so it needs no right to
    /// (a service account may create and list pods only). The default lists
    /// every kind and keeps those.
    fn list_kinds(
        &self,
        label_selector: &str,
        kinds: &[ObjectKind],
    ) -> impl Future<Output = Result<Vec<ListedObject>>> + Send {
        async move {
            let listed = self.list(label_selector).await?;
            Ok(listed
                .into_iter()
                .filter(|o| kinds.contains(&o.object.kind))
                .collect())
        }
    }

    /// The cluster's clock: wall time for a real cluster, virtual time in the
    /// simulation. Every timestamp c8s records comes from here.
    fn now(&self) -> Timestamp;
}
