#!/usr/bin/env bash
# The controller at scale: builds `c8s` and `c8s-node-sim` in release mode,
# starts a control plane of its own (scripts/control-plane/up.sh, simulated
# nodes), and runs scripts/bench-controller.py, which measures
#   - the bare ceiling: one-container pods created directly, no controller;
#   - (a) one-step runs at a fixed arrival rate for a duration;
#   - (b) N five-step DAG runs created at once;
#   - (c) M one-step runs queued by the per-namespace running limit, drained;
#   - (d) five-step runs at a fixed arrival rate (2/s: 10 step pods/s), for
#     the delay of a step's pod after its dependencies outside a burst;
# with `c8s controller --kube-qps --kube-burst` (it installs the CRDs), from
# watch events and the API server's and the controller's /metrics, and writes
# the figures to benches/controller-results.json. `scripts/bench-report.sh
# --controller-only` then writes them into BENCHMARKS.md. Not run by ./ci.sh
# (the full sizes should take 30 to 60 minutes on 2 cores, by a scaled run).
#
#   scripts/bench-controller.sh                       # the issue's sizes
#   scripts/bench-controller.sh --duration 120 --dag-runs 200 --queued-runs 1000 --ceiling-pods 500
#   scripts/bench-controller.sh --scenarios ceiling,dag   # some scenarios only
#
# Every other flag goes to bench-controller.py (`bench-controller.py run
# --help`): --rate, --run-seconds, --dag-run-seconds, --steady-rate (2),
# --steady-duration (300), --kube-qps (100),
# --kube-burst (200), --max-running (10), --nodes (40), --queue-namespaces,
# --rate-namespaces, --timeout, --out FILE.
#
# The control plane lives in C8S_CONTROL_PLANE_DIR (default
# /tmp/c8s-bench-controller) on ports from C8S_CONTROL_PLANE_PORT (default
# 27400), so it does not meet the tests' control plane; everything this
# script starts is stopped by PID when it ends. The machine is not reserved:
# the load average before and after each scenario is in the results.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export C8S_CONTROL_PLANE_DIR="${C8S_CONTROL_PLANE_DIR:-/tmp/c8s-bench-controller}"
export C8S_CONTROL_PLANE_PORT="${C8S_CONTROL_PLANE_PORT:-27400}"
state="$C8S_CONTROL_PLANE_DIR"
out="$root/benches/controller-results.json"
nodes=40
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --nodes) nodes="${args[$((i + 1))]}" ;;
    --out) out="${args[$((i + 1))]}" ;;
  esac
done
log() { printf 'bench-controller: %s\n' "$*" >&2; }

log "building c8s and c8s-node-sim (release)"
cargo build --release --locked -p c8s-cli -p c8s-node-sim --bins
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

# shellcheck source=lib/processes.sh
. "$root/scripts/lib/processes.sh"
stop_all() {
  stop_pidfile "$state/bench-controller.pid" 50
  "$root/scripts/control-plane/down.sh"
}
trap stop_all EXIT

log "control plane in $state with $nodes simulated nodes"
C8S_NODE_SIM="$target/release/c8s-node-sim" C8S_SIM_NODES="$nodes" \
  "$root/scripts/control-plane/up.sh" >/dev/null
kubeconfig="$state/admin.kubeconfig"
server="$(sed -n 's/^ *server: //p' "$kubeconfig" | head -n 1)"
# The controller's metrics port: beside the control plane's.
metrics_port=$((C8S_CONTROL_PLANE_PORT + 90))

python3 "$root/scripts/bench-controller.py" run \
  --server "$server" --ca "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
  --kubeconfig "$kubeconfig" --state "$state" --c8s "$target/release/c8s" \
  --metrics-port "$metrics_port" --out "$out" "$@"
log "wrote $out; scripts/bench-report.sh --controller-only puts it in BENCHMARKS.md"
