//! The step graph (petgraph): topological layers, skip
//! propagation and the critical path. Nodes are stored in name order, so every
//! answer is the same whatever order the steps were written in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

/// Why a step graph cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DagError {
    /// Two steps with one name.
    #[error("step {step:?} is defined twice")]
    DuplicateStep {
        /// The name.
        step: String,
    },
    /// A dependency on a step that does not exist.
    #[error("step {step:?} depends on {dependency:?}, which is not defined")]
    UnknownStep {
        /// The depending step.
        step: String,
        /// The missing step.
        dependency: String,
    },
    /// A step that depends on itself.
    #[error("step {step:?} depends on itself")]
    SelfDependency {
        /// The step.
        step: String,
    },
    /// Steps that depend on each other in a circle.
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle {
        /// The cycle as `a depends on b depends on … a`, starting and ending at
        /// its alphabetically first step.
        path: Vec<String>,
    },
}

/// An acyclic graph of steps; an edge goes from a dependency to its dependent.
#[derive(Debug, Clone)]
pub struct Dag {
    /// Nodes in name order, so a name's index is found by binary search.
    graph: DiGraph<String, ()>,
    /// Node indices in a topological order (Kahn's, found while checking for cycles).
    order: Vec<u32>,
    /// Dependencies by topological position, compressed: those of position
    /// `p` are `deps[dep_start[p]..dep_start[p + 1]]`, also as positions. A
    /// contiguous copy of the edges makes layering a sequential scan.
    dep_start: Vec<u32>,
    deps: Vec<u32>,
}

impl Dag {
    /// Builds the graph from `(step, dependencies)` pairs, in any order.
    ///
    /// ```
    /// use c8s_pipeline_model::Dag;
    /// let dag = Dag::new([("build", vec!["unit"]), ("unit", vec![]), ("lint", vec![])]).unwrap();
    /// assert_eq!(dag.layers(), [vec!["lint", "unit"], vec!["build"]]);
    ///
    /// let cycle = Dag::new([("a", vec!["b"]), ("b", vec!["a"])]).unwrap_err();
    /// assert_eq!(cycle.to_string(), "dependency cycle: a -> b -> a");
    /// ```
    pub fn new<I, S, D, T>(steps: I) -> Result<Self, DagError>
    where
        I: IntoIterator<Item = (S, D)>,
        S: AsRef<str>,
        D: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut declared: Vec<(String, Vec<String>)> = steps
            .into_iter()
            .map(|(s, d)| {
                let deps = d.into_iter().map(|t| t.as_ref().to_owned()).collect();
                (s.as_ref().to_owned(), deps)
            })
            .collect();
        declared.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(twin) = declared.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(DagError::DuplicateStep {
                step: twin[0].0.clone(),
            });
        }
        // Resolve every dependency to a node index (the position in name
        // order) before the names move into the graph. The map is only looked
        // up, never iterated, so its order cannot reach any output.
        let mut edges: Vec<(u32, u32)> = Vec::with_capacity(declared.len());
        {
            let index: HashMap<&str, u32> = declared
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (name.as_str(), to_u32(i)))
                .collect();
            // `stamp[n] == to + 1`: `n` is already a dependency of `to`.
            let mut stamp = vec![0u32; declared.len()];
            for (to, (name, deps)) in declared.iter().enumerate() {
                let to = to_u32(to);
                for dep in deps {
                    if dep == name {
                        return Err(DagError::SelfDependency { step: name.clone() });
                    }
                    let from = *index.get(dep.as_str()).ok_or_else(|| DagError::UnknownStep {
                        step: name.clone(),
                        dependency: dep.clone(),
                    })?;
                    if stamp[from as usize] != to + 1 {
                        stamp[from as usize] = to + 1;
                        edges.push((from, to));
                    }
                }
            }
        }
        let mut graph = DiGraph::with_capacity(declared.len(), edges.len());
        for (name, _) in declared {
            graph.add_node(name);
        }
        for (from, to) in edges {
            graph.add_edge(NodeIndex::new(from as usize), NodeIndex::new(to as usize), ());
        }
        let order = kahn_order(&graph);
        if order.len() < graph.node_count() {
            let path = find_cycle(&graph).unwrap_or_default();
            return Err(DagError::Cycle { path });
        }
        let mut position = vec![0u32; order.len()];
        for (p, &node) in order.iter().enumerate() {
            position[node as usize] = to_u32(p);
        }
        let mut dep_start = Vec::with_capacity(order.len() + 1);
        let mut deps = Vec::with_capacity(graph.edge_count());
        dep_start.push(0);
        for &node in &order {
            let node = NodeIndex::new(node as usize);
            deps.extend(
                graph
                    .neighbors_directed(node, Direction::Incoming)
                    .map(|d| position[d.index()]),
            );
            dep_start.push(to_u32(deps.len()));
        }
        Ok(Self {
            graph,
            order,
            dep_start,
            deps,
        })
    }

    /// The node of `step`: nodes are in name order.
    fn node(&self, step: &str) -> Option<NodeIndex> {
        self.graph
            .raw_nodes()
            .binary_search_by(|n| n.weight.as_str().cmp(step))
            .ok()
            .map(NodeIndex::new)
    }

    /// The step names, sorted.
    pub fn steps(&self) -> impl Iterator<Item = &str> {
        self.graph.raw_nodes().iter().map(|n| n.weight.as_str())
    }

    /// Whether `step` is one of the steps.
    pub fn contains(&self, step: &str) -> bool {
        self.node(step).is_some()
    }

    /// How many steps.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The direct dependencies of `step`, sorted (empty for an unknown step).
    pub fn dependencies(&self, step: &str) -> Vec<&str> {
        self.neighbours(step, Direction::Incoming)
    }

    /// The steps that directly depend on `step`, sorted.
    pub fn dependents(&self, step: &str) -> Vec<&str> {
        self.neighbours(step, Direction::Outgoing)
    }

    fn neighbours(&self, step: &str, direction: Direction) -> Vec<&str> {
        let Some(node) = self.node(step) else {
            return Vec::new();
        };
        let mut nodes: Vec<NodeIndex> = self.graph.neighbors_directed(node, direction).collect();
        nodes.sort();
        nodes.into_iter().map(|n| self.graph[n].as_str()).collect()
    }

    /// Every step `step` depends on, directly or not, sorted.
    pub fn ancestors(&self, step: &str) -> BTreeSet<&str> {
        self.reachable(step, Direction::Incoming)
    }

    /// Every step that depends on `step`, directly or not, sorted.
    pub fn descendants(&self, step: &str) -> BTreeSet<&str> {
        self.reachable(step, Direction::Outgoing)
    }

    fn reachable(&self, step: &str, direction: Direction) -> BTreeSet<&str> {
        let mut found = BTreeSet::new();
        let Some(start) = self.node(step) else {
            return found;
        };
        let mut stack = vec![start];
        let mut seen = vec![false; self.graph.node_count()];
        while let Some(node) = stack.pop() {
            for next in self.graph.neighbors_directed(node, direction) {
                if !seen[next.index()] {
                    seen[next.index()] = true;
                    found.insert(self.graph[next].as_str());
                    stack.push(next);
                }
            }
        }
        found
    }

    /// Topological layers: every step comes after all its dependencies, each
    /// layer as early as possible and sorted by name.
    pub fn layers(&self) -> Vec<Vec<&str>> {
        // One pass in topological order: a step's layer is one more than its
        // deepest dependency's, which was computed before it.
        // Depth by topological position (read back for dependents) and by
        // node (so the grouping below is a sequential scan).
        let mut depth = vec![0u32; self.order.len()];
        let mut node_depth = vec![0u32; self.order.len()];
        let mut sizes: Vec<usize> = Vec::new();
        for (p, &node) in self.order.iter().enumerate() {
            let (from, to) = (self.dep_start[p] as usize, self.dep_start[p + 1] as usize);
            let mut d = 0;
            for &q in &self.deps[from..to] {
                d = d.max(depth[q as usize] + 1);
            }
            depth[p] = d;
            node_depth[node as usize] = d;
            let d = d as usize;
            if d >= sizes.len() {
                sizes.resize(d + 1, 0);
            }
            sizes[d] += 1;
        }
        let mut layers: Vec<Vec<&str>> = sizes.into_iter().map(Vec::with_capacity).collect();
        // Node indices are in name order, so each layer fills sorted.
        for (node, &d) in self.graph.raw_nodes().iter().zip(&node_depth) {
            layers[d as usize].push(node.weight.as_str());
        }
        layers
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Kahn's algorithm: the nodes in a topological order, or fewer than all of
/// them when there is a cycle.
fn kahn_order(graph: &DiGraph<String, ()>) -> Vec<u32> {
    let n = graph.node_count();
    let mut indegree = vec![0u32; n];
    for edge in graph.raw_edges() {
        indegree[edge.target().index()] += 1;
    }
    let mut order: Vec<u32> = (0..n).filter(|&i| indegree[i] == 0).map(to_u32).collect();
    let mut head = 0;
    while let Some(&node) = order.get(head) {
        head += 1;
        for next in graph.neighbors_directed(NodeIndex::new(node as usize), Direction::Outgoing) {
            let i = next.index();
            indegree[i] -= 1;
            if indegree[i] == 0 {
                order.push(to_u32(i));
            }
        }
    }
    order
}

/// A cycle of a graph that has one, as `a depends on b … depends on a`,
/// starting at its alphabetically first step.
fn find_cycle(graph: &DiGraph<String, ()>) -> Option<Vec<String>> {
    let n = graph.node_count();
    let mut stuck = vec![true; n];
    for node in kahn_order(graph) {
        stuck[node as usize] = false;
    }
    // Steps Kahn could not reach lie on or after a cycle; each has a stuck
    // dependency, so walking dependencies must close a circle.
    let start = (0..n).find(|&i| stuck[i])?;
    let mut walk: Vec<usize> = vec![start];
    let mut seen_at = BTreeMap::from([(start, 0usize)]);
    loop {
        let current = *walk.last()?;
        let next = graph
            .neighbors_directed(NodeIndex::new(current), Direction::Incoming)
            .map(|n| n.index())
            .filter(|&i| stuck[i])
            .min()?;
        if let Some(&at) = seen_at.get(&next) {
            let mut cycle: Vec<usize> = walk[at..].to_vec();
            let smallest = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
            cycle.rotate_left(smallest);
            cycle.push(cycle[0]);
            return Some(
                cycle
                    .into_iter()
                    .map(|i| graph[NodeIndex::new(i)].clone())
                    .collect(),
            );
        }
        seen_at.insert(next, walk.len());
        walk.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_errors_name_the_step() {
        let twice = Dag::new([("a", vec![]), ("b", vec![]), ("a", vec!["b"])]);
        assert_eq!(twice.err(), Some(DagError::DuplicateStep { step: "a".into() }));
        let own = Dag::new([("a", vec!["a"])]);
        assert_eq!(own.err(), Some(DagError::SelfDependency { step: "a".into() }));
        let missing = Dag::new([("b", vec!["zz"]), ("a", vec!["yy"])]);
        // Steps are checked in name order, so the first error is stable.
        assert_eq!(
            missing.err(),
            Some(DagError::UnknownStep {
                step: "a".into(),
                dependency: "yy".into()
            })
        );
    }

    #[test]
    fn repeated_dependencies_are_one_edge_and_lookups_use_names() {
        let dag = Dag::new([
            ("test", vec!["build", "build", "lint"]),
            ("build", vec![]),
            ("lint", vec![]),
            ("ship", vec!["test", "build"]),
        ])
        .unwrap_or_else(|e| panic!("acyclic: {e}"));
        assert_eq!(dag.graph.edge_count(), 4);
        assert_eq!(dag.steps().collect::<Vec<_>>(), ["build", "lint", "ship", "test"]);
        assert!(dag.contains("lint") && !dag.contains("lin") && !dag.contains("zzz"));
        assert_eq!(dag.dependencies("test"), ["build", "lint"]);
        assert_eq!(dag.dependents("build"), ["ship", "test"]);
        assert!(dag.dependencies("nope").is_empty());
        assert_eq!(dag.layers(), [vec!["build", "lint"], vec!["test"], vec!["ship"]]);
    }
}
