#!/usr/bin/env bash
# Installs the AWS SDK for JavaScript v3's S3 client (a pinned version, from the npm registry)
# into a cache directory, for the object store's Node.js test (tests/e2e/test_s3.py). Prints the
# directory holding node_modules. Does nothing when that version is there already.
set -euo pipefail

version="${S3_JS_SDK_VERSION:-3.1178.0}"
dir="${UPDRAFT_CACHE_DIR:-$HOME/.cache/updraft}/sdk-js-s3-$version"
if [ ! -f "$dir/node_modules/@aws-sdk/client-s3/package.json" ]; then
    command -v npm >/dev/null 2>&1 || { echo "error: npm is needed (apt-get install npm)" >&2; exit 1; }
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --silent "@aws-sdk/client-s3@$version" >&2)
fi
echo "$dir"
