//! Finding and running the real `helm` 4 and `kubernetes-validate`, and
//! reading the examples.
#![allow(dead_code, unused_imports)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../../../pod-builder/tests/common/tools.rs"]
mod tools;

pub use tools::{kubernetes_validate, tool, workspace as root};

use c8s_helm::pod_builder::model::sidecar::{SidecarConfig, SourceReader, parse_sidecars};

/// Reads referenced files (sidecar files of a task or pipeline) below a folder.
pub struct DirSource(pub PathBuf);

impl SourceReader for DirSource {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.0.join(path))
    }
}

/// The sidecars of `examples/sidecars/<stem>.yml`.
pub fn sidecar_file(stem: &str) -> Vec<SidecarConfig> {
    let file = format!("examples/sidecars/{stem}.yml");
    let text = std::fs::read_to_string(root().join(&file)).expect("sidecar example");
    parse_sidecars(&file, &text).expect("valid example")
}

/// The helm binary, checked to be Helm 4.
pub fn helm() -> PathBuf {
    let helm = tool("helm");
    let version = run(Command::new(&helm).args(["version", "--short"]));
    assert!(
        version.trim_start().starts_with("v4."),
        "the Helm tests need helm 4, found {version:?} at {}",
        helm.display()
    );
    helm
}

/// Runs `command`, panicking with its stderr when it fails; its stdout.
pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Runs `command`, expecting failure; its stderr.
pub fn run_failing(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(!output.status.success(), "{command:?} should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `helm template <release> <chart> <args>`.
pub fn template(helm: &Path, chart: &Path, args: &[&str]) -> String {
    run(Command::new(helm)
        .args(["template", "release-1"])
        .arg(chart)
        .args(args))
}

/// The documents of a YAML stream as JSON values, empty documents dropped.
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{yaml}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}
