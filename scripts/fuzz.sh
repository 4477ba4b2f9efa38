#!/usr/bin/env bash
# Runs every cargo-fuzz target of vfp-core (vfp-core/fuzz) for a bounded
# time each. Not part of CI: fuzzing needs a nightly toolchain and
# cargo-fuzz, which a machine may not have.
#
#   FUZZ_SECONDS=60   seconds per target (libFuzzer -max_total_time)
#   FUZZ_TARGETS="parse"  run only these targets (default: all)
#
# Seeds are read from vfp-core/fuzz/corpus/<target>/ (committed, never
# written); what the fuzzer discovers goes to vfp-core/fuzz/work/<target>/
# and crashes to vfp-core/fuzz/artifacts/<target>/ (both git-ignored).
# Exits non-zero when a target finds a crash.
set -euo pipefail

cd "$(dirname "$0")/../vfp-core"
seconds="${FUZZ_SECONDS:-60}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: no nightly Rust toolchain here; cargo-fuzz needs one."
    echo "fuzz.sh: install it with 'rustup toolchain install nightly' and rerun. Skipping."
    exit 0
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    if ! cargo install cargo-fuzz --locked; then
        echo "fuzz.sh: could not install cargo-fuzz (offline?). Skipping."
        exit 0
    fi
fi

targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
for target in $targets; do
    mkdir -p "fuzz/work/$target" "fuzz/corpus/$target"
    echo "fuzz.sh: $target for ${seconds}s"
    # The first corpus directory receives new inputs; the seeds stay as
    # committed.
    cargo +nightly fuzz run "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1
done
echo "fuzz.sh: all targets ran ${seconds}s without a crash"
