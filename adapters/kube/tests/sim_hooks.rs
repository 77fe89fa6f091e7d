//! Concourse hooks and `try` on the simulated cluster, lowered and run as
//! `c8s run` does (`lower_job` → `plan_steps_with` → `run_pipeline` with the
//! job's outcome): which pods ran and the build's result, as Concourse's
//! docs (concourse-ci.org/modifier-and-hook-steps.html) state them.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{RunState, RunStatus, StepState};
use c8s_pipeline_model::MemorySource;
use c8s_pipeline_model::concourse::Vars;
use c8s_pipeline_model::concourse::{lower_job, parse_concourse_pipeline};
use c8s_pod_builder::RunContext;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// An inline task config, as a YAML anchor the pipelines reuse.
const TASK: &str = "{ platform: linux, image_resource: { type: registry-image, source: { repository: alpine } }, run: { path: 'true' } }";

/// Runs job `job` of `pipeline` (with `TASK` for `CFG`) on `sim`.
async fn run(sim: &SimCluster, pipeline: &str) -> RunStatus {
    run_until(sim, pipeline, std::future::pending()).await
}

/// [`run`], cancelled when `cancel` completes.
async fn run_until(
    sim: &SimCluster,
    pipeline: &str,
    cancel: impl std::future::Future<Output = ()>,
) -> RunStatus {
    common::run_concourse_job(sim, &lower(pipeline), cancel).await
}

/// Job `job` of `pipeline` (with `TASK` for `CFG`), lowered.
fn lower(pipeline: &str) -> c8s_pipeline_model::concourse::JobPlan {
    let text = pipeline.replace("CFG", TASK);
    let reader = MemorySource::new();
    let parsed =
        parse_concourse_pipeline("p.yml", &text, &Vars::new(), &reader).unwrap_or_else(|e| panic!("{e}"));
    lower_job(&parsed, "job", &reader, &BTreeMap::new(), "p.yml").unwrap_or_else(|e| panic!("{e}"))
}

/// The state of step `job.NAME` (its step is named after its object).
fn state(status: &RunStatus, name: &str) -> StepState {
    let ctx = RunContext::new("t", 1);
    let object = status
        .steps
        .iter()
        .map(|s| s.name.clone())
        .find(|o| *o == object_of(&ctx, name))
        .unwrap_or_else(|| panic!("no step {name}: {}", status.to_json()));
    status.step(&object).unwrap().state
}

/// The object name of step `job.NAME` in run `t`.
fn object_of(ctx: &RunContext, name: &str) -> String {
    let plan = c8s_pipeline_model::TaskPlan::new(
        c8s_pipeline_model::PlanIdentity::new("p", format!("job.{name}")),
        "alpine",
    );
    c8s_pod_builder::object_name(&plan, ctx)
}

/// Whether a pod of step `job.NAME` was created.
fn ran(sim: &SimCluster, name: &str) -> bool {
    let label = format!("job.{name}");
    sim.created_objects()
        .iter()
        .any(|o| o.label("c8s.dev/step") == Some(label.as_str()))
}

fn fail(sim: &SimCluster, name: &str) {
    sim.script(&format!("job.{name}"), StepScript::new(secs(5)).exit_code(1));
}

#[tokio::test(start_paused = true)]
async fn a_failed_task_runs_its_on_failure_hook_not_its_on_success_hook_and_fails_the_build() {
    let sim = SimCluster::new();
    fail(&sim, "build");
    let status = run(
        &sim,
        "jobs:
- name: job
  plan:
  - task: build
    config: CFG
    on_success: { task: good, config: CFG }
    on_failure: { task: bad, config: CFG }
",
    )
    .await;
    assert!(ran(&sim, "build") && ran(&sim, "bad"), "{}", status.to_json());
    assert!(!ran(&sim, "good"));
    assert_eq!(state(&status, "bad"), StepState::Succeeded);
    assert_eq!(state(&status, "good"), StepState::Skipped);
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
}

#[tokio::test(start_paused = true)]
async fn a_failing_ensure_hook_fails_the_build_after_a_successful_task() {
    let sim = SimCluster::new();
    fail(&sim, "cleanup");
    let status = run(
        &sim,
        "jobs:
- name: job
  plan:
  - task: build
    config: CFG
    ensure: { task: cleanup, config: CFG }
",
    )
    .await;
    assert!(ran(&sim, "build") && ran(&sim, "cleanup"));
    assert_eq!(state(&status, "build"), StepState::Succeeded);
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
}

#[tokio::test(start_paused = true)]
async fn a_try_around_a_failing_task_lets_the_next_step_run_and_the_build_succeed() {
    let sim = SimCluster::new();
    fail(&sim, "flaky");
    let status = run(
        &sim,
        "jobs:
- name: job
  plan:
  - try: { task: flaky, config: CFG }
  - task: next
    config: CFG
",
    )
    .await;
    assert_eq!(state(&status, "flaky"), StepState::Failed);
    assert!(ran(&sim, "next"));
    assert_eq!(state(&status, "next"), StepState::Succeeded);
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
}

#[tokio::test(start_paused = true)]
async fn a_task_that_times_out_runs_its_on_error_hook_not_its_on_failure_hook() {
    let sim = SimCluster::new();
    sim.script("job.slow", StepScript::new(secs(600)));
    let status = run(
        &sim,
        "jobs:
- name: job
  plan:
  - task: slow
    timeout: 10s
    config: CFG
    on_error: { task: errored, config: CFG }
    on_failure: { task: failed, config: CFG }
",
    )
    .await;
    assert_eq!(state(&status, "slow"), StepState::Failed, "{}", status.to_json());
    assert!(ran(&sim, "errored"), "{}", status.to_json());
    assert!(!ran(&sim, "failed"));
    assert_eq!(status.state, RunState::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_job_on_failure_hook_runs_after_a_failed_step_inside_a_do() {
    let sim = SimCluster::new();
    fail(&sim, "second");
    let status = run(
        &sim,
        "jobs:
- name: job
  plan:
  - do:
    - task: first
      config: CFG
    - task: second
      config: CFG
    - task: third
      config: CFG
  on_failure: { task: alert, config: CFG }
  on_success: { task: celebrate, config: CFG }
",
    )
    .await;
    assert!(ran(&sim, "first") && ran(&sim, "second"));
    assert!(!ran(&sim, "third"), "{}", status.to_json());
    assert!(ran(&sim, "alert"), "{}", status.to_json());
    assert!(!ran(&sim, "celebrate"));
    assert_eq!(status.state, RunState::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_step_skipped_after_a_failure_runs_none_of_its_hooks() {
    let sim = SimCluster::new();
    fail(&sim, "first");
    let status = run(
        &sim,
        "jobs:
- name: job
  plan:
  - task: first
    config: CFG
  - task: second
    config: CFG
    on_success: { task: s, config: CFG }
    on_failure: { task: f, config: CFG }
    on_error: { task: e, config: CFG }
    on_abort: { task: a, config: CFG }
    ensure: { task: always, config: CFG }
",
    )
    .await;
    assert!(ran(&sim, "first"));
    for never in ["second", "s", "f", "e", "a", "always"] {
        assert!(!ran(&sim, never), "{never} ran: {}", status.to_json());
    }
    assert_eq!(state(&status, "second"), StepState::Skipped);
    assert_eq!(status.state, RunState::Failed);
}

#[tokio::test(start_paused = true)]
async fn an_aborted_task_runs_its_on_abort_and_ensure_hooks_not_its_on_failure_hook() {
    let sim = SimCluster::new();
    sim.script("job.build", StepScript::new(secs(600)));
    let pipeline = "jobs:
- name: job
  plan:
  - task: build
    config: CFG
    on_abort: { task: aborted, config: CFG }
    on_failure: { task: failed, config: CFG }
    ensure: { task: always, config: CFG }
  - task: next
    config: CFG
";
    let status = run_until(&sim, pipeline, tokio::time::sleep(secs(10))).await;
    assert_eq!(status.state, RunState::Cancelled, "{}", status.to_json());
    assert_eq!(state(&status, "build"), StepState::Cancelled);
    assert!(
        ran(&sim, "aborted") && ran(&sim, "always"),
        "{}",
        status.to_json()
    );
    assert_eq!(state(&status, "aborted"), StepState::Succeeded);
    assert!(!ran(&sim, "failed") && !ran(&sim, "next"));
}

/// `attempts: 2` runs the same pod spec again after a failure, before any
/// hook sees the result (atc/exec/retry_step.go; `attempts` is inside the
/// hooks in atc/steps.go): a task that fails once succeeds on its second
/// attempt, its `on_failure` hook never runs and the build succeeds.
#[tokio::test(start_paused = true)]
async fn attempts_run_the_task_again_before_its_hooks_see_the_result() {
    const PIPELINE: &str = "jobs:
- name: job
  plan:
  - task: flaky
    config: CFG
    attempts: 2
    on_failure: { task: bad, config: CFG }
    ensure: { task: always, config: CFG }
";
    // Failing once: the second attempt succeeds, no failure hook. Failing
    // twice: the attempts are spent, the step fails and its hook runs.
    for (failures, flaky, build) in [
        (1, StepState::Succeeded, RunState::Succeeded),
        (2, StepState::Failed, RunState::Failed),
    ] {
        let sim = SimCluster::new();
        sim.script("job.flaky", StepScript::new(secs(5)).failed_runs(failures));
        let status = run(&sim, PIPELINE).await;
        let flaky_pods = sim
            .created_objects()
            .iter()
            .filter(|o| o.label("c8s.dev/step") == Some("job.flaky"))
            .count();
        assert_eq!(flaky_pods, 2, "{}", status.to_json());
        assert_eq!(state(&status, "flaky"), flaky, "{}", status.to_json());
        assert_eq!(ran(&sim, "bad"), failures == 2, "{}", status.to_json());
        assert!(ran(&sim, "always"));
        assert_eq!(status.state, build, "{}", status.to_json());
    }
}

/// A task that cannot run (Concourse: its `file:` could not be read from
/// its artifact, and the task step errors) errors without a pod: `on_error`
/// and `ensure` run, `on_failure` does not, the build fails.
#[tokio::test(start_paused = true)]
async fn a_task_that_cannot_run_errors_without_a_pod_and_runs_on_error_and_ensure() {
    let sim = SimCluster::new();
    let text = "jobs:
- name: job
  plan:
  - task: unit
    config: CFG
  - task: after
    config: CFG
  on_failure: { task: page, config: CFG }
  on_error: { task: report, config: CFG }
  ensure: { task: cleanup, config: CFG }
";
    let job = lower(text);
    let reason = "task file \"repo/ci/unit.yml\" is not in artifact `repo`";
    let status =
        common::run_concourse_job_with(&sim, &job, &[("job.unit", reason)], std::future::pending()).await;
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
    assert_eq!(state(&status, "unit"), StepState::Failed);
    let ctx = RunContext::new("t", 1);
    let unit = status.step(&object_of(&ctx, "unit")).unwrap();
    let outcome = unit.outcome.as_ref().unwrap();
    assert_eq!(outcome.reason, c8s_kube::TerminationReason::Rejected);
    assert!(outcome.message.contains(reason), "{}", outcome.message);
    assert!(!ran(&sim, "unit") && !ran(&sim, "after") && !ran(&sim, "page"));
    assert!(ran(&sim, "report") && ran(&sim, "cleanup"));
}
