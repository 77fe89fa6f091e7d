//! What the CLI tests share: running the built `c8s` from the workspace root,
//! temporary files, and the external tools (`tools.rs`, shared with the
//! pod-builder and helm-adapter tests).
#![allow(dead_code, unused_imports)] // every test binary uses a part

use std::path::PathBuf;
use std::process::{Command, Output};

#[path = "../../../../pod-builder/tests/common/tools.rs"]
mod tools;

pub mod release;

pub use tools::{concourse_corpus, kubernetes_validate, tool, workspace};

/// The built `c8s`, to be run from the workspace root.
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_c8s"));
    command.current_dir(workspace());
    command
}

/// Runs `c8s args…` from the workspace root.
pub fn c8s(args: &[&str]) -> Output {
    command().args(args).output().expect("c8s runs")
}

/// Output bytes as text, for messages and matching.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A command's exit code, stdout and stderr, for an assertion's message.
pub fn explain(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// This test binary's own temporary folder, created.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "c8s-cli-test-{}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `bytes` to `name` in [`temp_dir`].
pub fn temp_file(name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = temp_dir().join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

/// `helm install` of charts/c8s-controller as release `release` in `ns` with
/// `args` (`--set …`, `--set-file …`), with the control plane's admin
/// credentials; the chart's Deployments' pods "run" on the simulated nodes
/// (the image is never pulled).
pub fn helm_install(release: &str, ns: &str, args: &[String]) {
    let output = Command::new(tool("helm"))
        .current_dir(workspace())
        .env("KUBECONFIG", c8s_test_cluster::kubeconfig())
        .args([
            "install",
            release,
            "charts/c8s-controller",
            "--namespace",
            ns,
            "--wait=false",
        ])
        .args(args)
        .output()
        .expect("helm runs");
    assert!(output.status.success(), "helm install: {}", explain(&output));
}
