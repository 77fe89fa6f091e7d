//! A 200-step random DAG on the simulated cluster: schedule quality, faults,
//! no lost results, no duplicate executions, no leaked pods.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{FailureMode, RetryPolicy, RunOptions, RunState, StepState, TerminationReason, run_pipeline};
use common::{Dag, Lcg, makespan};

const SEED: u64 = 20_261_122;
const STEPS: usize = 200;

fn script_all(sim: &SimCluster, dag: &Dag) {
    for (i, name) in dag.names.iter().enumerate() {
        sim.script(name, StepScript::new(dag.durations[i]));
    }
}

#[tokio::test(start_paused = true)]
async fn makespan_equals_the_critical_path_and_beats_layer_by_layer() {
    let dag = Dag::random(SEED, STEPS);
    let sim = SimCluster::new();
    script_all(&sim, &dag);
    let status = run_pipeline(
        &sim,
        dag.steps("cp"),
        RunOptions::new("cp"),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());

    let (actual, critical, layered) = (makespan(&status), dag.critical_path(), dag.layer_by_layer());
    println!("makespan {actual:?}, critical path {critical:?}, layer-by-layer {layered:?}");
    assert_eq!(actual, critical);
    assert!(
        layered > critical,
        "layer-by-layer {layered:?} should be longer than {critical:?}"
    );
    assert!(sim.live_objects().is_empty());
}

#[tokio::test(start_paused = true)]
async fn every_step_starts_when_its_own_dependencies_finish() {
    let dag = Dag::random(SEED, STEPS);
    let sim = SimCluster::new();
    script_all(&sim, &dag);
    let status = run_pipeline(
        &sim,
        dag.steps("ready"),
        RunOptions::new("ready"),
        std::future::pending(),
    )
    .await
    .unwrap();
    for (i, step) in status.steps.iter().enumerate() {
        let last_dep = dag.deps[i]
            .iter()
            .map(|&d| status.steps[d].finished_at.unwrap())
            .max();
        let expected = last_dep.unwrap_or(status.started_at.unwrap());
        assert_eq!(step.started_at.unwrap(), expected, "step {}", step.name);
    }
}

/// Injects faults into roughly a third of the steps; returns the number of
/// extra pods each step should need.
fn inject_faults(sim: &SimCluster, dag: &Dag) -> BTreeMap<String, u32> {
    let mut rng = Lcg::new(SEED + 1);
    let mut extra_pods = BTreeMap::new();
    for (i, name) in dag.names.iter().enumerate() {
        let mut script = StepScript::new(dag.durations[i]);
        let mut extra = 0;
        match rng.below(12) {
            0 => script = script.create_errors([503, 429]),
            1 => script = script.create_errors([500]).delete_errors([503]),
            2 => {
                script = script.image_pull_failures(1);
                extra = 1;
            }
            3 => {
                script = script.evictions(1, dag.durations[i] / 2);
                extra = 1;
            }
            4 => script = script.watch_disconnects(2),
            5 => script = script.unschedulable_for(Duration::from_secs(45)),
            6 => script = script.start_delay(Duration::from_secs(20)),
            7 => {
                script = script
                    .image_pull_failures(1)
                    .evictions(1, Duration::from_secs(1))
                    .watch_disconnects(1);
                extra = 2;
            }
            _ => {}
        }
        extra_pods.insert(name.clone(), extra);
        sim.script(name, script);
    }
    extra_pods
}

#[tokio::test(start_paused = true)]
async fn faults_are_retried_without_lost_results_duplicates_or_leaks() {
    let dag = Dag::random(SEED, STEPS);
    let sim = SimCluster::new();
    let extra_pods = inject_faults(&sim, &dag);
    let options = RunOptions::new("faults").parallelism(16);
    let status = run_pipeline(&sim, dag.steps("faults"), options, std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());

    let stats = sim.stats();
    let pods: u32 = stats.creates.values().sum();
    println!(
        "{STEPS} steps, {pods} pods: {} API errors, {} watch disconnects, {} image pull failures, \
         {} evictions, {} unschedulable pods; makespan {:?} (critical path {:?})",
        stats.api_errors,
        stats.watch_disconnects,
        stats.image_pull_failures,
        stats.evictions,
        stats.unschedulable_pods,
        makespan(&status),
        dag.critical_path(),
    );
    assert_eq!(status.steps.len(), STEPS);
    for step in &status.steps {
        assert_eq!(step.state, StepState::Succeeded, "{}", step.name);
        let outcome = step.outcome.as_ref().unwrap();
        assert_eq!(
            (outcome.exit_code, outcome.reason),
            (Some(0), TerminationReason::Completed)
        );
        let want = 1 + extra_pods[&step.name];
        assert_eq!(
            stats.creates[&step.name], want,
            "{} created {} pods",
            step.name, stats.creates[&step.name]
        );
        assert_eq!(step.attempts, want);
        assert_eq!(
            stats.max_live_per_step[&step.name], 1,
            "{} ran twice at once",
            step.name
        );
    }
    // The cap bounds running pods; finished ones may still be being deleted.
    assert!(stats.max_running_total <= 16, "{}", stats.max_running_total);
    assert!(stats.max_running_total >= 8, "{}", stats.max_running_total);
    assert!(stats.api_errors > 0 && stats.watch_disconnects > 0 && stats.image_pull_failures > 0);
    assert!(stats.evictions > 0 && stats.unschedulable_pods > 0);
    assert!(sim.live_objects().is_empty(), "leaked {:?}", sim.live_objects());
    // Retries cost time, never correctness: still no earlier than the critical path.
    assert!(makespan(&status) >= dag.critical_path());
}

#[tokio::test(start_paused = true)]
async fn a_failure_under_faults_fails_fast_and_leaks_nothing() {
    let dag = Dag::random(SEED, STEPS);
    let sim = SimCluster::new();
    inject_faults(&sim, &dag);
    sim.script("s120", StepScript::new(dag.durations[120]).exit_code(2));
    let status = run_pipeline(
        &sim,
        dag.steps("ff"),
        RunOptions::new("ff"),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(status.state, RunState::Failed);
    let failed: Vec<_> = status
        .steps
        .iter()
        .filter(|s| s.state == StepState::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].name, "s120");
    assert_eq!(failed[0].outcome.as_ref().unwrap().exit_code, Some(2));
    assert!(status.steps.iter().all(|s| s.state.is_final()));
    assert!(status.steps.iter().any(|s| s.state == StepState::Cancelled));
    let stats = sim.stats();
    assert!(stats.max_live_per_step.values().all(|&n| n == 1));
    assert!(sim.live_objects().is_empty(), "leaked {:?}", sim.live_objects());
}

#[tokio::test(start_paused = true)]
async fn a_failure_with_continue_skips_only_its_dependents() {
    let dag = Dag::random(SEED, STEPS);
    let sim = SimCluster::new();
    script_all(&sim, &dag);
    sim.script("s010", StepScript::new(dag.durations[10]).exit_code(1));
    let options = RunOptions::new("cont").failure_mode(FailureMode::ContinueOnFailure);
    let status = run_pipeline(&sim, dag.steps("cont"), options, std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Failed);

    // Independently: the steps reachable from s010.
    let mut affected = [false; STEPS];
    for i in 11..STEPS {
        affected[i] = dag.deps[i].iter().any(|&d| d == 10 || affected[d]);
    }
    for (i, step) in status.steps.iter().enumerate() {
        let want = match i {
            10 => StepState::Failed,
            _ if affected[i] => StepState::Skipped,
            _ => StepState::Succeeded,
        };
        assert_eq!(step.state, want, "{}", step.name);
    }
    println!(
        "skipped {} of {STEPS} steps",
        affected.iter().filter(|a| **a).count()
    );
    assert!(sim.live_objects().is_empty());
}

#[tokio::test(start_paused = true)]
async fn cancellation_deletes_every_running_pod() {
    let dag = Dag::random(SEED, STEPS);
    let sim = SimCluster::new();
    inject_faults(&sim, &dag);
    let cancel = tokio::time::sleep(Duration::from_secs(90));
    let options = RunOptions::new("cancel")
        .parallelism(8)
        .retry(RetryPolicy::default());
    let status = run_pipeline(&sim, dag.steps("cancel"), options, cancel)
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Cancelled);
    // Cancelled at 90 s; cleanup may retry injected delete errors with backoff.
    let span = makespan(&status);
    assert!(
        span >= Duration::from_secs(90) && span < Duration::from_secs(100),
        "{span:?}"
    );
    let cancelled = status
        .steps
        .iter()
        .filter(|s| s.state == StepState::Cancelled)
        .count();
    let succeeded = status
        .steps
        .iter()
        .filter(|s| s.state == StepState::Succeeded)
        .count();
    println!("cancelled at 90s: {succeeded} succeeded, {cancelled} cancelled");
    assert!(cancelled > 0 && succeeded > 0);
    assert_eq!(cancelled + succeeded, STEPS);
    assert!(sim.live_objects().is_empty(), "leaked {:?}", sim.live_objects());
}

#[tokio::test(start_paused = true)]
async fn the_same_faults_give_the_same_status_record_twice() {
    let dag = Dag::random(SEED, STEPS);
    let mut records = Vec::new();
    for _ in 0..2 {
        let sim = SimCluster::new();
        inject_faults(&sim, &dag);
        let options = RunOptions::new("again").parallelism(16);
        let status = run_pipeline(&sim, dag.steps("again"), options, std::future::pending())
            .await
            .unwrap();
        records.push(status.to_json());
    }
    assert_eq!(records[0], records[1]);
}

#[tokio::test(start_paused = true)]
async fn slow_deletes_do_not_hold_back_dependents() {
    // A chain of three 10 s steps whose pods take 30 s to delete: dependents
    // start when a step succeeds, not when its pod is gone.
    let sim = SimCluster::new();
    sim.default_script(StepScript::new(Duration::from_secs(10)).delete_delay(Duration::from_secs(30)));
    let steps = vec![
        c8s_kube::Step::new("a", common::pod("slow", "a")),
        c8s_kube::Step::new("b", common::pod("slow", "b")).after(["a"]),
        c8s_kube::Step::new("c", common::pod("slow", "c")).after(["b"]),
    ];
    let status = run_pipeline(&sim, steps, RunOptions::new("slow"), std::future::pending())
        .await
        .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    let last = status.steps.iter().filter_map(|s| s.finished_at).max().unwrap();
    let span = last.duration_since(status.started_at.unwrap());
    assert_eq!(span.as_secs(), 30, "{}", status.to_json());
    // The run returns once the deletes are accepted, not when the pods are
    // gone: the pods are still terminating, and gone a delete later.
    assert_eq!(makespan(&status), Duration::from_secs(30), "{}", status.to_json());
    assert_eq!(sim.live_objects(), ["slow-a", "slow-b", "slow-c"]);
    assert_eq!(sim.stats().deletes, 3);
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert!(sim.live_objects().is_empty(), "{:?}", sim.live_objects());
}

#[tokio::test(start_paused = true)]
async fn a_random_dag_with_slow_deletes_still_runs_in_the_critical_path() {
    let dag = Dag::random(SEED, STEPS);
    let sim = SimCluster::new();
    for (i, name) in dag.names.iter().enumerate() {
        let delete = Duration::from_secs(5 + (i as u64 % 4) * 10);
        sim.script(name, StepScript::new(dag.durations[i]).delete_delay(delete));
    }
    let status = run_pipeline(
        &sim,
        dag.steps("slowdel"),
        RunOptions::new("slowdel"),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(status.state, RunState::Succeeded);
    // Every result is known at the critical path, and the run returns then:
    // it requests the deletes, it does not wait for the pods to be gone.
    let last = status.steps.iter().filter_map(|s| s.finished_at).max().unwrap();
    let results = Duration::try_from(last.duration_since(status.started_at.unwrap())).unwrap();
    assert_eq!(results, dag.critical_path());
    assert_eq!(makespan(&status), dag.critical_path());
    assert_eq!(sim.stats().deletes as usize, dag.names.len());
    // Every pod is gone once the slowest delete (35 s) ran out.
    tokio::time::sleep(Duration::from_secs(36)).await;
    assert!(sim.live_objects().is_empty(), "{:?}", sim.live_objects());
}
