//! The in-cluster commands that need no cluster: `c8s crd`, and clear
//! failures of the others when no cluster answers.

mod common;

use common::{c8s, text};

#[test]
fn crd_prints_the_four_definitions_of_the_library() {
    let out = c8s(&["crd"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = c8s_controller::crd::crd_yaml().unwrap_or_default();
    assert_eq!(text(&out.stdout), expected);
    assert_eq!(expected.matches("kind: CustomResourceDefinition").count(), 4);
}

#[test]
fn get_runs_without_a_cluster_fails_with_a_message() {
    let out = common::command()
        .args(["get", "runs"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error: no cluster"),
        "{}",
        text(&out.stderr)
    );
}
