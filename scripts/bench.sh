#!/usr/bin/env bash
# Benchmark: pmd-app against dpdk-testpmd on the same input, same run.
# The machine is noisy, so the figure that matters is the ratio of the two
# measured back to back (A B A B ...), read from each process's own DPDK
# telemetry (ethdev opackets of the sink port), not from the app's counters.
#
#   scripts/bench.sh [forward] [ROUNDS]
#
# forward: net_pcap (infinite_rx, 64 B UDP) -> net_null, pmd-app plain
#          forwarding vs testpmd --forward-mode=io, one forwarding lcore each.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-forward}
ROUNDS=${2:-3}
WARM=${BENCH_WARM:-1}
SECS=${BENCH_SECS:-3}
OUT=${BENCH_DIR:-/tmp/vfp-bench}
mkdir -p "$OUT"
TEL=tests/helpers/telemetry.py
PY=/usr/bin/python3

cargo build --release -q -p pmd-app
APP=target/release/pmd-app

EAL_COMMON=(--no-pci --log-level lib.eal:error)
if [ "$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)" -lt 512 ]; then
  echo "bench: no hugepages, using --no-huge (slower)"; EAL_COMMON+=(--no-huge -m 1024)
fi

measure() { # prefix pid -> prints pps of port 1 opackets
  local prefix=$1 pid=$2
  $PY $TEL "$prefix" wait 60 >/dev/null
  sleep "$WARM"
  local pps; pps=$($PY $TEL "$prefix" rate 1 "$SECS" opackets)
  kill -INT "$pid"; wait "$pid" || true
  echo "$pps"
}

run_pair() { # name, input pcap, testpmd mode, pmd-app extra args...
  local name=$1 pcap=$2 tpmode=$3; shift 3
  local vdevs=(--vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev net_null0,no-rx=1)
  local a=() b=()
  for r in $(seq "$ROUNDS"); do
    dpdk-testpmd "${EAL_COMMON[@]}" -l 0-1 --file-prefix vfpb-tp "${vdevs[@]}" -- \
      --forward-mode="$tpmode" --no-flush-rx --total-num-mbufs=65536 -a --stats-period 0 \
      </dev/zero >"$OUT/testpmd.log" 2>&1 &
    b+=("$(measure vfpb-tp $!)")
    "$APP" "${EAL_COMMON[@]}" -l 1 --file-prefix vfpb-app "${vdevs[@]}" -- \
      --mbufs 65535 --no-control-socket --idle-sleep-us 0 "$@" >"$OUT/pmd-app.log" 2>&1 &
    a+=("$(measure vfpb-app $!)")
    printf '  round %d: pmd-app %.2f Mpps  testpmd(%s) %.2f Mpps  ratio %.3f\n' "$r" \
      "$(echo "${a[-1]}/1000000" | bc -l)" "$tpmode" "$(echo "${b[-1]}/1000000" | bc -l)" \
      "$(echo "${a[-1]}/${b[-1]}" | bc -l)"
  done
  local ra=() i
  for i in "${!a[@]}"; do ra+=("$(echo "${a[$i]}/${b[$i]}" | bc -l)"); done
  local med; med=$(printf '%s\n' "${ra[@]}" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
  printf '%s: median ratio pmd-app/testpmd(%s) = %.3f over %d rounds\n' "$name" "$tpmode" "$med" "$ROUNDS"
}

case "$MODE" in
  forward)
    $PY tests/helpers/traffic.py udp-flows "$OUT/flows1.pcap" --flows 1 --count 4096 --size 64
    run_pair "plain forwarding, 64 B, 1 flow" "$OUT/flows1.pcap" io
    ;;
  *) echo "unknown mode $MODE"; exit 2 ;;
esac
