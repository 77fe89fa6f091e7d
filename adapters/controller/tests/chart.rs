//! The chart in `charts/c8s-controller`: lints strictly, renders objects the
//! Kubernetes 1.33 and 1.37 schemas accept, and ships exactly the CRDs
//! `c8s crd` prints.

#[path = "../../../pod-builder/tests/common/tools.rs"]
mod tools;

use std::process::Command;

fn chart() -> std::path::PathBuf {
    tools::workspace().join("charts/c8s-controller")
}

#[test]
fn the_chart_ships_the_crds_of_the_library() {
    let shipped = std::fs::read_to_string(chart().join("crds/c8s.dev.yaml")).unwrap_or_default();
    let expected = c8s_controller::crd::crd_yaml().unwrap_or_default();
    assert!(
        shipped == expected,
        "charts/c8s-controller/crds/c8s.dev.yaml is stale: regenerate it with `c8s crd > charts/c8s-controller/crds/c8s.dev.yaml`"
    );
}

#[test]
#[ignore = "needs helm and kubernetes-validate"]
fn helm_lint_strict_and_template_validate() {
    let helm = tools::tool("helm");
    let lint = Command::new(&helm)
        .args(["lint", "--strict"])
        .arg(chart())
        .output();
    let lint = lint.unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    assert!(
        lint.status.success(),
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    let template = Command::new(&helm)
        .args(["template", "ci", "--namespace", "c8s", "--include-crds"])
        .arg(chart())
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    assert!(
        template.status.success(),
        "{}",
        String::from_utf8_lossy(&template.stderr)
    );
    let text = String::from_utf8_lossy(&template.stdout).into_owned();
    for kind in [
        "kind: CustomResourceDefinition",
        "kind: Deployment",
        "kind: Service",
        "kind: ClusterRole",
        "kind: Role",
    ] {
        assert!(text.contains(kind), "{kind} missing");
    }
    // Least privilege: nothing cluster-wide beyond what the controller and webhook use.
    assert!(!text.contains("\"*\""), "a wildcard in RBAC");
    assert!(
        !text.contains("customresourcedefinitions"),
        "the chart installs CRDs; the controller must not write them"
    );
    let dir = std::env::temp_dir().join(format!("c8s-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_default();
    let file = dir.join("chart.yaml");
    std::fs::write(&file, text).unwrap_or_default();
    tools::kubernetes_validate("1.33", std::slice::from_ref(&file));
    tools::kubernetes_validate("1.37", std::slice::from_ref(&file));
    std::fs::remove_dir_all(&dir).unwrap_or_default();
}
