//! One reconcile of one `PipelineRun`, generic over [`Cluster`]: rebuild what
//! every step has done from the run's objects in the cluster (found by the
//! `c8s.dev/run` label) and the run's recorded status, ask the one scheduler
//! ([`c8s_pipeline_model::scheduler::decide`]) what to do, do it, and return
//! the new status. Nothing is kept in memory between calls, so a controller
//! restarted at any point decides what the first one would have.

use std::collections::BTreeMap;
use std::time::Duration;

use c8s_kube::{
    AttemptFailure, Cluster, ObjectRef, PolicySettings, RUN_LABEL, RetryPolicy, TerminationReason,
    attempt_name,
};
use c8s_pipeline_model::finally::{self, ATTEMPT_ENV, Outcome};
use c8s_pipeline_model::scheduler::{Observed, Policy, RunEnd, decide};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{
    PipelineRunSpec, PipelineRunStatus, RetriesSpentStatus, RunPhase, StepPhase, StepRunStatus,
};
use crate::error::Error;
use crate::observe::observe_objects;
use crate::status::{failed_steps, read_assessment, set_condition, set_object_name};
use crate::steps::{RunStep, RunSteps};

pub use crate::admission::Admission;
use crate::admission::admit;

/// The condition that says how a run ends, as Tekton's PipelineRun has it:
/// `Unknown` while it runs, then `True` or `False`.
pub const SUCCEEDED: &str = "Succeeded";

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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_running_per_namespace: 10,
            default_parallelism: 8,
            retry: RetryPolicy::default(),
            poll: Duration::from_secs(30),
        }
    }
}

/// The run as the reconcile sees it.
#[derive(Clone, Debug)]
pub struct RunView<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// When the run started, the origin of every deadline: its recorded
    /// `status.startTime`, or now for a run that has not started
    /// ([`started_at`]). Never `metadata.creationTimestamp`: time spent
    /// queued behind the namespace's limit or a quota is not run time.
    pub started: Timestamp,
    /// The spec.
    pub spec: &'a PipelineRunSpec,
    /// The status recorded so far.
    pub status: &'a PipelineRunStatus,
}

/// The result of a reconcile: the status to write, the Events to record
/// (reason, message) and when to look again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reconciled {
    /// The new status (written with server-side apply).
    pub status: PipelineRunStatus,
    /// `(reason, message)` of each Event to record on the run.
    pub events: Vec<(String, String)>,
    /// Look again after this long even if nothing changes (deadlines,
    /// retry backoffs, the queue).
    pub requeue_after: Option<Duration>,
}

/// Reconciles one run: see the module documentation.
pub async fn reconcile_run<C: Cluster>(
    cluster: &C,
    run: &RunView<'_>,
    steps: &RunSteps,
    admission: &Admission,
    settings: &Settings,
) -> Result<Reconciled, Error> {
    let now = cluster.now();
    let mut out = Reconciled {
        status: run.status.clone(),
        ..Reconciled::default()
    };
    out.status.observed_generation = run.generation;
    out.status.pipeline = run
        .spec
        .pipeline_ref
        .clone()
        .or_else(|| run.spec.pipeline.as_ref().map(|p| p.name.clone()))
        .unwrap_or_default();
    if out.status.phase.is_finished() {
        return Ok(out);
    }
    if out.status.phase == RunPhase::Pending
        && !run.spec.cancelled
        && !admit(steps, admission, settings, &mut out, now)
    {
        return Ok(out);
    }

    let observed_objects = observe_objects(cluster, run.name, steps, settings, &run.status.steps).await?;
    let since_ms = |t: Timestamp| u64::try_from(t.duration_since(run.started).as_millis()).unwrap_or(0);
    let now_ms = since_ms(now);
    let previous: BTreeMap<&str, &StepRunStatus> =
        run.status.steps.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut statuses: BTreeMap<String, StepRunStatus> = BTreeMap::new();
    let mut observed: BTreeMap<String, Observed> = BTreeMap::new();
    for step in &steps.steps {
        let mut status = previous
            .get(step.name.as_str())
            .map(|s| (*s).clone())
            .unwrap_or_else(|| StepRunStatus {
                name: step.name.clone(),
                ..StepRunStatus::default()
            });
        let at_ms = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map_or(now_ms, since_ms)
        };
        // The one retry rule of `c8s run`; what it spends is recorded, and
        // when the next attempt may start.
        let retry = |fault, attempt, retries: &mut RetriesSpentStatus, retry_at: &mut Option<String>| {
            let mut spent = (*retries).into();
            let backoff =
                settings
                    .retry
                    .retry_after(&step.name, step.retries.as_ref(), &mut spent, attempt, fault);
            *retries = spent.into();
            let at = backoff.map(|b| now.checked_add(b).unwrap_or(now));
            *retry_at = at.map(|t| t.to_string());
            at.map(since_ms)
        };
        let seen = match observed_objects.get(&step.name) {
            // This attempt's failure was counted by an earlier reconcile (its pod
            // is still being deleted): the retry it got stands.
            Some(object) if object.attempt == status.attempt && status.retry_at.is_some() => {
                Some(Observed::Failed {
                    attempt: object.attempt,
                    retry_at: Some(at_ms(&status.retry_at)),
                })
            }
            Some(object) => {
                // A newer attempt than the recorded retry: that retry is spent.
                let (mut retries, mut retry_at) = (status.retries, None);
                let mut seen = read_assessment(
                    &object.assessment,
                    object.attempt,
                    |fault| retry(fault, object.attempt, &mut retries, &mut retry_at),
                    now_ms,
                    &now.to_string(),
                    &mut status,
                );
                (status.retries, status.retry_at) = (retries, retry_at);
                status.attempt = object.attempt;
                set_object_name(&mut status, &object.object);
                if let Observed::Running {
                    since: Some(since), ..
                } = &mut seen
                {
                    // The step's timeout counts from when it was first seen running, as recorded.
                    let started = status.start_time.get_or_insert_with(|| now.to_string());
                    *since = started.parse::<Timestamp>().map_or(now_ms, since_ms);
                }
                if matches!(
                    seen,
                    Observed::Failed {
                        retry_at: Some(_),
                        ..
                    }
                ) {
                    // The failed attempt's pod goes; the reconcile does not wait for it.
                    cluster.start_delete(&object.object).await?;
                }
                Some(seen)
            }
            // Its object is gone: what the status recorded stands.
            None => match status.phase {
                StepPhase::Succeeded => Some(Observed::Succeeded),
                StepPhase::Failed => Some(Observed::Failed {
                    attempt: status.attempt,
                    retry_at: None,
                }),
                StepPhase::Skipped => Some(Observed::Cancelled),
                // Waiting out its retry backoff.
                StepPhase::Running if status.retry_at.is_some() => Some(Observed::Failed {
                    attempt: status.attempt,
                    retry_at: Some(at_ms(&status.retry_at)),
                }),
                // Its pod vanished: a disruption.
                StepPhase::Running => {
                    let attempt = status.attempt;
                    let retry_at = retry(
                        AttemptFailure::Disruption,
                        attempt,
                        &mut status.retries,
                        &mut status.retry_at,
                    );
                    status.reason = TerminationReason::Lost.to_string();
                    status.message = "its pod disappeared".into();
                    if retry_at.is_none() {
                        status.phase = StepPhase::Failed;
                        status.completion_time = Some(now.to_string());
                    }
                    Some(Observed::Failed { attempt, retry_at })
                }
                StepPhase::Pending => None,
            },
        };
        if let Some(seen) = seen {
            observed.insert(step.name.clone(), seen);
        }
        let before = previous.get(step.name.as_str()).map(|s| s.phase);
        if before != Some(status.phase) {
            match status.phase {
                StepPhase::Succeeded => out
                    .events
                    .push(("StepSucceeded".into(), format!("step {} succeeded", step.name))),
                StepPhase::Failed => out.events.push((
                    "StepFailed".into(),
                    format!("step {} failed: {} {}", step.name, status.reason, status.message)
                        .trim_end()
                        .to_owned(),
                )),
                _ => {}
            }
        }
        statuses.insert(step.name.clone(), status);
    }

    let policy = policy(run, steps, settings);
    let decision = decide(&steps.dag, &observed, &policy, now_ms);
    for (name, reason) in &decision.cancel {
        if let Some(object) = observed_objects.get(name) {
            cluster.start_delete(&object.object).await?;
        }
        if let Some(status) = statuses.get_mut(name) {
            // A step that ran out of time failed; one stopped for another reason was cancelled.
            let timed_out = reason.outcome() == Outcome::Failed;
            status.phase = if timed_out {
                StepPhase::Failed
            } else {
                StepPhase::Skipped
            };
            status.reason = if timed_out {
                "DeadlineExceeded"
            } else {
                "Cancelled"
            }
            .into();
            status.message = format!("stopped: {reason}");
            status.completion_time = Some(now.to_string());
        }
        out.events
            .push(("StepCancelled".into(), format!("step {name} cancelled: {reason}")));
    }
    for (name, reason) in &decision.skip {
        if let Some(status) = statuses.get_mut(name) {
            // The rule `c8s run` follows: skipped for a dependency, else cancelled.
            let cancelled = reason.outcome() == Outcome::Cancelled;
            status.phase = StepPhase::Skipped;
            status.reason = if cancelled { "Cancelled" } else { "Skipped" }.into();
            status.message = format!("not run: {reason}");
        }
    }
    for start in &decision.start {
        let Some(step) = steps.steps.iter().find(|s| s.name == start.step) else {
            continue;
        };
        let name = attempt_name(&step.name, start.attempt);
        let mut object = step.object.renamed(&name);
        // Label and env count attempts from 1, as `c8s run` and `c8s render` show them.
        let number = (start.attempt + 1).to_string();
        object.set_label(ATTEMPT_LABEL, &number);
        object.set_main_env(ATTEMPT_ENV, &number);
        if step.finally {
            for (var, value) in outcome_env(run, steps, step, &statuses) {
                object.set_main_env(&var, &value);
            }
        }
        let created = match cluster.create(&object).await {
            Ok(created) => created,
            // Created by an earlier reconcile whose answer or status write was lost: adopt it.
            Err(e) if e.code() == Some(409) => ObjectRef::new(object.kind(), name.clone()),
            Err(e) => return Err(e.into()),
        };
        if let Some(status) = statuses.get_mut(&step.name) {
            status.phase = StepPhase::Running;
            status.attempt = start.attempt;
            status.retry_at = None;
            status.exit_code = None;
            status.reason.clear();
            status.message.clear();
            status.completion_time = None;
            set_object_name(status, &created);
        }
        out.events.push((
            "StepStarted".into(),
            format!(
                "step {} attempt {} started as {created}",
                step.name, start.attempt
            ),
        ));
    }

    out.status.steps = steps
        .steps
        .iter()
        .filter_map(|s| statuses.remove(&s.name))
        .collect();
    // Steps the branch rules out are listed too, so `kubectl get -o yaml` shows why they never ran.
    out.status
        .steps
        .extend(steps.skipped.iter().map(|(name, why)| StepRunStatus {
            name: name.clone(),
            phase: StepPhase::Skipped,
            reason: "BranchCondition".into(),
            message: format!("not run: {why}"),
            ..StepRunStatus::default()
        }));
    if out.status.start_time.is_none() {
        out.status.start_time = Some(run.started.to_string());
    }
    match decision.done {
        Some(end) => {
            let (phase, reason, message) = match end {
                RunEnd::Succeeded => (
                    RunPhase::Succeeded,
                    "Succeeded",
                    "every step succeeded".to_owned(),
                ),
                RunEnd::Cancelled => (
                    RunPhase::Cancelled,
                    "Cancelled",
                    "the run was cancelled".to_owned(),
                ),
                RunEnd::TimedOut => (
                    RunPhase::Failed,
                    "PipelineRunTimeout",
                    "the run's timeout ran out".to_owned(),
                ),
                _ => (RunPhase::Failed, "Failed", failed_steps(&out.status)),
            };
            out.status.phase = phase;
            out.status.completion_time = Some(now.to_string());
            set_condition(
                &mut out.status,
                SUCCEEDED,
                if phase == RunPhase::Succeeded {
                    "True"
                } else {
                    "False"
                },
                reason,
                &message,
                now,
            );
            out.events.push((format!("Run{reason}"), message));
        }
        None => {
            out.status.phase = RunPhase::Running;
            set_condition(
                &mut out.status,
                SUCCEEDED,
                "Unknown",
                "Running",
                "steps are running",
                now,
            );
            let wake = decision
                .wake_at
                .map(|at| Duration::from_millis(at.saturating_sub(now_ms)));
            out.requeue_after = Some(wake.map_or(settings.poll, |w| w.min(settings.poll)));
        }
    }
    Ok(out)
}

/// When a run with `status` started: its `startTime`, or `now` if it has
/// none yet (or it cannot be read).
pub fn started_at(status: &PipelineRunStatus, now: Timestamp) -> Timestamp {
    status
        .start_time
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(now)
}

/// The label selector of run `run`'s objects: pod-builder writes the run id
/// (the run's name) as a label value, hash-shortened past 63 characters.
pub fn run_selector(run: &str) -> String {
    format!("{RUN_LABEL}={}", c8s_pod_builder::names::label_value(run))
}

/// The label holding an object's attempt number, from 1.
pub const ATTEMPT_LABEL: &str = c8s_pipeline_model::finally::ATTEMPT_LABEL;

/// The most attempts `step` can have: the first, the controller's own
/// retries and the user's.
pub(crate) fn attempt_budget(step: &RunStep, settings: &Settings) -> u32 {
    let limit = step.retries.as_ref().map_or(0, |r| r.limit);
    let retry = &settings.retry;
    1u32.saturating_add(retry.image_pull_retries)
        .saturating_add(retry.disruption_retries)
        .saturating_add(limit)
}

/// The outcome env of a `finally` step as it starts
/// ([`finally::outcome_env`], the rule `c8s run` follows): the run's outcome
/// so far and each other step's. Steps a branch condition left out are not
/// in the run (a step watching one reads `Skipped`).
fn outcome_env(
    run: &RunView<'_>,
    steps: &RunSteps,
    step: &RunStep,
    statuses: &BTreeMap<String, StepRunStatus>,
) -> Vec<(String, String)> {
    let outcome = |name: &str| match statuses.get(name) {
        None => Outcome::Skipped,
        Some(s) => match s.phase {
            StepPhase::Succeeded => Outcome::Succeeded,
            StepPhase::Failed => Outcome::Failed,
            StepPhase::Skipped if s.reason == "Cancelled" => Outcome::Cancelled,
            StepPhase::Skipped => Outcome::Skipped,
            StepPhase::Running | StepPhase::Pending => Outcome::Unknown,
        },
    };
    let run_steps = steps
        .steps
        .iter()
        .filter(|s| !s.finally)
        .map(|s| outcome(&s.name));
    finally::outcome_env(run.spec.cancelled, run_steps, &step.outcome_env, outcome)
}

/// The scheduler's policy for this run ([`c8s_kube::policy`], the one
/// `c8s run` uses); times in milliseconds since the run started.
fn policy(run: &RunView<'_>, steps: &RunSteps, settings: &Settings) -> Policy {
    let parallelism = run
        .spec
        .parallelism
        .filter(|p| *p > 0)
        .map_or(settings.default_parallelism, |p| p as usize);
    let settings = PolicySettings {
        parallelism,
        fail_fast: !run.spec.continue_on_failure,
        run_timeout: steps.timeout,
        cancelled: run.spec.cancelled,
        ..PolicySettings::new(&settings.retry)
    };
    c8s_kube::policy(&steps.steps, &settings)
}
