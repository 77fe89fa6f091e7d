#!/usr/bin/env bash
# Stops what up.sh started, by the PIDs it wrote (never by name), newest first.
# Keeps the state directory (logs) unless C8S_CONTROL_PLANE_CLEAN=1.
set -uo pipefail
state="${C8S_CONTROL_PLANE_DIR:-/tmp/c8s-control-plane}"
[ -d "$state/pids" ] || exit 0
# shellcheck source=../lib/processes.sh
. "$(dirname "$0")/../lib/processes.sh"
for name in node-sim kube-scheduler kube-controller-manager kube-apiserver etcd; do
  stop_pidfile "$state/pids/$name.pid" 50
done
if [ "${C8S_CONTROL_PLANE_CLEAN:-0}" = 1 ]; then rm -rf "$state"; fi
echo "control-plane: stopped ($state)" >&2
