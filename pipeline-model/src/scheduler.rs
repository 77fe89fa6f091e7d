//! The one scheduler: a pure function from a [`Dag`], what has been observed
//! of every step, a [`Policy`] and the current time to a [`Decision`] — which
//! steps to start (or retry), which to cancel or skip, and whether the run is
//! done.
//!
//! It keeps no state between calls, so a runner can rebuild the observations
//! from the cluster on every pass (level-triggered) and a crashed runner that
//! starts again decides exactly what the first one would have. Times are plain
//! milliseconds on the caller's clock; the scheduler never reads a clock.
//!
//! ```
//! use std::collections::BTreeMap;
//! use c8s_pipeline_model::Dag;
//! use c8s_pipeline_model::scheduler::{Observed, Policy, decide};
//!
//! let dag = Dag::new([("unit", vec![]), ("publish", vec!["unit"])]).unwrap();
//! let mut seen = BTreeMap::new();
//! let first = decide(&dag, &seen, &Policy::default(), 0);
//! assert_eq!(first.start[0].step, "unit");
//! seen.insert("unit".to_owned(), Observed::Succeeded);
//! let next = decide(&dag, &seen, &Policy::default(), 10);
//! assert_eq!(next.start[0].step, "publish");
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde_derive::{Deserialize, Serialize};

use crate::dag::Dag;

/// What the runner has observed of one step. A step missing from the map has
/// not been started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Observed {
    /// Attempt `attempt` (0-based) exists; `since` is when it stopped waiting
    /// for capacity (its timeout counts from there), `None` while it waits.
    Running {
        /// The attempt number, 0 for the first.
        attempt: u32,
        /// When it started running, on the caller's clock.
        since: Option<u64>,
    },
    /// The step succeeded.
    Succeeded,
    /// Attempt `attempt` failed. `retry_at` is set when the failure is
    /// transient and the runner's retry budget allows another attempt, at or
    /// after that time (after the old object is gone).
    Failed {
        /// The attempt that failed.
        attempt: u32,
        /// When a retry may start, if one is allowed.
        retry_at: Option<u64>,
        /// The attempt errored rather than failed (Concourse's distinction):
        /// it did not end with its container's non-zero exit (its own
        /// timeout, an image that could not be pulled, a disruption).
        #[serde(default)]
        errored: bool,
    },
    /// The step was skipped or cancelled before it finished.
    Cancelled,
}

/// How a run is scheduled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Policy {
    /// At most this many steps at once; 0 means no limit.
    pub parallelism: usize,
    /// Cancel everything once a step fails for good (otherwise only its
    /// dependents are skipped).
    pub fail_fast: bool,
    /// Attempts per step at most, the first included (at least 1 is used).
    pub max_attempts: u32,
    /// How long a running step may take, in milliseconds.
    pub step_timeout: Option<u64>,
    /// Per-step timeouts (milliseconds) that replace `step_timeout`.
    pub step_timeouts: BTreeMap<String, u64>,
    /// When the whole run must end, on the caller's clock.
    pub run_deadline: Option<u64>,
    /// The run was cancelled (Ctrl-C, SIGTERM): cancel and skip everything.
    pub cancelled: bool,
    /// Estimated duration of each step (milliseconds) for the longest-path
    /// priority; steps missing count as 1.
    pub estimates: BTreeMap<String, u64>,
    /// `finally` steps: they start once every other step has finished, also
    /// after a failure, fail-fast or cancel (not after the run's deadline);
    /// their failure fails the run but stops nothing.
    #[serde(default)]
    pub finally: BTreeSet<String>,
    /// The user's retries per step: attempts on top of `max_attempts`.
    #[serde(default)]
    pub retries: BTreeMap<String, u32>,
    /// Steps that run under a [`Condition`] over how other steps ended (a
    /// Concourse hook, a step after a `try`): such a step is not skipped
    /// because a dependency failed; it waits until every dependency and
    /// every step its condition names has ended for good, then starts if
    /// the condition holds and is skipped ([`StopReason::ConditionFalse`])
    /// if not. A cancel or a fail-fast does not stop it when a step its
    /// condition names ended without succeeding (it runs because of that
    /// end, as an `on_abort` or `ensure` hook does); the run's deadline does.
    #[serde(default)]
    pub conditions: BTreeMap<String, Condition>,
    /// When set, the run succeeded iff this holds once every step has
    /// ended (else: iff every step succeeded), and no failure stops the
    /// run early (fail-fast is off: what a failure stops is said by the
    /// conditions).
    #[serde(default)]
    pub outcome: Option<Condition>,
}

/// A condition over how steps ended, read by [`decide`] for
/// [`Policy::conditions`] and [`Policy::outcome`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Condition {
    /// Always holds.
    True,
    /// The step succeeded.
    Succeeded(String),
    /// The step ran and failed for good (not errored).
    Failed(String),
    /// The step ran and errored for good (its own timeout, a fault that
    /// was not its container's non-zero exit).
    Errored(String),
    /// The step could run (its dependencies and condition allowed it) and
    /// was stopped or left out by the run's cancel.
    Aborted(String),
    /// The step ended for good, however (also never started).
    Ended(String),
    /// Every condition holds.
    All(Vec<Condition>),
    /// One condition holds.
    Any(Vec<Condition>),
    /// The condition does not hold.
    Not(Box<Condition>),
}

impl Condition {
    /// The conjunction of `parts`, flattened, without `True`s (`True` if none).
    pub fn all(parts: impl IntoIterator<Item = Condition>) -> Condition {
        let mut out = Vec::new();
        for part in parts {
            match part {
                Condition::True => {}
                Condition::All(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        if out.len() == 1 {
            out.pop().unwrap_or(Condition::True)
        } else if out.is_empty() {
            Condition::True
        } else {
            Condition::All(out)
        }
    }

    /// The disjunction of `parts`, flattened (`Not(True)` if none).
    pub fn any(parts: impl IntoIterator<Item = Condition>) -> Condition {
        let mut out = Vec::new();
        for part in parts {
            match part {
                Condition::True => return Condition::True,
                Condition::Any(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        if out.len() == 1 {
            out.pop().unwrap_or(Condition::True)
        } else {
            Condition::Any(out)
        }
    }

    /// The negation of `self`.
    pub fn negated(self) -> Condition {
        match self {
            Condition::Not(inner) => *inner,
            other => Condition::Not(Box::new(other)),
        }
    }

    /// The steps the condition names, each once, in order.
    pub fn steps(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.collect_steps(&mut out);
        out
    }

    fn collect_steps<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Condition::True => {}
            Condition::Succeeded(s)
            | Condition::Failed(s)
            | Condition::Errored(s)
            | Condition::Aborted(s)
            | Condition::Ended(s) => {
                out.insert(s);
            }
            Condition::All(parts) | Condition::Any(parts) => {
                for part in parts {
                    part.collect_steps(out);
                }
            }
            Condition::Not(inner) => inner.collect_steps(out),
        }
    }

    /// The same condition over other step names (`rename` gives each
    /// step's new name).
    pub fn renamed(&self, rename: &dyn Fn(&str) -> String) -> Condition {
        let map = |parts: &[Condition]| parts.iter().map(|p| p.renamed(rename)).collect();
        match self {
            Condition::True => Condition::True,
            Condition::Succeeded(s) => Condition::Succeeded(rename(s)),
            Condition::Failed(s) => Condition::Failed(rename(s)),
            Condition::Errored(s) => Condition::Errored(rename(s)),
            Condition::Aborted(s) => Condition::Aborted(rename(s)),
            Condition::Ended(s) => Condition::Ended(rename(s)),
            Condition::All(parts) => Condition::All(map(parts)),
            Condition::Any(parts) => Condition::Any(map(parts)),
            Condition::Not(inner) => Condition::Not(Box::new(inner.renamed(rename))),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            parallelism: 0,
            fail_fast: true,
            max_attempts: 4,
            step_timeout: None,
            step_timeouts: BTreeMap::new(),
            run_deadline: None,
            cancelled: false,
            estimates: BTreeMap::new(),
            finally: BTreeSet::new(),
            retries: BTreeMap::new(),
            conditions: BTreeMap::new(),
            outcome: None,
        }
    }
}

impl Policy {
    /// With a parallelism cap (0 = none).
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n;
        self
    }

    /// Fail fast or continue on failure.
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// With at most `n` attempts per step.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// With a per-step timeout in milliseconds.
    pub fn step_timeout(mut self, ms: u64) -> Self {
        self.step_timeout = Some(ms);
        self
    }

    /// With a timeout in milliseconds for `step` alone.
    pub fn step_timeout_for(mut self, step: impl Into<String>, ms: u64) -> Self {
        self.step_timeouts.insert(step.into(), ms);
        self
    }

    /// With a run deadline on the caller's clock.
    pub fn run_deadline(mut self, at: u64) -> Self {
        self.run_deadline = Some(at);
        self
    }

    /// Marks the run cancelled.
    pub fn cancelled(mut self) -> Self {
        self.cancelled = true;
        self
    }

    /// With a duration estimate for `step`.
    pub fn estimate(mut self, step: impl Into<String>, ms: u64) -> Self {
        self.estimates.insert(step.into(), ms);
        self
    }

    /// With `step` as a `finally` step.
    pub fn finally_step(mut self, step: impl Into<String>) -> Self {
        self.finally.insert(step.into());
        self
    }

    /// With `n` user retries of `step` (more attempts than `max_attempts`).
    pub fn retries_for(mut self, step: impl Into<String>, n: u32) -> Self {
        self.retries.insert(step.into(), n);
        self
    }

    /// With `step` run under `condition`.
    pub fn condition(mut self, step: impl Into<String>, condition: Condition) -> Self {
        self.conditions.insert(step.into(), condition);
        self
    }

    /// With the run's result given by `condition`.
    pub fn outcome(mut self, condition: Condition) -> Self {
        self.outcome = Some(condition);
        self
    }
}

/// Start attempt `attempt` of `step`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Start {
    /// The step.
    pub step: String,
    /// The attempt, 0 for the first; more means a retry.
    pub attempt: u32,
}

/// Why a step is cancelled (while running) or not run (before it started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum StopReason {
    /// This step failed for good and the run fails fast.
    FailFast(String),
    /// It depends (directly or not) on this step, which failed or was skipped.
    Dependency(String),
    /// Its own timeout ran out.
    StepTimeout,
    /// The run's deadline passed.
    RunDeadline,
    /// The run was cancelled.
    RunCancelled,
    /// Its [`Condition`] does not hold (a hook whose step ended otherwise).
    ConditionFalse,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::FailFast(step) => write!(f, "step {step:?} failed (fail-fast)"),
            StopReason::Dependency(step) => write!(f, "it depends on step {step:?}, which did not succeed"),
            StopReason::StepTimeout => f.write_str("the step's timeout ran out"),
            StopReason::RunDeadline => f.write_str("the run's timeout ran out"),
            StopReason::RunCancelled => f.write_str("the run was cancelled"),
            StopReason::ConditionFalse => f.write_str("its condition does not hold"),
        }
    }
}

impl StopReason {
    /// What a step stopped (or never started) for this reason ended as, the
    /// one rule of `c8s run` and the controller: a step left out because a
    /// dependency did not succeed was `Skipped`; one whose own timeout ran
    /// out `Failed`; one whose condition does not hold `Skipped`; any other
    /// was `Cancelled` (fail-fast, the run's deadline, a cancel).
    pub fn outcome(&self) -> crate::finally::Outcome {
        use crate::finally::Outcome;
        match self {
            StopReason::Dependency(_) | StopReason::ConditionFalse => Outcome::Skipped,
            StopReason::StepTimeout => Outcome::Failed,
            StopReason::FailFast(_) | StopReason::RunDeadline | StopReason::RunCancelled => {
                Outcome::Cancelled
            }
        }
    }
}

/// How a finished run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RunEnd {
    /// Every step succeeded.
    Succeeded,
    /// A step failed or was skipped because of a failure.
    Failed,
    /// The run's deadline passed.
    TimedOut,
    /// The run was cancelled.
    Cancelled,
}

/// What to do now. Applying it and calling [`decide`] again with the new
/// observations makes progress; an empty decision with `done: None` means
/// "wait for a change or `wake_at`".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Decision {
    /// Steps to create now, longest remaining path first.
    pub start: Vec<Start>,
    /// Running steps to stop (delete), by name.
    pub cancel: Vec<(String, StopReason)>,
    /// Steps that will never start, by name.
    pub skip: Vec<(String, StopReason)>,
    /// Set when nothing runs and nothing will start: how the run ended.
    pub done: Option<RunEnd>,
    /// The earliest time a decision changes without any new observation
    /// (a timeout, a deadline or a retry backoff ending).
    pub wake_at: Option<u64>,
}

/// Decides what to do next. Pure: same arguments, same decision. Steps in
/// `observed` that are not in `dag` are ignored.
pub fn decide(dag: &Dag, observed: &BTreeMap<String, Observed>, policy: &Policy, now: u64) -> Decision {
    let view = View {
        dag,
        observed,
        policy,
        now,
    };
    let stop_all = view.stop_all();
    // Only the deadline stops a finally step; a cancel or a failure is what it runs after.
    let stop_finally = stop_all.clone().filter(|r| *r == StopReason::RunDeadline);
    let mut pass = Pass::default();
    if let Some(d) = policy.run_deadline.filter(|&d| now < d) {
        pass.wake(d);
    }
    let doomed = view.doomed();
    let others_finished = view.others_finished();
    for step in dag.steps() {
        let stop = if view.is_finally(step) {
            &stop_finally
        } else if view.runs_after_an_end(step) {
            // It runs because a step ended unsuccessfully: only the deadline stops it.
            &stop_finally
        } else {
            &stop_all
        };
        match view.state(step) {
            Some(Observed::Running { since, .. }) => pass.running(&view, step, *since, stop.as_ref()),
            Some(Observed::Succeeded | Observed::Cancelled) => {}
            Some(Observed::Failed {
                attempt, retry_at, ..
            }) if !view.final_failure(step) => {
                pass.failed(&view, step, *attempt, *retry_at, stop.as_ref());
            }
            Some(Observed::Failed { .. }) => {}
            None if view.conditional(step) => pass.conditional(&view, step, stop.as_ref(), &stop_finally),
            None => {
                let doomed_by = doomed.get(step).copied();
                pass.not_started(&view, step, doomed_by, stop.as_ref(), others_finished);
            }
        }
    }
    pass.finish(&view, stop_all.as_ref())
}

/// What `decide` reads, with the rules that follow from it alone.
struct View<'a> {
    dag: &'a Dag,
    observed: &'a BTreeMap<String, Observed>,
    policy: &'a Policy,
    now: u64,
}

impl<'a> View<'a> {
    fn state(&self, step: &str) -> Option<&'a Observed> {
        self.observed.get(step)
    }

    fn is_finally(&self, step: &str) -> bool {
        self.policy.finally.contains(step)
    }

    /// Failed for good: no retry allowed, or the attempt budget is spent.
    fn final_failure(&self, step: &str) -> bool {
        match self.state(step) {
            Some(Observed::Failed {
                attempt, retry_at, ..
            }) => {
                let max_attempts = self.policy.max_attempts.max(1);
                let extra = self.policy.retries.get(step).copied().unwrap_or(0);
                retry_at.is_none() || attempt + 1 >= max_attempts.saturating_add(extra)
            }
            _ => false,
        }
    }

    /// Why every (non-finally) step stops now, if it does: a cancel, the
    /// run's deadline, or a final failure under fail-fast.
    fn stop_all(&self) -> Option<StopReason> {
        let policy = self.policy;
        if policy.cancelled {
            Some(StopReason::RunCancelled)
        } else if policy.run_deadline.is_some_and(|d| self.now >= d) {
            Some(StopReason::RunDeadline)
        } else if policy.fail_fast && policy.outcome.is_none() {
            self.dag
                .steps()
                .find(|s| !self.is_finally(s) && self.final_failure(s))
                .map(|s| StopReason::FailFast(s.to_owned()))
        } else {
            None
        }
    }

    /// Whether every step but the finally ones has ended for good.
    fn others_finished(&self) -> bool {
        self.dag.steps().filter(|s| !self.is_finally(s)).all(|s| {
            matches!(self.state(s), Some(Observed::Succeeded | Observed::Cancelled)) || self.final_failure(s)
        })
    }

    /// Steps that can never run, each with the final failure or cancelled
    /// step above it that dooms it.
    fn doomed(&self) -> BTreeMap<&'a str, &'a str> {
        let mut doomed: BTreeMap<&str, &str> = BTreeMap::new();
        for step in self.dag.steps() {
            if self.final_failure(step) || matches!(self.state(step), Some(Observed::Cancelled)) {
                for below in self.dag.descendants(step) {
                    doomed.entry(below).or_insert(step);
                }
            }
        }
        doomed
    }

    /// Whether `step` runs under a condition (and is no finally step).
    fn conditional(&self, step: &str) -> bool {
        self.policy.conditions.contains_key(step) && !self.is_finally(step)
    }

    /// Ended for good: succeeded, cancelled or skipped, failed for good. A
    /// step not in the run counts as never started.
    fn ended(&self, step: &str) -> bool {
        !self.dag.contains(step)
            || matches!(self.state(step), Some(Observed::Succeeded | Observed::Cancelled))
            || self.final_failure(step)
    }

    /// Whether every dependency of `step` and every step its condition
    /// names has ended for good.
    fn settled(&self, step: &str) -> bool {
        let named = self.policy.conditions.get(step).map(Condition::steps);
        self.dag.dependencies(step).iter().all(|d| self.ended(d))
            && named.into_iter().flatten().all(|s| self.ended(s))
    }

    /// A conditional step that runs because a step its condition names
    /// ended without succeeding (failed, errored, cancelled, skipped).
    fn runs_after_an_end(&self, step: &str) -> bool {
        self.conditional(step)
            && self.policy.conditions.get(step).is_some_and(|c| {
                c.steps()
                    .into_iter()
                    .any(|s| self.ended(s) && !matches!(self.state(s), Some(Observed::Succeeded)))
            })
    }

    /// Whether `condition` holds now; `depth` bounds the recursion of
    /// [`Condition::Aborted`] through conditions that name each other.
    fn holds(&self, condition: &Condition, depth: usize) -> bool {
        let failed = |s: &str, want: bool| {
            self.final_failure(s)
                && matches!(self.state(s), Some(Observed::Failed { errored, .. }) if *errored == want)
        };
        match condition {
            Condition::True => true,
            Condition::Succeeded(s) => matches!(self.state(s), Some(Observed::Succeeded)),
            Condition::Failed(s) => failed(s, false),
            Condition::Errored(s) => failed(s, true),
            Condition::Aborted(s) => {
                self.policy.cancelled
                    && matches!(self.state(s), Some(Observed::Cancelled))
                    && depth <= self.dag.len()
                    && self.could_start(s, depth + 1)
            }
            Condition::Ended(s) => self.ended(s),
            Condition::All(parts) => parts.iter().all(|p| self.holds(p, depth)),
            Condition::Any(parts) => parts.iter().any(|p| self.holds(p, depth)),
            Condition::Not(inner) => !self.holds(inner, depth),
        }
    }

    /// Whether `step` was free to start: its dependencies succeeded, or
    /// for a conditional step, they ended and its condition holds.
    fn could_start(&self, step: &str, depth: usize) -> bool {
        match self
            .policy
            .conditions
            .get(step)
            .filter(|_| !self.is_finally(step))
        {
            Some(condition) => self.settled(step) && self.holds(condition, depth),
            None => self
                .dag
                .dependencies(step)
                .iter()
                .all(|d| matches!(self.state(d), Some(Observed::Succeeded))),
        }
    }
}

/// The decision being built over one pass through the steps.
#[derive(Default)]
struct Pass<'a> {
    decision: Decision,
    /// Steps running, or waiting for their retry: they keep the run open.
    running: usize,
    /// Steps that may start now, with their attempt number.
    ready: Vec<(&'a str, u32)>,
    /// A finally step not yet started keeps the run open until it can
    /// start, and a conditional one until its condition can be read.
    finally_waiting: bool,
}

impl<'a> Pass<'a> {
    fn wake(&mut self, at: u64) {
        self.decision.wake_at = Some(self.decision.wake_at.map_or(at, |w| w.min(at)));
    }

    /// A running step: cancelled when the run stops or its timeout ran out.
    fn running(&mut self, view: &View<'_>, step: &str, since: Option<u64>, stop: Option<&StopReason>) {
        let policy = view.policy;
        let limit = policy.step_timeouts.get(step).copied().or(policy.step_timeout);
        let timed_out = match (limit, since) {
            (Some(limit), Some(since)) => {
                let end = since.saturating_add(limit);
                if view.now < end {
                    self.wake(end);
                }
                view.now >= end
            }
            _ => false,
        };
        if let Some(reason) = stop {
            self.decision.cancel.push((step.to_owned(), reason.clone()));
        } else if timed_out {
            self.decision
                .cancel
                .push((step.to_owned(), StopReason::StepTimeout));
        }
        self.running += 1;
    }

    /// A failed step that may be retried: skipped when the run stops, ready
    /// once its backoff ends.
    fn failed(
        &mut self,
        view: &View<'_>,
        step: &'a str,
        attempt: u32,
        retry_at: Option<u64>,
        stop: Option<&StopReason>,
    ) {
        let retry_at = retry_at.unwrap_or(0);
        if let Some(reason) = stop {
            self.decision.skip.push((step.to_owned(), reason.clone()));
        } else if view.now >= retry_at {
            self.ready.push((step, attempt + 1));
        } else {
            self.wake(retry_at);
            // A step waiting for its retry keeps the run open.
            self.running += 1;
        }
    }

    /// A step not started yet: skipped below a failure or when the run
    /// stops, ready once its dependencies succeeded.
    fn not_started(
        &mut self,
        view: &View<'_>,
        step: &'a str,
        doomed_by: Option<&str>,
        stop: Option<&StopReason>,
        others_finished: bool,
    ) {
        // Below a failure, a step never runs because of it, fail-fast or not.
        let doomed_by = doomed_by.filter(|_| matches!(stop, None | Some(StopReason::FailFast(_))));
        if let Some(cause) = doomed_by {
            let reason = StopReason::Dependency(cause.to_owned());
            self.decision.skip.push((step.to_owned(), reason));
        } else if let Some(reason) = stop {
            self.decision.skip.push((step.to_owned(), reason.clone()));
        } else if view.is_finally(step) && !others_finished {
            self.finally_waiting = true;
        } else if view
            .dag
            .dependencies(step)
            .iter()
            .all(|d| matches!(view.state(d), Some(Observed::Succeeded)))
        {
            self.ready.push((step, 0));
        }
    }

    /// A conditional step not started yet: it waits until the steps it
    /// reads have ended, then starts if its condition holds. A stop that
    /// reaches it (it does not run after an end) skips it once it is free
    /// to start; `deadline` (the run's deadline, if passed) skips it at once.
    fn conditional(
        &mut self,
        view: &View<'_>,
        step: &'a str,
        stop: Option<&StopReason>,
        deadline: &Option<StopReason>,
    ) {
        let condition = view.policy.conditions.get(step).unwrap_or(&Condition::True);
        if let Some(reason) = deadline {
            self.decision.skip.push((step.to_owned(), reason.clone()));
        } else if !view.settled(step) {
            self.finally_waiting = true;
        } else if !view.holds(condition, 0) {
            self.decision
                .skip
                .push((step.to_owned(), StopReason::ConditionFalse));
        } else if let Some(reason) = stop {
            self.decision.skip.push((step.to_owned(), reason.clone()));
        } else {
            self.ready.push((step, 0));
        }
    }

    /// Starts the ready steps that fit, longest remaining path first, and
    /// ends the run when nothing runs, starts or waits.
    fn finish(mut self, view: &View<'_>, stop_all: Option<&StopReason>) -> Decision {
        let policy = view.policy;
        let remaining = remaining_paths(view.dag, policy);
        self.ready.sort_by(|(a, _), (b, _)| {
            let (ra, rb) = (remaining.get(a).copied(), remaining.get(b).copied());
            rb.cmp(&ra).then_with(|| a.cmp(b))
        });
        let slots = if policy.parallelism == 0 {
            usize::MAX
        } else {
            policy.parallelism.saturating_sub(self.running)
        };
        let started = self.ready.len().min(slots);
        self.decision.start = self
            .ready
            .into_iter()
            .take(slots)
            .map(|(step, attempt)| Start {
                step: step.to_owned(),
                attempt,
            })
            .collect();
        if self.running == 0 && started == 0 && !self.finally_waiting {
            let all_succeeded = view
                .dag
                .steps()
                .all(|s| matches!(view.state(s), Some(Observed::Succeeded)));
            let succeeded = match &policy.outcome {
                Some(outcome) => view.holds(outcome, 0),
                None => all_succeeded,
            };
            self.decision.done = Some(match stop_all {
                Some(StopReason::RunCancelled) => RunEnd::Cancelled,
                Some(StopReason::RunDeadline) => RunEnd::TimedOut,
                _ if succeeded => RunEnd::Succeeded,
                _ => RunEnd::Failed,
            });
            self.decision.wake_at = None;
        }
        self.decision
    }
}

/// For each step, the longest chain of estimates from it to the end of the
/// graph, itself included ([`Dag::remaining_paths`]; a step without an
/// estimate counts 1): the step on the longest remaining path starts first.
pub fn remaining_paths<'a>(dag: &'a Dag, policy: &Policy) -> BTreeMap<&'a str, u64> {
    dag.remaining_paths(|step| policy.estimates.get(step).copied().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(dag: &'a Dag, observed: &'a BTreeMap<String, Observed>, policy: &'a Policy) -> View<'a> {
        View {
            dag,
            observed,
            policy,
            now: 100,
        }
    }

    /// A one-step DAG, nothing observed yet.
    fn one_step() -> (Dag, BTreeMap<String, Observed>) {
        let dag = Dag::new([("a", Vec::<&str>::new())]).expect("a dag");
        (dag, BTreeMap::new())
    }

    #[test]
    fn a_failure_is_final_once_the_budget_is_spent() {
        let dag = Dag::new([("a", vec![]), ("b", vec!["a"])]).expect("a dag");
        let policy = Policy::default().max_attempts(2);
        let failed = |attempt, retry_at| {
            BTreeMap::from([(
                "a".to_owned(),
                Observed::Failed {
                    attempt,
                    retry_at,
                    errored: false,
                },
            )])
        };
        let (retryable, spent, no_retry) = (failed(0, Some(5)), failed(1, Some(5)), failed(0, None));
        assert!(!view(&dag, &retryable, &policy).final_failure("a"));
        assert!(view(&dag, &spent, &policy).final_failure("a"));
        assert!(view(&dag, &no_retry, &policy).final_failure("a"));
        assert_eq!(
            view(&dag, &no_retry, &policy).doomed(),
            BTreeMap::from([("b", "a")])
        );
    }

    #[test]
    fn the_run_stops_for_a_cancel_before_its_deadline() {
        let (dag, observed) = one_step();
        let mut policy = Policy {
            run_deadline: Some(50),
            ..Policy::default()
        };
        assert_eq!(
            view(&dag, &observed, &policy).stop_all(),
            Some(StopReason::RunDeadline)
        );
        policy.cancelled = true;
        assert_eq!(
            view(&dag, &observed, &policy).stop_all(),
            Some(StopReason::RunCancelled)
        );
    }

    #[test]
    fn a_running_step_past_its_timeout_is_cancelled() {
        let (dag, observed) = one_step();
        let policy = Policy {
            step_timeout: Some(30),
            ..Policy::default()
        };
        let v = view(&dag, &observed, &policy);
        let mut pass = Pass::default();
        pass.running(&v, "a", Some(90), None);
        assert!(pass.decision.cancel.is_empty());
        assert_eq!(pass.decision.wake_at, Some(120));
        pass.running(&v, "a", Some(10), None);
        assert_eq!(pass.decision.cancel, [("a".to_owned(), StopReason::StepTimeout)]);
        assert_eq!(pass.running, 2);
    }
}
