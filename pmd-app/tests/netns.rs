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
use common::stream::*;
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

    app.stop_clean(Duration::from_secs(30));
    let fin = Stats::read(&final_stats);
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

/// [`TCP_POLICY`] with one more ACL rule (the VM may send UDP too), which
/// changes nothing for TCP connections.
fn policy_with_udp() -> String {
    let acl_end = "action = \"allow\"\n\n[[layers]]\nname = \"nat\"";
    assert!(TCP_POLICY.contains(acl_end));
    TCP_POLICY.replacen(
        acl_end,
        "action = \"allow\"\n\n[[layers.groups.rules]]\nid = 11\npriority = 200\n\
         direction = \"out\"\nvports = [\"vm\"]\nsrc = [\"10.1.0.0/24\"]\nproto = \"udp\"\n\
         action = \"allow\"\n\n[[layers]]\nname = \"nat\"",
        1,
    )
}

/// [`TCP_POLICY`] allowing the VM's TCP connections to one port only.
fn policy_for_port(port: u16) -> String {
    let rule = "proto = \"tcp\"\naction = \"allow\"";
    assert!(TCP_POLICY.contains(rule));
    TCP_POLICY.replacen(
        rule,
        &format!("proto = \"tcp\"\ndst_ports = [{port}]\naction = \"allow\""),
        1,
    )
}

/// A new connection from A to B's `port`: true if it was established
/// (the probe connected), false if its SYN went unanswered.
fn connects(topo: &Pair, port: u16) -> bool {
    let port = port.to_string();
    let mut probe = topo.a.ns.tcp_stream(
        "probe",
        &["probe", "--connect", B_IP, "--port", &port, "--timeout", "3"],
    );
    let (st, ev, err) = probe.wait(Duration::from_secs(30));
    match st.code() {
        Some(0) => true,
        Some(3) => false,
        _ => panic!("probe to {port}: {st:?} {ev:?} {err}"),
    }
}

/// The policy generation of the flow of `s` (the one it was last
/// compiled under).
fn flow_generation(app: &App, s: &Stream) -> Option<u64> {
    let flows = app.ctl(&["flows", "--proto", "tcp", "--limit", "1000"]);
    flow_list(&flows)
        .into_iter()
        .find(|f| f.to_string().contains(&s.local))
        .and_then(|f| f["generation"].as_u64())
}

/// Live policy loads under established connections, on two workers with
/// two queues and a stream owned by each. A load that still allows both
/// keeps them: the same flow, NAT binding and state, recompiled under the
/// new generation on their next packets, nothing dropped. A load that
/// allows one port only keeps that stream (its payload arrives intact)
/// and removes the other's flow on its next packet, counted as
/// policy-deny; a new connection to that port is refused, one to the
/// allowed port admitted. Loading the first policy again admits new
/// connections to both.
#[test]
fn policy_loads_under_live_connections_keep_or_cut_them() {
    let tag = "t5r";
    let topo = Pair::new(tag, false);
    let d = Scratch::new(tag);
    let write = |name: &str, text: &str| {
        let p = d.path(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let p1 = write("p1.toml", TCP_POLICY);
    let p2 = write("p2.toml", &policy_with_udp());
    let p3 = write("p3.toml", &policy_for_port(5701));
    let final_stats = d.path("final.json");
    let mut eal = eal_base(tag, "0-1");
    eal.extend(topo.vdevs(2));
    let mut args = topo.vports();
    args.extend(strings(&["--policy", &p1, "--final-stats", &final_stats]));
    let app = App::start(&eal, &args, &d.path("ctl.sock"), START);
    let load = |p: &str, generation: u64| {
        let r = app.ctl(&["policy", "load", p]);
        assert_eq!(r["generation"].as_u64(), Some(generation), "load {p}: {r}");
    };

    // Worker 0 owns the stream to 5701, worker 1 the one to 5702.
    let mut streams = owned_streams(&topo, 5701, &[0, 1], 2);
    for s in streams.iter_mut() {
        s.advance(4 * REPORT);
    }
    let flows: Vec<_> = streams.iter().map(|s| flow_of(&app, s)).collect();
    for (f, s) in flows.iter().zip(&streams) {
        assert_eq!(f.2, "established", "flow of {}: {f:?}", s.local);
        assert_eq!(flow_generation(&app, s), Some(1));
    }

    // Generation 2 still allows both: each goes on in the flow it had.
    load(&p2, 2);
    for s in streams.iter_mut() {
        s.advance(8 * REPORT);
    }
    for (f, s) in flows.iter().zip(&streams) {
        assert_eq!(&flow_of(&app, s), f, "flow of {} changed across the load", s.local);
        assert_eq!(flow_generation(&app, s), Some(2), "flow of {} not recompiled", s.local);
    }
    let st = Stats(app.ctl(&["stats"]));
    assert!(unexpected_drops(&st).is_empty(), "drops: {:?}", st.drops());

    // Generation 3 allows 5701 only: the stream to 5702 loses its flow on
    // its next segment, the one to 5701 keeps its own.
    load(&p3, 3);
    let mut kept = streams.remove(0);
    let cut = streams.remove(0);
    poll(START, "the stream to 5702 cut by the new policy", || {
        let st = Stats(app.ctl(&["stats"]));
        let gone = flow_generation(&app, &cut).is_none();
        let denied = st.drop_count("policy-deny");
        if gone && denied > 0 {
            Ok(())
        } else {
            Err(format!("flow gone {gone}, policy-deny {denied}"))
        }
    });
    kept.advance(8 * REPORT);
    assert_eq!(flow_of(&app, &kept), flows[0], "the allowed stream's flow changed");
    assert_eq!(flow_generation(&app, &kept), Some(3));
    assert!(!connects(&topo, 5702), "a new connection to 5702 under generation 3");
    assert!(connects(&topo, 5701), "no new connection to 5701 under generation 3");
    // The cut stream's client goes; its server keeps listening on 5702.
    let Stream {
        server: _listening,
        client,
        ..
    } = cut;
    drop(client);

    // Generation 4 is the first policy again.
    load(&p1, 4);
    assert!(connects(&topo, 5702), "no new connection to 5702 under generation 4");
    kept.advance(8 * REPORT);
    kept.finish();

    // The cut stream's first segment after the load is denied, its later
    // ones (and its peer's) find no flow.
    let st = Stats(app.ctl(&["stats"]));
    let other: Vec<_> = unexpected_drops(&st)
        .into_iter()
        .filter(|(k, _)| !["policy-deny", "no-flow"].contains(&k.replace('_', "-").as_str()))
        .collect();
    assert!(
        other.is_empty(),
        "drops other than the cut stream's: {other:?}\n{:#}",
        st.0
    );
    let o = app.stop(Duration::from_secs(30));
    assert_eq!(o.code(), 0, "{}", o.all());
    assert!(o.stdout.contains("mbufs: all"), "{}", o.all());
    let fin = Stats(serde_json::from_str(&std::fs::read_to_string(&final_stats).unwrap()).unwrap());
    let (rx, tx, drops) = (fin.total("rx_packets"), fin.total("tx_packets"), fin.drop_total());
    assert_eq!(rx, tx + drops, "final stats: {:#}", fin.0);
}
