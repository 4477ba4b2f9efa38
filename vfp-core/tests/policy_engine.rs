//! Slow-path evaluation: matching, layer order per direction, address-space
//! tracking through SNAT/DNAT, terminating vs count, defaults, egress, DNAT
//! spread and stickiness, and the shipped examples end to end.

use std::collections::HashSet;

use vfp_core::decision::{Decision, Deny, RuleRef};
use vfp_core::engine::evaluate;
use vfp_core::flow::key::{proto, v4_mapped, Direction, FlowKey, NO_VNI};
use vfp_core::parse::{Outer, Parsed};
use vfp_core::policy::{load_file, load_str, tcp_flag, Policy};
use vfp_core::topology::{Role, VportInfo};

const VM: u16 = 0;
const WAN: u16 = 1;
const OTHER: u16 = 2;

fn vports() -> Vec<VportInfo> {
    vec![
        VportInfo::new("vm", Role::Vm, WAN),
        VportInfo::new("wan", Role::Net, VM),
        VportInfo::new("other", Role::Net, VM),
    ]
}

fn policy(text: &str) -> Policy {
    load_str(text, "test.toml", &vports()).unwrap_or_else(|e| panic!("{e}"))
}

/// A TCP packet `s:sp -> d:dp` arriving on `vport`.
fn pkt(vport: u16, s: [u8; 4], sp: u16, d: [u8; 4], dp: u16) -> (Parsed, FlowKey) {
    let key = FlowKey {
        src: v4_mapped(s),
        dst: v4_mapped(d),
        src_port: sp,
        dst_port: dp,
        proto: proto::TCP,
        vport,
        dir: vports()[usize::from(vport)].role.direction(),
        ..FlowKey::default()
    };
    let parsed = Parsed {
        key,
        tcp_flags: tcp_flag::SYN,
        ..Parsed::default()
    };
    (parsed, key)
}

fn eval<'p>(p: &'p Policy, (parsed, key): &(Parsed, FlowKey)) -> Decision<'p> {
    evaluate(p, parsed, key)
}

fn allowed(d: Decision<'_>) -> vfp_core::decision::Actions<'_> {
    match d {
        Decision::Allow(a) => a,
        Decision::Deny(r) => panic!("denied: {r:?}"),
    }
}

/// One deny-by-default layer with a single allow rule carrying `cond`.
fn acl(cond: &str) -> Policy {
    policy(&format!(
        "[[layers]]\nname='acl'\ndefault='deny'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=1\npriority=1\naction='allow'\n{cond}\n"
    ))
}

const OUT: ([u8; 4], u16, [u8; 4], u16) = ([10, 1, 0, 4], 40000, [198, 51, 100, 7], 443);

fn out_pkt() -> (Parsed, FlowKey) {
    pkt(VM, OUT.0, OUT.1, OUT.2, OUT.3)
}

#[test]
fn each_condition_matches_and_filters() {
    let cases = [
        ("src=['10.1.0.0/24']", true),
        ("src=['10.2.0.0/24', '10.1.0.4/32']", true),
        ("src=['10.2.0.0/16']", false),
        ("dst=['198.51.100.0/24']", true),
        ("dst=['::/0']", false),
        ("proto='tcp'\ndst_ports=[443]", true),
        ("proto='tcp'\ndst_ports=['1-442', '444-65535']", false),
        ("proto='tcp'\nsrc_ports=['32768-60999']", true),
        ("proto='udp'", false),
        ("proto=6", true),
        ("direction='out'", true),
        ("direction='in'", false),
        ("vports=['vm']", true),
        ("vports=['wan', 'other']", false),
        ("vni=5001", false),
        ("proto='tcp'\ntcp_flags='syn'", true),
        ("proto='tcp'\ntcp_flags='syn !ack'", true),
        ("proto='tcp'\ntcp_flags='ack'", false),
    ];
    for (cond, want) in cases {
        let policy = acl(cond);
        let d = eval(&policy, &out_pkt());
        assert_eq!(matches!(d, Decision::Allow(_)), want, "{cond}: {d:?}");
    }
}

#[test]
fn tcp_syn_condition_tells_first_packet_from_reply() {
    let p = acl("proto='tcp'\ntcp_flags='syn !ack'");
    let mut pk = out_pkt();
    assert!(matches!(eval(&p, &pk), Decision::Allow(_)));
    pk.0.tcp_flags = tcp_flag::SYN | tcp_flag::ACK;
    assert_eq!(eval(&p, &pk), Decision::Deny(Deny::LayerDefault { layer: 0 }));
}

#[test]
fn vni_condition_matches_vxlan_tenant_frames() {
    let p = acl("vni=5001");
    let mut pk = out_pkt();
    pk.1.vni = 5001;
    assert!(matches!(eval(&p, &pk), Decision::Allow(_)));
    pk.1.vni = NO_VNI;
    assert!(matches!(eval(&p, &pk), Decision::Deny(_)));
}

#[test]
fn default_allow_forwards_to_the_peer_and_default_deny_names_the_layer() {
    let p = policy("[[layers]]\nname='a'\ndefault='allow'\n[[layers]]\nname='b'\ndefault='deny'\n");
    assert_eq!(eval(&p, &out_pkt()), Decision::Deny(Deny::LayerDefault { layer: 1 }));
    let p = Policy::allow_all(&vports());
    assert_eq!(allowed(eval(&p, &out_pkt())).out_vport, WAN);
    assert_eq!(allowed(eval(&p, &pkt(WAN, OUT.2, 443, OUT.0, 40000))).out_vport, VM);
    assert_eq!(allowed(eval(&p, &pkt(OTHER, OUT.2, 443, OUT.0, 40000))).out_vport, VM);
}

#[test]
fn outbound_walks_top_down_and_inbound_bottom_up() {
    // Both layers deny everything by a rule: whichever comes first names it.
    let p = policy(
        "[[layers]]\nname='top'\ndefault='allow'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=7\npriority=1\naction='deny'\n\
         [[layers]]\nname='bottom'\ndefault='allow'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=9\npriority=1\naction='deny'\n",
    );
    assert_eq!(
        eval(&p, &out_pkt()),
        Decision::Deny(Deny::Rule(RuleRef { layer: 0, rule: 7 }))
    );
    let inb = pkt(WAN, OUT.2, 443, OUT.0, 40000);
    assert_eq!(inb.1.dir, Direction::Inbound);
    assert_eq!(
        eval(&p, &inb),
        Decision::Deny(Deny::Rule(RuleRef { layer: 1, rule: 9 }))
    );
}

#[test]
fn lower_layers_see_the_snat_source_outbound() {
    let p = policy(
        "[[layers]]\nname='nat'\ndefault='allow'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=1\npriority=1\nsrc=['10.1.0.0/24']\naction='snat'\n\
         snat={addrs=['203.0.113.10'], ports='1024-65535'}\n\
         [[layers]]\nname='vnet'\ndefault='deny'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=1\npriority=1\nsrc=['10.1.0.0/24']\naction='deny'\n\
         [[layers.groups.rules]]\nid=2\npriority=2\nsrc=['203.0.113.10/32']\naction='allow'\n",
    );
    let a = allowed(eval(&p, &out_pkt()));
    let pool = a.snat.expect("snat");
    assert_eq!(
        (pool.addrs.as_slice(), pool.port_lo, pool.port_hi),
        (&[[203, 0, 113, 10]][..], 1024, 65535)
    );
    assert_eq!(p.rule_hits(1, 2), 1);
    assert_eq!(p.rule_hits(1, 1), 0);
}

#[test]
fn upper_layers_see_the_dnat_backend_inbound() {
    let p = policy(
        "[[layers]]\nname='acl'\ndefault='deny'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=1\npriority=1\ndst=['10.1.0.5/32']\nproto='tcp'\n\
         dst_ports=[8080]\naction='allow'\n\
         [[layers]]\nname='lb'\ndefault='allow'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=1\npriority=1\ndst=['203.0.113.50/32']\nproto='tcp'\n\
         dst_ports=[80]\naction='dnat'\ndnat={backends=['10.1.0.5:8080']}\n",
    );
    let a = allowed(eval(&p, &pkt(WAN, [192, 0, 2, 9], 5555, [203, 0, 113, 50], 80)));
    assert_eq!(a.dnat, Some((v4_mapped([10, 1, 0, 5]), 8080)));
    assert_eq!(a.out_vport, VM);
    // The VIP itself is not allowed by the ACL: only the rewritten packet is.
    let direct = pkt(WAN, [192, 0, 2, 9], 5555, [203, 0, 113, 51], 80);
    assert!(matches!(
        eval(&p, &direct),
        Decision::Deny(Deny::LayerDefault { layer: 0 })
    ));
}

#[test]
fn rules_of_one_layer_see_the_packet_as_it_entered_the_layer() {
    let p = policy(
        "[[layers]]\nname='nat'\ndefault='deny'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=1\npriority=1\naction='snat'\nterminating=false\n\
         snat={addrs=['203.0.113.10'], ports='1024-2047'}\n\
         [[layers.groups.rules]]\nid=2\npriority=2\nsrc=['10.1.0.4/32']\naction='allow'\n",
    );
    let a = allowed(eval(&p, &out_pkt()));
    assert!(a.snat.is_some(), "non-terminating action applies");
}

#[test]
fn count_is_non_terminating_and_recorded() {
    let p = policy(
        "[[layers]]\nname='acl'\ndefault='deny'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=1\npriority=1\naction='count'\n\
         [[layers.groups.rules]]\nid=2\npriority=2\nproto='udp'\naction='count'\n\
         [[layers.groups.rules]]\nid=3\npriority=3\naction='allow'\n\
         [[layers.groups.rules]]\nid=4\npriority=4\naction='count'\n",
    );
    let a = allowed(eval(&p, &out_pkt()));
    assert_eq!(a.counted.as_slice(), &[RuleRef { layer: 0, rule: 1 }]);
    // Counting alone does not let a packet through a deny-default layer.
    let p = policy(
        "[[layers]]\nname='acl'\ndefault='deny'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=1\npriority=1\naction='count'\n",
    );
    assert_eq!(eval(&p, &out_pkt()), Decision::Deny(Deny::LayerDefault { layer: 0 }));
    assert_eq!(p.rule_hits(0, 1), 1);
}

#[test]
fn first_terminating_match_ends_the_layer_in_group_priority_id_order() {
    // Group 0 comes first whatever the priorities; within a group lower
    // priority first, then lower id; file order does not matter.
    let p = policy(
        "[[layers]]\nname='acl'\ndefault='allow'\n\
         [[layers.groups]]\nname='first'\n\
         [[layers.groups.rules]]\nid=30\npriority=500\naction='deny'\n\
         [[layers.groups.rules]]\nid=20\npriority=100\naction='deny'\n\
         [[layers.groups.rules]]\nid=10\npriority=100\naction='deny'\n\
         [[layers.groups]]\nname='second'\n\
         [[layers.groups.rules]]\nid=1\npriority=1\naction='allow'\n",
    );
    assert_eq!(
        eval(&p, &out_pkt()),
        Decision::Deny(Deny::Rule(RuleRef { layer: 0, rule: 10 }))
    );
    let s = p.summary();
    let ids: Vec<u32> = s.layers[0].groups[0].rules.iter().map(|r| r.id).collect();
    assert_eq!(ids, [10, 20, 30]);
    assert_eq!(s.layers[0].groups[0].rules[0].hits, 1);
    assert_eq!(s.layers[0].groups[1].rules[0].hits, 0);
}

#[test]
fn last_route_wins_and_modifiers_accumulate() {
    let p = policy(
        "[[layers]]\nname='a'\ndefault='allow'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=1\npriority=1\naction='route'\nroute='other'\n\
         set_mac={src='02:00:00:00:00:01'}\n\
         [[layers]]\nname='b'\ndefault='allow'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=1\npriority=1\naction='dec_ttl'\nroute='wan'\n\
         set_mac={dst='02:00:00:00:00:02'}\n",
    );
    let a = allowed(eval(&p, &out_pkt()));
    assert_eq!(a.out_vport, WAN);
    assert_eq!(a.set_src_mac, Some([2, 0, 0, 0, 0, 1]));
    assert_eq!(a.set_dst_mac, Some([2, 0, 0, 0, 0, 2]));
    assert!(a.dec_ttl);
    // Inbound only layer b's rule applies first, then a's: a's route wins.
    assert_eq!(allowed(eval(&p, &pkt(WAN, OUT.2, 443, OUT.0, 40000))).out_vport, OTHER);
}

#[test]
fn decap_of_a_plain_packet_is_an_action_failure() {
    let p = policy(
        "[[layers]]\nname='vnet'\ndefault='deny'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=5\npriority=1\naction='decap'\n",
    );
    let mut pk = pkt(WAN, OUT.2, 443, OUT.0, 40000);
    assert_eq!(
        eval(&p, &pk),
        Decision::Deny(Deny::Action(RuleRef { layer: 0, rule: 5 }))
    );
    pk.0.outer = Some(Outer {
        vni: 5001,
        ..Outer::default()
    });
    assert!(allowed(eval(&p, &pk)).decap);
}

#[test]
fn dnat_spreads_connections_and_sticks_per_connection() {
    let p = policy(
        "[[layers]]\nname='lb'\ndefault='deny'\n[[layers.groups]]\n\
         [[layers.groups.rules]]\nid=1\npriority=1\naction='dnat'\n\
         dnat={backends=['10.1.0.5:8080', '10.1.0.6:8080', '10.1.0.7', '[2001:db8::8]:80']}\n",
    );
    let mut seen = HashSet::new();
    for i in 0..2000u16 {
        let pk = pkt(WAN, [192, 0, 2, (i % 200) as u8], 1024 + i, [203, 0, 113, 50], 80);
        let first = allowed(eval(&p, &pk)).dnat;
        for _ in 0..3 {
            assert_eq!(allowed(eval(&p, &pk)).dnat, first, "same connection, same backend");
        }
        seen.insert(first.unwrap());
    }
    assert_eq!(seen.len(), 4, "all backends used: {seen:?}");
    assert!(seen.contains(&(v4_mapped([10, 1, 0, 7]), 0)), "no port keeps the port");
}

#[test]
fn acl_snat_vxlan_example_end_to_end() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/acl-snat-vxlan.toml");
    let p = load_file(&path, &vports()).unwrap_or_else(|e| panic!("{e}"));

    // Outbound: ACL allows, SNAT to the public address, encap in VNI 5001.
    let a = allowed(eval(&p, &out_pkt()));
    assert_eq!(a.snat.unwrap().addrs, vec![[203, 0, 113, 10]]);
    let e = a.encap.unwrap();
    assert_eq!((e.vni, e.outer_dst_ip), (5001, [192, 0, 2, 254]));
    assert_eq!(a.out_vport, WAN);
    // Metadata range is denied by rule 100 of the acl layer.
    let meta = pkt(VM, OUT.0, 40000, [169, 254, 169, 254], 80);
    assert_eq!(
        eval(&p, &meta),
        Decision::Deny(Deny::Rule(RuleRef { layer: 0, rule: 100 }))
    );

    // Inbound port forward: decap, DNAT 203.0.113.10:2222 -> 10.1.0.4:22,
    // ACL allows SSH to the backend address.
    let mut ssh = pkt(WAN, [192, 0, 2, 77], 50000, [203, 0, 113, 10], 2222);
    ssh.1.vni = 5001;
    ssh.0.outer = Some(Outer {
        vni: 5001,
        ..Outer::default()
    });
    let a = allowed(eval(&p, &ssh));
    assert!(a.decap);
    assert_eq!(a.dnat, Some((v4_mapped([10, 1, 0, 4]), 22)));
    assert_eq!(a.set_dst_mac, Some([2, 0, 0, 0, 1, 4]));
    assert_eq!(a.out_vport, VM);
    // Unsolicited inbound on another port is denied by the ACL default.
    let mut other = pkt(WAN, [192, 0, 2, 77], 50000, [203, 0, 113, 10], 80);
    other.1.vni = 5001;
    other.0.outer = ssh.0.outer;
    assert_eq!(eval(&p, &other), Decision::Deny(Deny::LayerDefault { layer: 0 }));
    // Wrong VNI never gets past the vnet layer.
    ssh.1.vni = 6000;
    assert_eq!(eval(&p, &ssh), Decision::Deny(Deny::LayerDefault { layer: 2 }));
}

#[test]
fn bench_policy_allows_bench_traffic_after_scanning_every_rule() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bench-1000-rules.toml");
    let p = load_file(&path, &vports()).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..100u16 {
        let mut pk = pkt(VM, [10, 1, (i >> 8) as u8, i as u8], 1024 + i, [198, 51, 100, 1], 80);
        if i % 2 == 0 {
            pk.1.proto = proto::UDP;
        }
        let a = allowed(eval(&p, &pk));
        assert!(a.snat.is_some() && a.encap.is_some() && a.counted.is_empty());
    }
    assert_eq!(p.rule_hits(0, 1), 100);
}
