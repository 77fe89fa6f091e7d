//! Expanding matrices of 1,000, 10,000 and 100,000 combinations (a product
//! of three dimensions, an `exclude` and as many `include`s as it removed)
//! against building the plain cartesian product of the same dimensions as
//! owned `(name, value)` pairs, measured in the same process.
//!
//! c8s does more than the baseline for each combination: a SHA-256 over the
//! sorted pairs for its stable id, and the exclude and include checks. No
//! goal was set for the ratio; 10× the combinations should cost at most 11×
//! the time.
//!
//! Criterion measures the 1k and 10k cases too; `-- ratios` skips it.

use c8s_benches::{label, matrix_pipeline_file, report_ratio, report_scaling};
use c8s_pipeline_model::{Matrix, MemorySource, PipelineOptions, parse_pipeline_with};
use criterion::Criterion;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn matrix(n: usize) -> Matrix {
    let text = matrix_pipeline_file(n);
    let options = PipelineOptions::default().with_max_combinations(n);
    let pipeline = match parse_pipeline_with("matrix.c8s.yaml", &text, &MemorySource::new(), &options) {
        Ok(p) => p,
        Err(e) => panic!("the bench pipeline is valid: {e}"),
    };
    match pipeline.matrix {
        Some(m) => m,
        None => panic!("the bench pipeline has a matrix"),
    }
}

fn expand(matrix: &Matrix, n: usize) -> usize {
    match matrix.combinations(n) {
        Ok(c) => c.len(),
        Err(e) => panic!("{n} combinations fit a cap of {n}: {e}"),
    }
}

/// The baseline: the cartesian product, first dimension slowest, as owned pairs.
fn product(matrix: &Matrix) -> usize {
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (name, values) in matrix.dimensions.iter() {
        out = out
            .iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((name.to_owned(), v.clone()));
                    next
                })
            })
            .collect();
    }
    out.len()
}

fn main() {
    let matrices: Vec<Matrix> = SIZES.iter().map(|&n| matrix(n)).collect();
    for (n, m) in SIZES.iter().zip(&matrices) {
        assert_eq!(expand(m, *n), *n);
        assert_eq!(product(m), *n);
    }

    if c8s_benches::criterion_wanted() {
        let mut criterion = Criterion::default().configure_from_args();
        for (n, m) in SIZES.iter().zip(&matrices).take(2) {
            let mut group = criterion.benchmark_group(format!("matrix-{}", label(*n)));
            group.sample_size(20);
            group.bench_function("combinations", |b| b.iter(|| expand(m, *n)));
            group.bench_function("plain-product", |b| b.iter(|| product(m)));
            group.finish();
        }
        criterion.final_summary();
    }
    if !c8s_benches::ratios_wanted() {
        return;
    }

    for (n, m) in SIZES.iter().zip(&matrices) {
        report_ratio("matrix", &label(*n), None, &mut || expand(m, *n), &mut || {
            product(m)
        });
    }
    for i in 1..SIZES.len() {
        let (small, large) = (&matrices[i - 1], &matrices[i]);
        let (ns, nl) = (SIZES[i - 1], SIZES[i]);
        report_scaling(
            "matrix",
            &label(nl),
            nl / ns,
            &mut || expand(small, ns),
            &mut || expand(large, nl),
            &mut || product(small),
            &mut || product(large),
        );
    }
}
