#!/usr/bin/python3
"""Puts frames on a kernel interface and captures what comes out of another,
with plain AF_PACKET sockets (independent of DPDK and of vfp-core). Used to
drive the app through net_tap and net_af_packet devices from the kernel side.

  wire.py xfer --send IF --recv IF --pcap IN --out OUT [--timeout S] [--grace S]

Opens a capture socket on --recv first, sends every frame of IN on --send,
then keeps the received frames whose source MAC is one of IN's source MACs
(the kernel's own frames - router solicitations, MLD, ARP replies - carry
the interface's MAC and are left out) until as many as were sent arrived or
--timeout passed, and --grace more seconds to catch duplicates. Writes them
to OUT (pcap) and prints "sent N received M". Exit 0 even when M != N: the
caller compares.

Linux hands VLAN tags to AF_PACKET readers out of band (PACKET_AUXDATA);
they are put back into the frame so OUT holds the frames as on the wire.
"""
import argparse
import select
import socket
import struct
import sys
import time

from scapy.all import rdpcap, conf

conf.verb = 0
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata


def with_vlan(frame, anc):
    for level, kind, data in anc:
        if level != SOL_PACKET or kind != PACKET_AUXDATA or len(data) < AUXDATA.size:
            continue
        status, _, _, _, _, tci, tpid = AUXDATA.unpack_from(data)
        if status & TP_STATUS_VLAN_VALID or tci:
            if not status & TP_STATUS_VLAN_TPID_VALID:
                tpid = 0x8100
            return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
    return frame


def write_pcap(path, frames):
    """Classic pcap, Ethernet link type, the bytes exactly as captured."""
    now = time.time()
    with open(path, "wb") as f:
        f.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for fr in frames:
            f.write(struct.pack("=IIII", int(now), int(now % 1 * 1e6), len(fr), len(fr)))
            f.write(fr)


def xfer(a):
    frames = [bytes(p) for p in rdpcap(a.pcap)]
    macs = {f[6:12] for f in frames}
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    rx.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind((a.recv, 0))
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind((a.send, 0))
    got = []
    deadline = time.monotonic() + a.timeout

    def poll(until):
        while True:
            left = until - time.monotonic()
            if left <= 0 or not select.select([rx], [], [], left)[0]:
                return
            data, anc, _, addr = rx.recvmsg(65536, 1024)
            if addr[2] == PACKET_OUTGOING or data[6:12] not in macs:
                continue
            got.append(with_vlan(data, anc))
            if len(got) >= len(frames) and until == deadline:
                return

    for f in frames:
        tx.send(f)
        # Read as we go so a small socket buffer never drops captures.
        poll(time.monotonic())
    if len(got) < len(frames):
        poll(deadline)
    poll(time.monotonic() + a.grace)
    write_pcap(a.out, got)
    print("sent %d received %d" % (len(frames), len(got)))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["xfer"])
    ap.add_argument("--send", required=True)
    ap.add_argument("--recv", required=True)
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--grace", type=float, default=0.3)
    return xfer(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
