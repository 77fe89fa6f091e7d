#!/usr/bin/env bash
# Starts a real Kubernetes control plane on loopback for the tests:
# etcd, kube-apiserver (authorization Node,RBAC; PodSecurity admission on, as
# by default), kube-controller-manager (Job, garbage collector, ServiceAccount,
# namespace, TTL controllers ...), kube-scheduler, and c8s-node-sim (simulated
# nodes playing the kubelet; testing/node-sim). No container runtime: no image
# is pulled, containers do what a per-namespace script says.
#
#   scripts/control-plane/up.sh      # prints `export KUBECONFIG=...`
#   scripts/control-plane/down.sh    # stops what up.sh started, by PID
#
# State (certificates, kubeconfigs, logs, PIDs, etcd data) lives in
# ${C8S_CONTROL_PLANE_DIR:-/tmp/c8s-control-plane}; ports are
# C8S_CONTROL_PLANE_PORT (default 26400) + a fixed offset each, so two
# control planes with different directories and ports can run side by side.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
workspace="$(cd "$here/../.." && pwd)"
state="${C8S_CONTROL_PLANE_DIR:-/tmp/c8s-control-plane}"
base="${C8S_CONTROL_PLANE_PORT:-26400}"
etcd_port=$((base + 1)) etcd_peer=$((base + 2)) api_port=$((base + 43))
cm_port=$((base + 57)) sched_port=$((base + 59)) kubelet_port=$((base + 50))
nodes="${C8S_SIM_NODES:-2}"

# shellcheck source=../lib/processes.sh
. "$here/../lib/processes.sh"
log() { printf 'control-plane: %s\n' "$*" >&2; }

if [ -f "$state/pids/kube-apiserver.pid" ] && kill -0 "$(cat "$state/pids/kube-apiserver.pid")" 2>/dev/null; then
  log "already running in $state"
  echo "export KUBECONFIG=$state/admin.kubeconfig"
  exit 0
fi

bin="$("$here/build.sh")"
log "binaries: $bin"

# The node simulator, built by cargo from this workspace.
if [ -z "${C8S_NODE_SIM:-}" ]; then
  (cd "$workspace" && cargo build --quiet --locked -p c8s-node-sim --bin c8s-node-sim >&2)
  target="$(cd "$workspace" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  C8S_NODE_SIM="$target/debug/c8s-node-sim"
fi

rm -rf "$state"
mkdir -p "$state"/{pki,pids,logs,etcd}
pki="$state/pki"

# --- certificates (openssl): one CA signs the serving cert and every client -
ossl() { openssl "$@" >/dev/null 2>&1; }
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=c8s-test-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.crt"
# name, subject, extra extensions (SANs for serving certs). Every cert is
# X.509 v3 (an extension file makes it so): rustls refuses v1 certificates.
issue() {
  local name=$1 subject=$2 extra=${3:-}
  ossl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$pki/$name.key" -out "$pki/$name.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$extra" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "$extra"
    else echo "extendedKeyUsage=clientAuth"; fi
  } > "$pki/$name.ext"
  ossl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/$name.ext" -out "$pki/$name.crt"
}
issue apiserver "/CN=kube-apiserver" \
  "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
issue admin "/O=system:masters/CN=c8s-test-admin"
issue controller-manager "/CN=system:kube-controller-manager"
issue scheduler "/CN=system:kube-scheduler"
issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
# The simulator plays every node: one identity with the rights of all of them.
issue node-sim "/O=system:masters/CN=c8s-node-sim"
issue kubelet "/CN=c8s-node-sim-serving" "subjectAltName=IP:127.0.0.1,DNS:localhost"
ossl genrsa -out "$pki/sa.key" 2048
ossl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

kubeconfig() {
  local name=$1
  cat > "$state/$name.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: c8s-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $name
  user:
    client-certificate: $pki/$name.crt
    client-key: $pki/$name.key
contexts:
- name: c8s-test
  context: { cluster: c8s-test, user: $name, namespace: default }
current-context: c8s-test
KC
}
for k in admin controller-manager scheduler node-sim; do kubeconfig "$k"; done

start() {
  local name=$1; shift
  "$@" >"$state/logs/$name.log" 2>&1 &
  echo $! > "$state/pids/$name.pid"
}
wait_for() {
  local what=$1 tries=$2
  shift 2
  up_or_stop "$what" "$state/pids/$what.pid" "$state/logs/$what.log" "$here/down.sh" "$tries" 0.5 "$@"
}

start etcd "$bin/etcd" --name c8s-test --data-dir "$state/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "c8s-test=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --log-level warn
wait_for etcd 60 curl -sf "http://127.0.0.1:$etcd_port/health"

start kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range 10.0.0.0/24 \
  --authorization-mode Node,RBAC \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP \
  --endpoint-reconciler-type none \
  --allow-privileged=true --profiling=false --v=1
wait_for kube-apiserver 240 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
  "https://127.0.0.1:$api_port/readyz"

start kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig "$state/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$state/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$state/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$cm_port" --leader-elect=false \
  --use-service-account-credentials=true \
  --root-ca-file "$pki/ca.crt" --service-account-private-key-file "$pki/sa.key" \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --concurrent-gc-syncs 4 --profiling=false --v=1
start kube-scheduler "$bin/kube-scheduler" \
  --kubeconfig "$state/scheduler.kubeconfig" \
  --authentication-kubeconfig "$state/scheduler.kubeconfig" \
  --authorization-kubeconfig "$state/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false --profiling=false --v=1
wait_for kube-controller-manager 120 curl -skf "https://127.0.0.1:$cm_port/healthz"
wait_for kube-scheduler 120 curl -skf "https://127.0.0.1:$sched_port/healthz"

start node-sim "$C8S_NODE_SIM" --kubeconfig "$state/node-sim.kubeconfig" \
  --listen "127.0.0.1:$kubelet_port" --tls-cert "$pki/kubelet.crt" --tls-key "$pki/kubelet.key" \
  --nodes "$nodes"
ready_nodes() {
  local n
  n="$(curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$api_port/api/v1/nodes" | grep -c '"type": "Ready"' || true)"
  [ "$n" -ge "$nodes" ]
}
wait_for node-sim 120 ready_nodes
# The default ServiceAccount (the ServiceAccount admission plugin refuses pods
# until it exists) comes from the controller-manager.
wait_for kube-controller-manager 120 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
  "https://127.0.0.1:$api_port/api/v1/namespaces/default/serviceaccounts/default"

log "up: API server https://127.0.0.1:$api_port, $nodes simulated nodes; state in $state"
echo "export KUBECONFIG=$state/admin.kubeconfig"
