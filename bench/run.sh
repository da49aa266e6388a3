#!/usr/bin/env bash
# Updraft's benchmark: warm invoke latency/throughput, cold starts and memory for Python, Node.js and Rust hello
# functions, measured against the release binary on this machine, then the same hello on its peers (raw hyper
# and Node.js servers, serverless-offline, lambda-local, workerd, cargo-lambda's emulator) in the same run.
# Also measures the Python and Node.js hellos through a Function URL, and replays a bursty trace against the fixed
# and the adaptive keep-alive (bench/keepalive.py → bench/out/keepalive.{md,json}).
# Writes bench/out/results.{md,json}, bench/out/latency.png and prints the tables. See bench/README.md.
#
# Usage: bench/run.sh [--peers | --no-peers]     (peers are measured unless --no-peers or BENCH_PEERS=none)
#
# Environment knobs (all optional):
#   UPDRAFT_BIN        binary to benchmark (default: target/release/updraft, built with `cargo build --release`)
#   BENCH_SKIP_BUILD=1 no `cargo build` of Updraft; the bench's own small Rust programs (rust-hello, hyper-floor)
#                      are built only when their binary is missing
#   BENCH_PEERS        comma-separated subset of hyper-floor,relay-floor,node-floor,serverless-offline,lambda-local,
#                      workerd,cargo-lambda, or `none` (default: all)
#   BENCH_MEM_ENVS     idle warm Python environments measured together (default 50; 0 skips)
#   BENCH_URLS=0       no Function URL runs (by default the Python and Node.js hellos are also measured through
#                      a public Function URL)
#   BENCH_DURATION     seconds per measured wrk run (default 10)
#   BENCH_COLD_SAMPLES cold starts per runtime and spacing (default 20 spaced out, 20 back to back)
#   BENCH_PREWARM      the server's --prewarm, pre-warmed environments per runtime (default 1; 0: none)
#   BENCH_ONLY         comma-separated subset of python,node,rust
#   BENCH_OUT          output directory (default bench/out)
#   BENCH_KEEPALIVE=0  no keep-alive replay (bench/keepalive.py: fixed against adaptive keep-alive)
set -euo pipefail

PEERS=${BENCH_PEERS:-all}
for arg in "$@"; do
  case "$arg" in
    --peers) [ "$PEERS" = none ] && PEERS=all ;;
    --no-peers) PEERS=none ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
cd "$REPO"

DURATION=${BENCH_DURATION:-10}
COLD_SAMPLES=${BENCH_COLD_SAMPLES:-20}
PREWARM=${BENCH_PREWARM:-1}
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

# The peers' driver and the chart run in the bench's own venv; matplotlib (the chart) and cargo-lambda (a peer)
# come from PyPI into it. Either may fail to install: the chart or that peer is then reported as missing.
VENV="$BENCH_DIR/.venv"
if [ "$PEERS" != none ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    python3 -m venv "$VENV" || say "cannot create $VENV"
  fi
  if [ -x "$VENV/bin/python" ]; then
    while read -r req; do
      case "$req" in ''|'#'*) continue ;; esac
      name=${req%%==*}
      if ! "$VENV/bin/python" -m pip show -q "$name" >/dev/null 2>&1; then
        say "pip install $req (bench/.venv)"
        timeout 900 "$VENV/bin/python" -m pip install -q "$req" >&2 || say "pip install $req failed"
      fi
    done <"$BENCH_DIR/requirements.txt"
  fi
fi
# --- builds ------------------------------------------------------------------------------------------------
# The Rust hello is linked statically (glibc's static-pie, `crt-static`), as Rust functions for provided.* are
# usually shipped (a musl or static build does not depend on the runtime image's libraries): its process starts
# without the dynamic loader searching Lambda's LD_LIBRARY_PATH. The explicit --target keeps the flag off
# build scripts and proc-macros.
RUST_TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BOOTSTRAP="$RUST_TARGET/$RUST_TRIPLE/release/bootstrap"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] && [ -z "${UPDRAFT_BIN:-}" ]; then
  say "cargo build --release (updraft)"
  cargo build --release --quiet
fi
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] || [ ! -x "$BOOTSTRAP" ]; then
  say "cargo build --release (bench/functions/rust-hello, target dir bench/.build)"
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet --locked --target "$RUST_TRIPLE" \
    --manifest-path "$RUST_FN/Cargo.toml" --target-dir "$RUST_TARGET"
fi
[ -x "$BIN" ] || { say "no updraft binary at $BIN"; exit 1; }
[ -x "$BOOTSTRAP" ] || say "no Rust bootstrap at $BOOTSTRAP: the Rust rows will fail"

# --- server ------------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/updraft-bench.XXXXXX)
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export UPDRAFT_ACCESS_KEY_ID=AKIAUPDRAFTBENCH0001
UPDRAFT_SECRET_ACCESS_KEY=$("$PY" -c 'import secrets; print(secrets.token_hex(20))')
export UPDRAFT_SECRET_ACCESS_KEY
SERVER_PID=""
PEERS_PID=""

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

cleanup() {
  # peers.py stops its own peers on SIGTERM; it is only killed outright when it does not exit in time.
  if [ -n "$PEERS_PID" ] && kill -0 "$PEERS_PID" 2>/dev/null; then
    kill -TERM "$PEERS_PID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$PEERS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PEERS_PID" 2>/dev/null || true
  fi
  stop_server
  mkdir -p "$OUT"
  cp "$WORK/server.log" "$OUT/server.log" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting $BIN serve on 127.0.0.1:$PORT"
UPDRAFT_LOG=${UPDRAFT_LOG:-warn} "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
  --prewarm "$PREWARM" >"$WORK/server.log" 2>&1 </dev/null &
SERVER_PID=$!
for i in $(seq 1 300); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then say "server exited:"; tail -20 "$WORK/server.log" >&2; exit 1; fi
  [ "$i" = 300 ] && { say "server not healthy after 30 s"; tail -20 "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done

say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# The driver is bounded on its own; this is the outer limit of a whole run.
STATUS=0
timeout 1800 "$PY" "$BENCH_DIR/bench.py" \
  --server-pid "$SERVER_PID" \
  --mem-envs "${BENCH_MEM_ENVS:-50}" \
  --endpoint "http://127.0.0.1:$PORT" \
  --rust-bootstrap "$BOOTSTRAP" \
  --wrk "$WRK" \
  --binary "${BIN#"$REPO"/}" \
  --out "$OUT" \
  --duration "$DURATION" \
  --cold-samples "$COLD_SAMPLES" \
  --prewarm "$PREWARM" \
  --urls "$([ "${BENCH_URLS:-1}" = 0 ] && echo 0 || echo 1)" \
  ${BENCH_ONLY:+--only "$BENCH_ONLY"} || STATUS=$?

# Updraft's server and its environments are gone before the peers run, so that nothing but the peer under
# measurement (and wrk) uses the CPUs.
stop_server

# Keep-alive policies: fixed against adaptive on one replayed trace, each on a fresh server that the script
# starts itself with the right flags (about 6 minutes; BENCH_KEEPALIVE=0 skips it).
if [ "${BENCH_KEEPALIVE:-1}" != 0 ]; then
  say "keep-alive replay (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  timeout 900 "$PY" "$BENCH_DIR/keepalive.py" --bin "$BIN" --out "$OUT" >/dev/null || STATUS=$?
fi
if [ "$PEERS" = none ]; then
  exit "$STATUS"
fi
PEERS_PY="$VENV/bin/python"
[ -x "$PEERS_PY" ] || PEERS_PY=$(command -v python3)
ONLY_PEERS=""
[ "$PEERS" != all ] && ONLY_PEERS="$PEERS"
say "peers (load average $(cut -d' ' -f1-3 /proc/loadavg))"
timeout 2400 "$PEERS_PY" "$BENCH_DIR/peers.py" run \
  --out "$OUT" \
  --build-dir "$BENCH_DIR/.build" \
  --wrk "$WRK" \
  --rust-bootstrap "$BOOTSTRAP" \
  --duration "$DURATION" \
  --cargo-lambda-req "$(grep -E '^cargo-lambda==' "$BENCH_DIR/requirements.txt" || echo cargo-lambda)" \
  ${BENCH_SKIP_BUILD:+$([ "$BENCH_SKIP_BUILD" = 1 ] && echo --skip-build)} \
  ${ONLY_PEERS:+--only "$ONLY_PEERS"} &
PEERS_PID=$!
wait "$PEERS_PID" || STATUS=$?
PEERS_PID=""
"$PEERS_PY" "$BENCH_DIR/peers.py" report --out "$OUT" >/dev/null || STATUS=$?
cat "$OUT/results.md"
exit "$STATUS"
