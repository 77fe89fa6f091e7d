//! Parsing and validating a 1,000-step pipeline against parsing the same
//! text into an untyped value (`serde_json::Value` through serde-saphyr),
//! measured in the same process.
//!
//! Prints `ratio parse_pipeline/untyped: X.XX` (goal: at most 2).

use std::hint::black_box;
use std::time::{Duration, Instant};

use c8s_pipeline_model::{MemorySource, parse_pipeline};
use criterion::Criterion;

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
    let text = c8s_benches::pipeline_file(1_000);
    let source = MemorySource::new();
    let typed = || match parse_pipeline("bench.c8s.yaml", &text, &source) {
        Ok(p) => p.steps.len(),
        Err(e) => panic!("the bench pipeline is valid: {e}"),
    };
    let untyped = || match serde_saphyr::from_str::<serde_json::Value>(&text) {
        Ok(v) => v.as_object().map_or(0, |o| o.len()),
        Err(e) => panic!("the bench pipeline is YAML: {e}"),
    };
    assert_eq!(typed(), 1_000);

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group(format!("pipeline-1000-steps-{}KiB", text.len() / 1024));
    group.bench_function("parse_pipeline", |b| b.iter(typed));
    group.bench_function("untyped-value", |b| b.iter(untyped));
    group.finish();
    criterion.final_summary();

    let a = fastest(20, typed);
    let b = fastest(20, untyped);
    println!(
        "ratio parse_pipeline/untyped: {:.2} (fastest of 20: {:.2} ms vs {:.2} ms)",
        a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE),
        a.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3
    );
}
