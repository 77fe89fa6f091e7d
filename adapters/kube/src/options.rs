//! What a caller hands to [`crate::run_pipeline`]: steps and options.

use std::sync::Arc;
use std::time::Duration;

use c8s_pipeline_model::Retries;
use c8s_pipeline_model::scheduler::Condition;

use crate::cluster::StepObject;
use crate::logs::LogOptions;
use crate::outcome::StepStatus;
use crate::retry::RetryPolicy;

/// One step of a pipeline: a name, the steps it depends on, the object to create.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Step {
    /// The step's name, unique in the pipeline.
    pub name: String,
    /// The steps that must succeed before this one starts.
    pub depends_on: Vec<String>,
    /// The Pod or Job to create (it must carry `metadata.name`).
    pub object: StepObject,
    /// How long the step may take once it is no longer waiting for capacity.
    pub timeout: Option<Duration>,
    /// A `finally` step: it starts once every other step has finished,
    /// whatever their outcome, also after a failure or a cancel.
    pub finally: bool,
    /// For a `finally` step: env variables of `main` to fill with the final
    /// state of a step (`(variable, step name)`); a step not in the run is
    /// `Skipped`. `C8S_RUN_STATUS` is always filled.
    pub outcome_env: Vec<(String, String)>,
    /// The user's retries of the step, apart from the runner's own
    /// retries of transient faults (which come first).
    pub retries: Option<Retries>,
    /// The condition over how other steps (by name) ended under which it
    /// runs, if any ([`c8s_pipeline_model::scheduler::Policy::conditions`]):
    /// it is then not skipped because a dependency failed.
    pub condition: Option<Condition>,
}

impl Step {
    /// A step called `name` that creates `object`, with no dependencies and no timeout.
    pub fn new(name: impl Into<String>, object: StepObject) -> Self {
        Step {
            name: name.into(),
            depends_on: Vec::new(),
            object,
            timeout: None,
            finally: false,
            outcome_env: Vec::new(),
            retries: None,
            condition: None,
        }
    }

    /// This step, run under `condition`.
    pub fn with_condition(mut self, condition: Condition) -> Self {
        self.condition = Some(condition);
        self
    }

    /// This step as a `finally` step that sees the outcomes of `steps` as
    /// `C8S_STEP_<NAME>_STATUS` (and the run's as `C8S_RUN_STATUS`).
    pub fn finally<I, S>(mut self, steps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.finally = true;
        self.outcome_env = steps
            .into_iter()
            .map(|s| {
                let s = s.into();
                (c8s_pipeline_model::finally::step_status_env(&s), s)
            })
            .collect();
        self
    }

    /// This step with the user's retries.
    pub fn with_retries(mut self, retries: Retries) -> Self {
        self.retries = Some(retries);
        self
    }

    /// This step, starting after `steps` succeeded.
    pub fn after<I, S>(mut self, steps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.depends_on.extend(steps.into_iter().map(Into::into));
        self
    }

    /// This step with a timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// What happens to the rest of the run when a step fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailureMode {
    /// Cancel and delete running steps, cancel the steps not started (the default).
    #[default]
    FailFast,
    /// Keep going; only the dependents of a failed step are skipped.
    ContinueOnFailure,
}

/// Called with a step's status every time it changes (live progress).
pub type ProgressFn = Arc<dyn Fn(&StepStatus) + Send + Sync>;

/// How a run behaves.
#[derive(Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// The run's id: the `c8s.dev/run` label set on every object.
    pub run_id: String,
    /// At most this many steps at once; 0 means no limit.
    pub parallelism: usize,
    /// Fail fast (default) or continue on failure.
    pub failure_mode: FailureMode,
    /// The whole run's deadline.
    pub timeout: Option<Duration>,
    /// Retries of transient faults.
    pub retry: RetryPolicy,
    /// Log streaming; `None` streams no logs.
    pub logs: Option<LogOptions>,
    /// Keep finished pods (for debugging); legacy-mode pods are deleted anyway.
    pub keep_pods: bool,
    /// Live progress.
    pub on_progress: Option<ProgressFn>,
    /// How long an unschedulable pod counts as "waiting for capacity" before
    /// the step fails (default 10 minutes).
    pub capacity_wait: Duration,
    /// How long a scheduled pod may take until `main` runs (image pulls,
    /// volume mounts, init containers, sidecars that must start first) before
    /// the step fails naming what it waits for (default 10 minutes).
    pub start_timeout: Duration,
    /// Client-side rate limit: API requests per second on average (creates,
    /// deletes, lists, Event reads; default 50, 0 = none).
    pub max_requests_per_second: u32,
    /// How many requests may go at once before the rate limit applies (default 100).
    pub request_burst: u32,
    /// Continue the run of this id where an earlier runner stopped (its state
    /// is read back from the cluster); without it, a run id that already has
    /// a run record is refused ([`crate::Error::RunExists`]).
    pub resume: bool,
    /// When the run succeeded, over how its steps (by name) ended; `None`:
    /// when every step succeeded
    /// ([`c8s_pipeline_model::scheduler::Policy::outcome`]).
    pub outcome: Option<Condition>,
    /// Where each attempt's masked logs are archived when it ends; `None`:
    /// nowhere. Only logs that are streamed ([`RunOptions::logs`]) are
    /// archived.
    pub archive: Option<crate::log_archive::ArchiveOptions>,
    /// This call runs a part of the run, and a later call with
    /// [`RunOptions::resume`] runs the rest (a Concourse job whose task file
    /// is read from an artifact once the steps before it ran): the run
    /// record is kept at the end, with every step's end in it, so the next
    /// call neither runs a step again nor refuses the run id.
    pub continued: bool,
    /// Steps (by name) that cannot run, each with why: when one would start,
    /// it ends errored (`Rejected`, with the reason) and no object is
    /// created — a Concourse task whose `file:` could not be read from its
    /// artifact, which Concourse's task step errors on.
    pub unrunnable: std::collections::BTreeMap<String, String>,
}

impl RunOptions {
    /// Defaults for run `run_id`: no parallelism limit, fail fast, no timeout,
    /// default retries, no logs.
    pub fn new(run_id: impl Into<String>) -> Self {
        RunOptions {
            run_id: run_id.into(),
            parallelism: 0,
            failure_mode: FailureMode::FailFast,
            timeout: None,
            retry: RetryPolicy::default(),
            logs: None,
            keep_pods: false,
            on_progress: None,
            capacity_wait: Duration::from_secs(600),
            start_timeout: Duration::from_secs(600),
            max_requests_per_second: 50,
            request_burst: 100,
            resume: false,
            outcome: None,
            archive: None,
            continued: false,
            unrunnable: std::collections::BTreeMap::new(),
        }
    }

    /// Step `step` cannot run, for `reason` ([`RunOptions::unrunnable`]).
    pub fn unrunnable(mut self, step: impl Into<String>, reason: impl Into<String>) -> Self {
        self.unrunnable.insert(step.into(), reason.into());
        self
    }

    /// Runs a part of the run, continued by a later resumed call
    /// ([`RunOptions::continued`]).
    pub fn continued(mut self, continued: bool) -> Self {
        self.continued = continued;
        self
    }

    /// With the run's result given by `outcome`.
    pub fn outcome(mut self, outcome: Option<Condition>) -> Self {
        self.outcome = outcome;
        self
    }

    /// Resumes the run of this id if an earlier runner left it unfinished.
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// With a bound on waiting for capacity.
    pub fn capacity_wait(mut self, wait: Duration) -> Self {
        self.capacity_wait = wait;
        self
    }

    /// With a client-side rate limit (`qps == 0`: none).
    pub fn rate_limit(mut self, qps: u32, burst: u32) -> Self {
        self.max_requests_per_second = qps;
        self.request_burst = burst;
        self
    }

    /// With a bound on a scheduled pod's start.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// With a parallelism cap (0 = none).
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n;
        self
    }

    /// With a failure mode.
    pub fn failure_mode(mut self, mode: FailureMode) -> Self {
        self.failure_mode = mode;
        self
    }

    /// With a whole-run timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// With a retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// With each attempt's logs archived when it ends.
    pub fn archive(mut self, archive: Option<crate::log_archive::ArchiveOptions>) -> Self {
        self.archive = archive;
        self
    }

    /// With log streaming.
    pub fn logs(mut self, logs: LogOptions) -> Self {
        self.logs = Some(logs);
        self
    }

    /// With a progress callback.
    pub fn on_progress(mut self, f: ProgressFn) -> Self {
        self.on_progress = Some(f);
        self
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("run_id", &self.run_id)
            .field("parallelism", &self.parallelism)
            .field("failure_mode", &self.failure_mode)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("logs", &self.logs)
            .field("keep_pods", &self.keep_pods)
            .field("capacity_wait", &self.capacity_wait)
            .field("start_timeout", &self.start_timeout)
            .field("max_requests_per_second", &self.max_requests_per_second)
            .field("request_burst", &self.request_burst)
            .field("resume", &self.resume)
            .field("outcome", &self.outcome)
            .finish()
    }
}
