#!/usr/bin/python3
"""Traffic for the pipeline integration tests (pmd-app/tests/pipeline.rs),
built and decoded with scapy: an encoder independent of vfp-core. Run with
Debian's /usr/bin/python3 (python3-scapy).

  pipeline.py gen SCENARIO DIR
      Writes DIR/vm_in.pcap and DIR/wan_in.pcap (what the app reads on the
      vm and wan vports) and DIR/fates.json: for every input packet, in
      file order, where it must come out ("vm", "wan") or the drop reason
      it must be counted under ("any" when unknown). Scenarios: acl, ttl,
      malformed, dnat, snat-exhaust, jumbo, vxlan-sizes, mutated.

  pipeline.py drive SCENARIO DIR --vm IFACE --wan IFACE [--timeout S]
      Talks to a running pmd-app through the kernel side of two
      interfaces (taps or veth peers), step by step: each phase sends
      packets and waits (bounded) until every packet expected out came out
      on the right side before the next phase sends its replies, so the
      order of a connection is never left to chance. Scenarios: stateful,
      snat (with ICMP errors back), vxlan, dnat, multiq. Writes DIR/sent_vm.pcap, sent_wan.pcap
      (what it sent on each side), recv_vm.pcap, recv_wan.pcap (everything
      the app transmitted on each side, in arrival order) and DIR/log.json
      (for every tagged packet: where it was sent and its index in that
      sent pcap, where it was expected and where and at which index it
      arrived). Exits 1, after writing what it has, when an expectation
      fails.

Every packet carries a tag "<Tnnnnn>" in its payload, which no rewrite,
encapsulation or decapsulation touches, so a packet is recognised on the
far side whatever the app did to its headers.
"""
import argparse
import json
import logging
import os
import random
import re
import select
import socket
import struct
import sys
import time

from scapy.all import (ARP, ICMP, IP, UDP, TCP, VXLAN, Dot1Q, Ether, IPv6, Raw,
                       ICMPv6EchoRequest, IPv6ExtHdrDestOpt, PcapWriter, conf)

conf.verb = 0
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

VM_MAC = "02:00:00:00:01:04"     # the VM
VM_GW_MAC = "02:00:00:00:01:01"  # what the VM believes is its gateway
NET_MAC = "02:00:00:00:02:01"    # a router on the network side
NET_GW_MAC = "02:00:00:00:02:02"
VM_IP = "10.1.0.4"

TAG_RE = re.compile(rb"<T(\d{5})>")
PROBE_RE = re.compile(rb"<P(\d{5})>")
PROBE_TYPE = 0x88B5  # IEEE local experimental: not IP, so any policy lets it pass to the peer


class Tags:
    def __init__(self, start=1):
        self.n = start - 1

    def next(self):
        self.n += 1
        return self.n


def tag_bytes(t):
    return b"<T%05d>" % t


def find_tag(frame):
    m = TAG_RE.search(frame)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------
# gen: finite pcap scenarios (stateless or one-directional)
# --------------------------------------------------------------------------

class Gen:
    def __init__(self):
        self.tags = Tags()
        self.files = {"vm": [], "wan": []}
        self.fates = {"vm": [], "wan": []}

    def add(self, side, pkt, fate, tagged=True):
        if tagged:
            pkt = pkt / Raw(tag_bytes(self.tags.next()))
        self.files[side].append(bytes(pkt))
        self.fates[side].append(fate)

    def add_raw(self, side, data, fate):
        self.files[side].append(bytes(data))
        self.fates[side].append(fate)

    def write(self, d):
        for side in ("vm", "wan"):
            w = PcapWriter(os.path.join(d, "%s_in.pcap" % side), linktype=1, sync=False)
            for b in self.files[side]:
                w.write(Raw(b))
            w.close()
            # scapy writes an empty file (no header) for no packets.
            path = os.path.join(d, "%s_in.pcap" % side)
            if not self.files[side]:
                write_empty_pcap(path)
        with open(os.path.join(d, "fates.json"), "w") as f:
            json.dump({"vm_in": self.fates["vm"], "wan_in": self.fates["wan"]}, f, indent=1)


def write_empty_pcap(path):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))


def out_eth():
    return Ether(src=VM_MAC, dst=VM_GW_MAC)


def in_eth():
    return Ether(src=NET_MAC, dst=NET_GW_MAC)


def gen_acl(g):
    """Stateless ACL: every packet is the first of its own connection."""
    for r in range(3):
        p = 1000 + r * 100
        o = out_eth()
        g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10") / UDP(sport=p + 1, dport=53), "wan")
        g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10") / UDP(sport=p + 2, dport=54), "policy-deny")
        g.add("vm", o / IP(src=VM_IP, dst="192.0.2.66") / UDP(sport=p + 3, dport=53), "policy-deny")
        g.add("vm", o / IP(src="10.2.0.4", dst="192.0.2.10") / UDP(sport=p + 4, dport=53), "policy-deny")
        g.add("vm", o / IP(src=VM_IP, dst="192.0.2.11") / UDP(sport=p + 5, dport=5005), "wan")
        g.add("vm", o / IP(src=VM_IP, dst="192.0.2.11") / UDP(sport=p + 6, dport=5010), "policy-deny")
        g.add("vm", o / IP(src=VM_IP, dst="198.51.100.7") / TCP(sport=p + 7, dport=443, flags="S"), "wan")
        g.add("vm", o / IP(src=VM_IP, dst="198.51.100.7") / TCP(sport=p + 8, dport=80, flags="S"), "policy-deny")
        # Not a connection opener and no flow for it: stateful drop.
        g.add("vm", o / IP(src=VM_IP, dst="198.51.100.7") / TCP(sport=p + 9, dport=443, flags="A"), "no-flow")
        g.add("vm", Ether(src=VM_MAC, dst=VM_GW_MAC) / Dot1Q(vlan=7) / IP(src=VM_IP, dst="192.0.2.12") /
              UDP(sport=p + 10, dport=53), "wan")
        g.add("vm", o / IPv6(src="fd00::4", dst="2001:db8:1::%x" % (r + 1)) /
              ICMPv6EchoRequest(id=p + 11, seq=r), "wan")
        g.add("vm", o / IPv6(src="fd00::4", dst="2001:db8:2::1") / ICMPv6EchoRequest(id=p + 12, seq=r), "policy-deny")
        g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10") / ICMP(type=8, id=p + 13, seq=r), "policy-deny")
        # Non-IP goes to the peer untouched.
        g.add("vm", Ether(src=VM_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=VM_IP, pdst="10.1.0.%d" % (r + 1)),
              "wan", tagged=False)
        i = in_eth()
        g.add("wan", i / IP(src="198.51.100.9", dst=VM_IP) / TCP(sport=p + 21, dport=22, flags="S"), "vm")
        g.add("wan", i / IP(src="198.51.100.9", dst=VM_IP) / TCP(sport=p + 22, dport=23, flags="S"), "policy-deny")
        g.add("wan", i / IP(src="198.51.100.9", dst=VM_IP) / UDP(sport=p + 23, dport=22), "policy-deny")
        g.add("wan", i / IP(src="198.51.100.9", dst="10.1.0.5") / TCP(sport=p + 24, dport=22, flags="S"),
              "policy-deny")


def gen_ttl(g):
    o = out_eth()
    for ttl, fate in ((64, "wan"), (2, "wan"), (1, "ttl-expired"), (0, "ttl-expired"), (255, "wan")):
        g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10", ttl=ttl) / UDP(sport=2000 + ttl, dport=53), fate)
    for hl, fate in ((64, "wan"), (1, "ttl-expired"), (2, "wan")):
        g.add("vm", o / IPv6(src="fd00::4", dst="2001:db8::1", hlim=hl) / UDP(sport=3000 + hl, dport=53), fate)
    # IPv4 with options (IHL 6): the TTL is still at byte 8 of the header.
    g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10", ttl=10, options=b"\x01\x01\x01\x00") /
          UDP(sport=4000, dport=53), "wan")
    # One TCP connection: established packets take the same decrement, and
    # a packet of a known flow arriving with TTL 1 is dropped too.
    f = dict(src=VM_IP, dst="198.51.100.7")
    g.add("vm", o / IP(ttl=64, **f) / TCP(sport=5000, dport=443, flags="S", seq=1), "wan")
    g.add("vm", o / IP(ttl=1, **f) / TCP(sport=5000, dport=443, flags="A", seq=2, ack=1), "ttl-expired")
    g.add("vm", o / IP(ttl=30, **f) / TCP(sport=5000, dport=443, flags="PA", seq=2, ack=1), "wan")
    # Inbound too (dec_ttl applies both ways).
    g.add("wan", in_eth() / IP(src="198.51.100.9", dst=VM_IP, ttl=17) / UDP(sport=53, dport=6000), "vm")
    g.add("wan", in_eth() / IP(src="198.51.100.9", dst=VM_IP, ttl=1) / UDP(sport=53, dport=6001), "ttl-expired")


def gen_malformed(g):
    """Bad frames between good ones; the good ones must all come out."""
    o = out_eth()
    n = [0]

    def good():
        n[0] += 1
        g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10") / UDP(sport=7000 + n[0], dport=53), "wan")

    def bad(data, reason):
        g.add_raw("vm", data, reason)

    base = bytes(o / IP(src=VM_IP, dst="192.0.2.10") / UDP(sport=7777, dport=53) / Raw(b"<T99999>payload"))
    good()
    # IPv4 header cut short (14 + 10 bytes).
    bad(base[:24], "parse-truncated")
    good()
    # IHL 4 (< 5).
    b = bytearray(base)
    b[14] = 0x44
    bad(b, "parse-malformed")
    # IP version 5 in an IPv4 ethertype.
    b = bytearray(base)
    b[14] = 0x55
    bad(b, "parse-malformed")
    good()
    # Total length larger than the frame.
    b = bytearray(base)
    b[16:18] = (len(base) - 14 + 40).to_bytes(2, "big")
    bad(b, "parse-truncated")
    # Total length smaller than the header.
    b = bytearray(base)
    b[16:18] = (12).to_bytes(2, "big")
    bad(b, "parse-malformed")
    # IHL 15 (60-byte header) in a frame that holds fewer bytes after Ethernet.
    b = bytearray(base[:14 + 40])
    b[14] = 0x4F
    b[16:18] = (40).to_bytes(2, "big")
    bad(b, "parse-truncated")
    good()
    # UDP length below 8; UDP length past the IP payload.
    b = bytearray(base)
    b[38:40] = (4).to_bytes(2, "big")
    bad(b, "parse-malformed")
    b = bytearray(base)
    b[38:40] = (200).to_bytes(2, "big")
    bad(b, "parse-truncated")
    # TCP data offset 4; TCP header cut (IP payload of 10 bytes).
    t = bytearray(bytes(o / IP(src=VM_IP, dst="192.0.2.10") / TCP(sport=7778, dport=443, flags="S")))
    t[14 + 20 + 12] = 0x40
    bad(t, "parse-malformed")
    t = bytes(o / IP(src=VM_IP, dst="192.0.2.10", proto=6) / Raw(b"\x1e\x62\x01\xbb\x00\x00\x00\x01\x00\x00"))
    bad(t, "parse-truncated")
    good()
    # IPv6 header cut; IPv6 payload length past the frame.
    v6 = bytes(o / IPv6(src="fd00::4", dst="2001:db8::1") / UDP(sport=7779, dport=53) / Raw(b"x" * 8))
    bad(v6[:14 + 30], "parse-truncated")
    b = bytearray(v6)
    b[18:20] = (400).to_bytes(2, "big")
    bad(b, "parse-truncated")
    # More IPv6 extension headers than the parser follows.
    deep = IPv6(src="fd00::4", dst="2001:db8::1")
    for _ in range(10):
        deep = deep / IPv6ExtHdrDestOpt()
    bad(bytes(o / deep / UDP(sport=7780, dport=53)), "parse-too-deep")
    # VXLAN in VXLAN.
    inner = out_eth() / IP(src=VM_IP, dst="192.0.2.10") / UDP(sport=1, dport=2)
    vx = o / IP(src="192.0.2.1", dst="192.0.2.254") / UDP(sport=50000, dport=4789) / VXLAN(vni=1) / \
        out_eth() / IP(src="192.0.2.1", dst="192.0.2.254") / UDP(sport=50001, dport=4789) / VXLAN(vni=2) / inner
    bad(bytes(vx), "parse-too-deep")
    # Three VLAN tags: one more than the parser follows.
    bad(bytes(Ether(src=VM_MAC, dst=VM_GW_MAC) / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) /
              IP(src=VM_IP, dst="192.0.2.10") / UDP(sport=7781, dport=53)), "parse-too-deep")
    # A frame too short for an Ethernet header.
    bad(base[:10], "parse-truncated")
    # Fragments: no reassembly. A first fragment carries its ports; a later
    # one follows its first fragment's flow, and one whose first fragment
    # never came has no ports to match (dropped, counted).
    g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10", id=4242, flags="MF", frag=0) / UDP(sport=7200, dport=53, len=400),
          "wan")
    g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10", id=4242, frag=50, proto=17), "wan")
    g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10", id=4243, frag=50, proto=17), "fragment")
    # Ethernet padding after a short IPv4 datagram is fine.
    p = bytes(o / IP(src=VM_IP, dst="192.0.2.10") / UDP(sport=7100, dport=53) / Raw(tag_bytes(g.tags.next())))
    g.add_raw("vm", p + b"\0" * max(0, 60 - len(p)) + b"\0\0\0\0", "wan")
    for _ in range(5):
        good()


def gen_jumbo(g):
    """Frames bigger than one mbuf's data room arrive as chained mbufs
    (net_pcap chains them): the pipeline takes no multi-segment packet,
    and counts it as such; the packets around it flow."""
    o = out_eth()
    for k in range(3):
        g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10") / UDP(sport=7400 + k, dport=53), "wan")
    g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10") / UDP(sport=7300, dport=53) / Raw(b"J" * 3000),
          "multi-segment")
    g.add("wan", in_eth() / IP(src="198.51.100.7", dst=VM_IP) / TCP(sport=443, dport=7301, flags="S") /
          Raw(b"J" * 4000), "multi-segment")
    for k in range(3):
        g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10") / UDP(sport=7410 + k, dport=53), "wan")


def gen_vxlan_sizes(g):
    """examples/acl-snat-vxlan.toml over every frame size: outbound
    connections are SNAT'd and encapsulated, inbound tunnelled SYNs to
    the port forward are decapsulated and DNAT'd (each its own flow, so
    the order across the two inputs does not matter)."""
    o = out_eth()
    sizes = list(range(0, 1473, 97)) + [1472]
    for k, n in enumerate(sizes):
        g.add("vm", o / IP(src=VM_IP, dst="198.51.100.7") / UDP(sport=8000 + k, dport=9000) / Raw(b"u" * n), "wan")
        tcp_pay = max(0, n - 12 - 8)
        g.add("vm", o / IP(src=VM_IP, dst="198.51.100.7") / TCP(sport=8500 + k, dport=443, flags="S") /
              Raw(b"t" * tcp_pay), "wan")
        inner = in_eth() / IP(src="198.51.100.9", dst="203.0.113.10") / \
            TCP(sport=6100 + k, dport=2222, flags="S") / Raw(b"i" * max(0, n - 50 - 20))
        g.add("wan", vxlan(5001, "192.0.2.254", "192.0.2.1", inner, sport=50000 + k), "vm")


def gen_dnat(g, flows=120, rounds=4):
    rnd = random.Random(5)
    clients = []
    for i in range(flows):
        clients.append(("198.51.100.%d" % (1 + i % 50), 20000 + i))
    vip = dict(dst="203.0.113.50")
    for r in range(rounds):
        order = list(range(flows))
        rnd.shuffle(order)
        for i in order:
            src, sp = clients[i]
            flags = "S" if r == 0 else ("A" if r == 1 else "PA")
            g.add("wan", in_eth() / IP(src=src, **vip) / TCP(sport=sp, dport=80, flags=flags, seq=1 + r), "vm")
    # No connection for this one: stateful drop.
    g.add("wan", in_eth() / IP(src="198.51.100.200", **vip) / TCP(sport=999, dport=80, flags="A"), "no-flow")
    # The VIP only serves tcp/80.
    g.add("wan", in_eth() / IP(src="198.51.100.200", **vip) / UDP(sport=999, dport=80), "policy-deny")
    g.add("wan", in_eth() / IP(src="198.51.100.200", **vip) / TCP(sport=998, dport=81, flags="S"), "policy-deny")
    # A backend addressed directly passes the acl unmodified.
    g.add("wan", in_eth() / IP(src="198.51.100.201", dst="10.1.0.5") / TCP(sport=997, dport=8080, flags="S"), "vm")


def gen_snat_exhaust(g):
    o = out_eth()
    # Pool of 2 ports: flows 1 and 2 get them, flows 3..5 find none (each
    # of their packets is a new attempt).
    for f in range(5):
        fate = "wan" if f < 2 else "nat-exhausted"
        for k in range(2):
            g.add("vm", o / IP(src=VM_IP, dst="192.0.2.10") / UDP(sport=9000 + f, dport=53), fate)


# --------------------------------------------------------------------------
# drive: step-by-step exchanges through the kernel side of two interfaces
# --------------------------------------------------------------------------

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6


class Fail(Exception):
    pass


def with_vlan(data, anc):
    """The frame as it was on the wire: the kernel strips a received VLAN
    tag into the packet's metadata (struct tpacket_auxdata)."""
    for level, kind, aux in anc:
        if level != SOL_PACKET or kind != PACKET_AUXDATA or len(aux) < 20:
            continue
        status, _, _, _, _, tci, tpid = struct.unpack("=IIIHHHH", aux[:20])
        if status & TP_STATUS_VLAN_VALID:
            if not status & TP_STATUS_VLAN_TPID_VALID:
                tpid = 0x8100
            return data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
    return data


class Side:
    def __init__(self, name, ifname):
        self.name = name
        self.ifname = ifname
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock.bind((ifname, 0))
        self.sock.setblocking(False)
        self.sent = []
        self.recv = []

    def send(self, frame):
        self.sock.send(frame)
        self.sent.append(frame)
        return len(self.sent) - 1

    def drain(self):
        got = []
        while True:
            try:
                data, anc, _, addr = self.sock.recvmsg(65535, socket.CMSG_SPACE(64))
            except BlockingIOError:
                return got
            if addr[2] == PACKET_OUTGOING:
                continue
            data = with_vlan(data, anc)
            self.recv.append(data)
            got.append((len(self.recv) - 1, data))


class Driver:
    def __init__(self, vm_if, wan_if, timeout):
        self.sides = {"vm": Side("vm", vm_if), "wan": Side("wan", wan_if)}
        self.timeout = timeout
        self.tags = Tags()
        self.log = {}
        self.arrived = {}  # tag -> (side, idx, frame)
        self.extra = {}
        self.probes_sent = {"vm": 0, "wan": 0}
        self.probes_recv = {"vm": 0, "wan": 0}

    def other(self, side):
        return "wan" if side == "vm" else "vm"

    def poll(self, wait):
        socks = [s.sock for s in self.sides.values()]
        select.select(socks, [], [], wait)
        for s in self.sides.values():
            for idx, data in s.drain():
                if PROBE_RE.search(data):
                    self.probes_recv[s.name] += 1
                    continue
                t = find_tag(data)
                if t is None:
                    continue
                if t in self.arrived:
                    raise Fail("tag %d arrived twice (%s #%d and %s #%d)" %
                               (t, self.arrived[t][0], self.arrived[t][1], s.name, idx))
                self.arrived[t] = (s.name, idx, data)
                if t in self.log:
                    self.log[t]["got_on"] = s.name
                    self.log[t]["got_idx"] = idx

    def ready(self, limit=30.0):
        """Non-IP probes both ways until one crossed in each direction:
        the app forwards on both vports (a vport's path may come up a
        little after the app starts). The driver reports how many probes
        it sent and received, so the test can account for them."""
        deadline = time.monotonic() + limit
        n = 0
        while self.probes_recv["wan"] == 0 or self.probes_recv["vm"] == 0:
            for side in ("vm", "wan"):
                if self.probes_recv[self.other(side)] == 0:
                    n += 1
                    f = bytes(Ether(src="02:00:00:00:0f:01", dst="02:00:00:00:0f:02", type=PROBE_TYPE) /
                              Raw(b"<P%05d>" % n + b"\0" * 40))
                    self.sides[side].sock.send(f)
                    self.probes_sent[side] += 1
            t = time.monotonic() + 0.1
            while time.monotonic() < t:
                self.poll(0.02)
            if time.monotonic() > deadline:
                raise Fail("the app did not forward probes both ways within %ss (sent %s, received %s)" %
                           (limit, self.probes_sent, self.probes_recv))

    def phase(self, items, what):
        """items: (side, scapy packet without tag, expected side or a drop
        reason). Sends them all, then waits until every expected packet
        arrived. Returns {tag: arrived frame as Ether} for the forwarded
        ones, and the tags in item order."""
        tags = []
        for side, pkt, expect in items:
            t = self.tags.next()
            frame = bytes(pkt / Raw(tag_bytes(t)))
            idx = self.sides[side].send(frame)
            fwd = expect in ("vm", "wan")
            self.log[t] = {"phase": what, "sent_on": side, "sent_idx": idx,
                           "expect": expect if fwd else None, "drop": None if fwd else expect,
                           "got_on": None, "got_idx": None}
            tags.append(t)
        deadline = time.monotonic() + self.timeout
        want = [t for t in tags if self.log[t]["expect"]]
        while True:
            self.poll(0.05)
            missing = [t for t in want if t not in self.arrived]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise Fail("phase %r: %d of %d expected packets did not come out within %ss (tags %s)" %
                           (what, len(missing), len(want), self.timeout, missing[:20]))
        self.check(tags, what)
        return [Ether(self.arrived[t][2]) if t in self.arrived else None for t in tags], tags

    def check(self, tags, what):
        for t in tags:
            e = self.log[t]
            if t in self.arrived:
                if e["expect"] is None:
                    raise Fail("phase %r: tag %d (to be dropped: %s) came out on %s" %
                               (what, t, e["drop"], self.arrived[t][0]))
                if self.arrived[t][0] != e["expect"]:
                    raise Fail("phase %r: tag %d came out on %s, expected %s" %
                               (what, t, self.arrived[t][0], e["expect"]))

    def finish(self, d):
        # Late arrivals of dropped packets still fail the run.
        self.poll(0.2)
        self.check(list(self.log), "end")

    def write(self, d):
        for name, s in self.sides.items():
            for kind, frames in (("sent", s.sent), ("recv", s.recv)):
                path = os.path.join(d, "%s_%s.pcap" % (kind, name))
                if not frames:
                    write_empty_pcap(path)
                    continue
                w = PcapWriter(path, linktype=1, sync=False)
                for f in frames:
                    w.write(Raw(f))
                w.close()
        with open(os.path.join(d, "log.json"), "w") as f:
            json.dump({"tags": {str(k): v for k, v in self.log.items()}, "extra": self.extra,
                       "probes_sent": self.probes_sent, "probes_recv": self.probes_recv}, f, indent=1)


def reply(frame, flags=None, payload_only=False, **kw):
    """The reverse of an IPv4 TCP/UDP/ICMP-echo frame as it came out (the
    tag is not copied: phase() adds a new one)."""
    e = frame
    ip = e[IP]
    r = Ether(src=e.dst, dst=e.src)
    if Dot1Q in e:
        r = r / Dot1Q(vlan=e[Dot1Q].vlan)
    r = r / IP(src=ip.dst, dst=ip.src, ttl=kw.get("ttl", 64))
    if TCP in ip:
        t = ip[TCP]
        r = r / TCP(sport=t.dport, dport=t.sport, flags=flags or "SA", seq=kw.get("seq", 5000),
                    ack=t.seq + 1)
    elif UDP in ip:
        u = ip[UDP]
        r = r / UDP(sport=u.dport, dport=u.sport)
    elif ICMP in ip:
        c = ip[ICMP]
        r = r / ICMP(type=0, id=c.id, seq=c.seq)
    return r


def vxlan_reply(frame, flags=None, outer_src_ip=None):
    """The VXLAN reply to a VXLAN frame: outer and inner reversed."""
    o = frame
    oip = o[IP]
    inner = o[VXLAN].payload
    r_inner = reply(inner, flags)
    return (Ether(src=o.dst, dst=o.src) /
            IP(src=outer_src_ip or oip.dst, dst=oip.src) /
            UDP(sport=o[UDP].sport, dport=4789) / VXLAN(vni=o[VXLAN].vni) / r_inner)


def vxlan(vni, osrc, odst, inner, sport=50000):
    return (Ether(src="02:00:00:00:00:fe", dst="02:00:00:00:00:01") /
            IP(src=osrc, dst=odst) / UDP(sport=sport, dport=4789) / VXLAN(vni=vni) / inner)


def drive_stateful(dr):
    o, i = out_eth(), in_eth()
    conn = dict(src=VM_IP, dst="198.51.100.7")
    (syn_out,), _ = dr.phase([("vm", o / IP(**conn) / TCP(sport=40000, dport=443, flags="S", seq=100), "wan")],
                             "syn")
    (synack,), _ = dr.phase([("wan", reply(syn_out, "SA"), "vm")], "syn-ack")
    dr.phase([("vm", o / IP(**conn) / TCP(sport=40000, dport=443, flags="A", seq=101, ack=5001), "wan")], "ack")
    back = reply(syn_out, "PA", seq=5001)
    dr.phase([("wan", back, "vm")], "data in")
    # Unsolicited inbound, then a packet of the live connection behind
    # them on the same queue: when it is out, the three were processed.
    dr.phase([
        ("wan", i / IP(src="198.51.100.7", dst=VM_IP) / TCP(sport=443, dport=40001, flags="A"), "no-flow"),
        ("wan", i / IP(src="198.51.100.8", dst=VM_IP) / TCP(sport=1234, dport=80, flags="S"), "policy-deny"),
        ("wan", i / IP(src="198.51.100.7", dst=VM_IP) / UDP(sport=53, dport=5000), "policy-deny"),
        ("wan", back, "vm"),
    ], "unsolicited")
    # The same UDP tuple is welcome once the VM opened it.
    (u,), _ = dr.phase([("vm", o / IP(src=VM_IP, dst="198.51.100.7") / UDP(sport=5000, dport=53), "wan")],
                       "udp out")
    dr.phase([("wan", reply(u), "vm")], "udp reply")
    # An inbound rule still admits new connections; its replies flow back.
    dr.phase([("wan", i / IP(src="198.51.100.7", dst=VM_IP) / UDP(sport=53, dport=5001), "policy-deny")],
             "udp other port")
    (ssh,), _ = dr.phase([("wan", i / IP(src="198.51.100.9", dst=VM_IP) /
                           TCP(sport=5555, dport=22, flags="S", seq=7), "vm")], "ssh syn")
    dr.phase([("vm", reply(ssh, "SA"), "wan")], "ssh syn-ack")
    (ping,), _ = dr.phase([("vm", o / IP(src=VM_IP, dst="198.51.100.7") / ICMP(type=8, id=77, seq=1), "wan")],
                          "ping")
    dr.phase([
        ("wan", reply(ping), "vm"),
        ("wan", i / IP(src="198.51.100.7", dst=VM_IP) / ICMP(type=0, id=78, seq=1), "no-flow"),
        ("wan", back, "vm"),
    ], "pong")


def drive_snat(dr):
    o, i = out_eth(), in_eth()
    out = []
    for k in range(4):
        out.append(("vm", o / IP(src=VM_IP, dst="198.51.100.7") /
                    TCP(sport=41000 + k, dport=443, flags="S", seq=1000 * k), "wan"))
    for k in range(3):
        out.append(("vm", o / IP(src=VM_IP, dst="198.51.100.53") / UDP(sport=42000 + k, dport=53), "wan"))
    # UDP without checksum: stays without one.
    out.append(("vm", o / IP(src=VM_IP, dst="198.51.100.53") / UDP(sport=42100, dport=53, chksum=0), "wan"))
    out.append(("vm", o / IP(src=VM_IP, dst="198.51.100.7") / ICMP(type=8, id=4242, seq=1), "wan"))
    # A VLAN tag and IPv4 options move the headers: the rewrite must follow.
    out.append(("vm", Ether(src=VM_MAC, dst=VM_GW_MAC) / Dot1Q(vlan=7) / IP(src=VM_IP, dst="198.51.100.53") /
                UDP(sport=42200, dport=53), "wan"))
    out.append(("vm", o / IP(src=VM_IP, dst="198.51.100.7", options=b"\x01\x01\x01\x00") /
                TCP(sport=42300, dport=443, flags="S", seq=9), "wan"))
    first, tags = dr.phase(out, "first packets")
    dr.extra["first"] = tags
    replies = [("wan", reply(f, "SA"), "vm") for f in first]
    _, rtags = dr.phase(replies, "replies")
    dr.extra["replies"] = rtags
    # Second packet of each TCP connection out, and one more reply in.
    more = [("vm", o / IP(src=VM_IP, dst="198.51.100.7") /
             TCP(sport=41000 + k, dport=443, flags="A", seq=1000 * k + 1, ack=5001), "wan") for k in range(4)]
    _, mtags = dr.phase(more, "acks")
    dr.extra["acks"] = mtags
    data = [("wan", reply(f, "PA", seq=5001), "vm") for f in first[:4]]
    _, dtags = dr.phase(data, "data in")
    dr.extra["data_in"] = dtags
    # Unsolicited to the pool address: no flow, no entry.
    dr.phase([
        ("wan", i / IP(src="198.51.100.7", dst="203.0.113.10") / TCP(sport=443, dport=20999, flags="A"), "no-flow"),
        ("wan", i / IP(src="198.51.100.7", dst="203.0.113.10") / UDP(sport=53, dport=20998), "policy-deny"),
        ("wan", reply(first[0], "A", seq=5002), "vm"),
    ], "unsolicited")
    # ICMP errors from a router about packets that left SNAT'd (TCP, UDP,
    # the ping): each quotes the IP header and 8 bytes, as RFC 792 asks,
    # and goes back to the VM translated. One about a port no connection
    # holds is dropped.
    errs = []
    for f in (first[0], first[4], first[8]):
        ip = f[IP]
        quote = bytes(ip)[:ip.ihl * 4 + 8]
        errs.append(("wan", i / IP(src="198.51.100.1", dst="203.0.113.10") /
                     ICMP(type=3, code=4, nexthopmtu=1400) / Raw(quote), "vm"))
    stray = bytes(IP(src="203.0.113.10", dst="198.51.100.7") / TCP(sport=20997, dport=443))[:28]
    errs.append(("wan", i / IP(src="198.51.100.1", dst="203.0.113.10") / ICMP(type=11) / Raw(stray), "no-flow"))
    errs.append(("wan", reply(first[0], "A", seq=5003), "vm"))
    _, etags = dr.phase(errs, "icmp errors")
    dr.extra["icmp_errors"] = etags[:3]


def drive_vxlan(dr):
    o = out_eth()
    syn = o / IP(src=VM_IP, dst="198.51.100.7") / TCP(sport=40000, dport=443, flags="S", seq=10)
    udp = o / IP(src=VM_IP, dst="198.51.100.53") / UDP(sport=5353, dport=53)
    (enc_syn, enc_udp), t1 = dr.phase([("vm", syn, "wan"), ("vm", udp, "wan")], "encap")
    dr.extra["encap"] = t1
    (dec_synack, dec_udp), t2 = dr.phase([("wan", vxlan_reply(enc_syn, "SA"), "vm"),
                                          ("wan", vxlan_reply(enc_udp), "vm")], "decap replies")
    dr.extra["decap_replies"] = t2
    # A new inbound connection: tunnelled to the pool address's port
    # forward, from a gateway other than the configured one, so the reply
    # must be tunnelled back to where it came from.
    inner = Ether(src="02:00:00:00:02:99", dst="02:00:00:00:02:98") / \
        IP(src="198.51.100.9", dst="203.0.113.10") / TCP(sport=6000, dport=2222, flags="S", seq=70)
    (ssh,), t3 = dr.phase([("wan", vxlan(5001, "192.0.2.200", "192.0.2.1", inner), "vm")], "decap new")
    dr.extra["decap_new"] = t3
    (_,), t4 = dr.phase([("vm", reply(ssh, "SA"), "wan")], "encap reply")
    dr.extra["encap_reply"] = t4
    # Drops: another VNI, a plain (untunnelled) packet, the metadata range.
    inner2 = in_eth() / IP(src="198.51.100.9", dst="203.0.113.10") / TCP(sport=6001, dport=2222, flags="S")
    dr.phase([
        ("wan", vxlan(5002, "192.0.2.254", "192.0.2.1", inner2), "policy-deny"),
        ("wan", in_eth() / IP(src="198.51.100.9", dst="203.0.113.10") / TCP(sport=6002, dport=2222, flags="S"),
         "policy-deny"),
        ("vm", o / IP(src=VM_IP, dst="169.254.169.254") / TCP(sport=40001, dport=80, flags="S"), "policy-deny"),
        ("wan", vxlan_reply(enc_syn, "A"), "vm"),
        ("vm", o / IP(src=VM_IP, dst="198.51.100.7") / TCP(sport=40000, dport=443, flags="A", seq=11), "wan"),
    ], "drops")


def drive_dnat(dr, clients=8):
    i = in_eth()
    syns = [("wan", i / IP(src="198.51.100.%d" % (10 + k), dst="203.0.113.50") /
             TCP(sport=30000 + k, dport=80, flags="S", seq=k), "vm") for k in range(clients)]
    at_backend, t1 = dr.phase(syns, "syn")
    dr.extra["syn"] = t1
    _, t2 = dr.phase([("vm", reply(f, "SA"), "wan") for f in at_backend], "syn-ack")
    dr.extra["synack"] = t2
    acks = [("wan", i / IP(src="198.51.100.%d" % (10 + k), dst="203.0.113.50") /
             TCP(sport=30000 + k, dport=80, flags="A", seq=k + 1, ack=5001), "vm") for k in range(clients)]
    _, t3 = dr.phase(acks, "ack")
    dr.extra["ack"] = t3


def drive_multiq(dr, conns=64):
    """Many connections through SNAT over 2 queues on 2 lcores: replies
    carry the pool address, so their hash differs from the request's."""
    o = out_eth()
    first = []
    for k in range(conns):
        dst = "198.51.100.%d" % (1 + k % 200)
        if k % 2 == 0:
            first.append(("vm", o / IP(src="10.1.0.%d" % (2 + k % 50), dst=dst) /
                          TCP(sport=20000 + k, dport=443, flags="S", seq=k), "wan"))
        else:
            first.append(("vm", o / IP(src="10.1.0.%d" % (2 + k % 50), dst=dst) /
                          UDP(sport=20000 + k, dport=53), "wan"))
    out1, t1 = dr.phase(first, "first")
    dr.extra["first"] = t1
    _, t2 = dr.phase([("wan", reply(f, "SA"), "vm") for f in out1], "replies")
    dr.extra["replies"] = t2
    seconds = []
    for k, (_, p, _) in enumerate(first):
        ip = p[IP]
        if TCP in ip:
            seconds.append(("vm", o / IP(src=ip.src, dst=ip.dst) /
                            TCP(sport=ip[TCP].sport, dport=443, flags="A", seq=k + 1, ack=5001), "wan"))
        else:
            seconds.append(("vm", o / IP(src=ip.src, dst=ip.dst) / UDP(sport=ip[UDP].sport, dport=53), "wan"))
    _, t3 = dr.phase(seconds, "second")
    dr.extra["second"] = t3
    _, t4 = dr.phase([("wan", reply(f, "PA", seq=5001), "vm") for f in out1], "data in")
    dr.extra["data_in"] = t4


def gen_mutated(g, count=3000, seed=15):
    """Mutated traffic for examples/acl-snat-vxlan.toml on both sides: the
    VM's UDP, TCP and ICMP (echo and errors) and tunnelled replies to its
    SNAT address, every other frame with bytes overwritten, cut short,
    padded or turned into a fragment. Fates are unknown ("any"): the test
    asserts a clean exit and balanced counters only."""
    rnd = random.Random(seed)
    o = out_eth()
    for n in range(count):
        vm = "10.1.0.%d" % (4 + n % 4)
        peer = "198.51.100.%d" % (7 + n % 3)
        kind = rnd.randrange(5)
        if kind == 0:
            l4 = UDP(sport=40000 + n % 8, dport=53)
        elif kind == 1:
            l4 = TCP(sport=40000 + n % 8, dport=443, flags=rnd.choice(["S", "A", "PA", "FA", "R", "SA"]))
        elif kind == 2:
            l4 = ICMP(type=8, id=n % 8, seq=n)
        elif kind == 3:
            l4 = ICMP(type=3, code=4) / IP(src="203.0.113.10", dst=peer) / UDP(sport=1024 + n % 64, dport=53)
        else:
            l4 = UDP(sport=53, dport=1024 + rnd.randrange(64512))
        payload = Raw(bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 64))))
        inbound = kind == 4 or (kind == 3 and rnd.random() < 0.5)
        if inbound:
            frame = bytearray(bytes(vxlan(5001, "192.0.2.254", "192.0.2.1",
                                          Ether(src=NET_MAC, dst=NET_GW_MAC) /
                                          IP(src=peer, dst="203.0.113.10") / l4 / payload)))
        else:
            frame = bytearray(bytes(o / IP(src=vm, dst=peer) / l4 / payload))
        r = rnd.random()
        if r < 0.3:
            for _ in range(rnd.randrange(1, 4)):
                frame[rnd.randrange(len(frame))] = rnd.randrange(256)
        elif r < 0.4:
            # At least a byte: the pcap PMD need not deliver an empty record.
            frame = frame[:rnd.randrange(1, len(frame) + 1)]
        elif r < 0.45:
            frame += bytes(rnd.randrange(1, 40))
        elif r < 0.55 and len(frame) > 22:
            ip = 64 if inbound else 14
            if len(frame) > ip + 8:
                frame[ip + 6:ip + 8] = struct.pack("!H", rnd.choice([0x2000, 0x0003, 0x2005]))
        g.add_raw("wan" if inbound else "vm", bytes(frame), "any")


GENS = {"acl": gen_acl, "ttl": gen_ttl, "malformed": gen_malformed, "dnat": gen_dnat, "jumbo": gen_jumbo,
        "vxlan-sizes": gen_vxlan_sizes,
        "snat-exhaust": gen_snat_exhaust, "mutated": gen_mutated}
DRIVES = {"stateful": drive_stateful, "snat": drive_snat, "vxlan": drive_vxlan, "dnat": drive_dnat,
          "multiq": drive_multiq}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["gen", "drive"])
    ap.add_argument("scenario")
    ap.add_argument("dir")
    ap.add_argument("--vm")
    ap.add_argument("--wan")
    ap.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()
    if a.mode == "gen":
        g = Gen()
        GENS[a.scenario](g)
        g.write(a.dir)
        return 0
    dr = Driver(a.vm, a.wan, a.timeout)
    try:
        dr.ready()
        DRIVES[a.scenario](dr)
        dr.finish(a.dir)
    except Fail as e:
        dr.write(a.dir)
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    dr.write(a.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
