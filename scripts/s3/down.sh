#!/usr/bin/env bash
# Stops what up.sh started, by the PID it wrote (never by name). Keeps the
# state directory (log) unless C8S_S3_CLEAN=1.
set -uo pipefail
state="${C8S_S3_DIR:-/tmp/c8s-s3}"
[ -d "$state/pids" ] || exit 0
pidfile="$state/pids/weed.pid"
if [ -f "$pidfile" ]; then
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
fi
if [ "${C8S_S3_CLEAN:-0}" = 1 ]; then rm -rf "$state"; fi
echo "s3: stopped ($state)" >&2
