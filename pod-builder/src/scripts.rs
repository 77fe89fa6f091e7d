//! The fixed shell scripts of the containers c8s adds. Every value that varies
//! (URLs, paths, commits) reaches them as an environment variable or a
//! positional argument, never spliced into the script text, so no input can
//! become shell code.

/// Where the workspace emptyDir is mounted in every container.
pub const WORKSPACE: &str = "/workspace";
/// Where the artifact PVC is mounted.
pub const ARTIFACTS: &str = "/artifacts";
/// `HOME` of every container c8s creates: its own directory of the `c8s-home` emptyDir.
pub const HOME: &str = "/c8s/home";
/// Where `git-clone` (only) sees the git credentials Secret.
pub const GIT_CREDENTIALS: &str = "/c8s/git-credentials";
/// The file `main`'s wrapper writes its exit code to (then `artifact-helper` runs).
pub const MAIN_EXIT_MARKER: &str = "/workspace/.c8s/main-exit-code";
/// A counter `main`'s wrapper bumps every second while `main` lives.
pub const MAIN_HEARTBEAT: &str = "/workspace/.c8s/main-heartbeat";
/// Seconds without a heartbeat after which `artifact-helper` declares `main` gone.
pub const HEARTBEAT_TIMEOUT_SECONDS: u32 = 10;

/// `git-clone`: a shallow fetch of one commit (or the branch) into /workspace,
/// group-writable (umask 002, `--shared=group`) for every UID of the pod's fsGroup.
/// Env: `C8S_REPOSITORY`, `C8S_COMMIT`, `C8S_BRANCH`, `C8S_CHECKOUT` (the
/// clone's directory). Credentials, when mounted at /c8s/git-credentials:
/// `username`/`password` (HTTPS, through a credential helper) or
/// `ssh-privatekey`/`known_hosts` (SSH, through `GIT_SSH_COMMAND`).
pub const GIT_CLONE: &str = r#"umask 002
if [ -z "$C8S_REPOSITORY" ]; then echo "c8s: no repository, workspace left empty"; exit 0; fi
creds=/c8s/git-credentials
if [ -f "$creds/password" ]; then
  git config --global credential.helper '!f() { test "$1" = get || return 0; echo "username=$(cat /c8s/git-credentials/username 2>/dev/null || echo git)"; echo "password=$(cat /c8s/git-credentials/password)"; }; f'
fi
if [ -f "$creds/ssh-privatekey" ]; then
  cp "$creds/ssh-privatekey" "$HOME/.c8s-ssh-key"
  chmod 600 "$HOME/.c8s-ssh-key"
  export GIT_SSH_COMMAND="ssh -i $HOME/.c8s-ssh-key -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$creds/known_hosts"
fi
git init -q --shared=group "$C8S_CHECKOUT"
cd "$C8S_CHECKOUT"
git remote add origin "$C8S_REPOSITORY"
git fetch -q --depth 1 -- origin "${C8S_COMMIT:-${C8S_BRANCH:-HEAD}}"
git checkout -q --detach FETCH_HEAD
# c8s's own bookkeeping (.c8s/) must not make the checkout dirty (git describe --dirty, goreleaser).
echo /.c8s/ >> .git/info/exclude
git log -1 --format='c8s: checked out %H'
"#;

/// `c8s-input-N`: unpack artifact `$1` (relative to /artifacts) into
/// workspace directory `$2`, group-writable. With `$3`, only that file of
/// the artifact (a Concourse `load_var` file): when it is not there, the
/// step's own wrapper says so ([`LOAD_VARS`]), naming the var.
pub const EXTRACT_INPUT: &str = r#"umask 002
mkdir -p "/workspace/$2"
if [ -n "$3" ]; then
  tar -xf "/artifacts/$1" -C "/workspace/$2" "./$3" || echo "c8s: $3 is not in $1" >&2
else
  tar -xf "/artifacts/$1" -C "/workspace/$2"
fi
chmod -R g+w "/workspace/$2"
echo "c8s: unpacked ${3:+$3 of }$1 into $2"
"#;

/// Wraps `main`'s command. Arguments: the number of outputs `N`, the `N`
/// output directories (created first, as Concourse does), then the command.
/// It waits for legacy sidecars' ports (`C8S_WAIT_PORTS`, `port:seconds`
/// pairs), bumps a heartbeat while the command runs, forwards SIGTERM/SIGINT
/// to the command's process group (a shell as PID 1 ignores them; runc makes
/// a container's init a session and group leader, `libcontainer` `setsid`),
/// and records the exit code for `artifact-helper`. Background jobs of a
/// non-interactive shell read stdin from /dev/null: steps have no stdin.
pub const MAIN_WRAPPER: &str = r#"n="$1"; shift
while [ "$n" -gt 0 ]; do (umask 002; mkdir -p "/workspace/$1"); shift; n=$((n - 1)); done
(umask 002; mkdir -p /workspace/.c8s)
(trap '' TERM INT; n=0; while :; do n=$((n + 1)); echo "$n" > /workspace/.c8s/main-heartbeat.tmp; mv -f /workspace/.c8s/main-heartbeat.tmp /workspace/.c8s/main-heartbeat; sleep 1; done) &
beat=$!
port_open() {
  if command -v bash >/dev/null 2>&1; then bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' c8s "$1" 2>/dev/null
  elif command -v nc >/dev/null 2>&1; then nc -z 127.0.0.1 "$1" </dev/null >/dev/null 2>&1
  else return 2; fi
}
code=0
for wait in $C8S_WAIT_PORTS; do
  port="${wait%%:*}"; left="${wait#*:}"
  until port_open "$port"; do
    if [ $? = 2 ]; then echo "c8s: no nc or bash in this image, not waiting for port $port"; break; fi
    if [ "$left" -le 0 ]; then echo "c8s: no sidecar answered on port $port in time" >&2; code=1; break 2; fi
    sleep 1; left=$((left - 1))
  done
done
if [ "$code" = 0 ]; then
  trap 'trap "" TERM INT; kill -TERM 0 2>/dev/null' TERM INT
  "$@" &
  child=$!
  wait "$child"; code=$?
  # A trapped signal interrupts `wait` (status > 128): wait again for the real
  # status; 127 means the shell had already reaped the child.
  if [ "$code" -gt 128 ]; then wait "$child"; again=$?; [ "$again" = 127 ] || code=$again; fi
fi
echo "$code" > /workspace/.c8s/main-exit-code.tmp
mv -f /workspace/.c8s/main-exit-code.tmp /workspace/.c8s/main-exit-code
kill -KILL "$beat" 2>/dev/null || true
exit "$code"
"#;

/// Runs `main`'s command (`$@`, inside [`MAIN_WRAPPER`]) for a step that
/// reads or publishes step results: exports each result it reads
/// (`C8S_RESULT_ENV`, `NAME=step/result` words; trailing newlines dropped, as
/// `$(cat)` does) before the command, and after a successful command fails
/// unless every declared result (`C8S_RESULT_NAMES`) was written to
/// `$C8S_RESULTS` and is at most 65536 bytes (`results::MAX_RESULT_BYTES`).
pub const STEP_RESULTS: &str = r#"for c8s_r in $C8S_RESULT_ENV; do
  c8s_f="/workspace/.c8s/results-of/${c8s_r#*=}"
  if [ ! -f "$c8s_f" ]; then echo "c8s: result ${c8s_r#*=} was not saved by its step" >&2; exit 1; fi
  export "${c8s_r%%=*}=$(cat "$c8s_f")"
done
unset c8s_r c8s_f
"$@" || exit $?
for r in $C8S_RESULT_NAMES; do
  f="/workspace/.c8s/results/$r"
  if [ ! -f "$f" ]; then echo "c8s: result $r was not written to \$C8S_RESULTS/$r" >&2; exit 1; fi
  if [ "$(($(wc -c < "$f")))" -gt 65536 ]; then echo "c8s: result $r is over 65536 bytes" >&2; exit 1; fi
done
"#;

/// Runs `main`'s command (`$@`, inside [`MAIN_WRAPPER`]) for a step whose
/// params use Concourse local vars: for each `NAME=FORMAT:FILE` word of
/// `C8S_LOCAL_VARS`, reads `/workspace/.c8s/vars/NAME/FILE` (unpacked by its
/// own `c8s-input-N`), trims surrounding whitespace when FORMAT is `trim`
/// (Concourse's default; `raw` keeps the text as it is, trailing newlines
/// too), and replaces every `((.:NAME))` in the env vars named by
/// `C8S_LOCAL_VAR_ENV` (shell names) with it. A missing file fails the step
/// before the command runs, as Concourse's `load_var` step fails the build.
/// Values are replaced var by var, so a value that itself holds another
/// var's placeholder would be replaced again. Its own shell variables are
/// named `c8s_*` (no param may be) and unset before the command runs.
pub const LOAD_VARS: &str = r#"for c8s_v in $C8S_LOCAL_VARS; do
  c8s_name="${c8s_v%%=*}"; c8s_rest="${c8s_v#*=}"; c8s_format="${c8s_rest%%:*}"; c8s_file="${c8s_rest#*:}"
  c8s_f="/workspace/.c8s/vars/$c8s_name/$c8s_file"
  if [ ! -f "$c8s_f" ]; then echo "c8s: load_var $c8s_name: file $c8s_file is not in its artifact" >&2; exit 1; fi
  c8s_value="$(cat "$c8s_f"; echo .)"; c8s_value="${c8s_value%.}"
  if [ "$c8s_format" = trim ]; then
    c8s_value="${c8s_value#"${c8s_value%%[![:space:]]*}"}"
    c8s_value="${c8s_value%"${c8s_value##*[![:space:]]}"}"
  fi
  c8s_ph="((.:$c8s_name))"
  for c8s_e in $C8S_LOCAL_VAR_ENV; do
    eval "c8s_t=\"\${$c8s_e}\""
    c8s_out=""
    while :; do
      case "$c8s_t" in
        *"$c8s_ph"*) c8s_out="$c8s_out${c8s_t%%"$c8s_ph"*}$c8s_value"; c8s_t="${c8s_t#*"$c8s_ph"}" ;;
        *) break ;;
      esac
    done
    export "$c8s_e=$c8s_out$c8s_t"
  done
done
unset c8s_v c8s_name c8s_rest c8s_format c8s_file c8s_f c8s_value c8s_ph c8s_e c8s_t c8s_out
exec "$@"
"#;

/// `artifact-helper`: wait for `main`'s exit code; when it is 0, tar each
/// output (`$2...`) into artifact directory `$1` (relative to /artifacts).
/// Fails when `main`'s heartbeat stops without an exit code (`main` was
/// killed, e.g. out of memory); never leaves a `.tar.tmp` behind.
pub const SAVE_OUTPUTS: &str = r#"dir="/artifacts/$1"; shift
tmp=""
trap 'if [ -n "$tmp" ]; then rm -f "$tmp"; fi' EXIT
trap 'exit 143' TERM INT
beat=""; still=0
until [ -f /workspace/.c8s/main-exit-code ]; do
  sleep 1
  now="$(cat /workspace/.c8s/main-heartbeat 2>/dev/null || true)"
  if [ -n "$now" ] && [ "$now" = "$beat" ]; then still=$((still + 1)); else still=0; fi
  beat="$now"
  if [ "$still" -ge 10 ] && [ ! -f /workspace/.c8s/main-exit-code ]; then
    echo "c8s: main is gone without an exit code (killed, e.g. out of memory); outputs not saved" >&2
    exit 1
  fi
done
code="$(cat /workspace/.c8s/main-exit-code)"
if [ "$code" != 0 ]; then echo "c8s: main exited with $code, outputs not saved"; exit 0; fi
for out in "$@"; do
  mkdir -p "$(dirname "$dir/$out")" "/workspace/$out"
  tmp="$dir/$out.tar.tmp"
  tar -cf "$tmp" -C "/workspace/$out" .
  mv "$tmp" "$dir/$out.tar"
  tmp=""
  echo "c8s: saved $out"
done
"#;
