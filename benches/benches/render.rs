//! Rendering + serialising to YAML a 1,000-step run (3 sidecars per step)
//! against serialising the same pre-built Pods to YAML alone, and the same
//! render + serialise for 10,000 steps, measured in the same process.
//!
//! Prints `ratio render+yaml/yaml: X.XX` (goal: at most 1.5) and
//! `ratio 10k/1k: X.XX` (goal: at most 11, i.e. linear). Criterion measures
//! each case too; `cargo bench --bench render -- ratios-only` skips those and
//! prints only the ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use c8s_pipeline_model::sidecar::{
    EnvVar, Port, PortRef, Quantity, Readiness, ReadinessProbe, SidecarConfig,
};
use c8s_pipeline_model::{PlanIdentity, TaskPlan};
use c8s_pod_builder::{RunContext, YamlStream, render_pod, to_canonical_yaml_stream};
use criterion::{Criterion, SamplingMode};
use k8s_openapi::api::core::v1::Pod;

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

/// The fastest time of each of `a` and `b`, run alternately `rounds` times.
fn interleaved_min(
    a: &mut dyn FnMut() -> usize,
    b: &mut dyn FnMut() -> usize,
    rounds: usize,
) -> (Duration, Duration) {
    let time = |f: &mut dyn FnMut() -> usize| {
        let start = Instant::now();
        black_box(f());
        start.elapsed()
    };
    let (mut best_a, mut best_b) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        best_a = best_a.min(time(a));
        best_b = best_b.min(time(b));
    }
    (best_a, best_b)
}

fn bench(c: &mut Criterion) {
    let ctx = RunContext::new("run-bench", 1).with_repository("https://github.com/example/orders.git");
    let small = plans(1_000);
    let large = plans(10_000);
    let prebuilt: Vec<Pod> = small
        .iter()
        .map(|plan| render_pod(plan, &ctx).expect("benchmark plans are valid"))
        .collect();

    let mut group = c.benchmark_group("render");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("render+yaml 1k steps", |b| {
        b.iter(|| render_and_serialise(&small, &ctx))
    });
    group.bench_function("yaml only 1k pods", |b| b.iter(|| serialise(&prebuilt)));
    group.bench_function("render only 1k steps", |b| {
        b.iter(|| {
            small
                .iter()
                .map(|plan| render_pod(plan, &ctx).map(|pod| pod.spec.map_or(0, |s| s.containers.len())))
                .map(|n| n.expect("benchmark plans are valid"))
                .sum::<usize>()
        })
    });
    group.bench_function("render+yaml 10k steps", |b| {
        b.iter(|| render_and_serialise(&large, &ctx))
    });
    group.finish();

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE);
    // Alternating runs, fastest of each: load from other processes hits both sides alike.
    let (render_1k, yaml_1k) = interleaved_min(
        &mut || render_and_serialise(&small, &ctx),
        &mut || serialise(&prebuilt),
        7,
    );
    println!(
        "ratio render+yaml/yaml: {:.2} (goal <= 1.5; {:.1} ms vs {:.1} ms, fastest of 7 alternating runs)",
        ratio(render_1k, yaml_1k),
        render_1k.as_secs_f64() * 1e3,
        yaml_1k.as_secs_f64() * 1e3
    );
    // 10k once against ten 1k runs (per run): both sides see ~the same
    // wall time, so load from other processes cannot favour the short one.
    let (render_10k, ten_1k) = interleaved_min(
        &mut || render_and_serialise(&large, &ctx),
        &mut || (0..10).map(|_| render_and_serialise(&small, &ctx)).sum(),
        3,
    );
    let render_1k = ten_1k / 10;
    println!(
        "ratio 10k/1k: {:.2} (goal <= 11; {:.1} ms vs {:.1} ms per 1k, fastest of 3 alternating runs)",
        ratio(render_10k, render_1k),
        render_10k.as_secs_f64() * 1e3,
        render_1k.as_secs_f64() * 1e3
    );
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
