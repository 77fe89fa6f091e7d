//! Helpers shared by the simulation tests: objects, a seeded DAG generator,
//! schedule arithmetic done independently of the crate.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use c8s_kube::{LogSink, RunStatus, Step, StepObject};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A pod for step `step` of run `run`, named `<run>-<step>`.
pub fn pod(run: &str, step: &str) -> StepObject {
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(format!("{run}-{step}")),
            labels: Some([("c8s.dev/step".to_owned(), step.to_owned())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    StepObject::Pod(Box::new(pod))
}

/// A tiny deterministic generator (64-bit LCG, high bits).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random DAG: step `i` depends on up to 3 earlier steps (forward edges
/// only), and runs for 1..=60 seconds.
pub struct Dag {
    pub names: Vec<String>,
    pub deps: Vec<Vec<usize>>,
    pub durations: Vec<Duration>,
}

impl Dag {
    pub fn random(seed: u64, n: usize) -> Self {
        let mut rng = Lcg::new(seed);
        let mut deps = Vec::new();
        let mut durations = Vec::new();
        for i in 0..n {
            let mut mine = Vec::new();
            if i > 0 {
                for _ in 0..rng.below(4) {
                    let d = rng.below(i as u64) as usize;
                    if !mine.contains(&d) {
                        mine.push(d);
                    }
                }
            }
            deps.push(mine);
            durations.push(Duration::from_secs(1 + rng.below(60)));
        }
        let names = (0..n).map(|i| format!("s{i:03}")).collect();
        Dag {
            names,
            deps,
            durations,
        }
    }

    pub fn steps(&self, run: &str) -> Vec<Step> {
        (0..self.names.len())
            .map(|i| {
                let deps = self.deps[i].iter().map(|&d| self.names[d].clone());
                Step::new(&self.names[i], pod(run, &self.names[i])).after(deps)
            })
            .collect()
    }

    /// The longest path through the DAG, by duration (earliest-finish times).
    pub fn critical_path(&self) -> Duration {
        let mut finish = vec![Duration::ZERO; self.names.len()];
        for i in 0..self.names.len() {
            let ready = self.deps[i].iter().map(|&d| finish[d]).max().unwrap_or_default();
            finish[i] = ready + self.durations[i];
        }
        finish.into_iter().max().unwrap_or_default()
    }

    /// The seed's schedule: topological layers, each waiting for the slowest
    /// step of the layer before it.
    pub fn layer_by_layer(&self) -> Duration {
        let mut layer = vec![0usize; self.names.len()];
        for i in 0..self.names.len() {
            layer[i] = self.deps[i].iter().map(|&d| layer[d] + 1).max().unwrap_or(0);
        }
        let layers = layer.iter().max().map_or(0, |m| m + 1);
        (0..layers)
            .map(|l| {
                (0..self.names.len())
                    .filter(|&i| layer[i] == l)
                    .map(|i| self.durations[i])
                    .max()
                    .unwrap()
            })
            .sum()
    }
}

/// The run's makespan by the cluster clock.
pub fn makespan(status: &RunStatus) -> Duration {
    let span = status
        .finished_at
        .unwrap()
        .duration_since(status.started_at.unwrap());
    Duration::try_from(span).unwrap()
}

/// One masked chunk: step, attempt, container, bytes.
pub type Chunk = (String, u32, String, Vec<u8>);

/// A sink that keeps every masked chunk.
#[derive(Default)]
pub struct Collect(pub Mutex<Vec<Chunk>>);

impl LogSink for Collect {
    fn write(&self, step: &str, attempt: u32, container: &str, masked: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push((step.to_owned(), attempt, container.to_owned(), masked.to_vec()));
    }
}

impl Collect {
    pub fn new() -> Arc<Self> {
        Arc::new(Collect::default())
    }

    /// Everything `step` wrote, concatenated.
    pub fn text(&self, step: &str) -> String {
        let chunks = self.0.lock().unwrap();
        let bytes: Vec<u8> = chunks
            .iter()
            .filter(|c| c.0 == step)
            .flat_map(|c| c.3.clone())
            .collect();
        String::from_utf8(bytes).unwrap()
    }
}

/// Runs a lowered Concourse job on `sim` as `c8s run` does (plans, object
/// names, the job's outcome rule), until it ends or `cancel` completes.
pub async fn run_concourse_job(
    sim: &c8s_kube::sim::SimCluster,
    job: &c8s_pipeline_model::concourse::JobPlan,
    cancel: impl std::future::Future<Output = ()>,
) -> RunStatus {
    run_concourse_job_with(sim, job, &[], cancel).await
}

/// [`run_concourse_job`] with the steps `unrunnable` (plan step, reason)
/// that cannot run ([`c8s_kube::RunOptions::unrunnable`]).
pub async fn run_concourse_job_with(
    sim: &c8s_kube::sim::SimCluster,
    job: &c8s_pipeline_model::concourse::JobPlan,
    unrunnable: &[(&str, &str)],
    cancel: impl std::future::Future<Output = ()>,
) -> RunStatus {
    let plans: Vec<_> = job.steps.iter().map(|s| s.plan.clone()).collect();
    let depends_on = job
        .steps
        .iter()
        .map(|s| (s.plan.identity.step.clone(), s.depends_on.clone()))
        .collect();
    let ctx = c8s_pod_builder::RunContext::new("t", 1);
    let steps = c8s_kube::plan_steps_with(&plans, &depends_on, &job.conditions, &ctx, false).unwrap();
    let names = c8s_kube::object_names(&plans, &ctx);
    let outcome = job
        .outcome
        .renamed(&|s| names.get(s).cloned().unwrap_or_else(|| s.to_owned()));
    let mut options = c8s_kube::RunOptions::new("t").outcome(Some(outcome));
    for (step, reason) in unrunnable {
        options = options.unrunnable(names[*step].clone(), *reason);
    }
    c8s_kube::run_pipeline(sim, steps, options, cancel).await.unwrap()
}
