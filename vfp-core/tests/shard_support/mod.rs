//! Shared helpers of the shard and golden tests: hand-built packets, an
//! independent checksum and field reader (nothing from `vfp_core::wire`),
//! and a driver that parses a packet and runs it through a shard.
#![allow(dead_code)]

use std::sync::Arc;

use vfp_core::action::nat::NatPorts;
use vfp_core::flow::key::{proto, v4_mapped, FlowKey, NO_VNI};
use vfp_core::frame::Frame;
use vfp_core::parse::{common_frame, parse, Parsed};
use vfp_core::policy::{load_str, Policy};
use vfp_core::shard::{Hint, Shard, ShardConfig, Verdict};
use vfp_core::topology::{Role, VportInfo};

pub const VM: u16 = 0;
pub const WAN: u16 = 1;
pub const HEADROOM: usize = 128;
pub const SEC: u64 = 1_000_000_000;

pub const VM_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x77];

pub mod tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

pub fn vports() -> Vec<VportInfo> {
    vec![
        VportInfo::new("vm", Role::Vm, WAN),
        VportInfo::new("wan", Role::Net, VM),
    ]
}

pub fn policy(text: &str, generation: u64) -> Arc<Policy> {
    let mut p = load_str(text, "<test>", &vports()).expect("test policy loads");
    p.generation = generation;
    Arc::new(p)
}

/// One layer that source-NATs every outbound flow to 203.0.113.10,
/// ports `lo..=hi`.
pub fn snat_policy(lo: u16, hi: u16) -> String {
    format!(
        r#"
[[layers]]
name = "nat"
default = "allow"

[[layers.groups]]

[[layers.groups.rules]]
id = 1
priority = 1
direction = "out"
action = "snat"
snat = {{ addrs = ["203.0.113.10"], ports = "{lo}-{hi}" }}
"#
    )
}

/// A stateful ACL: the VM may open any connection, nothing comes in
/// but what belongs to one.
pub const OUT_ONLY: &str = r#"
[[layers]]
name = "acl"
default = "deny"

[[layers.groups]]

[[layers.groups.rules]]
id = 1
priority = 1
direction = "out"
action = "allow"
"#;

/// The key of a TCP packet from `src:sp` to `dst:dp` (vport, direction
/// at their defaults): enough for an owner hash.
pub fn tcp_key(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> FlowKey {
    FlowKey {
        src: v4_mapped(src),
        dst: v4_mapped(dst),
        src_port: sp,
        dst_port: dp,
        proto: proto::TCP,
        vni: NO_VNI,
        ..FlowKey::default()
    }
}

/// The text of a policy shipped in examples/.
pub fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn allow_all() -> Arc<Policy> {
    Arc::new(Policy::allow_all(&vports()))
}

pub fn shard(policy: Arc<Policy>, nat: &Arc<NatPorts>, id: usize, nshards: usize) -> Shard {
    nat.register_policy(&policy).expect("nat addresses register");
    let cfg = ShardConfig {
        id,
        nshards,
        capacity: 1024,
    };
    Shard::new(cfg, policy, nat.clone())
}

// ---------------------------------------------------------------- checksums

/// RFC 1071 checksum computed word by word, independent of the crate.
pub fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u32::from(c[0]) << 8 | u32::from(c[1])
        } else {
            u32::from(c[0]) << 8
        };
        s += w;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn pseudo(src: &[u8], dst: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

/// L4 checksum of an IPv4 packet's segment, from scratch (checksum field
/// treated as zero).
pub fn l4_csum_v4(ip: &[u8], proto: u8, seg: &[u8], csum_at: usize) -> u16 {
    let mut s = seg.to_vec();
    s[csum_at] = 0;
    s[csum_at + 1] = 0;
    let mut all = if proto == 1 {
        Vec::new()
    } else {
        pseudo(&ip[12..16], &ip[16..20], proto, seg.len())
    };
    all.extend_from_slice(&s);
    let c = csum(&all);
    if proto == 17 && c == 0 {
        0xffff
    } else {
        c
    }
}

// ------------------------------------------------------------------ builders

pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

fn with_l4_csum(src: [u8; 4], dst: [u8; 4], proto: u8, mut seg: Vec<u8>, at: usize) -> Vec<u8> {
    let mut ip = [0u8; 20];
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = l4_csum_v4(&ip, proto, &seg, at);
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    seg
}

pub fn tcp_seg(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sp.to_be_bytes());
    t[2..4].copy_from_slice(&dp.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&8192u16.to_be_bytes());
    t.extend_from_slice(payload);
    with_l4_csum(src, dst, 6, t, 16)
}

pub fn udp_seg(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, payload: &[u8], with_csum: bool) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sp.to_be_bytes());
    u[2..4].copy_from_slice(&dp.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(payload);
    if with_csum {
        with_l4_csum(src, dst, 17, u, 6)
    } else {
        u
    }
}

pub fn icmp_echo(kind: u8, id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"ping-payload");
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// A TCP/IPv4 frame.
pub fn tcp_frame(smac: [u8; 6], dmac: [u8; 6], src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8) -> Vec<u8> {
    let seg = tcp_seg(src.0, src.1, dst.0, dst.1, flags, b"hello");
    eth(dmac, smac, 0x0800, &ipv4(src.0, dst.0, 6, 64, &seg))
}

/// A UDP/IPv4 frame.
pub fn udp_frame(smac: [u8; 6], dmac: [u8; 6], src: ([u8; 4], u16), dst: ([u8; 4], u16), with_csum: bool) -> Vec<u8> {
    let seg = udp_seg(src.0, src.1, dst.0, dst.1, b"datagram", with_csum);
    eth(dmac, smac, 0x0800, &ipv4(src.0, dst.0, 17, 64, &seg))
}

/// Wraps `inner` in Ethernet/IPv4/UDP/VXLAN.
pub fn vxlan_frame(smac: [u8; 6], dmac: [u8; 6], src: [u8; 4], dst: [u8; 4], vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0];
    v.extend_from_slice(&(vni << 8).to_be_bytes());
    v.extend_from_slice(inner);
    let seg = udp_seg(src, 50000, dst, 4789, &v, false);
    eth(dmac, smac, 0x0800, &ipv4(src, dst, 17, 64, &seg))
}

// ------------------------------------------------------------------- driver

/// Parses `pkt`, sets vport and direction, runs it through `shard` and
/// returns the verdict and the packet as it would leave.
pub fn run(shard: &mut Shard, pkt: &[u8], vport: u16, now: u64) -> (Verdict, Vec<u8>) {
    run_with(shard, pkt, vport, now, true)
}

pub fn parsed_for(pkt: &[u8], vport: u16) -> Parsed {
    let mut p = parse(pkt).expect("test packet parses");
    p.key.vport = vport;
    p.key.dir = vports()[usize::from(vport)].role.direction();
    p
}

pub fn run_with(shard: &mut Shard, pkt: &[u8], vport: u16, now: u64, may_redirect: bool) -> (Verdict, Vec<u8>) {
    run_hinted(shard, pkt, vport, Hint::NONE, now, may_redirect)
}

/// [`run_with`] with a look-ahead hint, as the app's burst passes it.
pub fn run_hinted(
    shard: &mut Shard,
    pkt: &[u8],
    vport: u16,
    hint: Hint,
    now: u64,
    may_redirect: bool,
) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM + pkt.len()];
    buf[HEADROOM..].copy_from_slice(pkt);
    let mut frame = Frame::new(&mut buf, HEADROOM, pkt.len()).unwrap();
    let parsed = parsed_for(pkt, vport);
    let hash = parsed.key.table_hash();
    let v = shard.process_hinted(&mut frame, &parsed, hash, hint, now, may_redirect);
    (v, frame.data().to_vec())
}

/// [`run_hinted`] as pmd-app's burst does it: a common frame's hit by its
/// short key ([`Shard::process_common`]), anything else (including a
/// common frame the short key does not settle) the general way. Also
/// says whether the short key settled it.
pub fn run_short(shard: &mut Shard, pkt: &[u8], vport: u16, hint: Hint, now: u64) -> ((Verdict, Vec<u8>), bool) {
    let Some(c) = common_frame(pkt) else {
        return (run_hinted(shard, pkt, vport, hint, now, true), false);
    };
    let dir = vports()[usize::from(vport)].role.direction();
    let key = c.key(vport, dir);
    assert_eq!(key.table_hash(), parsed_for(pkt, vport).key.table_hash());
    let mut buf = vec![0u8; HEADROOM + pkt.len()];
    buf[HEADROOM..].copy_from_slice(pkt);
    let mut frame = Frame::new(&mut buf, HEADROOM, pkt.len()).unwrap();
    match shard.process_common(&mut frame, &key, c.tcp_flags, hint, now) {
        Some(v) => ((v, frame.data().to_vec()), true),
        None => {
            assert_eq!(
                frame.data(),
                pkt,
                "a frame the short key does not settle is left as it was"
            );
            (run_hinted(shard, pkt, vport, hint, now, true), false)
        }
    }
}

// ------------------------------------------------------------------- reader

pub fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub fn v4(b: &[u8], at: usize) -> [u8; 4] {
    [b[at], b[at + 1], b[at + 2], b[at + 3]]
}

/// Checks the IPv4 header at `l3` and its TCP/UDP/ICMP checksum from
/// scratch; returns (src, dst, ttl, proto).
pub fn check_ipv4(pkt: &[u8], l3: usize) -> ([u8; 4], [u8; 4], u8, u8) {
    let ip = &pkt[l3..];
    assert_eq!(ip[0], 0x45);
    assert_eq!(csum(&ip[..20]), 0, "IPv4 header checksum");
    let total = usize::from(be16(ip, 2));
    assert_eq!(total, ip.len(), "IPv4 total length matches the frame");
    let proto = ip[9];
    let seg = &ip[20..total];
    let at = match proto {
        6 => Some(16),
        17 if be16(seg, 6) != 0 => Some(6),
        1 => Some(2),
        _ => None,
    };
    if let Some(at) = at {
        assert_eq!(
            be16(seg, at),
            l4_csum_v4(ip, proto, seg, at),
            "L4 checksum of proto {proto}"
        );
    }
    (v4(ip, 12), v4(ip, 16), ip[8], proto)
}

/// (src port, dst port) of the L4 header after the IPv4 header at `l3`.
pub fn ports(pkt: &[u8], l3: usize) -> (u16, u16) {
    (be16(pkt, l3 + 20), be16(pkt, l3 + 22))
}

pub fn macs(pkt: &[u8], eth: usize) -> ([u8; 6], [u8; 6]) {
    let m = |at: usize| -> [u8; 6] { pkt[at..at + 6].try_into().unwrap() };
    (m(eth + 6), m(eth))
}
