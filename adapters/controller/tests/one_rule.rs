//! One rule for every entry point: the same random pipelines, with the same
//! faults, run through `c8s run`'s event-driven driver
//! (`c8s_kube::run_pipeline`), through the controller's reconcile called a
//! virtual second at a time (as its requeues call it), and through
//! `drive_run` (the same reconcile woken by the run's watch, which
//! `c8s run` calls) must end with the same outcome for every
//! step, the same pods created for each (so the same attempts), and the
//! same env in each `finally` step. The steps come from the one builder
//! (`run_steps` → `c8s_kube::plan_steps`), so a difference can only come from
//! the drivers.
//!
//! Runs continue on failure: with fail-fast, which of two steps ending in
//! the same second is cancelled depends on when each driver looks (events
//! against a reconcile a second), not on a rule.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use c8s_controller::crd::{PipelineRunStatus, RunPhase, StepPhase};
use c8s_controller::{Admission, Settings, drive_run};
use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{FailureMode, RunOptions, RunState, StepObject, StepState};
use proptest::prelude::*;

mod support;

/// One step of a generated pipeline.
#[derive(Clone, Debug)]
struct Gen {
    deps: Vec<usize>,
    seconds: u64,
    fault: Fault,
    retries: Retry,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// Every run exits 1.
    Exit,
    /// The first `n` runs exit 1.
    Flaky(u32),
    /// The first `n` pulls back off.
    Pull(u32),
    /// The first `n` pods are evicted after 2 s.
    Evicted(u32),
    /// Killed for memory.
    Oom,
}

#[derive(Clone, Copy, Debug)]
enum Retry {
    None,
    Any(u32),
    Infrastructure(u32),
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        3 => Just(Fault::None),
        1 => Just(Fault::Exit),
        1 => (1u32..3).prop_map(Fault::Flaky),
        1 => (1u32..5).prop_map(Fault::Pull),
        1 => (1u32..6).prop_map(Fault::Evicted),
        1 => Just(Fault::Oom),
    ]
}

fn retry() -> impl Strategy<Value = Retry> {
    prop_oneof![
        2 => Just(Retry::None),
        1 => (1u32..3).prop_map(Retry::Any),
        1 => (1u32..3).prop_map(Retry::Infrastructure),
    ]
}

fn pipeline() -> impl Strategy<Value = Vec<Gen>> {
    (2usize..6).prop_flat_map(|n| {
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
                1u64..4,
                fault(),
                retry(),
            ),
            n,
        )
        .prop_map(|steps| {
            steps
                .into_iter()
                .enumerate()
                .map(|(i, (deps, tens, fault, retries))| {
                    let mut deps: Vec<usize> = if i == 0 {
                        Vec::new()
                    } else {
                        deps.iter().map(|d| d.index(i)).collect()
                    };
                    deps.sort_unstable();
                    deps.dedup();
                    Gen {
                        deps,
                        seconds: tens * 10,
                        fault,
                        retries,
                    }
                })
                .collect()
        })
    })
}

fn text(steps: &[Gen]) -> String {
    let mut out = String::from("name: shop\nrepository: https://example.com/shop.git\nsteps:\n");
    for (i, step) in steps.iter().enumerate() {
        let _ = write!(
            out,
            "  - name: s{i}\n    image: alpine:3\n    commands: [\"true\"]\n"
        );
        if !step.deps.is_empty() {
            let deps: Vec<String> = step.deps.iter().map(|d| format!("s{d}")).collect();
            let _ = writeln!(out, "    dependsOn: [{}]", deps.join(", "));
        }
        match step.retries {
            Retry::None => {}
            Retry::Any(n) => {
                let _ = writeln!(out, "    retries: {n}");
            }
            Retry::Infrastructure(n) => {
                let _ = writeln!(out, "    retries: {{ limit: {n}, when: [infrastructure] }}");
            }
        }
    }
    out.push_str("finally:\n  - name: notify\n    image: alpine:3\n    commands: [\"true\"]\n");
    out
}

fn script(step: &Gen) -> StepScript {
    let base = StepScript::new(Duration::from_secs(step.seconds));
    match step.fault {
        Fault::None => base,
        Fault::Exit => base.exit_code(1),
        Fault::Flaky(n) => base.failed_runs(n),
        Fault::Pull(n) => base.image_pull_failures(n),
        Fault::Evicted(n) => base.evictions(n, Duration::from_secs(2)),
        Fault::Oom => base.oom_killed(),
    }
}

fn sim(steps: &[Gen]) -> SimCluster {
    let sim = SimCluster::new();
    sim.default_script(StepScript::new(Duration::from_secs(5)));
    for (i, step) in steps.iter().enumerate() {
        sim.script(&format!("s{i}"), script(step));
    }
    sim
}

/// What one entry point did: each step's outcome word (by pipeline step
/// name), the pods created per step, and the `finally` step's env.
#[derive(Debug, PartialEq, Eq)]
struct Ran {
    outcomes: BTreeMap<String, &'static str>,
    pods: BTreeMap<String, usize>,
    finally_env: Vec<(String, String)>,
}

fn ran(sim: &SimCluster, outcomes: BTreeMap<String, &'static str>) -> Ran {
    let created = sim.created_objects();
    let mut pods: BTreeMap<String, usize> = BTreeMap::new();
    for object in &created {
        if let Some(step) = object.label(c8s_kube::STEP_LABEL) {
            *pods.entry(step.to_owned()).or_default() += 1;
        }
    }
    let finally_env = created
        .iter()
        .filter(|o| o.label(c8s_kube::STEP_LABEL) == Some("notify"))
        .flat_map(env_of)
        .collect();
    Ran {
        outcomes,
        pods,
        finally_env,
    }
}

fn env_of(object: &StepObject) -> Vec<(String, String)> {
    let StepObject::Pod(pod) = object else {
        return Vec::new();
    };
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter(|c| c.name == "main")
        .flat_map(|c| c.env.iter().flatten())
        .filter(|e| e.name.starts_with("C8S_") && e.name.ends_with("STATUS"))
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

/// The pipeline step name behind an object name `shop-<step>-b7-<hash>`.
fn step_of(object: &str) -> String {
    let inner = object.strip_prefix("shop-").unwrap_or(object);
    inner.split("-b7-").next().unwrap_or(inner).to_owned()
}

async fn through_the_controller(steps: &[Gen]) -> Ran {
    let sim = sim(steps);
    let (mut run, run_steps) = support::new_run(&text(steps), None);
    run.spec.continue_on_failure = true;
    let status = support::drive(&sim, &mut run, &run_steps, &Admission::default(), None).await;
    assert!(status.phase.is_finished(), "{status:#?}");
    assert_ne!(status.phase, RunPhase::Cancelled);
    ran(&sim, words(&status))
}

/// Each step's outcome word in a run's status, by pipeline step name.
fn words(status: &PipelineRunStatus) -> BTreeMap<String, &'static str> {
    status
        .steps
        .iter()
        .map(|s| {
            let word = match s.phase {
                StepPhase::Succeeded => "Succeeded",
                StepPhase::Failed => "Failed",
                StepPhase::Skipped if s.reason == "Cancelled" => "Cancelled",
                StepPhase::Skipped => "Skipped",
                StepPhase::Running | StepPhase::Pending => "Unfinished",
            };
            (step_of(&s.name), word)
        })
        .collect()
}

/// The run through [`drive_run`]: the reconcile, woken by the run's watch
/// and its own requeue times instead of every second.
async fn through_drive_run(steps: &[Gen]) -> Ran {
    let sim = sim(steps);
    let (mut run, run_steps) = support::new_run(&text(steps), None);
    run.spec.continue_on_failure = true;
    let mut passes = 0u32;
    let status = drive_run(
        &sim,
        &run,
        &run_steps,
        &Settings::default(),
        |_, _| {
            passes += 1;
            async {}
        },
        std::future::pending(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.phase.is_finished(), "{status:#?}");
    assert!(passes > 0);
    ran(&sim, words(&status))
}

async fn through_c8s_run(steps: &[Gen]) -> Ran {
    let sim = sim(steps);
    let (_, run_steps) = support::new_run(&text(steps), None);
    let options = RunOptions::new("shop-b7")
        .parallelism(Settings::default().default_parallelism)
        .failure_mode(FailureMode::ContinueOnFailure)
        .retry(Settings::default().retry);
    let status = c8s_kube::run_pipeline(&sim, run_steps.steps, options, std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(status.state, RunState::Running);
    let outcomes = status
        .steps
        .iter()
        .map(|s| {
            let word = match s.state {
                StepState::Succeeded => "Succeeded",
                StepState::Failed => "Failed",
                StepState::Cancelled => "Cancelled",
                StepState::Skipped => "Skipped",
                _ => "Unfinished",
            };
            (step_of(&s.name), word)
        })
        .collect();
    ran(&sim, outcomes)
}

/// The run through the controller's reconcile, through `drive_run` and
/// through `c8s run`'s event-driven driver; the first two must agree here.
fn both(steps: &[Gen]) -> (Ran, Ran) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let controller = runtime.block_on(through_the_controller(steps));
    let driven = runtime.block_on(through_drive_run(steps));
    assert_eq!(controller, driven, "pipeline:\n{}", text(steps));
    let cli = runtime.block_on(through_c8s_run(steps));
    (controller, cli)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn c8s_run_and_the_controller_end_every_run_alike(steps in pipeline()) {
        let (controller, cli) = both(&steps);
        prop_assert_eq!(&controller, &cli, "pipeline:\n{}", text(&steps));
    }
}

/// The cases the rules were unified for, named: each differed between the
/// two drivers before (an exit failure under `when: [infrastructure]`, a
/// pull back-off past the runner's budget spending the user's retries, an
/// OOM kill retried by `retries: N`, a step below a failure reported to
/// `finally` as skipped).
#[test]
fn the_cases_that_used_to_differ_end_alike() {
    let cases = [
        vec![
            Gen {
                deps: vec![],
                seconds: 10,
                fault: Fault::Exit,
                retries: Retry::Infrastructure(2),
            },
            Gen {
                deps: vec![0],
                seconds: 10,
                fault: Fault::None,
                retries: Retry::None,
            },
        ],
        vec![Gen {
            deps: vec![],
            seconds: 10,
            fault: Fault::Pull(4),
            retries: Retry::Infrastructure(2),
        }],
        vec![Gen {
            deps: vec![],
            seconds: 10,
            fault: Fault::Oom,
            retries: Retry::Any(1),
        }],
        vec![
            Gen {
                deps: vec![],
                seconds: 10,
                fault: Fault::Evicted(5),
                retries: Retry::None,
            },
            Gen {
                deps: vec![],
                seconds: 30,
                fault: Fault::None,
                retries: Retry::None,
            },
        ],
    ];
    for steps in cases {
        let (controller, cli) = both(&steps);
        assert_eq!(controller, cli, "pipeline:\n{}", text(&steps));
        assert!(!controller.finally_env.is_empty(), "{controller:#?}");
    }
}
