//! Golden tests of VXLAN encapsulation and decapsulation through a shard:
//! outer Ethernet/IPv4/UDP/VXLAN fields, lengths and checksums of what
//! leaves, and the reverse direction of each.

mod shard_support;

use shard_support::*;
use std::sync::Arc;
use vfp_core::action::encap::OuterChecksum;
use vfp_core::action::nat::NatPorts;
use vfp_core::shard::{DropReason, Verdict};

const UNDERLAY_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xaa, 0x01];
const UNDERLAY_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xaa, 0x02];
const UNDERLAY_SRC: [u8; 4] = [192, 0, 2, 1];
const UNDERLAY_DST: [u8; 4] = [192, 0, 2, 2];

const ENCAP: &str = r#"
[[layers]]
name = "vnet"
default = "allow"

[[layers.groups]]

[[layers.groups.rules]]
id = 10
priority = 1
direction = "out"
dst = ["10.9.0.0/16"]
action = "encap"
encap = { vni = 5000, outer_src_ip = "192.0.2.1", outer_dst_ip = "192.0.2.2", outer_src_mac = "02:00:00:00:aa:01", outer_dst_mac = "02:00:00:00:aa:02" }

[[layers.groups.rules]]
id = 20
priority = 2
direction = "in"
vni = 77
action = "decap"
set_mac = { dst = "02:00:00:00:00:01" }
"#;

const VM_IP: [u8; 4] = [10, 0, 0, 1];
const REMOTE_IP: [u8; 4] = [10, 9, 0, 7];

/// Checks the 50-byte outer header of `pkt`; returns its UDP source port.
fn check_outer(pkt: &[u8], src: [u8; 4], dst: [u8; 4], vni: u32, smac: [u8; 6], dmac: [u8; 6]) -> u16 {
    assert_eq!(macs(pkt, 0), (smac, dmac));
    assert_eq!(be16(pkt, 12), 0x0800);
    let (s, d, ttl, proto) = check_ipv4(pkt, 14);
    assert_eq!((s, d, ttl, proto), (src, dst, 64, 17));
    assert_eq!(be16(pkt, 14 + 6), 0x4000, "DF set, no fragment offset");
    assert_eq!(be16(pkt, 14 + 4), 0, "IP id 0");
    let udp = 34;
    assert_eq!(be16(pkt, udp + 2), 4789);
    assert_eq!(usize::from(be16(pkt, udp + 4)), pkt.len() - udp, "UDP length");
    assert_eq!(be16(pkt, udp + 6), 0, "UDP checksum 0 (RFC 7348)");
    let sport = be16(pkt, udp);
    assert!(sport >= 49152, "source port {sport} in the dynamic range");
    assert_eq!(&pkt[42..46], &[0x08, 0, 0, 0], "VXLAN I flag");
    assert_eq!(u32::from_be_bytes([0, pkt[46], pkt[47], pkt[48]]), vni);
    assert_eq!(pkt[49], 0);
    sport
}

#[test]
fn encap_out_and_decap_of_the_reply() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(ENCAP, 1), &nat, 0, 1);
    let inner = tcp_frame(VM_MAC, GW_MAC, (VM_IP, 1234), (REMOTE_IP, 80), tcp::SYN);
    let (v, out) = run(&mut s, &inner, VM, 0);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    assert_eq!(out.len(), inner.len() + 50);
    let sport = check_outer(
        &out,
        UNDERLAY_SRC,
        UNDERLAY_DST,
        5000,
        UNDERLAY_SRC_MAC,
        UNDERLAY_DST_MAC,
    );
    assert_eq!(&out[50..], &inner[..], "inner frame untouched");

    // The same flow always gets the same entropy port.
    let ack = tcp_frame(VM_MAC, GW_MAC, (VM_IP, 1234), (REMOTE_IP, 80), tcp::ACK);
    let (_, out2) = run(&mut s, &ack, VM, 1);
    assert_eq!(be16(&out2, 34), sport);

    // The reply arrives encapsulated in VNI 5000 and leaves decapsulated,
    // addressed to the VM's MAC.
    let reply_inner = tcp_frame(
        PEER_MAC,
        [0x02, 0, 0, 0, 0, 0x99],
        (REMOTE_IP, 80),
        (VM_IP, 1234),
        tcp::SYN | tcp::ACK,
    );
    let reply = vxlan_frame(
        UNDERLAY_DST_MAC,
        UNDERLAY_SRC_MAC,
        UNDERLAY_DST,
        UNDERLAY_SRC,
        5000,
        &reply_inner,
    );
    let (v, back) = run(&mut s, &reply, WAN, 1);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(back.len(), reply_inner.len());
    assert_eq!(macs(&back, 0), (GW_MAC, VM_MAC));
    let (src, dst, _, _) = check_ipv4(&back, 14);
    assert_eq!((src, dst), (REMOTE_IP, VM_IP));
    assert_eq!(&back[12..], &reply_inner[12..]);

    // The same inner reply in another VNI is not this connection's.
    let wrong = vxlan_frame(
        UNDERLAY_DST_MAC,
        UNDERLAY_SRC_MAC,
        UNDERLAY_DST,
        UNDERLAY_SRC,
        5001,
        &reply_inner,
    );
    assert_eq!(run(&mut s, &wrong, WAN, 2).0, Verdict::Drop(DropReason::NoFlow));
}

#[test]
fn decap_in_and_encap_of_the_reply_towards_the_sender() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(ENCAP, 1), &nat, 0, 1);
    let tunnel_src = [198, 18, 0, 1];
    let tunnel_dst = [198, 18, 0, 2];
    let tunnel_src_mac = [0x02, 0, 0, 0, 0xbb, 0x01];
    let tunnel_dst_mac = [0x02, 0, 0, 0, 0xbb, 0x02];
    let inner_smac = [0x02, 0, 0, 0, 0, 0x55];
    let inner_dmac = [0x02, 0, 0, 0, 0, 0x66];
    let inner = udp_frame(inner_smac, inner_dmac, ([172, 16, 0, 9], 7000), (VM_IP, 53), true);
    let pkt = vxlan_frame(tunnel_src_mac, tunnel_dst_mac, tunnel_src, tunnel_dst, 77, &inner);
    let (v, inb) = run(&mut s, &pkt, WAN, 0);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(inb.len(), inner.len());
    assert_eq!(macs(&inb, 0), (inner_smac, VM_MAC), "set_mac dst applied after decap");
    check_ipv4(&inb, 14);

    // The VM answers in plain Ethernet; the reply is encapsulated back to
    // the tunnel endpoint it came from, same VNI.
    let reply = udp_frame(VM_MAC, inner_smac, (VM_IP, 53), ([172, 16, 0, 9], 7000), true);
    let (v, out) = run(&mut s, &reply, VM, 1);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    check_outer(&out, tunnel_dst, tunnel_src, 77, tunnel_dst_mac, tunnel_src_mac);
    assert_eq!(out.len(), reply.len() + 50);
    // Inner MACs mirror the first packet's.
    assert_eq!(macs(&out, 50), (inner_dmac, inner_smac));
    assert_eq!(check_ipv4(&out, 64).0, VM_IP);
    assert_eq!(s.len(), 1);
}

#[test]
fn offloaded_outer_checksum_is_left_zero_and_reported() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(ENCAP, 1), &nat, 0, 1);
    s.set_outer_checksum(OuterChecksum::Offload);
    let inner = udp_frame(VM_MAC, GW_MAC, (VM_IP, 1), (REMOTE_IP, 2), false);
    let (v, out) = run(&mut s, &inner, VM, 0);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    assert_eq!(be16(&out, 24), 0);
    assert!(s.checksum_plan().outer_ipv4_offloaded);
}

#[test]
fn encap_without_headroom_is_dropped() {
    use vfp_core::frame::Frame;
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(ENCAP, 1), &nat, 0, 1);
    let mut pkt = udp_frame(VM_MAC, GW_MAC, (VM_IP, 1), (REMOTE_IP, 2), false);
    let parsed = parsed_for(&pkt, VM);
    let mut frame = Frame::whole(&mut pkt);
    let v = s.process(&mut frame, &parsed, 0, true);
    assert_eq!(v, Verdict::Drop(DropReason::NoHeadroom));
}

/// Ethernet / IPv6 / UDP 4789 / VXLAN around `inner`, with an outer UDP
/// checksum (zero when `with_csum` is false), computed by the test.
fn vxlan6_frame(inner: &[u8], with_csum: bool) -> Vec<u8> {
    let src = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let dst = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let mut udp = vec![0xc3, 0x50, 0x12, 0xb5, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 0x07, 0];
    udp.extend_from_slice(inner);
    let len = udp.len() as u16;
    udp[4..6].copy_from_slice(&len.to_be_bytes());
    if with_csum {
        let c = outer_udp6_csum(&src, &dst, &udp);
        udp[6..8].copy_from_slice(&c.to_be_bytes());
    }
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&len.to_be_bytes());
    ip.extend_from_slice(&[17, 64]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(&udp);
    eth(UNDERLAY_DST_MAC, UNDERLAY_SRC_MAC, 0x86dd, &ip)
}

/// The UDP/IPv6 checksum `udp` should carry (its own field taken as 0).
fn outer_udp6_csum(src: &[u8; 16], dst: &[u8; 16], udp: &[u8]) -> u16 {
    let mut all = Vec::new();
    all.extend_from_slice(src);
    all.extend_from_slice(dst);
    all.extend_from_slice(&(udp.len() as u32).to_be_bytes());
    all.extend_from_slice(&[0, 0, 0, 17]);
    all.extend_from_slice(&udp[..6]);
    all.extend_from_slice(&[0, 0]);
    all.extend_from_slice(&udp[8..]);
    match csum(&all) {
        0 => 0xffff,
        c => c,
    }
}

/// VXLAN over IPv6 passing through (no decap) while its inner frame is
/// rewritten: the outer UDP checksum is computed again (an IPv6 receiver
/// may refuse zero); a sender's zero checksum stays zero.
#[test]
fn vxlan_over_ipv6_passing_through_gets_a_valid_outer_checksum() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(&snat_policy(40000, 40099), 1), &nat, 0, 1);
    let inner_at = 14 + 40 + 8 + 8;
    for (port, with_csum) in [(1000, true), (1001, false)] {
        let inner = tcp_frame(VM_MAC, GW_MAC, (VM_IP, port), (REMOTE_IP, 80), tcp::SYN);
        let (v, out) = run(&mut s, &vxlan6_frame(&inner, with_csum), VM, 0);
        assert_eq!(v, Verdict::Forward { vport: WAN });
        let (src, dst, _, _) = check_ipv4(&out, inner_at + 14);
        assert_eq!((src, dst), ([203, 0, 113, 10], REMOTE_IP));
        let ip = &out[14..];
        let (a, b): ([u8; 16], [u8; 16]) = (ip[8..24].try_into().unwrap(), ip[24..40].try_into().unwrap());
        let stored = be16(ip, 40 + 6);
        if with_csum {
            assert_eq!(stored, outer_udp6_csum(&a, &b, &ip[40..]));
        } else {
            assert_eq!(stored, 0);
        }
    }
}
