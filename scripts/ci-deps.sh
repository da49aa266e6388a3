#!/usr/bin/env bash
# Installs, from Debian's packages, the programs the test suites need that the machine may lack:
# gcc (the security probes), curl (Function URLs driven by curl), Node.js (the Node.js runtime
# and its client), npm (the object store's AWS SDK for JavaScript test), python3 with venv (the e2e
# suites' environment and the Python runtime), a JDK (the Java runtime and the tests' javac) and
# Mono's mono-devel (the C# runtime and mcs). Under
# CI=true the suites fail rather than skip when one is missing, so CI installs them first.
# Does nothing when all are present; installing needs root.
set -euo pipefail

# command  Debian package
wanted=(
    "gcc gcc"
    "curl curl"
    "node nodejs"
    "npm npm"
    "python3 python3"
    "javac openjdk-17-jdk-headless"
    "mcs mono-devel"
)

missing=()
for pair in "${wanted[@]}"; do
    read -r cmd pkg <<<"$pair"
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
# `python3 -m venv` needs Debian's python3-venv when python3 is Debian's own.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "test dependencies present: gcc, curl, node, npm, python3, javac, mcs"
    exit 0
fi
echo "installing missing test dependencies: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "error: installing ${missing[*]} needs root (apt-get install ${missing[*]})" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
