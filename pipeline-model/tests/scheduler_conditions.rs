//! Conditional steps and the run's outcome condition in the pure scheduler
//! (how Concourse hooks and `try` run): a conditional step is not skipped
//! because a dependency failed, waits until the steps it reads have ended,
//! starts iff its condition holds (else is skipped, `ConditionFalse`), runs
//! after a cancel when it reads the cancelled step, and the run's result is
//! the outcome condition.

use std::collections::BTreeMap;

use c8s_pipeline_model::Dag;
use c8s_pipeline_model::finally::Outcome;
use c8s_pipeline_model::scheduler::{Condition, Decision, Observed, Policy, RunEnd, StopReason, decide};

fn dag(steps: &[(&str, &[&str])]) -> Dag {
    Dag::new(steps.iter().map(|(s, d)| (*s, d.to_vec()))).unwrap_or_else(|e| panic!("{e}"))
}

fn started(decision: &Decision) -> Vec<&str> {
    decision.start.iter().map(|s| s.step.as_str()).collect()
}

fn failed(errored: bool) -> Observed {
    Observed::Failed {
        attempt: 0,
        retry_at: None,
        errored,
    }
}

fn running() -> Observed {
    Observed::Running {
        attempt: 0,
        since: Some(0),
    }
}

fn seen(pairs: &[(&str, Observed)]) -> BTreeMap<String, Observed> {
    pairs.iter().map(|(s, o)| ((*s).to_owned(), o.clone())).collect()
}

fn s(step: &str) -> String {
    step.to_owned()
}

/// `task` with an `on_success` hook `ok`, an `on_failure` hook `bad` and an
/// `on_error` hook `err`; the build's result is the task's and `ok`'s.
fn hooks() -> (Dag, Policy) {
    let dag = dag(&[
        ("task", &[]),
        ("ok", &["task"]),
        ("bad", &["task"]),
        ("err", &["task"]),
    ]);
    let policy = Policy::default()
        .condition("task", Condition::True)
        .condition("ok", Condition::Succeeded(s("task")))
        .condition("bad", Condition::Failed(s("task")))
        .condition("err", Condition::Errored(s("task")))
        .outcome(Condition::All(vec![
            Condition::Succeeded(s("task")),
            Condition::Succeeded(s("ok")),
        ]));
    (dag, policy)
}

#[test]
fn a_failed_step_starts_its_failure_hook_and_skips_the_others() {
    let (dag, policy) = hooks();
    let d = decide(&dag, &seen(&[]), &policy, 0);
    assert_eq!(started(&d), ["task"]);
    let d = decide(&dag, &seen(&[("task", failed(false))]), &policy, 1);
    assert_eq!(started(&d), ["bad"], "{d:?}");
    assert_eq!(
        d.skip,
        [
            (s("err"), StopReason::ConditionFalse),
            (s("ok"), StopReason::ConditionFalse)
        ]
    );
    assert_eq!(StopReason::ConditionFalse.outcome(), Outcome::Skipped);
    assert_eq!(d.done, None);
    let end = seen(&[
        ("task", failed(false)),
        ("bad", Observed::Succeeded),
        ("ok", Observed::Cancelled),
        ("err", Observed::Cancelled),
    ]);
    assert_eq!(decide(&dag, &end, &policy, 2).done, Some(RunEnd::Failed));
}

#[test]
fn an_errored_step_starts_its_error_hook_not_its_failure_hook() {
    let (dag, policy) = hooks();
    let d = decide(&dag, &seen(&[("task", failed(true))]), &policy, 1);
    assert_eq!(started(&d), ["err"], "{d:?}");
}

#[test]
fn a_succeeded_step_starts_its_success_hook_and_the_outcome_reads_it() {
    let (dag, policy) = hooks();
    let d = decide(&dag, &seen(&[("task", Observed::Succeeded)]), &policy, 1);
    assert_eq!(started(&d), ["ok"]);
    let mut end = seen(&[
        ("task", Observed::Succeeded),
        ("bad", Observed::Cancelled),
        ("err", Observed::Cancelled),
        ("ok", Observed::Succeeded),
    ]);
    assert_eq!(decide(&dag, &end, &policy, 2).done, Some(RunEnd::Succeeded));
    end.insert(s("ok"), failed(false));
    assert_eq!(decide(&dag, &end, &policy, 2).done, Some(RunEnd::Failed));
}

#[test]
fn a_conditional_step_waits_for_every_step_it_reads() {
    // `ensure` of an in_parallel [a, b]: it waits for both, and no failure
    // stops b (there is no fail-fast under an outcome condition).
    let dag = dag(&[("a", &[]), ("b", &[]), ("hook", &["a", "b"])]);
    let ended = Condition::All(vec![Condition::Ended(s("a")), Condition::Ended(s("b"))]);
    let policy = Policy::default()
        .condition("hook", ended)
        .outcome(Condition::True);
    let d = decide(&dag, &seen(&[("a", failed(false)), ("b", running())]), &policy, 1);
    assert!(
        d.start.is_empty() && d.cancel.is_empty() && d.skip.is_empty(),
        "{d:?}"
    );
    assert_eq!(d.done, None);
    let d = decide(
        &dag,
        &seen(&[("a", failed(false)), ("b", Observed::Succeeded)]),
        &policy,
        2,
    );
    assert_eq!(started(&d), ["hook"]);
}

#[test]
fn a_step_after_a_try_runs_and_the_run_succeeds() {
    let dag = dag(&[("risky", &[]), ("next", &["risky"])]);
    let policy = Policy::default()
        .condition("next", Condition::True)
        .outcome(Condition::Succeeded(s("next")));
    let d = decide(&dag, &seen(&[("risky", failed(false))]), &policy, 1);
    assert_eq!(started(&d), ["next"], "{d:?}");
    let end = seen(&[("risky", failed(false)), ("next", Observed::Succeeded)]);
    assert_eq!(decide(&dag, &end, &policy, 2).done, Some(RunEnd::Succeeded));
    // Without the condition the failure skips it, as before.
    let plain = Policy::default();
    let d = decide(&dag, &seen(&[("risky", failed(false))]), &plain, 1);
    assert_eq!(d.skip, [(s("next"), StopReason::Dependency(s("risky")))]);
}

#[test]
fn a_cancel_stops_the_step_and_starts_its_abort_and_ensure_hooks() {
    let dag = dag(&[
        ("task", &[]),
        ("next", &["task"]),
        ("abort", &["task"]),
        ("always", &["task"]),
        ("other", &[]),
    ]);
    let policy = Policy::default()
        .condition("next", Condition::Succeeded(s("task")))
        .condition("abort", Condition::Aborted(s("task")))
        .condition("always", Condition::Ended(s("task")))
        .outcome(Condition::Succeeded(s("next")))
        .cancelled();
    let d = decide(&dag, &seen(&[("task", running())]), &policy, 1);
    assert_eq!(d.cancel, [(s("task"), StopReason::RunCancelled)]);
    assert_eq!(d.skip, [(s("other"), StopReason::RunCancelled)]);
    assert!(d.start.is_empty() && d.done.is_none(), "{d:?}");
    let after = seen(&[("task", Observed::Cancelled), ("other", Observed::Cancelled)]);
    let d = decide(&dag, &after, &policy, 2);
    assert_eq!(started(&d), ["abort", "always"], "{d:?}");
    assert_eq!(d.skip, [(s("next"), StopReason::ConditionFalse)]);
    // Once started, the cancel does not stop them; the run ends Cancelled.
    let mut hooks = after.clone();
    hooks.insert(s("abort"), running());
    hooks.insert(s("always"), running());
    hooks.insert(s("next"), Observed::Cancelled);
    let d = decide(&dag, &hooks, &policy, 3);
    assert!(d.cancel.is_empty() && d.done.is_none(), "{d:?}");
    hooks.insert(s("abort"), Observed::Succeeded);
    hooks.insert(s("always"), Observed::Succeeded);
    assert_eq!(decide(&dag, &hooks, &policy, 4).done, Some(RunEnd::Cancelled));
}

#[test]
fn a_step_that_never_started_is_not_aborted() {
    // `other` was skipped by the cancel before it could run (its dependency
    // had not succeeded): its on_abort hook does not run.
    let dag = dag(&[("first", &[]), ("other", &["first"]), ("abort", &["other"])]);
    let policy = Policy::default()
        .condition("abort", Condition::Aborted(s("other")))
        .cancelled();
    let after = seen(&[("first", Observed::Cancelled), ("other", Observed::Cancelled)]);
    let d = decide(&dag, &after, &policy, 2);
    assert_eq!(d.skip, [(s("abort"), StopReason::ConditionFalse)]);
}

#[test]
fn the_deadline_stops_a_conditional_step() {
    let dag = dag(&[("task", &[]), ("always", &["task"])]);
    let policy = Policy::default()
        .condition("always", Condition::Ended(s("task")))
        .run_deadline(10);
    let d = decide(&dag, &seen(&[("task", running())]), &policy, 10);
    assert_eq!(d.skip, [(s("always"), StopReason::RunDeadline)]);
    assert_eq!(d.cancel, [(s("task"), StopReason::RunDeadline)]);
}

#[test]
fn a_failing_hook_is_not_stopped_by_fail_fast_without_an_outcome() {
    // Conditions without an outcome keep fail-fast, and a hook that runs
    // because its step failed is not stopped by it.
    let dag = dag(&[("task", &[]), ("bad", &["task"]), ("slow", &[])]);
    let policy = Policy::default().condition("bad", Condition::Failed(s("task")));
    let d = decide(
        &dag,
        &seen(&[("task", failed(false)), ("slow", running())]),
        &policy,
        1,
    );
    assert_eq!(started(&d), ["bad"], "{d:?}");
    assert_eq!(d.cancel, [(s("slow"), StopReason::FailFast(s("task")))]);
}
