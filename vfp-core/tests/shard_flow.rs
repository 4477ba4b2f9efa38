//! Shard behaviour on one lcore: stateful admission, counters, expiry,
//! NAT port lifetime, table limits, policy generations, control plane.

mod shard_support;

use shard_support::*;
use std::sync::Arc;
use vfp_core::action::nat::NatPorts;
use vfp_core::shard::{DropReason, FlowFilter, Hint, Shard, ShardConfig, Verdict};

/// Two SNAT ports and a 10 s UDP timeout.
fn snat_2_ports() -> String {
    format!("[timeouts]\nudp = 10\n{}", snat_policy(40000, 40001))
}

const DENY_ALL: &str = r#"
[[layers]]
name = "acl"
default = "deny"
"#;

const C: [u8; 4] = [10, 0, 0, 1];
const S: [u8; 4] = [198, 51, 100, 7];
const PUB: [u8; 4] = [203, 0, 113, 10];

fn udp_out(sport: u16) -> Vec<u8> {
    udp_frame(VM_MAC, GW_MAC, (C, sport), (S, 53), true)
}

#[test]
fn tcp_needs_a_syn_and_replies_need_no_rule() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(allow_all(), &nat, 0, 1);
    let ack = tcp_frame(VM_MAC, GW_MAC, (C, 1000), (S, 80), tcp::ACK);
    assert_eq!(run(&mut s, &ack, VM, 0).0, Verdict::Drop(DropReason::NoFlow));
    let synack = tcp_frame(VM_MAC, GW_MAC, (C, 1000), (S, 80), tcp::SYN | tcp::ACK);
    assert_eq!(run(&mut s, &synack, VM, 0).0, Verdict::Drop(DropReason::NoFlow));
    let syn = tcp_frame(VM_MAC, GW_MAC, (C, 1000), (S, 80), tcp::SYN);
    assert_eq!(run(&mut s, &syn, VM, 0).0, Verdict::Forward { vport: WAN });
    let (v, out) = run(
        &mut s,
        &tcp_frame(PEER_MAC, GW_MAC, (S, 80), (C, 1000), tcp::SYN | tcp::ACK),
        WAN,
        0,
    );
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(
        &out[..],
        &tcp_frame(PEER_MAC, GW_MAC, (S, 80), (C, 1000), tcp::SYN | tcp::ACK)[..]
    );
    let st = s.stats();
    assert_eq!(st.drop_count(DropReason::NoFlow), 2);
    assert_eq!(st.flows_created.get(), 1);
    assert_eq!(st.forwarded.get(), 2);
    assert_eq!(st.lookups_hit.get(), 1);
    assert_eq!(st.lookups_miss.get(), 3);
    assert_eq!(st.flows_active.get(), 1);
}

#[test]
fn denied_first_packets_and_non_ip_frames() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(DENY_ALL, 1), &nat, 0, 1);
    assert_eq!(run(&mut s, &udp_out(1), VM, 0).0, Verdict::Drop(DropReason::PolicyDeny));
    let arp = eth(
        [0xff; 6],
        VM_MAC,
        0x0806,
        &[
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
        ],
    );
    assert_eq!(run(&mut s, &arp, VM, 0).0, Verdict::Forward { vport: WAN });
    assert_eq!(run(&mut s, &arp, WAN, 0).0, Verdict::Forward { vport: VM });
    assert_eq!(s.stats().l2_forwarded.get(), 2);
    assert_eq!(s.stats().total_drops(), 1);
    assert_eq!(s.len(), 0);
    s.count_drop(DropReason::TxFull);
    assert_eq!(s.stats().drop_count(DropReason::TxFull), 1);
}

#[test]
fn later_fragments_are_dropped() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(allow_all(), &nat, 0, 1);
    let mut ip = ipv4(C, S, 17, 64, &[0u8; 16]);
    ip[6..8].copy_from_slice(&100u16.to_be_bytes()); // offset 800 bytes
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = csum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let pkt = eth(GW_MAC, VM_MAC, 0x0800, &ip);
    assert_eq!(run(&mut s, &pkt, VM, 0).0, Verdict::Drop(DropReason::Fragment));
}

#[test]
fn nat_ports_are_exhausted_then_released_by_expiry_and_flush() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(&snat_2_ports(), 1), &nat, 0, 1);
    assert!(matches!(run(&mut s, &udp_out(1), VM, 0).0, Verdict::Forward { .. }));
    assert!(matches!(run(&mut s, &udp_out(2), VM, 0).0, Verdict::Forward { .. }));
    assert_eq!(
        run(&mut s, &udp_out(3), VM, 0).0,
        Verdict::Drop(DropReason::NatExhausted)
    );
    assert_eq!(nat.in_use(0), 2);

    // Keep flow 1 alive; flow 2 goes idle past the 10 s UDP timeout.
    assert!(matches!(
        run(&mut s, &udp_out(1), VM, 8 * SEC).0,
        Verdict::Forward { .. }
    ));
    assert_eq!(s.expire(9 * SEC, 100), 0);
    assert_eq!(s.expire(11 * SEC, 100), 1);
    assert_eq!(s.stats().flows_expired.get(), 1);
    assert_eq!(nat.in_use(0), 1);
    let (v, out) = run(&mut s, &udp_out(3), VM, 11 * SEC);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    assert_eq!(check_ipv4(&out, 14).0, PUB);

    assert_eq!(s.flush(), 2);
    assert_eq!(nat.in_use(0), 0);
    assert_eq!(s.len(), 0);
    assert_eq!(s.stats().flows_active.get(), 0);
}

#[test]
fn full_table_refuses_new_flows_but_serves_existing_ones() {
    let nat = Arc::new(NatPorts::new());
    let cfg = ShardConfig {
        id: 0,
        nshards: 1,
        capacity: 2,
    };
    let mut s = Shard::new(cfg, allow_all(), nat);
    assert!(matches!(run(&mut s, &udp_out(1), VM, 0).0, Verdict::Forward { .. }));
    assert!(matches!(run(&mut s, &udp_out(2), VM, 0).0, Verdict::Forward { .. }));
    assert_eq!(run(&mut s, &udp_out(3), VM, 0).0, Verdict::Drop(DropReason::TableFull));
    assert!(matches!(run(&mut s, &udp_out(1), VM, 0).0, Verdict::Forward { .. }));
    assert_eq!(s.stats().drop_count(DropReason::TableFull), 1);
}

#[test]
fn tcp_idle_timeouts_follow_the_connection_state() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(allow_all(), &nat, 0, 1);
    let out = |f| tcp_frame(VM_MAC, GW_MAC, (C, 1000), (S, 80), f);
    let back = |f| tcp_frame(PEER_MAC, GW_MAC, (S, 80), (C, 1000), f);
    run(&mut s, &out(tcp::SYN), VM, 0);
    run(&mut s, &back(tcp::SYN | tcp::ACK), WAN, 0);
    run(&mut s, &out(tcp::ACK), VM, 0);
    // Established: 240 s.
    assert_eq!(s.expire(200 * SEC, 10), 0);
    run(&mut s, &out(tcp::FIN | tcp::ACK), VM, 200 * SEC);
    run(&mut s, &back(tcp::FIN | tcp::ACK), WAN, 200 * SEC);
    assert_eq!(s.flows(&FlowFilter::default(), 1)[0].state, "time-wait");
    // Both FINs: the closed timeout (5 s).
    assert_eq!(s.expire(204 * SEC, 10), 0);
    assert_eq!(s.expire(206 * SEC, 10), 1);
    // A RST closes too; then a new SYN may reuse the tuple.
    run(&mut s, &out(tcp::SYN), VM, 300 * SEC);
    run(&mut s, &back(tcp::RST), WAN, 300 * SEC);
    assert_eq!(s.flows(&FlowFilter::default(), 1)[0].state, "closed");
    run(&mut s, &out(tcp::SYN), VM, 301 * SEC);
    assert_eq!(s.flows(&FlowFilter::default(), 1)[0].state, "syn-sent");
}

#[test]
fn a_new_generation_reevaluates_pairs_lazily() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(&snat_2_ports(), 1), &nat, 0, 1);
    let (_, out) = run(&mut s, &udp_out(7), VM, 0);
    let port = ports(&out, 14).0;

    // Same rules, new generation: the pair survives with its NAT port.
    s.set_policy(policy(&snat_2_ports(), 2));
    let (v, out) = run(&mut s, &udp_out(7), VM, 1);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    assert_eq!(ports(&out, 14).0, port);
    assert_eq!(s.stats().reconciled.get(), 1);
    assert_eq!(s.flows(&FlowFilter::default(), 1)[0].generation, 2);
    // Only once per generation.
    run(&mut s, &udp_out(7), VM, 2);
    assert_eq!(s.stats().reconciled.get(), 1);

    // No more SNAT: the port is released, packets pass untranslated,
    // and the reply's key changes accordingly.
    s.set_policy({
        let mut p = vfp_core::policy::Policy::allow_all(&vports());
        p.generation = 3;
        Arc::new(p)
    });
    let (v, out) = run(&mut s, &udp_out(7), VM, 3);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    assert_eq!(check_ipv4(&out, 14).0, C);
    assert_eq!(nat.in_use(0), 0);
    let reply = udp_frame(PEER_MAC, GW_MAC, (S, 53), (C, 7), true);
    assert_eq!(run(&mut s, &reply, WAN, 3).0, Verdict::Forward { vport: VM });

    // Denied now: the pair goes, the packet is dropped, from either side.
    s.set_policy(policy(DENY_ALL, 4));
    assert_eq!(run(&mut s, &reply, WAN, 4).0, Verdict::Drop(DropReason::PolicyDeny));
    assert_eq!(s.len(), 0);
    assert_eq!(s.stats().flows_removed.get(), 1);
}

/// A reply that arrives first after a reload which adds SNAT matches the
/// pair's old reverse key; reconciling rekeys that side, so the reply is
/// no longer the flow's. It is treated as a packet without a flow (here a
/// new inbound flow whose reverse key is the pair's forward key: a
/// counted conflict), not given the new reverse rewrite, whose checksum
/// deltas assume the NAT address it does not carry.
#[test]
fn a_reply_whose_side_is_rekeyed_by_reconciling_is_not_rewritten() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(Arc::new(vfp_core::policy::Policy::allow_all(&vports())), &nat, 0, 1);
    nat.register_policy(&policy(&snat_2_ports(), 2)).unwrap();
    assert_eq!(run(&mut s, &udp_out(7), VM, 0).0, Verdict::Forward { vport: WAN });
    s.set_policy(policy(&snat_2_ports(), 2));
    let reply = udp_frame(PEER_MAC, GW_MAC, (S, 53), (C, 7), true);
    assert_eq!(run(&mut s, &reply, WAN, 1).0, Verdict::Drop(DropReason::FlowConflict));
    assert_eq!(s.stats().reconciled.get(), 1);
    assert_eq!(s.len(), 1);
    assert_eq!(nat.in_use(0), 1);
    // The client's next packet takes the SNAT the pair now holds, and
    // the reply to it comes back intact.
    let (v, out) = run(&mut s, &udp_out(7), VM, 2);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    assert_eq!(check_ipv4(&out, 14).0, [203, 0, 113, 10]);
    let port = ports(&out, 14).0;
    let reply = udp_frame(PEER_MAC, GW_MAC, (S, 53), ([203, 0, 113, 10], port), true);
    let (v, out) = run(&mut s, &reply, WAN, 2);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(check_ipv4(&out, 14).1, C);
    assert_eq!(ports(&out, 14).1, 7);
}

#[test]
fn flows_are_listed_filtered_and_serialisable() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(policy(&snat_2_ports(), 1), &nat, 0, 1);
    run(&mut s, &udp_out(1), VM, 0);
    run(
        &mut s,
        &tcp_frame(VM_MAC, GW_MAC, (C, 9), (S, 443), tcp::SYN),
        VM,
        5 * SEC,
    );
    assert_eq!(s.flows(&FlowFilter::default(), 10).len(), 2);
    assert_eq!(s.flows(&FlowFilter::default(), 1).len(), 1);
    let tcp_only = FlowFilter {
        proto: Some(6),
        ..Default::default()
    };
    let f = s.flows(&tcp_only, 10);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].forward, "tcp 10.0.0.1:9 > 198.51.100.7:443 vport 0 out");
    assert!(
        f[0].reverse.starts_with("tcp 198.51.100.7:443 > 203.0.113.10:"),
        "{}",
        f[0].reverse
    );
    assert!(f[0].action_fwd.contains("src 203.0.113.10:"), "{}", f[0].action_fwd);
    assert!(f[0].action_rev.contains("dst 10.0.0.1:9"), "{}", f[0].action_rev);
    assert_eq!(f[0].state, "syn-sent");
    let by_port = FlowFilter {
        port: Some(53),
        ..Default::default()
    };
    let f = s.flows(&by_port, 10);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].idle_ns, 5 * SEC);
    let json = serde_json::to_string(&f[0]).unwrap();
    assert!(json.contains("\"state\":\"active\""), "{json}");
}

/// A look-ahead hint that went stale within a burst (its pair was removed
/// and the slot reused by another connection) is not trusted: the packet
/// is looked up again and meets its own fate, not the other flow's.
#[test]
fn a_stale_look_ahead_hint_is_looked_up_again() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(allow_all(), &nat, 0, 1);
    let first = tcp_frame(VM_MAC, GW_MAC, (C, 1000), (S, 80), tcp::SYN);
    assert_eq!(run(&mut s, &first, VM, 0).0, Verdict::Forward { vport: WAN });
    // The burst's look-ahead finds the established connection...
    let ack = tcp_frame(VM_MAC, GW_MAC, (C, 1000), (S, 80), tcp::ACK);
    let hint = s.look_ahead(parsed_for(&ack, VM).key.table_hash());
    assert_ne!(hint, Hint::NONE);
    // ...then, before the packet is processed, the pair goes and another
    // connection takes its slot.
    assert_eq!(s.flush(), 1);
    let other = tcp_frame(VM_MAC, GW_MAC, (C, 2000), (S, 80), tcp::SYN);
    assert_eq!(run(&mut s, &other, VM, 0).0, Verdict::Forward { vport: WAN });
    assert_eq!(s.len(), 1);
    let v = run_hinted(&mut s, &ack, VM, hint, 0, true).0;
    // A non-SYN of a connection that no longer exists: dropped, and the
    // other connection's pair untouched.
    assert_eq!(v, Verdict::Drop(DropReason::NoFlow));
    let flows = s.flows(&FlowFilter::default(), 10);
    assert_eq!(flows.len(), 1);
    assert_eq!(
        (flows[0].packets_fwd, flows[0].src.as_str()),
        (1, "10.0.0.1:2000"),
        "{flows:?}"
    );
}

/// A look-ahead hint is a candidate from the index's signatures, not a
/// confirmed match: one that names another live connection's pair (as a
/// shared signature would) is checked against the packet's key, and the
/// packet is counted on, and rewritten by, its own connection.
#[test]
fn a_hint_naming_another_flow_is_not_trusted() {
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(allow_all(), &nat, 0, 1);
    let a = tcp_frame(VM_MAC, GW_MAC, (C, 1000), (S, 80), tcp::SYN);
    let b = tcp_frame(VM_MAC, GW_MAC, (C, 2000), (S, 80), tcp::SYN);
    assert_eq!(run(&mut s, &a, VM, 0).0, Verdict::Forward { vport: WAN });
    assert_eq!(run(&mut s, &b, VM, 0).0, Verdict::Forward { vport: WAN });
    let b_ack = tcp_frame(VM_MAC, GW_MAC, (C, 2000), (S, 80), tcp::ACK);
    let b_hint = s.look_ahead(parsed_for(&b_ack, VM).key.table_hash());
    assert_ne!(b_hint, Hint::NONE);
    let a_ack = tcp_frame(VM_MAC, GW_MAC, (C, 1000), (S, 80), tcp::ACK);
    let v = run_hinted(&mut s, &a_ack, VM, b_hint, 0, true).0;
    assert_eq!(v, Verdict::Forward { vport: WAN });
    let mut flows = s.flows(&FlowFilter::default(), 10);
    flows.sort_by(|x, y| x.src.cmp(&y.src));
    let seen: Vec<(&str, u64)> = flows.iter().map(|f| (f.src.as_str(), f.packets_fwd)).collect();
    assert_eq!(seen, [("10.0.0.1:1000", 2), ("10.0.0.1:2000", 1)]);
}

/// Paced expiry, called as often as a poll loop would, removes an idle
/// pair within one sweep period after its timeout, and not before.
#[test]
fn paced_expiry_removes_an_idle_pair_within_a_period_of_its_timeout() {
    use vfp_core::flow::expiry::SWEEP_PERIOD_NS;
    let nat = Arc::new(NatPorts::new());
    let mut s = shard(allow_all(), &nat, 0, 1);
    let syn = tcp_frame(VM_MAC, GW_MAC, (C, 1000), (S, 80), tcp::SYN);
    assert_eq!(run(&mut s, &syn, VM, 0).0, Verdict::Forward { vport: WAN });
    let timeout = 30 * SEC; // SYN seen, no reply: tcp_syn
    let mut now = 0;
    while s.len() == 1 {
        now += 10_000_000;
        assert!(now <= timeout + 2 * SWEEP_PERIOD_NS, "still there at {now} ns");
        s.expire_paced(now);
    }
    assert!(now > timeout, "removed at {now} ns, before its timeout");
    assert!(now <= timeout + SWEEP_PERIOD_NS + 10_000_000, "removed at {now} ns");
}

/// A common frame's hit is settled by its short key (pmd-app's bursts):
/// both sides of an established UDP and TCP connection behind SNAT, with
/// the same bytes, counters and connection state as the general way; a
/// miss, a missing hint and a pair from an older policy generation are
/// left to the general way, and the hit after the reconciling one is
/// settled again.
#[test]
fn a_common_frames_hit_is_settled_by_its_short_key() {
    let nats = [(); 2].map(|_| Arc::new(NatPorts::new()));
    let mut twins = [0, 1].map(|i| shard(policy(&snat_2_ports(), 1), &nats[i], 0, 1));
    // Runs a packet on both; says what it gave and whether the short key
    // settled it.
    let step = |twins: &mut [Shard; 2], pkt: &[u8], vport: u16, now: u64, hinted: bool| {
        let [short, general] = twins;
        let hash = parsed_for(pkt, vport).key.table_hash();
        let hint = if hinted { short.look_ahead(hash) } else { Hint::NONE };
        let (got, settled) = run_short(short, pkt, vport, hint, now);
        assert_eq!(got, run(general, pkt, vport, now));
        (got, settled)
    };
    let t = &mut twins;
    let ((_, out), settled) = step(t, &udp_out(7), VM, 0, true);
    assert!(!settled, "a first packet is a miss");
    let port = ports(&out, 14).0;
    let reply = udp_frame(PEER_MAC, GW_MAC, (S, 53), (PUB, port), true);
    let tcp_out = |flags| tcp_frame(VM_MAC, GW_MAC, (C, 1000), (S, 80), flags);
    assert!(!step(t, &tcp_out(tcp::SYN), VM, 1, true).1);
    let tcp_port = ports(&step(t, &tcp_out(tcp::ACK), VM, 2, true).0 .1, 14).0;
    let tcp_in = |flags| tcp_frame(PEER_MAC, GW_MAC, (S, 80), (PUB, tcp_port), flags);
    for (pkt, vport) in [
        (udp_out(7), VM),
        (reply.clone(), WAN),
        (tcp_in(tcp::SYN | tcp::ACK), WAN),
        (tcp_out(tcp::ACK), VM),
        (tcp_out(tcp::FIN | tcp::ACK), VM),
    ] {
        let ((v, _), settled) = step(t, &pkt, vport, 3, true);
        assert!(matches!(v, Verdict::Forward { .. }) && settled, "{v:?}");
    }
    assert!(!step(t, &udp_out(7), VM, 4, false).1, "no hint, no short cut");
    t.iter_mut().for_each(|s| s.set_policy(policy(&snat_2_ports(), 2)));
    assert!(
        !step(t, &reply, WAN, 5, true).1,
        "a stale pair is reconciled the general way"
    );
    assert!(step(t, &reply, WAN, 6, true).1);
    let [short, general] = t;
    assert_eq!(short.stats().named(), general.stats().named());
    let all = FlowFilter::default();
    assert_eq!(short.flows(&all, 9), general.flows(&all, 9));
    assert_eq!(short.flows(&all, 9)[1].state, "fin-wait");
}
