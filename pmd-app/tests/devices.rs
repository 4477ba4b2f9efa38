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
//! pcap and null/ring devices and the hugepages run are in forward.rs.

mod common;
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
fn pump(tp: &mut Live, tp_name: &str, app: &Live) {
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
            let stats: Vec<String> = (0..4)
                .map(|p| {
                    format!(
                        "testpmd port {p}: {:?}",
                        telemetry(&tp_prefix, &format!("/ethdev/stats,{p}"))
                    )
                })
                .collect();
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
    pump(&mut tp, "dmemif-tp", &app);
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
    pump(&mut tp, "dvhost-tp", &app);
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
    pump(&mut tp, "dvirtio-tp", &app);
    finish_testpmd(tp);
    let o = stop_app(app);

    assert_same_pcap(&in_a, &out2);
    assert_same_pcap(&in_b, &out0);
    assert_eq!(app_port_counts(&o.stdout, "virtio_user0"), (N, N), "{}", o.stdout);
    assert_eq!(app_port_counts(&o.stdout, "virtio_user1"), (N, N), "{}", o.stdout);
}
