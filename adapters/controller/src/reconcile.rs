//! One reconcile of one `PipelineRun`, generic over [`Cluster`]: rebuild what
//! every step has done from the run's objects in the cluster (found by the
//! `c8s.dev/run` label) and the run's recorded status, ask the one scheduler
//! ([`c8s_pipeline_model::scheduler::decide`]) what to do, do it, and return
//! the new status. Nothing is kept in memory between calls, so a controller
//! restarted at any point decides what the first one would have.

use std::collections::BTreeMap;
use std::time::Duration;

use c8s_kube::{AttemptFailure, Cluster, ObjectRef, PolicySettings, TerminationReason, attempt_name};
use c8s_pipeline_model::finally::{self, ATTEMPT_ENV, Outcome};
use c8s_pipeline_model::scheduler::{Observed, Policy, RunEnd, Start, StopReason, decide};
use k8s_openapi::jiff::Timestamp;

use crate::admission::admit;
use crate::crd::{
    PipelineRunSpec, PipelineRunStatus, RetriesSpentStatus, RunPhase, StepPhase, StepRunStatus,
};
use crate::error::Error;
use crate::observe::{SeenObject, observe_objects};
use crate::pending::Waiting;
use crate::status::{failed_steps, read_assessment, set_condition, set_object_name};
use crate::steps::{RunStep, RunSteps};

pub use crate::admission::Admission;
pub use crate::settings::{
    DEFAULT_CONCURRENCY, INSTANCE_LABEL, Reconciled, RunEvent, Settings, run_selector,
};

/// The condition that says how a run ends, as Tekton's PipelineRun has it:
/// `Unknown` while it runs, then `True` or `False`.
pub const SUCCEEDED: &str = "Succeeded";

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

/// Reconciles one run: see the module documentation. In order: carry the
/// recorded status over, admit a pending run, observe its objects, rebuild
/// each step's status (spending retries), decide, cancel, skip and start
/// steps, and conclude the run's phase and condition.
pub async fn reconcile_run<C: Cluster>(
    cluster: &C,
    run: &RunView<'_>,
    steps: &RunSteps,
    admission: &Admission,
    settings: &Settings,
) -> Result<Reconciled, Error> {
    let clock = Clock {
        now: cluster.now(),
        started: run.started,
    };
    let mut out = carried_over(run);
    if out.status.phase.is_finished() {
        return Ok(out);
    }
    if out.status.phase == RunPhase::Pending
        && !run.spec.cancelled
        && !admit(steps, admission, settings, &mut out, clock.now)
    {
        return Ok(out);
    }

    let seen = observe_objects(cluster, run.name, steps, settings, &run.status.steps).await?;
    let mut rebuilt = rebuild_steps(cluster, steps, &run.status.steps, &seen, settings, &clock).await?;
    out.events.append(&mut rebuilt.events);
    let mut statuses = rebuilt.statuses;

    let decision = decide(
        &steps.dag,
        &rebuilt.observed,
        &policy(run, steps, settings),
        clock.now_ms(),
    );
    cancel_steps(
        cluster,
        &decision.cancel,
        &seen,
        &mut statuses,
        clock.now,
        &mut out.events,
    )
    .await?;
    skip_steps(&decision.skip, &mut statuses);
    start_steps(
        cluster,
        run,
        steps,
        &decision.start,
        &mut statuses,
        &mut out.events,
    )
    .await?;

    out.status.steps = step_list(steps, statuses);
    if out.status.start_time.is_none() {
        out.status.start_time = Some(run.started.to_string());
    }
    conclude(&mut out, decision.done, decision.wake_at, &clock, settings);
    if let (Some(requeue), Some(pending)) = (out.requeue_after, rebuilt.look_again) {
        out.requeue_after = Some(requeue.min(pending));
    }
    Ok(out)
}

/// The reconcile's clock: now, and the run's start that every time the
/// scheduler sees counts from (in milliseconds).
#[derive(Clone, Copy, Debug)]
struct Clock {
    now: Timestamp,
    started: Timestamp,
}

impl Clock {
    /// `t` in milliseconds since the run started (0 before it).
    fn since_ms(&self, t: Timestamp) -> u64 {
        u64::try_from(t.duration_since(self.started).as_millis()).unwrap_or(0)
    }

    fn now_ms(&self) -> u64 {
        self.since_ms(self.now)
    }

    /// A recorded time in milliseconds since the run started; now when it
    /// is absent or unreadable.
    fn at_ms(&self, t: &Option<String>) -> u64 {
        t.as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map_or(self.now_ms(), |t| self.since_ms(t))
    }
}

/// The recorded status carried into this reconcile, with what the spec
/// says of it (generation, pipeline name).
fn carried_over(run: &RunView<'_>) -> Reconciled {
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
    out
}

/// Every step's status as rebuilt from the cluster and the record, what the
/// scheduler is told of each, and the Events of steps that changed phase.
#[derive(Debug, Default)]
struct Rebuilt {
    statuses: BTreeMap<String, StepRunStatus>,
    observed: BTreeMap<String, Observed>,
    events: Vec<RunEvent>,
    /// The soonest a pod that has not started must be looked at again.
    look_again: Option<Duration>,
}

/// Rebuilds what every step has done ([`rebuild_step`]).
async fn rebuild_steps<C: Cluster>(
    cluster: &C,
    steps: &RunSteps,
    recorded: &[StepRunStatus],
    seen: &BTreeMap<String, SeenObject>,
    settings: &Settings,
    clock: &Clock,
) -> Result<Rebuilt, Error> {
    let previous: BTreeMap<&str, &StepRunStatus> = recorded.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut rebuilt = Rebuilt::default();
    for step in &steps.steps {
        let before = previous.get(step.name.as_str()).copied();
        let mut look_again = None;
        let (status, observed) = rebuild_step(
            cluster,
            step,
            before,
            seen.get(&step.name),
            settings,
            clock,
            &mut look_again,
        )
        .await?;
        rebuilt.look_again = match (rebuilt.look_again, look_again) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(observed) = observed {
            rebuilt.observed.insert(step.name.clone(), observed);
        }
        rebuilt
            .events
            .extend(phase_event(&step.name, before.map(|s| s.phase), &status));
        rebuilt.statuses.insert(step.name.clone(), status);
    }
    Ok(rebuilt)
}

/// One step's status and what the scheduler is told of it, from its latest
/// object (`object`) and its recorded status (`before`). A failed attempt
/// that gets a retry has its pod deleted (the reconcile does not wait).
/// `look_again`: when a pod that has not started must be looked at again
/// (a bound on its wait falls then).
async fn rebuild_step<C: Cluster>(
    cluster: &C,
    step: &RunStep,
    before: Option<&StepRunStatus>,
    object: Option<&SeenObject>,
    settings: &Settings,
    clock: &Clock,
    look_again: &mut Option<Duration>,
) -> Result<(StepRunStatus, Option<Observed>), Error> {
    let mut status = before.cloned().unwrap_or_else(|| StepRunStatus {
        name: step.name.clone(),
        ..StepRunStatus::default()
    });
    let observed = match object {
        // This attempt's failure was counted by an earlier reconcile (its pod
        // is still being deleted): the retry it got stands.
        Some(object) if object.attempt == status.attempt && status.retry_at.is_some() => {
            Some(Observed::Failed {
                attempt: object.attempt,
                retry_at: Some(clock.at_ms(&status.retry_at)),
                errored: true,
            })
        }
        Some(object) => {
            // A pod that waited too long, or for what will not come, ends
            // the attempt as `c8s run` ends it.
            let (ended, wake) = match crate::pending::waiting(cluster, object, settings, clock.now).await {
                Waiting::Ended(assessment) => (Some(assessment), None),
                Waiting::Until(wake) => (None, Some(wake)),
                Waiting::No => (None, None),
            };
            *look_again = wake;
            let assessment = ended.as_ref().unwrap_or(&object.assessment);
            let seen = assess_object(step, object, assessment, settings, clock, &mut status);
            let retried = matches!(
                seen,
                Observed::Failed {
                    retry_at: Some(_),
                    ..
                }
            );
            if retried || ended.is_some() {
                // The failed attempt's pod goes (a pending one must not start
                // later); the reconcile does not wait for it.
                cluster.start_delete(&object.object).await?;
            }
            Some(seen)
        }
        None => recorded_observation(step, settings, clock, &mut status),
    };
    Ok((status, observed))
}

/// The one retry rule of `c8s run` for an attempt of `step` that ended by
/// `fault`: what it spends is recorded in `retries`, and when the next
/// attempt may start in `retry_at`; returns that time in milliseconds since
/// the run started, `None` when no retry is left.
fn spend_retry(
    settings: &Settings,
    step: &RunStep,
    clock: &Clock,
    fault: AttemptFailure,
    attempt: u32,
    retries: &mut RetriesSpentStatus,
    retry_at: &mut Option<String>,
) -> Option<u64> {
    let mut spent = (*retries).into();
    let backoff = settings
        .retry
        .retry_after(&step.name, step.retries.as_ref(), &mut spent, attempt, fault);
    *retries = spent.into();
    let at = backoff.map(|b| clock.now.checked_add(b).unwrap_or(clock.now));
    *retry_at = at.map(|t| t.to_string());
    at.map(|t| clock.since_ms(t))
}

/// What the step's latest object says (`assessment`), written into `status`.
fn assess_object(
    step: &RunStep,
    object: &SeenObject,
    assessment: &c8s_kube::Assessment,
    settings: &Settings,
    clock: &Clock,
    status: &mut StepRunStatus,
) -> Observed {
    // A newer attempt than the recorded retry: that retry is spent.
    let (mut retries, mut retry_at) = (status.retries, None);
    let mut seen = read_assessment(
        assessment,
        object.attempt,
        |fault| {
            spend_retry(
                settings,
                step,
                clock,
                fault,
                object.attempt,
                &mut retries,
                &mut retry_at,
            )
        },
        clock.now_ms(),
        &clock.now.to_string(),
        status,
    );
    (status.retries, status.retry_at) = (retries, retry_at);
    status.attempt = object.attempt;
    set_object_name(status, &object.object);
    if let Observed::Running {
        since: Some(since), ..
    } = &mut seen
    {
        // The step's timeout counts from when it was first seen running, as recorded.
        let started = status.start_time.get_or_insert_with(|| clock.now.to_string());
        *since = started
            .parse::<Timestamp>()
            .map_or(clock.now_ms(), |t| clock.since_ms(t));
    }
    seen
}

/// What a step whose object is gone (or never was) has done: what its
/// status recorded stands, except that a pod that vanished while running is
/// a disruption (retried by the one rule, else the step failed).
fn recorded_observation(
    step: &RunStep,
    settings: &Settings,
    clock: &Clock,
    status: &mut StepRunStatus,
) -> Option<Observed> {
    match status.phase {
        StepPhase::Succeeded => Some(Observed::Succeeded),
        StepPhase::Failed => Some(Observed::Failed {
            attempt: status.attempt,
            retry_at: None,
            errored: errored_reason(&status.reason),
        }),
        StepPhase::Skipped => Some(Observed::Cancelled),
        // Waiting out its retry backoff.
        StepPhase::Running if status.retry_at.is_some() => Some(Observed::Failed {
            attempt: status.attempt,
            retry_at: Some(clock.at_ms(&status.retry_at)),
            errored: true,
        }),
        // Its pod vanished: a disruption.
        StepPhase::Running => {
            let attempt = status.attempt;
            let retry_at = spend_retry(
                settings,
                step,
                clock,
                AttemptFailure::Disruption,
                attempt,
                &mut status.retries,
                &mut status.retry_at,
            );
            status.reason = TerminationReason::Lost.to_string();
            status.message = "its pod disappeared".into();
            if retry_at.is_none() {
                status.phase = StepPhase::Failed;
                status.completion_time = Some(clock.now.to_string());
            }
            Some(Observed::Failed {
                attempt,
                retry_at,
                errored: true,
            })
        }
        StepPhase::Pending => None,
    }
}

/// Whether a step whose recorded reason is `reason` errored rather than
/// failed ([`TerminationReason::errored`]; a reason not read is a failure).
fn errored_reason(reason: &str) -> bool {
    serde_json::from_value::<TerminationReason>(serde_json::Value::String(reason.to_owned()))
        .is_ok_and(TerminationReason::errored)
}

/// The Event of step `name` reaching its final phase in this reconcile
/// (`before`: its recorded phase), if it did.
fn phase_event(name: &str, before: Option<StepPhase>, status: &StepRunStatus) -> Option<RunEvent> {
    if before == Some(status.phase) || status.phase != StepPhase::Failed {
        return None;
    }
    Some(RunEvent {
        reason: "StepFailed".into(),
        note: format!(
            "step {name} failed: {}{} {}",
            status.reason,
            status
                .exit_code
                .map(|c| format!(", exit {c}"))
                .unwrap_or_default(),
            status.message
        )
        .trim_end()
        .to_owned(),
        pod: status.pod.clone(),
    })
}

/// Stops the steps the scheduler cancels: their objects are deleted (not
/// waited for) and their statuses say why.
async fn cancel_steps<C: Cluster>(
    cluster: &C,
    cancel: &[(String, StopReason)],
    seen: &BTreeMap<String, SeenObject>,
    statuses: &mut BTreeMap<String, StepRunStatus>,
    now: Timestamp,
    events: &mut Vec<RunEvent>,
) -> Result<(), Error> {
    for (name, reason) in cancel {
        if let Some(object) = seen.get(name) {
            cluster.start_delete(&object.object).await?;
        }
        if let Some(status) = statuses.get_mut(name) {
            mark_cancelled(status, reason, now);
        }
        events.push(RunEvent {
            reason: "StepCancelled".into(),
            note: format!("step {name} cancelled: {reason}"),
            pod: statuses.get(name).and_then(|s| s.pod.clone()),
        });
    }
    Ok(())
}

/// A step stopped for `reason`: one that ran out of time failed; one
/// stopped for another reason was cancelled.
fn mark_cancelled(status: &mut StepRunStatus, reason: &StopReason, now: Timestamp) {
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

/// Marks the steps that will never start: the rule `c8s run` follows,
/// skipped for a dependency, else cancelled.
fn skip_steps(skip: &[(String, StopReason)], statuses: &mut BTreeMap<String, StepRunStatus>) {
    for (name, reason) in skip {
        if let Some(status) = statuses.get_mut(name) {
            let cancelled = reason.outcome() == Outcome::Cancelled;
            status.phase = StepPhase::Skipped;
            status.reason = if cancelled { "Cancelled" } else { "Skipped" }.into();
            status.message = format!("not run: {reason}");
        }
    }
}

/// Creates the objects of the attempts the scheduler starts; one that
/// exists already (an earlier reconcile created it and lost the answer or
/// the status write) is adopted.
async fn start_steps<C: Cluster>(
    cluster: &C,
    run: &RunView<'_>,
    steps: &RunSteps,
    starts: &[Start],
    statuses: &mut BTreeMap<String, StepRunStatus>,
    events: &mut Vec<RunEvent>,
) -> Result<(), Error> {
    for start in starts {
        let Some(step) = steps.steps.iter().find(|s| s.name == start.step) else {
            continue;
        };
        let name = attempt_name(&step.name, start.attempt);
        let object = attempt_object(run, steps, step, &name, start.attempt, statuses);
        let created = match cluster.create(&object).await {
            Ok(created) => created,
            // Created by an earlier reconcile whose answer or status write was lost: adopt it.
            Err(e) if e.code() == Some(409) => ObjectRef::new(object.kind(), name.clone()),
            // Refused for good (403, 422: e.g. "failed quota: must specify
            // requests.cpu"): the step fails, as `c8s run` fails it
            // (`TerminationReason::Rejected`), instead of a reconcile retried
            // forever. A transient error, or a quota that is full for now,
            // is the reconcile's, retried with backoff.
            Err(e) if !e.is_transient() && !quota_full(&e) => {
                if let Some(status) = statuses.get_mut(&step.name) {
                    mark_rejected(status, start.attempt, &e.to_string(), cluster.now().to_string());
                    events.extend(phase_event(&step.name, None, status));
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(status) = statuses.get_mut(&step.name) {
            mark_started(status, start.attempt, &created);
        }
    }
    Ok(())
}

/// The object of attempt `attempt` (from 0) of `step`, named `name`: its
/// attempt label and env, and for a `finally` step the outcome env.
fn attempt_object(
    run: &RunView<'_>,
    steps: &RunSteps,
    step: &RunStep,
    name: &str,
    attempt: u32,
    statuses: &BTreeMap<String, StepRunStatus>,
) -> c8s_kube::StepObject {
    let mut object = step.object.renamed(name);
    // Label and env count attempts from 1, as `c8s run` and `c8s render` show them.
    let number = (attempt + 1).to_string();
    object.set_label(ATTEMPT_LABEL, &number);
    object.set_main_env(ATTEMPT_ENV, &number);
    if step.finally {
        for (var, value) in outcome_env(run, steps, step, statuses) {
            object.set_main_env(&var, &value);
        }
    }
    object
}

/// A step whose attempt `attempt` now runs as `created`.
/// Whether the API server refused an object because a ResourceQuota is used
/// up for now (403 "exceeded quota"): it may be created once other pods end,
/// so the step waits, as Tekton's TaskRun reconciler keeps a TaskRun whose
/// pod hit an exceeded quota and retries (`isExceededResourceQuotaError`,
/// `pkg/reconciler/taskrun/taskrun.go`). "failed quota: ... must specify"
/// is not this: that pod is refused every time.
pub(crate) fn quota_full(error: &c8s_kube::Error) -> bool {
    error.code() == Some(403) && error.to_string().contains("exceeded quota")
}

/// Attempt `attempt` of a step whose object the API server refused for good.
fn mark_rejected(status: &mut StepRunStatus, attempt: u32, message: &str, now: String) {
    status.phase = StepPhase::Failed;
    status.attempt = attempt;
    status.retry_at = None;
    status.exit_code = None;
    status.reason = TerminationReason::Rejected.to_string();
    status.message = message.to_owned();
    status.completion_time = Some(now);
}

fn mark_started(status: &mut StepRunStatus, attempt: u32, created: &ObjectRef) {
    status.phase = StepPhase::Running;
    status.attempt = attempt;
    status.retry_at = None;
    status.exit_code = None;
    status.reason.clear();
    status.message.clear();
    status.completion_time = None;
    set_object_name(status, created);
}

/// The steps' statuses in the run's order, then the steps the branch rules
/// out, listed so that `kubectl get -o yaml` shows why they never ran.
fn step_list(steps: &RunSteps, mut statuses: BTreeMap<String, StepRunStatus>) -> Vec<StepRunStatus> {
    let mut list: Vec<StepRunStatus> = steps
        .steps
        .iter()
        .filter_map(|s| statuses.remove(&s.name))
        .collect();
    list.extend(steps.skipped.iter().map(|(name, why)| StepRunStatus {
        name: name.clone(),
        phase: StepPhase::Skipped,
        reason: "BranchCondition".into(),
        message: format!("not run: {why}"),
        ..StepRunStatus::default()
    }));
    list
}

/// The run's phase and `Succeeded` condition after the decision: ended
/// (`done`), with its Event, or running, looked at again by `wake_at` (in
/// milliseconds since the run started) or the poll interval.
fn conclude(
    out: &mut Reconciled,
    done: Option<RunEnd>,
    wake_at: Option<u64>,
    clock: &Clock,
    settings: &Settings,
) {
    let now = clock.now;
    match done {
        Some(end) => {
            let (phase, reason, message) = run_end(end, &out.status);
            out.status.phase = phase;
            out.status.completion_time = Some(now.to_string());
            let value = if phase == RunPhase::Succeeded {
                "True"
            } else {
                "False"
            };
            set_condition(&mut out.status, SUCCEEDED, value, reason, &message, now);
            // A run that succeeded is no Event (its condition says so, and an
            // Event is a write per run); every other end is one.
            if phase != RunPhase::Succeeded {
                out.events.push(RunEvent::run(format!("Run{reason}"), message));
            }
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
            let now_ms = clock.now_ms();
            let wake = wake_at.map(|at| Duration::from_millis(at.saturating_sub(now_ms)));
            out.requeue_after = Some(wake.map_or(settings.poll, |w| w.min(settings.poll)));
        }
    }
}

/// The phase, condition reason and message of a run that ended so
/// (`status`: its steps, for the failures a failed run names).
fn run_end(end: RunEnd, status: &PipelineRunStatus) -> (RunPhase, &'static str, String) {
    match end {
        // A run with an outcome rule (a Concourse build's) may succeed
        // with a failed step (under `try`, or handled by a hook).
        RunEnd::Succeeded if status.steps.iter().any(|s| s.phase == StepPhase::Failed) => (
            RunPhase::Succeeded,
            "Succeeded",
            format!("the run's plan succeeded; {}", failed_steps(status)),
        ),
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
        _ => (RunPhase::Failed, "Failed", failed_steps(status)),
    }
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

/// The label holding an object's attempt number, from 1.
pub const ATTEMPT_LABEL: &str = c8s_pipeline_model::finally::ATTEMPT_LABEL;

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
        outcome: steps.outcome.clone(),
        ..PolicySettings::new(&settings.retry)
    };
    c8s_kube::policy(&steps.steps, &settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_used_up_for_now_waits_and_a_pod_a_quota_refuses_always_fails() {
        let refused = |message: &str| c8s_kube::Error::api("create pod", "p", 403, message);
        // The API server's words (kube-apiserver's ResourceQuota admission).
        assert!(quota_full(&refused(
            "pods \"p\" is forbidden: exceeded quota: small, requested: requests.cpu=2, used: requests.cpu=1, limited: requests.cpu=2"
        )));
        assert!(!quota_full(&refused(
            "pods \"p\" is forbidden: failed quota: roomy: must specify requests.cpu for: main"
        )));
        assert!(!quota_full(&c8s_kube::Error::api(
            "create pod",
            "p",
            422,
            "exceeded quota"
        )));
    }

    fn at(t: &str) -> Timestamp {
        t.parse().expect("a timestamp")
    }

    fn clock() -> Clock {
        Clock {
            now: at("2026-01-01T00:01:00Z"),
            started: at("2026-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn the_clock_counts_from_the_runs_start_and_reads_records() {
        let clock = clock();
        assert_eq!(clock.now_ms(), 60_000);
        assert_eq!(clock.since_ms(at("2025-12-31T23:59:00Z")), 0);
        assert_eq!(clock.at_ms(&Some("2026-01-01T00:00:02Z".into())), 2_000);
        assert_eq!(clock.at_ms(&Some("not a time".into())), 60_000);
        assert_eq!(clock.at_ms(&None), 60_000);
    }

    #[test]
    fn only_a_change_to_failed_is_a_step_event_and_it_names_the_pod() {
        let mut status = StepRunStatus {
            name: "unit".into(),
            phase: StepPhase::Failed,
            reason: "Error".into(),
            pod: Some("shop-1-unit-a0".into()),
            ..StepRunStatus::default()
        };
        assert_eq!(
            phase_event("unit", Some(StepPhase::Running), &status),
            Some(RunEvent {
                reason: "StepFailed".into(),
                note: "step unit failed: Error".into(),
                pod: Some("shop-1-unit-a0".into()),
            })
        );
        assert_eq!(phase_event("unit", Some(StepPhase::Failed), &status), None);
        status.phase = StepPhase::Running;
        assert_eq!(phase_event("unit", None, &status), None);
        // A success is in the status (its completion time), not an Event:
        // one Event per step transition would cost a write each.
        status.phase = StepPhase::Succeeded;
        assert_eq!(phase_event("unit", Some(StepPhase::Running), &status), None);
    }

    #[test]
    fn a_timed_out_step_failed_and_one_stopped_otherwise_was_cancelled() {
        let now = clock().now;
        let mut status = StepRunStatus::default();
        mark_cancelled(&mut status, &StopReason::StepTimeout, now);
        assert_eq!(
            (status.phase, status.reason.as_str()),
            (StepPhase::Failed, "DeadlineExceeded")
        );
        mark_cancelled(&mut status, &StopReason::RunCancelled, now);
        assert_eq!(
            (status.phase, status.reason.as_str()),
            (StepPhase::Skipped, "Cancelled")
        );
        assert_eq!(status.message, "stopped: the run was cancelled");
        assert_eq!(status.completion_time, Some(now.to_string()));

        let mut statuses = BTreeMap::from([("b".to_owned(), StepRunStatus::default())]);
        skip_steps(&[("b".into(), StopReason::Dependency("a".into()))], &mut statuses);
        assert_eq!(statuses["b"].reason, "Skipped");
    }

    #[test]
    fn a_started_attempt_forgets_the_previous_ones_result() {
        let mut status = StepRunStatus {
            phase: StepPhase::Failed,
            exit_code: Some(1),
            reason: "Error".into(),
            retry_at: Some("2026-01-01T00:00:00Z".into()),
            ..StepRunStatus::default()
        };
        mark_started(
            &mut status,
            1,
            &ObjectRef::new(c8s_kube::ObjectKind::Pod, "unit-a1"),
        );
        assert_eq!(status.phase, StepPhase::Running);
        assert_eq!(
            (status.attempt, status.exit_code, status.retry_at),
            (1, None, None)
        );
        assert!(status.reason.is_empty());
        assert_eq!(status.pod.as_deref(), Some("unit-a1"));
    }

    #[test]
    fn a_run_ends_with_its_phase_condition_and_event_or_runs_on_until_the_next_wake() {
        let clock = clock();
        let settings = Settings::default();
        let mut out = Reconciled::default();
        conclude(&mut out, Some(RunEnd::TimedOut), None, &clock, &settings);
        assert_eq!(out.status.phase, RunPhase::Failed);
        assert_eq!(
            out.events,
            vec![RunEvent::run(
                "RunPipelineRunTimeout",
                "the run's timeout ran out"
            )]
        );
        assert_eq!(out.status.conditions[0].status, "False");

        let mut out = Reconciled::default();
        conclude(&mut out, None, Some(65_000), &clock, &settings);
        assert_eq!(out.status.phase, RunPhase::Running);
        assert_eq!(out.requeue_after, Some(Duration::from_secs(5)));
        conclude(&mut out, None, None, &clock, &settings);
        assert_eq!(out.requeue_after, Some(settings.poll));
        assert_eq!(run_end(RunEnd::Succeeded, &out.status).0, RunPhase::Succeeded);
        assert_eq!(run_end(RunEnd::Succeeded, &out.status).2, "every step succeeded");
        // A Concourse build that succeeded with a task failed under `try`
        // does not say every step succeeded.
        out.status.steps.push(StepRunStatus {
            name: "flaky-lint".into(),
            phase: StepPhase::Failed,
            reason: "Error".into(),
            exit_code: Some(1),
            ..StepRunStatus::default()
        });
        let (phase, _, message) = run_end(RunEnd::Succeeded, &out.status);
        assert_eq!(phase, RunPhase::Succeeded);
        assert_eq!(
            message,
            "the run's plan succeeded; failed steps: flaky-lint (Error, exit 1)"
        );
    }
}
