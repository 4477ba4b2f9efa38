//! Real kernel traffic through the app (issue 5): two network namespaces,
//! each reached by one af_packet device on a veth; a TCP connection from
//! A (the VM side, 10.1.0.4) to a server in B crosses the app's stateful
//! ACL and SNAT. The payload arrives intact (sha256 both ends), B sees the
//! SNAT address as the client, the app's flow table holds the connection
//! with its NAT binding, and an unsolicited connection from B to A is
//! dropped by the policy. Path MTU discovery works through the same
//! SNAT and ACL (the router's ICMP errors are translated back to A). See
//! common/netns.rs for the topology.

mod common;
use common::live::*;
use common::netns::*;
use common::*;
use std::time::Duration;

const START: Duration = Duration::from_secs(30);
const XFER: Duration = Duration::from_secs(120);
const PAYLOAD: u64 = 8 << 20;

/// Drop reasons a legitimate connection must never be counted under
/// (anything but a full tx ring, which the kernel's TCP recovers from).
fn unexpected_drops(s: &Stats) -> Vec<(String, u64)> {
    s.drops()
        .into_iter()
        .filter(|(k, n)| *n > 0 && k.replace('_', "-") != "tx-full")
        .collect()
}

fn tcp_transfer(tag: &str, lcores: &str, qpairs: u16) {
    let topo = Pair::new(tag, false);
    let d = Scratch::new(tag);
    let policy = d.path("policy.toml");
    std::fs::write(&policy, TCP_POLICY).unwrap();
    let (sock, final_stats) = (d.path("ctl.sock"), d.path("final.json"));
    let mut eal = eal_base(tag, lcores);
    eal.extend(topo.vdevs(qpairs));
    let mut args = topo.vports();
    args.extend(strings(&["--policy", &policy, "--final-stats", &final_stats]));
    if qpairs > 1 {
        args.extend(strings(&["--queues", &qpairs.to_string()]));
    }
    let app = App::start(&eal, &args, &sock, START);
    let status = app.ctl(&["status"]);
    assert_eq!(status["mode"], "pipeline", "{status:#}");

    // The transfer: A -> B through SNAT, echoed back as a digest.
    let mut server = topo
        .b
        .ns
        .tcp_stream("server", &["server", "--bind", B_IP, "--port", "5001"]);
    server.wait_event(START, |e| e["event"] == "listening");
    let mut client = topo.a.ns.tcp_stream(
        "client",
        &[
            "client",
            "--connect",
            B_IP,
            "--port",
            "5001",
            "--bytes",
            &PAYLOAD.to_string(),
        ],
    );
    let c = client.wait_success(XFER);
    let s = server.wait_success(XFER);
    assert_eq!(c["bytes"].as_u64(), Some(PAYLOAD), "{c}");
    assert_eq!(s["bytes"].as_u64(), Some(PAYLOAD), "{s}");
    assert_eq!(c["sha256"], s["sha256"], "payload differs: client {c} server {s}");
    assert_eq!(c["server_sha256"], c["sha256"], "{c}");

    // B saw the SNAT address, with a port from the pool.
    let peer = s["peer"].as_str().unwrap().to_string();
    let (peer_ip, peer_port) = peer.split_once(':').unwrap();
    let peer_port: u16 = peer_port.parse().unwrap();
    assert_eq!(peer_ip, SNAT_IP, "server saw {peer}, not the SNAT address");
    assert!(
        (SNAT_PORTS.0..=SNAT_PORTS.1).contains(&peer_port),
        "SNAT port {peer_port} outside the pool {SNAT_PORTS:?}"
    );
    let local = c["local"].as_str().unwrap().to_string();
    assert!(local.starts_with(&format!("{A_IP}:")), "{c}");

    // The app's flow table holds exactly one pair for this connection,
    // with that NAT binding, and it carried the payload.
    let flows = app.ctl(&["flows", "--proto", "tcp"]);
    let mine: Vec<_> = flow_list(&flows)
        .into_iter()
        .filter(|f| f.to_string().contains(&local))
        .collect();
    assert_eq!(mine.len(), 1, "expected one flow for {local}:\n{flows:#}");
    let f = &mine[0];
    assert_eq!(f["nat"].as_str(), Some(peer.as_str()), "NAT binding of {f:#}");
    let fwd_bytes = f["bytes_fwd"].as_u64().or(f["bytes"].as_u64()).unwrap_or(0);
    assert!(fwd_bytes >= PAYLOAD, "flow carried {fwd_bytes} bytes forward: {f:#}");

    let st = Stats(app.ctl(&["stats"]));
    // The whole stats document on failure (per-worker counters, hand-offs,
    // redirects installed and refused): a drop here is rare and timing
    // dependent, and has to be explained from what one run printed.
    assert!(
        unexpected_drops(&st).is_empty(),
        "drops on a legitimate connection: {:?}\nflows: {flows:#}\nstats: {:#}",
        st.drops(),
        st.0
    );
    assert!(
        st.path_counter("vm", "fast", "rx_packets") > PAYLOAD / 1500,
        "{:#}",
        st.0
    );
    let denied_before = st.drop_count("policy-deny");

    // Stateful ACL: B may not open a connection to A (the listener in A
    // would accept it if the app let the SYN through).
    let mut listener = topo
        .a
        .ns
        .tcp_stream("listener", &["server", "--bind", A_IP, "--port", "7000"]);
    listener.wait_event(START, |e| e["event"] == "listening");
    let mut probe = topo.b.ns.tcp_stream(
        "probe",
        &["probe", "--connect", A_IP, "--port", "7000", "--timeout", "3"],
    );
    let (pst, pev, _) = probe.wait(Duration::from_secs(30));
    assert_eq!(
        pst.code(),
        Some(3),
        "unsolicited inbound connection was not dropped: {pev:?}"
    );
    assert!(
        !listener.events().iter().any(|e| e["event"] == "accepted"),
        "the listener in A accepted an inbound connection"
    );
    let denied = poll(
        Duration::from_secs(10),
        "the probe's SYN counted as policy-deny",
        || {
            let n = Stats(app.ctl(&["stats"])).drop_count("policy-deny");
            if n > denied_before {
                Ok(n)
            } else {
                Err(format!("{n}"))
            }
        },
    );
    assert!(denied > denied_before);
    drop(listener);

    let o = app.stop(Duration::from_secs(30));
    assert_eq!(o.code(), 0, "{}", o.all());
    assert!(o.stdout.contains("mbufs: all"), "{}", o.all());
    let fin: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&final_stats).unwrap_or_else(|e| panic!("--final-stats {final_stats}: {e}")),
    )
    .unwrap();
    let fin = Stats(fin);
    assert!(fin.drop_count("policy-deny") >= denied, "{:#}", fin.0);
    assert!(
        fin.total("rx_packets") >= st.total("rx_packets"),
        "final stats behind live stats: {:#}",
        fin.0
    );
}

#[test]
fn tcp_through_snat_and_stateful_acl() {
    tcp_transfer("t5a", "0", 1);
}

/// Two workers, two af_packet queues: the kernel's fanout spreads packets
/// over the queues by its own hash, and the SNAT'd reply has another key
/// than the request, so both directions only meet in one flow pair if the
/// app hands packets to the flow's owner.
#[test]
fn tcp_through_snat_two_workers_two_queues() {
    tcp_transfer("t5b", "0-1", 2);
}

/// Path MTU discovery behind SNAT: the server C sits one router (B's
/// namespace, forwarding) beyond B, on a route whose MTU is 1280 while
/// every interface has 1500. C advertises an MSS of 1460, so A's full
/// segments reach B's router, which answers each with "fragmentation
/// needed" to the SNAT address. Only if the app passes that error back
/// to A (through the stateful ACL, which allows nothing inbound) with
/// the destination and the quoted source translated does A learn the
/// path MTU; otherwise the connection stalls and the transfer times out.
#[test]
fn path_mtu_discovery_through_snat() {
    path_mtu_discovery("t5m", "0", 1);
}

/// The same with two workers and two af_packet queues: the router's
/// errors land on either worker and are handed to the one holding the
/// connection (its reply key, which the error's quote gives, may belong
/// to the other).
#[test]
fn path_mtu_discovery_through_snat_two_workers_two_queues() {
    path_mtu_discovery("t5n", "0-1", 2);
}

fn path_mtu_discovery(tag: &str, lcores: &str, qpairs: u16) {
    const C_IP: &str = "192.0.2.7";
    let topo = Pair::new(tag, false);
    let pid = std::process::id();
    let c = Netns::new(&format!("vfpt-{tag}-c-{pid}"));
    let (bc, cb) = (format!("{tag}bc{pid}"), format!("{tag}cb{pid}"));
    ip(&["link", "add", &bc, "type", "veth", "peer", "name", &cb]);
    ip(&["link", "set", &bc, "netns", &topo.b.ns.name]);
    ip(&["link", "set", &cb, "netns", &c.name]);
    let b = &topo.b.ns;
    b.sh(&["ip", "addr", "add", "192.0.2.1/24", "dev", &bc]);
    b.sh(&["ip", "link", "set", &bc, "up"]);
    b.sh(&["ip", "route", "replace", "192.0.2.0/24", "dev", &bc, "mtu", "1280"]);
    b.sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    c.sh(&["ip", "addr", "add", &format!("{C_IP}/24"), "dev", &cb]);
    c.sh(&["ip", "link", "set", &cb, "up"]);
    c.sh(&["ip", "route", "add", "default", "via", "192.0.2.1"]);

    let d = Scratch::new(tag);
    let policy = d.path("policy.toml");
    std::fs::write(&policy, TCP_POLICY).unwrap();
    let sock = d.path("ctl.sock");
    let mut eal = eal_base(tag, lcores);
    eal.extend(topo.vdevs(qpairs));
    let mut args = topo.vports();
    args.extend(strings(&["--policy", &policy]));
    if qpairs > 1 {
        args.extend(strings(&["--queues", &qpairs.to_string()]));
    }
    let app = App::start(&eal, &args, &sock, START);

    let mut server = c.tcp_stream("server", &["server", "--bind", C_IP, "--port", "5001"]);
    server.wait_event(START, |e| e["event"] == "listening");
    let bytes = (1u64 << 20).to_string();
    let mut client = topo.a.ns.tcp_stream(
        "client",
        &["client", "--connect", C_IP, "--port", "5001", "--bytes", &bytes],
    );
    let cl = client.wait_success(XFER);
    let sv = server.wait_success(XFER);
    assert_eq!(cl["sha256"], sv["sha256"], "payload differs: client {cl} server {sv}");
    assert_eq!(
        sv["peer"].as_str().and_then(|p| p.split_once(':')).map(|p| p.0),
        Some(SNAT_IP)
    );

    // A learned the path MTU from the translated error.
    let route = topo.a.ns.sh(&["ip", "route", "get", C_IP]);
    assert!(route.contains("mtu 1280"), "A has no path MTU for {C_IP}: {route}");
    let st = Stats(app.ctl(&["stats"]));
    let related = st.0["engine"]["icmp-related"].as_u64().unwrap_or(0);
    assert!(related >= 1, "no ICMP error counted as related: {:#}", st.0);
    assert!(
        unexpected_drops(&st).is_empty(),
        "drops on a legitimate connection: {:?}\n{:#}",
        st.drops(),
        st.0
    );
    let o = app.stop(Duration::from_secs(30));
    assert_eq!(o.code(), 0, "{}", o.all());
}

/// A UDP datagram larger than the MTU crosses SNAT and the stateful ACL
/// both ways: A's kernel sends it in fragments, the app sends each on
/// (the later ones follow the first fragment's flow), B reassembles and
/// echoes it, fragmented again, and A gets every byte back. Over the
/// soft paths (taps): the af_packet PMD asks the kernel to reassemble
/// fragments before its fanout (PACKET_FANOUT_FLAG_DEFRAG), so the app
/// would get one datagram larger than its ring frames instead.
#[test]
fn udp_datagrams_larger_than_the_mtu_cross_snat_both_ways() {
    udp_datagrams_larger_than_the_mtu("t5u", "0");
}

/// The same with two workers: the taps have one queue, so worker 0
/// receives every fragment and hands each datagram's fragments, in
/// order, to the worker holding its flow.
#[test]
fn udp_datagrams_larger_than_the_mtu_on_two_workers() {
    udp_datagrams_larger_than_the_mtu("t5v", "0-1");
}

fn udp_datagrams_larger_than_the_mtu(tag: &str, lcores: &str) {
    let topo = Pair::new(tag, true);
    let d = Scratch::new(tag);
    let policy = d.path("policy.toml");
    // The VM may open UDP flows too.
    let text = TCP_POLICY.replacen("proto = \"tcp\"\n", "", 1);
    assert_ne!(text, TCP_POLICY);
    std::fs::write(&policy, text).unwrap();
    let sock = d.path("ctl.sock");
    let mut eal = eal_base(tag, lcores);
    eal.extend(topo.vdevs(1));
    let mut args = topo.vports();
    args.extend(strings(&["--policy", &policy]));
    let app = App::start(&eal, &args, &sock, START);
    for v in ["vm", "wan"] {
        let r = app.ctl(&["switch", v, "soft"]);
        assert_eq!(r["active"], "soft", "switch {v} soft: {r}");
    }
    topo.prime(START);

    let mut echo = topo
        .b
        .ns
        .tcp_stream("udp echo", &["udp-echo", "--bind", B_IP, "--port", "5353"]);
    echo.wait_event(START, |e| e["event"] == "listening");
    // With two workers, a source port whose flow the second one owns:
    // worker 0 (the taps' only queue) must hand every fragment over.
    let workers = if lcores.contains('-') { 2 } else { 1 };
    let sport = (30000u16..)
        .find(|&p| v4_key(17, A_IP, p, B_IP, 5353).owner(workers) == workers - 1)
        .unwrap()
        .to_string();
    let mut send = topo.a.ns.tcp_stream(
        "udp send",
        &[
            "udp-send",
            "--connect",
            B_IP,
            "--port",
            "5353",
            "--bytes",
            "4000",
            "--sport",
            &sport,
        ],
    );
    let done = send.wait_success(XFER);
    assert_eq!(done["bytes"].as_u64(), Some(4000), "{done}");
    assert_eq!(done["echo_sha256"], done["sha256"], "{done}");
    let echoed = echo.wait_event(START, |e| e["event"] == "echoed");
    let peer = echoed["peer"].as_str().unwrap_or_default().to_string();
    assert!(
        peer.starts_with(&format!("{SNAT_IP}:")),
        "B saw {peer}, not the SNAT address"
    );

    // At least two later fragments each way (4,000 bytes in 1,500-byte
    // packets is three fragments).
    let st = Stats(app.ctl(&["stats"]));
    let followed = st.0["engine"]["fragments-forwarded"].as_u64().unwrap_or(0);
    assert!(followed >= 4, "fragments-forwarded {followed}: {:#}", st.0);
    assert_eq!(st.drop_count("fragment"), 0, "{:#}", st.0);
    if workers > 1 {
        let handed = st.0["engine"]["redirects-out"].as_u64().unwrap_or(0);
        assert!(handed >= 3, "fragments handed to worker 1: {handed}: {:#}", st.0);
    }
    let o = app.stop(Duration::from_secs(30));
    assert_eq!(o.code(), 0, "{}", o.all());
}
