//! Finding and running the external tools `scripts/install-tools.sh` installs
//! (`helm`, `kubernetes-validate`). One file, included with `#[path]` by the
//! pod-builder, helm-adapter and CLI tests. Tests using them are
//! `#[ignore = "needs helm"]` / `#[ignore = "needs kubernetes-validate"]`, so a
//! fresh `cargo test` is green; `./ci.sh` installs the tools and runs them, and
//! then a missing tool fails the test, never skips it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: the nearest ancestor of the including crate that
/// holds `ci.sh`.
pub fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("ci.sh").is_file())
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The Concourse corpus (real task configs in `tasks/`, pipelines in
/// `pipelines/`, their origins in `SOURCES.tsv`): third-party files kept
/// outside the repository. `C8S_CONCOURSE_CORPUS=DIR` names it; the default is
/// `concourse/` in the `shared/` folder beside the workspace. The tests that
/// read it are `#[ignore = "needs the Concourse corpus ..."]` and fail, never
/// pass, when it is missing; `./ci.sh` leaves them out by filter and says so.
#[allow(dead_code)] // not every test binary including this file reads the corpus
pub fn concourse_corpus() -> PathBuf {
    match std::env::var_os("C8S_CONCOURSE_CORPUS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace().join("../shared/concourse"),
    }
}

/// `name` from PATH, else from `<workspace>/.tools/bin/`; panics when missing.
pub fn tool(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    let fallback = workspace().join(".tools/bin").join(name);
    match on_path {
        Some(path) => path,
        None if fallback.is_file() => fallback,
        None => panic!(
            "`{name}` is needed by these tests but is neither on PATH nor at {}: \
             run ./scripts/install-tools.sh (or ./ci.sh)",
            fallback.display()
        ),
    }
}

/// `kubernetes-validate --strict -k <version>` over every file at once (the
/// tool is slow to start); panics with its output when any file fails.
pub fn kubernetes_validate(version: &str, files: &[PathBuf]) {
    let tool = tool("kubernetes-validate");
    let output = Command::new(&tool)
        .args(["--strict", "--quiet", "-k", version])
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    assert!(
        output.status.success(),
        "kubernetes-validate {version} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
