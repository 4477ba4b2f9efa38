//! Fragmented datagrams: the later fragments (no L4 header) follow the
//! pair side their first fragment took, so a large UDP datagram crosses
//! SNAT, a stateful ACL and VXLAN encapsulation whole. Every fragment is
//! checked field by field, and the datagram reassembled by the test
//! carries a valid L4 checksum for the rewritten addresses and ports.

mod shard_support;

use shard_support::*;
use std::sync::Arc;
use vfp_core::action::nat::NatPorts;
use vfp_core::flow::fragments::FRAGMENT_TIMEOUT_NS;
use vfp_core::shard::{DropReason, ShardMsg, Verdict};

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [198, 51, 100, 7];
const PUBLIC: [u8; 4] = [203, 0, 113, 10];

/// The IPv4 fragments (Ethernet frames, fixed MACs) of `l4` (a whole TCP/UDP
/// segment with its checksum), `mtu` bytes of IP packet at most.
fn fragments(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16, l4: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let step = (mtu - 20) / 8 * 8;
    l4.chunks(step)
        .enumerate()
        .map(|(i, part)| {
            let more = (i + 1) * step < l4.len();
            let mut ip = ipv4(src, dst, proto, 64, part);
            ip[4..6].copy_from_slice(&id.to_be_bytes());
            let flags_off = (u16::from(more) << 13) | ((i * step / 8) as u16);
            ip[6..8].copy_from_slice(&flags_off.to_be_bytes());
            ip[10..12].copy_from_slice(&[0, 0]);
            let c = csum(&ip[..20]);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            eth(GW_MAC, VM_MAC, 0x0800, &ip)
        })
        .collect()
}

/// Checks each fragment's IPv4 header (checksum, addresses, id) and
/// puts the datagram back together: (src, dst, the L4 segment).
fn reassemble(frags: &[Vec<u8>]) -> ([u8; 4], [u8; 4], Vec<u8>) {
    let mut seg = Vec::new();
    let (src, dst, id) = (v4(&frags[0], 26), v4(&frags[0], 30), be16(&frags[0], 18));
    for (i, f) in frags.iter().enumerate() {
        let ip = &f[14..];
        assert_eq!(csum(&ip[..20]), 0, "fragment {i}: IPv4 header checksum");
        assert_eq!((v4(ip, 12), v4(ip, 16), be16(ip, 4)), (src, dst, id), "fragment {i}");
        assert_eq!(usize::from(be16(ip, 6) & 0x1fff) * 8, seg.len(), "fragment {i}: offset");
        seg.extend_from_slice(&ip[20..usize::from(be16(ip, 2))]);
    }
    (src, dst, seg)
}

fn big_payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn a_fragmented_udp_datagram_crosses_snat_both_ways() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(&snat_policy(40000, 40099), 1), &nat, 0, 1);
    let payload = big_payload(3001);
    let seg = udp_seg(CLIENT, 5353, SERVER, 53, &payload, true);
    let frags = fragments(CLIENT, SERVER, 17, 0x4242, &seg, 1500);
    assert_eq!(frags.len(), 3);
    let mut out = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        let (v, o) = run(&mut s, f, VM, i as u64);
        assert_eq!(v, Verdict::Forward { vport: WAN }, "fragment {i}");
        out.push(o);
    }
    let (src, dst, got) = reassemble(&out);
    assert_eq!((src, dst), (PUBLIC, SERVER));
    let nport = be16(&got, 0);
    assert!((40000..=40099).contains(&nport));
    assert_eq!(be16(&got, 2), 53);
    assert_eq!(got[8..], payload[..]);
    let ip = ipv4(src, dst, 17, 64, &got);
    assert_eq!(be16(&got, 6), l4_csum_v4(&ip, 17, &got, 6), "reassembled UDP checksum");
    assert_eq!(s.stats().fragments_forwarded.get(), 2);

    // The answer, fragmented too, reaches the client whole.
    let answer = udp_seg(SERVER, 53, PUBLIC, nport, &big_payload(2500), true);
    let back: Vec<Vec<u8>> = fragments(SERVER, PUBLIC, 17, 0x0101, &answer, 1280)
        .iter()
        .map(|f| {
            let (v, o) = run(&mut s, f, WAN, 5);
            assert_eq!(v, Verdict::Forward { vport: VM });
            o
        })
        .collect();
    let (src, dst, got) = reassemble(&back);
    assert_eq!((src, dst, be16(&got, 0), be16(&got, 2)), (SERVER, CLIENT, 53, 5353));
    let ip = ipv4(src, dst, 17, 64, &got);
    assert_eq!(be16(&got, 6), l4_csum_v4(&ip, 17, &got, 6), "reassembled UDP checksum");
    assert_eq!(s.stats().fragments_forwarded.get(), 3);
    assert_eq!(s.len(), 1);
}

#[test]
fn later_fragments_without_their_first_are_dropped() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(&snat_policy(40000, 40099), 1), &nat, 0, 1);
    let seg = udp_seg(CLIENT, 5353, SERVER, 53, &big_payload(2000), true);
    let frags = fragments(CLIENT, SERVER, 17, 7, &seg, 1500);
    // Before its first fragment.
    assert_eq!(run(&mut s, &frags[1], VM, 0).0, Verdict::Drop(DropReason::Fragment));
    assert_eq!(run(&mut s, &frags[0], VM, 1).0, Verdict::Forward { vport: WAN });
    // Another datagram of the same flow (another id) has no entry.
    let other = fragments(CLIENT, SERVER, 17, 8, &seg, 1500);
    assert_eq!(run(&mut s, &other[1], VM, 2).0, Verdict::Drop(DropReason::Fragment));
    // Too late.
    let late = 1 + FRAGMENT_TIMEOUT_NS + 1;
    assert_eq!(run(&mut s, &frags[1], VM, late).0, Verdict::Drop(DropReason::Fragment));
    assert_eq!(s.stats().drop_count(DropReason::Fragment), 3);
    // In time it follows.
    assert_eq!(run(&mut s, &frags[1], VM, 3).0, Verdict::Forward { vport: WAN });

    // A denied first fragment leaves nothing for its followers.
    let mut s = shard(policy(OUT_TCP_ONLY, 1), &nat, 0, 1);
    assert_eq!(run(&mut s, &frags[0], VM, 0).0, Verdict::Drop(DropReason::PolicyDeny));
    assert_eq!(run(&mut s, &frags[1], VM, 1).0, Verdict::Drop(DropReason::Fragment));
}

const OUT_TCP_ONLY: &str = r#"
[[layers]]
name = "acl"
default = "deny"

[[layers.groups]]

[[layers.groups.rules]]
id = 1
priority = 1
direction = "out"
proto = "tcp"
action = "allow"
"#;

#[test]
fn on_two_shards_later_fragments_reach_the_shard_of_their_first() {
    let pol = policy(&snat_policy(40000, 40099), 1);
    let seg = udp_seg(CLIENT, 6000, SERVER, 53, &big_payload(2000), true);
    let mut both_ways = [false; 2];
    // Datagram ids whose key belongs to the holder, and to the other one.
    for id in 1..40u16 {
        let nat = Arc::new(NatPorts::new());
        let mut shards = [shard(pol.clone(), &nat, 0, 2), shard(pol.clone(), &nat, 1, 2)];
        let frags = fragments(CLIENT, SERVER, 17, id, &seg, 1500);
        let holder = match run(&mut shards[0], &frags[0], VM, 0).0 {
            Verdict::Forward { .. } => 0,
            Verdict::Redirect { owner } => {
                assert_eq!(
                    run_with(&mut shards[owner], &frags[0], VM, 0, false).0,
                    Verdict::Forward { vport: WAN }
                );
                owner
            }
            v => panic!("{v:?}"),
        };
        let msgs: Vec<ShardMsg> = shards[holder].outbox().drain(..).collect();
        let redirected = msgs.iter().any(|m| matches!(m, ShardMsg::InstallFragRedirect { .. }));
        for m in msgs {
            shards[m.to()].deliver(m);
        }
        both_ways[usize::from(redirected)] = true;
        // The later fragment lands on the other shard first.
        let other = 1 - holder;
        let v = run(&mut shards[other], &frags[1], VM, 1).0;
        assert_eq!(v, Verdict::Redirect { owner: holder }, "id {id}");
        let (v, out) = run_with(&mut shards[holder], &frags[1], VM, 1, false);
        assert_eq!(v, Verdict::Forward { vport: WAN }, "id {id}");
        assert_eq!(v4(&out, 26), PUBLIC);
    }
    assert_eq!(both_ways, [true, true], "both cases seen");
}

const OUT_ONLY: &str = r#"
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

const V6_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];

/// IPv6 fragments (Ethernet frames, fragment header) of a UDP datagram
/// from `src` port `sp` to `dst` port `dp`, checksum filled in.
fn udp6_fragments(src: [u8; 16], sp: u16, dst: [u8; 16], dp: u16, ident: u32, payload: &[u8]) -> Vec<Vec<u8>> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sp.to_be_bytes());
    u[2..4].copy_from_slice(&dp.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(payload);
    let pseudo = [&src[..], &dst[..], &(u.len() as u32).to_be_bytes(), &[0, 0, 0, 17]].concat();
    let c = csum(&[&pseudo[..], &u].concat());
    u[6..8].copy_from_slice(&c.to_be_bytes());
    let step = 1232;
    u.chunks(step)
        .enumerate()
        .map(|(i, part)| {
            let more = (i + 1) * step < u.len();
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&((8 + part.len()) as u16).to_be_bytes());
            ip.extend_from_slice(&[44, 64]);
            ip.extend_from_slice(&src);
            ip.extend_from_slice(&dst);
            ip.extend_from_slice(&[17, 0]);
            ip.extend_from_slice(&(((i * step) as u16) | u16::from(more)).to_be_bytes());
            ip.extend_from_slice(&ident.to_be_bytes());
            ip.extend_from_slice(part);
            eth(GW_MAC, VM_MAC, 0x86dd, &ip)
        })
        .collect()
}

#[test]
fn ipv6_fragments_follow_their_flow_through_a_stateful_acl() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(OUT_ONLY, 1), &nat, 0, 1);
    let out = udp6_fragments(V6_A, 5000, V6_B, 53, 0xdead_beef, &big_payload(3000));
    assert_eq!(out.len(), 3);
    for (i, f) in out.iter().enumerate() {
        let (v, o) = run(&mut s, f, VM, 0);
        assert_eq!(v, Verdict::Forward { vport: WAN }, "fragment {i}");
        assert_eq!(&o, f, "no rewrite: fragment {i} unchanged");
    }
    // The answer's fragments come back in; another datagram's later
    // fragment (its first never seen) and an unsolicited one do not.
    let back = udp6_fragments(V6_B, 53, V6_A, 5000, 7, &big_payload(2000));
    for f in &back {
        assert_eq!(run(&mut s, f, WAN, 1).0, Verdict::Forward { vport: VM });
    }
    let stray = udp6_fragments(V6_B, 53, V6_A, 5000, 8, &big_payload(2000));
    assert_eq!(run(&mut s, &stray[1], WAN, 1).0, Verdict::Drop(DropReason::Fragment));
    let unsolicited = udp6_fragments(V6_B, 53, V6_A, 5001, 9, &big_payload(2000));
    assert_eq!(
        run(&mut s, &unsolicited[0], WAN, 1).0,
        Verdict::Drop(DropReason::PolicyDeny)
    );
    assert_eq!(
        run(&mut s, &unsolicited[1], WAN, 1).0,
        Verdict::Drop(DropReason::Fragment)
    );
    assert_eq!(s.stats().fragments_forwarded.get(), 3);
}

#[test]
fn later_fragments_are_encapsulated_like_their_first() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/acl-snat-vxlan.toml"))
        .expect("example policy");
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(&text, 1), &nat, 0, 1);
    const VM_IP: [u8; 4] = [10, 1, 0, 4];
    let seg = udp_seg(VM_IP, 5353, SERVER, 53, &big_payload(2000), true);
    let frags = fragments(VM_IP, SERVER, 17, 99, &seg, 1500);
    let out: Vec<Vec<u8>> = frags
        .iter()
        .map(|f| {
            let (v, o) = run(&mut s, f, VM, 0);
            assert_eq!(v, Verdict::Forward { vport: WAN });
            o
        })
        .collect();
    // Each leaves in VXLAN (50 bytes of outer headers, same VNI), the
    // tenant fragments inside SNAT'd alike.
    let inner: Vec<Vec<u8>> = out
        .iter()
        .map(|o| {
            check_ipv4(o, 14);
            assert_eq!(be16(o, 36), 4789);
            assert_eq!(o[46..49], out[0][46..49], "VNI");
            o[50..].to_vec()
        })
        .collect();
    let (src, dst, got) = reassemble(&inner);
    assert_eq!(dst, SERVER);
    assert_ne!(src, VM_IP, "SNAT'd");
    let ip = ipv4(src, dst, 17, 64, &got);
    assert_eq!(be16(&got, 6), l4_csum_v4(&ip, 17, &got, 6), "reassembled UDP checksum");
}
