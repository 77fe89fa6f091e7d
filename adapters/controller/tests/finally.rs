//! `finally` steps and user `retries` under the controller, on the simulated
//! cluster: the same rules as `c8s run` — finally steps start once every
//! other step has finished (after a failure, after a cancel) and see the
//! outcomes as env; a step with `retries` runs again after the failures it
//! names, with its attempt number (from 1) in the pod's label and env.

use std::time::Duration;

use c8s_controller::crd::{PipelineRun, PipelineRunStatus, RunPhase, StepPhase};
use c8s_controller::{Admission, RunSteps};
use c8s_kube::StepObject;
use c8s_kube::sim::{SimCluster, StepScript};

mod support;

const PIPELINE: &str = r#"
name: shop
repository: https://example.com/shop.git
steps:
  - { name: flaky, image: "alpine:3", commands: ["true"], retries: 2 }
  - { name: infra-only, image: "alpine:3", commands: ["true"], retries: { limit: 2, when: [infrastructure] } }
  - { name: build, image: "alpine:3", commands: ["true"], dependsOn: [flaky] }
  - { name: e2e, image: "alpine:3", commands: ["true"], dependsOn: [build] }
finally:
  - { name: notify, image: "alpine:3", commands: ["true"] }
"#;

fn new_run() -> (PipelineRun, RunSteps) {
    support::new_run(PIPELINE, None)
}

async fn drive(
    cluster: &SimCluster,
    run: &mut PipelineRun,
    steps: &RunSteps,
    cancel_at: Option<u32>,
) -> PipelineRunStatus {
    support::drive(cluster, run, steps, &Admission::default(), cancel_at).await
}

fn created(cluster: &SimCluster, step: &str) -> Vec<StepObject> {
    cluster
        .created_objects()
        .into_iter()
        .filter(|o| o.label(c8s_kube::STEP_LABEL) == Some(step))
        .collect()
}

fn phase(status: &PipelineRunStatus, step: &str) -> Option<StepPhase> {
    let prefix = format!("shop-{step}-");
    status
        .steps
        .iter()
        .find(|s| s.name.starts_with(&prefix))
        .map(|s| s.phase)
}

#[tokio::test(start_paused = true)]
async fn finally_runs_after_a_failure_and_sees_every_outcome() {
    let cluster = SimCluster::new();
    cluster.default_script(StepScript::new(Duration::from_secs(5)));
    cluster.script("build", StepScript::new(Duration::from_secs(5)).exit_code(2));
    let (mut run, steps) = new_run();
    let status = drive(&cluster, &mut run, &steps, None).await;
    assert_eq!(status.phase, RunPhase::Failed, "{status:#?}");
    assert_eq!(phase(&status, "e2e"), Some(StepPhase::Skipped));
    assert_eq!(
        phase(&status, "notify"),
        Some(StepPhase::Succeeded),
        "{status:#?}"
    );
    let notify = created(&cluster, "notify");
    assert_eq!(notify.len(), 1);
    let env = |var: &str| notify[0].main_env(var).map(str::to_owned);
    assert_eq!(env("C8S_RUN_STATUS").as_deref(), Some("Failed"));
    assert_eq!(env("C8S_STEP_BUILD_STATUS").as_deref(), Some("Failed"));
    assert_eq!(env("C8S_STEP_FLAKY_STATUS").as_deref(), Some("Succeeded"));
    assert_eq!(env("C8S_STEP_E2E_STATUS").as_deref(), Some("Skipped"));
    // notify started only once build had failed: after build's create.
    let order: Vec<String> = cluster
        .created_objects()
        .iter()
        .filter_map(|o| o.label(c8s_kube::STEP_LABEL).map(str::to_owned))
        .collect();
    let at = |s: &str| order.iter().position(|o| o == s);
    assert!(at("build") < at("notify"), "{order:?}");
}

#[tokio::test(start_paused = true)]
async fn finally_runs_after_a_cancel_and_says_so() {
    let cluster = SimCluster::new();
    cluster.default_script(StepScript::new(Duration::from_secs(30)));
    let (mut run, steps) = new_run();
    let status = drive(&cluster, &mut run, &steps, Some(10)).await;
    assert_eq!(status.phase, RunPhase::Cancelled, "{status:#?}");
    let notify = created(&cluster, "notify");
    assert_eq!(notify.len(), 1, "{status:#?}");
    assert_eq!(notify[0].main_env("C8S_RUN_STATUS"), Some("Cancelled"));
    assert_eq!(notify[0].main_env("C8S_STEP_FLAKY_STATUS"), Some("Cancelled"));
    // Never started: the run was cancelled first (what `c8s run` says too).
    assert_eq!(notify[0].main_env("C8S_STEP_BUILD_STATUS"), Some("Cancelled"));
}

#[tokio::test(start_paused = true)]
async fn user_retries_rerun_the_failures_they_name_with_the_attempt_number() {
    let cluster = SimCluster::new();
    cluster.default_script(StepScript::new(Duration::from_secs(5)));
    cluster.script("flaky", StepScript::new(Duration::from_secs(5)).failed_runs(2));
    let (mut run, steps) = new_run();
    let status = drive(&cluster, &mut run, &steps, None).await;
    assert_eq!(status.phase, RunPhase::Succeeded, "{status:#?}");
    let flaky = created(&cluster, "flaky");
    let attempts: Vec<_> = flaky
        .iter()
        .map(|o| {
            (
                o.label(c8s_controller::reconcile::ATTEMPT_LABEL),
                o.main_env("C8S_ATTEMPT"),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (Some("1"), Some("1")),
            (Some("2"), Some("2")),
            (Some("3"), Some("3"))
        ]
    );
    // The rest ran: build after flaky's third attempt, then e2e, then notify.
    assert_eq!(phase(&status, "e2e"), Some(StepPhase::Succeeded), "{status:#?}");
    assert_eq!(phase(&status, "notify"), Some(StepPhase::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn retries_on_infrastructure_leave_an_exit_failure_alone() {
    let cluster = SimCluster::new();
    cluster.default_script(StepScript::new(Duration::from_secs(5)));
    cluster.script(
        "infra-only",
        StepScript::new(Duration::from_secs(5)).failed_runs(1),
    );
    let (mut run, steps) = new_run();
    let status = drive(&cluster, &mut run, &steps, None).await;
    assert_eq!(
        phase(&status, "infra-only"),
        Some(StepPhase::Failed),
        "{status:#?}"
    );
    assert_eq!(status.phase, RunPhase::Failed);
    assert_eq!(created(&cluster, "infra-only").len(), 1);
    // An eviction is the pod's failure, not the step's: retried.
    let cluster = SimCluster::new();
    cluster.default_script(StepScript::new(Duration::from_secs(5)));
    cluster.script(
        "infra-only",
        StepScript::new(Duration::from_secs(5)).evictions(4, Duration::from_secs(2)),
    );
    let (mut run, steps) = new_run();
    let status = drive(&cluster, &mut run, &steps, None).await;
    // Three attempts of the controller's own plus the user's two: the fifth succeeds.
    assert_eq!(
        phase(&status, "infra-only"),
        Some(StepPhase::Succeeded),
        "{status:#?}"
    );
    assert_eq!(created(&cluster, "infra-only").len(), 5);
}
