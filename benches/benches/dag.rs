//! Layering a random 100,000-step DAG (and a 10,000-step one, to show how it
//! scales) against `petgraph::algo::toposort` on the same graph, measured in
//! the same process.
//!
//! Prints `ratio layers/toposort: X.XX` for each size (goal: at most 2) and
//! `ratio 100k/10k layers: X.XX` (goal: at most 11). `Dag::new` computes a
//! topological order (its cycle check) and a compact copy of the edges once;
//! `layers()` is then one pass over them. Its build time is printed too.

use std::hint::black_box;
use std::time::{Duration, Instant};

use c8s_pipeline_model::Dag;
use criterion::{Criterion, SamplingMode};

/// A small deterministic generator, so every run layers the same graph.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `n` steps, each depending on 0–3 earlier steps (forward edges only),
/// named in an order unrelated to their position.
fn random_steps(n: usize) -> Vec<(String, Vec<String>)> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let names: Vec<String> = (0..n)
        .map(|i| format!("s{:016x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    (0..n)
        .map(|i| {
            let deps = if i == 0 {
                Vec::new()
            } else {
                let k = rng.below(4);
                let mut deps: Vec<String> = (0..k).map(|_| names[rng.below(i)].clone()).collect();
                deps.sort();
                deps.dedup();
                deps
            };
            (names[i].clone(), deps)
        })
        .collect()
}

fn build(steps: Vec<(String, Vec<String>)>) -> Dag {
    match Dag::new(steps) {
        Ok(dag) => dag,
        Err(e) => panic!("a forward-only graph has no cycle: {e}"),
    }
}

/// The fastest of `runs` runs of `f`.
fn fastest(runs: usize, mut f: impl FnMut() -> usize) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let inputs = [
        (10_000usize, random_steps(10_000)),
        (100_000, random_steps(100_000)),
    ];
    let dags: Vec<(usize, Dag)> = inputs
        .iter()
        .map(|(n, steps)| (*n, build(steps.clone())))
        .collect();
    for (n, dag) in &dags {
        let mut group = criterion.benchmark_group(format!("dag-{n}"));
        group.sampling_mode(SamplingMode::Flat);
        group.bench_function("layers", |b| b.iter(|| black_box(dag.layers()).len()));
        group.bench_function("petgraph-toposort", |b| {
            b.iter(|| {
                petgraph::algo::toposort(dag.graph(), None)
                    .map(|order| order.len())
                    .unwrap_or(0)
            })
        });
        group.finish();
    }
    criterion.final_summary();

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE);
    let mut layer_times = Vec::new();
    for (n, dag) in &dags {
        let layers = fastest(20, || dag.layers().len());
        let topo = fastest(20, || {
            petgraph::algo::toposort(dag.graph(), None)
                .map(|order| order.len())
                .unwrap_or(0)
        });
        println!(
            "ratio layers/toposort ({n} steps): {:.2} (fastest of 20: {:.2} ms vs {:.2} ms)",
            ratio(layers, topo),
            layers.as_secs_f64() * 1e3,
            topo.as_secs_f64() * 1e3
        );
        layer_times.push(layers);
    }
    // Dag::new does the one-time work layers() relies on (Kahn's order for the
    // cycle check, a compact copy of the edges); shown for transparency.
    for (n, steps) in &inputs {
        let built = fastest(3, || build(steps.clone()).len());
        println!(
            "Dag::new ({n} steps, once per pipeline): {:.2} ms",
            built.as_secs_f64() * 1e3
        );
    }
    if let [small, large] = layer_times[..] {
        println!(
            "ratio 100k/10k layers: {:.2} (10x the steps)",
            ratio(large, small)
        );
    }
}
