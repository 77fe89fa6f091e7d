//! What the scheduling loop of [`crate::run_pipeline`] knows between two
//! decisions, and how each part of a decision and each event of a running
//! attempt changes it: skips, cancels, the admission of ready steps, and the
//! per-event handling that turns an attempt's end into what the scheduler
//! sees (a retry after a backoff, or a final state).

use std::collections::BTreeMap;

use c8s_pipeline_model::finally;
use c8s_pipeline_model::scheduler::{Observed, Start, StopReason};
use tokio::sync::oneshot;

use crate::cluster::Cluster;
use crate::options::Step;
use crate::outcome::{StepOutcome, StepState, TerminationReason};
use crate::resume::StepStart;
use crate::retry::{AttemptFailure, RetriesSpent};
use crate::rules::millis;
use crate::step::{Event, Runner};

/// An attempt to run now: the loop turns it into [`Runner::run_attempt`].
pub(crate) struct Launch {
    /// The step's index.
    pub index: usize,
    /// The attempt (from 0).
    pub attempt: u32,
    /// Follow the object a resumed run left instead of creating it.
    pub adopt: bool,
    /// Fires when the scheduler stops the attempt.
    pub stop: oneshot::Receiver<StopReason>,
}

/// The scheduling loop's state: what the scheduler is told of each step,
/// the retries each spent, and how to stop the running ones.
pub(crate) struct Schedule<'r, 'a, C> {
    runner: &'r Runner<'a, C>,
    steps: &'r [Step],
    position: BTreeMap<&'r str, usize>,
    /// What the scheduler sees, by step name.
    pub observed: BTreeMap<String, Observed>,
    /// A step's timeout counts from its first attempt's start, across retries.
    first_start: BTreeMap<usize, u64>,
    /// The retries each step spent, by budget.
    spent: Vec<RetriesSpent>,
    stops: BTreeMap<usize, oneshot::Sender<StopReason>>,
    stop_reasons: BTreeMap<usize, StopReason>,
}

impl<'r, 'a, C: Cluster> Schedule<'r, 'a, C> {
    /// Nothing observed yet of `steps`.
    pub fn new(runner: &'r Runner<'a, C>, steps: &'r [Step]) -> Self {
        Schedule {
            runner,
            steps,
            position: steps
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.as_str(), i))
                .collect(),
            observed: BTreeMap::new(),
            first_start: BTreeMap::new(),
            spent: vec![RetriesSpent::default(); steps.len()],
            stops: BTreeMap::new(),
            stop_reasons: BTreeMap::new(),
        }
    }

    /// Takes over where a resumed run's steps stand (budgets spent, status,
    /// what the scheduler was told); the attempts to follow again.
    pub fn resume(&mut self, starts: Vec<StepStart>) -> Vec<Launch> {
        let mut launches = Vec::new();
        for (index, (start, step)) in starts.into_iter().zip(self.steps).enumerate() {
            if let Some(spent) = self.spent.get_mut(index) {
                *spent = RetriesSpent {
                    image_pulls: start.budgets.0,
                    disruptions: start.budgets.1,
                    user: start.user_retries,
                };
            }
            if let Some(status) = start.status {
                self.runner.update(index, |s| *s = status);
            }
            if let Some(seen) = start.observed {
                self.observed.insert(step.name.clone(), seen);
            }
            if let Some(attempt) = start.adopt {
                launches.push(self.launch(index, attempt, true));
            }
        }
        launches
    }

    /// Marks steps that will never start as skipped or cancelled.
    pub fn skip(&mut self, skips: &[(String, StopReason)]) {
        for (name, reason) in skips {
            let Some(&index) = self.position.get(name.as_str()) else {
                continue;
            };
            self.observed.insert(name.clone(), Observed::Cancelled);
            let at = self.runner.cluster.now();
            let (state, word) = match reason.outcome() {
                finally::Outcome::Skipped => (StepState::Skipped, "skipped"),
                _ => (StepState::Cancelled, "cancelled"),
            };
            self.runner.update(index, |s| {
                s.state = state;
                s.waiting_reason = None;
                s.finished_at = Some(at);
                s.message = format!("{word}: {reason}");
            });
        }
    }

    /// Tells running steps to stop; their attempts report
    /// [`Event::Stopped`] once their pods are deleted.
    pub fn cancel(&mut self, cancels: &[(String, StopReason)]) {
        for (name, reason) in cancels {
            let Some(&index) = self.position.get(name.as_str()) else {
                continue;
            };
            if let Some(stop) = self.stops.remove(&index) {
                self.stop_reasons.insert(index, reason.clone());
                let _ = stop.send(reason.clone());
            }
        }
    }

    /// Admits the steps the scheduler starts: they are running from now on
    /// (a `finally` step gets the outcomes it watches, `cancelled`: the run
    /// was cancelled); the attempts to launch.
    pub fn admit(&mut self, starts: &[Start], cancelled: bool) -> Vec<Launch> {
        let mut launches = Vec::new();
        for start in starts {
            let Some(&index) = self.position.get(start.step.as_str()) else {
                continue;
            };
            let since = self.first_start.get(&index).copied();
            let running = Observed::Running {
                attempt: start.attempt,
                since,
            };
            self.observed.insert(start.step.clone(), running);
            let step = &self.steps[index];
            if step.finally {
                let env = outcome_env(self.runner, self.steps, step, cancelled);
                if let Ok(mut finally_env) = self.runner.finally_env.lock() {
                    finally_env.insert(index, env);
                }
            }
            launches.push(self.launch(index, start.attempt, false));
        }
        launches
    }

    /// Attempt `attempt` of step `index`, stoppable from now on.
    fn launch(&mut self, index: usize, attempt: u32, adopt: bool) -> Launch {
        let (stop_tx, stop) = oneshot::channel();
        self.stops.insert(index, stop_tx);
        Launch {
            index,
            attempt,
            adopt,
            stop,
        }
    }

    /// What `event` of step `index`'s running attempt, at `now` (ms on the
    /// loop's clock), makes the scheduler see.
    pub fn on_event(&mut self, index: usize, event: Event, now: u64) {
        let Some(step) = self.steps.get(index) else {
            return;
        };
        let attempt = match self.observed.get(&step.name) {
            Some(Observed::Running { attempt, .. }) => *attempt,
            _ => 0,
        };
        let state = match event {
            Event::Started => {
                let since = *self.first_start.entry(index).or_insert(now);
                Observed::Running {
                    attempt,
                    since: Some(since),
                }
            }
            Event::Ended(outcome) if !outcome.succeeded() => self.ended_failed(index, attempt, outcome, now),
            Event::Ended(outcome) => finish(self.runner, index, outcome),
            Event::Retryable(reason, message) => self.disrupted(index, attempt, reason, message, now),
            Event::Stopped(delete_error) => self.stopped(index, delete_error),
        };
        if !matches!(state, Observed::Running { .. }) {
            self.stops.remove(&index);
        }
        self.observed.insert(step.name.clone(), state);
    }

    /// A failed attempt: retried after a backoff when the step's own
    /// retries cover its cause, else the step's final failure.
    fn ended_failed(&mut self, index: usize, attempt: u32, outcome: StepOutcome, now: u64) -> Observed {
        let step = &self.steps[index];
        let fault = AttemptFailure::Ended(outcome.reason);
        let retry = &self.runner.options.retry;
        let Some(backoff) = retry.retry_after(
            &step.name,
            step.retries.as_ref(),
            &mut self.spent[index],
            attempt,
            fault,
        ) else {
            return finish(self.runner, index, outcome);
        };
        tracing::info!(step = %step.name, attempt, reason = ?outcome.reason, "retrying step as its retries ask");
        let message = format!("attempt {} failed ({}); retrying", attempt + 1, outcome.reason);
        self.runner.update(index, |s| {
            s.retries += 1;
            s.outcome = Some(outcome);
            s.message = message;
        });
        Observed::Failed {
            attempt,
            retry_at: Some(now.saturating_add(millis(backoff))),
        }
    }

    /// A disrupted attempt (its pod is gone): retried with a new pod while
    /// the runner's budget for its kind lasts, then the step's retries if
    /// they cover infrastructure; else the step's final failure.
    fn disrupted(
        &mut self,
        index: usize,
        attempt: u32,
        reason: TerminationReason,
        message: String,
        now: u64,
    ) -> Observed {
        let step = &self.steps[index];
        let fault = match reason {
            TerminationReason::ImagePullBackOff => AttemptFailure::ImagePull,
            _ => AttemptFailure::Disruption,
        };
        let before = self.spent[index];
        let retry = &self.runner.options.retry;
        let Some(backoff) = retry.retry_after(
            &step.name,
            step.retries.as_ref(),
            &mut self.spent[index],
            attempt,
            fault,
        ) else {
            return finish(self.runner, index, failure(self.runner, reason, message));
        };
        // The runner's own budget first; then the step's retries, if they cover infrastructure.
        if self.spent[index].user > before.user {
            self.runner.update(index, |s| s.retries += 1);
        } else {
            self.runner.update(index, |s| s.runner_retries += 1);
        }
        tracing::info!(step = %step.name, attempt, ?reason, %message, "retrying step with a new pod");
        Observed::Failed {
            attempt,
            retry_at: Some(now.saturating_add(millis(backoff))),
        }
    }

    /// A stopped attempt: a step timeout fails the step, any other stop
    /// cancels it; `delete_error` says why its pod could not be deleted.
    fn stopped(&mut self, index: usize, delete_error: Option<String>) -> Observed {
        let reason = self
            .stop_reasons
            .remove(&index)
            .unwrap_or(StopReason::RunCancelled);
        let undeleted = delete_error
            .map(|e| format!("; the pod could not be deleted: {e}"))
            .unwrap_or_default();
        if reason == StopReason::StepTimeout {
            let message = format!("{reason}{undeleted}");
            return finish(
                self.runner,
                index,
                failure(self.runner, TerminationReason::DeadlineExceeded, message),
            );
        }
        let at = self.runner.cluster.now();
        self.runner.update(index, |s| {
            s.outcome = Some(StepOutcome {
                exit_code: None,
                reason: TerminationReason::Cancelled,
                message: String::new(),
                started_at: None,
                finished_at: Some(at),
            });
            s.state = StepState::Cancelled;
            s.waiting_reason = None;
            s.finished_at = Some(at);
            s.message = format!("cancelled: {reason}{undeleted}");
        });
        Observed::Cancelled
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

/// An outcome the runner gives a step that has no exit code of its own.
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
