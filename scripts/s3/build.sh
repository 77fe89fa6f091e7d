#!/usr/bin/env bash
# Builds a real S3-compatible server from Go modules (no image, no release
# download): SeaweedFS's `weed` command from github.com/seaweedfs/seaweedfs,
# statically (CGO_ENABLED=0). The binary is cached outside the clone, keyed by
# version, so a second run on the same machine reuses it:
#   ${C8S_S3_CACHE:-$HOME/.cache/c8s/s3}/seaweedfs-<version>/bin/weed
# Prints the bin directory on stdout.
set -euo pipefail

SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"

cache="${C8S_S3_CACHE:-$HOME/.cache/c8s/s3}"
root="$cache/seaweedfs-$SEAWEEDFS_VERSION"
bin="$root/bin"
if [ -x "$bin/weed" ]; then echo "$bin"; exit 0; fi

log() { printf 's3 build: %s\n' "$*" >&2; }
command -v go >/dev/null || { log "needs a Go toolchain (go) on PATH"; exit 1; }
mkdir -p "$bin"

# The module and build caches of this build live beside the binary and go
# once it is built.
export GOMODCACHE="$root/go/mod" GOCACHE="$root/go/build" GOFLAGS="$GOFLAGS -modcacherw"
mod="$root/module"
rm -rf "$mod"; mkdir -p "$mod"; cd "$mod"
go mod init c8s.dev/s3 >/dev/null 2>&1
# The go directive and the replace directives of seaweedfs's own go.mod: `go
# build pkg@version` would honour neither (replaces only apply in the main
# module), so the wrapper module copies them from the go.mod the proxy serves.
gomod="$(go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
[ -f "$gomod" ] || { log "no go.mod for github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION"; exit 1; }
goversion="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
go mod edit -go="$goversion" -require="github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION"
# Both forms, `replace a [v] => b [v]` and a `replace ( ... )` block.
awk '/^replace \(/ { block = 1; next }
     block && /^\)/ { block = 0; next }
     /^replace / { sub(/^replace /, ""); print; next }
     block && /=>/ { print }' "$gomod" |
  while read -r line; do
    from="${line%% =>*}" to="${line##*=> }"
    go mod edit -replace="${from/ /@}=${to/ /@}"
  done
cat > tools.go <<'GO'
//go:build tools

// Package tools pins the SeaweedFS command this module builds.
package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
GO
log "resolving github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION"
go mod tidy >&2
log "building weed"
go build -trimpath -ldflags "-s -w" -o "$bin/weed.tmp" github.com/seaweedfs/seaweedfs/weed >&2
mv "$bin/weed.tmp" "$bin/weed"
rm -rf "$root/go" "$mod"
echo "$bin"
