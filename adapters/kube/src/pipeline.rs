//! Runs a whole pipeline on the one scheduler of `c8s_pipeline_model::scheduler`:
//! this loop only applies its decisions (start, stop, skip) and feeds back
//! what the cluster showed, until the scheduler says the run is done.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use c8s_pipeline_model::Dag;
use c8s_pipeline_model::scheduler::{Policy, RunEnd, decide};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cluster::{Cluster, RunWatchStream};
use crate::error::{Error, Result};
use crate::options::{FailureMode, RunOptions, Step};
use crate::outcome::{RunState, RunStatus, StepStatus};
use crate::rate::RateLimiter;
use crate::record::Recorder;
use crate::rules::{PolicySettings, millis};
use crate::run_watch::{Hub, pump};
use crate::schedule::{Launch, Schedule};
use crate::step::Runner;

/// Runs `steps` on `cluster` until every step has a final state, the run times
/// out, or `cancel` completes. Deletes every pod it created before returning
/// (unless [`RunOptions::keep_pods`]).
///
/// Fails only when the steps do not form a valid DAG (duplicate or unknown
/// names, a cycle, an object without a name); everything that happens on the
/// cluster is reported in the returned [`RunStatus`].
pub async fn run_pipeline<C: Cluster>(
    cluster: &C,
    steps: Vec<Step>,
    options: RunOptions,
    cancel: impl Future<Output = ()>,
) -> Result<RunStatus> {
    let dag = dag_of(&steps)?;
    let limiter = RateLimiter::new(options.max_requests_per_second, options.request_burst);
    // A new run records that it exists; a resumed one reads back where it was.
    let start = crate::resume::start(cluster, &steps, &options, &limiter).await?;
    let status = Mutex::new(initial_status(&options.run_id, start.started_at, &steps));
    let live = Mutex::new(BTreeMap::new());
    let finally_env = Mutex::new(BTreeMap::new());
    let hub = Hub::default();
    let recorder = Recorder::with(start.records, start.started_at.to_string(), start.created);
    let resumed = Resumed {
        steps: start.steps,
        elapsed: since(cluster.now(), start.started_at),
    };
    // One watch for the whole run, opened before anything is created.
    let first = open_run_watch(cluster, &options.run_id).await;
    let runner = Runner {
        cluster,
        options: &options,
        status: &status,
        live: &live,
        finally_env: &finally_env,
        hub: first.is_some().then_some(&hub),
        limiter: &limiter,
        recorder: &recorder,
    };
    let end = match first {
        None => guarded_drive(&runner, &hub, &steps, &dag, resumed, cancel).await,
        Some(first) => {
            // A dead watch is the followers' business: the pump just stops.
            let pump = async {
                pump(cluster, &hub, &options.run_id, &options.retry, first).await;
                std::future::pending().await
            };
            tokio::select! {
                biased;
                end = guarded_drive(&runner, &hub, &steps, &dag, resumed, cancel) => end,
                end = pump => end,
            }
        }
    };
    // Refused while its last steps ended: still refused.
    let end = end.and_then(|end| {
        if recorder.is_refused() {
            Err(taken(&options.run_id))
        } else {
            Ok(end)
        }
    });
    // The run ended: nothing is left to resume. A refused run leaves the
    // record it found; a part of a run leaves it for the rest.
    if end.is_ok() && recorder.created() && !options.continued {
        forget_record(&runner).await;
    }
    let sweep_errors = sweep(&runner).await;
    let end = end?;
    let status = status
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Ok(final_status(status, end, &sweep_errors, cluster.now()))
}

/// Where a resumed run's steps stand, and how long ago the run first started.
struct Resumed {
    steps: Vec<crate::resume::StepStart>,
    elapsed: std::time::Duration,
}

/// The run's status before any step started: every step pending.
fn initial_status(run_id: &str, started_at: Timestamp, steps: &[Step]) -> RunStatus {
    RunStatus {
        run_id: run_id.to_owned(),
        state: RunState::Running,
        started_at: Some(started_at),
        finished_at: None,
        message: String::new(),
        steps: steps.iter().map(|s| StepStatus::pending(&s.name)).collect(),
    }
}

/// How long ago `then` was at `now` (zero if `then` is later).
fn since(now: Timestamp, then: Timestamp) -> std::time::Duration {
    now.duration_since(then)
        .try_into()
        .unwrap_or(std::time::Duration::ZERO)
}

/// The run's one watch: `None` when the cluster offers none, `Some(None)`
/// when it could not be opened yet (the pump opens it again).
async fn open_run_watch<C: Cluster>(cluster: &C, run_id: &str) -> Option<Option<RunWatchStream>> {
    match cluster.watch_run(run_id).await {
        Ok(None) => None,
        Ok(Some(stream)) => Some(Some(stream)),
        Err(e) => {
            tracing::debug!(error = %e, "could not watch the run yet");
            Some(None)
        }
    }
}

/// The refusal of a run whose id is taken.
fn taken(run_id: &str) -> Error {
    Error::RunExists {
        run_id: run_id.to_owned(),
    }
}

/// [`drive`], refused before it creates anything when a new run's id has
/// objects already (the run watch's first list shows them), and stopped as
/// soon as the first write finds an earlier run's record.
async fn guarded_drive<C: Cluster>(
    runner: &Runner<'_, C>,
    hub: &Hub,
    steps: &[Step],
    dag: &Dag,
    resumed: Resumed,
    cancel: impl Future<Output = ()>,
) -> Result<RunEnd> {
    let options = runner.options;
    let mut cancel = std::pin::pin!(cancel);
    if runner.hub.is_some() && runner.cluster.watch_run_marks_lists() && !options.resume {
        tokio::select! {
            biased;
            () = &mut cancel => return Ok(RunEnd::Cancelled),
            shows = hub.first_list_shows_objects() => if shows {
                return Err(taken(&options.run_id));
            },
        }
    }
    tokio::select! {
        biased;
        end = drive(runner, steps, dag, resumed, cancel) => Ok(end),
        // The first write found an earlier run's record: stop creating.
        () = runner.recorder.refused() => Err(taken(&options.run_id)),
    }
}

/// Deletes the run record of a run that ended (a failure is only traced).
async fn forget_record<C: Cluster>(runner: &Runner<'_, C>) {
    let run_id = runner.options.run_id.as_str();
    let retry = &runner.options.retry;
    let forgotten = runner
        .limiter
        .call(retry, run_id, || runner.cluster.delete_record(run_id))
        .await;
    if let Err(e) = forgotten {
        tracing::warn!(run = run_id, error = %e, "could not delete the run record");
    }
}

/// Deletes whatever is still registered (steps the run ended with, deletes
/// that failed), after the record: a runner killed in between leaves pods
/// that a new start adopts. Concurrently, without waiting for the objects
/// to be gone; the errors of the deletes that failed.
async fn sweep<C: Cluster>(runner: &Runner<'_, C>) -> Vec<String> {
    let leftover: Vec<usize> = runner
        .live
        .lock()
        .map(|l| l.keys().copied().collect())
        .unwrap_or_default();
    let sweeps: Vec<_> = leftover
        .into_iter()
        .map(|index| runner.start_delete_live(index))
        .collect();
    futures::future::join_all(sweeps)
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect()
}

/// The run's final status: its state and message from how it ended and
/// what could not be deleted, finished at `now`.
fn final_status(mut status: RunStatus, end: RunEnd, sweep_errors: &[String], now: Timestamp) -> RunStatus {
    (status.state, status.message) = match end {
        RunEnd::Cancelled => (RunState::Cancelled, "the run was cancelled".to_owned()),
        RunEnd::TimedOut => (RunState::Failed, "the run's timeout ran out".to_owned()),
        RunEnd::Succeeded => (RunState::Succeeded, String::new()),
        _ => (RunState::Failed, String::new()),
    };
    if !sweep_errors.is_empty() {
        status.message = format!(
            "{}; could not delete: {}",
            status.message,
            sweep_errors.join("; ")
        );
    }
    status.finished_at = Some(now);
    status
}

/// The scheduler's policy for these steps and options ([`crate::policy`],
/// the controller's too); times in milliseconds since this runner started,
/// the run's deadline shortened by `elapsed` (a resumed run keeps its first
/// start's deadline).
fn policy_of(steps: &[Step], options: &RunOptions, elapsed: std::time::Duration) -> Policy {
    let settings = PolicySettings {
        parallelism: options.parallelism,
        fail_fast: options.failure_mode == FailureMode::FailFast,
        run_timeout: options.timeout,
        elapsed,
        outcome: options.outcome.clone(),
        ..PolicySettings::new(&options.retry)
    };
    crate::rules::policy(steps, &settings)
}

/// The loop: decide, apply ([`Schedule`]), wait for an event, a wake-up
/// time or `cancel`.
async fn drive<C: Cluster>(
    runner: &Runner<'_, C>,
    steps: &[Step],
    dag: &Dag,
    resumed: Resumed,
    cancel: impl Future<Output = ()>,
) -> RunEnd {
    let mut policy = policy_of(steps, runner.options, resumed.elapsed);
    let origin = Instant::now();
    let now_ms = || millis(origin.elapsed());
    let mut schedule = Schedule::new(runner, steps);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let events_tx = &events_tx;
    let launch =
        |l: Launch| runner.run_attempt(l.index, &steps[l.index], l.attempt, l.adopt, l.stop, events_tx);
    let mut attempts: FuturesUnordered<_> = schedule.resume(resumed.steps).into_iter().map(launch).collect();
    let mut cancel = std::pin::pin!(cancel);
    let end = loop {
        let decision = decide(dag, &schedule.observed, &policy, now_ms());
        schedule.skip(&decision.skip);
        schedule.cancel(&decision.cancel);
        attempts.extend(
            schedule
                .admit(&decision.start, policy.cancelled)
                .into_iter()
                .map(launch),
        );
        if let Some(end) = decision.done {
            break end;
        }
        if !decision.skip.is_empty() {
            // Skips can end the run: decide again before waiting.
            continue;
        }
        let wake = decision
            .wake_at
            .map(|at| origin + std::time::Duration::from_millis(at));
        tokio::select! {
            biased;
            () = &mut cancel, if !policy.cancelled => policy = policy.cancelled(),
            Some((index, event)) = events.recv() => schedule.on_event(index, event, now_ms()),
            Some(()) = attempts.next() => {}
            () = sleep_until(wake) => {}
        }
    };
    // Steps that ended with the run skip their record write.
    runner.recorder.close();
    // Finished pods may still be being deleted.
    while attempts.next().await.is_some() {}
    end
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The steps' graph, as pipeline-model's [`Dag`]; every object needs a name.
fn dag_of(steps: &[Step]) -> Result<Dag> {
    for step in steps {
        if step.object.name().is_none_or(str::is_empty) {
            return Err(Error::InvalidObject {
                step: step.name.clone(),
                detail: "the object has no metadata.name".into(),
            });
        }
    }
    Dag::new(
        steps
            .iter()
            .map(|s| (s.name.as_str(), s.depends_on.iter().map(String::as_str))),
    )
    .map_err(|e| Error::InvalidPipeline(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_status_says_how_the_run_ended_and_what_was_left() {
        let started = Timestamp::UNIX_EPOCH;
        let now = Timestamp::from_second(60).unwrap_or(started);
        let status = || initial_status("r1", started, &[]);
        let done = final_status(status(), RunEnd::Succeeded, &[], now);
        assert_eq!((done.state, done.message.as_str()), (RunState::Succeeded, ""));
        assert_eq!(done.finished_at, Some(now));
        let cancelled = final_status(status(), RunEnd::Cancelled, &["pod a: 500".to_owned()], now);
        assert_eq!(cancelled.state, RunState::Cancelled);
        assert_eq!(
            cancelled.message,
            "the run was cancelled; could not delete: pod a: 500"
        );
        assert_eq!(
            final_status(status(), RunEnd::TimedOut, &[], now).state,
            RunState::Failed
        );
    }

    #[test]
    fn elapsed_time_is_never_negative() {
        let early = Timestamp::UNIX_EPOCH;
        let late = Timestamp::from_second(5).unwrap_or(early);
        assert_eq!(since(late, early), std::time::Duration::from_secs(5));
        assert_eq!(since(early, late), std::time::Duration::ZERO);
    }
}
