#!/usr/bin/env bash
# Updraft's whole test suite: formatting, lints, supply-chain checks, Rust unit and integration
# tests, then the end-to-end suites that drive the real binary with boto3 and the aws CLI.
# With CI=true (as .ci/run is started) a skipped test or jail case is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "supply chain (cargo audit, cargo deny)"
scripts/supply-chain.sh
scripts/supply-chain-selftest.sh

step "cargo test"
cargo test --workspace

step "python environment"
scripts/python-env.sh

step "end-to-end tests"
cargo build --bin updraft
# The Rust test function (AWS's lambda_runtime crate) is built here rather than inside a test,
# where its first, from-scratch build could outlast the per-test timeout.
bash tests/functions/build-rust-hello.sh >/dev/null
export UPDRAFT_BIN="$PWD/target/debug/updraft"
.venv/bin/python -m pytest -q -p no:cacheprovider

step "fuzz targets (bounded)"
scripts/fuzz.sh 15
