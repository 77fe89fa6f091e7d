#!/usr/bin/env bash
# Stops what up.sh started, by the PID it wrote (never by name). Keeps the
# state directory (log) unless C8S_S3_CLEAN=1.
#
# On SIGTERM `weed server` stops its volume server and filer gracefully
# within a fraction of a second (its log says "Shut down successfully!") but
# the process itself lingers with the master and the S3 gateway; so after 3 s
# it gets SIGKILL. The data is a test's, kept for reading only.
set -uo pipefail
state="${C8S_S3_DIR:-/tmp/c8s-s3}"
[ -d "$state/pids" ] || exit 0
# shellcheck source=../lib/processes.sh
. "$(dirname "$0")/../lib/processes.sh"
stop_pidfile "$state/pids/weed.pid" 15
if [ "${C8S_S3_CLEAN:-0}" = 1 ]; then rm -rf "$state"; fi
echo "s3: stopped ($state)" >&2
