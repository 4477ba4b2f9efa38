//! Golden tests of the NAT and TTL transpositions: hand-built packets go
//! through a shard under a policy loaded from TOML, and every rewritten
//! field and checksum of what leaves is checked (checksums recomputed
//! from scratch by the test's own code).

mod shard_support;

use shard_support::*;
use std::sync::Arc;
use vfp_core::action::nat::NatPorts;
use vfp_core::shard::{DropReason, Verdict};

const SNAT: &str = r#"
[[layers]]
name = "nat"
default = "allow"

[[layers.groups]]
name = "snat"

[[layers.groups.rules]]
id = 1
priority = 100
direction = "out"
src = ["10.0.0.0/24"]
action = "snat"
snat = { addrs = ["203.0.113.10"], ports = "40000-40099" }

[[layers.groups]]
name = "port-forward"

[[layers.groups.rules]]
id = 2
priority = 100
direction = "in"
dst = ["203.0.113.10/32"]
proto = "tcp"
dst_ports = [80]
action = "dnat"
dnat = { backends = ["10.0.0.5:8080"] }
"#;

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [198, 51, 100, 7];
const PUBLIC: [u8; 4] = [203, 0, 113, 10];

#[test]
fn snat_tcp_out_and_reply_back() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(SNAT, 1), &nat, 0, 1);
    let syn = tcp_frame(VM_MAC, GW_MAC, (CLIENT, 33000), (SERVER, 443), tcp::SYN);
    let (v, out) = run(&mut s, &syn, VM, 0);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    let (src, dst, ttl, proto) = check_ipv4(&out, 14);
    assert_eq!((src, dst, ttl, proto), (PUBLIC, SERVER, 64, 6));
    let (sport, dport) = ports(&out, 14);
    assert!((40000..=40099).contains(&sport), "{sport}");
    assert_eq!(dport, 443);
    assert_eq!(macs(&out, 0), (VM_MAC, GW_MAC), "MACs untouched without set_mac");
    assert_eq!(&out[out.len() - 5..], b"hello");
    assert!(nat.is_claimed(0, sport));

    // The reply to the public address:port goes back to the client.
    let synack = tcp_frame(PEER_MAC, GW_MAC, (SERVER, 443), (PUBLIC, sport), tcp::SYN | tcp::ACK);
    let (v, back) = run(&mut s, &synack, WAN, 1);
    assert_eq!(v, Verdict::Forward { vport: VM });
    let (src, dst, _, _) = check_ipv4(&back, 14);
    assert_eq!((src, dst), (SERVER, CLIENT));
    assert_eq!(ports(&back, 14), (443, 33000));

    // Later packets of both directions hit the same pair.
    let ack = tcp_frame(VM_MAC, GW_MAC, (CLIENT, 33000), (SERVER, 443), tcp::ACK);
    let (v, out2) = run(&mut s, &ack, VM, 2);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    check_ipv4(&out2, 14);
    assert_eq!(ports(&out2, 14).0, sport);
    assert_eq!(s.len(), 1);
    let f = &s.flows(&Default::default(), 10)[0];
    assert_eq!(f.state, "established");
    assert_eq!((f.packets_fwd, f.packets_rev), (2, 1));
    assert_eq!(f.nat.as_deref(), Some(format!("203.0.113.10:{sport}").as_str()));
}

#[test]
fn snat_udp_keeps_a_zero_checksum_and_fixes_a_real_one() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(SNAT, 1), &nat, 0, 1);
    for (cport, with_csum) in [(5000, false), (5001, true)] {
        let pkt = udp_frame(VM_MAC, GW_MAC, (CLIENT, cport), (SERVER, 53), with_csum);
        let (v, out) = run(&mut s, &pkt, VM, 0);
        assert_eq!(v, Verdict::Forward { vport: WAN });
        check_ipv4(&out, 14);
        let udp_csum = be16(&out, 14 + 20 + 6);
        assert_eq!(udp_csum == 0, !with_csum);
        let (sport, _) = ports(&out, 14);
        let reply = udp_frame(PEER_MAC, GW_MAC, (SERVER, 53), (PUBLIC, sport), with_csum);
        let (v, back) = run(&mut s, &reply, WAN, 0);
        assert_eq!(v, Verdict::Forward { vport: VM });
        assert_eq!(check_ipv4(&back, 14).1, CLIENT);
        assert_eq!(ports(&back, 14), (53, cport));
        assert_eq!(be16(&back, 14 + 20 + 6) == 0, !with_csum);
    }
}

#[test]
fn snat_icmp_echo_rewrites_the_identifier() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(SNAT, 1), &nat, 0, 1);
    let req = eth(
        GW_MAC,
        VM_MAC,
        0x0800,
        &ipv4(CLIENT, SERVER, 1, 64, &icmp_echo(8, 0x4242, 1)),
    );
    let (v, out) = run(&mut s, &req, VM, 0);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    check_ipv4(&out, 14);
    let id = be16(&out, 14 + 20 + 4);
    assert!((40000..=40099).contains(&id));
    let rep = eth(
        GW_MAC,
        PEER_MAC,
        0x0800,
        &ipv4(SERVER, PUBLIC, 1, 64, &icmp_echo(0, id, 1)),
    );
    let (v, back) = run(&mut s, &rep, WAN, 0);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(check_ipv4(&back, 14).1, CLIENT);
    assert_eq!(be16(&back, 14 + 20 + 4), 0x4242);
    // An echo reply that matches no request opens nothing.
    let stray = eth(
        GW_MAC,
        PEER_MAC,
        0x0800,
        &ipv4(SERVER, PUBLIC, 1, 64, &icmp_echo(0, 999, 1)),
    );
    assert_eq!(run(&mut s, &stray, WAN, 0).0, Verdict::Drop(DropReason::NoFlow));
}

#[test]
fn dnat_in_and_reply_from_the_vip() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(SNAT, 1), &nat, 0, 1);
    let client = ([192, 0, 2, 55], 51000);
    let syn = tcp_frame(PEER_MAC, GW_MAC, client, (PUBLIC, 80), tcp::SYN);
    let (v, inb) = run(&mut s, &syn, WAN, 0);
    assert_eq!(v, Verdict::Forward { vport: VM });
    let (src, dst, _, _) = check_ipv4(&inb, 14);
    assert_eq!((src, dst), (client.0, [10, 0, 0, 5]));
    assert_eq!(ports(&inb, 14), (client.1, 8080));

    // The backend answers from its own address; the client sees the VIP.
    let synack = tcp_frame(VM_MAC, GW_MAC, ([10, 0, 0, 5], 8080), client, tcp::SYN | tcp::ACK);
    let (v, out) = run(&mut s, &synack, VM, 1);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    let (src, dst, _, _) = check_ipv4(&out, 14);
    assert_eq!((src, dst), (PUBLIC, client.0));
    assert_eq!(ports(&out, 14), (80, client.1));
    // The reply did not get SNAT'd as a new outbound connection.
    assert_eq!(s.len(), 1);
    assert_eq!(nat.in_use(0), 0);

    // An inbound SYN to a port nothing forwards is a new flow the policy
    // allows (the layer default is allow) but without rewrites.
    let other = tcp_frame(PEER_MAC, GW_MAC, client, (PUBLIC, 81), tcp::SYN);
    let (v, o) = run(&mut s, &other, WAN, 1);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(check_ipv4(&o, 14).1, PUBLIC);
}

/// A reload keeps a connection's SNAT binding while the new pool holds
/// it (a pool that grows); once the address leaves the pool, or the port
/// the port range, the binding is given back and the connection takes a
/// port of the new pool: nothing leaves with an address the operator
/// took away, and the reply to the new binding finds the connection.
#[test]
fn snat_bindings_outside_a_reloaded_pool_move_to_the_new_pool() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(SNAT, 1), &nat, 0, 1);
    let out = |flags| tcp_frame(VM_MAC, GW_MAC, (CLIENT, 33000), (SERVER, 443), flags);
    let reply_to = |public: ([u8; 4], u16)| tcp_frame(PEER_MAC, GW_MAC, (SERVER, 443), public, tcp::ACK);
    let (_, o) = run(&mut s, &out(tcp::SYN), VM, 0);
    let first = (check_ipv4(&o, 14).0, ports(&o, 14).0);
    assert_eq!(first.0, PUBLIC);
    let old_slot = nat.slot_of(PUBLIC).unwrap();
    assert_eq!(nat.in_use(old_slot), 1);

    // Generation 2 adds an address: the binding stays.
    let grown = SNAT.replace(
        r#"addrs = ["203.0.113.10"]"#,
        r#"addrs = ["203.0.113.10", "203.0.113.20"]"#,
    );
    let gen2 = policy(&grown, 2);
    nat.register_policy(&gen2).unwrap();
    s.set_policy(gen2);
    let (v, o) = run(&mut s, &out(tcp::ACK), VM, 1);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    assert_eq!((check_ipv4(&o, 14).0, ports(&o, 14).0), first);

    // Generation 3 drops it: the connection moves to 203.0.113.20 and
    // the old port is free again.
    let moved = SNAT.replace("203.0.113.10", "203.0.113.20");
    let gen3 = policy(&moved, 3);
    nat.register_policy(&gen3).unwrap();
    s.set_policy(gen3);
    let (v, o) = run(&mut s, &out(tcp::ACK), VM, 2);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    let (src, dst, _, _) = check_ipv4(&o, 14);
    let second = (src, ports(&o, 14).0);
    assert_eq!((src, dst), ([203, 0, 113, 20], SERVER));
    assert!((40000..=40099).contains(&second.1), "{second:?}");
    assert_eq!(nat.in_use(old_slot), 0);
    assert_eq!(nat.in_use(nat.slot_of(second.0).unwrap()), 1);
    assert_eq!(s.len(), 1);
    // The reply to the new binding reaches the client; one to the old
    // binding is not the connection's (a new inbound flow, untranslated).
    let (v, back) = run(&mut s, &reply_to(second), WAN, 3);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(check_ipv4(&back, 14).1, CLIENT);
    assert_eq!(ports(&back, 14).1, 33000);
    let (_, stray) = run(&mut s, &reply_to(first), WAN, 3);
    assert_eq!(check_ipv4(&stray, 14).1, PUBLIC);

    // Generation 4 keeps the address but narrows the ports to a range
    // without the bound one: the connection moves into the range.
    let (range, lo, hi) = if second.1 < 40050 {
        ("40050-40052", 40050, 40052)
    } else {
        ("40000-40002", 40000, 40002)
    };
    let narrowed = moved.replace("40000-40099", range);
    let gen4 = policy(&narrowed, 4);
    nat.register_policy(&gen4).unwrap();
    s.set_policy(gen4);
    let (v, o) = run(&mut s, &out(tcp::ACK), VM, 4);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    assert_eq!(check_ipv4(&o, 14).0, second.0);
    let port = ports(&o, 14).0;
    assert!((lo..=hi).contains(&port), "{port}");
    assert_eq!(nat.in_use(nat.slot_of(second.0).unwrap()), 1);
    assert_eq!(s.stats().reconciled.get(), 3);
}

/// A reload that adds a DNAT backend (or keeps the backends, or drops
/// another one) leaves established connections on the backend they have;
/// only connections whose backend is gone move. The VIP load-balancer
/// example with three backends, then four.
#[test]
fn dnat_connections_keep_their_backend_across_a_reload() {
    let lb3 = example("dnat-lb.toml");
    let lb4 = lb3.replace("\"10.1.0.7:8080\"]", "\"10.1.0.7:8080\", \"10.1.0.8:8080\"]");
    assert_ne!(lb3, lb4);
    let vip = [203, 0, 113, 50];
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(&lb3, 1), &nat, 0, 1);
    let client = |port: u16| ([198, 51, 100, 9], port);
    let mut backend = Vec::new();
    for port in 1000..1040 {
        let syn = tcp_frame(PEER_MAC, GW_MAC, client(port), (vip, 80), tcp::SYN);
        let (v, o) = run(&mut s, &syn, WAN, 0);
        assert_eq!(v, Verdict::Forward { vport: VM });
        backend.push(check_ipv4(&o, 14).1);
    }
    // The connections spread over the three backends.
    let mut used = backend.clone();
    used.sort();
    used.dedup();
    assert_eq!(used.len(), 3, "{used:?}");

    s.set_policy(policy(&lb4, 2));
    for (i, port) in (1000..1040).enumerate() {
        // The backend's answer re-evaluates the pair first on half of
        // them, the client's next packet on the other half.
        if i % 2 == 0 {
            let synack = tcp_frame(VM_MAC, GW_MAC, (backend[i], 8080), client(port), tcp::SYN | tcp::ACK);
            let (v, o) = run(&mut s, &synack, VM, 1);
            assert_eq!(v, Verdict::Forward { vport: WAN }, "connection {i}");
            assert_eq!(check_ipv4(&o, 14).0, vip);
        }
        let ack = tcp_frame(PEER_MAC, GW_MAC, client(port), (vip, 80), tcp::ACK);
        let (v, o) = run(&mut s, &ack, WAN, 1);
        assert_eq!(v, Verdict::Forward { vport: VM }, "connection {i}");
        assert_eq!(check_ipv4(&o, 14).1, backend[i], "connection {i} moved");
    }
    assert_eq!(s.stats().reconciled.get(), 40);

    // New connections use the new backend too.
    let mut new_backends = Vec::new();
    for port in 2000..2040 {
        let syn = tcp_frame(PEER_MAC, GW_MAC, client(port), (vip, 80), tcp::SYN);
        new_backends.push(check_ipv4(&run(&mut s, &syn, WAN, 1).1, 14).1);
    }
    assert!(new_backends.contains(&[10, 1, 0, 8]));
}

const TTL: &str = r#"
[[layers]]
name = "route"
default = "deny"

[[layers.groups]]

[[layers.groups.rules]]
id = 1
priority = 1
direction = "out"
action = "dec_ttl"
set_mac = { src = "02:00:00:00:00:fe", dst = "02:00:00:00:00:77" }
"#;

#[test]
fn dec_ttl_and_next_hop_macs_both_ways() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(TTL, 1), &nat, 0, 1);
    let seg = tcp_seg(CLIENT, 1234, SERVER, 80, tcp::SYN, b"");
    let pkt = eth(GW_MAC, VM_MAC, 0x0800, &ipv4(CLIENT, SERVER, 6, 9, &seg));
    let (v, out) = run(&mut s, &pkt, VM, 0);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    assert_eq!(check_ipv4(&out, 14).2, 8);
    assert_eq!(macs(&out, 0), (GW_MAC, PEER_MAC));

    // The reply is routed by the same hop: TTL decremented, and its MACs
    // mirror the first packet's so it reaches the VM.
    let seg = tcp_seg(SERVER, 80, CLIENT, 1234, tcp::SYN | tcp::ACK, b"");
    let rep = eth(GW_MAC, PEER_MAC, 0x0800, &ipv4(SERVER, CLIENT, 6, 50, &seg));
    let (v, back) = run(&mut s, &rep, WAN, 0);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(check_ipv4(&back, 14).2, 49);
    assert_eq!(macs(&back, 0), (GW_MAC, VM_MAC));

    // TTL 1 would leave with 0.
    let seg = tcp_seg(CLIENT, 1234, SERVER, 80, tcp::ACK, b"");
    let pkt = eth(GW_MAC, VM_MAC, 0x0800, &ipv4(CLIENT, SERVER, 6, 1, &seg));
    assert_eq!(run(&mut s, &pkt, VM, 0).0, Verdict::Drop(DropReason::TtlExpired));
    assert_eq!(s.stats().drop_count(DropReason::TtlExpired), 1);

    // Inbound connections meet the layer's deny default.
    let seg = tcp_seg(SERVER, 9, CLIENT, 22, tcp::SYN, b"");
    let pkt = eth(GW_MAC, PEER_MAC, 0x0800, &ipv4(SERVER, CLIENT, 6, 64, &seg));
    assert_eq!(run(&mut s, &pkt, WAN, 0).0, Verdict::Drop(DropReason::PolicyDeny));
}
