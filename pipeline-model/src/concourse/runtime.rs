//! How a Concourse build runs its steps, written once as [`Condition`]s for
//! the one scheduler ([`crate::scheduler::decide`]): which pod starts after
//! which ends, and when the build succeeded. A job's plan is a [`Node`]
//! tree; [`Node::ok`] is when a composite succeeded and [`Node::conditions`]
//! gives each pod the condition under which it runs.
//!
//! The rules follow Concourse's `atc/exec` in github.com/concourse/concourse
//! and <https://concourse-ci.org/modifier-and-hook-steps.html>:
//!
//! - `on_success` (`atc/exec/on_success.go`): the hook runs iff the step
//!   succeeded; the composite succeeded iff both did.
//! - `on_failure` (`on_failure.go`): the hook runs iff the step ran and
//!   failed (not errored); the composite's result is the step's.
//! - `on_error` (`on_error.go`): the hook runs iff the step errored (its
//!   timeout, an infrastructure fault); the composite's result is the step's.
//! - `on_abort` (`on_abort.go`): the hook runs iff the build was aborted
//!   while the step could run; the composite's result is the step's.
//! - `ensure` (`ensure_step.go`): the hook runs however the step ended; the
//!   composite succeeded iff both did.
//! - `try` (`try_step.go`): succeeds whatever its step did.
//! - `do` runs in order and stops at the first step that did not succeed;
//!   `in_parallel` runs all; both succeed iff every child did.
//! - `in_parallel` `limit` and `fail_fast` (`atc/exec/in_parallel.go`,
//!   `parallelExecutor.run`): children start in order, at most `limit` at
//!   once; with `fail_fast`, once a child did not succeed no further child
//!   starts. c8s gives child `i` (from `limit` on) the condition "children
//!   `0..=i-limit` ended" (with `fail_fast`: "... and succeeded"), so at
//!   most `limit` run at once and `limit: 1` runs them one after another.
//!   Concourse starts the next child when any running one ends, and its
//!   `fail_fast` also interrupts the children already running; c8s lets
//!   those finish.
//! - `across` (`atc/exec/across_step.go`,
//!   <https://concourse-ci.org/across-step.html>): one copy of the step per
//!   combination of the vars' values, run by the same executor as
//!   `in_parallel`, one level per var (the first var outermost), with that
//!   var's `max_in_flight` as the limit (default 1) and the step's
//!   `fail_fast`; it succeeds iff every copy did, and its hooks wrap the
//!   whole across step (the expansion is in `super::across`).
//!
//! Hooks of one step wrap it in Concourse's order: `StepPrecedence` in
//! `atc/steps.go` parses `ensure`, `on_error`, `on_abort`, `on_failure`,
//! `on_success` in that order, each wrapping the next, so from the innermost
//! out they are `on_success`, `on_failure`, `on_abort`, `on_error`, `ensure`
//! — an `on_failure` hook also runs when the `on_success` hook
//! failed. A step that never ran runs none of its hooks: every condition
//! includes the one its step started under.

use std::collections::BTreeMap;

use crate::scheduler::Condition;

/// A step hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    /// `on_success`.
    OnSuccess,
    /// `on_failure`.
    OnFailure,
    /// `on_abort`.
    OnAbort,
    /// `on_error`.
    OnError,
    /// `ensure`.
    Ensure,
}

impl Hook {
    /// The hook of key `key`; any unknown key reads as `ensure`.
    pub fn of_key(key: &str) -> Hook {
        match key {
            "on_success" => Hook::OnSuccess,
            "on_failure" => Hook::OnFailure,
            "on_abort" => Hook::OnAbort,
            "on_error" => Hook::OnError,
            _ => Hook::Ensure,
        }
    }
}

/// A job's plan as it runs: its pods (by step name) and how they combine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// One pod.
    Leaf(String),
    /// Steps in order (a step that runs no pod is an empty `Do`).
    Do(Vec<Node>),
    /// Steps at once (`in_parallel`, one level of an `across`).
    InParallel {
        /// The children, in order.
        children: Vec<Node>,
        /// How many at once and whether a failure stops the rest.
        how: Parallel,
    },
    /// `try`.
    Try(Box<Node>),
    /// A step with one hook.
    Hooked {
        /// The step (possibly with inner hooks).
        step: Box<Node>,
        /// Which hook.
        hook: Hook,
        /// The hook's step.
        run: Box<Node>,
    },
}

/// How an `in_parallel` (or one var of an `across`) runs its children
/// (`parallelExecutor` in Concourse's `atc/exec/in_parallel.go`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parallel {
    /// At most this many children at once (`None`: all).
    pub limit: Option<usize>,
    /// Once a child did not succeed, the children not started yet do not start.
    pub fail_fast: bool,
}

impl Parallel {
    /// All children at once, none stopping the others (plain `in_parallel`).
    pub const ALL: Parallel = Parallel {
        limit: None,
        fail_fast: false,
    };

    /// The condition child `index` of `children` starts under besides its
    /// parent's: the children `limit` or more places before it ended (and,
    /// with `fail_fast`, succeeded) and none of them was aborted.
    pub fn gate(&self, children: &[Node], index: usize) -> Condition {
        let Some(limit) = self.limit.filter(|l| *l > 0 && index >= *l) else {
            return Condition::True;
        };
        let before = children.get(..=index - limit).unwrap_or_default();
        let mut parts = Vec::new();
        for child in before {
            parts.push(child.ended());
            // A cancel ends them too; the ones after must not start then.
            parts.push(child.aborted().negated());
            if self.fail_fast {
                parts.push(child.ok());
            }
        }
        Condition::all(parts)
    }
}

impl Node {
    /// `step` wrapped by its `hooks` (by key), in Concourse's order.
    pub fn hooked(step: Node, hooks: Vec<(Hook, Node)>) -> Node {
        let mut hooks = hooks;
        hooks.sort_by_key(|(hook, _)| *hook);
        hooks.into_iter().fold(step, |step, (hook, run)| Node::Hooked {
            step: Box::new(step),
            hook,
            run: Box::new(run),
        })
    }

    /// The pods of the node, hooks included, in plan order.
    pub fn leaves(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Node::Leaf(id) => out.push(id),
            Node::Do(children) | Node::InParallel { children, .. } => {
                for child in children {
                    child.collect(out);
                }
            }
            Node::Try(inner) => inner.collect(out),
            Node::Hooked { step, run, .. } => {
                step.collect(out);
                run.collect(out);
            }
        }
    }

    /// The node succeeded.
    pub fn ok(&self) -> Condition {
        match self {
            Node::Leaf(id) => Condition::Succeeded(id.clone()),
            Node::Do(children) | Node::InParallel { children, .. } => {
                Condition::all(children.iter().map(Node::ok))
            }
            Node::Try(_) => Condition::True,
            Node::Hooked { step, hook, run } => match hook {
                Hook::OnSuccess | Hook::Ensure => Condition::all([step.ok(), run.ok()]),
                Hook::OnFailure | Hook::OnAbort | Hook::OnError => step.ok(),
            },
        }
    }

    /// Every pod of the node ended (or never started) for good.
    pub fn ended(&self) -> Condition {
        Condition::all(self.leaves().into_iter().map(|s| Condition::Ended(s.to_owned())))
    }

    /// The node errored: a pod whose error ends it errored.
    pub fn errored(&self) -> Condition {
        match self {
            Node::Leaf(id) => Condition::Errored(id.clone()),
            Node::Do(children) | Node::InParallel { children, .. } => {
                Condition::any(children.iter().map(Node::errored))
            }
            Node::Try(_) => Condition::any([]),
            Node::Hooked { step, hook, run } => match hook {
                Hook::OnSuccess | Hook::Ensure => Condition::any([step.errored(), run.errored()]),
                Hook::OnFailure | Hook::OnAbort | Hook::OnError => step.errored(),
            },
        }
    }

    /// The build was aborted while a pod of the node could run.
    pub fn aborted(&self) -> Condition {
        Condition::any(
            self.leaves()
                .into_iter()
                .map(|s| Condition::Aborted(s.to_owned())),
        )
    }

    /// The node ran and failed: for a pod, [`Condition::Failed`]; for a
    /// composite, all its pods ended and it neither succeeded, errored nor
    /// was aborted.
    pub fn failed(&self) -> Condition {
        match self {
            Node::Leaf(id) => Condition::Failed(id.clone()),
            _ => Condition::all([
                self.ended(),
                self.ok().negated(),
                self.errored().negated(),
                self.aborted().negated(),
            ]),
        }
    }

    /// Adds each pod's condition to `out`, the node starting under `enter`.
    pub fn conditions(&self, enter: Condition, out: &mut BTreeMap<String, Condition>) {
        match self {
            Node::Leaf(id) => {
                out.insert(id.clone(), enter);
            }
            Node::Do(children) => {
                let mut enter = enter;
                for child in children {
                    child.conditions(enter.clone(), out);
                    enter = Condition::all([enter, child.ok()]);
                }
            }
            Node::InParallel { children, how } => {
                for (i, child) in children.iter().enumerate() {
                    child.conditions(Condition::all([enter.clone(), how.gate(children, i)]), out);
                }
            }
            Node::Try(inner) => inner.conditions(enter, out),
            Node::Hooked { step, hook, run } => {
                step.conditions(enter.clone(), out);
                let trigger = match hook {
                    Hook::OnSuccess => step.ok(),
                    Hook::OnFailure => step.failed(),
                    Hook::OnError => step.errored(),
                    Hook::OnAbort => step.aborted(),
                    Hook::Ensure => step.ended(),
                };
                run.conditions(Condition::all([enter, trigger]), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(id: &str) -> Node {
        Node::Leaf(id.to_owned())
    }

    fn conditions(node: &Node) -> BTreeMap<String, Condition> {
        let mut out = BTreeMap::new();
        node.conditions(Condition::True, &mut out);
        out
    }

    #[test]
    fn a_step_in_a_do_runs_after_the_one_before_succeeded() {
        let node = Node::Do(vec![leaf("a"), leaf("b"), leaf("c")]);
        let c = conditions(&node);
        assert_eq!(c["a"], Condition::True);
        assert_eq!(c["b"], Condition::Succeeded("a".into()));
        assert_eq!(
            c["c"],
            Condition::All(vec![
                Condition::Succeeded("a".into()),
                Condition::Succeeded("b".into())
            ])
        );
        assert_eq!(node.ok(), c["c"].clone().and_then("c"));
    }

    impl Condition {
        fn and_then(self, step: &str) -> Condition {
            Condition::all([self, Condition::Succeeded(step.into())])
        }
    }

    #[test]
    fn each_hook_reads_its_own_end_of_the_step() {
        let hooked = Node::hooked(
            leaf("x"),
            vec![
                (Hook::Ensure, leaf("e")),
                (Hook::OnFailure, leaf("f")),
                (Hook::OnSuccess, leaf("s")),
                (Hook::OnError, leaf("r")),
                (Hook::OnAbort, leaf("a")),
            ],
        );
        let c = conditions(&hooked);
        assert_eq!(c["s"], Condition::Succeeded("x".into()));
        // on_failure wraps on_success: it also runs when the on_success hook failed.
        assert_eq!(
            c["f"],
            Condition::all([
                Condition::all([Condition::Ended("x".into()), Condition::Ended("s".into())]),
                Condition::all([Condition::Succeeded("x".into()), Condition::Succeeded("s".into())])
                    .negated(),
                Condition::any([Condition::Errored("x".into()), Condition::Errored("s".into())]).negated(),
                Condition::any([Condition::Aborted("x".into()), Condition::Aborted("s".into())]).negated(),
            ])
        );
        assert_eq!(
            c["r"],
            Condition::any([Condition::Errored("x".into()), Condition::Errored("s".into())])
        );
        assert_eq!(
            c["e"],
            Condition::all(["x", "s", "f", "a", "r"].map(|s| Condition::Ended(s.into())))
        );
        // The composite's result: the step and the on_success and ensure hooks.
        assert_eq!(
            hooked.ok(),
            Condition::all(["x", "s", "e"].map(|s| Condition::Succeeded(s.into())))
        );
    }

    #[test]
    fn a_try_succeeds_and_its_successor_runs_whatever_it_did() {
        let node = Node::Do(vec![Node::Try(Box::new(leaf("t"))), leaf("next")]);
        let c = conditions(&node);
        assert_eq!(c["next"], Condition::True);
        assert_eq!(node.ok(), Condition::Succeeded("next".into()));
    }

    #[test]
    fn a_hook_of_a_step_that_never_ran_does_not_run() {
        let node = Node::Do(vec![
            leaf("a"),
            Node::hooked(leaf("b"), vec![(Hook::OnFailure, leaf("hb"))]),
        ]);
        let c = conditions(&node);
        assert_eq!(
            c["hb"],
            Condition::all([Condition::Succeeded("a".into()), Condition::Failed("b".into())])
        );
    }
}
