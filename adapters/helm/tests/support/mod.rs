//! Finding and running the real `helm` 4 and `kubernetes-validate`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tool` from PATH, else `<workspace>/.tools/bin/`; panics (never skips) when missing.
pub fn tool(tool: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file());
    let fallback = root().join(".tools/bin").join(tool);
    match on_path {
        Some(path) => path,
        None if fallback.is_file() => fallback,
        None => panic!(
            "`{tool}` is needed by the Helm tests but is neither on PATH nor in {}: \
             run ./scripts/install-tools.sh (or ./ci.sh)",
            fallback.display()
        ),
    }
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

/// `kubernetes-validate --strict -k <version>` over every file at once.
pub fn kubernetes_validate(version: &str, files: &[PathBuf]) {
    let tool = tool("kubernetes-validate");
    run(Command::new(tool)
        .args(["--strict", "--quiet", "-k", version])
        .args(files));
}

/// The documents of a YAML stream as JSON values, empty documents dropped.
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{yaml}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}
