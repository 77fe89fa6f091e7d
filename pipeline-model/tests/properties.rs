//! Properties of the step graph and the matrix, over random inputs.

use c8s_pipeline_model::{Dag, DagError, Matrix, OrderedMap};
use proptest::prelude::*;

/// A random DAG: `n` steps, edges only from a lower to a higher position,
/// then names shuffled so that position and name order differ.
fn random_dag() -> impl Strategy<Value = (Vec<String>, Vec<(usize, usize)>)> {
    (1usize..40).prop_flat_map(|n| {
        let names = Just((0..n).map(|i| format!("s{i:03}")).collect::<Vec<_>>()).prop_shuffle();
        let edges = proptest::collection::vec((0..n, 0..n), 0..n * 2)
            .prop_map(|pairs| pairs.into_iter().filter(|(a, b)| a < b).collect::<Vec<_>>());
        (names, edges)
    })
}

/// `(step, dependencies)` pairs; the edge `(a, b)` means b depends on a.
fn steps(names: &[String], edges: &[(usize, usize)]) -> Vec<(String, Vec<String>)> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let deps = edges
                .iter()
                .filter(|(_, b)| *b == i)
                .map(|(a, _)| names[*a].clone())
                .collect();
            (name.clone(), deps)
        })
        .collect()
}

fn layer_of(layers: &[Vec<&str>], step: &str) -> Option<usize> {
    layers.iter().position(|l| l.contains(&step))
}

proptest! {
    #[test]
    fn layers_respect_every_edge_and_ignore_input_order(
        (names, edges) in random_dag(),
        seed in any::<u64>(),
    ) {
        let declared = steps(&names, &edges);
        let dag = Dag::new(declared.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let layers = dag.layers();
        prop_assert_eq!(layers.iter().map(Vec::len).sum::<usize>(), names.len());
        for (a, b) in &edges {
            let (la, lb) = (layer_of(&layers, &names[*a]), layer_of(&layers, &names[*b]));
            prop_assert!(la < lb, "{} must come before {}", names[*a], names[*b]);
        }
        for layer in &layers {
            prop_assert!(layer.windows(2).all(|w| w[0] < w[1]), "sorted: {:?}", layer);
        }
        // The same steps listed in another order give the same layers.
        let mut reordered = declared.clone();
        let len = reordered.len();
        for i in 0..len {
            let j = (seed as usize).wrapping_mul(i + 7) % len;
            reordered.swap(i, j);
        }
        let again = Dag::new(reordered).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again.layers(), layers);
    }

    #[test]
    fn an_injected_cycle_is_always_reported(
        (names, mut edges) in random_dag(),
        from in any::<prop::sample::Index>(),
        to in any::<prop::sample::Index>(),
    ) {
        let n = names.len();
        prop_assume!(n >= 2);
        let (mut a, mut b) = (from.index(n), to.index(n));
        if a == b { b = (a + 1) % n; }
        if a > b { std::mem::swap(&mut a, &mut b); }
        // a -> b forward, then b -> a backwards: a cycle.
        edges.push((a, b));
        edges.push((b, a));
        match Dag::new(steps(&names, &edges)) {
            Err(DagError::Cycle { path }) => {
                prop_assert!(path.len() >= 3);
                prop_assert_eq!(path.first(), path.last());
                // Every link of the reported path is a real dependency.
                let declared = steps(&names, &edges);
                for pair in path.windows(2) {
                    let deps = declared.iter().find(|(s, _)| *s == pair[0]).map(|(_, d)| d.clone()).unwrap_or_default();
                    prop_assert!(deps.contains(&pair[1]), "{} does not depend on {}", pair[0], pair[1]);
                }
            }
            other => prop_assert!(false, "expected a cycle, got {:?}", other.map(|d| d.len())),
        }
    }

    #[test]
    fn matrix_count_is_product_minus_excluded_plus_included(
        sizes in proptest::collection::vec(1usize..4, 1..4),
        exclude_picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
        includes in 0usize..3,
    ) {
        let mut dimensions = OrderedMap::new();
        for (d, size) in sizes.iter().enumerate() {
            dimensions.insert(format!("d{d}"), (0..*size).map(|v| format!("v{v}")).collect());
        }
        let mut matrix = Matrix::new(dimensions.clone());
        // Exclude whole combinations picked from the product (distinct ones).
        let product: usize = sizes.iter().product();
        let mut excluded = std::collections::BTreeSet::new();
        for pick in &exclude_picks {
            let mut k = pick.index(product);
            let mut entry = OrderedMap::new();
            for (d, size) in sizes.iter().enumerate().rev() {
                entry.insert(format!("d{d}"), format!("v{}", k % size));
                k /= size;
            }
            if excluded.insert(format!("{entry:?}")) {
                matrix = matrix.with_exclude(entry);
            }
        }
        // Includes use a value no dimension has, so they are all new.
        for i in 0..includes {
            let entry: OrderedMap<String> = (0..sizes.len()).map(|d| (format!("d{d}"), format!("extra{i}"))).collect();
            matrix = matrix.with_include(entry);
        }
        let combinations = matrix.combinations(10_000).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(combinations.len(), product - excluded.len() + includes);
        let ids: std::collections::BTreeSet<&str> = combinations.iter().map(|c| c.id.as_str()).collect();
        prop_assert_eq!(ids.len(), combinations.len());
    }
}
