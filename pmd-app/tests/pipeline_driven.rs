//! The pipeline through the real app where order matters across the two
//! vports (a reply after its request): the app runs on taps (or af_packet
//! on veth pairs), and tests/helpers/pipeline.py drive sends a phase on
//! the kernel side, waits with a deadline until its packets came out on
//! the far side, and only then sends the replies. Its captures are
//! decoded by tshark (checksums validated) and compared field by field
//! with what it sent; the drop counters come from `--final-stats`.
//! Needs root (taps, veths, sysctl, ethtool).

mod common;
mod pipeline_support;

use common::repo_root;
use pipeline_support::*;
use std::collections::{BTreeSet, HashMap};

const STATEFUL_ACL: &str = r#"
[[layers]]
name = "acl"
default = "deny"

[[layers.groups]]
name = "out"

[[layers.groups.rules]]
id = 1
priority = 1
direction = "out"
src = ["10.1.0.0/24"]
action = "allow"

[[layers.groups]]
name = "in"

[[layers.groups.rules]]
id = 2
priority = 1
direction = "in"
dst = ["10.1.0.4/32"]
proto = "tcp"
dst_ports = [22]
tcp_flags = "syn !ack"
action = "allow"
"#;

#[test]
fn stateful_acl_admits_replies_and_drops_unsolicited_inbound() {
    let r = run_driven("stf", "stateful", STATEFUL_ACL, "0", Setup::Taps);
    // No rewrite in this policy: whatever came out is what was sent.
    let mut forwarded = 0;
    for t in 1..=r.ex.log["tags"].as_object().unwrap().len() as u64 {
        let h = r.ex.hop(t);
        if let (Some(on), Some(i)) = (&h.got_on, h.got_idx) {
            assert_eq!(
                r.ex.received(on)[i],
                r.ex.sent[&h.sent_on][h.sent_idx],
                "tag {t} changed on the way"
            );
            assert_ne!(on, &h.sent_on);
            forwarded += 1;
        }
    }
    assert_eq!(forwarded, 12, "every packet expected out came out");
    r.stats
        .assert_drops_probed(&[("no-flow", 2), ("policy-deny", 3)], r.ex.lost_probes());
    // Non-IP frames (only the driver's readiness probes here) pass untouched.
    let l2 = r.ex.probes_recv() + r.stats.drop_count("no-tx-path");
    assert_eq!(r.stats.engine("l2-forwarded"), l2, "{}", r.stats.pretty());
    // TCP 40000, UDP 5000, the inbound SSH connection and the ping.
    assert_eq!(r.stats.engine("flows-created"), 4, "{}", r.stats.pretty());
    assert_eq!(r.stats.engine("forwarded"), forwarded, "{}", r.stats.pretty());
}

#[test]
fn snat_rewrites_the_source_and_restores_replies() {
    check_snat(&run_driven("snat", "snat", SNAT_POLICY, "0", Setup::Taps));
}

/// Two workers, single-queue taps: every packet reaches worker 0, which
/// hands each to its flow's owner, replies (whose key the NAT changed)
/// included.
#[test]
fn snat_on_two_lcores_with_single_queue_devices() {
    let r = run_driven("snat2", "snat", SNAT_POLICY, "0-1", Setup::Taps);
    check_snat(&r);
    let lc = r.stats.lcores();
    assert_eq!(lc.len(), 2, "{}", r.stats.pretty());
    assert_eq!(r.stats.lcore_sum("flows"), 11, "{}", r.stats.pretty());
    assert!(r.stats.engine("redirects-out") > 0, "{}", r.stats.pretty());
}

fn check_snat(r: &Driven) {
    let dec = Decoded::new(&r.ex);
    let keep = [
        "vlan.id",
        "ip.hdr_len",
        "frame.len",
        "ip.dst",
        "ip.ttl",
        "ip.id",
        "eth.src",
        "eth.dst",
        "tcp.flags",
        "tcp.seq_raw",
    ];
    // Original (src, sport) -> NAT port, per protocol.
    let mut nat: HashMap<(String, String, u64), u64> = HashMap::new();
    let mut seen: BTreeSet<(&str, u64)> = BTreeSet::new();
    for t in r.ex.group("first") {
        let (s, g) = dec.pair(&r.ex, t);
        let ctx = format!("first tag {t}");
        same(&s, &g, &keep, &ctx);
        assert_eq!(g.get("ip.src"), "203.0.113.10", "{ctx}: source not rewritten");
        let (sp, dp) = ports(&s);
        let (gp, gdp) = ports(&g);
        assert!((20000..=20999).contains(&gp), "{ctx}: NAT port {gp}");
        if proto(&s) != "icmp" {
            assert_eq!(gdp, dp, "{ctx}: destination port");
        }
        assert!(seen.insert((proto(&s), gp)), "{ctx}: NAT port {gp} reused");
        checksums_good(&g, &ctx);
        if s.get("udp.checksum") == "0x0000" {
            assert_eq!(
                g.get("udp.checksum"),
                "0x0000",
                "{ctx}: a zero UDP checksum must stay zero"
            );
        }
        nat.insert((proto(&s).into(), s.get("ip.src"), sp), gp);
    }
    assert_eq!(nat.len(), 11);
    // Replies: destination restored to the VM's address and port.
    let firsts = r.ex.group("first");
    for (k, t) in r.ex.group("replies").into_iter().enumerate() {
        let (s, g) = dec.pair(&r.ex, t);
        let (orig, _) = dec.pair(&r.ex, firsts[k]);
        let ctx = format!("reply tag {t}");
        same(
            &s,
            &g,
            &[
                "frame.len",
                "ip.src",
                "ip.ttl",
                "ip.id",
                "tcp.flags",
                "udp.srcport",
                "tcp.srcport",
            ],
            &ctx,
        );
        assert_eq!(g.get("ip.dst"), "10.1.0.4", "{ctx}: destination not restored");
        let (_, gdp) = ports(&g);
        let (osp, _) = ports(&orig);
        assert_eq!(gdp, osp, "{ctx}: destination port not restored");
        checksums_good(&g, &ctx);
    }
    // Later packets of a connection keep its NAT port, both ways.
    for t in r.ex.group("acks") {
        let (s, g) = dec.pair(&r.ex, t);
        let (sp, _) = ports(&s);
        assert_eq!(g.get("ip.src"), "203.0.113.10");
        assert_eq!(
            Some(&ports(&g).0),
            nat.get(&("tcp".into(), s.get("ip.src"), sp)),
            "ack tag {t}"
        );
        checksums_good(&g, &format!("ack tag {t}"));
    }
    for t in r.ex.group("data_in") {
        let (_, g) = dec.pair(&r.ex, t);
        assert_eq!(g.get("ip.dst"), "10.1.0.4");
        assert!((41000..41004).contains(&ports(&g).1), "data tag {t}: {g:?}");
        checksums_good(&g, &format!("data tag {t}"));
    }
    // ICMP errors about the first TCP, UDP and ICMP packets: back to the
    // VM, the destination and the quoted source restored.
    let errs = r.ex.group("icmp_errors");
    assert_eq!(errs.len(), 3);
    for (t, k) in errs.into_iter().zip([0, 4, 8]) {
        let (_, g) = dec.pair(&r.ex, t);
        let (orig, _) = dec.pair(&r.ex, firsts[k]);
        let ctx = format!("icmp error tag {t} about first tag {}", firsts[k]);
        assert_eq!(g.all("ip.src"), ["198.51.100.1", "10.1.0.4"], "{ctx}");
        assert_eq!(g.all("ip.dst"), ["10.1.0.4".to_string(), orig.get("ip.dst")], "{ctx}");
        assert_eq!(
            (g.get("icmp.type"), g.get("icmp.mtu")),
            ("3".into(), "1400".into()),
            "{ctx}"
        );
        assert_eq!(ports(&g).0, ports(&orig).0, "{ctx}: quoted source port / identifier");
        // The quoted UDP header is the VM's own again, checksum included.
        assert_eq!(g.inner("udp.checksum"), orig.inner("udp.checksum"), "{ctx}");
        assert_eq!(
            g.all("ip.checksum.status"),
            ["1", "1"],
            "{ctx}: outer and quoted IPv4 header checksums"
        );
        assert_eq!(g.get("icmp.checksum.status"), "1", "{ctx}: ICMP checksum");
    }
    r.stats
        .assert_drops_probed(&[("no-flow", 2), ("policy-deny", 1)], r.ex.lost_probes());
    assert_eq!(r.stats.engine("flows-created"), 11, "{}", r.stats.pretty());
    assert_eq!(r.stats.engine("icmp-related"), 3, "{}", r.stats.pretty());
}

#[test]
fn vxlan_encap_and_decap_with_the_documented_policy() {
    let policy = repo_root().join("examples/acl-snat-vxlan.toml");
    let r = run_driven("vxl", "vxlan", policy.to_str().unwrap(), "0", Setup::Taps);
    let dec = Decoded::new(&r.ex);
    // Outbound: SNAT'd inner frame in VXLAN VNI 5001 to the gateway.
    for t in r.ex.group("encap") {
        let (s, g) = dec.pair(&r.ex, t);
        let ctx = format!("encap tag {t}");
        assert_eq!(g.all("vxlan.vni"), vec!["5001"], "{ctx}: not VXLAN 5001: {g:?}");
        assert_eq!(
            g.num("frame.len"),
            s.num("frame.len") + 50,
            "{ctx}: 50 bytes of outer headers"
        );
        // Outer Ethernet / IPv4 / UDP.
        assert_eq!(g.get("eth.src"), "02:00:00:00:00:01", "{ctx}");
        assert_eq!(g.get("eth.dst"), "02:00:00:00:00:fe", "{ctx}");
        let ip_src = g.all("ip.src");
        let ip_dst = g.all("ip.dst");
        assert_eq!(
            (ip_src[0].as_str(), ip_dst[0].as_str()),
            ("192.0.2.1", "192.0.2.254"),
            "{ctx}"
        );
        assert_eq!(g.all("ip.ttl")[0], "64", "{ctx}: outer TTL");
        assert_eq!(g.all("ip.proto")[0], "17", "{ctx}");
        assert_eq!(g.all("ip.flags.df")[0], "1", "{ctx}: outer DF");
        assert_eq!(g.all("ip.checksum.status")[0], "1", "{ctx}: outer IPv4 checksum");
        let ip_len: u64 = g.all("ip.len")[0].parse().unwrap();
        assert_eq!(ip_len, g.num("frame.len") - 14, "{ctx}: outer IPv4 total length");
        let udp_len: u64 = g.all("udp.length")[0].parse().unwrap();
        assert_eq!(udp_len, ip_len - 20, "{ctx}: outer UDP length");
        assert_eq!(g.all("udp.dstport")[0], "4789", "{ctx}");
        let sport: u64 = g.all("udp.srcport")[0].parse().unwrap();
        assert!((49152..=65535).contains(&sport), "{ctx}: outer UDP source port {sport}");
        let c = &g.all("udp.checksum")[0];
        assert!(
            c == "0x0000" || g.all("udp.checksum.status")[0] == "1",
            "{ctx}: outer UDP checksum {c}"
        );
        let raw = &r.ex.received("wan")[r.ex.hop(t).got_idx.unwrap()];
        assert_eq!(raw[42], 0x08, "{ctx}: VXLAN I flag");
        // Inner: the sent frame with its source NAT'd, MACs kept.
        assert_eq!(g.all("eth.src")[1], s.get("eth.src"), "{ctx}: inner MAC");
        assert_eq!(g.all("eth.dst")[1], s.get("eth.dst"), "{ctx}: inner MAC");
        assert_eq!(ip_src[1], "203.0.113.10", "{ctx}: inner source not NAT'd");
        assert_eq!(ip_dst[1], s.get("ip.dst"), "{ctx}");
        assert_eq!(g.all("ip.id")[1], s.get("ip.id"), "{ctx}");
        assert_eq!(g.all("ip.checksum.status")[1], "1", "{ctx}: inner IPv4 checksum");
        let (gp, gdp) = ports(&g);
        let (_, dp) = ports(&s);
        assert_eq!(gdp, dp, "{ctx}");
        assert!(gp >= 1024, "{ctx}: NAT port {gp}");
        checksums_good(&g, &ctx);
    }
    // Replies: decapsulated, destination restored, MACs back to the VM's.
    let encap = r.ex.group("encap");
    for (k, t) in r.ex.group("decap_replies").into_iter().enumerate() {
        let (s, g) = dec.pair(&r.ex, t);
        let (first, _) = dec.pair(&r.ex, encap[k]);
        let ctx = format!("decap tag {t}");
        assert!(g.all("vxlan.vni").is_empty(), "{ctx}: still encapsulated");
        assert_eq!(g.num("frame.len") + 50, s.num("frame.len"), "{ctx}");
        assert_eq!(g.get("eth.dst"), first.get("eth.src"), "{ctx}: to the VM's MAC");
        assert_eq!(g.get("eth.src"), first.get("eth.dst"), "{ctx}");
        assert_eq!(g.get("ip.dst"), "10.1.0.4", "{ctx}: destination not restored");
        assert_eq!(g.get("ip.src"), first.get("ip.dst"), "{ctx}");
        assert_eq!(ports(&g).1, ports(&first).0, "{ctx}: destination port not restored");
        checksums_good(&g, &ctx);
    }
    // A new inbound connection: decap, port forward to 10.1.0.4:22, the
    // VM's MAC; its reply tunnelled back to where it came from.
    let t = r.ex.group("decap_new")[0];
    let (s, g) = dec.pair(&r.ex, t);
    assert!(g.all("vxlan.vni").is_empty(), "decap new: {g:?}");
    assert_eq!(g.get("eth.dst"), VM_MAC, "decap new: set_mac");
    assert_eq!(
        (g.get("ip.dst"), g.get("tcp.dstport")),
        ("10.1.0.4".into(), "22".into())
    );
    assert_eq!(
        (g.get("ip.src"), g.get("tcp.srcport")),
        (s.inner("ip.src"), s.inner("tcp.srcport"))
    );
    checksums_good(&g, "decap new");
    let t = r.ex.group("encap_reply")[0];
    let (s, g) = dec.pair(&r.ex, t);
    assert_eq!(g.all("vxlan.vni"), vec!["5001"], "encap reply: {g:?}");
    assert_eq!(g.all("ip.src")[0], "192.0.2.1", "encap reply: outer source");
    assert_eq!(
        g.all("ip.dst")[0],
        "192.0.2.200",
        "encap reply: back to the sender's VTEP"
    );
    assert_eq!(g.get("eth.dst"), "02:00:00:00:00:fe", "encap reply: outer MAC");
    assert_eq!(g.all("ip.checksum.status")[0], "1");
    assert_eq!(g.all("ip.src")[1], "203.0.113.10", "encap reply: DNAT undone");
    assert_eq!(g.inner("tcp.srcport"), "2222", "encap reply: DNAT port undone");
    assert_eq!(g.all("ip.dst")[1], "198.51.100.9");
    assert_eq!(
        g.all("eth.src")[1],
        "02:00:00:00:02:98",
        "encap reply: inner MACs mirrored"
    );
    assert_eq!(
        g.all("eth.dst")[1],
        "02:00:00:00:02:99",
        "encap reply: inner MACs mirrored"
    );
    assert_eq!(s.get("tcp.flags"), g.inner("tcp.flags"));
    checksums_good(&g, "encap reply");
    r.stats.assert_drops_probed(&[("policy-deny", 3)], r.ex.lost_probes());
    assert_eq!(r.stats.engine("flows-created"), 3, "{}", r.stats.pretty());
}

#[test]
fn dnat_replies_come_from_the_vip_and_later_packets_stick() {
    let policy = repo_root().join("examples/dnat-lb.toml");
    let r = run_driven("dnr", "dnat", policy.to_str().unwrap(), "0", Setup::Taps);
    let dec = Decoded::new(&r.ex);
    let mut backend: HashMap<String, String> = HashMap::new();
    for t in r.ex.group("syn") {
        let (s, g) = dec.pair(&r.ex, t);
        let ctx = format!("syn tag {t}");
        assert!(
            ["10.1.0.5", "10.1.0.6", "10.1.0.7"].contains(&g.get("ip.dst").as_str()),
            "{ctx}: {g:?}"
        );
        assert_eq!(g.get("tcp.dstport"), "8080", "{ctx}");
        same(&s, &g, &["ip.src", "tcp.srcport", "frame.len", "ip.id"], &ctx);
        checksums_good(&g, &ctx);
        backend.insert(s.get("tcp.srcport"), g.get("ip.dst"));
    }
    for t in r.ex.group("synack") {
        let (s, g) = dec.pair(&r.ex, t);
        let ctx = format!("syn-ack tag {t}");
        assert_eq!(
            (g.get("ip.src"), g.get("tcp.srcport")),
            ("203.0.113.50".into(), "80".into()),
            "{ctx}"
        );
        same(&s, &g, &["ip.dst", "tcp.dstport", "frame.len", "tcp.flags"], &ctx);
        checksums_good(&g, &ctx);
    }
    for t in r.ex.group("ack") {
        let (s, g) = dec.pair(&r.ex, t);
        assert_eq!(
            Some(&g.get("ip.dst")),
            backend.get(&s.get("tcp.srcport")),
            "ack tag {t}: other backend"
        );
        checksums_good(&g, &format!("ack tag {t}"));
    }
    r.stats.assert_drops_probed::<&str>(&[], r.ex.lost_probes());
    assert_eq!(r.stats.engine("flows-created"), 8, "{}", r.stats.pretty());
}

#[test]
fn two_queues_two_lcores_one_owner_per_connection() {
    check_multiq("mq", "0-1", 2);
}

/// More queues than lcores: each lcore polls two rx queues of each port.
#[test]
fn four_queues_two_lcores_one_owner_per_connection() {
    check_multiq("mq4", "0-1", 4);
}

/// One lcore polls both queues of each port (and owns every flow).
#[test]
fn two_queues_one_lcore() {
    check_multiq("mq1", "0", 2);
}

/// The multiq scenario (SNAT'd TCP and UDP connections whose replies hash
/// differently from their requests) on `queues` af_packet queue pairs per
/// port polled by the workers of `lcores`: every packet of a connection
/// meets its one flow pair, NAT and counters check out, and with two
/// lcores each owns connections and hands the other's packets over.
fn check_multiq(name: &str, lcores: &str, queues: u16) {
    let policy = SNAT_POLICY.replace("20000-20999", "1024-65535");
    let r = run_driven(name, "multiq", &policy, lcores, Setup::AfPacket(queues));
    let workers = if lcores.contains('-') { 2 } else { 1 };
    let dec = Decoded::new(&r.ex);
    let firsts = r.ex.group("first");
    let conns = firsts.len() as u64;
    let mut nat: HashMap<u64, u64> = HashMap::new();
    for (k, t) in firsts.iter().enumerate() {
        let (_, g) = dec.pair(&r.ex, *t);
        assert_eq!(g.get("ip.src"), "203.0.113.10", "first tag {t}");
        checksums_good(&g, &format!("first tag {t}"));
        nat.insert(k as u64, ports(&g).0);
    }
    for (k, t) in r.ex.group("second").into_iter().enumerate() {
        let (_, g) = dec.pair(&r.ex, t);
        assert_eq!(g.get("ip.src"), "203.0.113.10", "second tag {t}");
        assert_eq!(
            Some(&ports(&g).0),
            nat.get(&(k as u64)),
            "second tag {t}: other NAT port"
        );
    }
    for group in ["replies", "data_in"] {
        for (k, t) in r.ex.group(group).into_iter().enumerate() {
            let (_, g) = dec.pair(&r.ex, t);
            let (orig, _) = dec.pair(&r.ex, firsts[k]);
            let ctx = format!("{group} tag {t}");
            assert_eq!(g.get("ip.dst"), orig.get("ip.src"), "{ctx}: destination not restored");
            assert_eq!(ports(&g).1, ports(&orig).0, "{ctx}: port not restored");
            checksums_good(&g, &ctx);
        }
    }
    let s = &r.stats;
    // One pair per connection: no lcore created a second one for replies,
    // and none dropped a reply for want of its flow.
    s.assert_drops_probed::<&str>(&[], r.ex.lost_probes());
    assert_eq!(s.engine("flows-created"), conns, "{}", s.pretty());
    assert_eq!(s.engine("flows-active"), conns, "{}", s.pretty());
    assert_eq!(s.lcore_sum("flows"), conns, "{}", s.pretty());
    let lc = s.lcores();
    assert_eq!(lc.len(), workers, "{}", s.pretty());
    for l in &lc {
        assert!(
            l["rx_packets"].as_u64().unwrap_or(0) > 0,
            "an lcore received nothing\n{}",
            s.pretty()
        );
        assert!(
            l["flows"].as_u64().unwrap_or(0) > 0,
            "an lcore owns no flow\n{}",
            s.pretty()
        );
    }
    // Counters add up: 4 packets per connection, all forwarded, plus the
    // driver's non-IP readiness probes.
    let total = 4 * conns;
    let probes = r.ex.probes_recv();
    let rx = s.lcore_sum("rx_packets");
    let tx = s.lcore_sum("tx_packets");
    assert_eq!(rx, tx + s.total_drops(), "rx = tx + drops\n{}", s.pretty());
    assert_eq!(tx, total + probes, "{}", s.pretty());
    let (vm_rx, vm_tx) = s.vport_fast("vm");
    let (wan_rx, wan_tx) = s.vport_fast("wan");
    assert_eq!(
        (vm_rx + wan_rx, vm_tx + wan_tx),
        (rx, tx),
        "vports vs lcores\n{}",
        s.pretty()
    );
    assert!(vm_tx >= total / 2 && wan_tx >= total / 2, "{}", s.pretty());
    assert_eq!(s.engine("forwarded"), total, "{}", s.pretty());
    assert_eq!(
        s.engine("l2-forwarded"),
        probes + s.drop_count("no-tx-path"),
        "{}",
        s.pretty()
    );
    // Replies carry the pool address, so about half of them reach the lcore
    // that does not own their connection: hand-off was exercised. One
    // lcore owns everything and hands nothing over.
    if workers == 2 {
        assert!(
            s.engine("redirects-out") > 0,
            "no packet was handed to its owner\n{}",
            s.pretty()
        );
    } else {
        assert_eq!(s.engine("redirects-out"), 0, "{}", s.pretty());
    }
}
