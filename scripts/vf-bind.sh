#!/usr/bin/env bash
# Binds an SR-IOV virtual function to vfio-pci for pmd-app's fast path, and
# gives it back to its kernel driver. A thin, careful wrapper around DPDK's
# dpdk-devbind.py. Run scripts/vf-bind.sh --help for usage.
set -euo pipefail

PROG=vf-bind.sh
# Test hooks: a fake sysfs tree and state directory. With a fake sysfs only
# --dry-run is allowed, so a test can never touch a real device.
SYS=${VF_BIND_SYSFS:-/sys}
STATE=${VF_BIND_STATE:-/var/run/vfp/vf-bind}
DEVBIND=${VF_BIND_DEVBIND:-dpdk-devbind.py}

usage() {
  cat <<EOF
Usage: $PROG COMMAND [ARGS] [--dry-run] [--force]

Commands:
  status                 network devices and their drivers (dpdk-devbind.py),
                         SR-IOV PFs and their VFs, IOMMU and vfio state
  bind PCI               load vfio-pci and bind the VF at PCI (0000:03:00.1 or
                         03:00.1) to it; its kernel driver is remembered
  unbind PCI [DRIVER]    give the device back to DRIVER, by default the kernel
                         driver it had before 'bind'

Options:
  --dry-run              check everything, print the commands, change nothing
  --force                also bind a device that is not an SR-IOV VF, or a
                         Mellanox VF, or one Linux is using (passed on to
                         dpdk-devbind.py: this can cut the machine off the network)
  -h, --help             this text

Needs root for bind and unbind. vfio-pci needs an IOMMU; in a VM without a
virtual IOMMU (Azure, most KVM guests) enable vfio's no-IOMMU mode first:
  modprobe vfio enable_unsafe_noiommu_mode=1
  (or: echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode)
Mellanox VFs (mlx4_core / mlx5_core, Azure Accelerated Networking) are not
bound at all: DPDK's mlx4/mlx5 drivers work beside the kernel driver; give
pmd-app the VF with -a PCI and keep it bound to its kernel driver.

Exit status: 0 done, 1 refused or failed (the reason is printed), 2 usage.
EOF
}

die() { echo "$PROG: error: $*" >&2; exit 1; }
usage_error() { echo "$PROG: $*" >&2; echo "Try '$PROG --help'." >&2; exit 2; }

DRY=0
FORCE=0
ARGS=()
for a in "$@"; do
  case "$a" in
    -h|--help) usage; exit 0 ;;
    --dry-run) DRY=1 ;;
    --force) FORCE=1 ;;
    -*) usage_error "unknown option '$a'" ;;
    *) ARGS+=("$a") ;;
  esac
done
[ ${#ARGS[@]} -ge 1 ] || usage_error "missing command (status, bind or unbind)"
CMD=${ARGS[0]}

if [ "$SYS" != /sys ] && [ "$DRY" -ne 1 ] && [ "$CMD" != status ]; then
  die "VF_BIND_SYSFS is set (a test tree): only --dry-run is allowed"
fi

run() {
  if [ "$DRY" -eq 1 ]; then
    echo "would run: $*"
  else
    echo "+ $*"
    "$@"
  fi
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "'$CMD' must be run as root (it rebinds drivers through /sys)"
}

need_devbind() {
  command -v "$DEVBIND" >/dev/null 2>&1 || die "$DEVBIND not found: install DPDK's tools (scripts/setup.sh installs the dpdk package)"
}

# Normalises a PCI address to DDDD:BB:DD.F; exits 2 when it is not one.
pci_addr() {
  local a=${1,,}
  if [[ $a =~ ^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]]; then a="0000:$a"; fi
  [[ $a =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] ||
    usage_error "'$1' is not a PCI address (expected DDDD:BB:DD.F, e.g. 0000:03:00.1)"
  echo "$a"
}

dev_dir() { echo "$SYS/bus/pci/devices/$1"; }

driver_of() { # PCI -> current driver name or empty
  local l
  l="$(dev_dir "$1")/driver"
  if [ -L "$l" ]; then basename "$(readlink "$l")"; fi
}

iommu_state() { # prints: groups|noiommu|none
  local groups=0
  if [ -d "$SYS/kernel/iommu_groups" ]; then
    groups=$(find "$SYS/kernel/iommu_groups" -mindepth 1 -maxdepth 1 | wc -l)
  fi
  local noiommu="$SYS/module/vfio/parameters/enable_unsafe_noiommu_mode"
  if [ "$groups" -gt 0 ]; then echo "groups:$groups"
  elif [ -r "$noiommu" ] && [[ $(cat "$noiommu") == [Yy1]* ]]; then echo noiommu
  else echo none
  fi
}

cmd_status() {
  echo "== network devices (dpdk-devbind.py --status-dev net)"
  if [ "$SYS" != /sys ]; then
    echo "  (skipped: VF_BIND_SYSFS is a test tree)"
  elif command -v "$DEVBIND" >/dev/null 2>&1; then
    # lspci, which it runs, complains on machines without kmod's data.
    "$DEVBIND" --status-dev net 2> >(grep -v 'libkmod' >&2)
  else
    echo "  ($DEVBIND not available)"
  fi
  echo
  echo "== SR-IOV"
  local found=0 d
  for d in "$SYS"/bus/pci/devices/*; do
    [ -e "$d" ] || continue
    if [ -r "$d/sriov_totalvfs" ]; then
      found=1
      echo "  PF $(basename "$d") driver=$(driver_of "$(basename "$d")") VFs $(cat "$d/sriov_numvfs" 2>/dev/null || echo ?)/$(cat "$d/sriov_totalvfs")"
    fi
    if [ -L "$d/physfn" ]; then
      found=1
      echo "  VF $(basename "$d") of $(basename "$(readlink "$d/physfn")") driver=$(driver_of "$(basename "$d")")"
    fi
  done
  [ "$found" -eq 1 ] || echo "  no SR-IOV PF or VF on this machine"
  echo
  echo "== vfio"
  case $(iommu_state) in
    groups:*) echo "  IOMMU: on ($(iommu_state | cut -d: -f2) groups)" ;;
    noiommu) echo "  IOMMU: none; vfio no-IOMMU mode is on (unsafe, fine in a VM)" ;;
    none) echo "  IOMMU: none and vfio no-IOMMU mode off: binding to vfio-pci will fail (see --help)" ;;
  esac
  if [ -d "$SYS/bus/pci/drivers/vfio-pci" ]; then echo "  vfio-pci: loaded"; else echo "  vfio-pci: not loaded ('bind' loads it)"; fi
  if [ -d "$STATE" ] && compgen -G "$STATE/*.driver" >/dev/null; then
    echo "  bound by $PROG:"
    local f
    for f in "$STATE"/*.driver; do echo "    $(basename "$f" .driver) (was $(cat "$f"))"; done
  fi
}

check_device() { # PCI -> dies unless it is a network device we may bind
  local pci=$1 d
  d=$(dev_dir "$pci")
  [ -d "$d" ] || die "no PCI device $pci (see '$PROG status' for the machine's devices)"
  local class
  class=$(cat "$d/class" 2>/dev/null || echo 0x000000)
  [[ $class == 0x02* ]] || [ "$FORCE" -eq 1 ] || die "$pci is not a network device (class $class); --force to bind it anyway"
  if [ ! -L "$d/physfn" ] && [ "$FORCE" -eq 0 ]; then
    die "$pci is not an SR-IOV VF (no physfn): binding a PF or the VM's synthetic NIC can cut the machine off; --force to bind it anyway"
  fi
  local drv
  drv=$(driver_of "$pci")
  if [[ $drv == mlx4_core || $drv == mlx5_core ]] && [ "$FORCE" -eq 0 ]; then
    die "$pci is a Mellanox VF ($drv): DPDK's mlx driver uses it beside the kernel driver, so leave it bound and give pmd-app '-a $pci'; --force to bind it to vfio-pci anyway"
  fi
}

load_vfio() {
  if [ -d "$SYS/bus/pci/drivers/vfio-pci" ]; then return; fi
  if [ "$DRY" -eq 1 ]; then echo "would run: modprobe vfio-pci"; return; fi
  command -v modprobe >/dev/null 2>&1 || die "vfio-pci is not loaded and modprobe is missing (install kmod; the kernel needs the vfio-pci module)"
  run modprobe vfio-pci || die "cannot load vfio-pci (is the module installed for kernel $(uname -r)?)"
  [ -d "$SYS/bus/pci/drivers/vfio-pci" ] || die "vfio-pci loaded but $SYS/bus/pci/drivers/vfio-pci is missing"
}

cmd_bind() {
  [ ${#ARGS[@]} -eq 2 ] || usage_error "bind takes one PCI address"
  local pci
  pci=$(pci_addr "${ARGS[1]}")
  [ "$DRY" -eq 1 ] || need_root
  check_device "$pci"
  local drv
  drv=$(driver_of "$pci")
  if [ "$drv" = vfio-pci ]; then echo "$pci is already bound to vfio-pci"; return; fi
  if [ "$(iommu_state)" = none ]; then
    die "no IOMMU and vfio's no-IOMMU mode is off, so vfio-pci cannot take $pci.
  On a host: enable the IOMMU on the kernel command line (intel_iommu=on iommu=pt, or amd_iommu=on).
  In a VM without a virtual IOMMU: modprobe vfio enable_unsafe_noiommu_mode=1
  (or: echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode), then retry."
  fi
  need_devbind
  load_vfio
  if [ -n "$drv" ]; then
    if [ "$DRY" -eq 1 ]; then echo "would record: $pci was bound to $drv"
    else mkdir -p "$STATE" && echo "$drv" > "$STATE/$pci.driver"; fi
  fi
  local force=()
  [ "$FORCE" -eq 1 ] && force=(--force)
  run "$DEVBIND" "${force[@]}" --bind=vfio-pci "$pci" || die "dpdk-devbind.py could not bind $pci (see its message above)"
  echo "$pci bound to vfio-pci${drv:+ (was $drv)}; give it to pmd-app with -a $pci"
}

cmd_unbind() {
  if [ ${#ARGS[@]} -lt 2 ] || [ ${#ARGS[@]} -gt 3 ]; then
    usage_error "unbind takes a PCI address and optionally a driver"
  fi
  local pci
  pci=$(pci_addr "${ARGS[1]}")
  [ "$DRY" -eq 1 ] || need_root
  [ -d "$(dev_dir "$pci")" ] || die "no PCI device $pci (see '$PROG status' for the machine's devices)"
  local to=${ARGS[2]:-}
  if [ -z "$to" ] && [ -r "$STATE/$pci.driver" ]; then to=$(cat "$STATE/$pci.driver"); fi
  [ -n "$to" ] || die "no kernel driver recorded for $pci: name it, e.g. '$PROG unbind $pci iavf' (or mlx5_core, ixgbevf, ...)"
  local drv
  drv=$(driver_of "$pci")
  if [ "$drv" = "$to" ]; then echo "$pci is already bound to $to"; return; fi
  need_devbind
  run "$DEVBIND" --bind="$to" "$pci" || die "dpdk-devbind.py could not bind $pci to $to (see its message above)"
  [ "$DRY" -eq 1 ] || rm -f "$STATE/$pci.driver"
  echo "$pci given back to $to"
}

case "$CMD" in
  status) [ ${#ARGS[@]} -eq 1 ] || usage_error "status takes no argument"; cmd_status ;;
  bind) cmd_bind ;;
  unbind) cmd_unbind ;;
  *) usage_error "unknown command '$CMD' (status, bind or unbind)" ;;
esac
