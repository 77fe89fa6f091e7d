//! `drive_run`, the reconcile driven to a run's end in one process (what
//! `c8s run --reconcile` calls), on the simulated cluster under paused
//! time: what wakes a pass, what cancels a run, and what a failed pass
//! does.

use std::time::Duration;

use c8s_controller::crd::{PipelineRunStatus, RunPhase, StepPhase};
use c8s_controller::{Settings, drive_run};
use c8s_kube::sim::{SimCluster, StepScript};
use tokio::time::Instant;

// Shared by the reconcile tests; this file builds runs with it, and drives
// them with `drive_run` instead of its once-a-second loop.
#[allow(dead_code)]
mod support;

const PIPELINE: &str = r#"
name: shop
repository: https://example.com/shop.git
steps:
  - { name: build, image: "alpine:3", commands: ["true"] }
  - { name: test, image: "alpine:3", commands: ["true"], dependsOn: [build] }
finally:
  - { name: notify, image: "alpine:3", commands: ["true"] }
"#;

/// A cluster where every step takes `seconds`.
fn sim(seconds: u64) -> SimCluster {
    let sim = SimCluster::new();
    sim.default_script(StepScript::new(Duration::from_secs(seconds)));
    sim
}

/// Settings that look at a run on their own only once an hour.
fn hourly() -> Settings {
    Settings {
        poll: Duration::from_secs(3600),
        ..Settings::default()
    }
}

/// The pipeline driven on `sim` until it ends (or `cancel` cancels it):
/// its final status and how many passes it took.
async fn driven(sim: &SimCluster, cancel: impl std::future::Future<Output = ()>) -> (PipelineRunStatus, u32) {
    let (run, steps) = support::new_run(PIPELINE, None);
    let mut passes = 0;
    let status = drive_run(
        sim,
        "shop-b7",
        &run.spec,
        &steps,
        &hourly(),
        |_, _| passes += 1,
        cancel,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    (status, passes)
}

fn phase_of(status: &PipelineRunStatus, step: &str) -> StepPhase {
    status
        .steps
        .iter()
        .find(|s| s.name.contains(step))
        .map_or(StepPhase::Pending, |s| s.phase)
}

#[tokio::test(start_paused = true)]
async fn each_change_to_the_runs_pods_wakes_a_pass_so_the_poll_is_never_waited_for() {
    let sim = sim(5);
    let begun = Instant::now();
    let (status, passes) = driven(&sim, std::future::pending()).await;
    assert_eq!(status.phase, RunPhase::Succeeded, "{status:#?}");
    // Three 5-second steps one after another; an hour's poll never came.
    let took = begun.elapsed();
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(passes >= 3, "{passes} passes");
}

#[tokio::test(start_paused = true)]
async fn cancelling_stops_the_running_step_and_still_runs_finally() {
    let sim = sim(600);
    sim.script("notify", StepScript::new(Duration::from_secs(5)));
    let (status, _) = driven(&sim, tokio::time::sleep(Duration::from_secs(30))).await;
    assert_eq!(status.phase, RunPhase::Cancelled, "{status:#?}");
    assert_eq!(phase_of(&status, "build"), StepPhase::Skipped);
    assert_eq!(phase_of(&status, "test"), StepPhase::Skipped);
    assert_eq!(phase_of(&status, "notify"), StepPhase::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_pass_the_api_server_fails_is_tried_again_with_backoff() {
    let sim = sim(5);
    sim.script(
        "build",
        StepScript::new(Duration::from_secs(5)).create_errors([503, 503, 503]),
    );
    let begun = Instant::now();
    let (status, _) = driven(&sim, std::future::pending()).await;
    assert_eq!(status.phase, RunPhase::Succeeded, "{status:#?}");
    // Waited 1 + 2 + 4 seconds between the failed passes, not an hour.
    let took = begun.elapsed();
    assert!(
        took >= Duration::from_secs(7) && took < Duration::from_secs(60),
        "took {took:?}"
    );
}
