//! `finally` steps and user retries in the pure scheduler: finally steps start
//! only once every other step is terminal — after success, a failure with
//! fail-fast, a cancel — never before, and are stopped only by the run's
//! deadline; a user retry budget adds attempts to one step only.

use std::collections::BTreeMap;

use c8s_pipeline_model::Dag;
use c8s_pipeline_model::scheduler::{Observed, Policy, RunEnd, StopReason, decide};

fn dag() -> Dag {
    Dag::new([
        ("build", vec![]),
        ("test", vec!["build"]),
        ("lint", vec![]),
        ("notify", vec![]),
        ("cleanup", vec![]),
    ])
    .unwrap_or_else(|e| panic!("{e}"))
}

fn policy() -> Policy {
    Policy::default().finally_step("notify").finally_step("cleanup")
}

fn started(decision: &c8s_pipeline_model::scheduler::Decision) -> Vec<&str> {
    let mut names: Vec<&str> = decision.start.iter().map(|s| s.step.as_str()).collect();
    names.sort_unstable();
    names
}

fn failed(attempt: u32) -> Observed {
    Observed::Failed {
        attempt,
        retry_at: None,
        errored: false,
    }
}

#[test]
fn finally_waits_for_every_other_step_then_starts_together() {
    let dag = dag();
    let mut seen = BTreeMap::new();
    assert_eq!(started(&decide(&dag, &seen, &policy(), 0)), ["build", "lint"]);
    seen.insert("build".to_owned(), Observed::Succeeded);
    seen.insert("lint".to_owned(), Observed::Succeeded);
    let d = decide(&dag, &seen, &policy(), 1);
    assert_eq!(started(&d), ["test"], "finally must wait for test");
    seen.insert(
        "test".to_owned(),
        Observed::Running {
            attempt: 0,
            since: Some(1),
        },
    );
    let d = decide(&dag, &seen, &policy(), 2);
    assert!(d.start.is_empty() && d.done.is_none(), "{d:?}");
    seen.insert("test".to_owned(), Observed::Succeeded);
    let d = decide(&dag, &seen, &policy(), 3);
    assert_eq!(started(&d), ["cleanup", "notify"]);
    assert!(d.done.is_none());
    seen.insert("notify".to_owned(), Observed::Succeeded);
    seen.insert("cleanup".to_owned(), Observed::Succeeded);
    assert_eq!(decide(&dag, &seen, &policy(), 4).done, Some(RunEnd::Succeeded));
}

#[test]
fn fail_fast_skips_the_rest_and_still_runs_finally() {
    let dag = dag();
    let mut seen = BTreeMap::new();
    seen.insert("build".to_owned(), failed(0));
    seen.insert(
        "lint".to_owned(),
        Observed::Running {
            attempt: 0,
            since: Some(0),
        },
    );
    let d = decide(&dag, &seen, &policy(), 5);
    assert_eq!(
        d.cancel,
        [("lint".to_owned(), StopReason::FailFast("build".to_owned()))]
    );
    // test depends on build: skipped for it, fail-fast or not.
    assert_eq!(
        d.skip,
        [("test".to_owned(), StopReason::Dependency("build".to_owned()))]
    );
    assert!(d.start.is_empty() && d.done.is_none(), "{d:?}");
    seen.insert("lint".to_owned(), Observed::Cancelled);
    seen.insert("test".to_owned(), Observed::Cancelled);
    let d = decide(&dag, &seen, &policy(), 6);
    assert_eq!(started(&d), ["cleanup", "notify"]);
    assert!(d.skip.is_empty() && d.cancel.is_empty());
    seen.insert("notify".to_owned(), Observed::Succeeded);
    seen.insert("cleanup".to_owned(), Observed::Succeeded);
    assert_eq!(decide(&dag, &seen, &policy(), 7).done, Some(RunEnd::Failed));
}

#[test]
fn the_skip_decision_alone_never_ends_a_run_with_finally_steps() {
    // The last regular step is skipped in this very decision: the run must not end.
    let dag = dag();
    let mut seen = BTreeMap::new();
    seen.insert("build".to_owned(), failed(0));
    seen.insert("lint".to_owned(), Observed::Succeeded);
    let d = decide(&dag, &seen, &policy().fail_fast(false), 1);
    assert_eq!(
        d.skip,
        [("test".to_owned(), StopReason::Dependency("build".to_owned()))]
    );
    assert_eq!(d.done, None);
}

#[test]
fn cancel_stops_the_steps_then_runs_finally_which_the_cancel_does_not_stop() {
    let dag = dag();
    let cancelled = policy().cancelled();
    let mut seen = BTreeMap::new();
    seen.insert(
        "build".to_owned(),
        Observed::Running {
            attempt: 0,
            since: Some(0),
        },
    );
    let d = decide(&dag, &seen, &cancelled, 1);
    assert_eq!(d.cancel, [("build".to_owned(), StopReason::RunCancelled)]);
    let skipped: Vec<&str> = d.skip.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        skipped,
        ["lint", "test"],
        "finally steps are not skipped by a cancel"
    );
    for step in ["build", "lint", "test"] {
        seen.insert(step.to_owned(), Observed::Cancelled);
    }
    let d = decide(&dag, &seen, &cancelled, 2);
    assert_eq!(started(&d), ["cleanup", "notify"]);
    seen.insert(
        "notify".to_owned(),
        Observed::Running {
            attempt: 0,
            since: Some(2),
        },
    );
    seen.insert("cleanup".to_owned(), Observed::Succeeded);
    let d = decide(&dag, &seen, &cancelled, 3);
    assert!(d.cancel.is_empty() && d.done.is_none(), "{d:?}");
    seen.insert("notify".to_owned(), Observed::Succeeded);
    assert_eq!(decide(&dag, &seen, &cancelled, 4).done, Some(RunEnd::Cancelled));
}

#[test]
fn a_failing_finally_step_fails_the_run_but_stops_no_other_finally_step() {
    let dag = dag();
    let mut seen: BTreeMap<String, Observed> = ["build", "test", "lint"]
        .into_iter()
        .map(|s| (s.to_owned(), Observed::Succeeded))
        .collect();
    seen.insert("notify".to_owned(), failed(0));
    seen.insert(
        "cleanup".to_owned(),
        Observed::Running {
            attempt: 0,
            since: Some(0),
        },
    );
    let d = decide(&dag, &seen, &policy(), 1);
    assert!(d.cancel.is_empty() && d.done.is_none(), "{d:?}");
    seen.insert("cleanup".to_owned(), Observed::Succeeded);
    assert_eq!(decide(&dag, &seen, &policy(), 2).done, Some(RunEnd::Failed));
}

#[test]
fn the_run_deadline_stops_finally_steps_too() {
    let dag = dag();
    let policy = policy().run_deadline(10);
    let mut seen: BTreeMap<String, Observed> = ["build", "test", "lint"]
        .into_iter()
        .map(|s| (s.to_owned(), Observed::Succeeded))
        .collect();
    seen.insert(
        "notify".to_owned(),
        Observed::Running {
            attempt: 0,
            since: Some(5),
        },
    );
    let d = decide(&dag, &seen, &policy, 10);
    assert_eq!(d.cancel, [("notify".to_owned(), StopReason::RunDeadline)]);
    assert_eq!(d.skip, [("cleanup".to_owned(), StopReason::RunDeadline)]);
}

#[test]
fn user_retries_add_attempts_to_their_step_only() {
    let dag = Dag::new([("flaky", Vec::<&str>::new()), ("solid", vec![])]).unwrap_or_else(|e| panic!("{e}"));
    let policy = Policy::default()
        .max_attempts(1)
        .fail_fast(false)
        .retries_for("flaky", 2);
    let retry = |attempt| Observed::Failed {
        attempt,
        retry_at: Some(0),
        errored: false,
    };
    let mut seen = BTreeMap::new();
    seen.insert("flaky".to_owned(), retry(0));
    seen.insert("solid".to_owned(), retry(0));
    let d = decide(&dag, &seen, &policy, 1);
    assert_eq!(d.start.len(), 1, "{d:?}");
    assert_eq!((d.start[0].step.as_str(), d.start[0].attempt), ("flaky", 1));
    seen.insert("flaky".to_owned(), retry(1));
    assert_eq!(decide(&dag, &seen, &policy, 2).start[0].attempt, 2);
    seen.insert("flaky".to_owned(), retry(2));
    let d = decide(&dag, &seen, &policy, 3);
    assert!(d.start.is_empty(), "the budget is spent: {d:?}");
    assert_eq!(d.done, Some(RunEnd::Failed));
}
