//! One reconcile of one `PipelineRun`, generic over [`Cluster`]: rebuild what
//! every step has done from the run's objects in the cluster (found by the
//! `c8s.dev/run` label) and the run's recorded status, ask the one scheduler
//! ([`c8s_pipeline_model::scheduler::decide`]) what to do, do it, and return
//! the new status. Nothing is kept in memory between calls, so a controller
//! restarted at any point decides what the first one would have.

use std::collections::BTreeMap;
use std::time::Duration;

use c8s_kube::{Cluster, ObjectRef, RUN_LABEL, attempt_name};
use c8s_pipeline_model::RetryCause;
use c8s_pipeline_model::finally::{ATTEMPT_ENV, RUN_STATUS_ENV};
use c8s_pipeline_model::scheduler::{Observed, Policy, RunEnd, StopReason, decide};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{PipelineRunSpec, PipelineRunStatus, RunPhase, StepPhase, StepRunStatus};
use crate::error::Error;
use crate::observe::observe_objects;
use crate::status::{failed_steps, read_assessment, set_condition, set_object_name};
use crate::steps::{RunStep, RunSteps};

pub use crate::admission::Admission;
use crate::admission::admit;

/// How the controller runs every run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Runs of one namespace that may be Running at once; later ones stay
    /// Pending with a `Queued` condition.
    pub max_running_per_namespace: usize,
    /// Steps at once when the run does not say.
    pub default_parallelism: usize,
    /// Attempts per step, the first included (retries are for evictions,
    /// image pull failures and lost pods only).
    pub max_attempts: u32,
    /// How often a waiting run is looked at again without any event.
    pub poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_running_per_namespace: 10,
            default_parallelism: 8,
            max_attempts: 3,
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
        let seen = match observed_objects.get(&step.name) {
            Some(object) => {
                let retry_allowed = |cause| retry_allowed(step, settings, object.attempt, cause);
                let mut seen = read_assessment(
                    &object.assessment,
                    object.attempt,
                    retry_allowed,
                    now_ms,
                    &now.to_string(),
                    &mut status,
                );
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
                    // A retry never overlaps the old pod: it goes first.
                    cluster.delete(&object.object).await?;
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
                StepPhase::Running => Some(Observed::Failed {
                    attempt: status.attempt,
                    retry_at: retry_allowed(step, settings, status.attempt, RetryCause::Infrastructure)
                        .then_some(now_ms),
                }),
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
            cluster.delete(&object.object).await?;
        }
        if let Some(status) = statuses.get_mut(name) {
            // A step that ran out of time failed; one stopped for another reason was cancelled.
            let timed_out = *reason == StopReason::StepTimeout;
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
            status.phase = StepPhase::Skipped;
            status.reason = "Skipped".into();
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
                    "TimedOut",
                    "the run's timeout ran out".to_owned(),
                ),
                _ => (RunPhase::Failed, "Failed", failed_steps(&out.status)),
            };
            out.status.phase = phase;
            out.status.completion_time = Some(now.to_string());
            set_condition(
                &mut out.status,
                "Ready",
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
                "Ready",
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

/// Whether attempt `attempt` (from 0) of `step`, failed for `cause`, gets
/// another: the controller's own retries (`max_attempts`) cover
/// infrastructure failures first, then the user's `retries` add theirs for
/// the causes they name. Without a count of earlier causes in the cluster,
/// every earlier attempt is counted against the user's limit for an error,
/// so a step never gets more retries than it asked for.
fn retry_allowed(step: &RunStep, settings: &Settings, attempt: u32, cause: RetryCause) -> bool {
    let own = settings.max_attempts.max(1);
    let user = step.retries.as_ref().filter(|r| r.retries_on(cause));
    let limit = user.map_or(0, |r| r.limit);
    match cause {
        RetryCause::Infrastructure => attempt + 1 < own.saturating_add(limit),
        _ => attempt < limit,
    }
}

/// The most attempts `step` can have: the controller's own and the user's.
pub(crate) fn attempt_budget(step: &RunStep, settings: &Settings) -> u32 {
    let limit = step.retries.as_ref().map_or(0, |r| r.limit);
    settings.max_attempts.max(1).saturating_add(limit)
}

/// The outcome env of a `finally` step as it starts: the run's outcome so
/// far and each other step's, in the words `c8s run` uses.
fn outcome_env(
    run: &RunView<'_>,
    steps: &RunSteps,
    step: &RunStep,
    statuses: &BTreeMap<String, StepRunStatus>,
) -> Vec<(String, String)> {
    let word = |name: &str| match statuses.get(name) {
        Some(s) if s.phase == StepPhase::Succeeded => "Succeeded",
        Some(s) if s.phase == StepPhase::Failed => "Failed",
        Some(s) if s.phase == StepPhase::Skipped && s.reason == "Cancelled" => "Cancelled",
        _ => "Skipped",
    };
    let all_succeeded = steps
        .steps
        .iter()
        .filter(|s| !s.finally)
        .all(|s| word(&s.name) == "Succeeded")
        && steps.skipped.is_empty();
    let outcome = match (run.spec.cancelled, all_succeeded) {
        (true, _) => "Cancelled",
        (false, true) => "Succeeded",
        (false, false) => "Failed",
    };
    std::iter::once((RUN_STATUS_ENV.to_owned(), outcome.to_owned()))
        .chain(
            step.outcome_env
                .iter()
                .map(|(var, name)| (var.clone(), word(name).to_owned())),
        )
        .collect()
}

/// The scheduler's policy for this run; times in milliseconds since the run
/// was created.
fn policy(run: &RunView<'_>, steps: &RunSteps, settings: &Settings) -> Policy {
    let parallelism = run
        .spec
        .parallelism
        .filter(|p| *p > 0)
        .map_or(settings.default_parallelism, |p| p as usize);
    let mut policy = Policy::default()
        .parallelism(parallelism)
        .max_attempts(settings.max_attempts);
    if let Some(timeout) = steps.timeout_ms {
        policy = policy.run_deadline(timeout);
    }
    for step in &steps.steps {
        if step.finally {
            policy = policy.finally_step(step.name.clone());
        }
        if let Some(retries) = &step.retries {
            policy = policy.retries_for(step.name.clone(), retries.limit);
        }
        if let Some(timeout) = step.timeout_ms {
            policy = policy
                .step_timeout_for(step.name.clone(), timeout)
                .estimate(step.name.clone(), timeout);
        }
    }
    if run.spec.cancelled {
        policy = policy.cancelled();
    }
    policy
}
