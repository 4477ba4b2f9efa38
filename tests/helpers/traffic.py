#!/usr/bin/python3
"""Builds test and benchmark traffic with scapy (an encoder independent of
vfp-core's parser). Run with Debian's /usr/bin/python3 (python3-scapy).

  traffic.py mixed OUT.pcap [--count N] [--seed S]     varied protocols and sizes
  traffic.py udp-flows OUT.pcap --flows F [--count N] [--size 64]
  traffic.py vm-flows OUT.pcap --flows F [--count N] [--seed S]
                                                        VM-originated IPv4 flows from 10.1.0.0/24
                                                        (UDP, DNS, TCP, ICMP echo) that
                                                        examples/acl-snat-vxlan.toml allows
  traffic.py udp-frag OUT.pcap --sport P --ip-id I [--later]
                                                        the first fragment (or, --later, the
                                                        rest) of a 2,000-byte UDP datagram
                                                        10.1.0.4:P -> 198.51.100.7:53
  traffic.py send IFACE IN.pcap [--loop]                sendp every packet of a pcap (--loop: again
                                                        and again until killed)
"""
import argparse
import random
import sys

from scapy.all import (ARP, ICMP, IP, UDP, TCP, Dot1Q, Ether, IPv6, Raw,
                       ICMPv6EchoRequest, PcapWriter, fragment, rdpcap, sendp, conf)

conf.verb = 0
VM_MAC = "02:00:00:00:00:01"
GW_MAC = "02:00:00:00:00:02"


def mixed(count, seed):
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        kind = i % 7
        pay = Raw(bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 200))))
        eth = Ether(src=VM_MAC, dst=GW_MAC)
        if kind == 0:
            p = eth / IP(src="10.0.0.1", dst="192.0.2.%d" % (i % 200 + 1)) / UDP(sport=1024 + i, dport=53) / pay
        elif kind == 1:
            p = eth / IP(src="10.0.0.2", dst="198.51.100.7") / TCP(sport=40000 + i, dport=443, flags="S", seq=i) / pay
        elif kind == 2:
            p = eth / IP(src="10.0.0.3", dst="203.0.113.9") / ICMP(type=8, id=i, seq=i) / pay
        elif kind == 3:
            p = eth / Dot1Q(vlan=100 + i % 10) / IP(src="10.0.1.1", dst="10.0.2.2") / UDP(sport=5000, dport=6000 + i) / pay
        elif kind == 4:
            p = eth / IPv6(src="fd00::1", dst="fd00::%x" % (i + 2)) / UDP(sport=7000, dport=8000) / pay
        elif kind == 5:
            p = Ether(src=VM_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.%d" % (i % 250 + 2))
        else:
            p = eth / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest(id=i, seq=i) / pay
        out.append(p)
    return out


def udp_flows(flows, count, size):
    pkts = []
    for i in range(count):
        f = i % flows
        p = (Ether(src=VM_MAC, dst=GW_MAC) /
             IP(src="10.%d.%d.%d" % (f >> 16 & 0xff, f >> 8 & 0xff, f & 0xff), dst="192.0.2.1") /
             UDP(sport=1024 + (f % 60000), dport=4000))
        pad = size - 4 - len(p)  # size counts the FCS, as testpmd does
        if pad > 0:
            p = p / Raw(b"\0" * pad)
        pkts.append(p)
    return pkts


def vm_flows(flows, count, seed):
    """Round-robin over F flows of a VM in 10.1.0.0/24 towards documentation
    addresses: UDP (most), DNS (counted by acl rule 101), TCP (a SYN, then
    data) and ICMP echo. None goes to 169.254.0.0/16 (denied by rule 100)."""
    rnd = random.Random(seed)
    spec = []
    for f in range(flows):
        src = "10.1.0.%d" % (f % 253 + 2)
        dst = "198.51.100.%d" % rnd.randrange(1, 255)
        kind = rnd.choice("uuuuuudttti")
        spec.append((kind, src, dst, 20000 + f, rnd.randrange(0, 900)))
    pkts = []
    for i in range(count):
        kind, src, dst, sport, size = spec[i % flows]
        n = i // flows
        eth = Ether(src=VM_MAC, dst=GW_MAC)
        pay = Raw(bytes((sport + n + j) & 0xff for j in range(size)))
        if kind == "u":
            p = eth / IP(src=src, dst=dst) / UDP(sport=sport, dport=443) / pay
        elif kind == "d":
            p = eth / IP(src=src, dst="198.51.100.53") / UDP(sport=sport, dport=53) / Raw(b"\x12\x34" + bytes(30))
        elif kind == "t":
            flags = "S" if n == 0 else "PA"
            p = eth / IP(src=src, dst=dst) / TCP(sport=sport, dport=443, flags=flags, seq=1000 + n) / (pay if n else b"")
        else:
            p = eth / IP(src=src, dst=dst) / ICMP(type=8, id=sport & 0xffff, seq=n & 0xffff) / pay
        pkts.append(p)
    return pkts


def udp_frag(sport, ip_id, later):
    d = (IP(src="10.1.0.4", dst="198.51.100.7", id=ip_id) /
         UDP(sport=sport, dport=53) / Raw(bytes(range(250)) * 8))
    frags = fragment(d, fragsize=1480)
    return [Ether(src=VM_MAC, dst=GW_MAC) / f for f in (frags[1:] if later else frags[:1])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["mixed", "udp-flows", "vm-flows", "udp-frag", "send"])
    ap.add_argument("args", nargs="+")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flows", type=int, default=1)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--sport", type=int, default=5353)
    ap.add_argument("--ip-id", type=int, default=1)
    ap.add_argument("--later", action="store_true")
    ap.add_argument("--loop", action="store_true")
    a = ap.parse_args()
    if a.kind == "send":
        iface, pcap = a.args
        # --loop: over and over until killed.
        sendp(rdpcap(pcap), iface=iface, loop=1 if a.loop else 0)
        return 0
    out = a.args[0]
    if a.kind == "mixed":
        pkts = mixed(a.count, a.seed)
    elif a.kind == "vm-flows":
        pkts = vm_flows(a.flows, a.count, a.seed)
    elif a.kind == "udp-frag":
        pkts = udp_frag(a.sport, a.ip_id, a.later)
    else:
        pkts = udp_flows(a.flows, a.count, a.size)
    w = PcapWriter(out, sync=False)
    for p in pkts:
        w.write(p)
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
