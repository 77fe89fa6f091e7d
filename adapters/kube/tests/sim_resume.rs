//! Crash and resume: the runner is stopped at random points of a pipeline
//! and started again with the same run id; the run completes with each step
//! run exactly as often as in an uninterrupted run (once, or once per
//! retried fault) and the same final status.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{Cluster, Error, FailureMode, RunOptions, RunState, RunStatus, run_pipeline};
use common::{Dag, Lcg};

const SEEDS: u64 = 64;
const STEPS: usize = 12;

/// Scripts every step of `dag`: slow deletes, and for some seeds a step
/// that fails, one evicted once, one whose image pull fails once.
fn scripted(dag: &Dag, seed: u64) -> SimCluster {
    let sim = SimCluster::new();
    let mut rng = Lcg::new(seed ^ 0xfa01);
    for (i, name) in dag.names.iter().enumerate() {
        let mut script = StepScript::new(dag.durations[i]).delete_delay(Duration::from_secs(rng.below(20)));
        match rng.below(12) {
            0 => script = script.exit_code(1),
            1 => script = script.evictions(1, Duration::from_secs(1 + rng.below(5))),
            2 => script = script.image_pull_failures(1),
            _ => {}
        }
        sim.script(name, script);
    }
    sim
}

fn options(run: &str, resume: bool) -> RunOptions {
    RunOptions::new(run)
        .failure_mode(FailureMode::ContinueOnFailure)
        .resume(resume)
}

/// What must not depend on crashes: the run's state and, per step, its
/// state, attempts and result.
fn verdict(status: &RunStatus) -> (RunState, BTreeMap<String, String>) {
    let steps = status
        .steps
        .iter()
        .map(|s| {
            let outcome = s.outcome.as_ref().map(|o| (o.exit_code, o.reason));
            (
                s.name.clone(),
                format!("{:?} x{} {outcome:?}", s.state, s.attempts),
            )
        })
        .collect();
    (status.state, steps)
}

#[tokio::test(start_paused = true)]
async fn a_runner_stopped_at_random_points_resumes_without_losing_or_repeating_a_step() {
    let mut crashes_total = 0;
    let mut adopted_total = 0;
    let mut unrecorded = 0;
    for seed in 0..SEEDS {
        let dag = Dag::random(0xc0ffee + seed, STEPS);
        let run = format!("resume{seed}");

        let whole = scripted(&dag, seed);
        let expected = run_pipeline(
            &whole,
            dag.steps(&run),
            options(&run, false),
            std::future::pending(),
        )
        .await
        .unwrap();
        let expected_creates = whole.stats().creates;

        let sim = scripted(&dag, seed);
        let mut rng = Lcg::new(seed);
        let critical = dag.critical_path().as_millis() as u64;
        let first_end = (0..dag.names.len())
            .filter(|&i| dag.deps[i].is_empty())
            .map(|i| dag.durations[i].as_millis() as u64)
            .min()
            .unwrap_or(0);
        let crashes = 1 + rng.below(3);
        let mut status = None;
        for round in 0..=crashes {
            let run_once = run_pipeline(
                &sim,
                dag.steps(&run),
                options(&run, round > 0),
                std::future::pending(),
            );
            if round == crashes {
                status = Some(run_once.await.unwrap());
                break;
            }
            // Stopped somewhere in the run (a kill: the future is dropped,
            // whatever request it was making).
            // One kill in four falls before the first step can end (no
            // record written yet: the run's pods are all there is).
            let at = if rng.below(4) == 0 {
                Duration::from_millis(rng.below(first_end.max(1)))
            } else {
                Duration::from_millis(rng.below(critical.max(1)))
            };
            match tokio::time::timeout(at, run_once).await {
                Ok(done) => {
                    status = Some(done.unwrap());
                    break;
                }
                Err(_) => crashes_total += 1,
            }
            adopted_total += sim.live_objects().len();
            // Killed before the run's first write: pods, no record yet.
            if sim.records().is_empty() && !sim.live_objects().is_empty() {
                unrecorded += 1;
            }
        }
        let status = status.unwrap();
        assert_eq!(
            verdict(&status),
            verdict(&expected),
            "seed {seed}: {}\nuninterrupted: {}",
            status.to_json(),
            expected.to_json()
        );
        let stats = sim.stats();
        assert_eq!(stats.creates, expected_creates, "seed {seed}: {stats:?}");
        // A retry never overlapped the attempt before it.
        assert!(
            stats.max_live_per_step.values().all(|&n| n == 1),
            "seed {seed}: {stats:?}"
        );
        assert!(
            sim.records().is_empty(),
            "seed {seed}: the ended run's record is deleted"
        );
    }
    // The property was exercised: runners were really stopped mid-run with
    // objects alive.
    assert!(crashes_total >= SEEDS, "{crashes_total}");
    assert!(adopted_total >= SEEDS as usize, "{adopted_total}");
    assert!(unrecorded > 0, "no runner was killed before its first write");
}

#[tokio::test(start_paused = true)]
async fn a_step_that_finished_and_was_deleted_while_the_runner_was_down_is_not_run_again() {
    let dag = Dag::random(7, 6);
    let sim = SimCluster::new();
    for (name, duration) in dag.names.iter().zip(&dag.durations) {
        sim.script(
            name,
            StepScript::new(*duration).delete_delay(Duration::from_secs(5)),
        );
    }
    // Stop right after the first steps ended: their pods are deleted (the
    // record says how they ended) before the runner starts again, later.
    let first_end = (0..dag.names.len())
        .filter(|&i| dag.deps[i].is_empty())
        .map(|i| dag.durations[i])
        .min()
        .unwrap()
        + Duration::from_millis(1);
    let stopped = tokio::time::timeout(
        first_end,
        run_pipeline(
            &sim,
            dag.steps("down"),
            options("down", false),
            std::future::pending(),
        ),
    )
    .await;
    assert!(stopped.is_err());
    let record = sim.records().remove("down").unwrap();
    assert!(record.keys().any(|k| k.starts_with("step.")), "{record:?}");
    tokio::time::sleep(Duration::from_secs(120)).await;
    let status = run_pipeline(
        &sim,
        dag.steps("down"),
        options("down", true),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(sim.stats().creates.len(), 6);
    assert!(sim.stats().creates.values().all(|&n| n == 1), "{:?}", sim.stats());
}

#[tokio::test(start_paused = true)]
async fn a_part_of_a_run_keeps_its_record_and_the_rest_runs_no_step_again() {
    let sim = SimCluster::new();
    for name in ["get", "read", "task"] {
        sim.script(name, StepScript::new(Duration::from_secs(2)));
    }
    let step = |name: &str| c8s_kube::Step::new(name, common::pod("parts", name));
    // The first part: the step that makes an artifact and one that reads it,
    // the last of which ends the part (its end must be written too).
    let part = run_pipeline(
        &sim,
        vec![step("get"), step("read").after(["get"])],
        options("parts", false).continued(true),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(part.state, RunState::Succeeded, "{}", part.to_json());
    let record = sim
        .records()
        .remove("parts")
        .expect("the part keeps the run record");
    for name in ["get", "read"] {
        assert!(
            record.keys().any(|k| k.contains(name)),
            "{name} not recorded: {record:?}"
        );
    }
    // The rest, resumed: the ended steps are not run again, and the record
    // goes with the run's end.
    let rest = run_pipeline(
        &sim,
        vec![step("get"), step("task").after(["get"])],
        options("parts", true),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(rest.state, RunState::Succeeded, "{}", rest.to_json());
    let creates = sim.stats().creates;
    assert_eq!(creates.values().sum::<u32>(), 3, "{creates:?}");
    assert!(creates.values().all(|&n| n == 1), "{creates:?}");
    assert!(sim.records().is_empty(), "{:?}", sim.records());
}

#[tokio::test(start_paused = true)]
async fn a_run_id_with_a_record_is_refused_unless_resumed() {
    let dag = Dag::random(3, 4);
    let sim = scripted(&dag, 2000);
    let stopped = tokio::time::timeout(
        Duration::from_millis(500),
        run_pipeline(
            &sim,
            dag.steps("again"),
            options("again", false),
            std::future::pending(),
        ),
    )
    .await;
    assert!(stopped.is_err());
    let refused = run_pipeline(
        &sim,
        dag.steps("again"),
        options("again", false),
        std::future::pending(),
    )
    .await;
    assert!(
        matches!(&refused, Err(Error::RunExists { run_id }) if run_id == "again"),
        "{refused:?}"
    );
    assert!(refused.unwrap_err().to_string().contains("--resume"));
    // Nothing was created twice by the refused start.
    assert!(sim.stats().creates.values().all(|&n| n == 1));
}

/// A step with `retries: 2` whose pods fail `failing` times, then succeed.
fn flaky(sim: &SimCluster, failing: u32) -> Vec<c8s_kube::Step> {
    sim.script(
        "flaky",
        StepScript::new(Duration::from_secs(10))
            .failed_runs(failing)
            .delete_delay(Duration::from_secs(3)),
    );
    let object = common::pod("user", "flaky");
    vec![c8s_kube::Step::new("flaky", object).with_retries(c8s_pipeline_model::Retries::any(2))]
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_continues_the_steps_own_retry_count() {
    // Always failing: 1 + 2 attempts, whenever the runner is killed; one
    // failure then success: 2 attempts.
    for failing in [u32::MAX, 1] {
        let whole = SimCluster::new();
        let expected = run_pipeline(
            &whole,
            flaky(&whole, failing),
            options("user", false),
            std::future::pending(),
        )
        .await
        .unwrap();
        let expected_creates = whole.stats().creates["flaky"];
        assert_eq!(expected_creates, if failing == 1 { 2 } else { 3 });
        // Killed at every second of the run, then at two points at once.
        let kills: Vec<Vec<u64>> = (1..40)
            .map(|s| vec![s])
            .chain([vec![11, 12], vec![5, 22]])
            .collect();
        for at in kills {
            let sim = SimCluster::new();
            let mut status = None;
            for (round, &secs) in at.iter().enumerate() {
                let once = run_pipeline(
                    &sim,
                    flaky(&sim, failing),
                    options("user", round > 0),
                    std::future::pending(),
                );
                if let Ok(done) = tokio::time::timeout(Duration::from_secs(secs), once).await {
                    status = Some(done.unwrap());
                    break;
                }
            }
            let status = match status {
                Some(status) => status,
                None => run_pipeline(
                    &sim,
                    flaky(&sim, failing),
                    options("user", true),
                    std::future::pending(),
                )
                .await
                .unwrap(),
            };
            assert_eq!(
                verdict(&status),
                verdict(&expected),
                "killed at {at:?}: {}\nuninterrupted: {}",
                status.to_json(),
                expected.to_json()
            );
            assert_eq!(
                status.steps[0].retries, expected.steps[0].retries,
                "killed at {at:?}"
            );
            // Never more attempts than `retries` allows.
            assert_eq!(sim.stats().creates["flaky"], expected_creates, "killed at {at:?}");
            assert!(sim.records().is_empty());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_runner_killed_before_its_first_write_resumes_by_following_its_pods() {
    let dag = Dag::random(11, 6);
    let sim = SimCluster::new();
    for (name, duration) in dag.names.iter().zip(&dag.durations) {
        sim.script(name, StepScript::new(*duration));
    }
    // Killed once the first pods exist, before any step ended: no record yet.
    let steps = || dag.steps("early");
    let killed = tokio::time::timeout(Duration::from_millis(1), async {
        run_pipeline(&sim, steps(), options("early", false), std::future::pending()).await
    });
    assert!(killed.await.is_err());
    assert!(sim.records().is_empty(), "{:?}", sim.records());
    assert!(!sim.live_objects().is_empty());
    let resumed = run_pipeline(&sim, steps(), options("early", true), std::future::pending());
    let status = resumed.await.unwrap();
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    // The pods found were followed, not created again.
    let stats = sim.stats();
    assert_eq!(stats.creates.len(), 6, "{stats:?}");
    assert!(stats.creates.values().all(|&n| n == 1), "{stats:?}");
    assert!(sim.records().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_earlier_runs_record_stops_a_new_start_at_its_first_write() {
    // An earlier run of this id was killed between its steps: its record
    // remains, none of its pods do.
    let sim = SimCluster::new();
    sim.default_script(StepScript::new(Duration::from_secs(5)));
    let earlier = [("started".to_owned(), "2025-12-31T23:00:00Z".to_owned())].into();
    assert!(sim.create_record("taken", &earlier).await.unwrap());
    let steps = vec![
        c8s_kube::Step::new("a", common::pod("t", "a")),
        c8s_kube::Step::new("b", common::pod("t", "b")).after(["a"]),
        c8s_kube::Step::new("c", common::pod("t", "c")),
    ];
    // c runs 60 s: a's end is the run's first write.
    sim.script("c", StepScript::new(Duration::from_secs(60)));
    let refused = run_pipeline(&sim, steps, options("taken", false), std::future::pending()).await;
    assert!(
        matches!(&refused, Err(Error::RunExists { run_id }) if run_id == "taken"),
        "{refused:?}"
    );
    // Nothing was created after the record was found; what was created is deleted.
    let stats = sim.stats();
    assert!(!stats.creates.contains_key("b"), "{stats:?}");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(sim.live_objects().is_empty(), "{:?}", sim.live_objects());
    // The earlier run's record is left as it was.
    assert_eq!(sim.records()["taken"], earlier);
}
