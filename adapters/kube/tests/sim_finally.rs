//! `finally` steps and the user's `retries` on the simulated cluster: a
//! finally step is created only once every other step has finished — after a
//! success, a failure (fail-fast), a cancel — and its pod carries the final
//! states; a step's retries cover only the failures it names, come after the
//! runner's own retries of transient faults, and are counted apart.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{RetryPolicy, RunOptions, RunState, RunStatus, Step, StepObject, StepState, run_pipeline};
use c8s_pipeline_model::Retries;
use c8s_pipeline_model::finally::{ATTEMPT_ENV, ATTEMPT_LABEL, RUN_STATUS_ENV};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A pod for `step` with a `main` container, as pod-builder renders one.
fn pod(step: &str) -> StepObject {
    StepObject::Pod(Box::new(Pod {
        metadata: ObjectMeta {
            name: Some(format!("t-{step}")),
            labels: Some([("c8s.dev/step".to_owned(), step.to_owned())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some("alpine:3".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// build -> test, lint beside them, notify as the finally step watching all three.
fn pipeline() -> Vec<Step> {
    vec![
        Step::new("build", pod("build")),
        Step::new("test", pod("test")).after(["build"]),
        Step::new("lint", pod("lint")),
        Step::new("notify", pod("notify")).finally(["build", "test", "lint"]),
    ]
}

/// The one object created for `step` (its last attempt).
fn created(sim: &SimCluster, step: &str) -> StepObject {
    sim.created_objects()
        .into_iter()
        .rfind(|o| o.label("c8s.dev/step") == Some(step))
        .unwrap_or_else(|| panic!("no object created for {step}"))
}

fn env(object: &StepObject, name: &str) -> String {
    object.main_env(name).unwrap_or("<unset>").to_owned()
}

fn state(status: &RunStatus, step: &str) -> StepState {
    status.step(step).unwrap().state
}

/// Whether every object of `first` was created before any of `then`.
fn created_before(sim: &SimCluster, first: &[&str], then: &str) -> bool {
    let order: Vec<String> = sim
        .created_objects()
        .iter()
        .filter_map(|o| o.label("c8s.dev/step").map(str::to_owned))
        .collect();
    let first_then = order.iter().position(|s| s == then).unwrap();
    order
        .iter()
        .enumerate()
        .all(|(i, s)| !first.contains(&s.as_str()) || i < first_then)
}

#[tokio::test(start_paused = true)]
async fn finally_runs_last_and_sees_every_step_succeed() {
    let sim = SimCluster::new();
    sim.script("build", StepScript::new(secs(10)));
    sim.script("test", StepScript::new(secs(30)));
    sim.script("lint", StepScript::new(secs(5)));
    let status = run_pipeline(&sim, pipeline(), RunOptions::new("t"), std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert!(created_before(&sim, &["build", "test", "lint"], "notify"));
    let notify = created(&sim, "notify");
    assert_eq!(env(&notify, RUN_STATUS_ENV), "Succeeded");
    assert_eq!(env(&notify, "C8S_STEP_TEST_STATUS"), "Succeeded");
    assert_eq!(env(&notify, ATTEMPT_ENV), "1");
    assert_eq!(notify.label(ATTEMPT_LABEL), Some("1"));
    // notify starts at 40s (after test) and runs 1s.
    assert_eq!(common::makespan(&status), secs(41));
}

#[tokio::test(start_paused = true)]
async fn finally_runs_after_a_failure_and_sees_the_right_states() {
    let sim = SimCluster::new();
    sim.script("build", StepScript::new(secs(10)).exit_code(2));
    sim.script("lint", StepScript::new(secs(60)));
    let status = run_pipeline(&sim, pipeline(), RunOptions::new("t"), std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
    assert_eq!(state(&status, "build"), StepState::Failed);
    assert_eq!(state(&status, "lint"), StepState::Cancelled);
    assert_eq!(state(&status, "notify"), StepState::Succeeded);
    assert!(created_before(&sim, &["build", "lint"], "notify"));
    let notify = created(&sim, "notify");
    assert_eq!(env(&notify, RUN_STATUS_ENV), "Failed");
    assert_eq!(env(&notify, "C8S_STEP_BUILD_STATUS"), "Failed");
    // Below the failure: skipped for it, fail-fast or not (the controller says so too).
    assert_eq!(env(&notify, "C8S_STEP_TEST_STATUS"), "Skipped");
    assert_eq!(env(&notify, "C8S_STEP_LINT_STATUS"), "Cancelled");
    assert!(sim.live_objects().is_empty(), "{:?}", sim.live_objects());
}

#[tokio::test(start_paused = true)]
async fn finally_runs_after_a_cancel_and_is_not_cancelled_itself() {
    let sim = SimCluster::new();
    sim.script("build", StepScript::new(secs(100)));
    sim.script("lint", StepScript::new(secs(100)));
    sim.script("notify", StepScript::new(secs(20)));
    let cancel = tokio::time::sleep(secs(10));
    let status = run_pipeline(&sim, pipeline(), RunOptions::new("t"), cancel)
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Cancelled, "{}", status.to_json());
    assert_eq!(state(&status, "build"), StepState::Cancelled);
    assert_eq!(
        state(&status, "notify"),
        StepState::Succeeded,
        "{}",
        status.to_json()
    );
    let notify = created(&sim, "notify");
    assert_eq!(env(&notify, RUN_STATUS_ENV), "Cancelled");
    assert_eq!(env(&notify, "C8S_STEP_BUILD_STATUS"), "Cancelled");
    assert_eq!(env(&notify, "C8S_STEP_TEST_STATUS"), "Cancelled");
    // Cancelled at 10s, notify ran its full 20s after.
    assert!(
        common::makespan(&status) >= secs(30),
        "{:?}",
        common::makespan(&status)
    );
    assert!(sim.live_objects().is_empty(), "{:?}", sim.live_objects());
}

#[tokio::test(start_paused = true)]
async fn a_failing_finally_step_fails_a_run_whose_steps_succeeded() {
    let sim = SimCluster::new();
    sim.script("notify", StepScript::new(secs(1)).exit_code(1));
    let status = run_pipeline(&sim, pipeline(), RunOptions::new("t"), std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
    for step in ["build", "test", "lint"] {
        assert_eq!(state(&status, step), StepState::Succeeded);
    }
    assert_eq!(state(&status, "notify"), StepState::Failed);
}

fn one(retries: Retries) -> Vec<Step> {
    vec![Step::new("flaky", pod("flaky")).with_retries(retries)]
}

#[tokio::test(start_paused = true)]
async fn retries_on_any_rerun_a_failed_step_with_the_attempt_in_label_and_env() {
    let sim = SimCluster::new();
    sim.script("flaky", StepScript::new(secs(5)).failed_runs(2));
    let status = run_pipeline(
        &sim,
        one(Retries::any(2)),
        RunOptions::new("t"),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    let step = status.step("flaky").unwrap();
    assert_eq!((step.attempts, step.retries, step.runner_retries), (3, 2, 0));
    let attempts: Vec<(Option<String>, String)> = sim
        .created_objects()
        .iter()
        .map(|o| (o.label(ATTEMPT_LABEL).map(str::to_owned), env(o, ATTEMPT_ENV)))
        .collect();
    assert_eq!(
        attempts,
        [
            (Some("1".into()), "1".into()),
            (Some("2".into()), "2".into()),
            (Some("3".into()), "3".into())
        ]
    );
    assert!(sim.live_objects().is_empty(), "{:?}", sim.live_objects());
}

#[tokio::test(start_paused = true)]
async fn retries_run_out() {
    let sim = SimCluster::new();
    sim.script("flaky", StepScript::new(secs(5)).failed_runs(5));
    let status = run_pipeline(
        &sim,
        one(Retries::any(2)),
        RunOptions::new("t"),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
    let step = status.step("flaky").unwrap();
    assert_eq!((step.attempts, step.retries), (3, 2));
    assert_eq!(step.outcome.as_ref().unwrap().exit_code, Some(1));
}

#[tokio::test(start_paused = true)]
async fn infrastructure_retries_leave_a_failed_exit_alone() {
    let sim = SimCluster::new();
    sim.script("flaky", StepScript::new(secs(5)).failed_runs(1));
    let status = run_pipeline(
        &sim,
        one(Retries::infrastructure(3)),
        RunOptions::new("t"),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
    assert_eq!(status.step("flaky").unwrap().attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn infrastructure_retries_come_after_the_runners_own_and_are_counted_apart() {
    let sim = SimCluster::new();
    sim.script("flaky", StepScript::new(secs(5)).image_pull_failures(3));
    let mut retry = RetryPolicy::default();
    retry.image_pull_retries = 2;
    let options = RunOptions::new("t").retry(retry.clone());
    let status = run_pipeline(
        &sim,
        one(Retries::infrastructure(1)),
        options,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    let step = status.step("flaky").unwrap();
    assert_eq!((step.attempts, step.runner_retries, step.retries), (4, 2, 1));

    // Without the user's retries the runner's budget alone is not enough.
    let sim = SimCluster::new();
    sim.script("flaky", StepScript::new(secs(5)).image_pull_failures(3));
    let steps = vec![Step::new("flaky", pod("flaky"))];
    let status = run_pipeline(
        &sim,
        steps,
        RunOptions::new("t").retry(retry),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
    assert_eq!(status.step("flaky").unwrap().attempts, 3);
}
