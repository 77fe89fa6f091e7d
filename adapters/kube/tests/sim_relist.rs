//! Level-triggered after a watch break: what happened while the run's watch
//! was down is judged from the relist, not from what the runner remembers.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use c8s_kube::sim::{SimCluster, StepScript};
use c8s_kube::{Cluster, ObjectKind, ObjectRef, RetryPolicy, RunOptions, RunState, Step, run_pipeline};
use common::pod;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Re-subscriptions wait 30–60 s: long enough for a pod to end and be
/// deleted while the watch is down.
fn options(run: &str) -> RunOptions {
    let mut retry = RetryPolicy::default();
    retry.base_delay = secs(60);
    retry.max_delay = secs(60);
    RunOptions::new(run).retry(retry)
}

#[tokio::test(start_paused = true)]
async fn a_pod_that_ended_and_was_deleted_while_the_watch_was_down_is_retried_as_infrastructure() {
    let sim = SimCluster::new();
    // The watch breaks right after a's first event; a runs 5 s.
    sim.script("a", StepScript::new(secs(5)).watch_disconnects(1));
    sim.script("b", StepScript::new(secs(5)));
    let steps = vec![
        Step::new("a", pod("t", "a")),
        Step::new("b", pod("t", "b")).after(["a"]),
    ];
    let run = run_pipeline(&sim, steps, options("relist"), std::future::pending());
    // Someone else deletes a's pod after it ended, before the watch is back.
    let delete = async {
        tokio::time::sleep(secs(10)).await;
        assert!(sim.stats().watch_disconnects == 1, "{:?}", sim.stats());
        sim.delete(&ObjectRef::new(ObjectKind::Pod, "t-a")).await.unwrap();
    };
    let (status, ()) = tokio::time::timeout(secs(3600), async { tokio::join!(run, delete) })
        .await
        .expect("the vanished pod is noticed at the relist");
    let status = status.unwrap();
    // Its end was never seen: the relist shows it gone, and it runs again
    // (as infrastructure: the runner's own budget), then b.
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    let a = status.step("a").unwrap();
    assert_eq!(
        (a.attempts, a.runner_retries, a.retries),
        (2, 1, 0),
        "{}",
        status.to_json()
    );
    let stats = sim.stats();
    assert_eq!(stats.creates["a"], 2, "{stats:?}");
    assert_eq!(stats.creates["b"], 1, "{stats:?}");
    // Still one watch per run: the relist is a re-subscription of it.
    assert_eq!(stats.watches, 2, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_pod_still_there_at_the_relist_is_judged_by_its_listed_status() {
    let sim = SimCluster::new();
    sim.script("a", StepScript::new(secs(5)).watch_disconnects(1));
    let steps = vec![Step::new("a", pod("t", "a"))];
    let status = run_pipeline(&sim, steps, options("kept"), std::future::pending())
        .await
        .unwrap();
    // It ended while the watch was down; the relist shows it succeeded: not rerun.
    assert_eq!(status.state, RunState::Succeeded, "{}", status.to_json());
    assert_eq!(sim.stats().creates["a"], 1);
    assert_eq!(status.step("a").unwrap().attempts, 1);
}
