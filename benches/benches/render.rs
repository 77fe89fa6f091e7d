//! Rendering and serialising to YAML runs of 100, 1,000 and 10,000 steps (a
//! main container and 3 sidecars per step) against serialising the same
//! pre-built Pods to YAML alone, measured in the same process.
//!
//! Goal: at most 1.5× the serialisation alone at 1,000 steps, and 10× the
//! steps costs at most 11× the time. Criterion measures the 100 and 1k cases
//! too; `-- ratios` skips it.

use c8s_benches::{label, report_ratio, report_scaling};

use c8s_pipeline_model::sidecar::{
    EnvVar, Port, PortRef, Quantity, Readiness, ReadinessProbe, SidecarConfig,
};
use c8s_pipeline_model::{PlanIdentity, TaskPlan};
use c8s_pod_builder::{RunContext, YamlStream, render_pod, to_canonical_yaml_stream};
use criterion::{Criterion, SamplingMode};
use k8s_openapi::api::core::v1::Pod;

const SIZES: [usize; 3] = [100, 1_000, 10_000];

fn quantity(text: &str) -> Quantity {
    Quantity::parse(text).expect("benchmark quantities are valid")
}

fn sidecar(name: &str, image: &str, port: i32) -> SidecarConfig {
    let mut s = SidecarConfig::new(name, image);
    s.ports.push(Port::tcp(port));
    s.env.push(EnvVar::value("MODE", "test"));
    s.env
        .push(EnvVar::secret("TOKEN", "ci-secrets", format!("{name}-token")));
    s.resources.requests.insert("cpu".into(), quantity("100m"));
    s.resources.requests.insert("memory".into(), quantity("128Mi"));
    s.resources.limits.insert("cpu".into(), quantity("500m"));
    s.resources.limits.insert("memory".into(), quantity("256Mi"));
    s.readiness = Readiness::Probe(ReadinessProbe::tcp(PortRef::Number(port)).with_period_seconds(2));
    s.scratch.push(format!("/var/lib/{name}"));
    s.run_as_user = Some(999);
    s
}

/// `n` steps, each with a main container, env, a cache, an output and 3 sidecars.
fn plans(n: usize) -> Vec<TaskPlan> {
    (0..n)
        .map(|i| {
            let mut plan = TaskPlan::new(
                PlanIdentity::new("bench-pipeline", format!("step-{i}")),
                "golang:1.23",
            );
            plan.command = vec!["sh".into(), "-ec".into(), format!("go test ./pkg/{i}/...")];
            plan.env.push(EnvVar::value("GOFLAGS", "-mod=readonly"));
            plan.env
                .push(EnvVar::secret("STRIPE_KEY", "orders-ci", "stripe-key"));
            plan.caches.push(".gocache".into());
            plan.outputs.push(format!("reports/{i}"));
            plan.timeout_seconds = Some(1800);
            plan.sidecars = vec![
                sidecar("postgres", "postgres:16", 5432),
                sidecar("redis", "redis:7-alpine", 6379),
                sidecar("mock", "wiremock/wiremock:3.9.1", 8080),
            ];
            plan
        })
        .collect()
}

/// Renders and serialises one pod at a time (as `c8s render` does), so the
/// working set stays one pod, not the whole run.
fn render_and_serialise(plans: &[TaskPlan], ctx: &RunContext) -> usize {
    let mut stream = YamlStream::new();
    for plan in plans {
        let pod = render_pod(plan, ctx).expect("benchmark plans are valid");
        stream.push(&pod).expect("serialisable");
    }
    stream.finish().len()
}

fn serialise(pods: &[Pod]) -> usize {
    to_canonical_yaml_stream(pods).expect("serialisable").len()
}

fn render_only(plans: &[TaskPlan], ctx: &RunContext) -> usize {
    plans
        .iter()
        .map(|plan| render_pod(plan, ctx).map(|pod| pod.spec.map_or(0, |s| s.containers.len())))
        .map(|n| n.expect("benchmark plans are valid"))
        .sum()
}

fn main() {
    let ctx = RunContext::new("run-bench", 1).with_repository("https://github.com/example/orders.git");
    let runs: Vec<Vec<TaskPlan>> = SIZES.iter().map(|&n| plans(n)).collect();
    let prebuilt: Vec<Vec<Pod>> = runs
        .iter()
        .map(|plans| {
            plans
                .iter()
                .map(|plan| render_pod(plan, &ctx).expect("benchmark plans are valid"))
                .collect()
        })
        .collect();

    if c8s_benches::criterion_wanted() {
        let mut criterion = Criterion::default().configure_from_args();
        for ((n, plans), pods) in SIZES.iter().zip(&runs).zip(&prebuilt).take(2) {
            let mut group = criterion.benchmark_group(format!("render-{}", label(*n)));
            group.sampling_mode(SamplingMode::Flat).sample_size(10);
            group.bench_function("render+yaml", |b| b.iter(|| render_and_serialise(plans, &ctx)));
            group.bench_function("yaml only", |b| b.iter(|| serialise(pods)));
            group.bench_function("render only", |b| b.iter(|| render_only(plans, &ctx)));
            group.finish();
        }
        criterion.final_summary();
    }
    if !c8s_benches::ratios_wanted() {
        return;
    }

    for ((n, plans), pods) in SIZES.iter().zip(&runs).zip(&prebuilt) {
        let goal = (*n == 1_000).then_some(1.5);
        report_ratio(
            "render+yaml",
            &label(*n),
            goal,
            &mut || render_and_serialise(plans, &ctx),
            &mut || serialise(pods),
        );
    }
    for i in 1..SIZES.len() {
        let (small, large) = (&runs[i - 1], &runs[i]);
        let (small_pods, large_pods) = (&prebuilt[i - 1], &prebuilt[i]);
        report_scaling(
            "render+yaml",
            &label(SIZES[i]),
            SIZES[i] / SIZES[i - 1],
            &mut || render_and_serialise(small, &ctx),
            &mut || render_and_serialise(large, &ctx),
            &mut || serialise(small_pods),
            &mut || serialise(large_pods),
        );
    }
}
