#!/usr/bin/env bash
# Builds Updraft's fuzz targets (fuzz/) with libFuzzer on the stable toolchain and runs each one for
# a bounded time on its seed corpus. Exits non-zero when any target finds a crash.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 20 seconds, every target)
#
# Environment: FUZZ_JOBS (libFuzzer worker processes per target, default 1), FUZZ_ARGS (extra
# libFuzzer flags, e.g. "-max_len=65536"). See fuzz/README.md for longer runs by hand.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-20}"
shift || true
all_targets=(sigv4_verify zip_extract lambda_json runtime_api payload_v2 eventbridge_input)
targets=("${@:-${all_targets[@]}}")
jobs="${FUZZ_JOBS:-1}"

# Coverage instrumentation that stable rustc accepts (what cargo-fuzz adds, minus the sanitizer,
# which needs nightly). Given with an explicit --target so that build scripts and proc macros are
# built without it.
host="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing"
export CARGO_TARGET_DIR="$PWD/target"

echo "== building fuzz targets (profile fuzz, target $host)"
build_start=$SECONDS
cargo build --locked --profile fuzz --target "$host" --bins
echo "== built in $((SECONDS - build_start)) s"
bin_dir="$CARGO_TARGET_DIR/$host/fuzz"

# The code store target writes packages: keep that on a tmpfs when there is one, and remove it after.
scratch_parent=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch_parent=/dev/shm; fi
scratch="$(mktemp -d "$scratch_parent/updraft-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

failed=()
passed=0
for t in "${targets[@]}"; do
    seeds="corpus/$t"
    found="runs/corpus/$t"      # new inputs the run finds (gitignored)
    artifacts="runs/artifacts/$t/"
    log="runs/logs/$t.log"
    mkdir -p "$seeds" "$found" "$artifacts" "$(dirname "$log")"
    dict=()
    if [ -f "dict/$t.dict" ]; then dict=("-dict=dict/$t.dict"); fi
    args=(
        "-max_total_time=$seconds"
        -rss_limit_mb=2048
        -timeout=30
        -print_final_stats=1
        "-artifact_prefix=$artifacts"
        "${dict[@]}"
    )
    if [ "$jobs" -gt 1 ]; then args+=("-fork=$jobs"); fi
    # shellcheck disable=SC2206
    args+=(${FUZZ_ARGS:-})

    set +e
    TMPDIR="$scratch" "$bin_dir/$t" "${args[@]}" "$found" "$seeds" >"$log" 2>&1
    rc=$?
    set -e
    # A target that fails on a seed stops before it prints any of these.
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1 || true)"
    cov="$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -n 1 | cut -d' ' -f2)"
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "fuzz $t: ok (${runs:-?} runs in ${seconds}s, coverage ${cov:-?}, corpus $(ls "$found" | wc -l) new)"
    else
        failed+=("$t")
        crash="$(ls -t "$artifacts" | head -n 1 || true)"
        echo "fuzz $t: FAILED (exit $rc), input: ${crash:+fuzz/$artifacts$crash}, log: fuzz/$log"
        # The panic and the line after it (its message), or libFuzzer's own verdict.
        grep -E -A1 -m 3 "panicked at|^==[0-9]+== ERROR|^SUMMARY" "$log" | sed 's/^/    /' || true
    fi
done

echo "fuzz: ${passed} passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
