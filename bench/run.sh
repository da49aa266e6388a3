#!/usr/bin/env bash
# Updraft's benchmark: warm invoke latency/throughput and cold starts for Python, Node.js and Rust hello
# functions, measured against the release binary on this machine. Writes bench/out/results.{md,json} and
# prints the table. See bench/README.md.
#
# Environment knobs (all optional):
#   UPDRAFT_BIN        binary to benchmark (default: target/release/updraft, built with `cargo build --release`)
#   BENCH_SKIP_BUILD=1 use the existing binaries as they are (no cargo at all)
#   BENCH_DURATION     seconds per measured wrk run (default 10)
#   BENCH_COLD_SAMPLES cold starts per runtime (default 20)
#   BENCH_ONLY         comma-separated subset of python,node,rust
#   BENCH_OUT          output directory (default bench/out)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
cd "$REPO"

DURATION=${BENCH_DURATION:-10}
COLD_SAMPLES=${BENCH_COLD_SAMPLES:-20}
OUT=${BENCH_OUT:-$BENCH_DIR/out}
RUST_FN="$BENCH_DIR/functions/rust-hello"
RUST_TARGET="$BENCH_DIR/.build"
BIN=${UPDRAFT_BIN:-$REPO/target/release/updraft}

say() { printf '[run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- tools -------------------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  say "installing wrk"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
WRK=$(command -v wrk)

if [ -x "$REPO/.venv/bin/python" ] && "$REPO/.venv/bin/python" -c 'import boto3' 2>/dev/null; then
  PY="$REPO/.venv/bin/python"
elif [ -x "$REPO/scripts/python-env.sh" ] && "$REPO/scripts/python-env.sh" && [ -x "$REPO/.venv/bin/python" ]; then
  PY="$REPO/.venv/bin/python"
else
  PY=$(command -v python3)
fi
"$PY" -c 'import boto3' || { say "boto3 is missing for $PY"; exit 1; }

# --- builds ------------------------------------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  if [ -z "${UPDRAFT_BIN:-}" ]; then
    say "cargo build --release (updraft)"
    cargo build --release --quiet
  fi
  say "cargo build --release (bench/functions/rust-hello, target dir bench/.build)"
  cargo build --release --quiet --locked --manifest-path "$RUST_FN/Cargo.toml" --target-dir "$RUST_TARGET"
fi
BOOTSTRAP="$RUST_TARGET/release/bootstrap"
[ -x "$BIN" ] || { say "no updraft binary at $BIN"; exit 1; }
[ -x "$BOOTSTRAP" ] || say "no Rust bootstrap at $BOOTSTRAP: the Rust rows will fail"

# --- server ------------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/updraft-bench.XXXXXX)
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export UPDRAFT_ACCESS_KEY_ID=AKIAUPDRAFTBENCH0001
UPDRAFT_SECRET_ACCESS_KEY=$("$PY" -c 'import secrets; print(secrets.token_hex(20))')
export UPDRAFT_SECRET_ACCESS_KEY
SERVER_PID=""

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  mkdir -p "$OUT"
  cp "$WORK/server.log" "$OUT/server.log" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting $BIN serve on 127.0.0.1:$PORT"
UPDRAFT_LOG=${UPDRAFT_LOG:-warn} "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
  >"$WORK/server.log" 2>&1 </dev/null &
SERVER_PID=$!
for i in $(seq 1 300); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then say "server exited:"; tail -20 "$WORK/server.log" >&2; exit 1; fi
  [ "$i" = 300 ] && { say "server not healthy after 30 s"; tail -20 "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done

say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# The driver is bounded on its own; this is the outer limit of a whole run.
timeout 1800 "$PY" "$BENCH_DIR/bench.py" \
  --endpoint "http://127.0.0.1:$PORT" \
  --rust-bootstrap "$BOOTSTRAP" \
  --wrk "$WRK" \
  --binary "${BIN#"$REPO"/}" \
  --out "$OUT" \
  --duration "$DURATION" \
  --cold-samples "$COLD_SAMPLES" \
  ${BENCH_ONLY:+--only "$BENCH_ONLY"}
