//! `c8s helm sidecars` and `c8s helm pipeline` write charts that `helm lint
//! --strict` accepts (the chart contents themselves are tested in adapters/helm).

mod common;

use std::process::Command;

use common::{c8s, tool};

#[test]
#[ignore = "needs helm"]
fn sidecar_and_pipeline_charts_pass_helm_lint() {
    let out_dir = std::env::temp_dir().join(format!("c8s-helm-cli-{}", std::process::id()));
    let sidecars = out_dir.join("sidecars");
    let pipeline = out_dir.join("pipeline");
    let (s, p) = (
        sidecars.to_string_lossy().into_owned(),
        pipeline.to_string_lossy().into_owned(),
    );

    let out = c8s(&[
        "helm",
        "sidecars",
        "examples/sidecars/services.yml",
        "--out",
        &s,
        "--name",
        "ci-services",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chart = std::fs::read_to_string(sidecars.join("Chart.yaml")).expect("Chart.yaml written");
    assert!(chart.contains("name: ci-services"), "{chart}");

    let out = c8s(&[
        "helm",
        "pipeline",
        "examples/pipelines/orders.c8s.yaml",
        "--out",
        &p,
        "--branch",
        "main",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pipeline.join("values.yaml").exists());

    for dir in [&s, &p] {
        let lint = Command::new(tool("helm"))
            .args(["lint", "--strict", dir])
            .output()
            .expect("helm runs");
        assert!(
            lint.status.success(),
            "helm lint {dir}: {}",
            String::from_utf8_lossy(&lint.stdout)
        );
    }

    let bad = c8s(&[
        "helm",
        "sidecars",
        "examples/sidecars/postgres.yml",
        "--out",
        &s,
        "--name",
        "Bad_Name",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&out_dir);
}
