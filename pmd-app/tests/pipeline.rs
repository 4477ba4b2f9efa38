//! The pipeline (parse -> flow table -> transposition) through the real
//! app, pcap in -> pcap out (net_pcap): traffic built with scapy
//! (tests/helpers/pipeline.py gen), the app's output decoded by tshark
//! (checksums validated) and compared field by field with what was sent,
//! plus the drop counters of `--final-stats`. Every packet here opens its
//! own connection or follows its own earlier packets on the same input,
//! so the order in which the app reads its two inputs does not matter;
//! exchanges whose order does are in pipeline_driven.rs.

mod common;
mod pipeline_support;

use common::*;
use pipeline_support::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

#[test]
fn acl_allows_and_denies_each_packet_statelessly() {
    let policy = r#"
[[layers]]
name = "acl"
default = "deny"

[[layers.groups]]
name = "out"

[[layers.groups.rules]]
id = 10
priority = 10
direction = "out"
dst = ["192.0.2.66/32"]
action = "deny"

[[layers.groups.rules]]
id = 20
priority = 20
direction = "out"
src = ["10.1.0.0/24"]
dst = ["192.0.2.0/24"]
proto = "udp"
dst_ports = [53, "5000-5009"]
action = "allow"

[[layers.groups.rules]]
id = 30
priority = 30
direction = "out"
proto = "tcp"
dst_ports = [443]
tcp_flags = "syn !ack"
action = "allow"

[[layers.groups.rules]]
id = 40
priority = 40
direction = "out"
dst = ["2001:db8:1::/48"]
proto = "icmpv6"
action = "allow"

[[layers.groups]]
name = "in"

[[layers.groups.rules]]
id = 50
priority = 10
direction = "in"
dst = ["10.1.0.4/32"]
proto = "tcp"
dst_ports = [22]
action = "allow"
"#;
    let r = run_pcap("acl", "acl", policy, "0");
    let (vm_in, wan_in) = (r.frames("vm_in.pcap"), r.frames("wan_in.pcap"));
    let want_wan = expected(&vm_in, &r.fates.vm_in, "wan");
    let want_vm = expected(&wan_in, &r.fates.wan_in, "vm");
    assert!(want_wan.len() > 10 && want_vm.len() >= 3);
    // Allowed packets leave unmodified (no rewrite in this policy), in order.
    let got_wan = r.frames("wan_out.pcap");
    let got_vm = r.frames("vm_out.pcap");
    assert_eq!(
        got_wan.len(),
        want_wan.len(),
        "wan: frames out vs allowed\n{}",
        r.stats.pretty()
    );
    assert_eq!(
        got_vm.len(),
        want_vm.len(),
        "vm: frames out vs allowed\n{}",
        r.stats.pretty()
    );
    for (i, (g, w)) in got_wan.iter().zip(&want_wan).enumerate() {
        assert_eq!(g, w, "wan frame {i} differs from the allowed input frame");
    }
    for (i, (g, w)) in got_vm.iter().zip(&want_vm).enumerate() {
        assert_eq!(g, w, "vm frame {i} differs from the allowed input frame");
    }
    // tshark agrees field by field.
    let keep: Vec<bool> = r.fates.vm_in.iter().map(|f| f == "wan").collect();
    let a = rows_of(&r.path("vm_in.pcap"), &PLAIN_FIELDS, &keep);
    let b = tshark_rows(&r.path("wan_out.pcap"), &PLAIN_FIELDS);
    assert_eq!(fields_of(&a, &PLAIN_FIELDS), fields_of(&b, &PLAIN_FIELDS));

    let drops = r.fates.drops();
    assert!(drops.iter().any(|(k, n)| k == "policy-deny" && *n >= 20), "{drops:?}");
    r.stats.assert_drops(&drops);
    let arps = want_wan.iter().filter(|f| is_arp(f)).count() as u64;
    let ip_fwd = (want_wan.len() + want_vm.len()) as u64 - arps;
    assert_eq!(r.stats.engine("l2-forwarded"), arps, "{}", r.stats.pretty());
    assert_eq!(r.stats.engine("forwarded"), ip_fwd, "{}", r.stats.pretty());
    // Every allowed packet opened its own connection.
    assert_eq!(r.stats.engine("flows-created"), ip_fwd, "{}", r.stats.pretty());
    assert_eq!(r.stats.vport_fast("vm"), (vm_in.len() as u64, want_vm.len() as u64));
    assert_eq!(r.stats.vport_fast("wan"), (wan_in.len() as u64, want_wan.len() as u64));
    assert_eq!(r.stats.lcore_sum("rx_packets"), r.fates.total() as u64);
    assert_eq!(
        r.stats.lcore_sum("tx_packets") + r.stats.total_drops(),
        r.fates.total() as u64,
        "rx = tx + drops\n{}",
        r.stats.pretty()
    );
}

#[test]
fn ttl_is_decremented_and_expired_packets_dropped() {
    let policy = r#"
[[layers]]
name = "route"
default = "deny"

[[layers.groups]]

[[layers.groups.rules]]
id = 1
priority = 1
action = "allow"
dec_ttl = true
"#;
    let r = run_pcap("ttl", "ttl", policy, "0");
    let f = [
        "frame.len",
        "ip.ttl",
        "ipv6.hlim",
        "ip.checksum.status",
        "udp.checksum.status",
        "tcp.checksum.status",
        "ip.src",
        "ip.dst",
        "ipv6.dst",
        "udp.srcport",
        "tcp.srcport",
    ];
    for (inp, fates, out, to) in [
        ("vm_in.pcap", &r.fates.vm_in, "wan_out.pcap", "wan"),
        ("wan_in.pcap", &r.fates.wan_in, "vm_out.pcap", "vm"),
    ] {
        let keep: Vec<bool> = fates.iter().map(|x| x == to).collect();
        let sent = rows_of(&r.path(inp), &f, &keep);
        let got = tshark_rows(&r.path(out), &f);
        assert_eq!(got.len(), sent.len(), "{out}: forwarded count\n{}", r.stats.pretty());
        let sent_raw = expected(&r.frames(inp), fates, to);
        let got_raw = r.frames(out);
        for (i, (s, g)) in sent.iter().zip(&got).enumerate() {
            if !s.get("ip.ttl").is_empty() {
                assert_eq!(g.num("ip.ttl"), s.num("ip.ttl") - 1, "{out} #{i} ttl");
                assert_eq!(g.get("ip.checksum.status"), "1", "{out} #{i}: IPv4 header checksum");
            } else {
                assert_eq!(g.num("ipv6.hlim"), s.num("ipv6.hlim") - 1, "{out} #{i} hop limit");
            }
            for c in ["udp.checksum.status", "tcp.checksum.status"] {
                if !s.get(c).is_empty() {
                    assert_eq!(g.get(c), "1", "{out} #{i}: {c}");
                }
            }
            for x in [
                "frame.len",
                "ip.src",
                "ip.dst",
                "ipv6.dst",
                "udp.srcport",
                "tcp.srcport",
            ] {
                assert_eq!(g.all(x), s.all(x), "{out} #{i}: {x}");
            }
            // Nothing else changed: every byte but TTL and header checksum.
            let (a, b) = (&sent_raw[i], &got_raw[i]);
            let v4 = a[12..14] == [0x08, 0x00];
            for (k, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                let ttl_or_sum = if v4 { [22, 24, 25].contains(&k) } else { k == 21 };
                if !ttl_or_sum {
                    assert_eq!(x, y, "{out} #{i}: byte {k} changed");
                }
            }
        }
    }
    let drops = r.fates.drops();
    assert!(drops.iter().any(|(k, n)| k == "ttl-expired" && *n >= 5), "{drops:?}");
    r.stats.assert_drops(&drops);
}

#[test]
fn malformed_frames_are_counted_never_forwarded_and_good_ones_still_flow() {
    let allow_all = repo_root().join("examples/allow-all.toml");
    let r = run_pcap("malf", "malformed", allow_all.to_str().unwrap(), "0");
    let vm_in = r.frames("vm_in.pcap");
    let want = expected(&vm_in, &r.fates.vm_in, "wan");
    let got = r.frames("wan_out.pcap");
    assert_eq!(got.len(), want.len(), "good frames out\n{}", r.stats.pretty());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "good frame {i} changed");
    }
    // The malformed frames carry tag 99999: none of it may leave.
    for g in got.iter().chain(r.frames("vm_out.pcap").iter()) {
        assert!(
            !g.windows(8).any(|w| w == b"<T99999>"),
            "a malformed frame was forwarded"
        );
    }
    let drops = r.fates.drops();
    assert_eq!(
        drops.iter().filter(|(k, _)| k.starts_with("parse-")).count(),
        3,
        "the scenario covers the three parse reasons: {drops:?}"
    );
    r.stats.assert_drops(&drops);
    // Good packets after the bad ones: the app kept going.
    assert!(r.fates.vm_in.last().map(|s| s == "wan").unwrap_or(false));
}

/// Mutated traffic on both vports (tests/helpers/pipeline.py gen_mutated:
/// the VM's UDP, TCP and ICMP and tunnelled replies, half of it with
/// bytes overwritten, cut, padded or fragment bits set) through two
/// workers, one rx queue per port, so packets of flows the other worker
/// owns are handed over: a clean exit with every mbuf back and rx = tx +
/// drops on every counter (run_pcap checks those), some of it forwarded
/// and some dropped.
#[test]
fn mutated_traffic_on_two_lcores_is_accounted_for() {
    let policy = repo_root().join("examples/acl-snat-vxlan.toml");
    let r = run_pcap("mut", "mutated", policy.to_str().unwrap(), "0-1");
    let s = &r.stats;
    assert!(s.lcore_sum("tx_packets") > 0, "{}", s.pretty());
    assert!(s.total_drops() > 0, "{}", s.pretty());
    assert!(
        s.engine("redirects-out") > 0,
        "no packet was handed over\n{}",
        s.pretty()
    );
}

#[test]
fn multi_segment_frames_are_counted_as_such_and_others_still_flow() {
    let allow_all = repo_root().join("examples/allow-all.toml");
    let r = run_pcap("jumbo", "jumbo", allow_all.to_str().unwrap(), "0");
    let want = expected(&r.frames("vm_in.pcap"), &r.fates.vm_in, "wan");
    let got = r.frames("wan_out.pcap");
    assert_eq!(
        got, want,
        "the small frames come out unchanged, the big ones not at all"
    );
    assert!(r.frames("vm_out.pcap").is_empty());
    r.stats.assert_drops(&r.fates.drops());
}

#[test]
fn vxlan_outer_headers_are_right_at_every_frame_size() {
    let policy = repo_root().join("examples/acl-snat-vxlan.toml");
    let r = run_pcap("vxsz", "vxlan-sizes", policy.to_str().unwrap(), "0");
    let f = [
        "frame.len",
        "eth.src",
        "eth.dst",
        "ip.src",
        "ip.dst",
        "ip.len",
        "ip.ttl",
        "ip.flags.df",
        "ip.checksum.status",
        "udp.srcport",
        "udp.dstport",
        "udp.length",
        "udp.checksum",
        "udp.checksum.status",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.checksum.status",
        "vxlan.vni",
    ];
    // Outbound: SNAT'd and encapsulated.
    let sent = tshark_rows(&r.path("vm_in.pcap"), &f);
    let got = tshark_rows(&r.path("wan_out.pcap"), &f);
    assert_eq!(got.len(), sent.len(), "encapsulated count\n{}", r.stats.pretty());
    let raw = r.frames("wan_out.pcap");
    for (i, (s, g)) in sent.iter().zip(&got).enumerate() {
        let ctx = format!("encap #{i} ({} B in)", s.get("frame.len"));
        assert_eq!(g.num("frame.len"), s.num("frame.len") + 50, "{ctx}");
        assert_eq!(g.all("vxlan.vni"), vec!["5001"], "{ctx}");
        let ip_len: u64 = g.all("ip.len")[0].parse().unwrap();
        assert_eq!(ip_len, g.num("frame.len") - 14, "{ctx}: outer total length");
        let udp_len: u64 = g.all("udp.length")[0].parse().unwrap();
        assert_eq!(udp_len, ip_len - 20, "{ctx}: outer UDP length");
        assert_eq!(g.all("ip.checksum.status")[0], "1", "{ctx}: outer IPv4 checksum");
        assert_eq!(g.all("ip.ttl")[0], "64", "{ctx}");
        assert_eq!(g.all("ip.flags.df")[0], "1", "{ctx}");
        assert_eq!(
            (g.all("ip.src")[0].as_str(), g.all("ip.dst")[0].as_str()),
            ("192.0.2.1", "192.0.2.254")
        );
        assert_eq!(g.all("udp.dstport")[0], "4789", "{ctx}");
        assert_eq!(raw[i][42], 0x08, "{ctx}: VXLAN I flag");
        // The inner frame: the sent one, SNAT'd, byte count unchanged.
        assert_eq!(g.all("ip.src")[1], "203.0.113.10", "{ctx}");
        assert_eq!(g.all("ip.len")[1], s.get("ip.len"), "{ctx}: inner total length");
        assert_eq!(g.all("ip.checksum.status")[1], "1", "{ctx}: inner IPv4 checksum");
        assert_eq!(raw[i].len() - 50, s.num("frame.len") as usize, "{ctx}");
        checksums_good(g, &ctx);
    }
    // Inbound: decapsulated and port-forwarded to the VM.
    let sent = tshark_rows(&r.path("wan_in.pcap"), &f);
    let got = tshark_rows(&r.path("vm_out.pcap"), &f);
    assert_eq!(got.len(), sent.len(), "decapsulated count\n{}", r.stats.pretty());
    for (i, (s, g)) in sent.iter().zip(&got).enumerate() {
        let ctx = format!("decap #{i} ({} B in)", s.get("frame.len"));
        assert_eq!(g.num("frame.len") + 50, s.num("frame.len"), "{ctx}");
        assert!(g.all("vxlan.vni").is_empty(), "{ctx}: still encapsulated");
        assert_eq!(g.get("eth.dst"), VM_MAC, "{ctx}: set_mac");
        assert_eq!(
            (g.get("ip.dst"), g.get("tcp.dstport")),
            ("10.1.0.4".into(), "22".into()),
            "{ctx}"
        );
        assert_eq!(g.get("ip.len"), s.all("ip.len")[1], "{ctx}: inner total length");
        checksums_good(g, &ctx);
    }
    r.stats.assert_drops::<&str>(&[]);
    assert_eq!(r.stats.engine("flows-created"), r.fates.total() as u64);
}

#[test]
fn dnat_spreads_connections_over_backends_and_each_sticks_to_one() {
    let policy = repo_root().join("examples/dnat-lb.toml");
    let r = run_pcap("dnat", "dnat", policy.to_str().unwrap(), "0");
    let f = [
        "ip.src",
        "ip.dst",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.flags",
        "ip.checksum.status",
        "tcp.checksum.status",
        "frame.len",
    ];
    let keep: Vec<bool> = r.fates.wan_in.iter().map(|x| x == "vm").collect();
    let sent = rows_of(&r.path("wan_in.pcap"), &f, &keep);
    let got = tshark_rows(&r.path("vm_out.pcap"), &f);
    assert_eq!(got.len(), sent.len(), "forwarded count\n{}", r.stats.pretty());
    let backends: BTreeSet<&str> = ["10.1.0.5", "10.1.0.6", "10.1.0.7"].into_iter().collect();
    // (client address, client port) -> the backend of each of its packets.
    let mut per_conn: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (i, (s, g)) in sent.iter().zip(&got).enumerate() {
        for x in ["ip.src", "tcp.srcport", "tcp.flags", "frame.len"] {
            assert_eq!(g.get(x), s.get(x), "#{i}: {x}");
        }
        assert_eq!(g.get("ip.checksum.status"), "1", "#{i}: IPv4 checksum");
        assert_eq!(g.get("tcp.checksum.status"), "1", "#{i}: TCP checksum");
        if s.get("ip.dst") == "203.0.113.50" {
            assert!(backends.contains(g.get("ip.dst").as_str()), "#{i}: {g:?}");
            assert_eq!(g.get("tcp.dstport"), "8080", "#{i}");
            per_conn
                .entry((s.get("ip.src"), s.get("tcp.srcport")))
                .or_default()
                .push(g.get("ip.dst"));
        } else {
            // Addressed to a backend directly: untouched.
            assert_eq!(
                (g.get("ip.dst"), g.get("tcp.dstport")),
                (s.get("ip.dst"), s.get("tcp.dstport"))
            );
        }
    }
    assert_eq!(per_conn.len(), 120);
    let mut spread: HashMap<String, usize> = HashMap::new();
    for (conn, pkts) in &per_conn {
        assert_eq!(pkts.len(), 4, "{conn:?}");
        let b: BTreeSet<&String> = pkts.iter().collect();
        assert_eq!(b.len(), 1, "connection {conn:?} went to several backends: {pkts:?}");
        *spread.entry(pkts[0].clone()).or_default() += 1;
    }
    assert_eq!(spread.len(), 3, "connections per backend: {spread:?}");
    assert!(spread.values().all(|n| *n >= 20), "uneven spread: {spread:?}");
    let drops = r.fates.drops();
    r.stats.assert_drops(&drops);
    assert_eq!(r.stats.engine("flows-created"), 121, "{}", r.stats.pretty());
}

/// Two workers, one rx queue per device: worker 0 receives everything and
/// hands each packet to the worker owning its flow; every packet of a
/// connection still reaches one backend, in order.
#[test]
fn dnat_on_two_lcores_with_one_rx_queue_hands_packets_to_the_owner() {
    let policy = repo_root().join("examples/dnat-lb.toml");
    let r = run_pcap("dnat2", "dnat", policy.to_str().unwrap(), "0-1");
    let f = [
        "ip.src",
        "ip.dst",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.seq_raw",
        "tcp.checksum.status",
    ];
    let sent_rows = tshark_rows(&r.path("wan_in.pcap"), &f);
    let sent_tags: Vec<Option<u64>> = r.frames("wan_in.pcap").iter().map(|b| tag_of(b)).collect();
    let by_tag: HashMap<u64, usize> = sent_tags
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.map(|t| (t, i)))
        .collect();
    let got_rows = tshark_rows(&r.path("vm_out.pcap"), &f);
    let got_raw = r.frames("vm_out.pcap");
    let want = r.fates.wan_in.iter().filter(|x| *x == "vm").count();
    assert_eq!(got_rows.len(), want, "forwarded count\n{}", r.stats.pretty());
    let mut seen = BTreeSet::new();
    // (client, port) -> [(input index, backend)] in output order.
    let mut per_conn: BTreeMap<(String, String), Vec<(usize, String)>> = BTreeMap::new();
    for (g, raw) in got_rows.iter().zip(&got_raw) {
        let t = tag_of(raw).expect("an untagged frame came out");
        assert!(seen.insert(t), "tag {t} came out twice");
        let i = by_tag[&t];
        assert_eq!(r.fates.wan_in[i], "vm", "tag {t} should have been dropped");
        let s = &sent_rows[i];
        assert_eq!(g.get("tcp.checksum.status"), "1", "tag {t}");
        assert_eq!(g.get("tcp.seq_raw"), s.get("tcp.seq_raw"), "tag {t}");
        if s.get("ip.dst") == "203.0.113.50" {
            per_conn
                .entry((s.get("ip.src"), s.get("tcp.srcport")))
                .or_default()
                .push((i, g.get("ip.dst")));
        }
    }
    assert_eq!(per_conn.len(), 120);
    for (c, pkts) in &per_conn {
        assert_eq!(pkts.len(), 4, "{c:?}");
        assert!(pkts.windows(2).all(|w| w[0].0 < w[1].0), "{c:?}: reordered {pkts:?}");
        assert!(
            pkts.iter().all(|p| p.1 == pkts[0].1),
            "{c:?}: several backends {pkts:?}"
        );
    }
    r.stats.assert_drops(&r.fates.drops());
    let s = &r.stats;
    assert_eq!(s.engine("flows-created"), 121, "{}", s.pretty());
    assert_eq!(s.lcore_sum("flows"), 121, "{}", s.pretty());
    for l in s.lcores() {
        assert!(
            l["flows"].as_u64().unwrap_or(0) > 0,
            "a worker owns no flow\n{}",
            s.pretty()
        );
    }
    assert!(s.engine("redirects-out") > 0, "{}", s.pretty());
}

#[test]
fn snat_pool_exhaustion_is_counted() {
    let policy = SNAT_POLICY.replace("20000-20999", "20000-20001");
    let policy = policy.as_str();
    let r = run_pcap("snatx", "snat-exhaust", policy, "0");
    let got = tshark_rows(
        &r.path("wan_out.pcap"),
        &["ip.src", "udp.srcport", "udp.checksum.status"],
    );
    let sent = rows_of(
        &r.path("vm_in.pcap"),
        &["ip.src", "udp.srcport", "udp.checksum.status"],
        &r.fates.vm_in.iter().map(|f| f == "wan").collect::<Vec<_>>(),
    );
    assert_eq!(got.len(), 4, "{}", r.stats.pretty());
    let mut map: HashMap<String, String> = HashMap::new();
    for (s, g) in sent.iter().zip(&got) {
        assert_eq!(g.get("ip.src"), "203.0.113.10");
        assert_eq!(g.get("udp.checksum.status"), "1");
        let p = g.get("udp.srcport");
        assert!(p == "20000" || p == "20001", "{p}");
        let prev = map.insert(s.get("udp.srcport"), p.clone());
        assert!(prev.is_none() || prev == Some(p), "a flow changed its NAT port");
    }
    let ports: BTreeSet<&String> = map.values().collect();
    assert_eq!(ports.len(), 2, "two flows, two pool ports: {map:?}");
    r.stats.assert_drops(&[("nat-exhausted", 6)]);
}

/// The flow tables are the app's own memory (DPDK's is on hugetlbfs
/// already); where transparent huge pages are not `never`, the app backs
/// them with 2 MB pages, so a lookup in a large table does not also miss
/// the TLB. 65,536 pairs of 640 bytes are 40 MiB.
#[test]
fn flow_tables_sit_on_huge_pages_where_the_kernel_offers_them() {
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    match thp {
        Ok(s) if !s.contains("[never]") => {}
        other => {
            eprintln!("skipped: transparent huge pages unavailable ({other:?})");
            return;
        }
    }
    let mut eal = eal_base("thp", "0");
    eal.extend(strings(&["--vdev", "net_null0", "--vdev", "net_null1"]));
    let policy = repo_root().join("examples/allow-all.toml");
    let mut app = Live::app(
        &eal,
        &strings(&[
            "--vport",
            "name=vm,fast=net_null0,role=vm",
            "--vport",
            "name=wan,fast=net_null1,role=net",
            "--policy",
            policy.to_str().unwrap(),
            "--max-flows",
            "65536",
            "--no-control-socket",
        ]),
    );
    let limit = Duration::from_secs(60);
    app.wait_for("the flow tables", limit, |_, e| e.contains("flow tables:"));
    let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", app.pid())).unwrap();
    let huge_kb: u64 = rollup
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no AnonHugePages in\n{rollup}"));
    app.interrupt();
    let o = app.finish(limit);
    assert_eq!(o.code(), 0, "{}", o.all());
    assert!(huge_kb >= 32 << 10, "{huge_kb} kB on huge pages\n{}", o.all());
}
