#!/usr/bin/env bash
# Updraft's supply-chain checks (docs/supply-chain.md):
# - cargo audit: every Cargo.lock in the repository against the RustSec advisory database
#   snapshot in ../shared/advisory-db (it cannot be fetched here, so it is never fetched);
#   any advisory that applies fails, unless .cargo/audit.toml ignores its ID with a reason;
# - cargo deny (deny.toml), offline (--frozen): licences against the allowlist, banned and duplicate
#   crates, sources limited to crates.io.
#
#   scripts/supply-chain.sh                 all of it (CI runs this)
#   scripts/supply-chain.sh audit LOCK...   cargo audit of the given lock files only
#
# UPDRAFT_ADVISORY_DB overrides the snapshot's path.
set -euo pipefail
cd "$(dirname "$0")/.."

# shared/ lies beside the checkout; a git worktree elsewhere finds it beside the main checkout.
db="${UPDRAFT_ADVISORY_DB:-../shared/advisory-db}"
if [ -z "${UPDRAFT_ADVISORY_DB:-}" ] && [ ! -d "$db" ]; then
    main_checkout=$(cd "$(git rev-parse --git-common-dir 2>/dev/null || echo .)/.." && pwd)
    [ -d "$main_checkout/../shared/advisory-db" ] && db="$main_checkout/../shared/advisory-db"
fi
# The repository's lock files: the workspace, and the separate projects the tests, fuzzing and
# benchmarks build (what they compile runs on the same machines).
locks=(Cargo.lock fuzz/Cargo.lock tests/functions/rust-hello/Cargo.lock
       bench/functions/rust-hello/Cargo.lock bench/peers/hyper-floor/Cargo.lock)

tools() {
    scripts/supply-chain-tools.sh "$@" >&2
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
}

snapshot() {
    if [ ! -f "$db/SNAPSHOT" ] || [ ! -d "$db/crates" ]; then
        echo "error: no RustSec advisory database snapshot at $db (expected SNAPSHOT and crates/)" >&2
        exit 1
    fi
    local commit date
    db=$(cd "$db" && pwd)
    read -r commit date <"$db/SNAPSHOT"
    echo "RustSec advisory database: snapshot of ${date%%T*} (commit ${commit:0:12}, $db)."
    echo "It is not fetched: advisories published after ${date%%T*} are not checked until the snapshot is updated."
}

audit() {
    local status=0 lock
    for lock in "$@"; do
        echo "-- cargo audit $lock"
        # --stale: the snapshot is older than cargo-audit's 90-day freshness limit by design.
        # --deny warnings: unmaintained, unsound and yanked crates fail too.
        cargo audit --db "$db" --no-fetch --stale --deny warnings --file "$lock" || status=1
    done
    return $status
}

deny() {
    echo "-- cargo deny check (licenses, bans, sources; advisories are cargo audit's)"
    # --frozen: Cargo.lock as it is, and no network (the registry index cargo already has).
    cargo deny --frozen check licenses bans sources
}

case "${1:-all}" in
    audit)
        shift
        [ $# -gt 0 ] || { echo "usage: $0 audit LOCK..." >&2; exit 2; }
        tools cargo-audit
        snapshot
        audit "$@"
        ;;
    all)
        tools
        snapshot
        status=0
        audit "${locks[@]}" || status=1
        deny || status=1
        if [ $status -ne 0 ]; then
            echo "supply-chain checks FAILED (see above; docs/supply-chain.md says what to do)" >&2
        fi
        exit $status
        ;;
    *)
        echo "usage: $0 [all | audit LOCK...]" >&2
        exit 2
        ;;
esac
