#!/usr/bin/env bash
# Installs the pinned cargo-audit and cargo-deny that scripts/supply-chain.sh runs (both, or
# only those named: `supply-chain-tools.sh cargo-audit`). They are
# built from crates.io with their own lock files (--locked) into ~/.cargo/bin, which survives
# between CI runs on the same machine, so a run only compiles them when the pinned version is
# not already there (a first build takes several minutes on two cores).
set -euo pipefail

CARGO_AUDIT_VERSION=0.22.2
CARGO_DENY_VERSION=0.20.2

root="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}"
# A fixed build directory keeps compiled dependencies when an install is interrupted, so
# the next attempt resumes instead of starting over.
export CARGO_TARGET_DIR="${UPDRAFT_TOOLS_TARGET:-${XDG_CACHE_HOME:-$HOME/.cache}/updraft-tools-target}"

# install NAME VERSION [cargo install flags...]
install() {
    local name=$1 version=$2
    shift 2
    local have=""
    if [ -x "$root/bin/$name" ]; then
        # `cargo audit --version` prints "cargo-audit 0.22.2"; `cargo-deny --version` "cargo-deny 0.20.2".
        have=$("$root/bin/$name" "${name#cargo-}" --version 2>/dev/null || "$root/bin/$name" --version 2>/dev/null || true)
    fi
    if [[ "$have" == *" $version"* ]]; then
        echo "$name $version already installed in $root/bin"
        return
    fi
    echo "installing $name $version into $root/bin (was: ${have:-absent})"
    cargo install --locked --root "$root" --version "=$version" "$@" "$name"
}

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(cargo-audit cargo-deny)
for tool in "${wanted[@]}"; do
    case "$tool" in
        # Binary scanning (auditing compiled executables) is not used: Updraft audits Cargo.lock.
        cargo-audit) install cargo-audit "$CARGO_AUDIT_VERSION" --no-default-features ;;
        cargo-deny) install cargo-deny "$CARGO_DENY_VERSION" ;;
        *) echo "unknown tool $tool" >&2; exit 2 ;;
    esac
done
