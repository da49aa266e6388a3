#!/usr/bin/env bash
# Builds tests/functions/rust-hello (a function on AWS's `lambda_runtime` crate) and leaves its
# binary as tests/functions/.build/rust-hello/bootstrap, ready to be zipped as a provided.al2023
# package. Incremental: a second run with nothing changed takes a second.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/.build"
mkdir -p "$build/rust-hello"
cargo build --release --locked --quiet \
  --manifest-path "$here/rust-hello/Cargo.toml" \
  --target-dir "$build/rust-target"
install -m 0755 "$build/rust-target/release/rust-hello" "$build/rust-hello/bootstrap"
echo "$build/rust-hello/bootstrap"
