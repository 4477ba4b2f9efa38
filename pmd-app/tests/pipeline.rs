//! The pipeline (parse -> flow table -> transposition) through the real
//! app: traffic built with scapy (tests/helpers/pipeline.py), the app's
//! output decoded by tshark (checksums validated) and compared field by
//! field with what was sent, plus the drop counters of `--final-stats`.
//!
//! Finite, order-free traffic goes pcap in -> pcap out (net_pcap). Traffic
//! whose order matters across the two vports (a reply after its request)
//! goes through taps (or veth pairs for af_packet) with a driver that
//! sends a phase, waits with a deadline until its packets came out on the
//! far side, and only then sends the replies.

mod common;
mod pipeline_support;

use common::*;
use pipeline_support::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const DRIVE_LIMIT: Duration = Duration::from_secs(300);

const VM_MAC: &str = "02:00:00:00:01:04";
const VM_GW_MAC: &str = "02:00:00:00:01:01";

// --- finite pcap runs -------------------------------------------------------

struct PcapRun {
    d: Scratch,
    fates: Fates,
    fin: Finished,
    stats: Stats,
}

impl PcapRun {
    fn path(&self, f: &str) -> String {
        self.d.path(f)
    }
    fn frames(&self, f: &str) -> Vec<Vec<u8>> {
        pcap_frames(&self.path(f))
    }
}

/// Generates `scenario`, runs it through the app with `policy` (a path,
/// or TOML text written to the scratch dir) and returns everything.
fn run_pcap(name: &str, scenario: &str, policy: &str, lcores: &str) -> PcapRun {
    let _one = serial();
    let _rt = RuntimeDir::new(name);
    let d = Scratch::new(name);
    let dir = d.0.to_string_lossy().into_owned();
    gen(scenario, &dir);
    let fates = Fates::read(&dir);
    let policy = if policy.contains('\n') {
        let p = d.path("policy.toml");
        std::fs::write(&p, policy).unwrap();
        p
    } else {
        policy.to_string()
    };
    let stats = d.path("stats.json");
    let vdevs = [
        format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            d.path("vm_in.pcap"),
            d.path("vm_out.pcap")
        ),
        format!(
            "net_pcap1,rx_pcap={},tx_pcap={}",
            d.path("wan_in.pcap"),
            d.path("wan_out.pcap")
        ),
    ];
    let total = fates.total().to_string();
    let args = ["--stop-after", total.as_str()];
    let app = App::spawn(
        &eal(name, lcores, &vdevs),
        &app_args("net_pcap0", "net_pcap1", &policy, &stats, &args),
    );
    let fin = app.wait(LIMIT);
    assert_clean_exit(&fin);
    let stats = Stats::read(&stats, &fin.all());
    stats.assert_balanced();
    assert_eq!(
        stats.lcore_sum("rx_packets"),
        fates.total() as u64,
        "{}",
        stats.pretty()
    );
    PcapRun { d, fates, fin, stats }
}

/// Input frames whose fate is `to`, in order.
fn expected(frames: &[Vec<u8>], fates: &[String], to: &str) -> Vec<Vec<u8>> {
    frames
        .iter()
        .zip(fates)
        .filter(|(_, f)| *f == to)
        .map(|(b, _)| b.clone())
        .collect()
}

fn is_arp(f: &[u8]) -> bool {
    f.len() >= 14 && f[12..14] == [0x08, 0x06]
}

/// Rows of the input frames selected by `keep`, decoded by tshark.
fn rows_of(pcap: &str, fields: &[&str], keep: &[bool]) -> Vec<Row> {
    tshark_rows(pcap, fields)
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(r, _)| r)
        .collect()
}

const PLAIN_FIELDS: [&str; 14] = [
    "frame.len",
    "eth.src",
    "eth.dst",
    "vlan.id",
    "ip.src",
    "ip.dst",
    "ip.ttl",
    "ipv6.dst",
    "udp.srcport",
    "udp.dstport",
    "tcp.srcport",
    "tcp.flags",
    "icmpv6.echo.identifier",
    "arp.dst.proto_ipv4",
];

fn fields_of(rows: &[Row], fields: &[&str]) -> Vec<Vec<Vec<String>>> {
    rows.iter().map(|r| fields.iter().map(|f| r.all(f)).collect()).collect()
}

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
    let _ = &r.fin;
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

/// The tag "<Tnnnnn>" the traffic helper puts in every payload.
fn tag_of(frame: &[u8]) -> Option<u64> {
    frame.windows(8).find_map(|w| {
        (w[0] == b'<' && w[1] == b'T' && w[7] == b'>' && w[2..7].iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(&w[2..7]).unwrap().parse().unwrap())
    })
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

// --- driven exchanges through kernel interfaces ------------------------------

struct Driven {
    _links: Links,
    d: Scratch,
    ex: Exchange,
    stats: Stats,
}

/// Starts the app on two taps (or other vdevs on the given kernel ends),
/// drives `scenario`, stops the app and reads everything back.
fn run_driven(name: &str, scenario: &str, policy: &str, lcores: &str, setup: Setup) -> Driven {
    let _one = serial();
    let _rt = RuntimeDir::new(name);
    let d = Scratch::new(name);
    let dir = d.0.to_string_lossy().into_owned();
    let policy = if policy.contains('\n') {
        let p = d.path("policy.toml");
        std::fs::write(&p, policy).unwrap();
        p
    } else {
        policy.to_string()
    };
    let stats = d.path("stats.json");
    let mut links = Links::default();
    let (vdevs, extra, vm_k, wan_k): (Vec<String>, Vec<&str>, String, String) = match setup {
        Setup::Taps => {
            let (a, b) = (ifname(name, "v"), ifname(name, "w"));
            links.tap(&a);
            links.tap(&b);
            (
                vec![format!("net_tap0,iface={a}"), format!("net_tap1,iface={b}")],
                vec![],
                a,
                b,
            )
        }
        Setup::AfPacket2q => {
            let (a, ak, b, bk) = (
                ifname(name, "v"),
                ifname(name, "V"),
                ifname(name, "w"),
                ifname(name, "W"),
            );
            links.veth(&a, &ak);
            links.veth(&b, &bk);
            (
                vec![
                    format!("net_af_packet0,iface={a},qpairs=2"),
                    format!("net_af_packet1,iface={b},qpairs=2"),
                ],
                vec!["--queues", "2"],
                ak,
                bk,
            )
        }
    };
    let (vm_dev, wan_dev) = match setup {
        Setup::Taps => ("net_tap0", "net_tap1"),
        Setup::AfPacket2q => ("net_af_packet0", "net_af_packet1"),
    };
    let mut app = App::spawn(
        &eal(name, lcores, &vdevs),
        &app_args(vm_dev, wan_dev, &policy, &stats, &extra),
    );
    app.wait_ready(LIMIT);
    let driven = drive(scenario, &dir, &vm_k, &wan_k, DRIVE_LIMIT);
    let fin = app.stop(LIMIT);
    if let Err(e) = &driven {
        let s = std::fs::read_to_string(&stats).unwrap_or_default();
        panic!("{e}\nfinal stats: {s}\n{}", fin.all());
    }
    assert_clean_exit(&fin);
    let stats = Stats::read(&stats, &fin.all());
    stats.assert_balanced();
    let ex = Exchange::read(&dir);
    Driven {
        _links: links,
        d,
        ex,
        stats,
    }
}

#[derive(Clone, Copy)]
enum Setup {
    Taps,
    AfPacket2q,
}

const IP_FIELDS: [&str; 24] = [
    "ip.hdr_len",
    "frame.len",
    "vlan.id",
    "eth.src",
    "eth.dst",
    "ip.src",
    "ip.dst",
    "ip.ttl",
    "ip.id",
    "ip.len",
    "ip.proto",
    "ip.flags.df",
    "ip.checksum.status",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags",
    "tcp.seq_raw",
    "tcp.checksum.status",
    "udp.srcport",
    "udp.dstport",
    "udp.length",
    "udp.checksum",
    "udp.checksum.status",
    "vxlan.vni",
];
const ICMP_FIELDS: [&str; 2] = ["icmp.ident", "icmp.checksum.status"];

/// Decoded rows of every pcap of an exchange.
struct Decoded {
    sent: HashMap<String, Vec<Row>>,
    recv: HashMap<String, Vec<Row>>,
}

fn all_fields() -> Vec<&'static str> {
    IP_FIELDS.iter().chain(ICMP_FIELDS.iter()).copied().collect()
}

impl Decoded {
    fn new(ex: &Exchange) -> Decoded {
        let f = all_fields();
        let mut sent = HashMap::new();
        let mut recv = HashMap::new();
        for side in ["vm", "wan"] {
            sent.insert(side.to_string(), tshark_rows(&ex.pcap("sent", side), &f));
            recv.insert(side.to_string(), tshark_rows(&ex.pcap("recv", side), &f));
        }
        Decoded { sent, recv }
    }
    /// (as sent, as the app sent it on) for a forwarded tag.
    fn pair(&self, ex: &Exchange, tag: u64) -> (Row, Row) {
        let h = ex.hop(tag);
        let s = self.sent[&h.sent_on][h.sent_idx].clone();
        let on = h.got_on.unwrap_or_else(|| panic!("tag {tag} never came out"));
        let g = self.recv[&on][h.got_idx.unwrap()].clone();
        (s, g)
    }
}

/// Field values that must be the same before and after.
fn same(s: &Row, g: &Row, fields: &[&str], ctx: &str) {
    for f in fields {
        assert_eq!(g.all(f), s.all(f), "{ctx}: {f} changed");
    }
}

fn checksums_good(g: &Row, ctx: &str) {
    for f in ["ip.checksum.status", "tcp.checksum.status", "icmp.checksum.status"] {
        for v in g.all(f) {
            assert_eq!(v, "1", "{ctx}: {f} = {v} in {g:?}");
        }
    }
    // A UDP checksum is good or absent (0 over IPv4).
    for (v, c) in g.all("udp.checksum.status").iter().zip(g.all("udp.checksum")) {
        assert!(
            v == "1" || (v == "3" && c == "0x0000"),
            "{ctx}: udp checksum {c} status {v}"
        );
    }
}

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
    assert!(forwarded >= 12);
    r.stats
        .assert_drops_probed(&[("no-flow", 2), ("policy-deny", 3)], r.ex.lost_probes());
    // Non-IP frames (only the driver's readiness probes here) pass untouched.
    let l2 = r.ex.probes_recv() + r.stats.drop_count("no-tx-path");
    assert_eq!(r.stats.engine("l2-forwarded"), l2, "{}", r.stats.pretty());
    // TCP 40000, UDP 5000, the inbound SSH connection and the ping.
    assert_eq!(r.stats.engine("flows-created"), 4, "{}", r.stats.pretty());
    assert_eq!(r.stats.engine("forwarded"), forwarded, "{}", r.stats.pretty());
    let _ = &r.d;
}

const SNAT_POLICY: &str = r#"
[[layers]]
name = "acl"
default = "deny"

[[layers.groups]]

[[layers.groups.rules]]
id = 1
priority = 1
direction = "out"
src = ["10.1.0.0/24"]
action = "allow"

[[layers]]
name = "nat"
default = "allow"

[[layers.groups]]

[[layers.groups.rules]]
id = 1
priority = 1
direction = "out"
src = ["10.1.0.0/24"]
action = "snat"
snat = { addrs = ["203.0.113.10"], ports = "20000-20999" }
"#;

/// The L4 "port" fields of a row: (src, dst) for TCP/UDP, (ident, ident) for ICMP.
fn ports(r: &Row) -> (u64, u64) {
    for (s, d) in [("tcp.srcport", "tcp.dstport"), ("udp.srcport", "udp.dstport")] {
        if !r.inner(s).is_empty() {
            return (r.inner_num(s), r.inner_num(d));
        }
    }
    let id = r.inner_num("icmp.ident");
    (id, id)
}

fn proto(r: &Row) -> &'static str {
    if !r.inner("tcp.srcport").is_empty() {
        "tcp"
    } else if !r.inner("udp.srcport").is_empty() {
        "udp"
    } else {
        "icmp"
    }
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
    r.stats
        .assert_drops_probed(&[("no-flow", 1), ("policy-deny", 1)], r.ex.lost_probes());
    assert_eq!(r.stats.engine("flows-created"), 11, "{}", r.stats.pretty());
}

#[test]
fn vxlan_encap_and_decap_with_the_documented_policy() {
    let policy = repo_root().join("examples/acl-snat-vxlan.toml");
    let r = run_driven("vxl", "vxlan", policy.to_str().unwrap(), "0", Setup::Taps);
    let dec = Decoded::new(&r.ex);
    // Outbound: SNAT'd inner frame in VXLAN VNI 5001 to the gateway.
    let mut nat_ports = Vec::new();
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
        nat_ports.push(gp);
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
    let _ = (VM_GW_MAC, nat_ports);
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
    let policy = SNAT_POLICY.replace("20000-20999", "1024-65535");
    let r = run_driven("mq", "multiq", &policy, "0-1", Setup::AfPacket2q);
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
    assert_eq!(lc.len(), 2, "{}", s.pretty());
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
    // that does not own their connection: hand-off was exercised.
    assert!(
        s.engine("redirects-out") > 0,
        "no packet was handed to its owner\n{}",
        s.pretty()
    );
}
