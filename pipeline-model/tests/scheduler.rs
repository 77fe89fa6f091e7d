//! The pure scheduler, driven by a discrete-event runner over random DAGs,
//! durations and failures: it never breaks the graph or the cap, always ends,
//! and with no cap finishes in exactly the critical path.

use std::collections::BTreeMap;

use c8s_pipeline_model::Dag;
use c8s_pipeline_model::scheduler::{
    Decision, Observed, Policy, RunEnd, StopReason, decide, remaining_paths,
};
use proptest::prelude::*;

/// How attempt `n` of a step ends.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Succeed,
    Transient,
    Fail,
}

#[derive(Clone, Debug)]
struct Case {
    names: Vec<String>,
    deps: Vec<Vec<usize>>,
    durations: Vec<u64>,
    fates: Vec<Vec<Fate>>,
}

fn case(fates: impl Strategy<Value = Fate> + Clone) -> impl Strategy<Value = Case> {
    (1usize..25).prop_flat_map(move |n| {
        let deps =
            proptest::collection::vec(proptest::collection::btree_set(0..n, 0..3), n).prop_map(|sets| {
                sets.into_iter()
                    .enumerate()
                    .map(|(i, set)| set.into_iter().filter(|&d| d < i).collect())
                    .collect::<Vec<Vec<usize>>>()
            });
        let durations = proptest::collection::vec(1u64..100, n);
        let fates = proptest::collection::vec(proptest::collection::vec(fates.clone(), 4), n);
        (deps, durations, fates).prop_map(move |(deps, durations, fates)| Case {
            names: (0..n).map(|i| format!("s{:02}", n - 1 - i)).collect(),
            deps,
            durations,
            fates,
        })
    })
}

impl Case {
    fn dag(&self) -> Dag {
        let steps = self.names.iter().enumerate().map(|(i, name)| {
            let deps: Vec<&str> = self.deps[i].iter().map(|&d| self.names[d].as_str()).collect();
            (name.as_str(), deps)
        });
        Dag::new(steps).unwrap_or_else(|e| panic!("{e}"))
    }

    fn index(&self, step: &str) -> usize {
        self.names
            .iter()
            .position(|n| n == step)
            .unwrap_or_else(|| panic!("{step}"))
    }
}

struct Outcome {
    end: RunEnd,
    makespan: u64,
    starts: BTreeMap<String, u32>,
}

/// Runs `case` under `policy` in virtual time, checking every decision.
fn simulate(case: &Case, policy: &Policy) -> Outcome {
    let dag = case.dag();
    let mut observed: BTreeMap<String, Observed> = BTreeMap::new();
    let mut finishing: BTreeMap<String, u64> = BTreeMap::new();
    let mut starts: BTreeMap<String, u32> = BTreeMap::new();
    let mut now = 0u64;
    for _ in 0..10_000 {
        let decision: Decision = decide(&dag, &observed, policy, now);
        assert_eq!(decision, decide(&dag, &observed, policy, now), "deterministic");
        for (step, _) in &decision.skip {
            assert!(!matches!(observed.get(step), Some(Observed::Running { .. })));
            observed.insert(step.clone(), Observed::Cancelled);
        }
        for (step, reason) in &decision.cancel {
            finishing.remove(step);
            let attempt = match observed.get(step) {
                Some(Observed::Running { attempt, .. }) => *attempt,
                other => panic!("cancelled {step} in state {other:?}"),
            };
            let state = match reason {
                StopReason::StepTimeout => Observed::Failed {
                    attempt,
                    retry_at: None,
                    errored: true,
                },
                _ => Observed::Cancelled,
            };
            observed.insert(step.clone(), state);
        }
        for start in &decision.start {
            let i = case.index(&start.step);
            for dep in dag.dependencies(&start.step) {
                assert_eq!(
                    observed.get(dep),
                    Some(&Observed::Succeeded),
                    "{} before {dep}",
                    start.step
                );
            }
            let count = starts.entry(start.step.clone()).or_default();
            assert_eq!(start.attempt, *count, "attempts count up by one");
            assert!(start.attempt < policy.max_attempts.max(1));
            *count += 1;
            assert!(!matches!(
                observed.get(&start.step),
                Some(Observed::Running { .. } | Observed::Succeeded)
            ));
            observed.insert(
                start.step.clone(),
                Observed::Running {
                    attempt: start.attempt,
                    since: Some(now),
                },
            );
            finishing.insert(start.step.clone(), now + case.durations[i]);
        }
        let running = observed
            .values()
            .filter(|o| matches!(o, Observed::Running { .. }))
            .count();
        if policy.parallelism > 0 {
            assert!(
                running <= policy.parallelism,
                "{running} running, cap {}",
                policy.parallelism
            );
        }
        if let Some(end) = decision.done {
            assert_eq!(running, 0);
            assert_eq!(
                end == RunEnd::Succeeded,
                dag.steps().all(|s| observed.get(s) == Some(&Observed::Succeeded))
            );
            return Outcome {
                end,
                makespan: now,
                starts,
            };
        }
        if !(decision.start.is_empty() && decision.cancel.is_empty() && decision.skip.is_empty()) {
            // What was applied is a change: decide again before time moves.
            continue;
        }
        let next_finish = finishing.values().copied().min();
        let next = match (next_finish, decision.wake_at) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or_else(|| panic!("stuck at {now}: {observed:?}")),
        };
        assert!(next >= now);
        now = next;
        let done: Vec<String> = finishing
            .iter()
            .filter(|&(_, &t)| t == now)
            .map(|(s, _)| s.clone())
            .collect();
        for step in done {
            finishing.remove(&step);
            let attempt = match observed.get(&step) {
                Some(Observed::Running { attempt, .. }) => *attempt,
                _ => continue,
            };
            let state = match case.fates[case.index(&step)][attempt as usize % 4] {
                Fate::Succeed => Observed::Succeeded,
                Fate::Transient => Observed::Failed {
                    attempt,
                    retry_at: Some(now + 5),
                    errored: false,
                },
                Fate::Fail => Observed::Failed {
                    attempt,
                    retry_at: None,
                    errored: false,
                },
            };
            observed.insert(step, state);
        }
    }
    panic!("the run did not end");
}

fn any_fate() -> impl Strategy<Value = Fate> + Clone {
    prop_oneof![6 => Just(Fate::Succeed), 2 => Just(Fate::Transient), 1 => Just(Fate::Fail)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_breaks_the_graph_or_the_cap_and_always_ends(
        case in case(any_fate()),
        cap in 0usize..4,
        fail_fast in any::<bool>(),
    ) {
        let policy = Policy::default().parallelism(cap).fail_fast(fail_fast).max_attempts(3);
        let outcome = simulate(&case, &policy);
        let permanent = case.fates.iter().any(|f| matches!(f[0], Fate::Fail));
        if permanent {
            // A step's first attempt fails for good, if it ever runs: never a success.
            let ran_and_failed = case.names.iter().enumerate().any(|(i, n)| {
                matches!(case.fates[i][0], Fate::Fail) && outcome.starts.contains_key(n)
            });
            if ran_and_failed {
                prop_assert_eq!(outcome.end, RunEnd::Failed);
            }
        }
    }

    #[test]
    fn all_successes_run_each_step_once_in_the_critical_path(case in case(Just(Fate::Succeed))) {
        let dag = case.dag();
        let mut policy = Policy::default();
        for (i, name) in case.names.iter().enumerate() {
            policy = policy.estimate(name.clone(), case.durations[i]);
        }
        let outcome = simulate(&case, &policy);
        prop_assert_eq!(outcome.end, RunEnd::Succeeded);
        prop_assert!(outcome.starts.values().all(|&n| n == 1));
        prop_assert_eq!(outcome.starts.len(), case.names.len());
        let critical = remaining_paths(&dag, &policy).values().copied().max().unwrap_or(0);
        prop_assert_eq!(outcome.makespan, critical);
        let path = dag.critical_path(|s| case.durations[case.index(s)]);
        prop_assert_eq!(path.total, critical);
    }

    #[test]
    fn transient_failures_are_retried_within_the_budget(case in case(prop_oneof![Just(Fate::Succeed), Just(Fate::Transient)])) {
        let policy = Policy::default().max_attempts(4).parallelism(2);
        let outcome = simulate(&case, &policy);
        // A step whose four attempts are all transient failures fails the run.
        let hopeless = case.names.iter().enumerate().any(|(i, n)| {
            case.fates[i].iter().all(|f| matches!(f, Fate::Transient)) && outcome.starts.get(n) == Some(&4)
        });
        prop_assert_eq!(outcome.end == RunEnd::Failed, hopeless);
        prop_assert!(outcome.starts.values().all(|&n| n <= 4));
    }
}

fn chain_and_fan() -> Dag {
    // long-1 -> long-2 -> long-3 is the longest path; a, b, c are leaves.
    Dag::new([
        ("a", vec![]),
        ("b", vec![]),
        ("c", vec![]),
        ("long-1", vec![]),
        ("long-2", vec!["long-1"]),
        ("long-3", vec!["long-2"]),
    ])
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_capped_run_starts_the_longest_remaining_path_first() {
    let decision = decide(
        &chain_and_fan(),
        &BTreeMap::new(),
        &Policy::default().parallelism(1),
        0,
    );
    assert_eq!(decision.start.len(), 1);
    assert_eq!(decision.start[0].step, "long-1");
    let policy = Policy::default().parallelism(2).estimate("c", 50);
    let decision = decide(&chain_and_fan(), &BTreeMap::new(), &policy, 0);
    let started: Vec<&str> = decision.start.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(started, ["c", "long-1"]);
}

#[test]
fn timeouts_deadlines_and_cancellation_stop_running_steps() {
    let dag = chain_and_fan();
    let running = BTreeMap::from([(
        "long-1".to_owned(),
        Observed::Running {
            attempt: 0,
            since: Some(100),
        },
    )]);
    let policy = Policy::default().step_timeout(50).parallelism(1);
    let before = decide(&dag, &running, &policy, 120);
    assert!(before.cancel.is_empty());
    assert_eq!(before.wake_at, Some(150));
    let after = decide(&dag, &running, &policy, 150);
    assert_eq!(after.cancel, [("long-1".to_owned(), StopReason::StepTimeout)]);
    // A step still waiting for capacity has no timeout running.
    let waiting = BTreeMap::from([(
        "long-1".to_owned(),
        Observed::Running {
            attempt: 0,
            since: None,
        },
    )]);
    assert!(decide(&dag, &waiting, &policy, 10_000).cancel.is_empty());

    let deadline = decide(&dag, &running, &Policy::default().run_deadline(130), 130);
    assert_eq!(deadline.cancel, [("long-1".to_owned(), StopReason::RunDeadline)]);
    assert_eq!(deadline.skip.len(), 5);
    assert!(deadline.start.is_empty() && deadline.done.is_none());
    let cancelled = decide(&dag, &BTreeMap::new(), &Policy::default().cancelled(), 0);
    assert_eq!(cancelled.done, Some(RunEnd::Cancelled));
    assert_eq!(cancelled.skip.len(), 6);
}

#[test]
fn fail_fast_cancels_and_continue_skips_only_dependents() {
    let dag = chain_and_fan();
    let seen = BTreeMap::from([
        (
            "long-1".to_owned(),
            Observed::Failed {
                attempt: 0,
                retry_at: None,
                errored: false,
            },
        ),
        (
            "a".to_owned(),
            Observed::Running {
                attempt: 0,
                since: Some(0),
            },
        ),
    ]);
    let fast = decide(&dag, &seen, &Policy::default(), 5);
    assert_eq!(
        fast.cancel,
        [("a".to_owned(), StopReason::FailFast("long-1".into()))]
    );
    assert!(fast.start.is_empty());
    let go_on = decide(&dag, &seen, &Policy::default().fail_fast(false), 5);
    assert!(go_on.cancel.is_empty());
    let skipped: Vec<&str> = go_on.skip.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(skipped, ["long-2", "long-3"]);
    let started: Vec<&str> = go_on.start.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(started, ["b", "c"]);
}

#[test]
fn a_retry_waits_for_its_backoff() {
    let dag = Dag::new([("a", Vec::<&str>::new())]).unwrap_or_else(|e| panic!("{e}"));
    let seen = BTreeMap::from([(
        "a".to_owned(),
        Observed::Failed {
            attempt: 0,
            retry_at: Some(40),
            errored: false,
        },
    )]);
    let early = decide(&dag, &seen, &Policy::default(), 10);
    assert!(early.start.is_empty() && early.done.is_none());
    assert_eq!(early.wake_at, Some(40));
    let due = decide(&dag, &seen, &Policy::default(), 40);
    assert_eq!(due.start.first().map(|s| s.attempt), Some(1));
    let spent = decide(&dag, &seen, &Policy::default().max_attempts(1), 40);
    assert_eq!(spent.done, Some(RunEnd::Failed));
}
