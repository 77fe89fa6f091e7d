#!/usr/bin/env bash
# Starts a real S3-compatible server on loopback for the tests: SeaweedFS's
# `weed server` (master, volume server, filer and S3 gateway in one process;
# https://github.com/seaweedfs/seaweedfs/wiki/Amazon-S3-API), built from Go
# modules by build.sh. One identity, the archive's, with a fresh random key
# (C8S_TEST_S3_ACCESS_KEY, C8S_TEST_S3_SECRET_KEY) and the actions Read,
# Write, List, Tagging (https://github.com/seaweedfs/seaweedfs/wiki/S3-Credentials).
# No bucket is created on upload (-s3.autoCreateBucket=false): a missing
# bucket is NoSuchBucket, as on AWS S3. The tests create buckets with
# `weed shell` (s3.bucket.create), whose master address and binary up.sh
# prints too (C8S_TEST_S3_MASTER, as `host:port.grpcPort`, and C8S_TEST_S3_WEED).
#
#   scripts/s3/up.sh      # prints `export C8S_TEST_S3_...=...` lines
#   scripts/s3/down.sh    # stops what up.sh started, by PID
#
# State (data, config, log, PID) lives in ${C8S_S3_DIR:-/tmp/c8s-s3}; ports
# are C8S_S3_PORT (default 26500) + a fixed offset each (master +0, volume
# +1, filer +2, S3 +3, their gRPC ports +10..+13), so two servers with
# different directories and ports can run side by side.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="${C8S_S3_DIR:-/tmp/c8s-s3}"
base="${C8S_S3_PORT:-26500}"
master=$base volume=$((base + 1)) filer=$((base + 2)) s3=$((base + 3))

# shellcheck source=../lib/processes.sh
. "$here/../lib/processes.sh"
log() { printf 's3: %s\n' "$*" >&2; }
exports() { cat "$state/env"; }

if [ -f "$state/pids/weed.pid" ] && kill -0 "$(cat "$state/pids/weed.pid")" 2>/dev/null; then
  log "already running in $state"
  exports
  exit 0
fi

bin="$("$here/build.sh")"
log "binary: $bin/weed"

# A port already taken would make weed fail late and obscurely: say which.
for port in $master $volume $filer $s3 $((master + 10)) $((volume + 10)) $((filer + 10)) $((s3 + 10)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "port $port on 127.0.0.1 is taken: set C8S_S3_PORT to another base"
    exit 1
  fi
done

rm -rf "$state"
mkdir -p "$state"/{data,pids,logs}
key() { openssl rand -hex "$1"; }
access=c8s$(key 8) secret=$(key 20)
cat > "$state/s3.json" <<JSON
{
  "identities": [
    {
      "name": "c8s-archive",
      "credentials": [{ "accessKey": "$access", "secretKey": "$secret" }],
      "actions": ["Read", "Write", "List", "Tagging"]
    }
  ]
}
JSON
chmod 600 "$state/s3.json"
cat > "$state/env" <<ENV
export C8S_TEST_S3_ENDPOINT=http://127.0.0.1:$s3
export C8S_TEST_S3_REGION=us-east-1
export C8S_TEST_S3_ACCESS_KEY=$access
export C8S_TEST_S3_SECRET_KEY=$secret
export C8S_TEST_S3_MASTER=127.0.0.1:$master.$((master + 10))
export C8S_TEST_S3_WEED=$bin/weed
ENV

# Small volumes (the tests write tens of MiB); each bucket is a collection
# that grows volumes of its own (sparse files), so allow many. The volume
# server stops at once on SIGTERM (no 10 s pre-stop wait). No telemetry, no
# Iceberg or Lance catalog ports.
"$bin/weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$state/data" \
  -master.port="$master" -master.port.grpc=$((master + 10)) \
  -master.volumeSizeLimitMB=64 -master.telemetry=false \
  -volume.port="$volume" -volume.port.grpc=$((volume + 10)) -volume.max=1000 -volume.preStopSeconds=0 \
  -filer.port="$filer" -filer.port.grpc=$((filer + 10)) \
  -s3 -s3.port="$s3" -s3.port.grpc=$((s3 + 10)) -s3.port.iceberg=0 -s3.port.lance=0 \
  -s3.config="$state/s3.json" -s3.autoCreateBucket=false \
  >"$state/logs/weed.log" 2>&1 &
echo $! > "$state/pids/weed.pid"

wait_for() {
  local what=$1 tries=$2
  shift 2
  up_or_stop "$what" "$state/pids/weed.pid" "$state/logs/weed.log" "$here/down.sh" "$tries" 0.25 "$@"
}
# The master can place a file (a volume server joined and has a writable
# volume), the filer answers, the S3 gateway answers its health probe.
wait_for master 240 sh -c "curl -sf 'http://127.0.0.1:$master/dir/assign' | grep -q '\"fid\"'"
wait_for filer 240 curl -sf "http://127.0.0.1:$filer/"
wait_for s3 240 curl -sf "http://127.0.0.1:$s3/healthz"

log "up: S3 endpoint http://127.0.0.1:$s3; state in $state"
exports
