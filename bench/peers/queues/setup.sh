#!/usr/bin/env bash
# Installs the queue services the SQS benchmark measures Updraft against, each in a venv of its own under
# bench/.peers/ (their dependency pins differ): LocalStack's SQS (localstack-core, run on the host, no Docker)
# and moto's server (moto[server]); plus pika, the AMQP client that drives the RabbitMQ floor. Idempotent: an
# installed peer is left as it is. A peer that fails to install is reported and left out of the run.
set -uo pipefail
BENCH_DIR=$(cd "$(dirname "$0")/../.." && pwd)
PEERS="$BENCH_DIR/.peers"
mkdir -p "$PEERS"

# LocalStack's current releases need Python 3.12 or newer; take one from pyenv when the default is older.
newer_python() {
  for v in 3.13 3.12; do
    for cand in "python$v" "$HOME/.pyenv/versions/$v"*/bin/python3; do
      if "$cand" -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1; then
        command -v "$cand" 2>/dev/null || echo "$cand"; return 0
      fi
    done
  done
  return 1
}

install() { # python  name  import-check  pip-args...
  local py=$1 name=$2 check=$3; shift 3
  local venv="$PEERS/$name"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    return 0
  fi
  echo "[queues/setup] installing $name" >&2
  rm -rf "$venv"; "$py" -m venv "$venv" && "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" \
    || { echo "[queues/setup] $name failed to install" >&2; return 1; }
}

if py312=$(newer_python); then
  # Pins that LocalStack 2026.3's runtime needs and its metadata does not state: cbor2 6 dropped the private
  # module it imports (cbor2._decoder); its TLS certificate code uses X509.add_extensions, gone in pyOpenSSL 25,
  # which in turn needs cryptography < 45, and its Twisted gateway imports service_identity (whose 25.x needs a
  # newer cryptography).
  install "$py312" localstack "import localstack.aws.components, service_identity" \
    "localstack-core[runtime]==2026.3.0" "cbor2<6" "pyopenssl<25" "cryptography<45" "service_identity<25" || true
else
  echo "[queues/setup] no Python 3.12+ for LocalStack 2026.3; installing 4.14.0 on $(python3 --version)" >&2
  install python3 localstack "import localstack.aws.components" "localstack-core[runtime]==4.14.0" || true
fi
install python3 moto "import moto.server" "moto[server]==5.2.5" || true
install python3 amqp "import pika, boto3" "pika==1.4.4" "boto3" || true
