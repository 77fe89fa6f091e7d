//! Independent check: every rendered example, in both sidecar modes, as Pod and
//! as Job, passes `kubernetes-validate --strict` for Kubernetes 1.33.0 and 1.37.0.
//! The tool is installed by `scripts/install-tools.sh`; a missing tool fails.

mod common;

#[path = "common/tools.rs"]
mod tools;

use c8s_pod_builder::to_canonical_yaml;

#[test]
#[ignore = "needs kubernetes-validate"]
fn rendered_examples_pass_kubernetes_validate_strict() {
    let dir = std::env::temp_dir().join(format!("c8s-pod-builder-kv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut files = Vec::new();
    for (name, object) in common::rendered() {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, to_canonical_yaml(&object).expect("yaml")).expect("write");
        files.push(path);
    }
    for version in ["1.33.0", "1.37.0"] {
        tools::kubernetes_validate(version, &files);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
