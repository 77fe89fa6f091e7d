//! Independent check: every rendered example, in both sidecar modes, as Pod and
//! as Job, passes `kubernetes-validate --strict` for Kubernetes 1.33.0 and 1.37.0.
//! The tool is installed by `scripts/install-tools.sh`; a missing tool fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use c8s_pod_builder::to_canonical_yaml;

const TOOL: &str = "kubernetes-validate";

fn find_tool() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(TOOL))
        .find(|p| p.is_file());
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools/bin")
        .join(TOOL);
    match on_path {
        Some(path) => path,
        None if fallback.is_file() => fallback,
        None => panic!(
            "{TOOL} not found on PATH or at {}; run ./scripts/install-tools.sh first",
            fallback.display()
        ),
    }
}

#[test]
fn rendered_examples_pass_kubernetes_validate_strict() {
    let tool = find_tool();
    let dir = std::env::temp_dir().join(format!("c8s-pod-builder-kv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut files = Vec::new();
    for (name, object) in common::rendered() {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, to_canonical_yaml(&object).expect("yaml")).expect("write");
        files.push(path);
    }
    // One invocation per version with every file: the tool is slow to start.
    for version in ["1.33.0", "1.37.0"] {
        let output = Command::new(&tool)
            .args(["--strict", "--quiet", "-k", version])
            .args(&files)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
        assert!(
            output.status.success(),
            "kubernetes-validate {version} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
