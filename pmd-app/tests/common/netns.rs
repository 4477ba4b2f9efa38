//! Real-kernel plumbing: two network namespaces whose traffic crosses
//! pmd-app, and the TCP stream helper (tests/helpers/tcp_stream.py) run
//! inside them (the app itself is driven with `live::App`).
//!
//! Topology (one `Side` per namespace, `a` faces the app's `vm` vport,
//! `b` its `wan` vport):
//!
//! ```text
//!   netns A                                 root netns (the app)
//!   br0 10.1.0.4/24 ─┬─ fast0 ══ veth ══ <t>aF{pid}   net_af_packet (fast)
//!   (isolated ports) └─ soft0 ══ veth ══ <t>aS{pid} ─ bridge <t>aR{pid} ─ tap <t>aT{pid}   net_tap (soft)
//! ```
//!
//! and the same for B with 198.51.100.7/24. The app is a bump in the wire
//! (it forwards frames with their MACs), so nobody needs to answer ARP: A
//! reaches B's subnet through a gateway whose neighbour entry is B's MAC,
//! B reaches the SNAT address (and A's subnet, for the unsolicited-inbound
//! check) through A's MAC. IPv6 is off on every interface we create so
//! that no stray router solicitation or MLD report reaches the app's
//! policy. Kernel offloads are off on every veth, bridge and tap end (see
//! DPDK-NOTES.md). The soft path's tap is created here as a persistent
//! multi-queue tap already on its bridge; net_tap attaches to it.
//!
//! Every name in the root namespace carries the test's tag and the pid;
//! the guards delete what they created when dropped, also when the test
//! fails.

use super::live::Proc;
use super::repo_root;
use std::process::Command;
use std::time::{Duration, Instant};

pub const A_IP: &str = "10.1.0.4";
pub const A_GW: &str = "10.1.0.1";
pub const A_MAC: &str = "02:00:00:0a:00:04";
pub const B_IP: &str = "198.51.100.7";
pub const B_GW: &str = "198.51.100.1";
pub const B_MAC: &str = "02:00:00:0b:00:07";
/// The SNAT pool address (in B's subnet) and port range of [`TCP_POLICY`].
pub const SNAT_IP: &str = "198.51.100.10";
pub const SNAT_PORTS: (u16, u16) = (20000, 20999);

/// Stateful ACL (the VM may open TCP connections; nothing inbound is
/// allowed except replies, which the flow pair carries) and SNAT to
/// [`SNAT_IP`]; no encapsulation, so B sees plain TCP from the SNAT address.
pub const TCP_POLICY: &str = r#"
[timeouts]
tcp_established = 600
tcp_fin = 60
tcp_closed = 60

[[layers]]
name = "acl"
default = "deny"

[[layers.groups]]
name = "outbound"

[[layers.groups.rules]]
id = 10
priority = 100
description = "the VM may open TCP connections"
direction = "out"
vports = ["vm"]
src = ["10.1.0.0/24"]
proto = "tcp"
action = "allow"

[[layers]]
name = "nat"
default = "allow"

[[layers.groups]]
name = "snat"

[[layers.groups.rules]]
id = 1
priority = 100
direction = "out"
src = ["10.1.0.0/24"]
action = "snat"
snat = { addrs = ["198.51.100.10"], ports = "20000-20999" }
"#;

/// Runs a command to completion; Err carries its output.
fn run(cmd: &mut Command) -> Result<String, String> {
    let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

/// `ip ARGS` in the root namespace, which must succeed.
pub fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args)).unwrap_or_else(|e| panic!("{e}"))
}

/// A network namespace, deleted when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        let _ = run(Command::new("ip").args(["netns", "del", name]));
        ip(&["netns", "add", name]);
        let ns = Netns { name: name.to_string() };
        ns.sh(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.sh(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns.sh(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// `ip netns exec NS PROG ...` (not yet run).
    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Runs `ARGV` inside the namespace; it must succeed.
    pub fn sh(&self, argv: &[&str]) -> String {
        run(self.cmd(argv[0]).args(&argv[1..])).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `tcp_stream.py ARGS` inside the namespace, followed as a [`Proc`].
    pub fn tcp_stream(&self, what: &str, args: &[&str]) -> Proc {
        let mut c = self.cmd("/usr/bin/python3");
        c.arg(repo_root().join("tests/helpers/tcp_stream.py")).args(args);
        Proc::spawn(c, &format!("{what} in {}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Turns the offloads off that make af_packet hand the app GSO
/// super-frames or partial checksums, and checks that they are off.
pub fn offloads_off(ns: Option<&Netns>, dev: &str) {
    let tool = |args: &[&str]| -> Result<String, String> {
        match ns {
            Some(n) => run(n.cmd("ethtool").args(args)),
            None => run(Command::new("ethtool").args(args)),
        }
    };
    // Some features are fixed on some devices; what counts is the result.
    let _ = tool(&["-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"]);
    let k = tool(&["-k", dev]).unwrap_or_else(|e| panic!("{e}"));
    for f in [
        "tx-checksumming",
        "tcp-segmentation-offload",
        "generic-segmentation-offload",
        "generic-receive-offload",
    ] {
        let line = k
            .lines()
            .find(|l| l.starts_with(&format!("{f}:")))
            .unwrap_or_else(|| panic!("ethtool -k {dev}: no {f}\n{k}"));
        assert!(line.contains(": off"), "{dev}: {line} (expected off)");
    }
}

/// No IPv6 and no multicast on a root-namespace interface of ours: the
/// kernel's own router solicitations, MLD or IGMP reports must not reach
/// the app (its policy would count them as drops).
fn quiet(dev: &str) {
    run(Command::new("sysctl").args(["-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=1")]))
        .unwrap_or_else(|e| panic!("{e}"));
    ip(&["link", "set", dev, "multicast", "off"]);
}

/// One namespace and its links to the app.
pub struct Side {
    /// Root-namespace end of the fast path's veth: the af_packet iface.
    pub fast_if: String,
    /// The soft path's tap (net_tap iface), when the side has one.
    pub soft_tap: Option<String>,
    /// Root-namespace end of the soft path's veth (the tap's wire to br0).
    pub soft_if: Option<String>,
    /// Root-namespace interfaces to delete (veth ends, bridge, tap).
    root_links: Vec<String>,
    /// The in-namespace interface holding the address.
    pub dev: &'static str,
    pub ns: Netns,
}

impl Side {
    /// Builds namespace `tag-side-pid` with `br0` at `cidr`/`mac`, a fast
    /// veth and, with `soft`, the tap chain, both isolated ports of br0.
    pub fn new(tag: &str, side: char, cidr: &str, mac: &str, soft: bool) -> Side {
        let pid = std::process::id();
        let root = |k: char| format!("{tag}{side}{k}{pid}");
        assert!(
            root('F').len() <= 15,
            "interface name {} too long: shorten the tag",
            root('F')
        );
        let ns = Netns::new(&format!("vfpt-{tag}-{side}-{pid}"));
        let mut s = Side {
            fast_if: root('F'),
            soft_tap: None,
            soft_if: None,
            root_links: Vec::new(),
            dev: "br0",
            ns,
        };
        let n = s.ns.name.clone();
        // No STP and no multicast snooping: a snooping bridge joins
        // 224.0.0.106 and its IGMP report would reach the app's policy.
        s.ns.sh(&[
            "ip",
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ]);
        s.ns.sh(&["ip", "link", "set", "br0", "multicast", "off"]);
        // Not every kernel has the option; without br_netfilter it is moot.
        let _ = run(s
            .ns
            .cmd("ip")
            .args(["link", "set", "br0", "type", "bridge", "nf_call_iptables", "0"]));
        s.ns.sh(&["ip", "link", "set", "br0", "address", mac]);
        let mut ports = vec![("fast0", s.fast_if.clone())];
        if soft {
            ports.push(("soft0", root('S')));
        }
        for (inner, outer) in &ports {
            s.root_links.push(outer.clone());
            ip(&["link", "add", outer, "type", "veth", "peer", "name", inner, "netns", &n]);
            quiet(outer);
            offloads_off(None, outer);
            ip(&["link", "set", outer, "up"]);
            s.ns.sh(&["ip", "link", "set", inner, "master", "br0"]);
            // As on a hypervisor: nothing the app sends on one path comes
            // back on the other, and broadcasts cannot loop through it.
            s.ns.sh(&[
                "ip",
                "link",
                "set",
                "dev",
                inner,
                "type",
                "bridge_slave",
                "isolated",
                "on",
            ]);
            offloads_off(Some(&s.ns), inner);
            s.ns.sh(&["ip", "link", "set", inner, "multicast", "off"]);
            s.ns.sh(&["ip", "link", "set", inner, "up"]);
        }
        if soft {
            let (veth, br, tap) = (root('S'), root('R'), root('T'));
            s.root_links.push(br.clone());
            ip(&[
                "link",
                "add",
                &br,
                "type",
                "bridge",
                "stp_state",
                "0",
                "mcast_snooping",
                "0",
            ]);
            ip(&["link", "set", &br, "multicast", "off"]);
            let _ = run(Command::new("ip").args(["link", "set", &br, "type", "bridge", "nf_call_iptables", "0"]));
            quiet(&br);
            s.root_links.push(tap.clone());
            // net_tap attaches to an existing multi-queue tap of its iface name.
            ip(&["tuntap", "add", "dev", &tap, "mode", "tap", "multi_queue"]);
            quiet(&tap);
            for d in [&veth, &tap] {
                ip(&["link", "set", d, "master", &br]);
            }
            for d in [&br, &tap] {
                offloads_off(None, d);
                ip(&["link", "set", d, "up"]);
            }
            s.soft_tap = Some(tap);
            s.soft_if = Some(veth);
        }
        offloads_off(Some(&s.ns), "br0");
        s.ns.sh(&["ip", "addr", "add", cidr, "dev", "br0"]);
        s.ns.sh(&["ip", "link", "set", "br0", "up"]);
        s
    }

    /// A permanent neighbour entry (no ARP needed through the app).
    pub fn neigh(&self, addr: &str, mac: &str) {
        self.ns.sh(&[
            "ip",
            "neigh",
            "replace",
            addr,
            "lladdr",
            mac,
            "dev",
            self.dev,
            "nud",
            "permanent",
        ]);
    }

    pub fn route(&self, dst: &str, via: &str) {
        self.ns
            .sh(&["ip", "route", "add", dst, "via", via, "dev", self.dev, "onlink"]);
    }

    /// Brings the root end of the fast veth down or up: what the far side
    /// sees when the host removes or restores the VF.
    pub fn set_fast_link(&self, up: bool) {
        ip(&["link", "set", &self.fast_if, if up { "up" } else { "down" }]);
    }

    /// The bridge port (fast0/soft0) br0 has learned `mac` on, if any.
    pub fn learned_port(&self, mac: &str) -> Option<String> {
        let out = self.ns.sh(&["bridge", "fdb", "show", "br", "br0"]);
        out.lines()
            .filter(|l| l.starts_with(mac) && !l.contains("permanent"))
            .find_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        for l in self.root_links.iter().rev() {
            let _ = run(Command::new("ip").args(["link", "del", l]));
        }
        // `ns` drops after this, deleting the namespace and its ends.
    }
}

/// Namespaces A (vm side) and B (wan side) addressed for the TCP tests.
pub struct Pair {
    pub a: Side,
    pub b: Side,
}

impl Pair {
    /// `soft`: each side also reaches the app through a tap (soft path).
    pub fn new(tag: &str, soft: bool) -> Pair {
        let a = Side::new(tag, 'a', &format!("{A_IP}/24"), A_MAC, soft);
        let b = Side::new(tag, 'b', &format!("{B_IP}/24"), B_MAC, soft);
        // A: everything beyond its subnet goes to a gateway that is B's MAC.
        a.neigh(A_GW, B_MAC);
        a.route("default", A_GW);
        // B: the SNAT address, and A's subnet (only used to prove that
        // unsolicited inbound connections are dropped), are A's MAC.
        b.neigh(SNAT_IP, A_MAC);
        b.neigh(B_GW, A_MAC);
        b.route("10.1.0.0/24", B_GW);
        Pair { a, b }
    }

    /// The EAL `--vdev` options for the devices of both sides: fast paths
    /// net_af_packet0 (A) and net_af_packet1 (B), soft paths net_tap0 (A)
    /// and net_tap1 (B). `qpairs` > 1 gives af_packet several queues.
    pub fn vdevs(&self, qpairs: u16) -> Vec<String> {
        let mut v = Vec::new();
        for (i, s) in [&self.a, &self.b].into_iter().enumerate() {
            v.push("--vdev".to_string());
            v.push(format!("{},{}", af_packet(i), af_packet_args(&s.fast_if, qpairs)));
            if let Some(t) = &s.soft_tap {
                v.push("--vdev".to_string());
                v.push(format!("net_tap{i},iface={t}"));
            }
        }
        v
    }

    /// The app's `--vport` options matching [`Pair::vdevs`].
    pub fn vports(&self) -> Vec<String> {
        let soft = |i: usize, s: &Side| {
            s.soft_tap
                .as_ref()
                .map(|_| format!(",soft=net_tap{i}"))
                .unwrap_or_default()
        };
        vec![
            "--vport".into(),
            format!("name=vm,fast={}{},role=vm", af_packet(0), soft(0, &self.a)),
            "--vport".into(),
            format!("name=wan,fast={}{},role=net", af_packet(1), soft(1, &self.b)),
        ]
    }

    /// Lets each namespace's bridge learn the far side's MAC on the port
    /// the app transmits on (a gratuitous ARP from each side, which the app
    /// forwards unchanged), so that the first TCP segment is not flooded to
    /// both paths. Waits, bounded, until both bridges have learned.
    pub fn prime(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            for (s, addr) in [(&self.a, A_IP), (&self.b, B_IP)] {
                let mut p =
                    s.ns.tcp_stream("announce", &["announce", "--iface", "br0", "--ip", addr]);
                p.wait_success(Duration::from_secs(20));
            }
            if self.a.learned_port(B_MAC).is_some() && self.b.learned_port(A_MAC).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bridges did not learn the far MACs through the app:\nA: {}\nB: {}",
                self.a.ns.sh(&["bridge", "fdb", "show", "br", "br0"]),
                self.b.ns.sh(&["bridge", "fdb", "show", "br", "br0"])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn af_packet(i: usize) -> String {
    format!("net_af_packet{i}")
}

pub fn af_packet_args(iface: &str, qpairs: u16) -> String {
    if qpairs > 1 {
        format!("iface={iface},qpairs={qpairs}")
    } else {
        format!("iface={iface}")
    }
}

/// The flow key of an IPv4 packet of `proto` from `src:sp` to `dst:dp`,
/// to ask which worker owns its connection ([`FlowKey::owner`]).
///
/// [`FlowKey::owner`]: vfp_core::flow::key::FlowKey::owner
pub fn v4_key(proto: u8, src: &str, sp: u16, dst: &str, dp: u16) -> vfp_core::flow::key::FlowKey {
    use vfp_core::flow::key::{v4_mapped, FlowKey, NO_VNI};
    let ip = |a: &str| v4_mapped(a.parse::<std::net::Ipv4Addr>().unwrap().octets());
    FlowKey {
        src: ip(src),
        dst: ip(dst),
        src_port: sp,
        dst_port: dp,
        proto,
        vni: NO_VNI,
        ..FlowKey::default()
    }
}
