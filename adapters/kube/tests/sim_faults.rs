//! What a real cluster does that a happy simulation would not: pods that are
//! never scheduled, causes only Events tell, sidecars and init containers that
//! never let `main` start, the pod's own deadline, expired watches, writes
//! whose answer is lost. Each must end the step, named, within a bound.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{
    RunOptions, RunState, RunStatus, Step, StepOutcome, StepState, TerminationReason, run_pipeline,
};
use common::{makespan, pod};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

async fn run_one(sim: &SimCluster, script: StepScript, options: RunOptions) -> RunStatus {
    sim.script("only", script);
    let steps = vec![Step::new("only", pod("t", "only"))];
    run_pipeline(sim, steps, options, std::future::pending())
        .await
        .unwrap()
}

/// The failed step's outcome; the run failed and left nothing behind.
fn failed(sim: &SimCluster, status: &RunStatus) -> StepOutcome {
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
    let step = status.step("only").unwrap();
    assert_eq!(step.state, StepState::Failed, "{}", status.to_json());
    assert!(sim.live_objects().is_empty(), "{:?}", sim.live_objects());
    step.outcome.clone().unwrap()
}

#[tokio::test(start_paused = true)]
async fn waiting_for_capacity_is_bounded() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(5)).never_schedulable("0/3 nodes are available: 3 Insufficient cpu.");
    let options = RunOptions::new("t").capacity_wait(secs(120));
    let status = run_one(&sim, script, options).await;
    let outcome = failed(&sim, &status);
    assert_eq!(outcome.reason, TerminationReason::Error);
    assert!(
        outcome.message.contains("no node could take the pod within 120s")
            && outcome.message.contains("3 Insufficient cpu"),
        "{}",
        outcome.message
    );
    assert_eq!(makespan(&status), secs(120));
}

#[tokio::test(start_paused = true)]
async fn a_missing_volume_claim_is_reported_from_the_events_at_once() {
    let sim = SimCluster::new();
    let why = "0/3 nodes are available: persistentvolumeclaim \"cache\" not found.";
    let script = StepScript::new(secs(5))
        .never_schedulable(why)
        .event("FailedScheduling", why);
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    let outcome = failed(&sim, &status);
    assert!(
        outcome.message.contains("cannot start: FailedScheduling: ")
            && outcome.message.contains("\"cache\" not found"),
        "{}",
        outcome.message
    );
    assert!(makespan(&status) < secs(5), "{:?}", makespan(&status));
    assert_eq!(sim.stats().event_reads, 1);
}

#[tokio::test(start_paused = true)]
async fn no_node_matching_the_selector_is_not_waited_for() {
    let sim = SimCluster::new();
    let why = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.";
    let script = StepScript::new(secs(5))
        .never_schedulable(why)
        .event("FailedScheduling", why);
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    let outcome = failed(&sim, &status);
    assert!(
        outcome.message.contains("node affinity/selector"),
        "{}",
        outcome.message
    );
    assert!(makespan(&status) < secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_missing_secret_volume_is_reported_from_the_events() {
    let sim = SimCluster::new();
    let mount = "MountVolume.SetUp failed for volume \"creds\" : secret \"db\" not found";
    let script = StepScript::new(secs(5))
        .stuck("main", "ContainerCreating", "")
        .event("FailedMount", mount);
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    let outcome = failed(&sim, &status);
    assert!(
        outcome.message.contains("FailedMount: ") && outcome.message.contains("secret \"db\" not found"),
        "{}",
        outcome.message
    );
    // Read once the pod has been pending a while, not for every pod.
    assert_eq!(makespan(&status), secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_missing_secret_key_ends_the_step_naming_the_container() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(5)).stuck(
        "main",
        "CreateContainerConfigError",
        "couldn't find key password in Secret t/db",
    );
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    let outcome = failed(&sim, &status);
    assert_eq!(
        outcome.message,
        "container main: CreateContainerConfigError: couldn't find key password in Secret t/db"
    );
    assert!(makespan(&status) < secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_sidecar_that_never_starts_ends_the_step_within_the_start_bound() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(5)).stuck(
        "db",
        "CrashLoopBackOff",
        "back-off 5m0s restarting failed container=db",
    );
    let options = RunOptions::new("t").start_timeout(secs(300));
    let status = run_one(&sim, script.clone(), options).await;
    let outcome = failed(&sim, &status);
    assert!(
        outcome.message.starts_with("main did not start within 300s")
            && outcome
                .message
                .contains("container db: CrashLoopBackOff: back-off"),
        "{}",
        outcome.message
    );
    assert_eq!(makespan(&status), secs(300));

    // The pod's own activeDeadlineSeconds comes first: a timeout, still naming db.
    let sim = SimCluster::new();
    let status = run_one(&sim, script.active_deadline(secs(60)), RunOptions::new("t")).await;
    let outcome = failed(&sim, &status);
    assert_eq!(outcome.reason, TerminationReason::DeadlineExceeded);
    assert!(
        outcome.message.contains("container db: CrashLoopBackOff"),
        "{}",
        outcome.message
    );
    assert_eq!(makespan(&status), secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_failing_init_container_is_named() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(5))
        .start_delay(secs(3))
        .init_fails("git-clone", 128);
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    let outcome = failed(&sim, &status);
    assert_eq!(outcome.reason, TerminationReason::Error);
    assert_eq!(outcome.message, "container git-clone exited 128 (Error)");
    assert_eq!(makespan(&status), secs(3));
}

#[tokio::test(start_paused = true)]
async fn the_pods_deadline_is_a_timeout_not_error_137() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(3600)).active_deadline(secs(60));
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    let outcome = failed(&sim, &status);
    assert_eq!(outcome.reason, TerminationReason::DeadlineExceeded);
    assert_eq!(outcome.exit_code, None);
    assert_eq!(makespan(&status), secs(60));
}

#[tokio::test(start_paused = true)]
async fn an_evicted_pod_is_retried_although_main_shows_137() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(10)).evictions(1, secs(2));
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(sim.stats().creates["only"], 2);
}

#[tokio::test(start_paused = true)]
async fn expired_watches_relist_and_the_step_completes() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(10)).watch_expirations(3);
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(sim.stats().watches, 4);
    assert_eq!(sim.stats().creates["only"], 1);
}

#[tokio::test(start_paused = true)]
async fn watches_that_keep_breaking_end_the_step_after_a_bound() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(3600)).watch_expirations(u32::MAX);
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    let step = status.step("only").unwrap();
    assert_eq!(step.state, StepState::Failed, "{}", status.to_json());
    let retries = RunOptions::new("t").retry.watch_retries;
    assert!(
        step.outcome.as_ref().unwrap().message.contains("gave up"),
        "{}",
        status.to_json()
    );
    // Each pod gets `1 + watch_retries` subscriptions; the step no more than its disruption retries.
    let pods = sim.stats().creates["only"];
    assert!(sim.stats().watches <= pods * (1 + retries), "{:?}", sim.stats());
    assert!(sim.live_objects().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_delete_whose_answer_was_lost_still_counts() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(10)).lost_delete_responses(1);
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert!(status.message.is_empty(), "{}", status.message);
    assert!(sim.live_objects().is_empty());
    assert_eq!(sim.stats().deletes, 1);
}

#[tokio::test(start_paused = true)]
async fn a_run_opens_one_watch_for_all_its_steps() {
    let sim = SimCluster::new();
    sim.default_script(StepScript::new(secs(10)));
    let mut steps = vec![Step::new("s0", pod("t", "s0"))];
    for i in 1..40 {
        let step = Step::new(format!("s{i}"), pod("t", &format!("s{i}"))).after([format!("s{}", i / 2)]);
        steps.push(step);
    }
    let status = run_pipeline(&sim, steps, RunOptions::new("t"), std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    let stats = sim.stats();
    assert_eq!(stats.watches, 1);
    // Per step: a create and a delete; the run record's writes (one per
    // group of steps that end together: 6 levels here, each cut in two at
    // most by the grouping); the run's one watch, and the record's creation
    // and deletion.
    assert!(stats.record_writes <= 6 * 2, "{stats:?}");
    assert_eq!(stats.requests, 40 * 2 + stats.record_writes + 1 + 2, "{stats:?}");
}

/// Holds everything back until the stream ends (the worst case of a masker's tail).
struct HoldAll(Vec<u8>);

impl c8s_kube::LogMasker for HoldAll {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.0.extend_from_slice(chunk);
        Vec::new()
    }
    fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_log_stream_cut_at_the_grace_still_flushes_the_held_back_tail() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(10))
        .log(["build ok\n", "tail"])
        .log_stays_open();
    let sink = common::Collect::new();
    let masker: c8s_kube::MaskerFactory =
        std::sync::Arc::new(|_: &str| Box::new(HoldAll(Vec::new())) as Box<dyn c8s_kube::LogMasker>);
    let options = RunOptions::new("t").logs(c8s_kube::LogOptions::new(masker, sink.clone()));
    let status = run_one(&sim, script, options).await;
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(sink.text("only"), "build ok\ntail");
    assert!(sim.live_objects().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_client_side_rate_limit_spreads_a_wide_pipeline() {
    let wide = || {
        (0..200)
            .map(|i| Step::new(format!("s{i}"), pod("t", &format!("s{i}"))))
            .collect::<Vec<_>>()
    };
    let run = |options: RunOptions| async {
        let sim = SimCluster::new();
        sim.default_script(StepScript::new(secs(1)));
        let status = run_pipeline(&sim, wide(), options, std::future::pending())
            .await
            .unwrap();
        assert_eq!(status.state, RunState::Succeeded);
        makespan(&status)
    };
    assert_eq!(run(RunOptions::new("t").rate_limit(0, 0)).await, secs(1));
    // 200 creates and 200 deletes at 10 per second, 10 at once: about 39 s.
    let limited = run(RunOptions::new("t").rate_limit(10, 10)).await;
    assert!(limited >= secs(19) && limited <= secs(40), "{limited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_broken_log_stream_is_resumed_without_repeating_or_losing_lines() {
    let sim = SimCluster::new();
    // Each of the first two streams breaks after its first chunk; each new
    // stream starts again at the log's beginning.
    let script = StepScript::new(secs(10))
        .log(["one\n", "two s3", "cret\n", "three\n"])
        .log_breaks(2);
    let sink = common::Collect::new();
    let masker: c8s_kube::MaskerFactory = std::sync::Arc::new(|_: &str| {
        Box::new(c8s_pipeline_model::SecretMasker::new(["s3cret"]).unwrap()) as Box<dyn c8s_kube::LogMasker>
    });
    let options = RunOptions::new("t").logs(c8s_kube::LogOptions::new(masker, sink.clone()));
    let status = run_one(&sim, script, options).await;
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(sink.text("only"), "one\ntwo ***\nthree\n");
}

#[tokio::test(start_paused = true)]
async fn a_log_stream_that_keeps_breaking_ends_flushed_and_unrepeated() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(10)).log(["one\n", "two\n"]).log_breaks(100);
    let sink = common::Collect::new();
    let masker: c8s_kube::MaskerFactory =
        std::sync::Arc::new(|_: &str| Box::new(HoldAll(Vec::new())) as Box<dyn c8s_kube::LogMasker>);
    let options = RunOptions::new("t").logs(c8s_kube::LogOptions::new(masker, sink.clone()));
    let status = run_one(&sim, script, options).await;
    // The step's result does not depend on its log; what was read is
    // flushed once, never twice.
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(sink.text("only"), "one\n");
}
