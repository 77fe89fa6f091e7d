//! `c8s run` and `c8s reap` without a reachable cluster: a clear message and
//! exit 1, quickly — never a hang. (Runs against a real cluster are the kube
//! adapter's `#[ignore = "needs cluster"]` tests.)

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

/// A kubeconfig whose API server is a loopback port nothing listens on.
fn unreachable_kubeconfig() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("c8s-run-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("kubeconfig");
    let config = "apiVersion: v1\nkind: Config\nclusters:\n- name: nowhere\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: nowhere\n  context:\n    cluster: nowhere\n    user: nobody\n    namespace: ci\ncurrent-context: nowhere\nusers:\n- name: nobody\n  user:\n    token: not-a-real-token\n";
    std::fs::write(&path, config).expect("write kubeconfig");
    path
}

fn c8s(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = common::command()
        .args(args)
        .env("KUBECONFIG", unreachable_kubeconfig())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .expect("c8s runs");
    (out, started.elapsed())
}

#[test]
fn run_fails_fast_without_a_cluster() {
    let (out, took) = c8s(&[
        "run",
        "examples/pipelines/orders.c8s.yaml",
        "--connect-timeout",
        "5s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no Kubernetes cluster reachable"), "{stderr}");
    // Generous bound: the point is "no hang", not speed.
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

#[test]
fn run_reports_input_errors_before_touching_a_cluster() {
    let (out, _) = c8s(&["run", "no/such/pipeline.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("no/such/pipeline.yaml: cannot read: file not found"),
        "{stderr}"
    );
}

#[test]
fn reap_fails_fast_without_a_cluster() {
    let (out, took) = c8s(&["reap", "--dry-run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no Kubernetes cluster reachable"), "{stderr}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

#[test]
fn bad_durations_are_usage_errors_with_the_flag_named() {
    let (out, _) = c8s(&["run", "examples/pipelines/orders.c8s.yaml", "--timeout", "soon"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("--timeout \"soon\""), "{stderr}");
}
