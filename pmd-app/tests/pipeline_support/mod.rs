//! Support for the pipeline tests (tests/pipeline.rs: finite pcap runs;
//! tests/pipeline_driven.rs: step-by-step exchanges through kernel
//! interfaces): the app as a child that is always killed, kernel
//! interfaces (taps, veth pairs) that are always deleted, the scapy
//! traffic helper (tests/helpers/pipeline.py), the `--final-stats` JSON
//! ([`stats`]) and tshark rows keyed by field name with checksum
//! validation on ([`decode`]).
#![allow(dead_code)]

mod decode;
mod stats;
mod traffic;

pub use decode::*;
pub use stats::*;
pub use traffic::*;

use crate::common::{af_packet_turn, pcap_frames, pmd_app, Scratch};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bound on the app's start and stop, and on a finite pcap run.
pub const LIMIT: Duration = Duration::from_secs(60);
/// Bound on a whole driven exchange (each phase has its own 20 s).
pub const DRIVE_LIMIT: Duration = Duration::from_secs(300);
/// The VM's MAC in the traffic helper.
pub const VM_MAC: &str = "02:00:00:00:01:04";

/// The tests run one app at a time: two shared cores, busy-polling apps.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The EAL runtime directory of a test's file prefix, removed when
/// dropped (DPDK leaves it behind after a clean exit).
pub struct RuntimeDir(pub String);

impl RuntimeDir {
    pub fn new(name: &str) -> RuntimeDir {
        RuntimeDir(format!("/var/run/dpdk/{}", crate::common::prefix(name)))
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A short name unique to this test process: `tag` (≤ 4 chars) + pid.
/// Interface names must fit in 15 bytes.
pub fn ifname(tag: &str, side: &str) -> String {
    let n = format!("vp{tag}{side}{}", std::process::id() % 100_000);
    assert!(n.len() <= 15, "interface name {n} too long");
    n
}

fn sh(args: &[&str]) -> Result<String, String> {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(format!("{args:?}: {}", String::from_utf8_lossy(&o.stderr)))
    }
}

fn must(args: &[&str]) {
    if let Err(e) = sh(args) {
        panic!("{e}");
    }
}

/// Kernel interfaces deleted when dropped (also when the test fails).
#[derive(Default)]
pub struct Links(Vec<String>);

impl Links {
    /// A persistent multi-queue tap the app's net_tap attaches to; IPv6
    /// is off before it ever goes up, so the kernel sends nothing on it.
    pub fn tap(&mut self, name: &str) {
        let _ = sh(&["ip", "link", "del", name]);
        must(&["ip", "tuntap", "add", "dev", name, "mode", "tap", "multi_queue"]);
        self.0.push(name.to_string());
        quiet(name);
    }

    /// A veth pair, both ends up, IPv6 and offloads off (DPDK-NOTES: the
    /// app must see plain frames with full checksums).
    pub fn veth(&mut self, a: &str, b: &str) {
        let _ = sh(&["ip", "link", "del", a]);
        must(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
        self.0.push(a.to_string());
        for n in [a, b] {
            quiet(n);
            let _ = sh(&[
                "ethtool", "-K", n, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
            ]);
            must(&["ip", "link", "set", n, "up"]);
        }
    }
}

fn quiet(name: &str) {
    must(&["sysctl", "-q", "-w", &format!("net.ipv6.conf.{name}.disable_ipv6=1")]);
}

impl Drop for Links {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = sh(&["ip", "link", "del", n]);
        }
    }
}

/// A running pmd-app: stdout and stderr collected, killed on drop.
pub struct App {
    child: Option<Child>,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// Dropped after the app is stopped (see [`af_packet_turn`]).
    _turn: Option<MutexGuard<'static, ()>>,
}

fn collect(r: impl Read + Send + 'static, buf: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(l) = line else { break };
            let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
            b.push_str(&l);
            b.push('\n');
        }
    })
}

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

impl App {
    pub fn spawn(eal: &[String], app: &[String]) -> App {
        let turn = af_packet_turn(eal);
        let mut child = Command::new(pmd_app())
            .args(eal)
            .arg("--")
            .args(app)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pmd-app");
        let out = Arc::new(Mutex::new(String::new()));
        let err = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), out.clone()),
            collect(child.stderr.take().unwrap(), err.clone()),
        ];
        App {
            child: Some(child),
            out,
            err,
            readers,
            _turn: turn,
        }
    }

    pub fn output_so_far(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.out.lock().unwrap_or_else(|e| e.into_inner()),
            self.err.lock().unwrap_or_else(|e| e.into_inner())
        )
    }

    /// Waits until the workers poll (the app logs "forwarding on").
    pub fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.err.lock().unwrap().contains("forwarding on") || self.out.lock().unwrap().contains("forwarding on")
            {
                return;
            }
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("pmd-app exited early ({s})\n{}", self.output_so_far());
            }
            if Instant::now() > deadline {
                panic!("pmd-app not ready within {limit:?}\n{}", self.output_so_far());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT (the app's orderly stop), then waits for the exit.
    pub fn stop(self, limit: Duration) -> Finished {
        let pid = self.child.as_ref().unwrap().id().to_string();
        must(&["kill", "-INT", &pid]);
        self.wait(limit)
    }

    /// Waits for the app to exit by itself (e.g. `--stop-after`).
    pub fn wait(mut self, limit: Duration) -> Finished {
        let mut child = self.child.take().unwrap();
        let status = wait_child(&mut child, limit);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let Some(status) = status else {
            panic!("pmd-app did not exit within {limit:?}\n{}", self.output_so_far());
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished {
            status,
            stdout: self.out.lock().unwrap().clone(),
            stderr: self.err.lock().unwrap().clone(),
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The child's exit status, or None after killing it at `limit`.
fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts a clean exit: code 0 and every mbuf back in the pool.
pub fn assert_clean_exit(f: &Finished) {
    assert_eq!(f.status.code(), Some(0), "pmd-app exit status\n{}", f.all());
    assert!(f.stdout.contains("mbufs: all"), "no mbuf report\n{}", f.all());
}

/// A unique file prefix and `-l` for a pipeline test.
pub fn eal(name: &str, lcores: &str, vdevs: &[String]) -> Vec<String> {
    let mut e = crate::common::eal_base(name, lcores);
    for v in vdevs {
        e.push("--vdev".into());
        e.push(v.clone());
    }
    e
}

/// App options: two vports (vm on DEV0 role vm, wan on DEV1 role net),
/// the policy, the final stats file, no control socket.
pub fn app_args(vm_dev: &str, wan_dev: &str, policy: &str, stats: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "--vport".to_string(),
        format!("name=vm,fast={vm_dev},role=vm"),
        "--vport".into(),
        format!("name=wan,fast={wan_dev},role=net"),
        "--policy".into(),
        policy.into(),
        "--final-stats".into(),
        stats.into(),
        "--no-control-socket".into(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

// --- finite pcap runs -------------------------------------------------------

pub struct PcapRun {
    pub d: Scratch,
    pub fates: Fates,
    pub stats: Stats,
}

impl PcapRun {
    pub fn path(&self, f: &str) -> String {
        self.d.path(f)
    }
    pub fn frames(&self, f: &str) -> Vec<Vec<u8>> {
        pcap_frames(&self.path(f))
    }
}

/// Generates `scenario`, runs it through the app with `policy` (a path,
/// or TOML text written to the scratch dir) and returns everything.
pub fn run_pcap(name: &str, scenario: &str, policy: &str, lcores: &str) -> PcapRun {
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
    PcapRun { d, fates, stats }
}

// --- driven exchanges through kernel interfaces ------------------------------

pub struct Driven {
    _links: Links,
    _d: Scratch,
    pub ex: Exchange,
    pub stats: Stats,
}

/// Starts the app on two taps (or other vdevs on the given kernel ends),
/// drives `scenario`, stops the app and reads everything back.
pub fn run_driven(name: &str, scenario: &str, policy: &str, lcores: &str, setup: Setup) -> Driven {
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
    let (vdevs, extra, vm_k, wan_k): (Vec<String>, Vec<String>, String, String) = match setup {
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
        Setup::AfPacket(q) => {
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
                    format!("net_af_packet0,iface={a},qpairs={q}"),
                    format!("net_af_packet1,iface={b},qpairs={q}"),
                ],
                vec!["--queues".into(), q.to_string()],
                ak,
                bk,
            )
        }
    };
    let (vm_dev, wan_dev) = match setup {
        Setup::Taps => ("net_tap0", "net_tap1"),
        Setup::AfPacket(_) => ("net_af_packet0", "net_af_packet1"),
    };
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
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
        _d: d,
        ex,
        stats,
    }
}

#[derive(Clone, Copy)]
pub enum Setup {
    Taps,
    /// af_packet on veths with this many queue pairs, `--queues` the same.
    AfPacket(u16),
}

/// The SNAT tests' policy: an outbound-only ACL and SNAT of the VM subnet to
/// one pool address, ports 20000-20999.
pub const SNAT_POLICY: &str = r#"
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
