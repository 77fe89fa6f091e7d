//! Single-step behaviour on the simulated cluster: outcomes, retries,
//! timeouts, capacity waits, sidecars, masked logs, the status record.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{
    Error, LogOptions, RunOptions, RunState, RunStatus, Step, StepState, TerminationReason, run_pipeline,
};
use common::{Collect, makespan, pod};

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

#[tokio::test(start_paused = true)]
async fn exit_codes_and_reasons_are_reported() {
    let cases = [
        (
            StepScript::new(secs(5)),
            Some(0),
            TerminationReason::Completed,
            StepState::Succeeded,
        ),
        (
            StepScript::new(secs(5)).exit_code(3),
            Some(3),
            TerminationReason::Error,
            StepState::Failed,
        ),
        (
            StepScript::new(secs(5)).oom_killed(),
            Some(137),
            TerminationReason::OomKilled,
            StepState::Failed,
        ),
    ];
    for (script, code, reason, state) in cases {
        let sim = SimCluster::new();
        let status = run_one(&sim, script, RunOptions::new("t")).await;
        let step = status.step("only").unwrap();
        let outcome = step.outcome.as_ref().unwrap();
        assert_eq!(
            (outcome.exit_code, outcome.reason, step.state),
            (code, reason, state)
        );
        let ran = outcome
            .finished_at
            .unwrap()
            .duration_since(outcome.started_at.unwrap());
        assert_eq!(Duration::try_from(ran).unwrap(), secs(5));
        assert!(sim.live_objects().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn native_sidecar_exit_codes_after_main_never_count() {
    // The simulated native sidecar ends with 143 once main exited 0.
    let sim = SimCluster::new();
    let status = run_one(&sim, StepScript::new(secs(3)), RunOptions::new("t")).await;
    assert_eq!(status.state, RunState::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn legacy_sidecars_main_result_is_recorded_and_the_pod_deleted() {
    let sim = SimCluster::new();
    let mut options = RunOptions::new("t");
    options.keep_pods = true; // legacy pods are deleted even then: they would run forever
    let status = run_one(
        &sim,
        StepScript::new(secs(3)).exit_code(1).legacy_sidecars(),
        options,
    )
    .await;
    let outcome = status.step("only").unwrap().outcome.clone().unwrap();
    assert_eq!(outcome.exit_code, Some(1));
    assert_eq!(makespan(&status), secs(3));
    assert!(sim.live_objects().is_empty());
}

#[tokio::test(start_paused = true)]
async fn finished_pods_are_kept_on_request() {
    let sim = SimCluster::new();
    let mut options = RunOptions::new("t");
    options.keep_pods = true;
    run_one(&sim, StepScript::new(secs(3)), options).await;
    assert_eq!(sim.live_objects(), ["t-only"]);
}

#[tokio::test(start_paused = true)]
async fn permanent_api_errors_are_never_retried() {
    for code in [403, 409, 422] {
        let sim = SimCluster::new();
        let status = run_one(
            &sim,
            StepScript::new(secs(1)).create_errors([code]),
            RunOptions::new("t"),
        )
        .await;
        let step = status.step("only").unwrap();
        let outcome = step.outcome.as_ref().unwrap();
        assert_eq!(outcome.reason, TerminationReason::Rejected, "{code}");
        assert!(outcome.message.contains(&code.to_string()), "{}", outcome.message);
        assert_eq!(sim.stats().api_errors, 1, "{code} was retried");
        assert_eq!(step.attempts, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn transient_api_errors_are_retried_with_backoff() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(1)).create_errors([429, 500, 502, 503, 504]);
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    assert_eq!(status.state, RunState::Succeeded);
    assert_eq!(sim.stats().api_errors, 5);
    assert_eq!(sim.stats().creates["only"], 1);
    // Five backoffs: 0.5+1+2+4+8 s with jitter in [0.5, 1): between 7.75 s and 15.5 s, plus the 1 s run.
    let span = makespan(&status);
    assert!(
        span > Duration::from_millis(8_750) && span < Duration::from_millis(16_500),
        "{span:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn image_pull_failures_beyond_the_limit_fail_the_step() {
    let sim = SimCluster::new();
    let status = run_one(
        &sim,
        StepScript::new(secs(1)).image_pull_failures(u32::MAX),
        RunOptions::new("t"),
    )
    .await;
    let step = status.step("only").unwrap();
    assert_eq!(
        step.outcome.as_ref().unwrap().reason,
        TerminationReason::ImagePullBackOff
    );
    // The first pod plus `image_pull_retries` (2) new ones, each with a fresh name.
    assert_eq!(sim.stats().creates["only"], 3);
    assert_eq!(step.object.as_deref(), Some("t-only-r2"));
    assert_eq!(sim.stats().max_live_per_step["only"], 1);
    assert!(sim.live_objects().is_empty());
}

#[tokio::test(start_paused = true)]
async fn evictions_beyond_the_limit_fail_the_step() {
    let sim = SimCluster::new();
    let status = run_one(
        &sim,
        StepScript::new(secs(10)).evictions(9, secs(2)),
        RunOptions::new("t"),
    )
    .await;
    let outcome = status.step("only").unwrap().outcome.clone().unwrap();
    assert_eq!(outcome.reason, TerminationReason::Evicted);
    assert!(
        outcome.message.contains("TerminationByKubelet"),
        "{}",
        outcome.message
    );
    assert_eq!(sim.stats().creates["only"], 4);
}

#[tokio::test(start_paused = true)]
async fn unschedulable_pods_wait_for_capacity_with_the_scheduler_reason() {
    let sim = SimCluster::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let options = RunOptions::new("t")
        .capacity_wait(secs(900))
        .on_progress(Arc::new(move |s: &c8s_kube::StepStatus| {
            record.lock().unwrap().push((s.state, s.waiting_reason.clone()));
        }));
    let script = StepScript::new(secs(5)).unschedulable_for(secs(600));
    let status = run_one(
        &sim,
        script.clone().exit_code(0),
        options.clone().timeout(secs(3600)),
    )
    .await;
    assert_eq!(status.state, RunState::Succeeded);
    assert_eq!(makespan(&status), secs(605));
    let waiting = (
        StepState::WaitingForCapacity,
        Some("0/3 nodes are available: 3 Insufficient cpu.".to_owned()),
    );
    assert!(
        seen.lock().unwrap().contains(&waiting),
        "{:?}",
        seen.lock().unwrap()
    );

    // The step timeout does not run while waiting for capacity; the run timeout does.
    let sim = SimCluster::new();
    sim.script("only", script);
    let steps = vec![Step::new("only", pod("t", "only")).with_timeout(secs(60))];
    let status = run_pipeline(&sim, steps, options.timeout(secs(300)), std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Failed);
    assert_eq!(status.message, "the run's timeout ran out");
    assert_eq!(status.step("only").unwrap().state, StepState::Cancelled);
    assert_eq!(makespan(&status), secs(300));
    assert!(sim.live_objects().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_step_timeout_ends_the_step_with_deadline_exceeded() {
    let sim = SimCluster::new();
    sim.script("slow", StepScript::new(secs(3600)).start_delay(secs(5)));
    let steps = vec![Step::new("slow", pod("t", "slow")).with_timeout(secs(60))];
    let status = run_pipeline(&sim, steps, RunOptions::new("t"), std::future::pending())
        .await
        .unwrap();
    let step = status.step("slow").unwrap();
    assert_eq!(step.state, StepState::Failed);
    assert_eq!(
        step.outcome.as_ref().unwrap().reason,
        TerminationReason::DeadlineExceeded
    );
    assert_eq!(makespan(&status), secs(60));
    assert!(sim.live_objects().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_parallelism_cap_holds() {
    let sim = SimCluster::new();
    sim.default_script(StepScript::new(secs(10)));
    let steps = (0..20)
        .map(|i| Step::new(format!("p{i}"), pod("cap", &format!("p{i}"))))
        .collect();
    let status = run_pipeline(
        &sim,
        steps,
        RunOptions::new("cap").parallelism(3),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(status.state, RunState::Succeeded);
    assert_eq!(sim.stats().max_live_total, 3);
    assert_eq!(makespan(&status), secs(70)); // ceil(20 / 3) waves of 10 s
}

#[tokio::test(start_paused = true)]
async fn logs_reach_the_sink_masked_even_when_a_secret_is_split() {
    let sim = SimCluster::new();
    let chunks: [&[u8]; 4] = [
        b"connecting with hunter",
        b"2-secret\n",
        b"token aHVudGVyMi1zZWNyZXQ=\n",
        b"done\n",
    ];
    sim.script("only", StepScript::new(secs(4)).log(chunks));
    let sink = Collect::new();
    let masker: c8s_kube::MaskerFactory = Arc::new(|_container: &str| {
        let masker = c8s_pipeline_model::SecretMasker::new(["hunter2-secret"]).unwrap();
        Box::new(masker) as Box<dyn c8s_kube::LogMasker>
    });
    let options = RunOptions::new("t").logs(LogOptions::new(masker, sink.clone()));
    let steps = vec![Step::new("only", pod("t", "only"))];
    let status = run_pipeline(&sim, steps, options, std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded);
    let text = sink.text("only");
    println!("{text}");
    assert!(text.starts_with("connecting with ***"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("aHVudGVy"), "{text}");
    assert!(text.ends_with("done\n"), "{text}");
    for (_, _, _, chunk) in sink.0.lock().unwrap().iter() {
        assert!(!String::from_utf8_lossy(chunk).contains("hunter"));
    }
}

#[tokio::test(start_paused = true)]
async fn the_status_record_round_trips_as_json() {
    let sim = SimCluster::new();
    let status = run_one(&sim, StepScript::new(secs(2)).exit_code(1), RunOptions::new("t")).await;
    let json = status.to_json();
    let back: RunStatus = serde_json::from_str(&json).unwrap();
    assert_eq!(back, status);
    assert!(json.contains(r#""state": "Failed""#), "{json}");
    assert!(json.contains(r#""started_at": "2026-01-01T00:00:00Z""#), "{json}");
    assert!(
        json.contains(r#""finished_at": "2026-01-01T00:00:02Z""#),
        "{json}"
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_pipelines_are_refused_before_anything_is_created() {
    let sim = SimCluster::new();
    let cases = [
        vec![
            Step::new("a", pod("t", "a")).after(["b"]),
            Step::new("b", pod("t", "b")).after(["a"]),
        ],
        vec![Step::new("a", pod("t", "a")).after(["ghost"])],
        vec![Step::new("a", pod("t", "a")), Step::new("a", pod("t", "a2"))],
    ];
    for steps in cases {
        let result = run_pipeline(&sim, steps, RunOptions::new("t"), std::future::pending()).await;
        assert!(matches!(result, Err(Error::InvalidPipeline(_))), "{result:?}");
    }
    assert!(sim.stats().creates.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_retry_never_overlaps_an_old_pod_that_could_not_be_deleted() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(10))
        .evictions(1, secs(2))
        .delete_errors([403]);
    let status = run_one(&sim, script, RunOptions::new("t")).await;
    let outcome = status.step("only").unwrap().outcome.clone().unwrap();
    assert_eq!(outcome.reason, TerminationReason::Evicted);
    assert!(
        outcome.message.contains("could not be deleted"),
        "{}",
        outcome.message
    );
    assert_eq!(sim.stats().creates["only"], 1);
    // The run's final sweep deletes it once the API server lets it.
    assert!(sim.live_objects().is_empty());
}

#[tokio::test(start_paused = true)]
async fn retried_pods_get_fresh_deterministic_names() {
    let sim = SimCluster::new();
    let script = StepScript::new(secs(3))
        .image_pull_failures(1)
        .evictions(1, secs(1));
    let names = Arc::new(Mutex::new(Vec::new()));
    let record = names.clone();
    let options = RunOptions::new("t").on_progress(Arc::new(move |s: &c8s_kube::StepStatus| {
        let mut names = record.lock().unwrap();
        if let Some(object) = &s.object
            && names.last() != Some(object)
        {
            names.push(object.clone());
        }
    }));
    let status = run_one(&sim, script, options).await;
    assert_eq!(status.state, RunState::Succeeded);
    assert_eq!(*names.lock().unwrap(), ["t-only", "t-only-r1", "t-only-r2"]);
    assert_eq!(sim.stats().max_live_per_step["only"], 1);
}

#[tokio::test(start_paused = true)]
async fn a_name_conflict_never_deletes_the_other_pod() {
    let sim = SimCluster::new();
    sim.script("only", StepScript::new(secs(600)));
    // Someone else's pod already carries the step's name.
    c8s_kube::Cluster::create(&sim, &pod("t", "only")).await.unwrap();
    let status = run_one(&sim, StepScript::new(secs(600)), RunOptions::new("t")).await;
    let outcome = status.step("only").unwrap().outcome.clone().unwrap();
    assert_eq!(outcome.reason, TerminationReason::Rejected);
    assert!(outcome.message.contains("409"), "{}", outcome.message);
    assert_eq!(sim.live_objects(), ["t-only"]);
    assert_eq!(sim.stats().deletes, 0);
}

/// As `c8s run` builds its steps: each is named after its object (`t-only`)
/// while the pod's `c8s.dev/step` label is the pipeline's step name (`only`).
#[tokio::test(start_paused = true)]
async fn a_lost_create_is_adopted_when_the_step_is_named_after_its_object() {
    let sim = SimCluster::new();
    sim.script("only", StepScript::new(secs(5)).lost_create_responses(1));
    let steps = vec![Step::new("t-only", pod("t", "only"))];
    let status = run_pipeline(&sim, steps, RunOptions::new("t"), std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(sim.stats().creates["only"], 1);
    assert_eq!(status.step("t-only").unwrap().attempts, 1);
    assert!(sim.live_objects().is_empty(), "{:?}", sim.live_objects());
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_answer_was_lost_is_adopted_not_leaked() {
    let sim = SimCluster::new();
    // The pod is created, the answer is a 504; the retried create gets 409.
    let status = run_one(
        &sim,
        StepScript::new(secs(5)).lost_create_responses(1),
        RunOptions::new("t"),
    )
    .await;
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(sim.stats().creates["only"], 1);
    assert_eq!(status.step("only").unwrap().attempts, 1);
    assert!(sim.live_objects().is_empty(), "{:?}", sim.live_objects());
}
