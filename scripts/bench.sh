#!/usr/bin/env bash
# Benchmark: pmd-app against dpdk-testpmd on the same input, same run.
# The machine is noisy, so the figure that matters is the ratio of the two
# measured back to back (A B A B ...), read from each process's own DPDK
# telemetry (ethdev opackets of the sink port), not from the app's counters.
# One forwarding lcore each (lcore 1); pmd-app busy-polls (--idle-sleep-us 0).
#
#   scripts/bench.sh [MODE] [ROUNDS]
#
# forward   net_pcap (infinite_rx, 64 B UDP) -> net_null: pmd-app plain
#           forwarding vs testpmd --forward-mode=io.          Goal >= 0.9
# pipeline  the same through the full pipeline with 1,000 ACL rules + SNAT
#           + VXLAN encap, at 1, 1k, 100k and 1M established flows, vs
#           testpmd --forward-mode=macswap. Goals >= 0.6 (1k), >= 0.4 (1M).
#           Also cycles/packet (the app's busy cycles / packets).
# newflows  a new flow on every packet (1M distinct 5-tuples): flow pairs
#           created per second on one lcore.                  Goal >= 1M/s
# paths     full pipeline, 1k flows, transmitting on the fast path
#           (net_null) and on the soft path (net_tap into the kernel) of the
#           same vport; the switch times of a planned switch and of an
#           unplanned removal (debug unplug) of the fast device.
# all       every mode above.
#
# BENCH_SECS (3) measurement window, BENCH_WARM (1) warm-up seconds,
# BENCH_DIR (/tmp/vfp-bench) scratch, BENCH_FLOWS ("1 1000 100000 1000000"),
# BENCH_APP (target/release/pmd-app) the build measured, to A/B two commits.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-all}
ROUNDS=${2:-3}
WARM=${BENCH_WARM:-1}
SECS=${BENCH_SECS:-3}
OUT=${BENCH_DIR:-/tmp/vfp-bench}
FLOW_SET=${BENCH_FLOWS:-"1 1000 100000 1000000"}
mkdir -p "$OUT"
TEL=tests/helpers/telemetry.py
PY=/usr/bin/python3

cargo build --release -q -p pmd-app
APP=${BENCH_APP:-target/release/pmd-app}
CTL=target/release/vfpctl

EAL_COMMON=(--no-pci --log-level lib.eal:error)
if [ "$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)" -lt 512 ]; then
  echo "bench: no hugepages, using --no-huge (slower)"; EAL_COMMON+=(--no-huge -m 2048)
else
  # Hugepage files go back to the system when a process exits.
  EAL_COMMON+=(--huge-unlink)
fi
# Keep pmd-app's control thread off the forwarding core.
PIN=(taskset -c 0-1)

cleanup() { pkill -INT -f "file-prefix vfpb-" 2>/dev/null || true; }
trap cleanup EXIT

ratio() { echo "$1 $2" | awk '{ printf "%.3f", ($2 > 0 ? $1 / $2 : 0) }'; }
mpps() { echo "$1" | awk '{ printf "%.2f", $1 / 1e6 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }

# stop PID: SIGINT and wait.
stop() { kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# measure PREFIX PORT: pps of the port's opackets after the warm-up.
measure() {
  local prefix=$1 port=$2
  sleep "$WARM"
  $PY $TEL "$prefix" rate "$port" "$SECS" opackets
}

# testpmd_run MODE PCAP MBUFS MBUF_SIZE -> pps
testpmd_run() {
  local fmode=$1 pcap=$2 nmb=$3 msz=$4
  dpdk-testpmd "${EAL_COMMON[@]}" -l 0-1 --file-prefix vfpb-tp \
    --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev net_null0,no-rx=1 -- \
    --forward-mode="$fmode" --no-flush-rx --total-num-mbufs="$nmb" --mbuf-size="$msz" \
    -a --stats-period 100 </dev/null >"$OUT/testpmd.log" 2>&1 &
  local pid=$!
  $PY $TEL vfpb-tp wait 120 >/dev/null
  measure vfpb-tp 1
  stop $pid
}

# app_start PCAP MBUFS MBUF_SIZE ARGS... (sets APP_PID)
app_start() {
  local pcap=$1 nmb=$2 msz=$3; shift 3
  "${PIN[@]}" "$APP" "${EAL_COMMON[@]}" -l 1 --file-prefix vfpb-app \
    --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev net_null0,no-rx=1 "${EXTRA_VDEV[@]}" -- \
    --mbufs "$nmb" --mbuf-size "$msz" --idle-sleep-us 0 --stats-period 0 "$@" >"$OUT/pmd-app.log" 2>&1 &
  APP_PID=$!
  $PY $TEL vfpb-app wait 120 >/dev/null
}
EXTRA_VDEV=()

bench_forward() {
  local pcap="$OUT/flows1.pcap" a=() b=() r=() i
  $PY scripts/gen-flows.py "$pcap" 1 4096
  echo "== forward: plain forwarding, 64 B, net_pcap -> net_null"
  for i in $(seq "$ROUNDS"); do
    b+=("$(testpmd_run io "$pcap" 65536 2176)")
    app_start "$pcap" 65535 2176 --no-control-socket
    a+=("$(measure vfpb-app 1)"); stop $APP_PID
    r+=("$(ratio "${a[-1]}" "${b[-1]}")")
    echo "  round $i: pmd-app $(mpps "${a[-1]}") Mpps  testpmd io $(mpps "${b[-1]}") Mpps  ratio ${r[-1]}"
  done
  echo "forward: median ratio pmd-app/testpmd(io) = $(median "${r[@]}") (goal >= 0.9)"
}

policy_file() {
  local f="$OUT/bench-policy.toml"
  # 20 SNAT addresses x 64,512 ports: room for 1M flows.
  $PY scripts/gen-bench-policy.py --snat-addrs 20 >"$f"
  echo "$f"
}

bench_pipeline() {
  local pol; pol=$(policy_file)
  echo "== pipeline: 1,000 ACL rules + SNAT + VXLAN encap, 64 B UDP, established flows"
  local n
  for n in $FLOW_SET; do
    local count=$(( n > 4096 ? n : 4096 ))
    local pcap="$OUT/flows$n.pcap" nmb=$(( count + 32768 )) a=() b=() r=() c=() i
    [ -s "$pcap" ] || $PY scripts/gen-flows.py "$pcap" "$n" "$count"
    for i in $(seq "$ROUNDS"); do
      b+=("$(testpmd_run macswap "$pcap" "$nmb" 512)")
      app_start "$pcap" "$nmb" 512 --no-control-socket --policy "$pol" --max-flows $(( n + 65536 )) \
        --vport name=vm,fast=net_pcap0,role=vm --vport name=wan,fast=net_null0,role=net
      # Established: every flow created before the window opens.
      $PY $TEL vfpb-app until flows_created "$n" 300 || true
      a+=("$(measure vfpb-app 1)")
      c+=("$($PY $TEL vfpb-app cycles 1)")
      stop $APP_PID
      r+=("$(ratio "${a[-1]}" "${b[-1]}")")
      echo "  $n flows, round $i: pmd-app $(mpps "${a[-1]}") Mpps (${c[-1]} cycles/pkt)  testpmd macswap $(mpps "${b[-1]}") Mpps  ratio ${r[-1]}"
    done
    echo "pipeline $n flows: median ratio pmd-app/testpmd(macswap) = $(median "${r[@]}"), median $(mpps "$(median "${a[@]}")") Mpps, $(median "${c[@]}") cycles/pkt"
  done
  echo "  (goals: >= 0.6 at 1k flows, >= 0.4 at 1M flows)"
}

bench_newflows() {
  local pol; pol=$(policy_file)
  local n=1000000 pcap="$OUT/flows1000000.pcap" r=() i
  [ -s "$pcap" ] || $PY scripts/gen-flows.py "$pcap" "$n"
  echo "== newflows: every packet opens a flow (1M distinct), 1,000 ACL rules + SNAT + encap"
  for i in $(seq "$ROUNDS"); do
    app_start "$pcap" $(( n + 32768 )) 512 --no-control-socket --policy "$pol" --max-flows $(( n + 65536 )) \
      --vport name=vm,fast=net_pcap0,role=vm --vport name=wan,fast=net_null0,role=net
    r+=("$($PY $TEL vfpb-app cps 100000 900000 300)")
    stop $APP_PID
    echo "  round $i: $(mpps "${r[-1]}") M new flows/s"
  done
  echo "newflows: median $(mpps "$(median "${r[@]}")") M flows/s per lcore (goal >= 1)"
}

# switch_took VPORT-CAUSE-SUBSTRING: took_us of the last switch whose cause matches.
switch_took() {
  "$CTL" --socket "$OUT/ctl.sock" --json stats |
    $PY -c 'import json,sys; s=[e for e in json.load(sys.stdin)["switches"] if sys.argv[1] in e["cause"]]; print(s[-1]["took_us"] if s else -1)' "$1"
}

bench_paths() {
  local pol; pol=$(policy_file)
  local pcap="$OUT/flows1000.pcap" tap="vfpbtap$$" f=() s=() p=() u=() i
  [ -s "$pcap" ] || $PY scripts/gen-flows.py "$pcap" 1000 4096
  echo "== paths: full pipeline (1k flows) on the fast path (net_null) vs the soft path (net_tap)"
  EXTRA_VDEV=(--vdev "net_tap0,iface=$tap")
  for i in $(seq "$ROUNDS"); do
    app_start "$pcap" 40960 512 --control-socket "$OUT/ctl.sock" --policy "$pol" \
      --vport name=vm,fast=net_pcap0,role=vm --vport name=wan,fast=net_null0,soft=net_tap0,role=net
    ip link set "$tap" up 2>/dev/null || true
    f+=("$(measure vfpb-app 1)")
    "$CTL" --socket "$OUT/ctl.sock" switch wan soft >/dev/null
    s+=("$(measure vfpb-app 2)")
    p+=("$(switch_took command)")
    "$CTL" --socket "$OUT/ctl.sock" switch wan auto >/dev/null
    "$CTL" --socket "$OUT/ctl.sock" debug unplug net_null0 >/dev/null
    u+=("$(switch_took removed)")
    "$CTL" --socket "$OUT/ctl.sock" debug plug net_null0 no-rx=1 >/dev/null || true
    stop $APP_PID
    echo "  round $i: fast $(mpps "${f[-1]}") Mpps  soft $(mpps "${s[-1]}") Mpps  ratio soft/fast $(ratio "${s[-1]}" "${f[-1]}")  planned switch ${p[-1]} us  unplanned ${u[-1]} us"
  done
  EXTRA_VDEV=()
  echo "paths: median fast $(mpps "$(median "${f[@]}")") Mpps, soft $(mpps "$(median "${s[@]}")") Mpps; switch: planned $(median "${p[@]}") us, unplanned $(median "${u[@]}") us"
  echo "  (switch time = decision until every worker transmits on the new path; rx never stops)"
}

case "$MODE" in
  forward) bench_forward ;;
  pipeline) bench_pipeline ;;
  newflows) bench_newflows ;;
  paths) bench_paths ;;
  all) bench_forward; bench_pipeline; bench_newflows; bench_paths ;;
  *) echo "unknown mode $MODE (forward | pipeline | newflows | paths | all)"; exit 2 ;;
esac
