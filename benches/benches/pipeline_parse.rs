//! Parsing and validating pipelines of 100, 1,000 and 10,000 steps against
//! parsing the same text into an untyped value (`serde_json::Value` through
//! serde-saphyr, with the same options and budgets c8s parses with), measured
//! in the same process.
//!
//! Goal: at most 2× the untyped parse at 1,000 steps, and 10× the steps costs
//! at most 11× the time. (100,000 steps would be about 60 MiB of YAML, past
//! the 32 MiB input limit, so the sizes stop at 10,000.)
//!
//! Criterion measures the 100 and 1k cases too; `-- ratios` skips it.

use c8s_benches::{label, pipeline_file, report_ratio, report_scaling};
use c8s_pipeline_model::{MemorySource, parse_pipeline};
use criterion::Criterion;

const SIZES: [usize; 3] = [100, 1_000, 10_000];

fn typed(text: &str) -> usize {
    match parse_pipeline("bench.c8s.yaml", text, &MemorySource::new()) {
        Ok(p) => p.steps.len(),
        Err(e) => panic!("the bench pipeline is valid: {e}"),
    }
}

fn untyped(text: &str) -> usize {
    match c8s_sidecar_core::yaml::from_str::<serde_json::Value>("bench.c8s.yaml", text) {
        Ok(v) => v.as_object().map_or(0, |o| o.len()),
        Err(e) => panic!("the bench pipeline is YAML: {e}"),
    }
}

fn main() {
    let texts: Vec<String> = SIZES.iter().map(|&n| pipeline_file(n)).collect();
    for (n, text) in SIZES.iter().zip(&texts) {
        assert_eq!(typed(text), *n);
    }

    if c8s_benches::criterion_wanted() {
        let mut criterion = Criterion::default().configure_from_args();
        for (n, text) in SIZES.iter().zip(&texts).take(2) {
            let mut group =
                criterion.benchmark_group(format!("pipeline-{}-steps-{}KiB", label(*n), text.len() / 1024));
            group.sample_size(20);
            group.bench_function("parse_pipeline", |b| b.iter(|| typed(text)));
            group.bench_function("untyped-value", |b| b.iter(|| untyped(text)));
            group.finish();
        }
        criterion.final_summary();
    }
    if !c8s_benches::ratios_wanted() {
        return;
    }

    for (n, text) in SIZES.iter().zip(&texts) {
        let goal = (*n == 1_000).then_some(2.0);
        report_ratio(
            "parse+validate",
            &label(*n),
            goal,
            &mut || typed(text),
            &mut || untyped(text),
        );
    }
    for i in 1..SIZES.len() {
        let (small, large) = (&texts[i - 1], &texts[i]);
        report_scaling(
            "parse+validate",
            &label(SIZES[i]),
            SIZES[i] / SIZES[i - 1],
            &mut || typed(small),
            &mut || typed(large),
            &mut || untyped(small),
            &mut || untyped(large),
        );
    }
}
