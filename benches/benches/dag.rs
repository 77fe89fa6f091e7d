//! Layering random DAGs of 1,000, 10,000 and 100,000 steps against
//! `petgraph::algo::toposort` on the same graph, measured in the same process.
//!
//! - `dag-layers`: [`Dag::layers`] on a built graph vs `toposort` (goal: at
//!   most 2×; 10× the steps costs at most 11× the time).
//! - `dag-build+layers`: the whole job from `(name, dependencies)` pairs —
//!   [`Dag::new`] (name resolution, cycle check) then `layers()` — vs
//!   building a petgraph graph from the same pairs through a `HashMap` and
//!   running `toposort` on it. No goal was set; it shows what a user pays once
//!   per pipeline.
//!
//! Criterion measures the 1k and 10k cases too; `-- ratios` skips it.

use std::collections::HashMap;
use std::hint::black_box;

use c8s_benches::{label, random_steps, report_ratio, report_scaling};
use c8s_pipeline_model::Dag;
use criterion::{Criterion, SamplingMode};
use petgraph::graph::{DiGraph, NodeIndex};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn build(steps: &[(String, Vec<String>)]) -> Dag {
    match Dag::new(steps.iter().map(|(name, deps)| (name, deps))) {
        Ok(dag) => dag,
        Err(e) => panic!("a forward-only graph has no cycle: {e}"),
    }
}

/// The same graph as `dag` as a petgraph graph (nodes in name order, edges
/// from a dependency to its dependent), built once outside the measurement.
fn petgraph_of(dag: &Dag) -> DiGraph<String, ()> {
    let mut graph = DiGraph::<String, ()>::new();
    let index: HashMap<&str, NodeIndex> = dag.steps().map(|s| (s, graph.add_node(s.to_owned()))).collect();
    for step in dag.steps() {
        for dep in dag.dependencies(step) {
            graph.add_edge(index[dep], index[step], ());
        }
    }
    graph
}

fn toposort(graph: &DiGraph<String, ()>) -> usize {
    petgraph::algo::toposort(graph, None).map_or(0, |order| order.len())
}

/// The baseline for building: the same pairs into a petgraph graph through a
/// hash map of names, then `toposort`.
fn petgraph_from_pairs(steps: &[(String, Vec<String>)]) -> usize {
    let mut graph = DiGraph::<String, ()>::with_capacity(steps.len(), steps.len());
    let index: HashMap<&str, NodeIndex> = steps
        .iter()
        .map(|(name, _)| (name.as_str(), graph.add_node(name.clone())))
        .collect();
    for (name, deps) in steps {
        for dep in deps {
            graph.add_edge(index[dep.as_str()], index[name.as_str()], ());
        }
    }
    toposort(&graph)
}

fn main() {
    let inputs: Vec<Vec<(String, Vec<String>)>> = SIZES.iter().map(|&n| random_steps(n)).collect();
    let dags: Vec<Dag> = inputs.iter().map(|steps| build(steps)).collect();
    let graphs: Vec<DiGraph<String, ()>> = dags.iter().map(petgraph_of).collect();

    if c8s_benches::criterion_wanted() {
        let mut criterion = Criterion::default().configure_from_args();
        for ((n, dag), graph) in SIZES.iter().zip(&dags).zip(&graphs).take(2) {
            let mut group = criterion.benchmark_group(format!("dag-{}", label(*n)));
            group.sampling_mode(SamplingMode::Flat);
            group.bench_function("layers", |b| b.iter(|| black_box(dag.layers()).len()));
            group.bench_function("petgraph-toposort", |b| b.iter(|| toposort(graph)));
            group.finish();
        }
        criterion.final_summary();
    }
    if !c8s_benches::ratios_wanted() {
        return;
    }

    for (((n, steps), dag), graph) in SIZES.iter().zip(&inputs).zip(&dags).zip(&graphs) {
        let size = label(*n);
        report_ratio(
            "dag-layers",
            &size,
            Some(2.0),
            &mut || dag.layers().len(),
            &mut || toposort(graph),
        );
        report_ratio(
            "dag-build+layers",
            &size,
            None,
            &mut || build(steps).layers().len(),
            &mut || petgraph_from_pairs(steps),
        );
    }
    for i in 1..SIZES.len() {
        let (small, large) = (&dags[i - 1], &dags[i]);
        report_scaling(
            "dag-layers",
            &label(SIZES[i]),
            SIZES[i] / SIZES[i - 1],
            &mut || small.layers().len(),
            &mut || large.layers().len(),
            &mut || toposort(&graphs[i - 1]),
            &mut || toposort(&graphs[i]),
        );
        let (small, large) = (&inputs[i - 1], &inputs[i]);
        report_scaling(
            "dag-build+layers",
            &label(SIZES[i]),
            SIZES[i] / SIZES[i - 1],
            &mut || build(small).layers().len(),
            &mut || build(large).layers().len(),
            &mut || petgraph_from_pairs(small),
            &mut || petgraph_from_pairs(large),
        );
    }
}
