#!/usr/bin/env bash
# What depending on c8s costs at build time: the clean `cargo build` of a
# downstream binary that only calls `render_pod` (the Installation section's two
# lines: c8s-pod-builder without default features, and k8s-openapi with a
# version feature), as a ratio to the clean
# build of a binary that depends on k8s-openapi alone. Same machine, same
# profile, same lock file versions, fresh target directories, one after the
# other. Goal: at most 1.5x.
#
# Prints one tab-separated line for scripts/bench-report.sh:
#   weight <ratio> <goal> <c8s seconds> <k8s-openapi seconds>
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

crate() { # name, extra dependency line, main.rs body
  mkdir -p "$work/$1/src"
  cat >"$work/$1/Cargo.toml" <<TOML
[package]
name = "$1"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
k8s-openapi = { version = "0.29", features = ["latest"] }
$2

[workspace]
TOML
  printf '%s\n' "$3" >"$work/$1/src/main.rs"
  cp "$root/Cargo.lock" "$work/$1/Cargo.lock" # the versions c8s is tested with
}

# The Installation section's render-only line, with a path instead of a version.
crate downstream "c8s-pod-builder = { path = \"$root/pod-builder\", default-features = false }" '
use c8s_pod_builder::prelude::*;
fn main() {
    let plan = TaskPlan::for_step("shop", "unit", "golang:1.23");
    let pod = render_pod(&plan, &RunContext::new("run-1", 1)).expect("a valid plan");
    print!("{}", to_canonical_yaml(&pod).expect("serialisable"));
}'
crate baseline "" '
fn main() {
    let pod = k8s_openapi::api::core::v1::Pod::default();
    println!("{:?}", pod.metadata.name);
}'

build() { # name -> seconds
  local start end
  (cd "$work/$1" && cargo fetch --quiet >/dev/null 2>&1 || true)
  start=$(date +%s.%N)
  (cd "$work/$1" && CARGO_TARGET_DIR="$work/$1/target" cargo build --quiet --offline)
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
}

base=$(build baseline)
c8s=$(build downstream)
ratio=$(awk -v a="$c8s" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
printf 'weight\t%s\t<= 1.5\t%s\t%s\n' "$ratio" "$c8s" "$base"
