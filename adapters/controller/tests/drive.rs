//! `drive_run`, the reconcile driven to a run's end in one process (what
//! `c8s run` calls), on the simulated cluster under paused
//! time: what wakes a pass, what cancels a run, and what a failed pass
//! does.

use std::time::Duration;

use c8s_controller::crd::{PipelineRunStatus, RunPhase, StepPhase, StepRunStatus};
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
    driven_with(sim, &hourly(), cancel).await
}

/// [`driven`] with `settings`.
async fn driven_with(
    sim: &SimCluster,
    settings: &Settings,
    cancel: impl std::future::Future<Output = ()>,
) -> (PipelineRunStatus, u32) {
    let (run, steps) = support::new_run(PIPELINE, None);
    let mut passes = 0;
    let status = drive_run(
        sim,
        &run,
        &steps,
        settings,
        |_, _| {
            passes += 1;
            async {}
        },
        cancel,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    (status, passes)
}

/// The status of the step called `name` (a part of its object name).
fn step_named<'a>(status: &'a PipelineRunStatus, name: &str) -> &'a StepRunStatus {
    status
        .steps
        .iter()
        .find(|s| s.name.contains(name))
        .unwrap_or_else(|| panic!("no step {name}: {status:#?}"))
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

#[tokio::test(start_paused = true)]
async fn a_pod_the_scheduler_refuses_for_good_fails_its_step_at_once_and_goes() {
    let sim = sim(5);
    let why = "0/2 nodes are available: persistentvolumeclaim \"no-such-claim\" not found.";
    sim.script(
        "build",
        StepScript::new(Duration::from_secs(5)).never_schedulable(why),
    );
    let begun = Instant::now();
    let (status, _) = driven(&sim, std::future::pending()).await;
    assert_eq!(status.phase, RunPhase::Failed, "{status:#?}");
    let build = step_named(&status, "build");
    assert!(build.message.contains("no-such-claim"), "{build:#?}");
    assert_eq!(phase_of(&status, "test"), StepPhase::Skipped);
    // Not the hour's capacity wait: the scheduler's words say it will never fit.
    assert!(begun.elapsed() < Duration::from_secs(60), "{:?}", begun.elapsed());
    assert!(
        sim.live_objects().iter().all(|o| !o.contains("build")),
        "{:?}",
        sim.live_objects()
    );
}

#[tokio::test(start_paused = true)]
async fn a_pod_whose_main_never_starts_fails_its_step_at_the_start_timeout_naming_what_waits() {
    let sim = sim(5);
    sim.script(
        "build",
        StepScript::new(Duration::from_secs(5)).stuck("postgres", "CrashLoopBackOff", "startup probe failed"),
    );
    let settings = Settings {
        start_timeout: Duration::from_secs(20),
        ..hourly()
    };
    let begun = Instant::now();
    let (status, _) = driven_with(&sim, &settings, std::future::pending()).await;
    let took = begun.elapsed();
    assert_eq!(status.phase, RunPhase::Failed, "{status:#?}");
    let build = step_named(&status, "build");
    assert!(build.message.contains("did not start within 20s"), "{build:#?}");
    assert!(build.message.contains("postgres: CrashLoopBackOff"), "{build:#?}");
    assert!(
        took >= Duration::from_secs(20) && took < Duration::from_secs(120),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pod_no_node_matches_waits_while_the_autoscaler_adds_one() {
    let sim = sim(5);
    let why = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.";
    let script = StepScript::new(Duration::from_secs(5))
        .never_schedulable(why)
        .event(
            "TriggeredScaleUp",
            "pod triggered scale-up: [{pool-gpu 0->1 (max: 3)}]",
        );
    sim.script("build", script);
    let settings = Settings {
        capacity_wait: Duration::from_secs(300),
        ..hourly()
    };
    let begun = Instant::now();
    let (status, _) = driven_with(&sim, &settings, std::future::pending()).await;
    // Not failed at once: the wait ran to its bound, which names the scheduler's words.
    assert_eq!(status.phase, RunPhase::Failed, "{status:#?}");
    let build = step_named(&status, "build");
    assert!(
        build.message.contains("no node could take the pod within 300s"),
        "{build:#?}"
    );
    assert!(
        begun.elapsed() >= Duration::from_secs(300),
        "{:?}",
        begun.elapsed()
    );
}

/// A driver stopped in the middle of a run (its process killed) and a new
/// one started from the status the first saved in its `on_pass` finish the
/// run as one driver would have: the running attempt's pod is taken up, and
/// the retry the deleted first attempt spent is not given again (the
/// cluster no longer shows it: only the saved status does).
#[tokio::test(start_paused = true)]
async fn a_run_resumed_from_its_saved_status_spends_no_retry_twice() {
    let sim = sim(20);
    sim.script("build", StepScript::new(Duration::from_secs(20)).exit_code(1));
    let retried = PIPELINE.replace(
        r#"commands: ["true"] }
  - { name: test"#,
        r#"commands: ["true"], retries: 1 }
  - { name: test"#,
    );
    let (mut run, steps) = support::new_run(&retried, None);
    let saved = std::cell::RefCell::new(None::<PipelineRunStatus>);
    let settings = hourly();
    let first = drive_run(
        &sim,
        &run,
        &steps,
        &settings,
        |_, pass| {
            *saved.borrow_mut() = Some(pass.status.clone());
            async {}
        },
        std::future::pending(),
    );
    let mut first = Box::pin(first);
    // Killed while `build`'s second attempt runs.
    let second_runs = |s: &PipelineRunStatus| {
        let build = step_named(s, "build");
        build.attempt == 1 && build.phase == StepPhase::Running && build.retry_at.is_none()
    };
    while !saved.borrow().as_ref().is_some_and(second_runs) {
        tokio::select! {
            ended = &mut first => panic!("the run ended before it was stopped: {ended:?}"),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    drop(first);
    run.status = saved.take();
    let status = drive_run(
        &sim,
        &run,
        &steps,
        &settings,
        |_, _| async {},
        std::future::pending(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.phase, RunPhase::Failed, "{status:#?}");
    assert_eq!(step_named(&status, "build").retries.user, 1, "{status:#?}");
    let objects = sim.created_objects();
    let builds = objects
        .iter()
        .filter(|o| o.name().is_some_and(|n| n.contains("build")))
        .count();
    assert_eq!(builds, 2, "one pod per attempt: {objects:#?}");
}
