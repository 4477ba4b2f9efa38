//! Fragmented datagrams: the later fragments (no L4 header) follow the
//! pair side their first fragment took, so a large UDP datagram crosses
//! SNAT, a stateful ACL and VXLAN encapsulation whole. Every fragment is
//! checked field by field, and the datagram reassembled by the test
//! carries a valid L4 checksum for the rewritten addresses and ports.

mod shard_support;

use shard_support::*;
use std::sync::Arc;
use vfp_core::action::nat::NatPorts;
use vfp_core::flow::fragments::{frag_key, FRAGMENT_TIMEOUT_NS};
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
    // In time it follows; too late it does not.
    assert_eq!(run(&mut s, &frags[1], VM, 3).0, Verdict::Forward { vport: WAN });
    let late = 1 + FRAGMENT_TIMEOUT_NS + 1;
    assert_eq!(run(&mut s, &frags[1], VM, late).0, Verdict::Drop(DropReason::Fragment));
    assert_eq!(s.stats().drop_count(DropReason::Fragment), 3);

    // A denied first fragment leaves nothing for its followers.
    let tcp_only = OUT_ONLY.replace("action = ", "proto = \"tcp\"\naction = ");
    let mut s = shard(policy(&tcp_only, 1), &nat, 0, 1);
    assert_eq!(run(&mut s, &frags[0], VM, 0).0, Verdict::Drop(DropReason::PolicyDeny));
    assert_eq!(run(&mut s, &frags[1], VM, 1).0, Verdict::Drop(DropReason::Fragment));
}

/// Two shards, `holder` holding the client's flow: its ports such that
/// the flow belongs to shard 1.
fn two_shards(nat: &Arc<NatPorts>) -> ([vfp_core::shard::Shard; 2], u16) {
    let pol = policy(&snat_policy(40000, 40099), 1);
    let cport = (6000..)
        .find(|&p| {
            let f = fragments(
                CLIENT,
                SERVER,
                17,
                1,
                &udp_seg(CLIENT, p, SERVER, 53, &[0; 8], true),
                1500,
            );
            vfp_core::parse::parse(&f[0]).map(|mut k| {
                k.key.vport = VM;
                k.key.owner(2)
            }) == Ok(1)
        })
        .unwrap();
    ([shard(pol.clone(), nat, 0, 2), shard(pol, nat, 1, 2)], cport)
}

#[test]
fn on_two_shards_later_fragments_follow_their_first_to_its_flow() {
    // Every fragment lands on shard 0 (one queue); the flow lives on 1.
    // No message is delivered in between: the first fragment's hand-off
    // alone sends the later ones after it.
    let nat = Arc::new(NatPorts::new());
    let (mut shards, cport) = two_shards(&nat);
    let seg = udp_seg(CLIENT, cport, SERVER, 53, &big_payload(4000), true);
    // A datagram whose own key belongs to shard 0 as well: nothing but
    // the first fragment's hand-off says where its flow is.
    let frags = (1u16..)
        .map(|id| fragments(CLIENT, SERVER, 17, id, &seg, 1500))
        .find(|f| {
            let p = parsed_for(&f[1], VM);
            frag_key(&f[1], &p).map(|(k, _)| k.owner(2)) == Some(0)
        })
        .unwrap();
    assert_eq!(frags.len(), 3);
    for f in &frags {
        assert_eq!(run(&mut shards[0], f, VM, 0).0, Verdict::Redirect { owner: 1 });
    }
    let out: Vec<Vec<u8>> = frags
        .iter()
        .map(|f| {
            let (v, o) = run_with(&mut shards[1], f, VM, 0, false);
            assert_eq!(v, Verdict::Forward { vport: WAN });
            o
        })
        .collect();
    let (src, _, got) = reassemble(&out);
    assert_eq!(src, PUBLIC);
    let ip = ipv4(src, SERVER, 17, 64, &got);
    assert_eq!(be16(&got, 6), l4_csum_v4(&ip, 17, &got, 6));
}

#[test]
fn on_two_shards_a_later_fragment_sent_elsewhere_finds_the_holder() {
    // A NIC spreading fragments by addresses only may send a later one to
    // a shard that never saw the first: the datagram key's owner, told by
    // the holder, redirects it there, however long that shard was idle.
    let t = 100 * SEC;
    for id in 1..60u16 {
        let nat = Arc::new(NatPorts::new());
        let (mut shards, cport) = two_shards(&nat);
        let seg = udp_seg(CLIENT, cport, SERVER, 53, &big_payload(2000), true);
        let frags = fragments(CLIENT, SERVER, 17, id, &seg, 1500);
        assert_eq!(
            run_with(&mut shards[1], &frags[0], VM, t, false).0,
            Verdict::Forward { vport: WAN }
        );
        let msgs: Vec<ShardMsg> = shards[1].outbox().drain(..).collect();
        let Some(m) = msgs
            .iter()
            .copied()
            .find(|m| matches!(m, ShardMsg::InstallFragRedirect { .. }))
        else {
            continue; // this datagram's key belongs to the holder itself
        };
        for m in msgs {
            shards[m.to()].deliver(m);
        }
        assert_eq!(m.to(), 0);
        let v = run(&mut shards[0], &frags[1], VM, t + 1).0;
        assert_eq!(v, Verdict::Redirect { owner: 1 }, "id {id}");
        assert_eq!(
            run_with(&mut shards[1], &frags[1], VM, t + 1, false).0,
            Verdict::Forward { vport: WAN }
        );
        return;
    }
    panic!("no datagram key owned by shard 0 among 59 ids");
}

#[test]
fn a_pair_slot_taken_by_another_flow_does_not_take_the_fragments() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(&snat_policy(40000, 40099), 1), &nat, 0, 1);
    let seg = udp_seg(CLIENT, 5353, SERVER, 53, &big_payload(2000), true);
    let frags = fragments(CLIENT, SERVER, 17, 5, &seg, 1500);
    assert_eq!(run(&mut s, &frags[0], VM, 0).0, Verdict::Forward { vport: WAN });
    // The flow goes; another client's flow to the same server takes its
    // slot (the slab hands out the last freed slot first).
    assert_eq!(s.flush(), 1);
    let other = udp_frame(VM_MAC, GW_MAC, (CLIENT, 5354), (SERVER, 53), true);
    assert_eq!(run(&mut s, &other, VM, 1).0, Verdict::Forward { vport: WAN });
    assert_eq!(run(&mut s, &frags[1], VM, 2).0, Verdict::Drop(DropReason::Fragment));
}

#[test]
fn overlapping_and_oversized_later_fragments_are_dropped() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(allow_all(), &nat, 0, 1);
    let seg = tcp_seg(CLIENT, 5000, SERVER, 80, tcp::ACK, &big_payload(2000));
    let frags = fragments(CLIENT, SERVER, 6, 9, &seg, 1500);
    let syn = tcp_frame(VM_MAC, GW_MAC, (CLIENT, 5000), (SERVER, 80), tcp::SYN);
    assert_eq!(run(&mut s, &syn, VM, 0).0, Verdict::Forward { vport: WAN });
    assert_eq!(run(&mut s, &frags[0], VM, 0).0, Verdict::Forward { vport: WAN });
    // RFC 1858: offset 8 would rewrite the TCP flags and window.
    let mut overlap = fragments(CLIENT, SERVER, 6, 9, &seg[8..40], 1500).remove(0);
    overlap[20..22].copy_from_slice(&1u16.to_be_bytes());
    fix_ip_csum(&mut overlap);
    assert_eq!(run(&mut s, &overlap, VM, 1).0, Verdict::Drop(DropReason::Fragment));
    // Ending past 65,535 bytes.
    let mut huge = frags[1].clone();
    huge[20..22].copy_from_slice(&0x1fffu16.to_be_bytes());
    fix_ip_csum(&mut huge);
    assert_eq!(run(&mut s, &huge, VM, 1).0, Verdict::Drop(DropReason::Fragment));
    assert_eq!(run(&mut s, &frags[1], VM, 1).0, Verdict::Forward { vport: WAN });
}

fn fix_ip_csum(f: &mut [u8]) {
    f[24..26].copy_from_slice(&[0, 0]);
    let c = csum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

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
    let text = example("acl-snat-vxlan.toml");
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

#[test]
fn ipv6_options_after_the_fragment_header_do_not_split_the_datagram() {
    // First fragment: fragment header -> destination options -> UDP;
    // later fragment: fragment header, then bytes. Both name options (60)
    // as the fragment header's next header.
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(allow_all(), &nat, 0, 1);
    let frag6 = |offset: u16, more: bool, body: &[u8]| -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[44, 64]);
        ip.extend_from_slice(&V6_A);
        ip.extend_from_slice(&V6_B);
        ip.extend_from_slice(&[60, 0]);
        ip.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
        ip.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        ip.extend_from_slice(body);
        eth(GW_MAC, VM_MAC, 0x86dd, &ip)
    };
    let mut first = vec![17, 0, 1, 4, 0, 0, 0, 0]; // options: PadN
    first.extend_from_slice(&[0x13, 0x88, 0, 53, 0x05, 0x00, 0, 0]); // UDP header
    first.extend_from_slice(&[0xab; 32]);
    let later = vec![0xcd; 64];
    assert_eq!(
        run(&mut s, &frag6(0, true, &first), VM, 0).0,
        Verdict::Forward { vport: WAN }
    );
    assert_eq!(
        run(&mut s, &frag6(48, false, &later), VM, 0).0,
        Verdict::Forward { vport: WAN }
    );
    assert_eq!(s.stats().fragments_forwarded.get(), 1);
}

#[test]
fn datagrams_pushed_out_of_the_table_are_counted() {
    // 2,000 datagrams in flight at once, in a table of 1,024 entries: each
    // whose entry a newer one replaced loses its later fragment, and is
    // counted as evicted, one for one.
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(allow_all(), &nat, 0, 1);
    let seg = udp_seg(CLIENT, 5353, SERVER, 53, &big_payload(2000), true);
    let all: Vec<Vec<Vec<u8>>> = (1..=2000u16)
        .map(|id| fragments(CLIENT, SERVER, 17, id, &seg, 1500))
        .collect();
    for f in &all {
        assert_eq!(run(&mut s, &f[0], VM, 0).0, Verdict::Forward { vport: WAN });
    }
    let evicted = s.stats().fragments_evicted.get();
    assert!(evicted >= 2000 - 1024, "{evicted}");
    let dropped = all
        .iter()
        .filter(|f| run(&mut s, &f[1], VM, 1).0 == Verdict::Drop(DropReason::Fragment))
        .count() as u64;
    assert_eq!(dropped, evicted);
    assert_eq!(s.stats().fragments_forwarded.get(), 2000 - evicted);
}
