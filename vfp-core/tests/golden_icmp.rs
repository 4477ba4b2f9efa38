//! ICMP errors of NAT'd and stateful flows: a router's error about a
//! packet that left through a flow pair reaches the host that sent it,
//! translated like a reply, so path MTU discovery works behind SNAT and a
//! stateful ACL. Every rewritten field and checksum of what leaves is
//! checked with the test's own checksum code.

mod shard_support;

use shard_support::*;
use std::sync::Arc;
use vfp_core::action::nat::NatPorts;
use vfp_core::shard::{DropReason, Shard, ShardMsg, Verdict};

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [198, 51, 100, 7];
const PUBLIC: [u8; 4] = [203, 0, 113, 10];
const ROUTER: [u8; 4] = [192, 0, 2, 254];

/// Destination unreachable, fragmentation needed (MTU 1400).
const FRAG_NEEDED: (u8, u8, [u8; 4]) = (3, 4, [0, 0, 0x05, 0x78]);
/// Time exceeded in transit.
const TTL_EXCEEDED: (u8, u8, [u8; 4]) = (11, 0, [0, 0, 0, 0]);
/// Destination unreachable, port unreachable.
const PORT_UNREACHABLE: (u8, u8, [u8; 4]) = (3, 3, [0, 0, 0, 0]);

/// An ICMPv4 error from `src` to `dst` quoting `quote` (an IP packet).
fn icmp_error(src: [u8; 4], dst: [u8; 4], kind: (u8, u8, [u8; 4]), quote: &[u8]) -> Vec<u8> {
    let mut m = vec![kind.0, kind.1, 0, 0];
    m.extend_from_slice(&kind.2);
    m.extend_from_slice(quote);
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    eth(GW_MAC, PEER_MAC, 0x0800, &ipv4(src, dst, 1, 60, &m))
}

/// The IP packet an error quotes, first `len` bytes of it (all if None).
fn quote_of(frame: &[u8], len: Option<usize>) -> Vec<u8> {
    let ip = &frame[14..];
    ip[..len.unwrap_or(ip.len()).min(ip.len())].to_vec()
}

/// Checks the error as it leaves (outer IPv4 and ICMP checksums from
/// scratch, type, code and the 4 bytes after the checksum kept); returns
/// (outer src, outer dst, the quoted packet).
fn open_error(out: &[u8], kind: (u8, u8, [u8; 4])) -> ([u8; 4], [u8; 4], Vec<u8>) {
    let (src, dst, _, p) = check_ipv4(out, 14);
    assert_eq!(p, 1);
    let icmp = &out[34..];
    assert_eq!((icmp[0], icmp[1]), (kind.0, kind.1), "type and code kept");
    assert_eq!(icmp[4..8], kind.2, "MTU / unused field kept");
    (src, dst, icmp[8..].to_vec())
}

/// Checks the quoted IPv4 header's checksum; returns (src, dst, proto).
fn quoted_ip(q: &[u8]) -> ([u8; 4], [u8; 4], u8) {
    assert_eq!(csum(&q[..20]), 0, "quoted IPv4 header checksum");
    (v4(q, 12), v4(q, 16), q[9])
}

fn snat_shard(nat: &Arc<NatPorts>) -> Shard {
    shard(policy(&snat_policy(40000, 40099), 1), nat, 0, 1)
}

#[test]
fn frag_needed_for_a_snat_connection_reaches_the_client_translated() {
    let nat = Arc::new(NatPorts::new());
    let mut s = snat_shard(&nat);
    let syn = tcp_frame(VM_MAC, GW_MAC, (CLIENT, 33000), (SERVER, 443), tcp::SYN);
    let (v, out) = run(&mut s, &syn, VM, 0);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    let nport = ports(&out, 14).0;

    // A router on the way quotes the whole packet as it left.
    let err = icmp_error(ROUTER, PUBLIC, FRAG_NEEDED, &quote_of(&out, None));
    let (v, back) = run(&mut s, &err, WAN, 1);
    assert_eq!(v, Verdict::Forward { vport: VM });
    let (src, dst, q) = open_error(&back, FRAG_NEEDED);
    assert_eq!(
        (src, dst),
        (ROUTER, CLIENT),
        "the router's address stays, the client's is restored"
    );
    assert_eq!(quoted_ip(&q), (CLIENT, SERVER, 6));
    assert_eq!(
        ports(&q, 0),
        (33000, 443),
        "quoted source port restored (NAT port was {nport})"
    );
    // The quote is the whole segment: its TCP checksum verifies again.
    assert_eq!(be16(&q, 36), l4_csum_v4(&q, 6, &q[20..], 16), "quoted TCP checksum");
    assert_eq!(q[20..], syn[34..], "the quoted segment is the client's own");

    // Counted as related and forwarded; no pair was made for it.
    assert_eq!(s.stats().icmp_related.get(), 1);
    assert_eq!(s.len(), 1);
    assert_eq!(s.stats().flows_created.get(), 1);
}

#[test]
fn a_short_quote_is_translated_as_far_as_it_goes() {
    let nat = Arc::new(NatPorts::new());
    let mut s = snat_shard(&nat);
    for with_csum in [true, false] {
        let cport = if with_csum { 5353 } else { 5354 };
        let dgram = udp_frame(VM_MAC, GW_MAC, (CLIENT, cport), (SERVER, 53), with_csum);
        let (_, out) = run(&mut s, &dgram, VM, 0);
        // RFC 792: the IP header and the first 8 bytes of the datagram.
        let err = icmp_error(ROUTER, PUBLIC, TTL_EXCEEDED, &quote_of(&out, Some(28)));
        let (v, back) = run(&mut s, &err, WAN, 1);
        assert_eq!(v, Verdict::Forward { vport: VM });
        let (src, dst, q) = open_error(&back, TTL_EXCEEDED);
        assert_eq!((src, dst), (ROUTER, CLIENT));
        assert_eq!(q.len(), 28);
        assert_eq!(quoted_ip(&q), (CLIENT, SERVER, 17));
        // The UDP header is the client's again, checksum included (a
        // datagram without one stays without).
        assert_eq!(q[20..28], dgram[34..42], "with checksum: {with_csum}");
    }

    // A quote cut inside the TCP header: the ports are restored, the
    // checksum it does not hold is left alone.
    let syn = tcp_frame(VM_MAC, GW_MAC, (CLIENT, 33001), (SERVER, 443), tcp::SYN);
    let (_, out) = run(&mut s, &syn, VM, 2);
    let err = icmp_error(ROUTER, PUBLIC, FRAG_NEEDED, &quote_of(&out, Some(28)));
    let (v, back) = run(&mut s, &err, WAN, 3);
    assert_eq!(v, Verdict::Forward { vport: VM });
    let (_, _, q) = open_error(&back, FRAG_NEEDED);
    assert_eq!(q[20..28], syn[34..42]);
    assert_eq!(s.stats().icmp_related.get(), 3);
}

#[test]
fn an_error_about_a_ping_restores_its_identifier() {
    let nat = Arc::new(NatPorts::new());
    let mut s = snat_shard(&nat);
    let ping = eth(
        GW_MAC,
        VM_MAC,
        0x0800,
        &ipv4(CLIENT, SERVER, 1, 64, &icmp_echo(8, 777, 1)),
    );
    let (v, out) = run(&mut s, &ping, VM, 0);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    let ident = be16(&out, 38);
    assert_ne!(ident, 777, "the identifier is the NAT port");
    let err = icmp_error(ROUTER, PUBLIC, TTL_EXCEEDED, &quote_of(&out, None));
    let (v, back) = run(&mut s, &err, WAN, 1);
    assert_eq!(v, Verdict::Forward { vport: VM });
    let (_, dst, q) = open_error(&back, TTL_EXCEEDED);
    assert_eq!(dst, CLIENT);
    assert_eq!(quoted_ip(&q), (CLIENT, SERVER, 1));
    assert_eq!(
        q[20..],
        ping[34..],
        "the quoted echo request is the client's own, checksum included"
    );
}

#[test]
fn the_vm_s_own_error_leaves_with_the_public_address() {
    // A server replies to the client's datagram; the client's host
    // answers that reply with port unreachable.
    let nat = Arc::new(NatPorts::new());
    let mut s = snat_shard(&nat);
    let dgram = udp_frame(VM_MAC, GW_MAC, (CLIENT, 5000), (SERVER, 53), true);
    let (_, out) = run(&mut s, &dgram, VM, 0);
    let nport = ports(&out, 14).0;
    let reply = udp_frame(PEER_MAC, GW_MAC, (SERVER, 53), (PUBLIC, nport), true);
    let (v, inside) = run(&mut s, &reply, WAN, 1);
    assert_eq!(v, Verdict::Forward { vport: VM });
    let mut err = icmp_error(CLIENT, SERVER, PORT_UNREACHABLE, &quote_of(&inside, None));
    err[..12].copy_from_slice(&[GW_MAC, VM_MAC].concat());
    let (v, leaving) = run(&mut s, &err, VM, 2);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    let (src, dst, q) = open_error(&leaving, PORT_UNREACHABLE);
    assert_eq!((src, dst), (PUBLIC, SERVER));
    assert_eq!(quoted_ip(&q), (SERVER, PUBLIC, 17));
    assert_eq!(ports(&q, 0), (53, nport));
    assert_eq!(q[20..], reply[34..], "the quote is the reply as the server sent it");
}

#[test]
fn errors_of_no_flow_are_dropped_and_open_none() {
    // Even where the policy allows everything: an error never opens a flow.
    for pol in [policy(&snat_policy(40000, 40099), 1), allow_all()] {
        let nat = Arc::new(NatPorts::new());
        let mut s = shard(pol, &nat, 0, 1);
        let stray = udp_frame(VM_MAC, GW_MAC, (PUBLIC, 40007), (SERVER, 53), true);
        let err = icmp_error(ROUTER, PUBLIC, FRAG_NEEDED, &quote_of(&stray, None));
        assert_eq!(run(&mut s, &err, WAN, 0).0, Verdict::Drop(DropReason::NoFlow));
        // An error about an error is never answered or forwarded either.
        let inner = icmp_error(PUBLIC, SERVER, PORT_UNREACHABLE, &quote_of(&stray, Some(28)));
        let err2 = icmp_error(ROUTER, PUBLIC, TTL_EXCEEDED, &quote_of(&inner, Some(28)));
        assert_eq!(run(&mut s, &err2, WAN, 0).0, Verdict::Drop(DropReason::NoFlow));
        assert_eq!(s.len(), 0);
        assert_eq!(s.stats().drop_count(DropReason::NoFlow), 2);
    }
    // Ordinary ICMP (a ping) still opens its flow.
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(allow_all(), &nat, 0, 1);
    let ping = eth(
        GW_MAC,
        VM_MAC,
        0x0800,
        &ipv4(CLIENT, SERVER, 1, 64, &icmp_echo(8, 1, 1)),
    );
    assert_eq!(run(&mut s, &ping, VM, 0).0, Verdict::Forward { vport: WAN });
    assert_eq!(s.len(), 1);
}

#[test]
fn a_port_forwarded_connection_s_errors_go_both_ways() {
    let text = format!(
        "{}{}",
        snat_policy(40000, 40099),
        r#"
[[layers.groups.rules]]
id = 2
priority = 2
direction = "in"
dst = ["203.0.113.10/32"]
proto = "tcp"
dst_ports = [80]
action = "dnat"
dnat = { backends = ["10.0.0.5:8080"] }
"#
    );
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(&text, 1), &nat, 0, 1);
    const BACKEND: [u8; 4] = [10, 0, 0, 5];
    let syn = tcp_frame(PEER_MAC, GW_MAC, (SERVER, 7000), (PUBLIC, 80), tcp::SYN);
    let (v, inside) = run(&mut s, &syn, WAN, 0);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!((check_ipv4(&inside, 14).1, ports(&inside, 14).1), (BACKEND, 8080));

    // The backend's host refuses it: the error leaves from the public
    // address and quotes the packet as the client sent it.
    let refuse = icmp_error(BACKEND, SERVER, PORT_UNREACHABLE, &quote_of(&inside, None));
    let (v, out) = run(&mut s, &refuse, VM, 1);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    let (src, dst, q) = open_error(&out, PORT_UNREACHABLE);
    assert_eq!((src, dst), (PUBLIC, SERVER));
    assert_eq!(quoted_ip(&q), (SERVER, PUBLIC, 6));
    assert_eq!(q[20..], syn[34..]);

    // A router on the client's side cannot deliver the backend's reply
    // (sent from the public address): the error reaches the backend.
    let synack = tcp_frame(VM_MAC, GW_MAC, (BACKEND, 8080), (SERVER, 7000), tcp::SYN | tcp::ACK);
    let (v, reply) = run(&mut s, &synack, VM, 2);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    let err = icmp_error(ROUTER, PUBLIC, FRAG_NEEDED, &quote_of(&reply, None));
    let (v, back) = run(&mut s, &err, WAN, 3);
    assert_eq!(v, Verdict::Forward { vport: VM });
    let (src, dst, q) = open_error(&back, FRAG_NEEDED);
    assert_eq!((src, dst), (ROUTER, BACKEND));
    assert_eq!(quoted_ip(&q), (BACKEND, SERVER, 6));
    assert_eq!(q[20..], synack[34..]);
    assert_eq!(s.stats().icmp_related.get(), 2);
}

#[test]
fn on_two_shards_an_error_reaches_the_shard_holding_its_flow() {
    // The client's connection lives on shard 0. Its reply key belongs to
    // shard 1 (a redirect there) for one NAT port, to shard 0 for another.
    let cport = (1000..)
        .find(|&p| tcp_key(CLIENT, p, SERVER, 80).owner(2) == 0)
        .unwrap();
    for reply_owner in [1, 0] {
        let nport = (20000..)
            .find(|&p| tcp_key(SERVER, 80, PUBLIC, p).owner(2) == reply_owner)
            .unwrap();
        let nat = Arc::new(NatPorts::new());
        let pol = policy(&snat_policy(nport, nport), 1);
        let mut shards = [shard(pol.clone(), &nat, 0, 2), shard(pol, &nat, 1, 2)];
        let syn = tcp_frame(VM_MAC, GW_MAC, (CLIENT, cport), (SERVER, 80), tcp::SYN);
        let (_, out) = run_with(&mut shards[0], &syn, VM, 0, false);
        let msgs: Vec<ShardMsg> = shards[0].outbox().drain(..).collect();
        for m in msgs {
            shards[m.to()].deliver(m);
        }
        let err = icmp_error(ROUTER, PUBLIC, FRAG_NEEDED, &quote_of(&out, None));
        // Landing on shard 1 (whatever its own key's owner), it is handed
        // to shard 0, through the redirect or by the reply key's owner.
        assert_eq!(run(&mut shards[1], &err, WAN, 1).0, Verdict::Redirect { owner: 0 });
        let (v, back) = run_with(&mut shards[0], &err, WAN, 1, false);
        assert_eq!(v, Verdict::Forward { vport: VM });
        let (_, dst, q) = open_error(&back, FRAG_NEEDED);
        assert_eq!(dst, CLIENT);
        assert_eq!(ports(&q, 0), (cport, 80));
        // A handed-over error that finds nothing is dropped, not passed on.
        let stray = icmp_error(ROUTER, PUBLIC, FRAG_NEEDED, &quote_of(&syn, None));
        assert_eq!(
            run_with(&mut shards[1], &stray, WAN, 2, false).0,
            Verdict::Drop(DropReason::NoFlow)
        );
    }
}

const V6_CLIENT: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_SERVER: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
const V6_ROUTER: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe];

/// An IPv6 frame; the L4 checksum (TCP at 16, ICMPv6 at 2) is filled in.
fn ipv6_frame(src: [u8; 16], dst: [u8; 16], next: u8, mut l4: Vec<u8>) -> Vec<u8> {
    let at = if next == 6 { 16 } else { 2 };
    let c = csum(&[&pseudo6(&src, &dst, next, l4.len())[..], &l4].concat());
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[next, 64]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(&l4);
    eth(GW_MAC, VM_MAC, 0x86dd, &ip)
}

fn pseudo6(src: &[u8; 16], dst: &[u8; 16], next: u8, len: usize) -> Vec<u8> {
    [&src[..], &dst[..], &(len as u32).to_be_bytes(), &[0, 0, 0, next]].concat()
}

#[test]
fn packet_too_big_passes_a_stateful_acl_back_to_the_ipv6_client() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(OUT_ONLY, 1), &nat, 0, 1);
    let mut seg = vec![0u8; 20];
    seg[0..2].copy_from_slice(&33000u16.to_be_bytes());
    seg[2..4].copy_from_slice(&443u16.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = tcp::SYN;
    seg.extend_from_slice(&[0x5a; 1300]);
    let syn = ipv6_frame(V6_CLIENT, V6_SERVER, 6, seg);
    assert_eq!(run(&mut s, &syn, VM, 0).0, Verdict::Forward { vport: WAN });

    // Packet too big (MTU 1280), quoting as much as fits in 1280 bytes.
    let mut ptb = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
    ptb.extend_from_slice(&syn[14..14 + 1280 - 48]);
    let err = ipv6_frame(V6_ROUTER, V6_CLIENT, 58, ptb.clone());
    let (v, back) = run(&mut s, &err, WAN, 1);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(back, err, "no NAT: the error passes unchanged");
    assert_eq!(s.stats().icmp_related.get(), 1);

    // Unsolicited, the same error (for a connection that never was) and
    // a new inbound connection are refused.
    let mut other = ptb;
    other[8 + 40..8 + 42].copy_from_slice(&33001u16.to_be_bytes());
    let stray = ipv6_frame(V6_ROUTER, V6_CLIENT, 58, other);
    assert_eq!(run(&mut s, &stray, WAN, 2).0, Verdict::Drop(DropReason::NoFlow));
    let mut seg = vec![0u8; 20];
    seg[13] = tcp::SYN;
    seg[12] = 5 << 4;
    let inbound = ipv6_frame(V6_SERVER, V6_CLIENT, 6, seg);
    assert_eq!(run(&mut s, &inbound, WAN, 3).0, Verdict::Drop(DropReason::PolicyDeny));
    assert_eq!(s.len(), 1);
}

#[test]
fn an_error_arriving_in_vxlan_is_translated_and_decapsulated() {
    // examples/acl-snat-vxlan.toml: the VM's traffic leaves SNAT'd in
    // VXLAN; the overlay's errors come back the same way.
    let text = example("acl-snat-vxlan.toml");
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(&text, 1), &nat, 0, 1);
    const VM_IP: [u8; 4] = [10, 1, 0, 4];
    let syn = tcp_frame(VM_MAC, GW_MAC, (VM_IP, 41000), (SERVER, 443), tcp::SYN);
    let (v, out) = run(&mut s, &syn, VM, 0);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    // Outer Ethernet + IPv4 + UDP + VXLAN = 50 bytes, then the tenant frame.
    assert_eq!(be16(&out, 36), 4789, "VXLAN out");
    let inner = &out[50..];
    let (isrc, _, _, _) = check_ipv4(inner, 14);
    let (osrc, odst) = (v4(&out, 26), v4(&out, 30));
    let vni = u32::from_be_bytes([0, out[46], out[47], out[48]]);

    let err_inner = {
        let mut e = icmp_error(ROUTER, isrc, FRAG_NEEDED, &quote_of(inner, None));
        e[..12].copy_from_slice(&[inner[6..12].to_vec(), inner[..6].to_vec()].concat());
        e
    };
    let err = vxlan_frame(PEER_MAC, GW_MAC, odst, osrc, vni, &err_inner);
    let (v, back) = run(&mut s, &err, WAN, 1);
    assert_eq!(
        v,
        Verdict::Forward { vport: VM },
        "{:?}",
        s.stats().drops().filter(|d| d.1 > 0).collect::<Vec<_>>()
    );
    let (src, dst, q) = open_error(&back, FRAG_NEEDED);
    assert_eq!((src, dst), (ROUTER, VM_IP), "decapsulated and translated");
    assert_eq!(quoted_ip(&q).0, VM_IP);
    assert_eq!(q[20..], syn[34..]);
}

#[test]
fn an_error_not_addressed_to_the_quoted_source_is_dropped() {
    // The server quotes the client's connection but sends the error to
    // another host behind the same ACL: no flow lets that through.
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(OUT_ONLY, 1), &nat, 0, 1);
    let syn = tcp_frame(VM_MAC, GW_MAC, (CLIENT, 33000), (SERVER, 443), tcp::SYN);
    let (_, out) = run(&mut s, &syn, VM, 0);
    let other = [10, 0, 0, 99];
    let forged = icmp_error(SERVER, other, PORT_UNREACHABLE, &quote_of(&out, None));
    assert_eq!(run(&mut s, &forged, WAN, 1).0, Verdict::Drop(DropReason::NoFlow));
    let genuine = icmp_error(SERVER, CLIENT, PORT_UNREACHABLE, &quote_of(&out, None));
    assert_eq!(run(&mut s, &genuine, WAN, 2).0, Verdict::Forward { vport: VM });
    assert_eq!(s.stats().icmp_related.get(), 1);
}

#[test]
fn an_error_between_hosts_with_an_icmp_flow_still_finds_the_quoted_one() {
    // The client's timestamp request to the router opened an ICMP flow
    // between the two; the router's error about a TCP segment must not
    // take that flow (whose rewrite would leave the quote untranslated).
    let nat = Arc::new(NatPorts::new());
    let mut s = snat_shard(&nat);
    let mut ts = vec![13, 0, 0, 0, 0, 0, 0, 0];
    ts.extend_from_slice(&[0; 12]);
    let c = csum(&ts);
    ts[2..4].copy_from_slice(&c.to_be_bytes());
    let tsreq = eth(GW_MAC, VM_MAC, 0x0800, &ipv4(CLIENT, ROUTER, 1, 64, &ts));
    assert_eq!(run(&mut s, &tsreq, VM, 0).0, Verdict::Forward { vport: WAN });
    let syn = tcp_frame(VM_MAC, GW_MAC, (CLIENT, 33000), (SERVER, 443), tcp::SYN);
    let (_, out) = run(&mut s, &syn, VM, 1);
    let err = icmp_error(ROUTER, PUBLIC, FRAG_NEEDED, &quote_of(&out, None));
    let (v, back) = run(&mut s, &err, WAN, 2);
    assert_eq!(v, Verdict::Forward { vport: VM });
    let (_, dst, q) = open_error(&back, FRAG_NEEDED);
    assert_eq!(dst, CLIENT);
    assert_eq!(ports(&q, 0), (33000, 443));
    assert_eq!(s.stats().icmp_related.get(), 1);
}

#[test]
fn after_a_reload_an_error_follows_the_reconciled_flow() {
    let nat = Arc::new(NatPorts::new());
    let mut s = snat_shard(&nat);
    let syn = tcp_frame(VM_MAC, GW_MAC, (CLIENT, 33000), (SERVER, 443), tcp::SYN);
    let (_, out) = run(&mut s, &syn, VM, 0);
    let nport = ports(&out, 14).0;
    let err = icmp_error(ROUTER, PUBLIC, FRAG_NEEDED, &quote_of(&out, None));

    // The same SNAT under a new generation: the pair keeps its binding,
    // and the error is translated as before.
    s.set_policy(policy(&snat_policy(40000, 40099), 2));
    let (v, back) = run(&mut s, &err, WAN, 1);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(s.stats().reconciled.get(), 1);
    let (_, dst, q) = open_error(&back, FRAG_NEEDED);
    assert_eq!((dst, ports(&q, 0)), (CLIENT, (33000, 443)));

    // A policy without SNAT: the connection's reply key is no longer the
    // NAT'd one, so an error quoting the NAT'd packet belongs to nothing.
    s.set_policy(policy(OUT_ONLY, 3));
    assert_eq!(run(&mut s, &err, WAN, 2).0, Verdict::Drop(DropReason::NoFlow));
    assert_eq!(s.stats().reconciled.get(), 2);
    assert!(!nat.is_claimed(0, nport), "the NAT port went back");
    assert_eq!(s.len(), 1, "the connection itself lives on, un-NAT'd");
}

const V6_VIP: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_BACKEND: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];

fn tcp6(sp: u16, dp: u16, flags: u8, payload: usize) -> Vec<u8> {
    let mut seg = vec![0u8; 20];
    seg[0..2].copy_from_slice(&sp.to_be_bytes());
    seg[2..4].copy_from_slice(&dp.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = flags;
    seg.extend((0..payload).map(|i| i as u8));
    seg
}

/// An IPv6 address.
type A6 = [u8; 16];

/// Checks the ICMPv6 checksum (pseudo-header included) and, when the
/// quote is a whole TCP segment, its checksum; returns (outer src, outer
/// dst, quoted src, quoted dst, quoted ports).
fn open_error6(f: &[u8]) -> (A6, A6, A6, A6, (u16, u16)) {
    let ip = &f[14..];
    let addr = |b: &[u8], at: usize| -> [u8; 16] { b[at..at + 16].try_into().unwrap() };
    let (src, dst) = (addr(ip, 8), addr(ip, 24));
    let msg = &ip[40..40 + usize::from(be16(ip, 4))];
    assert_eq!(
        csum(&[&pseudo6(&src, &dst, 58, msg.len())[..], msg].concat()),
        0,
        "ICMPv6 checksum"
    );
    let q = &msg[8..];
    let (qs, qd) = (addr(q, 8), addr(q, 24));
    let seg = &q[40..];
    if usize::from(be16(q, 4)) == seg.len() {
        assert_eq!(
            csum(&[&pseudo6(&qs, &qd, 6, seg.len())[..], seg].concat()),
            0,
            "quoted TCP checksum"
        );
    }
    (src, dst, qs, qd, (be16(seg, 0), be16(seg, 2)))
}

#[test]
fn ipv6_port_forward_errors_are_translated_both_ways() {
    let text = r#"
[[layers]]
name = "nat"
default = "allow"

[[layers.groups]]

[[layers.groups.rules]]
id = 1
priority = 1
direction = "in"
dst = ["2001:db8:ff::1/128"]
proto = "tcp"
dst_ports = [80]
action = "dnat"
dnat = { backends = ["[2001:db8:1::5]:8080"] }
"#;
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(text, 1), &nat, 0, 1);
    let syn = ipv6_frame(V6_SERVER, V6_VIP, 6, tcp6(7000, 80, tcp::SYN, 101));
    let (v, inside) = run(&mut s, &syn, WAN, 0);
    assert_eq!(v, Verdict::Forward { vport: VM });

    // The backend's host refuses: the error leaves from the VIP, quoting
    // the client's own packet.
    let mut unreach = vec![1, 4, 0, 0, 0, 0, 0, 0];
    unreach.extend_from_slice(&inside[14..]);
    let refuse = ipv6_frame(V6_BACKEND, V6_SERVER, 58, unreach);
    let (v, out) = run(&mut s, &refuse, VM, 1);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    let (src, dst, qs, qd, qp) = open_error6(&out);
    assert_eq!(
        (src, dst, qs, qd, qp),
        (V6_VIP, V6_SERVER, V6_SERVER, V6_VIP, (7000, 80))
    );
    assert_eq!(out[14 + 48..], syn[14..], "the quote is the client's packet");

    // A router cannot deliver the backend's reply (sent from the VIP):
    // packet too big reaches the backend, quoting what it sent.
    let synack = ipv6_frame(V6_BACKEND, V6_SERVER, 6, tcp6(8080, 7000, tcp::SYN | tcp::ACK, 77));
    let (v, reply) = run(&mut s, &synack, VM, 2);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    let mut ptb = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
    ptb.extend_from_slice(&reply[14..]);
    let err = ipv6_frame(V6_ROUTER, V6_VIP, 58, ptb);
    let (v, back) = run(&mut s, &err, WAN, 3);
    assert_eq!(v, Verdict::Forward { vport: VM });
    let (src, dst, qs, qd, qp) = open_error6(&back);
    assert_eq!(
        (src, dst, qs, qd, qp),
        (V6_ROUTER, V6_BACKEND, V6_BACKEND, V6_SERVER, (8080, 7000))
    );
    assert_eq!(back[14 + 48..], synack[14..]);
    assert_eq!(s.stats().icmp_related.get(), 2);
}

mod differential {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever the connection and however much of its packet the
        /// error quotes: what reaches the client checks out from scratch
        /// (outer IPv4, ICMP, quoted IPv4 header and, when the whole
        /// segment is quoted, its L4 checksum), and the quote is the
        /// client's own packet again, byte for byte, as far as it goes.
        #[test]
        fn translated_errors_check_out_from_scratch(
            proto in prop_oneof![Just(6u8), Just(17u8)],
            cport in 1u16..,
            sport in 1u16..,
            payload in proptest::collection::vec(any::<u8>(), 0..41),
            with_csum in any::<bool>(),
            cut in 28usize..120,
        ) {
            // UDP to the VXLAN port is a tunnel to the parser, not this case.
            prop_assume!(proto == 6 || sport != 4789);
            let nat = Arc::new(NatPorts::new());
            let mut s = snat_shard(&nat);
            let seg = if proto == 6 {
                tcp_seg(CLIENT, cport, SERVER, sport, tcp::SYN, &payload)
            } else {
                udp_seg(CLIENT, cport, SERVER, sport, &payload, with_csum)
            };
            let pkt = eth(GW_MAC, VM_MAC, 0x0800, &ipv4(CLIENT, SERVER, proto, 64, &seg));
            let (v, out) = run(&mut s, &pkt, VM, 0);
            prop_assert_eq!(v, Verdict::Forward { vport: WAN });
            let quote = quote_of(&out, Some(cut));
            let err = icmp_error(ROUTER, PUBLIC, FRAG_NEEDED, &quote);
            let (v, back) = run(&mut s, &err, WAN, 1);
            prop_assert_eq!(v, Verdict::Forward { vport: VM });
            let (src, dst, q) = open_error(&back, FRAG_NEEDED);
            prop_assert_eq!((src, dst), (ROUTER, CLIENT));
            prop_assert_eq!(quoted_ip(&q), (CLIENT, SERVER, proto));
            // A quote that ends inside the L4 checksum leaves its half
            // as it was (the new value's byte depends on the missing one),
            // as Linux does.
            let at = if proto == 6 { 16 } else { 6 };
            let same = if q.len() == 20 + at + 1 { q.len() - 1 } else { q.len() };
            prop_assert_eq!(&q[20..same], &pkt[34..34 + same - 20]);
            if q.len() == pkt.len() - 14 && (proto == 6 || with_csum) {
                prop_assert_eq!(be16(&q, 20 + at), l4_csum_v4(&q, proto, &q[20..], at));
            }
        }
    }
}
