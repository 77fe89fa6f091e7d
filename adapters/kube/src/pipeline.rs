//! Runs a whole pipeline on the one scheduler of `c8s_pipeline_model::scheduler`:
//! this loop only applies its decisions (start, stop, skip) and feeds back
//! what the cluster showed, until the scheduler says the run is done.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use c8s_pipeline_model::scheduler::{Observed, Policy, RunEnd, StopReason, decide};
use c8s_pipeline_model::{Dag, finally};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::options::{FailureMode, RunOptions, Step};
use crate::outcome::{RunState, RunStatus, StepOutcome, StepState, TerminationReason};
use crate::rate::RateLimiter;
use crate::retry::{AttemptFailure, RetriesSpent};
use crate::rules::{PolicySettings, millis};
use crate::run_watch::{Hub, pump};
use crate::step::{Event, Runner};

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
    let status = Mutex::new(RunStatus {
        run_id: options.run_id.clone(),
        state: RunState::Running,
        started_at: Some(start.started_at),
        finished_at: None,
        message: String::new(),
        steps: steps
            .iter()
            .map(|s| crate::outcome::StepStatus::pending(&s.name))
            .collect(),
    });
    let live = Mutex::new(BTreeMap::new());
    let finally_env = Mutex::new(BTreeMap::new());
    // One watch for the whole run, opened before anything is created.
    let hub = Hub::default();
    let recorder = crate::record::Recorder::with(start.records, start.started_at.to_string(), start.created);
    let elapsed = cluster
        .now()
        .duration_since(start.started_at)
        .try_into()
        .unwrap_or(std::time::Duration::ZERO);
    let first = match cluster.watch_run(&options.run_id).await {
        Ok(None) => None,
        Ok(Some(stream)) => Some(Some(stream)),
        Err(e) => {
            tracing::debug!(error = %e, "could not watch the run yet");
            Some(None)
        }
    };
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
    let resumed = Resumed {
        steps: start.steps,
        elapsed,
    };
    let run_id = options.run_id.as_str();
    let taken = || Error::RunExists {
        run_id: run_id.to_owned(),
    };
    let marks_lists = cluster.watch_run_marks_lists();
    let mut cancel = std::pin::pin!(cancel);
    let checked = async {
        // A new run whose id has objects is refused before it creates any.
        if runner.hub.is_some() && marks_lists && !options.resume {
            tokio::select! {
                biased;
                () = &mut cancel => return Ok(RunEnd::Cancelled),
                shows = hub.first_list_shows_objects() => if shows {
                    return Err(taken());
                },
            }
        }
        tokio::select! {
            biased;
            end = drive(&runner, &steps, &dag, resumed, cancel) => Ok(end),
            // The first write found an earlier run's record: stop creating.
            () = recorder.refused() => Err(taken()),
        }
    };
    let end = match first {
        None => checked.await,
        Some(first) => {
            // A dead watch is the followers' business: the pump just stops.
            let pump = async {
                pump(cluster, &hub, run_id, &options.retry, first).await;
                std::future::pending().await
            };
            tokio::select! {
                biased;
                end = checked => end,
                end = pump => end,
            }
        }
    };

    // Refused while its last steps ended: still refused.
    let end = end.and_then(|end| {
        if recorder.is_refused() {
            Err(taken())
        } else {
            Ok(end)
        }
    });
    // The run ended: nothing is left to resume. A refused run leaves the
    // record it found.
    if end.is_ok() && recorder.created() {
        let forgotten = options
            .retry
            .call(run_id, || async {
                limiter.acquire().await;
                cluster.delete_record(run_id).await
            })
            .await;
        if let Err(e) = forgotten {
            tracing::warn!(run = run_id, error = %e, "could not delete the run record");
        }
    }
    // Whatever is still registered (steps the run ended with, deletes that
    // failed) is deleted now, after the record: a runner killed in between
    // leaves pods that a new start adopts. Concurrently, without waiting for
    // the objects to be gone.
    let leftover: Vec<usize> = live
        .lock()
        .map(|l| l.keys().copied().collect())
        .unwrap_or_default();
    let sweeps: Vec<_> = leftover
        .into_iter()
        .map(|index| runner.start_delete_live(index))
        .collect();
    let sweep_errors: Vec<String> = futures::future::join_all(sweeps)
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    let end = end?;
    let now = cluster.now();
    let mut status = status
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
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
    Ok(status)
}

/// Where a resumed run's steps stand, and how long ago the run first started.
struct Resumed {
    steps: Vec<crate::resume::StepStart>,
    elapsed: std::time::Duration,
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
        ..PolicySettings::new(&options.retry)
    };
    crate::rules::policy(steps, &settings)
}

/// The loop: decide, apply, wait for an event, a wake-up time or `cancel`.
async fn drive<C: Cluster>(
    runner: &Runner<'_, C>,
    steps: &[Step],
    dag: &Dag,
    resumed: Resumed,
    cancel: impl Future<Output = ()>,
) -> RunEnd {
    let options = runner.options;
    let mut policy = policy_of(steps, options, resumed.elapsed);
    let origin = Instant::now();
    let now_ms = || millis(origin.elapsed());
    let position: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut observed: BTreeMap<String, Observed> = BTreeMap::new();
    // A step's timeout counts from its first attempt's start, across retries.
    let mut first_start: BTreeMap<usize, u64> = BTreeMap::new();
    // The retries each step spent, by budget.
    let mut spent = vec![RetriesSpent::default(); steps.len()];
    let mut stops: BTreeMap<usize, oneshot::Sender<StopReason>> = BTreeMap::new();
    let mut stop_reasons: BTreeMap<usize, StopReason> = BTreeMap::new();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let events_tx = &events_tx;
    let mut attempts = FuturesUnordered::new();
    for (index, (start, step)) in resumed.steps.into_iter().zip(steps).enumerate() {
        spent[index] = RetriesSpent {
            image_pulls: start.budgets.0,
            disruptions: start.budgets.1,
            user: start.user_retries,
        };
        if let Some(status) = start.status {
            runner.update(index, |s| *s = status);
        }
        if let Some(seen) = start.observed {
            observed.insert(step.name.clone(), seen);
        }
        if let Some(attempt) = start.adopt {
            let (stop_tx, stop_rx) = oneshot::channel();
            stops.insert(index, stop_tx);
            attempts.push(runner.run_attempt(index, step, attempt, true, stop_rx, events_tx));
        }
    }
    let mut cancel = std::pin::pin!(cancel);
    let end = loop {
        let now = now_ms();
        let decision = decide(dag, &observed, &policy, now);
        for (name, reason) in &decision.skip {
            let Some(&index) = position.get(name.as_str()) else {
                continue;
            };
            observed.insert(name.clone(), Observed::Cancelled);
            let at = runner.cluster.now();
            let (state, word) = match reason.outcome() {
                finally::Outcome::Skipped => (StepState::Skipped, "skipped"),
                _ => (StepState::Cancelled, "cancelled"),
            };
            runner.update(index, |s| {
                s.state = state;
                s.waiting_reason = None;
                s.finished_at = Some(at);
                s.message = format!("{word}: {reason}");
            });
        }
        for (name, reason) in &decision.cancel {
            let Some(&index) = position.get(name.as_str()) else {
                continue;
            };
            if let Some(stop) = stops.remove(&index) {
                stop_reasons.insert(index, reason.clone());
                let _ = stop.send(reason.clone());
            }
        }
        for start in &decision.start {
            let Some(&index) = position.get(start.step.as_str()) else {
                continue;
            };
            let since = first_start.get(&index).copied();
            observed.insert(
                start.step.clone(),
                Observed::Running {
                    attempt: start.attempt,
                    since,
                },
            );
            let (stop_tx, stop_rx) = oneshot::channel();
            stops.insert(index, stop_tx);
            let step = &steps[index];
            if step.finally {
                let env = outcome_env(runner, steps, step, policy.cancelled);
                if let Ok(mut finally_env) = runner.finally_env.lock() {
                    finally_env.insert(index, env);
                }
            }
            let attempt = start.attempt;
            attempts.push(runner.run_attempt(index, step, attempt, false, stop_rx, events_tx));
        }
        if let Some(end) = decision.done {
            // Steps that ended with the run skip their record write.
            runner.recorder.close();
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
            Some((index, event)) = events.recv() => {
                let now = now_ms();
                let Some(step) = steps.get(index) else { continue };
                let attempt = match observed.get(&step.name) {
                    Some(Observed::Running { attempt, .. }) => *attempt,
                    _ => 0,
                };
                let state = match event {
                    Event::Started => {
                        let since = *first_start.entry(index).or_insert(now);
                        Observed::Running { attempt, since: Some(since) }
                    }
                    Event::Ended(outcome) if !outcome.succeeded() => {
                        let fault = AttemptFailure::Ended(outcome.reason);
                        match options.retry.retry_after(&step.name, step.retries.as_ref(), &mut spent[index], attempt, fault) {
                            Some(backoff) => {
                                tracing::info!(step = %step.name, attempt, reason = ?outcome.reason, "retrying step as its retries ask");
                                let message = format!("attempt {} failed ({}); retrying", attempt + 1, outcome.reason);
                                runner.update(index, |s| {
                                    s.retries += 1;
                                    s.outcome = Some(outcome);
                                    s.message = message;
                                });
                                Observed::Failed { attempt, retry_at: Some(now.saturating_add(millis(backoff))) }
                            }
                            None => finish(runner, index, outcome),
                        }
                    }
                    Event::Ended(outcome) => finish(runner, index, outcome),
                    Event::Retryable(reason, message) => {
                        let fault = match reason {
                            TerminationReason::ImagePullBackOff => AttemptFailure::ImagePull,
                            _ => AttemptFailure::Disruption,
                        };
                        let before = spent[index];
                        match options.retry.retry_after(&step.name, step.retries.as_ref(), &mut spent[index], attempt, fault) {
                            Some(backoff) => {
                                // The runner's own budget first; then the step's retries, if they cover infrastructure.
                                if spent[index].user > before.user {
                                    runner.update(index, |s| s.retries += 1);
                                } else {
                                    runner.update(index, |s| s.runner_retries += 1);
                                }
                                tracing::info!(step = %step.name, attempt, ?reason, %message, "retrying step with a new pod");
                                Observed::Failed { attempt, retry_at: Some(now.saturating_add(millis(backoff))) }
                            }
                            None => finish(runner, index, failure(runner, reason, message)),
                        }
                    }
                    Event::Stopped(delete_error) => {
                        let reason = stop_reasons.remove(&index).unwrap_or(StopReason::RunCancelled);
                        let undeleted = delete_error.map(|e| format!("; the pod could not be deleted: {e}")).unwrap_or_default();
                        if reason == StopReason::StepTimeout {
                            finish(runner, index, failure(runner, TerminationReason::DeadlineExceeded, format!("{reason}{undeleted}")))
                        } else {
                            let at = runner.cluster.now();
                            runner.update(index, |s| {
                                s.outcome = Some(StepOutcome { exit_code: None, reason: TerminationReason::Cancelled, message: String::new(), started_at: None, finished_at: Some(at) });
                                s.state = StepState::Cancelled;
                                s.waiting_reason = None;
                                s.finished_at = Some(at);
                                s.message = format!("cancelled: {reason}{undeleted}");
                            });
                            Observed::Cancelled
                        }
                    }
                };
                if !matches!(state, Observed::Running { .. }) {
                    stops.remove(&index);
                }
                observed.insert(step.name.clone(), state);
            }
            Some(()) = attempts.next() => {}
            () = sleep_until(wake) => {}
        }
    };
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

/// The env a `finally` step starts with ([`finally::outcome_env`]): the
/// run's outcome so far and each watched step's final state.
fn outcome_env<C: Cluster>(
    runner: &Runner<'_, C>,
    steps: &[Step],
    step: &Step,
    cancelled: bool,
) -> Vec<(String, String)> {
    let states: BTreeMap<String, StepState> = runner
        .status
        .lock()
        .map(|s| s.steps.iter().map(|s| (s.name.clone(), s.state)).collect())
        .unwrap_or_default();
    let outcome = |name: &str| match states.get(name) {
        Some(StepState::Succeeded) => finally::Outcome::Succeeded,
        Some(StepState::Failed) => finally::Outcome::Failed,
        Some(StepState::Cancelled) => finally::Outcome::Cancelled,
        None | Some(StepState::Skipped) => finally::Outcome::Skipped,
        Some(_) => finally::Outcome::Unknown,
    };
    let run_steps = steps.iter().filter(|s| !s.finally).map(|s| outcome(&s.name));
    finally::outcome_env(cancelled, run_steps, &step.outcome_env, outcome)
}

fn failure<C: Cluster>(runner: &Runner<'_, C>, reason: TerminationReason, message: String) -> StepOutcome {
    StepOutcome {
        exit_code: None,
        reason,
        message,
        started_at: None,
        finished_at: Some(runner.cluster.now()),
    }
}

/// Records a step's final outcome; what the scheduler sees of it.
fn finish<C: Cluster>(runner: &Runner<'_, C>, index: usize, outcome: StepOutcome) -> Observed {
    let now = runner.cluster.now();
    let succeeded = outcome.succeeded();
    let attempt = runner
        .status
        .lock()
        .ok()
        .and_then(|s| s.steps.get(index).map(|s| s.attempts.saturating_sub(1)))
        .unwrap_or(0);
    runner.update(index, |s| {
        s.state = if succeeded {
            StepState::Succeeded
        } else {
            StepState::Failed
        };
        s.waiting_reason = None;
        s.finished_at = Some(now);
        s.outcome = Some(outcome);
    });
    if succeeded {
        Observed::Succeeded
    } else {
        Observed::Failed {
            attempt,
            retry_at: None,
        }
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
