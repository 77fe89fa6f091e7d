#!/usr/bin/env bash
# c8s render vs helm template of the generated pipeline chart, for an N-step
# pipeline: whole processes, run in turn on the same machine, after one warm-up
# round each; the headline is the fastest of each. Goal: c8s >= 20x faster.
#
#   ./scripts/bench-helm.sh [STEPS] [ROUNDS]      (defaults: 1000 steps, 5 rounds)
#
# Builds c8s in release mode; the chart is written by `c8s helm pipeline`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
steps="${1:-1000}"
rounds="${2:-5}"
target="${CARGO_TARGET_DIR:-$root/target}"
export PATH="$root/.tools/bin:$PATH"
command -v helm >/dev/null || { echo "bench-helm: helm not found; run ./scripts/install-tools.sh" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "bench-helm: building c8s (release)" >&2
cargo build --release --quiet -p c8s-cli
c8s="$target/release/c8s"

# A pipeline of $steps steps: a chain of layers of 10, every 10th step with a sidecar.
pipeline="$work/bench.c8s.yaml"
{
  echo "name: bench"
  echo "repository: https://example.com/bench.git"
  echo "steps:"
  for ((i = 0; i < steps; i++)); do
    echo "  - name: step-$i"
    echo "    image: golang:1.23"
    echo "    commands: [\"go test ./pkg/$i/...\"]"
    echo "    env: { STEP: \"$i\" }"
    echo "    resources: { requests: { cpu: 100m, memory: 128Mi } }"
    if ((i >= 10)); then echo "    dependsOn: [step-$((i - 10))]"; fi
    if ((i % 10 == 0)); then
      echo "    sidecars:"
      echo "      - { name: redis, image: \"redis:7-alpine\", ports: [{ containerPort: 6379 }] }"
    fi
  done
} >"$pipeline"

chart="$work/chart"
"$c8s" helm pipeline "$pipeline" --out "$chart" >/dev/null

# Same objects from both (count only; the test suite checks equality).
c8s_docs=$("$c8s" render "$pipeline" | grep -c '^kind: ')
helm_docs=$(helm template bench "$chart" | grep -c '^kind: ')
[ "$c8s_docs" = "$helm_docs" ] || { echo "bench-helm: c8s rendered $c8s_docs objects, helm $helm_docs" >&2; exit 1; }

now() { date +%s%N; }
ms() { awk -v ns="$1" 'BEGIN { printf "%.1f", ns / 1000000 }'; }
# One round each first, not counted: page cache and binaries warm for both.
"$c8s" render "$pipeline" >/dev/null
helm template bench "$chart" >/dev/null
c8s_ns=0 helm_ns=0 c8s_min=0 helm_min=0
for ((r = 1; r <= rounds; r++)); do
  t0=$(now); "$c8s" render "$pipeline" >/dev/null; t1=$(now)
  helm template bench "$chart" >/dev/null; t2=$(now)
  c=$((t1 - t0)) h=$((t2 - t1))
  c8s_ns=$((c8s_ns + c)) helm_ns=$((helm_ns + h))
  if ((c8s_min == 0 || c < c8s_min)); then c8s_min=$c; fi
  if ((helm_min == 0 || h < helm_min)); then helm_min=$h; fi
  echo "round $r: c8s render $(ms $c) ms, helm template $(ms $h) ms"
done
ratio=$(awk -v h="$helm_min" -v c="$c8s_min" 'BEGIN { printf "%.1f", h / c }')
mean_ratio=$(awk -v h="$helm_ns" -v c="$c8s_ns" 'BEGIN { printf "%.1f", h / c }')
echo "$steps steps ($c8s_docs objects), $rounds rounds: fastest c8s render $(ms $c8s_min) ms," \
  "helm template $(ms $helm_min) ms; helm/c8s = ${ratio}x (goal >= 20x); of the means: ${mean_ratio}x"
# For scripts/bench-report.sh: area, steps, helm/c8s (fastest), goal, fastest
# ms of each, helm/c8s of the means, mean ms of each.
printf 'c8s-bench helm\thelm-template/c8s-render\t%s\t%s\t>= 20\t%s\t%s\t%s\t%s\t%s\n' \
  "$steps" "$ratio" "$(ms $c8s_min)" "$(ms $helm_min)" "$mean_ratio" "$(ms $((c8s_ns / rounds)))" "$(ms $((helm_ns / rounds)))"
