#!/usr/bin/env bash
# The main job on an embedded default, as root:
#
#   scripts/demo.sh
#
# Builds pmd-app, generates VM traffic with scapy (tests/helpers/traffic.py
# vm-flows: UDP, DNS, TCP and ICMP flows from a VM in 10.1.0.0/24), and runs
# pmd-app on two virtual devices with the example policy
# examples/acl-snat-vxlan.toml:
#
#   vport vm  (role vm)  net_pcap, replaying the traffic forever (infinite_rx)
#   vport wan (role net) net_null, a sink
#
# Every flow is allowed by the ACL, SNAT'd to 203.0.113.10 and
# VXLAN-encapsulated (VNI 5001) towards wan. Counters per port and per
# lcore are printed every second until Ctrl-C.
#
# Environment: DEMO_SECS=N stops after N seconds; DEMO_LCORES (default 0:
# one worker); DEMO_FLOWS (default 256); DEMO_DIR (default /tmp/vfp-demo)
# holds the generated pcaps. net_pcap has no RSS, so with several workers
# (DEMO_LCORES=0-1) each reads its own pcap and hands the packets of flows
# another worker owns over in software: the counters then show that
# hand-off, and its drops when the endless replay outruns it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: run as root (DPDK needs it for hugepages and its runtime files)" >&2
  exit 1
fi
PY=/usr/bin/python3
bash scripts/setup.sh   # packages and hugepages; quick when all is there

echo "demo: building pmd-app (release)"
cargo build --release -q -p pmd-app
APP=target/release/pmd-app

DIR=${DEMO_DIR:-/tmp/vfp-demo}
FLOWS=${DEMO_FLOWS:-256}
DEMO_LCORES=${DEMO_LCORES:-0}
# One rx queue of the vm port per worker lcore, each replaying its own
# half of the flows.
case "$DEMO_LCORES" in *[-,]*) QUEUES=2 ;; *) QUEUES=1 ;; esac
mkdir -p "$DIR"
rx=""
for q in $(seq 0 $((QUEUES - 1))); do
  $PY tests/helpers/traffic.py vm-flows "$DIR/vm-$q.pcap" --flows "$FLOWS" --count $((FLOWS * 8)) --seed $((q + 1))
  rx+="rx_pcap=$DIR/vm-$q.pcap,"
done
echo "demo: $QUEUES x $((FLOWS * 8)) packets of $FLOWS VM flows in $DIR"

EAL=(--no-pci --file-prefix vfp-demo -l "$DEMO_LCORES" --log-level lib.eal:error)
free_hp=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
if [ "$free_hp" -ge 512 ] && grep -q hugetlbfs /proc/mounts; then
  echo "demo: on 2 MB hugepages ($free_hp free)"
  # --huge-unlink: the pages go back to the system when the app exits
  # instead of staying behind as files in the hugetlbfs mount.
  EAL+=(-m 1024 --huge-unlink)
else
  echo "demo: no free hugepages (scripts/setup.sh reserves them): --no-huge"
  EAL+=(--no-huge -m 1024)
fi
EAL+=(--vdev "net_pcap0,${rx}infinite_rx=1" --vdev "net_null0,no-rx=1")

APP_ARGS=(--vport "name=vm,fast=net_pcap0,role=vm" --vport "name=wan,fast=net_null0,role=net"
          --policy examples/acl-snat-vxlan.toml --stats-period 1)
if [ -n "${DEMO_SECS:-}" ]; then APP_ARGS+=(--duration "$DEMO_SECS"); fi

echo "demo: $APP ${EAL[*]} -- ${APP_ARGS[*]}"
echo "demo: Ctrl-C to stop; meanwhile, from another shell:"
echo "demo:   $(dirname "$APP")/vfpctl --prefix vfp-demo status   (or: stats, flows list, top)"
exec "$APP" "${EAL[@]}" -- "${APP_ARGS[@]}"
