//! A step graph's skips and its critical path. What runs when is the
//! scheduler's (`scheduler::decide`).

use std::collections::BTreeMap;

use serde_derive::{Deserialize, Serialize};

use crate::dag::Dag;

/// The longest chain of steps by estimated duration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CriticalPath {
    /// The steps, first to last.
    pub steps: Vec<String>,
    /// The sum of their estimates.
    pub total: u64,
}

impl Dag {
    /// Skip propagation: `roots` are skipped, and so is every step that
    /// depends on one of them. Maps each skipped step to the reason (its own
    /// condition, or the first skipped dependency by name).
    pub fn propagate_skips<'a>(
        &self,
        roots: impl IntoIterator<Item = &'a str>,
    ) -> BTreeMap<String, SkipReason> {
        let mut skipped: BTreeMap<String, SkipReason> = BTreeMap::new();
        for root in roots {
            if self.contains(root) {
                skipped.insert(root.to_owned(), SkipReason::Condition);
            }
        }
        for layer in self.layers() {
            for step in layer {
                if skipped.contains_key(step) {
                    continue;
                }
                if let Some(dep) = self
                    .dependencies(step)
                    .into_iter()
                    .find(|d| skipped.contains_key(*d))
                {
                    skipped.insert(step.to_owned(), SkipReason::Dependency(dep.to_owned()));
                }
            }
        }
        skipped
    }

    /// For each step, the longest chain of `estimate`s from it to the end
    /// of the graph, itself included. The one critical-path computation:
    /// the scheduler starts the ready step with the longest remaining path
    /// first, and [`Dag::critical_path`] follows it.
    pub fn remaining_paths(&self, estimate: impl Fn(&str) -> u64) -> BTreeMap<&str, u64> {
        let mut remaining: BTreeMap<&str, u64> = BTreeMap::new();
        for step in self.layers().into_iter().rev().flatten() {
            let after = self
                .dependents(step)
                .iter()
                .filter_map(|d| remaining.get(d).copied())
                .max()
                .unwrap_or(0);
            remaining.insert(step, estimate(step).saturating_add(after));
        }
        remaining
    }

    /// The chain of steps with the largest total `estimate`
    /// ([`Dag::remaining_paths`] from its first step); ties go to the
    /// alphabetically first step at each link.
    pub fn critical_path(&self, estimate: impl Fn(&str) -> u64) -> CriticalPath {
        let remaining = self.remaining_paths(&estimate);
        // The longest remaining path among steps; among equals the first by name.
        fn longest<'a>(
            steps: impl Iterator<Item = &'a str>,
            remaining: &BTreeMap<&str, u64>,
        ) -> Option<(&'a str, u64)> {
            steps
                .filter_map(|s| remaining.get(s).map(|r| (s, *r)))
                .fold(None, |best, (s, r)| match best {
                    Some((_, b)) if b >= r => best,
                    _ => Some((s, r)),
                })
        }
        let Some((first, total)) = longest(self.steps(), &remaining) else {
            return CriticalPath::default();
        };
        let mut steps = vec![first.to_owned()];
        let mut current = first;
        // A step that adds nothing (a skipped one, estimated 0) does not lengthen the path.
        while let Some((next, _)) =
            longest(self.dependents(current).into_iter(), &remaining).filter(|(_, r)| *r > 0)
        {
            steps.push(next.to_owned());
            current = next;
        }
        CriticalPath { steps, total }
    }
}

/// Why a step does not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum SkipReason {
    /// Its own `conditional` does not match the branch.
    Condition,
    /// The pipeline's `branches` do not match the branch: nothing runs.
    PipelineBranches,
    /// It depends on a skipped step.
    Dependency(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Condition => f.write_str("the branch does not match its condition"),
            SkipReason::PipelineBranches => f.write_str("the pipeline does not run on this branch"),
            SkipReason::Dependency(step) => write!(f, "it depends on skipped step {step:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::DagError;

    fn dag(steps: &[(&str, &[&str])]) -> Dag {
        Dag::new(steps.iter().map(|(s, d)| (*s, d.iter().copied()))).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn layers_and_critical_path() {
        let d = dag(&[
            ("publish", &["build", "integration"]),
            ("integration", &["unit"]),
            ("build", &["unit"]),
            ("unit", &[]),
        ]);
        assert_eq!(
            d.layers(),
            [vec!["unit"], vec!["build", "integration"], vec!["publish"]]
        );
        let times = |s: &str| match s {
            "integration" => 10,
            _ => 1,
        };
        let path = d.critical_path(times);
        assert_eq!(path.steps, ["unit", "integration", "publish"]);
        assert_eq!(path.total, 12);
        let skipped = d.propagate_skips(["build"]);
        assert_eq!(
            skipped.get("publish"),
            Some(&SkipReason::Dependency("build".into()))
        );
        assert_eq!(skipped.len(), 2);
    }

    #[test]
    fn errors() {
        let cycle = Dag::new([
            ("c", vec!["b"]),
            ("b", vec!["a"]),
            ("a", vec!["c"]),
            ("x", vec!["a"]),
        ]);
        assert_eq!(
            cycle.err().map(|e| e.to_string()).as_deref(),
            Some("dependency cycle: a -> c -> b -> a")
        );
        assert!(matches!(
            Dag::new([("a", vec!["a"])]),
            Err(DagError::SelfDependency { .. })
        ));
        assert!(matches!(
            Dag::new([("a", vec!["z"])]),
            Err(DagError::UnknownStep { .. })
        ));
        assert!(matches!(
            Dag::new([("a", Vec::<&str>::new()), ("a", vec![])]),
            Err(DagError::DuplicateStep { .. })
        ));
    }
}
