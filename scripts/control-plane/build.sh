#!/usr/bin/env bash
# Builds a real Kubernetes control plane from Go modules (no image, no release
# download): kube-apiserver, kube-controller-manager and kube-scheduler from
# k8s.io/kubernetes and etcd from go.etcd.io/etcd/server/v3. (The nodes are
# simulated by testing/node-sim, built by cargo.) The binaries are cached outside the clone, keyed
# by version, so a second run on the same machine reuses them:
#   ${C8S_CONTROL_PLANE_CACHE:-$HOME/.cache/c8s/control-plane}/<versions>/bin
# Prints the bin directory on stdout.
#
# k8s.io/kubernetes is not meant to be imported: its go.mod requires every
# k8s.io staging module at v0.0.0 and replaces it with ./staging/src/...,
# which a dependent module cannot see. The wrapper module below requires it and
# replaces each of those staging modules with its published v0.<minor>.<patch>
# tag; the list is generated from the go.mod the module proxy serves, never
# kept by hand (the pattern k3s and kong-operator use).
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"

cache="${C8S_CONTROL_PLANE_CACHE:-$HOME/.cache/c8s/control-plane}"
key="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}"
root="$cache/$key"
bin="$root/bin"
want=(kube-apiserver kube-controller-manager kube-scheduler etcd)

have_all() { for b in "${want[@]}"; do [ -x "$bin/$b" ] || return 1; done; }
if have_all; then echo "$bin"; exit 0; fi

log() { printf 'control-plane build: %s\n' "$*" >&2; }
command -v go >/dev/null || { log "needs a Go toolchain (go) on PATH"; exit 1; }
mkdir -p "$bin"

# The module and build caches of this build (about 1.2 GB and 4 GB) live beside
# the binaries and go once they are built: the tests that follow need the
# disk, not the caches.
export GOMODCACHE="$root/go/mod" GOCACHE="$root/go/build" GOFLAGS="$GOFLAGS -modcacherw"
drop_go_caches() { rm -rf "$root/go" "$root/kubernetes" "$root/etcd"; }

# --- kube-apiserver, kube-controller-manager, kube-scheduler ---------------
build_kubernetes() {
  local mod="$root/kubernetes"
  rm -rf "$mod"; mkdir -p "$mod"; cd "$mod"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  [ -f "$gomod" ] || { log "no go.mod for k8s.io/kubernetes@$KUBERNETES_VERSION"; exit 1; }
  local goversion staging
  goversion="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
  staging="v0.${KUBERNETES_VERSION#v1.}"
  go mod init c8s.dev/control-plane >/dev/null 2>&1
  go mod edit -go="$goversion" -require="k8s.io/kubernetes@$KUBERNETES_VERSION"
  # Every `k8s.io/X => ./staging/src/k8s.io/X` of k8s.io/kubernetes's go.mod.
  local m
  for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$gomod"); do
    go mod edit -replace="$m=$m@$staging"
  done
  cat > tools.go <<'GO'
//go:build tools

// Package tools pins the Kubernetes commands this module builds.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  log "resolving k8s.io/kubernetes@$KUBERNETES_VERSION"
  go mod tidy >&2
  local major minor pkg ldflags
  major=1; minor="$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    [ -x "$bin/$c" ] && continue
    log "building $c"
    go build -trimpath -ldflags "$ldflags" -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c" >&2
    mv "$bin/$c.tmp" "$bin/$c"
  done
}

# --- etcd -------------------------------------------------------------------
build_etcd() {
  [ -x "$bin/etcd" ] && return 0
  local mod="$root/etcd"
  rm -rf "$mod"; mkdir -p "$mod"; cd "$mod"
  go mod init c8s.dev/control-plane-etcd >/dev/null 2>&1
  cat > tools.go <<'GO'
//go:build tools

// Package tools pins the etcd server this module builds.
package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  log "resolving go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go mod tidy >&2
  log "building etcd"
  go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  mv "$bin/etcd.tmp" "$bin/etcd"
}

# Go builds in parallel inside one `go build`; two at once only thrash 2 cores.
( build_etcd )
( build_kubernetes )
have_all || { log "missing binaries in $bin"; exit 1; }
drop_go_caches
echo "$bin"
