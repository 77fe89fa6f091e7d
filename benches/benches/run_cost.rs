//! What a run costs on the simulated cluster (virtual time, so exact and
//! machine-independent): API requests per step and watches per run at 1, 100
//! and 1,000 steps, and makespan ÷ critical path with uneven step times and
//! slow (30 s) deletes, unlimited parallelism. Goals: ≤ 3 requests per step,
//! 1 watch per run, makespan ≤ 1.02 × the critical path.

use std::time::Duration;

use c8s_benches::XorShift;
use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{RunOptions, RunState, Step, StepObject, run_pipeline};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

struct Case {
    steps: Vec<Step>,
    durations: Vec<Duration>,
    deps: Vec<Vec<usize>>,
}

fn pod(name: &str) -> StepObject {
    StepObject::Pod(Box::new(Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([("c8s.dev/step".to_owned(), name.to_owned())].into()),
            ..Default::default()
        },
        ..Default::default()
    }))
}

/// `n` steps, each depending on up to 3 earlier ones, running 1–60 s.
fn random_case(n: usize, seed: u64) -> Case {
    let mut rng = XorShift(seed);
    let mut deps = Vec::new();
    let mut durations = Vec::new();
    let mut steps = Vec::new();
    for i in 0..n {
        let mut mine: Vec<usize> = (0..rng.below(4))
            .filter(|_| i > 0)
            .map(|_| rng.below(i))
            .collect();
        mine.sort_unstable();
        mine.dedup();
        let name = format!("s{i:04}");
        steps.push(Step::new(&name, pod(&name)).after(mine.iter().map(|d| format!("s{d:04}"))));
        durations.push(Duration::from_secs(1 + rng.below(60) as u64));
        deps.push(mine);
    }
    Case {
        steps,
        durations,
        deps,
    }
}

fn chain_case() -> Case {
    let names = ["a", "b", "c"];
    let steps = names
        .iter()
        .enumerate()
        .map(|(i, n)| Step::new(*n, pod(n)).after(names[..i].last().map(|p| p.to_string())))
        .collect();
    Case {
        steps,
        durations: vec![Duration::from_secs(10); 3],
        deps: vec![vec![], vec![0], vec![1]],
    }
}

fn critical_path(case: &Case) -> Duration {
    let mut finish: Vec<Duration> = Vec::new();
    for (i, deps) in case.deps.iter().enumerate() {
        let start = deps.iter().map(|&d| finish[d]).max().unwrap_or_default();
        finish.push(start + case.durations[i]);
    }
    finish.into_iter().max().unwrap_or_default()
}

/// Runs `case` with `delete` slow deletes; returns (requests, watches,
/// last result after, run returned after).
fn run(case: &Case, delete: Duration) -> (u32, u32, Duration, Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let sim = SimCluster::new();
        for (step, duration) in case.steps.iter().zip(&case.durations) {
            sim.script(&step.name, StepScript::new(*duration).delete_delay(delete));
        }
        let status = run_pipeline(
            &sim,
            case.steps.clone(),
            RunOptions::new("bench"),
            std::future::pending(),
        )
        .await
        .expect("a valid pipeline");
        assert_eq!(status.state, RunState::Succeeded);
        let start = status.started_at.expect("started");
        let last = status
            .steps
            .iter()
            .filter_map(|s| s.finished_at)
            .max()
            .expect("finished");
        let end = status.finished_at.expect("finished");
        let span =
            |t: k8s_openapi::jiff::Timestamp| Duration::try_from(t.duration_since(start)).unwrap_or_default();
        let stats = sim.stats();
        (stats.requests, stats.watches, span(last), span(end))
    })
}

fn line(area: &str, size: &str, value: f64, goal: f64) {
    println!("c8s-bench ratio\t{area}\t{size}\t{value:.2}\t<= {goal}\t-\t-");
}

fn main() {
    if !c8s_benches::ratios_wanted() {
        return;
    }
    for n in [1, 100, 1000] {
        let case = random_case(n, 0x5eed_0000 + n as u64);
        let (requests, watches, results, returned) = run(&case, Duration::from_secs(30));
        let size = n.to_string();
        line("run-requests/step", &size, f64::from(requests) / n as f64, 3.0);
        line("run-watches/run", &size, f64::from(watches), 1.0);
        let critical = critical_path(&case).as_secs_f64();
        line(
            "run-results/critical-path",
            &size,
            results.as_secs_f64() / critical,
            1.02,
        );
        line(
            "run-makespan/critical-path",
            &size,
            returned.as_secs_f64() / critical,
            1.02,
        );
    }
    let chain = chain_case();
    let (_, _, results, returned) = run(&chain, Duration::from_secs(30));
    let critical = critical_path(&chain).as_secs_f64();
    line(
        "run-results/critical-path",
        "chain-3x10s",
        results.as_secs_f64() / critical,
        1.02,
    );
    line(
        "run-makespan/critical-path",
        "chain-3x10s",
        returned.as_secs_f64() / critical,
        1.02,
    );
}
