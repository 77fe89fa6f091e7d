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

    /// When attempt `attempt` of step `index`, failed with `fault` at `now`,
    /// is retried under the one retry rule ([`crate::RetryPolicy::retry_after`],
    /// which counts what the step spends); `None`: it is not.
    fn retry_at(&mut self, index: usize, attempt: u32, fault: AttemptFailure, now: u64) -> Option<u64> {
        let step = &self.steps[index];
        let retry = &self.runner.options.retry;
        let spent = &mut self.spent[index];
        let backoff = retry.retry_after(&step.name, step.retries.as_ref(), spent, attempt, fault)?;
        Some(now.saturating_add(millis(backoff)))
    }

    /// A failed attempt: retried after a backoff when the step's own
    /// retries cover its cause, else the step's final failure.
    fn ended_failed(&mut self, index: usize, attempt: u32, outcome: StepOutcome, now: u64) -> Observed {
        let step = &self.steps[index];
        let outcome_errored = outcome.reason.errored();
        let fault = AttemptFailure::Ended(outcome.reason);
        let Some(retry_at) = self.retry_at(index, attempt, fault, now) else {
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
            retry_at: Some(retry_at),
            errored: outcome_errored,
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
        let Some(retry_at) = self.retry_at(index, attempt, fault, now) else {
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
            retry_at: Some(retry_at),
            errored: true,
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
    let outcome_errored = outcome.reason.errored();
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
            errored: outcome_errored,
        }
    }
}

#[cfg(test)]
#[cfg(feature = "test-util")]
mod tests {
    use std::sync::Mutex;

    use k8s_openapi::api::core::v1::Pod;

    use super::*;
    use crate::cluster::StepObject;
    use crate::options::RunOptions;
    use crate::outcome::{RunState, RunStatus, StepStatus};
    use crate::rate::RateLimiter;
    use crate::record::Recorder;
    use crate::sim::SimCluster;

    /// What a [`Runner`] borrows, owned by the test.
    struct Parts {
        cluster: SimCluster,
        options: RunOptions,
        status: Mutex<RunStatus>,
        live: Mutex<BTreeMap<usize, crate::cluster::ObjectRef>>,
        finally_env: Mutex<BTreeMap<usize, Vec<(String, String)>>>,
        limiter: RateLimiter,
        recorder: Recorder,
    }

    impl Parts {
        fn new(steps: &[Step]) -> Self {
            Parts {
                cluster: SimCluster::new(),
                options: RunOptions::new("r1"),
                status: Mutex::new(RunStatus {
                    run_id: "r1".to_owned(),
                    state: RunState::Running,
                    started_at: None,
                    finished_at: None,
                    message: String::new(),
                    steps: steps.iter().map(|s| StepStatus::pending(&s.name)).collect(),
                }),
                live: Mutex::new(BTreeMap::new()),
                finally_env: Mutex::new(BTreeMap::new()),
                limiter: RateLimiter::new(0, 0),
                recorder: Recorder::default(),
            }
        }

        fn runner(&self) -> Runner<'_, SimCluster> {
            Runner {
                cluster: &self.cluster,
                options: &self.options,
                status: &self.status,
                live: &self.live,
                finally_env: &self.finally_env,
                hub: None,
                limiter: &self.limiter,
                recorder: &self.recorder,
            }
        }

        fn state(&self, index: usize) -> StepState {
            self.status
                .lock()
                .map(|s| s.steps[index].state)
                .unwrap_or(StepState::Pending)
        }
    }

    fn steps() -> Vec<Step> {
        ["build", "test"]
            .into_iter()
            .map(|name| {
                let mut pod = Pod::default();
                pod.metadata.name = Some(name.to_owned());
                Step::new(name, StepObject::Pod(Box::new(pod)))
            })
            .collect()
    }

    /// The scheduler's order to start `step` (its fields are not public to build).
    fn start(step: &str, attempt: u32) -> Start {
        let order = serde_json::json!({ "step": step, "attempt": attempt });
        serde_json::from_value(order).unwrap_or_else(|e| panic!("a start order: {e}"))
    }

    #[tokio::test]
    async fn an_admitted_step_runs_and_its_timeout_counts_from_its_first_start() {
        let steps = steps();
        let parts = Parts::new(&steps);
        let runner = parts.runner();
        let mut schedule = Schedule::new(&runner, &steps);
        let launches = schedule.admit(&[start("test", 0), start("unknown", 0)], false);
        assert_eq!(launches.len(), 1);
        assert_eq!(
            (launches[0].index, launches[0].attempt, launches[0].adopt),
            (1, 0, false)
        );
        let running = |since| Some(Observed::Running { attempt: 0, since });
        assert_eq!(schedule.observed.get("test").cloned(), running(None));
        schedule.on_event(1, Event::Started, 40);
        assert_eq!(schedule.observed.get("test").cloned(), running(Some(40)));
        // A retry's start keeps the first start.
        schedule.admit(&[start("test", 1)], false);
        schedule.on_event(1, Event::Started, 90);
        let retried = Some(Observed::Running {
            attempt: 1,
            since: Some(40),
        });
        assert_eq!(schedule.observed.get("test").cloned(), retried);
    }

    #[tokio::test]
    async fn a_disruption_spends_the_runners_budget_then_fails_the_step() {
        let steps = steps();
        let parts = Parts::new(&steps);
        let runner = parts.runner();
        let mut schedule = Schedule::new(&runner, &steps);
        let budget = parts.options.retry.disruption_retries;
        for attempt in 0..budget {
            schedule.admit(&[start("build", attempt)], false);
            schedule.on_event(
                0,
                Event::Retryable(TerminationReason::Evicted, "evicted".into()),
                1_000,
            );
            let Some(Observed::Failed {
                retry_at: Some(at), ..
            }) = schedule.observed.get("build").cloned()
            else {
                panic!("a disruption within the budget is retried");
            };
            assert!(at > 1_000);
        }
        schedule.admit(&[start("build", budget)], false);
        schedule.on_event(
            0,
            Event::Retryable(TerminationReason::Evicted, "evicted".into()),
            5_000,
        );
        assert_eq!(
            schedule.observed.get("build").cloned(),
            Some(Observed::Failed {
                attempt: 0,
                retry_at: None,
                errored: true,
            })
        );
        assert_eq!(parts.state(0), StepState::Failed);
        let retries = parts
            .status
            .lock()
            .map(|s| s.steps[0].runner_retries)
            .unwrap_or(0);
        assert_eq!(retries, budget);
    }

    #[tokio::test]
    async fn a_cancel_stops_the_attempt_and_its_stop_cancels_the_step() {
        let steps = steps();
        let parts = Parts::new(&steps);
        let runner = parts.runner();
        let mut schedule = Schedule::new(&runner, &steps);
        let mut launches = schedule.admit(&[start("build", 0)], false);
        schedule.cancel(&[("build".to_owned(), StopReason::RunCancelled)]);
        assert_eq!(launches[0].stop.try_recv().ok(), Some(StopReason::RunCancelled));
        schedule.on_event(0, Event::Stopped(Some("500".to_owned())), 10);
        assert_eq!(schedule.observed.get("build").cloned(), Some(Observed::Cancelled));
        assert_eq!(parts.state(0), StepState::Cancelled);
        let message = parts
            .status
            .lock()
            .map(|s| s.steps[0].message.clone())
            .unwrap_or_default();
        assert_eq!(
            message,
            "cancelled: the run was cancelled; the pod could not be deleted: 500"
        );
    }

    #[tokio::test]
    async fn a_skipped_step_is_skipped_or_cancelled_by_its_reason() {
        let steps = steps();
        let parts = Parts::new(&steps);
        let runner = parts.runner();
        let mut schedule = Schedule::new(&runner, &steps);
        schedule.skip(&[
            ("test".to_owned(), StopReason::Dependency("build".to_owned())),
            ("build".to_owned(), StopReason::RunDeadline),
        ]);
        assert_eq!(parts.state(1), StepState::Skipped);
        assert_eq!(parts.state(0), StepState::Cancelled);
        assert_eq!(schedule.observed.get("test").cloned(), Some(Observed::Cancelled));
    }
}
