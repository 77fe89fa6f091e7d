//! Against a real cluster (`KUBECONFIG`, current context and namespace).
//! Run with `cargo test -p c8s-kube --test live -- --ignored`; see the README.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use c8s_kube::{
    Cluster, KubeCluster, ReapOptions, RunLiveness, RunOptions, RunState, Step, StepObject,
    TerminationReason, reap, run_pipeline,
};
use k8s_openapi::api::core::v1::Pod;

fn busybox(name: &str, script: &str) -> StepObject {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main",
                "image": "busybox:1.36",
                "command": ["sh", "-c", script],
                "securityContext": {
                    "allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": 1000,
                    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}
                }
            }]
        }
    }))
    .unwrap();
    StepObject::Pod(Box::new(pod))
}

fn run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("live-{}", now.as_secs())
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn a_busybox_pipeline_runs_to_completion() {
    let cluster = KubeCluster::connect(Duration::from_secs(10)).await.unwrap();
    let run = run_id();
    let steps = vec![
        Step::new("hello", busybox(&format!("{run}-hello"), "echo hello")),
        Step::new("fails", busybox(&format!("{run}-fails"), "echo bye; exit 3")).after(["hello"]),
    ];
    let options = RunOptions::new(&run).timeout(Duration::from_secs(300));
    let status = run_pipeline(&cluster, steps, options, std::future::pending())
        .await
        .unwrap();
    println!("{}", status.to_json());
    assert_eq!(status.state, RunState::Failed);
    assert_eq!(
        status.step("hello").unwrap().outcome.as_ref().unwrap().reason,
        TerminationReason::Completed
    );
    assert_eq!(
        status.step("fails").unwrap().outcome.as_ref().unwrap().exit_code,
        Some(3)
    );
    let left = cluster.list(&format!("c8s.dev/run={run}")).await.unwrap();
    assert!(left.is_empty(), "leaked {left:?}");
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn cancellation_and_the_reaper_clean_up() {
    let cluster = KubeCluster::connect(Duration::from_secs(10)).await.unwrap();
    let run = run_id() + "-c";
    let steps = vec![Step::new("sleep", busybox(&format!("{run}-sleep"), "sleep 600"))];
    let mut options = RunOptions::new(&run);
    options.keep_pods = true;
    let status = run_pipeline(
        &cluster,
        steps,
        options,
        tokio::time::sleep(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    assert_eq!(status.state, RunState::Cancelled);
    let report = reap(
        &cluster,
        &ReapOptions::new(Duration::from_secs(3600)).run(&run, RunLiveness::Finished),
    )
    .await
    .unwrap();
    println!("{report:?}");
    assert!(
        cluster
            .list(&format!("c8s.dev/run={run}"))
            .await
            .unwrap()
            .is_empty()
    );
}
