#!/usr/bin/python3
"""Writes the VM-side flows the control-socket tests expect, with scapy (an
encoder independent of vfp-core). Run with Debian's /usr/bin/python3.

  vm_flows.py OUT.pcap

Six flows from the VM's 10.1.0.0/24, one packet each, all allowed outbound
by examples/acl-snat-vxlan.toml:
  udp 10.1.0.2:5000 > 198.51.100.7:53     udp 10.1.0.2:5001 > 198.51.100.7:53
  udp 10.1.0.3:5002 > 198.51.100.7:53     udp 10.1.0.3:5003 > 198.51.100.7:53
  tcp 10.1.0.4:40000 > 93.184.216.34:443 (SYN)
  icmp echo 10.1.0.5 > 198.51.100.9 (id 7)
"""
import sys

from scapy.all import ICMP, IP, TCP, UDP, Ether, Raw, wrpcap

VM_MAC = "02:00:00:00:01:04"
GW_MAC = "02:00:00:00:00:01"


def main():
    eth = Ether(src=VM_MAC, dst=GW_MAC)
    pkts = [
        eth / IP(src="10.1.0.%d" % (2 + i // 2), dst="198.51.100.7") / UDP(sport=5000 + i, dport=53) / Raw(b"q" * 20)
        for i in range(4)
    ]
    pkts.append(eth / IP(src="10.1.0.4", dst="93.184.216.34") / TCP(sport=40000, dport=443, flags="S", seq=1))
    pkts.append(eth / IP(src="10.1.0.5", dst="198.51.100.9") / ICMP(type=8, id=7, seq=1))
    wrpcap(sys.argv[1], pkts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
