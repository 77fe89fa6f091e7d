//! What every reconcile shares: how the controller runs every run
//! ([`Settings`]), what one reconcile returns ([`Reconciled`]) and how a
//! run's objects are found and counted. The bottom layer of the reconcile:
//! admission, observation and the reconcile itself all read it.

use std::time::Duration;

use c8s_kube::{RUN_LABEL, RetryPolicy};

use crate::crd::PipelineRunStatus;
use crate::steps::RunStep;

/// How the controller runs every run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Runs of one namespace that may be Running at once; later ones stay
    /// Pending with a `Queued` condition.
    pub max_running_per_namespace: usize,
    /// Steps at once when the run does not say.
    pub default_parallelism: usize,
    /// The controller's own retries of a step's infrastructure faults
    /// (image pulls, evictions, lost pods) and their backoff: the budgets
    /// `c8s run` has, spent by the same rule
    /// ([`c8s_kube::RetryPolicy::retry_after`]).
    pub retry: RetryPolicy,
    /// How often a waiting run is looked at again without any event.
    pub poll: Duration,
    /// How long a step's pod may stay unschedulable before the attempt
    /// fails (`c8s run`'s bound too; a cause that will not resolve, such
    /// as a missing claim, fails it at once).
    pub capacity_wait: Duration,
    /// How long a scheduled pod's `main` may take to start (image pulls,
    /// init containers, native sidecars becoming ready) before the attempt
    /// fails naming each waiting container (`c8s run --start-timeout`).
    pub start_timeout: Duration,
    /// Where the logs of steps that ended are archived; `None`: nowhere.
    pub archive: Option<crate::archive::LogArchive>,
    /// Drive only the runs of this namespace, as Argo Workflows'
    /// namespaced install does (`--namespaced`): the watches and every
    /// request stay inside it, so a Role there is all the RBAC it needs and
    /// runs of other namespaces are never touched. `None`: every namespace.
    pub namespace: Option<String>,
    /// Reconciles at once (0: no bound). Each reconcile in flight holds its
    /// run's rendered steps and its requests: unbounded, a burst of runs
    /// held them all at once, and reconciles queued behind the client's
    /// request limit ran past their time limit; bounded, a run waits for a
    /// slot before it renders anything and before its time limit runs.
    /// Freed slots go to the namespaces with waiting runs in turn
    /// (`fair.rs`), so one namespace's thousand runs do not hold up
    /// another namespace's one.
    pub concurrency: u16,
    /// How long a finished run is kept before it is deleted (its pods go
    /// with it, by garbage collection); `None`: kept until someone deletes
    /// it. Kubernetes' TTL-after-finished controller does this for Jobs
    /// (`ttlSecondsAfterFinished`), Argo Workflows with `ttlStrategy`: the
    /// run history is what a cluster and every watch of it hold, so without
    /// a limit it only grows.
    pub finished_run_ttl: Option<Duration>,
    /// Drive only the runs labelled [`INSTANCE_LABEL`] with this value, as
    /// Argo Workflows' `--instanceid` does, so that several controllers
    /// share a cluster (and its namespaces); each then holds a Lease of its
    /// own ([`Settings::lease_name`]) and counts only its own runs against
    /// the namespace limit. `None`: every run.
    pub instance: Option<String>,
    /// Keep a `c8s watch` running for every `ConcoursePipeline`
    /// ([`crate::concourse`]), as these settings say; `None`: Concourse
    /// pipelines are left alone.
    pub concourse: Option<WatcherSettings>,
}

/// The finalizer earlier controllers kept on every run until they had
/// deleted its objects. None is added now (a finalizer costs every run a
/// write, and the garbage collector deletes a run's pods, its dependents,
/// by their owner references); a run that still carries it has it removed
/// when it is deleted.
pub const FINALIZER: &str = "c8s.dev/cleanup";

/// The field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "c8s-controller";

/// How the watchers of `ConcoursePipeline`s run ([`crate::concourse`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherSettings {
    /// The c8s image the watcher's container runs (it has `c8s` as its
    /// entrypoint, as the controller's own image does).
    pub image: String,
    /// Steps of one build at once when the pipeline does not say.
    pub default_parallelism: u32,
}

/// The label that gives a run to the controller of one instance
/// ([`Settings::instance`]).
pub const INSTANCE_LABEL: &str = "c8s.dev/controller-instance";

impl Settings {
    /// The label selector of the runs this controller drives; `None`: all.
    pub fn run_label_selector(&self) -> Option<String> {
        self.instance.as_ref().map(|id| format!("{INSTANCE_LABEL}={id}"))
    }

    /// The name of the leader Lease: `c8s-controller`, or
    /// `c8s-controller-<instance>` for one instance.
    pub fn lease_name(&self) -> String {
        match &self.instance {
            Some(id) => format!("c8s-controller-{id}"),
            None => "c8s-controller".to_owned(),
        }
    }
}

/// [`Settings::concurrency`] by default: well above what the default
/// request limit (100 requests/s) keeps busy when each reconcile makes a
/// few requests.
pub const DEFAULT_CONCURRENCY: u16 = 64;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_running_per_namespace: 10,
            default_parallelism: 8,
            retry: RetryPolicy::default(),
            poll: Duration::from_secs(30),
            capacity_wait: Duration::from_secs(600),
            start_timeout: Duration::from_secs(600),
            archive: None,
            namespace: None,
            concurrency: DEFAULT_CONCURRENCY,
            finished_run_ttl: None,
            instance: None,
            concourse: None,
        }
    }
}

/// An Event to record on a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunEvent {
    /// CamelCase, e.g. `StepFailed`; Warning when it contains `Failed`.
    pub reason: String,
    /// What happened, for a person.
    pub note: String,
    /// The step's pod, recorded as the Event's related object: Events of
    /// one reason on one run are told apart by it (an Event series groups
    /// the Events that agree in reason, action, object and related object,
    /// and keeps the first one's note).
    pub pod: Option<String>,
}

impl RunEvent {
    /// An Event about the run as a whole.
    pub fn run(reason: impl Into<String>, note: impl Into<String>) -> Self {
        RunEvent {
            reason: reason.into(),
            note: note.into(),
            pod: None,
        }
    }
}

/// The result of a reconcile: the status to write, the Events to record
/// and when to look again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reconciled {
    /// The new status (written with server-side apply).
    pub status: PipelineRunStatus,
    /// The Events to record on the run.
    pub events: Vec<RunEvent>,
    /// Look again after this long even if nothing changes (deadlines,
    /// retry backoffs, the queue).
    pub requeue_after: Option<Duration>,
}

/// The label selector of run `run`'s objects: pod-builder writes the run id
/// (the run's name) as a label value, hash-shortened past 63 characters.
pub fn run_selector(run: &str) -> String {
    format!("{RUN_LABEL}={}", c8s_pod_builder::names::label_value(run))
}

/// The most attempts `step` can have: the first, the controller's own
/// retries and the user's.
pub(crate) fn attempt_budget(step: &RunStep, settings: &Settings) -> u32 {
    let limit = step.retries.as_ref().map_or(0, |r| r.limit);
    let retry = &settings.retry;
    1u32.saturating_add(retry.image_pull_retries)
        .saturating_add(retry.disruption_retries)
        .saturating_add(limit)
}
