#!/usr/bin/env python3
"""Writes a pcap of outbound UDP flows for the benchmark, fast (raw bytes,
no scapy): FLOWS distinct 5-tuples from 10.1.0.0/16 to 198.51.100.0/24
(what examples/bench-1000-rules.toml allows), COUNT packets of SIZE bytes
(FCS included, as testpmd counts), flows interleaved round-robin.

  gen-flows.py OUT.pcap FLOWS [COUNT] [SIZE]      COUNT defaults to FLOWS
"""
import struct
import sys


def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(f, size):
    src = bytes([10, 1, (f >> 8) & 0xFF, f & 0xFF])
    dst = bytes([198, 51, 100, (f >> 16) & 0xFF])
    sport = 1024 + (f >> 24) * 7 + (f % 7)
    plen = max(size - 4 - 14 - 20 - 8, 0)
    udp = struct.pack("!HHHH", sport, 4000, 8 + plen, 0) + bytes(plen)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    eth = bytes.fromhex("02000000fe00" "020000000104") + b"\x08\x00"
    return eth + ip + udp


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, flows = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else flows
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    if not 1 <= flows <= 1 << 24:
        sys.exit("FLOWS must be 1 .. 16777216")
    with open(out, "wb") as w:
        w.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        cache = {}
        for i in range(count):
            f = i % flows
            b = cache.get(f) if flows <= 4096 else None
            if b is None:
                b = frame(f, size)
                if flows <= 4096:
                    cache[f] = b
            w.write(struct.pack("<IIII", 0, 0, len(b), len(b)))
            w.write(b)


if __name__ == "__main__":
    main()
