//! Support for the pipeline tests (tests/pipeline.rs): the app as a child
//! that is always killed, kernel interfaces (taps, veth pairs) that are
//! always deleted, the scapy traffic helper (tests/helpers/pipeline.py),
//! the `--final-stats` JSON, and tshark rows keyed by field name with
//! checksum validation on.
#![allow(dead_code)]

use crate::common::{pmd_app, repo_root};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

fn helper() -> std::path::PathBuf {
    repo_root().join("tests/helpers/pipeline.py")
}

/// `pipeline.py gen SCENARIO DIR`.
pub fn gen(scenario: &str, dir: &str) {
    let o = Command::new("/usr/bin/python3")
        .arg(helper())
        .args(["gen", scenario, dir])
        .output()
        .expect("run pipeline.py");
    assert!(
        o.status.success(),
        "pipeline.py gen {scenario} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `pipeline.py drive SCENARIO DIR --vm VM --wan WAN`, bounded by
/// `limit`; Err carries the driver's diagnosis.
pub fn drive(scenario: &str, dir: &str, vm: &str, wan: &str, limit: Duration) -> Result<(), String> {
    let mut child = Command::new("/usr/bin/python3")
        .arg(helper())
        .args(["drive", scenario, dir, "--vm", vm, "--wan", wan, "--timeout", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pipeline.py");
    let mut err = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let Some(status) = wait_child(&mut child, limit) else {
        return Err(format!("driver did not finish within {limit:?}"));
    };
    let e = errs.join().unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(format!("driver {scenario}: {status}: {e}"))
    }
}

/// What `--final-stats` wrote.
pub struct Stats(pub Value);

impl Stats {
    pub fn read(path: &str, ctx: &str) -> Stats {
        let s = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("--final-stats file {path} not written: {e}\n{ctx}"));
        Stats(serde_json::from_str(&s).unwrap_or_else(|e| panic!("{path}: not JSON: {e}\n{s}")))
    }

    /// Drop count for `reason` (absent: 0).
    pub fn drop_count(&self, reason: &str) -> u64 {
        self.0["drops"].get(reason).and_then(Value::as_u64).unwrap_or(0)
    }

    /// Every nonzero drop counter.
    pub fn drops(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        if let Some(o) = self.0["drops"].as_object() {
            for (k, v) in o {
                let n = v.as_u64().unwrap_or_else(|| panic!("drops.{k} is not a count: {v}"));
                if n > 0 {
                    m.insert(k.clone(), n);
                }
            }
        }
        m
    }

    /// Asserts the nonzero drop counters are exactly `want`.
    pub fn assert_drops<S: AsRef<str>>(&self, want: &[(S, u64)]) {
        let want: BTreeMap<String, u64> = want
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.as_ref().to_string(), *n))
            .collect();
        assert_eq!(self.drops(), want, "drop counters\n{}", self.pretty());
    }

    /// Like [`Stats::assert_drops`] for a driven run: probes the driver
    /// sent before the app forwarded on both vports may have been dropped
    /// for want of a tx path, at most `lost_probes` of them.
    pub fn assert_drops_probed<S: AsRef<str>>(&self, want: &[(S, u64)], lost_probes: u64) {
        let mut got = self.drops();
        let no_tx = got.remove("no-tx-path").unwrap_or(0);
        assert!(
            no_tx <= lost_probes,
            "{no_tx} no-tx-path drops, only {lost_probes} probes lost\n{}",
            self.pretty()
        );
        let want: BTreeMap<String, u64> = want
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.as_ref().to_string(), *n))
            .collect();
        assert_eq!(got, want, "drop counters\n{}", self.pretty());
    }

    pub fn engine(&self, name: &str) -> u64 {
        self.0["engine"]
            .get(name)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("engine.{name} missing\n{}", self.pretty()))
    }

    pub fn lcores(&self) -> Vec<Value> {
        self.0["lcores"].as_array().cloned().unwrap_or_default()
    }

    pub fn lcore_sum(&self, field: &str) -> u64 {
        self.lcores().iter().map(|l| l[field].as_u64().unwrap_or(0)).sum()
    }

    /// (rx, tx) of a vport's fast path.
    pub fn vport_fast(&self, name: &str) -> (u64, u64) {
        let v = self.0["vports"]
            .as_array()
            .and_then(|a| a.iter().find(|v| v["name"] == name))
            .unwrap_or_else(|| panic!("no vport {name}\n{}", self.pretty()));
        let f = &v["paths"]["fast"];
        (
            f["rx_packets"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: rx_packets\n{v}")),
            f["tx_packets"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: tx_packets\n{v}")),
        )
    }

    /// Every packet received was transmitted or dropped for a counted
    /// reason, and the per-vport counters agree with the per-lcore ones.
    pub fn assert_balanced(&self) {
        let (rx, tx) = (self.lcore_sum("rx_packets"), self.lcore_sum("tx_packets"));
        assert_eq!(rx, tx + self.total_drops(), "rx = tx + drops\n{}", self.pretty());
        let (mut vrx, mut vtx) = (0, 0);
        for v in self.0["vports"].as_array().cloned().unwrap_or_default() {
            vrx += v["paths"]["fast"]["rx_packets"].as_u64().unwrap_or(0);
            vtx += v["paths"]["fast"]["tx_packets"].as_u64().unwrap_or(0);
        }
        assert_eq!((vrx, vtx), (rx, tx), "vport vs lcore counters\n{}", self.pretty());
    }

    pub fn total_drops(&self) -> u64 {
        self.drops().values().sum()
    }

    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(&self.0).unwrap_or_default()
    }
}

/// One tshark row: field name -> every occurrence (outer first).
#[derive(Clone, Debug, Default)]
pub struct Row(pub HashMap<String, Vec<String>>);

impl Row {
    /// All occurrences of `f`.
    pub fn all(&self, f: &str) -> Vec<String> {
        self.0.get(f).cloned().unwrap_or_default()
    }
    /// The first (outermost) occurrence, "" when absent.
    pub fn get(&self, f: &str) -> String {
        self.all(f).into_iter().next().unwrap_or_default()
    }
    /// The last (innermost) occurrence, "" when absent.
    pub fn inner(&self, f: &str) -> String {
        self.all(f).into_iter().last().unwrap_or_default()
    }
    pub fn num(&self, f: &str) -> u64 {
        parse_num(&self.get(f)).unwrap_or_else(|| panic!("field {f} not a number in {self:?}"))
    }
    pub fn inner_num(&self, f: &str) -> u64 {
        parse_num(&self.inner(f)).unwrap_or_else(|| panic!("field {f} not a number in {self:?}"))
    }
}

fn parse_num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// tshark's decoding of every frame of `pcap`, checksums validated
/// (`*.checksum.status`: 1 good, 0 bad, 2 unverified, 3 not present).
pub fn tshark_rows(pcap: &str, fields: &[&str]) -> Vec<Row> {
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-n",
        "-r",
        pcap,
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for o in [
        "ip.check_checksum:TRUE",
        "tcp.check_checksum:TRUE",
        "udp.check_checksum:TRUE",
    ] {
        cmd.args(["-o", o]);
    }
    for f in fields {
        cmd.args(["-e", f]);
    }
    let o = cmd.output().expect("run tshark");
    assert!(
        o.status.success(),
        "tshark failed on {pcap}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split('|').collect();
            assert_eq!(cols.len(), fields.len(), "tshark row {l:?}");
            Row(fields
                .iter()
                .zip(cols)
                .map(|(f, c)| {
                    let v = if c.is_empty() {
                        Vec::new()
                    } else {
                        c.split(',').map(str::to_owned).collect()
                    };
                    (f.to_string(), v)
                })
                .collect())
        })
        .collect()
}

/// Where each input packet must end: per input file, in order.
pub struct Fates {
    pub vm_in: Vec<String>,
    pub wan_in: Vec<String>,
}

impl Fates {
    pub fn read(dir: &str) -> Fates {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/fates.json")).unwrap()).unwrap();
        let list = |k: &str| -> Vec<String> {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        };
        Fates {
            vm_in: list("vm_in"),
            wan_in: list("wan_in"),
        }
    }

    /// Count of packets dropped for each reason, over both inputs.
    pub fn drops(&self) -> Vec<(String, u64)> {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for f in self.vm_in.iter().chain(&self.wan_in) {
            if f != "vm" && f != "wan" {
                *m.entry(f.clone()).or_default() += 1;
            }
        }
        m.into_iter().collect()
    }

    pub fn total(&self) -> usize {
        self.vm_in.len() + self.wan_in.len()
    }
}

/// The driver's log: every tagged packet, where it went in and came out.
pub struct Exchange {
    pub dir: String,
    pub log: Value,
    pub sent: HashMap<String, Vec<Vec<u8>>>,
    pub recv: HashMap<String, Vec<Vec<u8>>>,
}

#[derive(Clone, Debug)]
pub struct Hop {
    pub tag: u64,
    pub sent_on: String,
    pub sent_idx: usize,
    pub got_on: Option<String>,
    pub got_idx: Option<usize>,
}

impl Exchange {
    pub fn read(dir: &str) -> Exchange {
        let log: Value = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/log.json")).unwrap()).unwrap();
        let mut sent = HashMap::new();
        let mut recv = HashMap::new();
        for side in ["vm", "wan"] {
            sent.insert(
                side.to_string(),
                crate::common::pcap_frames(&format!("{dir}/sent_{side}.pcap")),
            );
            recv.insert(
                side.to_string(),
                crate::common::pcap_frames(&format!("{dir}/recv_{side}.pcap")),
            );
        }
        Exchange {
            dir: dir.to_string(),
            log,
            sent,
            recv,
        }
    }

    pub fn hop(&self, tag: u64) -> Hop {
        let e = &self.log["tags"][tag.to_string()];
        assert!(e.is_object(), "no tag {tag} in the driver's log");
        Hop {
            tag,
            sent_on: e["sent_on"].as_str().unwrap().to_string(),
            sent_idx: e["sent_idx"].as_u64().unwrap() as usize,
            got_on: e["got_on"].as_str().map(str::to_owned),
            got_idx: e["got_idx"].as_u64().map(|x| x as usize),
        }
    }

    /// The tags of a group the driver recorded (`extra.NAME`).
    pub fn group(&self, name: &str) -> Vec<u64> {
        self.log["extra"][name]
            .as_array()
            .unwrap_or_else(|| panic!("no group {name} in the driver's log"))
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect()
    }

    fn probes(&self, k: &str) -> u64 {
        ["vm", "wan"].iter().map(|s| self.log[k][s].as_u64().unwrap_or(0)).sum()
    }
    /// Readiness probes (non-IP frames) the driver sent, and received back.
    pub fn probes_sent(&self) -> u64 {
        self.probes("probes_sent")
    }
    pub fn probes_recv(&self) -> u64 {
        self.probes("probes_recv")
    }
    pub fn lost_probes(&self) -> u64 {
        self.probes_sent() - self.probes_recv()
    }

    pub fn pcap(&self, kind: &str, side: &str) -> String {
        format!("{}/{kind}_{side}.pcap", self.dir)
    }

    /// Frames the app sent out on each side, in order.
    pub fn received(&self, side: &str) -> &[Vec<u8>] {
        &self.recv[side]
    }
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
