#!/usr/bin/env bash
# The whole test suite, on a fresh machine, as root:
#
#   scripts/test.sh
#
# 1. scripts/setup.sh: Debian packages (DPDK, tshark, scapy, ...) and
#    hugepages; idempotent.
# 2. cargo build --release --workspace
# 3. cargo test --release --workspace: unit, property and integration
#    tests; the integration tests drive the optimised pmd-app binary over
#    DPDK virtual devices, kernel taps, veths and network namespaces (hence
#    root).
#
# Exits non-zero as soon as a step fails; the last line is a summary.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$HOME/.cargo/bin:$PATH"
if [ "${CI:-}" = true ]; then export CARGO_TERM_COLOR=never; fi

started=$(date +%s)
log=$(mktemp /tmp/vfp-test.XXXXXX)
trap 'rm -f "$log"' EXIT

fail() {
  echo "summary: FAILED at $1 after $(( $(date +%s) - started ))s"
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: run as root: setup installs packages and reserves hugepages, and the tests create"
  echo "test.sh: tap and veth interfaces and network namespaces"
  fail "the root check"
fi
command -v cargo >/dev/null || { echo "test.sh: cargo not found (install a Rust toolchain)"; fail "the toolchain check"; }

echo "== setup"
bash scripts/setup.sh || fail "scripts/setup.sh"
echo "== build"
cargo build --release --workspace || fail "cargo build"
echo "== test"
cargo test --release --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# Every test app had its own EAL file prefix; DPDK leaves each one's runtime
# directory (about 6 MB of tmpfs with --no-huge) behind when it exits.
rm -rf /run/dpdk/vfpt-* 2>/dev/null

# Totals over every test binary's "test result:" line.
read -r passed failed ignored < <(awk '/^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i
    }
  } END { print p+0, f+0, g+0 }' "$log")
secs=$(( $(date +%s) - started ))
if [ "$status" -ne 0 ]; then
  echo "test.sh: cargo test failed (exit $status); failing tests:"
  grep -E '^test .* FAILED$|^error' "$log" | sed 's/^/  /' | head -50
  echo "summary: $passed passed, $failed failed, $ignored skipped in ${secs}s"
  exit 1
fi
echo "summary: $passed passed, $failed failed, $ignored skipped in ${secs}s"
