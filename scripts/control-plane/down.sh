#!/usr/bin/env bash
# Stops what up.sh started, by the PIDs it wrote (never by name), newest first.
# Keeps the state directory (logs) unless C8S_CONTROL_PLANE_CLEAN=1.
set -uo pipefail
state="${C8S_CONTROL_PLANE_DIR:-/tmp/c8s-control-plane}"
[ -d "$state/pids" ] || exit 0
for name in node-sim kube-scheduler kube-controller-manager kube-apiserver etcd; do
  pidfile="$state/pids/$name.pid"
  [ -f "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done
if [ "${C8S_CONTROL_PLANE_CLEAN:-0}" = 1 ]; then rm -rf "$state"; fi
echo "control-plane: stopped ($state)" >&2
