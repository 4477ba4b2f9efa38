//! Foundation: plain forwarding (no --policy) through each kind of virtual
//! device the app must run on. Every test puts distinct frames in on one
//! side, takes them out on the other and compares them byte for byte and
//! through tshark, and checks the app's own counters:
//!
//! - net_tap and net_af_packet (on veth): frames are written and captured
//!   on the kernel side with AF_PACKET sockets (tests/helpers/wire.py);
//! - net_memif and net_vhost / virtio_user: a `dpdk-testpmd` peer (its own
//!   file prefix) reads pcaps into the peer devices and writes what comes
//!   back into pcaps (testpmd pairs ports 0<->1 and 2<->3).
//!
//! The devices' own losses (rx-nombuf from an undersized pool, rx-errors
//! from tap frames longer than the mbuf) are checked here too, as `stats`
//! reports them per path and in `device_drops`.
//!
//! pcap and null/ring devices and the hugepages run are in forward.rs.

mod common;
use common::live::{active_path, poll, wait_switches, App, Stats};
use common::*;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);
const N: u64 = 300;
/// virtio rings default to 256 slots: a burst of N = 300 frames overflows
/// one while its reader sleeps (and the writer drops what does not fit),
/// so the virtio side asks for 1024.
const VIRTIO_RING: &str = "queue_size=1024";

fn pid() -> u32 {
    std::process::id()
}

/// Two distinct frame sets, one per direction.
fn two_inputs(d: &Scratch) -> (String, String) {
    let (a, b) = (d.path("in-a.pcap"), d.path("in-b.pcap"));
    traffic(&["mixed", &a, "--count", &N.to_string(), "--seed", "11"]);
    traffic(&["mixed", &b, "--count", &N.to_string(), "--seed", "12"]);
    (a, b)
}

/// Whether pmd-app's log says `vport` forwards on its fast path (from the
/// start, or once its link came up).
fn vport_on_fast(stderr: &str, vport: &str) -> bool {
    let start = format!("vport {vport} (role");
    let later = format!("vport {vport}: datapath none -> fast");
    stderr
        .lines()
        .any(|l| (l.contains(&start) && l.contains("active=fast")) || l.contains(&later))
}

fn wait_forwarding(app: &mut Live, vports: &[&str]) {
    app.wait_for("every vport on its fast path", LIMIT, |_, e| {
        vports.iter().all(|v| vport_on_fast(e, v))
    });
}

/// Stops pmd-app with SIGINT and checks a clean exit.
fn stop_app(app: Live) -> Output {
    app.interrupt();
    let o = app.finish(LIMIT);
    assert_eq!(o.code(), 0, "{}", o.all());
    assert!(o.stdout.contains("mbufs: all"), "{}", o.all());
    o
}

/// wire.py xfer, optionally inside a network namespace.
fn wire_xfer(netns: Option<&str>, send: &str, recv: &str, inp: &str, out: &str) {
    let script = repo_root().join("tests/helpers/wire.py");
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "/usr/bin/python3"]);
            c
        }
        None => Command::new("/usr/bin/python3"),
    };
    let o = c
        .arg(script)
        .args(["xfer", "--send", send, "--recv", recv, "--pcap", inp, "--out", out])
        .output()
        .expect("run wire.py");
    assert!(
        o.status.success(),
        "wire.py {send} -> {recv} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn quiet_ipv6(netns: Option<&str>, iface: &str) {
    // The kernel's router solicitations and MLD reports would be forwarded
    // too; wire.py filters them by MAC anyway, this only keeps them out of
    // the counters. Best effort: a kernel without IPv6 has no such sysctl.
    let key = format!("net.ipv6.conf.{iface}.disable_ipv6=1");
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "sysctl"]);
            c
        }
        None => Command::new("sysctl"),
    };
    let _ = c.args(["-qw", &key]).stderr(std::process::Stdio::null()).status();
}

#[test]
fn tap_frames_cross_between_kernel_interfaces() {
    let d = Scratch::new("dtap");
    let (in_a, in_b) = two_inputs(&d);
    let (tap0, tap1) = (format!("vtA{}", pid()), format!("vtB{}", pid()));
    let mut eal = eal_base("dtap", "0");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_tap0,iface={tap0}"),
        "--vdev",
        &format!("net_tap1,iface={tap1}"),
    ]));
    let mut app = Live::app(&eal, &strings(&["--no-control-socket"]));
    wait_forwarding(&mut app, &["port0", "port1"]);
    quiet_ipv6(None, &tap0);
    quiet_ipv6(None, &tap1);

    let (out_a, out_b) = (d.path("out-a.pcap"), d.path("out-b.pcap"));
    wire_xfer(None, &tap0, &tap1, &in_a, &out_a);
    wire_xfer(None, &tap1, &tap0, &in_b, &out_b);
    let o = stop_app(app);

    assert_same_pcap(&in_a, &out_a);
    assert_same_pcap(&in_b, &out_b);
    // The kernel may add a few frames of its own (sent before IPv6 was
    // turned off), so at least N each way.
    let (rx0, tx0) = app_port_counts(&o.stdout, "net_tap0");
    let (rx1, tx1) = app_port_counts(&o.stdout, "net_tap1");
    assert!(rx0 >= N && tx1 >= N && rx1 >= N && tx0 >= N, "{}", o.stdout);
}

#[test]
fn af_packet_frames_cross_between_veth_peers() {
    let p = pid();
    let ns = format!("vfpt-afp-{p}");
    let (a0, a1, p0, p1) = (
        format!("vaA{p}"),
        format!("vaB{p}"),
        format!("vpA{p}"),
        format!("vpB{p}"),
    );
    let mut clean = Cleanup::default();
    clean.on_drop(&["ip", "link", "del", &a0]);
    clean.on_drop(&["ip", "link", "del", &a1]);
    clean.on_drop(&["ip", "netns", "del", &ns]);
    sh(&["ip", "netns", "add", &ns]);
    for (app_end, peer) in [(&a0, &p0), (&a1, &p1)] {
        sh(&[
            "ip", "link", "add", app_end, "type", "veth", "peer", "name", peer, "netns", &ns,
        ]);
        quiet_ipv6(None, app_end);
        quiet_ipv6(Some(&ns), peer);
        // Offloads off on both ends (DPDK-NOTES): no GSO super-frames, no
        // partial checksums, no VLAN tags moved out of band.
        let off = [
            "tx", "off", "tso", "off", "gso", "off", "gro", "off", "rxvlan", "off", "txvlan", "off",
        ];
        let mut cmd = vec!["ethtool", "-K", app_end.as_str()];
        cmd.extend(off);
        sh(&cmd);
        let mut cmd = vec!["ip", "netns", "exec", &ns, "ethtool", "-K", peer.as_str()];
        cmd.extend(off);
        sh(&cmd);
        sh(&["ip", "link", "set", app_end, "up"]);
        sh(&["ip", "-n", &ns, "link", "set", peer, "up"]);
    }

    let d = Scratch::new("dafp");
    let (in_a, in_b) = two_inputs(&d);
    let mut eal = eal_base("dafp", "0");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_af_packet0,iface={a0}"),
        "--vdev",
        &format!("net_af_packet1,iface={a1}"),
    ]));
    let mut app = Live::app(&eal, &strings(&["--no-control-socket"]));
    wait_forwarding(&mut app, &["port0", "port1"]);

    let (out_a, out_b) = (d.path("out-a.pcap"), d.path("out-b.pcap"));
    wire_xfer(Some(&ns), &p0, &p1, &in_a, &out_a);
    wire_xfer(Some(&ns), &p1, &p0, &in_b, &out_b);
    let o = stop_app(app);

    assert_same_pcap(&in_a, &out_a);
    assert_same_pcap(&in_b, &out_b);
    // Addressless veths with IPv6 off are silent: the counts are exact.
    assert_eq!(app_port_counts(&o.stdout, "net_af_packet0"), (N, N), "{}", o.stdout);
    assert_eq!(app_port_counts(&o.stdout, "net_af_packet1"), (N, N), "{}", o.stdout);
}

/// dpdk-testpmd, interactive (forwarding starts on `start`), io mode,
/// ports paired 0<->1, 2<->3.
fn testpmd(name: &str, extra_eal: &[&str], vdevs: &[String]) -> Live {
    let mut c = Command::new("dpdk-testpmd");
    c.args([
        "--no-pci",
        "--no-huge",
        "-m",
        "512",
        "--file-prefix",
        &prefix(name),
        "-l",
        "0-1",
        "--log-level",
        "lib.eal:error",
    ])
    .args(extra_eal);
    for v in vdevs {
        c.args(["--vdev", v]);
    }
    // --no-flush-rx: testpmd would otherwise drain (and lose) the pcaps on start.
    c.args(["--", "-i", "--no-flush-rx", "--total-num-mbufs=8192"]);
    Live::spawn("testpmd", c)
}

/// With the app forwarding and testpmd's peer ports (1 and 3) up, lets
/// testpmd replay both pcaps and waits until N frames came back out of
/// each pcap port, then quits testpmd (which closes the output pcaps).
fn pump(tp: &mut Live, tp_name: &str, app: &Live, app_name: &str) {
    let tp_prefix = prefix(tp_name);
    poll_until(
        LIMIT,
        "testpmd's peer ports up",
        || link_up(&tp_prefix, 1) && link_up(&tp_prefix, 3),
        || format!("{}\n{}", tp.all(), app.all()),
    );
    tp.write_stdin("start\n");
    poll_until(
        LIMIT,
        "N frames out of each of testpmd's pcap ports",
        || {
            port_stat(&tp_prefix, 0, "opackets").is_some_and(|n| n >= N)
                && port_stat(&tp_prefix, 2, "opackets").is_some_and(|n| n >= N)
        },
        || {
            let mut stats: Vec<String> = (0..4)
                .map(|p| {
                    format!(
                        "testpmd port {p}: {:?}",
                        telemetry(&tp_prefix, &format!("/ethdev/stats,{p}"))
                    )
                })
                .collect();
            // The app prints its counters only when it stops: where a
            // frame went missing shows in its live ones.
            let app_prefix = prefix(app_name);
            stats.extend((0..2).map(|p| {
                format!(
                    "pmd-app port {p}: {:?}",
                    telemetry(&app_prefix, &format!("/ethdev/stats,{p}"))
                )
            }));
            for cmd in ["/vfp/stats", "/vfp/drops", "/vfp/device_drops"] {
                stats.push(format!("pmd-app {cmd}: {:?}", telemetry(&app_prefix, cmd)));
            }
            format!("{}\n{}\n{}", stats.join("\n"), tp.all(), app.all())
        },
    );
    tp.write_stdin("quit\n");
}

fn finish_testpmd(tp: Live) {
    let o = tp.finish(LIMIT);
    assert_eq!(o.code(), 0, "{}", o.all());
}

/// pcap A -> testpmd -> peer0 -> pmd-app -> peer1 -> testpmd -> pcap B and
/// back: what testpmd wrote on port 2 is what it read on port 0.
fn pcap_pair(d: &Scratch) -> (String, String, String, String, String, String) {
    let (in_a, in_b) = two_inputs(d);
    let (out0, out2) = (d.path("tp-out0.pcap"), d.path("tp-out2.pcap"));
    let pcap0 = format!("net_pcap0,rx_pcap={in_a},tx_pcap={out0}");
    let pcap1 = format!("net_pcap1,rx_pcap={in_b},tx_pcap={out2}");
    (in_a, in_b, out0, out2, pcap0, pcap1)
}

#[test]
fn memif_server_forwards_between_two_testpmd_clients() {
    let d = Scratch::new("dmemif");
    let (in_a, in_b, out0, out2, pcap0, pcap1) = pcap_pair(&d);
    let (s0, s1) = (d.path("m0.sock"), d.path("m1.sock"));
    let mut eal = eal_base("dmemif", "0");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_memif0,role=server,socket={s0}"),
        "--vdev",
        &format!("net_memif1,role=server,socket={s1}"),
    ]));
    let mut app = Live::app(&eal, &strings(&["--no-control-socket"]));
    app.wait_for("forwarding", LIMIT, |_, e| e.contains("forwarding on"));
    let mut tp = testpmd(
        "dmemif-tp",
        &[],
        &[
            pcap0,
            format!("net_memif0,role=client,socket={s0}"),
            pcap1,
            format!("net_memif1,role=client,socket={s1}"),
        ],
    );
    // memif links come up when the client connects.
    wait_forwarding(&mut app, &["port0", "port1"]);
    pump(&mut tp, "dmemif-tp", &app, "dmemif");
    finish_testpmd(tp);
    let o = stop_app(app);

    assert_same_pcap(&in_a, &out2);
    assert_same_pcap(&in_b, &out0);
    assert_eq!(app_port_counts(&o.stdout, "net_memif0"), (N, N), "{}", o.stdout);
    assert_eq!(app_port_counts(&o.stdout, "net_memif1"), (N, N), "{}", o.stdout);
}

#[test]
fn vhost_app_forwards_between_two_testpmd_virtio_users() {
    let d = Scratch::new("dvhost");
    let (in_a, in_b, out0, out2, pcap0, pcap1) = pcap_pair(&d);
    let (s0, s1) = (d.path("vh0.sock"), d.path("vh1.sock"));
    let mut eal = eal_base("dvhost", "0");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_vhost0,iface={s0}"),
        "--vdev",
        &format!("net_vhost1,iface={s1}"),
    ]));
    let mut app = Live::app(&eal, &strings(&["--no-control-socket"]));
    // The vhost-user sockets exist once the ports are up.
    app.wait_for("forwarding", LIMIT, |_, e| e.contains("forwarding on"));
    // virtio_user shares its memory with the backend: one fd-backed segment.
    let mut tp = testpmd(
        "dvhost-tp",
        &["--single-file-segments"],
        &[
            pcap0,
            format!("virtio_user0,path={s0},{VIRTIO_RING}"),
            pcap1,
            format!("virtio_user1,path={s1},{VIRTIO_RING}"),
        ],
    );
    wait_forwarding(&mut app, &["port0", "port1"]);
    pump(&mut tp, "dvhost-tp", &app, "dvhost");
    finish_testpmd(tp);
    let o = stop_app(app);

    assert_same_pcap(&in_a, &out2);
    assert_same_pcap(&in_b, &out0);
    assert_eq!(app_port_counts(&o.stdout, "net_vhost0"), (N, N), "{}", o.stdout);
    assert_eq!(app_port_counts(&o.stdout, "net_vhost1"), (N, N), "{}", o.stdout);
}

#[test]
fn virtio_user_app_forwards_between_two_testpmd_vhosts() {
    let d = Scratch::new("dvirtio");
    let (in_a, in_b, out0, out2, pcap0, pcap1) = pcap_pair(&d);
    let (s0, s1) = (d.path("vu0.sock"), d.path("vu1.sock"));
    let mut tp = testpmd(
        "dvirtio-tp",
        &[],
        &[
            pcap0,
            format!("net_vhost0,iface={s0}"),
            pcap1,
            format!("net_vhost1,iface={s1}"),
        ],
    );
    // virtio_user connects at probe: testpmd's sockets must exist first.
    poll_until(
        LIMIT,
        "testpmd's vhost-user sockets",
        || std::path::Path::new(&s0).exists() && std::path::Path::new(&s1).exists(),
        || tp.all(),
    );
    // The guest side of vhost-user is where hugepages matter: use them
    // when the machine has them, else fd-backed --no-huge memory.
    let mut eal = if hugepages_available() {
        strings(&["--no-pci", "-m", "256", "--file-prefix", &prefix("dvirtio"), "-l", "0"])
    } else {
        eprintln!("note: no free hugepages, virtio_user runs on --no-huge memory");
        eal_base("dvirtio", "0")
    };
    eal.extend(strings(&[
        "--single-file-segments",
        "--vdev",
        &format!("virtio_user0,path={s0},{VIRTIO_RING}"),
        "--vdev",
        &format!("virtio_user1,path={s1},{VIRTIO_RING}"),
    ]));
    let mut app = Live::app(&eal, &strings(&["--no-control-socket"]));
    wait_forwarding(&mut app, &["port0", "port1"]);
    pump(&mut tp, "dvirtio-tp", &app, "dvirtio");
    finish_testpmd(tp);
    let o = stop_app(app);

    assert_same_pcap(&in_a, &out2);
    assert_same_pcap(&in_b, &out0);
    assert_eq!(app_port_counts(&o.stdout, "virtio_user0"), (N, N), "{}", o.stdout);
    assert_eq!(app_port_counts(&o.stdout, "virtio_user1"), (N, N), "{}", o.stdout);
}

/// A pool that the tap's rx ring all but empties at set-up (`--mbufs
/// 1024 --nb-desc 1024`: the tap PMD takes one mbuf per descriptor): the
/// app warns at start, and the pcap PMD, which copies each frame into a
/// fresh mbuf, loses frames for want of one. Every input frame is either
/// received or counted as the device's `rx-nombuf`, on its path and in
/// `device_drops`; the app itself drops nothing it held, so rx = tx +
/// drops stays exact, and every mbuf comes back at exit.
#[test]
fn an_undersized_pool_loses_frames_as_rx_nombuf_and_says_so() {
    const FRAMES: u64 = 60;
    let d = Scratch::new("dnomb");
    let input = d.path("in.pcap");
    traffic(&["mixed", &input, "--count", &FRAMES.to_string(), "--seed", "13"]);
    let tap = format!("vtN{}", pid());
    let mut eal = eal_base("dnomb", "0");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_pcap0,rx_pcap={input},tx_pcap={}", d.path("out.pcap")),
        "--vdev",
        &format!("net_tap0,iface={tap}"),
    ]));
    let fin = d.path("final.json");
    let args = strings(&[
        "--vport",
        "name=vm,fast=net_pcap0",
        "--vport",
        "name=wan,fast=net_tap0",
        "--mbufs",
        "1024",
        "--nb-desc",
        "1024",
        "--final-stats",
        &fin,
    ]);
    let app = App::start(&eal, &args, &d.path("ctl.sock"), LIMIT);
    let s = poll(LIMIT, "every pcap frame received or lost", || {
        let s = app.stats();
        let seen = s.path_counter("vm", "fast", "rx_packets") + s.path_counter("vm", "fast", "rx_nombuf");
        if seen == FRAMES {
            Ok(s)
        } else {
            Err(format!("{seen} of {FRAMES}"))
        }
    });
    let lost = s.path_counter("vm", "fast", "rx_nombuf");
    let got = s.path_counter("vm", "fast", "rx_packets");
    assert!(lost > 0 && got > 0, "lost {lost}, received {got}\n{:#}", s.0);
    let paths_nombuf = lost + s.path_counter("wan", "fast", "rx_nombuf");
    assert_eq!(s.device_drop("rx-nombuf"), paths_nombuf, "{:#}", s.0);
    for other in ["rx-missed", "rx-errors", "tx-errors"] {
        assert_eq!(s.device_drop(other), 0, "{other}\n{:#}", s.0);
    }
    // What was received went out on the tap; the app dropped nothing.
    assert_eq!(s.path_counter("wan", "fast", "tx_packets"), got, "{:#}", s.0);
    assert_eq!(s.drop_total(), 0, "{:#}", s.0);

    let o = app.stop_clean(LIMIT);
    assert!(
        o.stderr.contains("mempool: the devices' rx rings took") && o.stderr.contains("raise --mbufs"),
        "no start-up warning about the pool\n{}",
        o.stderr
    );
    assert!(
        o.stdout.contains(&format!("device drops: vm/fast:rx-nombuf={lost}")),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("mbufs: all 1024 returned"), "{}", o.all());
    let f = Stats::read(&fin);
    assert_eq!(f.path_counter("vm", "fast", "rx_nombuf"), lost, "{:#}", f.0);
    assert_eq!(
        f.total("rx_packets"),
        f.total("tx_packets") + f.drop_total(),
        "{:#}",
        f.0
    );
}

/// A tap delivers a frame longer than its mbuf (here `--mbuf-size 512`:
/// 384 bytes of data room, no scatter) truncated and flagged; the PMD
/// discards it and counts an rx error. Ten such frames, then ten short
/// ones, then one more long one, written on the kernel side in that
/// order: the app reports exactly eleven `rx-errors` on the tap's path
/// and in `device_drops` (DPDK telemetry's `/vfp/device_drops` too), and
/// forwards the ten short frames intact. The count survives the tap's
/// removal and return.
#[test]
fn tap_frames_longer_than_the_mbuf_are_counted_as_rx_errors() {
    let d = Scratch::new("dierr");
    let (long, short, last) = (d.path("long.pcap"), d.path("short.pcap"), d.path("last.pcap"));
    traffic(&["udp-flows", &long, "--flows", "10", "--count", "10", "--size", "600"]);
    traffic(&["udp-flows", &short, "--flows", "10", "--count", "10", "--size", "64"]);
    traffic(&["udp-flows", &last, "--flows", "1", "--count", "1", "--size", "1000"]);
    let empty = d.path("empty.pcap");
    traffic(&["udp-flows", &empty, "--flows", "1", "--count", "0"]);
    let tap = format!("vtE{}", pid());
    let out = d.path("out.pcap");
    let mut eal = eal_base("dierr", "0");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_tap0,iface={tap}"),
        "--vdev",
        &format!("net_pcap0,rx_pcap={empty},tx_pcap={out}"),
    ]));
    let fin = d.path("final.json");
    let args = strings(&[
        "--vport",
        "name=vm,fast=net_tap0",
        "--vport",
        "name=wan,fast=net_pcap0",
        "--mbuf-size",
        "512",
        "--final-stats",
        &fin,
    ]);
    let app = App::start(&eal, &args, &d.path("ctl.sock"), LIMIT);
    quiet_ipv6(None, &tap);
    for f in [&long, &short, &last] {
        traffic(&["send", &tap, f]);
    }
    // The tap's queue is first in, first out: with the last long frame
    // counted, the short ones before it were received.
    let s = poll(LIMIT, "eleven rx errors", || {
        let s = app.stats();
        match s.path_counter("vm", "fast", "rx_errors") {
            11 => Ok(s),
            n => Err(n.to_string()),
        }
    });
    assert_eq!(s.device_drop("rx-errors"), 11, "{:#}", s.0);
    assert_eq!(s.device_drop("rx-nombuf"), 0, "{:#}", s.0);
    assert_eq!(s.drop_total(), 0, "{:#}", s.0);
    telemetry_device_drops(&prefix("dierr"), "rx_errors", 11);

    // The tap removed and plugged back is a new device counting from
    // zero: the path keeps the eleven, and counts on from there.
    app.ctl(&["debug", "unplug", "net_tap0"]);
    let s = app.stats();
    assert_eq!(s.path_counter("vm", "fast", "rx_errors"), 11, "{:#}", s.0);
    app.ctl(&["debug", "plug", "net_tap0"]);
    quiet_ipv6(None, &tap);
    traffic(&["send", &tap, &last]);
    poll(LIMIT, "a twelfth rx error", || {
        match app.stats().path_counter("vm", "fast", "rx_errors") {
            12 => Ok(()),
            n => Err(n.to_string()),
        }
    });
    // The eleven of the removed device and the new device's one.
    telemetry_device_drops(&prefix("dierr"), "rx_errors", 12);
    let o = app.stop_clean(LIMIT);
    assert!(o.stdout.contains("device drops: vm/fast:rx-errors=12"), "{}", o.stdout);
    // Out: the ten short frames as they went in (the kernel's own frames,
    // sent before IPv6 was turned off, carry the tap's MAC).
    let sent = pcap_frames(&short);
    let vm_mac = &sent[0][6..12];
    let came: Vec<Vec<u8>> = pcap_frames(&out).into_iter().filter(|f| &f[6..12] == vm_mac).collect();
    assert_eq!(came, sent, "short frames out");
    let f = Stats::read(&fin);
    assert_eq!(f.path_counter("vm", "fast", "rx_errors"), 12, "{:#}", f.0);
    assert_eq!(f.device_drop("rx-errors"), 12, "{:#}", f.0);
}

/// Waits for DPDK telemetry's `/vfp/device_drops` to show `n` as `name`
/// (it follows the control thread's link poll) and the other counters 0.
fn telemetry_device_drops(prefix: &str, name: &str, n: u64) {
    let v = poll(LIMIT, "/vfp/device_drops", || {
        let v = telemetry(prefix, "/vfp/device_drops").unwrap_or_default();
        let d = &v["/vfp/device_drops"];
        if d[name] == n {
            Ok(d.clone())
        } else {
            Err(v.to_string())
        }
    });
    for other in ["rx_missed", "rx_nombuf", "rx_errors", "tx_errors"] {
        if other != name {
            assert_eq!(v[other], 0, "{other}: {v}");
        }
    }
}

/// `traffic.py send IFACE PCAP --loop` in the background, killed on drop.
struct SendLoop(std::process::Child);

impl SendLoop {
    fn start(iface: &str, pcap: &str) -> SendLoop {
        let child = Command::new("/usr/bin/python3")
            .arg(repo_root().join("tests/helpers/traffic.py"))
            .args(["send", iface, pcap, "--loop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run traffic.py send --loop");
        SendLoop(child)
    }
}

impl Drop for SendLoop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A transmit queue that takes nothing, as when a VF's queue hangs, with
/// the link up: wan's fast path is a memif server whose client (testpmd,
/// interactive, forwarding not started) never drains the ring, so once its
/// slots are full every transmit is refused (`tx-full` drops, the path's
/// `tx_full`). Refused packets count as failed transmits: wan fails over
/// to its soft path (net_null) by itself, cause `tx-errors`, while the VM
/// keeps sending (a loop of frames into the tap). Once testpmd drains the
/// ring, the fast path is taken back after its back-off (`tx-retry`) and
/// keeps carrying wan.
#[test]
fn a_transmit_queue_nobody_drains_fails_over_and_back() {
    let d = Scratch::new("djam");
    let frames = d.path("in.pcap");
    traffic(&["udp-flows", &frames, "--flows", "8", "--count", "256"]);
    let tap = format!("vtJ{}", pid());
    let sock = d.path("m.sock");
    let mut eal = eal_base("djam", "0");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_tap0,iface={tap}"),
        "--vdev",
        &format!("net_memif0,role=server,socket={sock}"),
        "--vdev",
        "net_null0,no-rx=1",
    ]));
    let args = strings(&[
        "--vport",
        "name=vm,fast=net_tap0",
        "--vport",
        "name=wan,fast=net_memif0,soft=net_null0",
    ]);
    let app = App::start(&eal, &args, &d.path("ctl.sock"), LIMIT);
    let mut tp = testpmd("djam-tp", &[], &[format!("net_memif0,role=client,socket={sock}")]);
    let wan_on = |want: &'static str| {
        let app = &app;
        move || {
            let st = app.ctl(&["status"]);
            if active_path(&st, "wan") == want {
                Ok(app.stats())
            } else {
                Err(format!("{st:#}"))
            }
        }
    };
    // memif's link comes up when the client connects: wan moves to fast.
    poll(LIMIT, "wan on its fast path once testpmd connects", wan_on("fast"));
    quiet_ipv6(None, &tap);
    let sending = SendLoop::start(&tap, &frames);

    // wan fails over to soft when its ring takes nothing.
    let s = wait_switches(&app, "wan", "tx-errors", 1, LIMIT);
    let refused = s.path_counter("wan", "fast", "tx_full");
    assert!(refused > 0, "{:#}", s.0);
    assert_eq!(s.drop_count("tx-full"), refused, "{:#}", s.0);
    assert_eq!(s.path_counter("wan", "fast", "tx_errors"), 0, "{:#}", s.0);
    assert_eq!(
        s.switch_count("wan", "link-change"),
        1,
        "only the first move to fast\n{:#}",
        s.0
    );
    poll(LIMIT, "the soft path carries wan", || {
        let s = app.stats();
        match s.path_counter("wan", "soft", "tx_packets") {
            0 => Err(format!("{:#}", s.0)),
            _ => Ok(()),
        }
    });

    // testpmd drains the ring from now on; a retry after this works.
    let retries = app.stats().switch_count("wan", "tx-retry");
    tp.write_stdin("set fwd rxonly\nstart\n");
    let back = poll(LIMIT, "wan back on fast after its back-off", || {
        let s = app.stats();
        let st = app.ctl(&["status"]);
        if s.switch_count("wan", "tx-retry") > retries && active_path(&st, "wan") == "fast" {
            Ok(s)
        } else {
            Err(format!("{:#?}\n{st:#}", s.switches()))
        }
    });
    let sent_then = back.path_counter("wan", "fast", "tx_packets");
    let later = poll(LIMIT, "the fast path carries wan again", || {
        let s = app.stats();
        if s.path_counter("wan", "fast", "tx_packets") >= sent_then + 1000 {
            Ok(s)
        } else {
            Err(format!("{:#}", s.0))
        }
    });
    assert_eq!(
        later.switch_count("wan", "tx-errors"),
        back.switch_count("wan", "tx-errors"),
        "the drained fast path was put aside again\n{:#}",
        later.0
    );
    assert_eq!(active_path(&app.ctl(&["status"]), "wan"), "fast");
    drop(sending);

    tp.write_stdin("stop\nquit\n");
    finish_testpmd(tp);
    let o = app.stop_clean(LIMIT);
    assert!(
        o.stderr.contains("refused") && o.stderr.contains("faulty for"),
        "{}",
        o.stderr
    );
}
