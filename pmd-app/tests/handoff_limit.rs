//! A packet is handed between lcores a bounded number of times
//! (`MAX_HANDOFFS`), whatever the shards' tables say.
//!
//! Two workers, each polling one rx queue of the VM's vport: net_pcap
//! capturing live on two veths, so the test chooses the worker a frame
//! arrives on by the veth it sends it to. Two first fragments of one
//! datagram (same addresses, protocol and IP id; different ports), each of
//! a flow the other worker owns, arrive one on each worker, are handed
//! over and denied by the policy there. Each shard then remembers handing
//! the datagram to the other, and a later fragment would be passed back
//! and forth between the two lcores until the entries expire (5 s of
//! hand-offs for each such fragment). The app drops it on the third
//! hand-off instead and counts `handoff-limit`. Needs root (veths).

mod common;
use common::live::*;
use common::netns::TCP_POLICY;
use common::*;
use std::process::Command;
use std::time::Duration;
use vfp_core::flow::key::{proto, v4_mapped, FlowKey};

const LIMIT: Duration = Duration::from_secs(20);

/// A veth pair in this namespace without IPv6 (no router solicitations
/// or MLD reports on it), up; deleted by `clean`.
fn veth(clean: &mut Cleanup, a: &str, b: &str) {
    let _ = Command::new("ip").args(["link", "del", a]).output();
    sh(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
    clean.on_drop(&["ip", "link", "del", a]);
    for i in [a, b] {
        sh(&["sysctl", "-qw", &format!("net.ipv6.conf.{i}.disable_ipv6=1")]);
        sh(&["ip", "link", "set", i, "up"]);
    }
}

/// A source port whose flow (10.1.0.4:port -> 198.51.100.7:53, UDP) worker
/// `w` of two owns.
fn port_owned_by(w: usize) -> u16 {
    (6000..)
        .find(|&p| {
            let k = FlowKey {
                src: v4_mapped([10, 1, 0, 4]),
                dst: v4_mapped([198, 51, 100, 7]),
                src_port: p,
                dst_port: 53,
                proto: proto::UDP,
                ..FlowKey::default()
            };
            k.owner(2) == w
        })
        .unwrap()
}

#[test]
fn a_later_fragment_is_not_passed_round_between_lcores() {
    let d = Scratch::new("hlim");
    let tag = std::process::id() % 10000;
    let (a0, a1, b0, b1) = (
        format!("hl{tag}a0"),
        format!("hl{tag}a1"),
        format!("hl{tag}b0"),
        format!("hl{tag}b1"),
    );
    let mut clean = Cleanup::default();
    veth(&mut clean, &a0, &a1);
    veth(&mut clean, &b0, &b1);
    // F1 arrives on worker 0 (queue 0, veth a) and belongs to worker 1;
    // F2 the other way round; L follows F1 on worker 0.
    let (f1, f2, later) = (d.path("f1.pcap"), d.path("f2.pcap"), d.path("later.pcap"));
    let (p1, p2) = (port_owned_by(1).to_string(), port_owned_by(0).to_string());
    traffic(&["udp-frag", &f1, "--sport", &p1, "--ip-id", "77"]);
    traffic(&["udp-frag", &f2, "--sport", &p2, "--ip-id", "77"]);
    traffic(&["udp-frag", &later, "--sport", &p1, "--ip-id", "77", "--later"]);

    let pol = d.path("policy.toml");
    // The VM may open TCP connections only: UDP out is denied.
    std::fs::write(&pol, TCP_POLICY).unwrap();
    let mut eal = eal_base("hlim", "0-1");
    eal.extend(strings(&[
        "--vdev",
        &format!(
            "net_pcap0,rx_iface={a1},rx_iface={b1},tx_pcap={},tx_pcap={}",
            d.path("o0.pcap"),
            d.path("o1.pcap")
        ),
        "--vdev",
        "net_null0,no-rx=1",
    ]));
    let app_args = strings(&[
        "--policy",
        &pol,
        "--vport",
        "name=vm,fast=net_pcap0,role=vm",
        "--vport",
        "name=wan,fast=net_null0,role=net",
        "--stats-period",
        "0",
    ]);
    let app = App::start(&eal, &app_args, &d.path("ctl.sock"), LIMIT);
    let stats = || Stats(app.ctl(&["stats"]));
    let send = |iface: &str, pcap: &str| traffic(&["send", iface, pcap]);
    let until = |what: &str, reason: &'static str, n: u64| {
        poll(LIMIT, what, || {
            let s = stats();
            match s.drop_count(reason) {
                c if c == n => Ok(s),
                c => Err(format!("{reason} {c}: {}", s.0)),
            }
        })
    };

    send(&a0, &f1);
    until("F1 handed to worker 1 and denied there", "policy-deny", 1);
    send(&b0, &f2);
    until("F2 handed to worker 0 and denied there", "policy-deny", 2);
    send(&a0, &later);
    let s = until("the later fragment dropped at the hand-off limit", "handoff-limit", 1);

    // F1 and F2 were handed on once each, the later fragment twice before
    // the third redirect was refused: five redirects in all, and no more
    // once the fragment is gone.
    let redirects = |s: &Stats| s.0["engine"]["redirects-out"].as_u64().unwrap_or(0);
    assert_eq!(redirects(&s), 5, "{}", s.0);
    let again = stats();
    assert_eq!(redirects(&again), 5, "{}", again.0);
    assert_eq!(again.drop_count("handoff-limit"), 1, "{}", again.0);
    assert_eq!(again.total("tx_packets"), 0, "nothing may leave: {}", again.0);
    // Four hand-offs between the two lcores: F1, F2 and the later
    // fragment's two.
    let lcores = |k: &str| -> u64 {
        let rows = again.0["lcores"].as_array().cloned().unwrap_or_default();
        rows.iter().map(|r| r[k].as_u64().unwrap_or(0)).sum()
    };
    assert_eq!((lcores("handoff_out"), lcores("handoff_in")), (4, 4), "{}", again.0);
    let o = app.stop(LIMIT);
    assert_eq!(o.code(), 0, "{}", o.all());
    assert!(o.stdout.contains("mbufs: all"), "{}", o.all());
}
