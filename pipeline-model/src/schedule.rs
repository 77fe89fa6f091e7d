//! Running a step graph: which steps can start given what has happened
//! (the ready set), which are skipped, and the critical path.

use std::collections::{BTreeMap, BTreeSet};

use serde_derive::{Deserialize, Serialize};

use crate::dag::Dag;

/// What has happened to the steps of a run so far, for [`Dag::ready`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Progress {
    /// Steps that are running now.
    pub running: BTreeSet<String>,
    /// Steps that finished successfully.
    pub succeeded: BTreeSet<String>,
    /// Steps that failed.
    pub failed: BTreeSet<String>,
    /// Steps that were skipped.
    pub skipped: BTreeSet<String>,
}

impl Progress {
    /// Nothing has happened yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `step` as running.
    pub fn running(mut self, step: impl Into<String>) -> Self {
        self.running.insert(step.into());
        self
    }

    /// Marks `step` as succeeded.
    pub fn succeeded(mut self, step: impl Into<String>) -> Self {
        self.succeeded.insert(step.into());
        self
    }

    /// Marks `step` as failed.
    pub fn failed(mut self, step: impl Into<String>) -> Self {
        self.failed.insert(step.into());
        self
    }

    /// Marks `step` as skipped.
    pub fn skipped(mut self, step: impl Into<String>) -> Self {
        self.skipped.insert(step.into());
        self
    }

    fn is_settled(&self, step: &str) -> bool {
        self.running.contains(step)
            || self.succeeded.contains(step)
            || self.failed.contains(step)
            || self.skipped.contains(step)
    }
}

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
    /// The steps that can start now: not yet running or done, and every
    /// dependency succeeded. Sorted by name. A step does not wait for the
    /// rest of its layer.
    pub fn ready(&self, progress: &Progress) -> Vec<&str> {
        self.steps()
            .filter(|step| !progress.is_settled(step))
            .filter(|step| {
                self.dependencies(step)
                    .iter()
                    .all(|dep| progress.succeeded.contains(*dep))
            })
            .collect()
    }

    /// The steps that can never run because a dependency (direct or not)
    /// failed or was skipped, and are not settled themselves. Sorted.
    pub fn blocked(&self, progress: &Progress) -> Vec<&str> {
        let mut blocked = BTreeSet::new();
        for step in progress.failed.iter().chain(&progress.skipped) {
            blocked.extend(self.descendants(step));
        }
        blocked.into_iter().filter(|s| !progress.is_settled(s)).collect()
    }

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

    /// The chain of steps with the largest total `estimate`; ties go to the
    /// alphabetically first chain. Steps not estimated count as 0.
    pub fn critical_path(&self, estimate: impl Fn(&str) -> u64) -> CriticalPath {
        // Longest path by dynamic programming in layer order: each step
        // finishes at its latest dependency's finish plus its own estimate.
        let mut finish: BTreeMap<&str, (u64, Option<&str>)> = BTreeMap::new();
        for step in self.layers().into_iter().flatten() {
            let mut best: Option<(&str, u64)> = None;
            for dep in self.dependencies(step) {
                let at = finish.get(dep).map_or(0, |f| f.0);
                if best.is_none_or(|(_, b)| at > b) {
                    best = Some((dep, at));
                }
            }
            let start = best.map_or(0, |(_, at)| at);
            finish.insert(step, (start.saturating_add(estimate(step)), best.map(|(d, _)| d)));
        }
        // The latest finish; among equals, the alphabetically first step.
        let Some((&end, &(total, _))) = finish.iter().rev().max_by_key(|(_, f)| f.0) else {
            return CriticalPath::default();
        };
        let mut steps = Vec::new();
        let mut current = Some(end);
        while let Some(step) = current {
            steps.push(step.to_owned());
            current = finish.get(step).and_then(|f| f.1);
        }
        steps.reverse();
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
    fn layers_ready_and_critical_path() {
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
        let p = Progress::new()
            .succeeded("unit")
            .succeeded("build")
            .running("integration");
        assert_eq!(d.ready(&p), Vec::<&str>::new());
        let p = Progress::new()
            .succeeded("unit")
            .succeeded("build")
            .succeeded("integration");
        assert_eq!(d.ready(&p), ["publish"]);
        assert_eq!(
            d.ready(&Progress::new().succeeded("unit")),
            ["build", "integration"]
        );
        // A step starts once its own dependencies succeed, not its whole layer.
        let d2 = dag(&[("slow", &[]), ("fast", &[]), ("after-fast", &["fast"])]);
        let p = Progress::new().running("slow").succeeded("fast");
        assert_eq!(d2.ready(&p), ["after-fast"]);
        let p = Progress::new().succeeded("unit").failed("build");
        assert_eq!(d.blocked(&p), ["publish"]);
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
