//! The fixed shell scripts of the containers c8s adds. Every value that varies
//! (URLs, paths, commits) reaches them as an environment variable or a
//! positional argument, never spliced into the script text, so no input can
//! become shell code.

/// Where the workspace emptyDir is mounted in every container.
pub const WORKSPACE: &str = "/workspace";
/// Where the artifact PVC is mounted.
pub const ARTIFACTS: &str = "/artifacts";
/// The file `main`'s wrapper writes its exit code to (then `artifact-helper` runs).
pub const MAIN_EXIT_MARKER: &str = "/workspace/.c8s/main-exit-code";

/// `git-clone`: a shallow fetch of one commit (or the branch) into /workspace.
/// Env: `C8S_REPOSITORY`, `C8S_COMMIT`, `C8S_BRANCH`, `C8S_CHECKOUT` (the clone's directory).
pub const GIT_CLONE: &str = r#"if [ -z "$C8S_REPOSITORY" ]; then echo "c8s: no repository, workspace left empty"; exit 0; fi
git() { command git -c safe.directory='*' "$@"; }
git init -q "$C8S_CHECKOUT"
cd "$C8S_CHECKOUT"
git remote add origin "$C8S_REPOSITORY"
git fetch -q --depth 1 origin "${C8S_COMMIT:-${C8S_BRANCH:-HEAD}}"
git checkout -q --detach FETCH_HEAD
git log -1 --format='c8s: checked out %H'
"#;

/// `c8s-input-N`: unpack artifact `$1` (relative to /artifacts) into
/// workspace directory `$2`.
pub const EXTRACT_INPUT: &str = r#"mkdir -p "/workspace/$2"
tar -xf "/artifacts/$1" -C "/workspace/$2"
echo "c8s: unpacked $1 into $2"
"#;

/// Wraps `main`'s command (`"$@"`) to record its exit code for `artifact-helper`.
pub const MAIN_WRAPPER: &str = r#"code=0
"$@" || code=$?
mkdir -p /workspace/.c8s
echo "$code" > /workspace/.c8s/main-exit-code.tmp
mv /workspace/.c8s/main-exit-code.tmp /workspace/.c8s/main-exit-code
exit "$code"
"#;

/// `artifact-helper`: wait for `main`'s exit code; when it is 0, tar each
/// output (`$2...`) into artifact directory `$1` (relative to /artifacts).
pub const SAVE_OUTPUTS: &str = r#"dir="/artifacts/$1"; shift
until [ -f /workspace/.c8s/main-exit-code ]; do sleep 1; done
code="$(cat /workspace/.c8s/main-exit-code)"
if [ "$code" != 0 ]; then echo "c8s: main exited with $code, outputs not saved"; exit 0; fi
for out in "$@"; do
  mkdir -p "$(dirname "$dir/$out")"
  tar -cf "$dir/$out.tar.tmp" -C "/workspace/$out" .
  mv "$dir/$out.tar.tmp" "$dir/$out.tar"
  echo "c8s: saved $out"
done
"#;
