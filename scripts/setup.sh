#!/usr/bin/env bash
# Installs what a fresh machine lacks to build, run and test vfp-dataplane,
# and configures 2 MB hugepages when it can. Idempotent: safe to re-run.
set -euo pipefail

log() { printf 'setup: %s\n' "$*"; }

need_pkgs=(dpdk dpdk-dev libdpdk-dev libclang-dev clang pkg-config libpcap-dev
           tshark python3-scapy iproute2 ethtool iputils-ping procps bc)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing packages: ${missing[*]} (run as root to install them)"; exit 1
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "all packages present"
fi

pkg-config --exists libdpdk || { log "pkg-config cannot find libdpdk after install"; exit 1; }
log "DPDK $(pkg-config --modversion libdpdk)"

# Hugepages: 1024 x 2 MB = 2 GiB. Not fatal when impossible: the app and the
# tests also run with --no-huge.
hp=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ -w "$hp" ]; then
  cur=$(cat "$hp")
  if [ "$cur" -lt 1024 ]; then echo 1024 > "$hp" 2>/dev/null || true; fi
  cur=$(cat "$hp")
  if [ "$cur" -ge 512 ]; then
    mkdir -p /dev/hugepages
    mountpoint -q /dev/hugepages || mount -t hugetlbfs none /dev/hugepages || log "could not mount hugetlbfs on /dev/hugepages"
    log "hugepages: $cur x 2 MB"
  else
    log "hugepages: only $cur x 2 MB could be reserved; use --no-huge -m 512"
  fi
else
  log "hugepages: $hp not writable (not root or no support); use --no-huge -m 512"
fi
