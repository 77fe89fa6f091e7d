//! Where a run starts from: nothing for a new run; for a resumed one
//! ([`crate::RunOptions::resume`]) the state rebuilt from the cluster — the
//! run record (steps that ended, attempts that ended in a retryable fault)
//! and the run's objects found by their `c8s.dev/run` label — so that no step
//! is lost and none runs twice.

use std::collections::BTreeMap;

use c8s_pipeline_model::RetryCause;
use c8s_pipeline_model::scheduler::Observed;
use k8s_openapi::jiff::Timestamp;

use crate::cluster::{Cluster, ObjectRef, RUN_LABEL};
use crate::error::{Error, Result};
use crate::options::{RunOptions, Step};
use crate::outcome::{StepOutcome, StepState, StepStatus, TerminationReason};
use crate::rate::RateLimiter;
use crate::record::{StepRecord, parse};
use crate::step::attempt_name;

/// Where one step starts from.
#[derive(Default)]
pub(crate) struct StepStart {
    /// What the scheduler is told at once (`None`: not started).
    pub observed: Option<Observed>,
    /// Retries spent: (image pulls, disruptions).
    pub budgets: (u32, u32),
    /// The step's status to show.
    pub status: Option<StepStatus>,
    /// An attempt whose object exists: follow it instead of creating one.
    pub adopt: Option<u32>,
    /// The step's own retries spent.
    pub user_retries: u32,
}

/// Where the run starts from.
pub(crate) struct Start {
    pub steps: Vec<StepStart>,
    /// The step records read back.
    pub records: BTreeMap<String, StepRecord>,
    /// When the run first started (its deadline counts from there).
    pub started_at: Timestamp,
    /// The run record exists.
    pub created: bool,
}

/// Where the run starts from. A new run starts afresh (its record is created
/// by its first write; whether its id is taken is read from the run watch's
/// first list, or from one list when the cluster's watch cannot tell). A
/// resumed run reads its record (if any: a run killed before its first write
/// has none) and its objects, and rebuilds every step's state from them.
/// Objects whose end is already recorded are deleted here (waiting until a
/// retried attempt's old object is gone, so a retry never overlaps it).
pub(crate) async fn start<C: Cluster>(
    cluster: &C,
    steps: &[Step],
    options: &RunOptions,
    limiter: &RateLimiter,
) -> Result<Start> {
    let run_id = options.run_id.as_str();
    let retry = &options.retry;
    let now = cluster.now();
    let selector = format!("{RUN_LABEL}={run_id}");
    let list = || limiter.call(retry, run_id, || cluster.list(&selector));
    if !options.resume {
        if !cluster.watch_run_marks_lists() && !list().await?.is_empty() {
            return Err(Error::RunExists {
                run_id: run_id.to_owned(),
            });
        }
        return Ok(Start {
            steps: steps.iter().map(|_| StepStart::default()).collect(),
            records: BTreeMap::new(),
            started_at: now,
            created: false,
        });
    }
    let loaded = limiter
        .call(retry, run_id, || cluster.load_record(run_id))
        .await?;
    let created = loaded.is_some();
    let (records, started) = loaded.as_ref().map(parse).unwrap_or_default();
    let listed = list().await?;
    // The run started no later than its record says and its first object was
    // created (a run killed before its first write has only its objects).
    let started_at = started
        .and_then(|s| s.parse::<Timestamp>().ok())
        .into_iter()
        .chain(listed.iter().filter_map(|o| o.created_at))
        .min()
        .unwrap_or(now);
    // Attempt names of every step, to recognise the objects found.
    let most = 2 + retry.image_pull_retries + retry.disruption_retries;
    let mut names: BTreeMap<String, (usize, u32)> = BTreeMap::new();
    for (index, step) in steps.iter().enumerate() {
        let base = step.object.name().unwrap_or(&step.name);
        let user = step.retries.as_ref().map_or(0, |r| r.limit);
        for attempt in 0..most.saturating_add(user) {
            names.insert(attempt_name(base, attempt), (index, attempt));
        }
    }
    let mut found: Vec<Vec<(u32, ObjectRef)>> = vec![Vec::new(); steps.len()];
    for object in listed.into_iter().filter(|o| !o.owned_by_job) {
        if let Some(&(index, attempt)) = names.get(&object.object.name)
            && object.object.kind == steps[index].object.kind()
        {
            found[index].push((attempt, object.object));
        }
    }
    let mut starts = Vec::with_capacity(steps.len());
    let mut to_delete: Vec<(ObjectRef, bool)> = Vec::new();
    for (step, mut objects) in steps.iter().zip(found) {
        objects.sort();
        let record = records.get(&step.name).cloned().unwrap_or_default();
        let (start, delete) = step_start(step, &record, objects, options, cluster.now());
        to_delete.extend(delete);
        starts.push(start);
    }
    for (object, wait) in to_delete {
        let deleted = limiter
            .call(retry, &object.name, || async {
                if wait {
                    cluster.delete(&object).await
                } else {
                    cluster.start_delete(&object).await
                }
            })
            .await;
        if let Err(e) = deleted {
            tracing::warn!(object = %object, error = %e, "could not delete an object of the resumed run");
        }
    }
    Ok(Start {
        steps: starts,
        records,
        started_at,
        created,
    })
}

/// One step's start from its record and its objects (by attempt, ascending);
/// the objects to delete (and whether to wait until they are gone).
fn step_start(
    step: &Step,
    record: &StepRecord,
    objects: Vec<(u32, ObjectRef)>,
    options: &RunOptions,
    now: Timestamp,
) -> (StepStart, Vec<(ObjectRef, bool)>) {
    let mut start = StepStart::default();
    let replay = replay(step, record, options);
    start.budgets = replay.budgets;
    start.user_retries = replay.user_retries;
    if let Some(done) = record.done.as_ref().or(replay.spent.as_ref()) {
        // Ended for good: its objects only wait for deletion.
        let delete = objects
            .into_iter()
            .filter(|_| !options.keep_pods)
            .map(|(_, o)| (o, false))
            .collect();
        let last = record.attempts.saturating_sub(1);
        start.observed = Some(if done.state == StepState::Succeeded {
            Observed::Succeeded
        } else {
            Observed::Failed {
                attempt: last,
                retry_at: None,
                errored: done.outcome.as_ref().is_some_and(|o| o.reason.errored()),
            }
        });
        start.status = Some(done.clone());
        return (start, delete);
    }
    let exhausted = replay.exhausted;
    let ended = record.retryable.len() + record.user_failures.len();
    let verdicts = u32::try_from(ended).unwrap_or(u32::MAX);
    let mut delete = Vec::new();
    let mut adopt = None;
    for (attempt, object) in objects {
        // An attempt without a recorded end is still the step's; older ones
        // ended and wait for deletion (to be gone before any retry).
        if attempt >= verdicts && exhausted.is_none() {
            if let Some(older) = adopt.replace((attempt, object)) {
                delete.push((older.1, true));
            }
        } else {
            delete.push((object, true));
        }
    }
    let mut status = StepStatus::pending(&step.name);
    status.attempts = record.attempts;
    status.retries = start.user_retries;
    status.runner_retries = start.budgets.0 + start.budgets.1;
    if let Some((attempt, object)) = adopt {
        status.attempts = attempt + 1;
        status.object = Some(object.name.clone());
        status.state = StepState::Running;
        start.adopt = Some(attempt);
        start.observed = Some(Observed::Running { attempt, since: None });
    } else if let Some(reason) = exhausted {
        let outcome = StepOutcome {
            exit_code: None,
            reason,
            message: format!(
                "{reason:?} after {} retries",
                record.retryable.len().saturating_sub(1)
            ),
            started_at: None,
            finished_at: Some(now),
        };
        status.state = StepState::Failed;
        status.finished_at = Some(now);
        status.outcome = Some(outcome);
        start.observed = Some(Observed::Failed {
            attempt: record.attempts.saturating_sub(1),
            retry_at: None,
            errored: reason.errored(),
        });
    } else if record.attempts > 0 {
        // The last attempt ended retryably and its object is gone: retry now.
        start.observed = Some(Observed::Failed {
            attempt: record.attempts - 1,
            retry_at: Some(0),
            errored: true,
        });
    }
    start.status = Some(status).filter(|s| s.attempts > 0);
    (start, delete)
}

/// A step's retries replayed from its record as the loop spent them.
struct Replay {
    /// The runner's own retries spent: (image pulls, disruptions).
    budgets: (u32, u32),
    /// The step's own retries spent.
    user_retries: u32,
    /// A runner fault no retry covered: the step failed with it.
    exhausted: Option<TerminationReason>,
    /// The step's status when its own retries were spent by a failure.
    spent: Option<StepStatus>,
}

/// Replays the runner's retries first (the step's own cover infrastructure
/// faults past them), then the failures the step's own retries judged.
fn replay(step: &Step, record: &StepRecord, options: &RunOptions) -> Replay {
    let retry = &options.retry;
    let user = step.retries.as_ref();
    let allows = |cause, used| user.is_some_and(|r| r.allows(cause, used));
    let (mut pulls, mut disruptions, mut used) = (0u32, 0u32, 0u32);
    let mut exhausted = None;
    for reason in &record.retryable {
        let (count, limit) = match reason {
            TerminationReason::ImagePullBackOff => (&mut pulls, retry.image_pull_retries),
            _ => (&mut disruptions, retry.disruption_retries),
        };
        if *count < limit {
            *count += 1;
        } else if allows(RetryCause::Infrastructure, used) {
            used += 1;
        } else {
            exhausted = Some(*reason);
        }
    }
    let mut spent = None;
    for reason in &record.user_failures {
        match reason.retry_cause() {
            Some(cause) if allows(cause, used) => used += 1,
            _ => spent = record.last_failure.clone(),
        }
    }
    Replay {
        budgets: (pulls, disruptions),
        user_retries: used,
        exhausted,
        spent,
    }
}
