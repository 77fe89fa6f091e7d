#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while (default 20 s each), on the stable
# toolchain via RUSTC_BOOTSTRAP=1. cargo-fuzz is installed into .tools/ from crates.io.
#   scripts/fuzz.sh            # smoke run, 20 s per target (what ./ci.sh runs)
#   scripts/fuzz.sh 600        # the long run: 10 minutes per target
#   scripts/fuzz.sh 600 masker # one target
# Seed corpora come from examples/ and the tests' case files; crashes land in
# fuzz/artifacts/<target>/ and should become regression test cases.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-20}"
shift || true
export PATH="$root/.tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz into .tools/ (crates.io)" >&2
  cargo install --quiet --locked --root "$root/.tools" cargo-fuzz
fi

cd "$root/fuzz"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(sidecars task pipeline render_roundtrip masker)
fi

seed() {
  local target="$1" dir="$root/fuzz/corpus/$1"
  mkdir -p "$dir"
  case "$target" in
    sidecars) cp "$root"/examples/sidecars/*.yml "$root"/sidecar-core/tests/cases/*.yml "$dir"/ ;;
    task) cp "$root"/examples/tasks/*.yml "$root"/pipeline-model/tests/cases/tasks/*.yml "$dir"/ 2>/dev/null || true ;;
    pipeline) cp "$root"/examples/pipelines/*.yaml "$root"/pipeline-model/tests/cases/pipelines/*.yml "$dir"/ 2>/dev/null || true ;;
    *) ;;
  esac
}

for target in "${targets[@]}"; do
  seed "$target"
  echo "fuzz: $target for ${seconds}s" >&2
  log="$root/fuzz/last-$target.log"
  status=0
  cargo fuzz run --release "$target" "corpus/$target" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
  grep -E "^(#[0-9]+[[:space:]]+DONE|Done [0-9]+ runs|SUMMARY|thread .* panicked)" "$log" >&2 || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target failed (exit $status); see $log and fuzz/artifacts/$target/" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
done
echo "fuzz: all targets ran ${seconds}s without a crash" >&2
