//! Two shards: packets reach the shard that holds their flow pair, through
//! owner hashing on a miss and through redirect entries for reply keys
//! that NAT moved to the other shard.

mod shard_support;

use shard_support::*;
use std::sync::Arc;
use vfp_core::action::nat::NatPorts;
use vfp_core::flow::key::{proto, Direction, FlowKey, NO_VNI};
use vfp_core::shard::{DropReason, Shard, ShardMsg, Verdict};

const C: [u8; 4] = [10, 0, 0, 1];
const S: [u8; 4] = [198, 51, 100, 7];
const PUB: [u8; 4] = [203, 0, 113, 10];

/// Delivers every message in `from`'s outbox to its target.
fn deliver_all(shards: &mut [Shard], from: usize) -> Vec<ShardMsg> {
    let msgs: Vec<ShardMsg> = shards[from].outbox().drain(..).collect();
    for m in &msgs {
        shards[m.to()].deliver(*m);
    }
    msgs
}

#[test]
fn nat_moved_reply_is_redirected_to_the_owner() {
    // A client port owned by shard 0 and a single NAT port whose reply
    // key hashes to shard 1, so a redirect is unavoidable.
    let cport = (1000..).find(|&p| tcp_key(C, p, S, 80).owner(2) == 0).unwrap();
    let nport = (20000..).find(|&p| tcp_key(S, 80, PUB, p).owner(2) == 1).unwrap();
    let nat = Arc::new(NatPorts::new());
    let pol = policy(&snat_policy(nport, nport), 1);
    let mut shards = vec![shard(pol.clone(), &nat, 0, 2), shard(pol, &nat, 1, 2)];

    // The SYN reaching the wrong shard is handed to its owner.
    let syn = tcp_frame(VM_MAC, GW_MAC, (C, cport), (S, 80), tcp::SYN);
    assert_eq!(run(&mut shards[1], &syn, VM, 0).0, Verdict::Redirect { owner: 0 });
    assert_eq!(shards[1].len(), 0);
    let (v, out) = run_with(&mut shards[0], &syn, VM, 0, false);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    assert_eq!(ports(&out, 14).0, nport);

    let msgs = deliver_all(&mut shards, 0);
    assert_eq!(msgs.len(), 1);
    assert!(matches!(msgs[0], ShardMsg::InstallRedirect { to: 1, owner: 0, .. }));
    assert_eq!(shards[1].stats().redirects_installed.get(), 1);

    // The reply lands on shard 1 (its key's owner), is redirected, and
    // shard 0 un-NATs it.
    let synack = tcp_frame(PEER_MAC, GW_MAC, (S, 80), (PUB, nport), tcp::SYN | tcp::ACK);
    assert_eq!(run(&mut shards[1], &synack, WAN, 1).0, Verdict::Redirect { owner: 0 });
    assert_eq!(shards[1].stats().redirects_out.get(), 2);
    let (v, back) = run_with(&mut shards[0], &synack, WAN, 1, false);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(check_ipv4(&back, 14).1, C);
    assert_eq!(ports(&back, 14), (80, cport));

    // Removing the pair removes the redirect.
    assert_eq!(shards[0].flush(), 1);
    let msgs = deliver_all(&mut shards, 0);
    assert!(matches!(msgs[..], [ShardMsg::RemoveRedirect { to: 1, owner: 0, .. }]));
    assert_eq!(nat.in_use(0), 0);
    assert_eq!(
        run(&mut shards[1], &synack, WAN, 2).0,
        Verdict::Drop(DropReason::NoFlow)
    );
}

/// A reload whose pool no longer holds a connection's SNAT port moves it
/// to a port of the new pool; the redirect of the old reply key goes and
/// one for the new reply key comes, so the reply to the new binding still
/// reaches the owner and the old binding leads nowhere.
#[test]
fn a_snat_port_the_reload_takes_away_moves_its_redirect() {
    let cport = (1000..).find(|&p| tcp_key(C, p, S, 80).owner(2) == 0).unwrap();
    let replies_on_1 = |from: u16| (from..).find(|&p| tcp_key(S, 80, PUB, p).owner(2) == 1).unwrap();
    let (old, new) = (replies_on_1(20000), replies_on_1(30000));
    let nat = Arc::new(NatPorts::new());
    let pol = policy(&snat_policy(old, old), 1);
    let mut shards = vec![shard(pol.clone(), &nat, 0, 2), shard(pol, &nat, 1, 2)];
    let syn = tcp_frame(VM_MAC, GW_MAC, (C, cport), (S, 80), tcp::SYN);
    assert_eq!(ports(&run(&mut shards[0], &syn, VM, 0).1, 14).0, old);
    deliver_all(&mut shards, 0);
    assert_eq!(shards[1].stats().redirects_installed.get(), 1);

    let pol = policy(&snat_policy(new, new), 2);
    for s in &mut shards {
        s.set_policy(pol.clone());
    }
    let ack = tcp_frame(VM_MAC, GW_MAC, (C, cport), (S, 80), tcp::ACK);
    let (v, out) = run(&mut shards[0], &ack, VM, 1);
    assert_eq!(v, Verdict::Forward { vport: WAN });
    assert_eq!((check_ipv4(&out, 14).0, ports(&out, 14).0), (PUB, new));
    let msgs = deliver_all(&mut shards, 0);
    assert!(
        matches!(
            msgs[..],
            [
                ShardMsg::RemoveRedirect { to: 1, owner: 0, .. },
                ShardMsg::InstallRedirect { to: 1, owner: 0, .. }
            ]
        ),
        "{msgs:?}"
    );
    assert_eq!(nat.in_use(0), 1);

    let reply = |port| tcp_frame(PEER_MAC, GW_MAC, (S, 80), (PUB, port), tcp::ACK);
    assert_eq!(
        run(&mut shards[1], &reply(new), WAN, 2).0,
        Verdict::Redirect { owner: 0 }
    );
    let (v, back) = run_with(&mut shards[0], &reply(new), WAN, 2, false);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!((check_ipv4(&back, 14).1, ports(&back, 14).1), (C, cport));
    // The old binding's reply is no connection's (an ACK opens none).
    assert_eq!(
        run(&mut shards[1], &reply(old), WAN, 2).0,
        Verdict::Drop(DropReason::NoFlow)
    );
}

#[test]
fn snat_prefers_ports_whose_replies_stay_on_the_shard() {
    let nat = Arc::new(NatPorts::new());
    let pol = policy(&snat_policy(30000, 30999), 1);
    let mut shards = vec![shard(pol.clone(), &nat, 0, 2), shard(pol, &nat, 1, 2)];
    let mut per_shard = [0; 2];
    for cport in 1000..1200u16 {
        let owner = tcp_key(C, cport, S, 443).owner(2);
        let syn = tcp_frame(VM_MAC, GW_MAC, (C, cport), (S, 443), tcp::SYN);
        let (v, out) = run(&mut shards[owner], &syn, VM, 0);
        assert_eq!(v, Verdict::Forward { vport: WAN });
        let nport = ports(&out, 14).0;
        let reply = FlowKey {
            vport: WAN,
            dir: Direction::Inbound,
            ..tcp_key(S, 443, PUB, nport)
        };
        assert_eq!(reply.owner(2), owner, "port {nport} keeps the reply on shard {owner}");
        per_shard[owner] += 1;
    }
    assert!(per_shard[0] > 50 && per_shard[1] > 50, "{per_shard:?}");
    assert!(shards.iter_mut().all(|s| s.outbox().is_empty()));
    assert_eq!(nat.in_use(0), 200);
    // Expiry releases every port and sends no messages either.
    for s in &mut shards {
        s.expire(1000 * SEC, 10_000);
        assert!(s.outbox().is_empty());
    }
    assert_eq!(nat.in_use(0), 0);
}

#[test]
fn encap_vni_moves_the_reply_key_and_the_redirect_follows_expiry() {
    let text = r#"
[timeouts]
udp = 10

[[layers]]
name = "vnet"
default = "allow"

[[layers.groups]]

[[layers.groups.rules]]
id = 1
priority = 1
direction = "out"
action = "encap"
encap = { vni = 9, outer_src_ip = "192.0.2.1", outer_dst_ip = "192.0.2.2", outer_src_mac = "02:00:00:00:aa:01", outer_dst_mac = "02:00:00:00:aa:02" }
"#;
    let udp_key = |p: u16, vni: u32| FlowKey {
        proto: proto::UDP,
        vni,
        ..tcp_key(C, p, S, 53)
    };
    // A flow owned by shard 0 whose reply (in VNI 9) is owned by shard 1.
    let cport = (1000..)
        .find(|&p| udp_key(p, NO_VNI).owner(2) == 0 && udp_key(p, 9).owner(2) == 1)
        .unwrap();
    let nat = Arc::new(NatPorts::new());
    let pol = policy(text, 1);
    let mut shards = vec![shard(pol.clone(), &nat, 0, 2), shard(pol, &nat, 1, 2)];
    let pkt = udp_frame(VM_MAC, GW_MAC, (C, cport), (S, 53), true);
    assert_eq!(run(&mut shards[0], &pkt, VM, 0).0, Verdict::Forward { vport: WAN });
    assert_eq!(deliver_all(&mut shards, 0).len(), 1);

    let inner = udp_frame(PEER_MAC, GW_MAC, (S, 53), (C, cport), true);
    let reply = vxlan_frame(GW_MAC, PEER_MAC, [192, 0, 2, 2], [192, 0, 2, 1], 9, &inner);
    assert_eq!(run(&mut shards[1], &reply, WAN, 1).0, Verdict::Redirect { owner: 0 });
    let (v, back) = run_with(&mut shards[0], &reply, WAN, 1, false);
    assert_eq!(v, Verdict::Forward { vport: VM });
    assert_eq!(back.len(), inner.len());

    assert_eq!(shards[0].expire(20 * SEC, 100), 1);
    assert_eq!(deliver_all(&mut shards, 0).len(), 1);
    assert_eq!(shards[1].len(), 0);
    // Without the redirect, the reply is a new inbound flow on shard 1.
    assert_eq!(
        run(&mut shards[1], &reply, WAN, 21 * SEC).0,
        Verdict::Forward { vport: VM }
    );
    assert_eq!(shards[1].len(), 1);
}
