//! Concourse `across` and `in_parallel`'s `limit` and `fail_fast` on the
//! simulated cluster, lowered and run as `c8s run` does (`lower_job` →
//! `plan_steps_with` → `run_pipeline` with the job's outcome), checked
//! against what Concourse's docs state
//! (<https://concourse-ci.org/across-step.html>,
//! <https://concourse-ci.org/in-parallel-step.html>): `max_in_flight: 1`
//! runs the copies one after another in order, `fail_fast` starts no
//! further copy after a failure, `limit: N` runs at most N children at once.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{RunState, RunStatus};
use c8s_pipeline_model::MemorySource;
use c8s_pipeline_model::concourse::{JobPlan, Vars, lower_job, parse_concourse_pipeline};

/// An inline task config.
const TASK: &str = "{ platform: linux, image_resource: { type: registry-image, source: { repository: alpine } }, run: { path: 'true' } }";

fn lower(pipeline: &str) -> JobPlan {
    let text = pipeline.replace("CFG", TASK);
    let reader = MemorySource::new();
    let parsed =
        parse_concourse_pipeline("p.yml", &text, &Vars::new(), &reader).unwrap_or_else(|e| panic!("{e}"));
    lower_job(&parsed, "job", &reader, &BTreeMap::new(), "p.yml").unwrap_or_else(|e| panic!("{e}"))
}

/// The step ids of job `job` of `pipeline`, in plan order.
fn ids(pipeline: &str) -> Vec<String> {
    lower(pipeline)
        .steps
        .iter()
        .map(|s| s.plan.identity.step.clone())
        .collect()
}

/// Runs job `job` of `pipeline` on `sim`, as `c8s run` does.
async fn run(sim: &SimCluster, pipeline: &str) -> RunStatus {
    common::run_concourse_job(sim, &lower(pipeline), std::future::pending()).await
}

/// The steps whose pods were created, in creation order.
fn created(sim: &SimCluster) -> Vec<String> {
    sim.created_objects()
        .iter()
        .filter_map(|o| o.label("c8s.dev/step").map(str::to_owned))
        .collect()
}

fn lasting(sim: &SimCluster, secs: u64) {
    sim.default_script(StepScript::new(Duration::from_secs(secs)));
}

fn fail(sim: &SimCluster, step: &str) {
    sim.script(step, StepScript::new(Duration::from_secs(5)).exit_code(1));
}

const ACROSS: &str = "jobs:
- name: job
  plan:
  - task: test
    across:
    - var: version
      values: [a, b, c]
      MAX
    FAIL_FAST
    config: CFG
    on_failure: { task: alert, config: CFG }
";

fn across(max_in_flight: &str, fail_fast: bool) -> String {
    ACROSS.replace("MAX", max_in_flight).replace(
        "FAIL_FAST",
        if fail_fast {
            "fail_fast: true"
        } else {
            "fail_fast: false"
        },
    )
}

#[tokio::test(start_paused = true)]
async fn across_with_the_default_max_in_flight_runs_the_copies_one_after_another_in_order() {
    let sim = SimCluster::new();
    lasting(&sim, 5);
    let pipeline = across("max_in_flight: 1", false);
    let ids = ids(&pipeline);
    let status = run(&sim, &pipeline).await;
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(created(&sim), ids[..3], "the copies in order, the hook not run");
    for (id, value) in ids.iter().zip(["a", "b", "c"]) {
        assert!(id.starts_with(&format!("job.test-{value}-")), "{id}");
    }
    assert_eq!(sim.stats().max_running_total, 1, "one copy at a time");
    // The default is 1, too.
    let sim = SimCluster::new();
    lasting(&sim, 5);
    run(&sim, &across("", false)).await;
    assert_eq!(sim.stats().max_running_total, 1);
}

#[tokio::test(start_paused = true)]
async fn across_with_max_in_flight_all_runs_every_copy_at_once() {
    let sim = SimCluster::new();
    lasting(&sim, 5);
    let status = run(&sim, &across("max_in_flight: all", false)).await;
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(sim.stats().max_running_total, 3);
    let sim = SimCluster::new();
    lasting(&sim, 5);
    run(&sim, &across("max_in_flight: 2", false)).await;
    assert_eq!(sim.stats().max_running_total, 2);
}

#[tokio::test(start_paused = true)]
async fn across_fail_fast_starts_no_copy_after_a_failure_and_the_hook_wraps_the_whole_step() {
    let pipeline = across("max_in_flight: 1", true);
    let ids = ids(&pipeline);
    let sim = SimCluster::new();
    fail(&sim, &ids[1]);
    let status = run(&sim, &pipeline).await;
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
    assert_eq!(created(&sim), [ids[0].as_str(), &ids[1], "job.alert"]);
}

#[tokio::test(start_paused = true)]
async fn across_without_fail_fast_runs_every_copy_and_fails_if_one_did() {
    let pipeline = across("max_in_flight: 1", false);
    let ids = ids(&pipeline);
    let sim = SimCluster::new();
    fail(&sim, &ids[1]);
    let status = run(&sim, &pipeline).await;
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
    assert_eq!(created(&sim), [ids[0].as_str(), &ids[1], &ids[2], "job.alert"]);
}

const PARALLEL: &str = "jobs:
- name: job
  plan:
  - in_parallel:
      LIMIT
      FAIL_FAST
      steps:
      - { task: one, config: CFG }
      - { task: two, config: CFG }
      - { task: three, config: CFG }
      - { task: four, config: CFG }
  - task: after
    config: CFG
";

#[tokio::test(start_paused = true)]
async fn in_parallel_limit_bounds_the_children_running_at_once() {
    for (limit, want) in [("limit: 1", 1), ("limit: 2", 2), ("", 4)] {
        let sim = SimCluster::new();
        lasting(&sim, 5);
        let pipeline = PARALLEL.replace("LIMIT", limit).replace("FAIL_FAST", "");
        let status = run(&sim, &pipeline).await;
        assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
        assert_eq!(sim.stats().max_running_total, want, "{limit}");
        assert_eq!(created(&sim).len(), 5);
    }
    // limit 1 serialises, in order.
    let sim = SimCluster::new();
    lasting(&sim, 5);
    run(
        &sim,
        &PARALLEL.replace("LIMIT", "limit: 1").replace("FAIL_FAST", ""),
    )
    .await;
    assert_eq!(
        created(&sim),
        ["job.one", "job.two", "job.three", "job.four", "job.after"]
    );
}

#[tokio::test(start_paused = true)]
async fn in_parallel_fail_fast_starts_no_child_after_a_failure() {
    let sim = SimCluster::new();
    lasting(&sim, 5);
    fail(&sim, "job.two");
    let pipeline = PARALLEL
        .replace("LIMIT", "limit: 1")
        .replace("FAIL_FAST", "fail_fast: true");
    let status = run(&sim, &pipeline).await;
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
    assert_eq!(created(&sim), ["job.one", "job.two"]);
    // Without fail_fast, the others still run (the step after does not).
    let sim = SimCluster::new();
    lasting(&sim, 5);
    fail(&sim, "job.two");
    let pipeline = PARALLEL.replace("LIMIT", "limit: 1").replace("FAIL_FAST", "");
    let status = run(&sim, &pipeline).await;
    assert_eq!(status.state, RunState::Failed, "{}", status.to_json());
    assert_eq!(created(&sim), ["job.one", "job.two", "job.three", "job.four"]);
}
