//! Shared helpers for the integration tests: run the real `pmd-app`
//! binary as a subprocess (the EAL initialises once per process) on DPDK
//! virtual devices, build traffic with scapy and decode captures with
//! tshark — both independent of vfp-core's own parser.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub fn pmd_app() -> &'static str {
    env!("CARGO_BIN_EXE_pmd-app")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A scratch directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("vfp-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn path(&self, f: &str) -> String {
        self.0.join(f).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A unique EAL file prefix so tests run side by side.
pub fn prefix(name: &str) -> String {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(|| {
        sweep_dead("/run/dpdk", |d| std::fs::remove_dir_all(d));
        for mnt in hugetlbfs_mounts() {
            sweep_dead(&mnt, |f| std::fs::remove_file(f));
        }
    });
    format!("vfpt-{name}-{}", std::process::id())
}

/// Removes what test apps that are no longer running left under `dir`
/// with a `vfpt-NAME-PID` name: DPDK keeps its runtime directory in
/// `/run/dpdk` after an app exits (about 6 MB of tmpfs each with
/// `--no-huge`), and its hugepage files (`vfpt-NAME-PIDmap_N`) when it
/// ran without `--huge-unlink`.
fn sweep_dead(dir: &str, remove: impl Fn(&std::path::Path) -> std::io::Result<()>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("vfpt-")
            .and_then(|rest| rest.split("map_").next())
            .and_then(|rest| rest.rsplit('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = remove(&e.path());
        }
    }
}

/// Mount points of hugetlbfs file systems.
pub fn hugetlbfs_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && f[2] == "hugetlbfs").then(|| f[1].to_owned())
        })
        .collect()
}

/// EAL options every test uses: no PCI, no hugepages, its own prefix.
pub fn eal_base(name: &str, lcores: &str) -> Vec<String> {
    [
        "--no-pci",
        "--no-huge",
        "-m",
        "512",
        "--file-prefix",
        &prefix(name),
        "-l",
        lcores,
        "--log-level",
        "lib.eal:error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// [`eal_base`] with a generator (`net_null0`, 64-byte frames) and a sink
/// (`net_null1`): the app forwards from one to the other at full speed.
pub fn eal_null_pair(name: &str, lcores: &str) -> Vec<String> {
    let mut eal = eal_base(name, lcores);
    eal.extend(strings(&["--vdev", "net_null0,size=64", "--vdev", "net_null1,no-rx=1"]));
    eal
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    pub fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// Waits up to `limit` for `child` to exit. Past the limit it is killed
/// and reaped, and `Err` carries that status: the caller fails the test
/// with whatever output it collected.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Result<ExitStatus, ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Ok(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(child.wait().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child`, killing it (and failing the test) after `limit`.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let waited = wait_bounded(&mut child, limit);
    let o = Output {
        status: waited.unwrap_or_else(|s| s),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(waited.is_ok(), "process did not finish within {limit:?}\n{}", o.all());
    o
}

/// DPDK 22.11's af_packet PMD names its PACKET_FANOUT group after
/// `(pid ^ ifindex) & 0xffff`, host-wide (per network namespace). Two apps
/// running at once can pick the same group id: one then fails to start
/// (EINVAL, which [`live::App::start`] retries), and after such a clash
/// the restarted app was seen receiving the other app's frames (the two
/// netns tests, after every clash seen: the other connection's packets
/// counted as `no-flow`). Test apps with an af_packet device therefore take turns
/// within a test binary (cargo runs the binaries one after another): each
/// launcher holds this turn for as long as its app runs.
static AF_PACKET_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The af_packet turn, when `eal` has an af_packet device.
pub fn af_packet_turn(eal: &[String]) -> Option<std::sync::MutexGuard<'static, ()>> {
    eal.iter()
        .any(|a| a.contains("net_af_packet"))
        .then(|| AF_PACKET_TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Starts `pmd-app EAL -- APP`.
pub fn spawn_app(eal: &[String], app: &[String]) -> Child {
    Command::new(pmd_app())
        .args(eal)
        .arg("--")
        .args(app)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pmd-app")
}

/// A child process killed when dropped (a failed assertion must not
/// leave a busy-polling app behind).
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub fn run_app(eal: &[String], app: &[String], limit: Duration) -> Output {
    wait_output(spawn_app(eal, app), limit)
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Runs tests/helpers/traffic.py with Debian's python3 (scapy).
pub fn traffic(args: &[&str]) {
    let script = repo_root().join("tests/helpers/traffic.py");
    let o = Command::new("/usr/bin/python3")
        .arg(script)
        .args(args)
        .output()
        .expect("run traffic.py");
    assert!(
        o.status.success(),
        "traffic.py {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// tshark's decoding of `pcap`: one row per packet, one column per field.
pub fn tshark_fields(pcap: &str, fields: &[&str]) -> Vec<Vec<String>> {
    tshark_with(pcap, fields, &[])
}

/// [`tshark_fields`] with extra tshark options (`-o` preferences).
pub fn tshark_with(pcap: &str, fields: &[&str], options: &[&str]) -> Vec<Vec<String>> {
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
    ]);
    cmd.args(options);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let o = cmd.output().expect("run tshark (install with scripts/setup.sh)");
    assert!(
        o.status.success(),
        "tshark failed on {pcap}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

/// Raw frames of a pcap file (classic libpcap format, either byte order).
pub fn pcap_frames(path: &str) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    assert!(b.len() >= 24, "{path}: not a pcap");
    let le = match &b[0..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        m => panic!("{path}: bad pcap magic {m:?}"),
    };
    let u32at = |o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let caplen = u32at(o + 8) as usize;
        o += 16;
        assert!(o + caplen <= b.len(), "{path}: truncated record");
        out.push(b[o..o + caplen].to_vec());
        o += caplen;
    }
    out
}

/// Whether 2 MB hugepages are reserved and mounted.
pub fn hugepages_available() -> bool {
    let n = std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    n >= 256 && !hugetlbfs_mounts().is_empty()
}

/// A running app under its control socket, followed helper processes.
pub mod live;
/// Real-kernel plumbing: namespaces, bridges, veths and taps around the app.
pub mod netns;
/// A TCP stream through the app between the namespaces, and its flow.
pub mod stream;

// ---- Long-running processes, kernel interfaces, telemetry (devices.rs) ----

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Polls `cond` until it holds or `limit` passes; panics with `what` and
/// the text of `context()` on timeout.
pub fn poll_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn collect(mut r: impl Read + Send + 'static, buf: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    })
}

/// A child process running alongside the test (pmd-app, dpdk-testpmd):
/// its output is collected while it runs, its stdin can be written, and it
/// is killed when dropped, so a failing test leaves no DPDK process behind.
pub struct Live {
    pub name: String,
    child: Option<Child>,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// Dropped after the process is stopped (see [`af_packet_turn`]).
    _turn: Option<std::sync::MutexGuard<'static, ()>>,
}

impl Live {
    pub fn spawn(name: &str, mut cmd: Command) -> Live {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let (out, err) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&out)),
            collect(child.stderr.take().unwrap(), Arc::clone(&err)),
        ];
        Live {
            name: name.to_string(),
            child: Some(child),
            out,
            err,
            readers,
            _turn: None,
        }
    }

    /// `pmd-app EAL -- APP`.
    pub fn app(eal: &[String], app: &[String]) -> Live {
        let turn = af_packet_turn(eal);
        let mut c = Command::new(pmd_app());
        c.args(eal)
            .arg("--")
            .args(app)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()));
        let mut live = Live::spawn("pmd-app", c);
        live._turn = turn;
        live
    }

    pub fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }
    pub fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }
    pub fn all(&self) -> String {
        format!(
            "--- {} stdout\n{}\n--- {} stderr\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }

    /// Waits until `cond(stdout, stderr)` holds; panics if the process
    /// exits first or `limit` passes.
    pub fn wait_for(&mut self, what: &str, limit: Duration, cond: impl Fn(&str, &str) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if cond(&self.stdout(), &self.stderr()) {
                return;
            }
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{} exited ({s}) while waiting for {what}\n{}", self.name, self.all());
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: timed out after {limit:?} waiting for {what}\n{}",
                    self.name,
                    self.all()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn write_stdin(&mut self, s: &str) {
        let stdin = self.child.as_mut().unwrap().stdin.as_mut().unwrap();
        stdin.write_all(s.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGINT: what Ctrl-C sends; pmd-app and testpmd stop cleanly on it.
    pub fn interrupt(&self) {
        let _ = Command::new("kill").args(["-INT", &self.pid().to_string()]).status();
    }

    /// Waits for the process to exit by itself (after `interrupt`, `quit`
    /// or `--duration`); kills it and panics after `limit`.
    pub fn finish(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().unwrap();
        drop(child.stdin.take());
        let waited = wait_bounded(&mut child, limit);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let Ok(status) = waited else {
            panic!("{} did not exit within {limit:?}\n{}", self.name, self.all());
        };
        Output {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a command that must succeed (ip, ethtool, sysctl).
pub fn sh(args: &[&str]) {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Commands run when dropped, in reverse order: deletes the network
/// namespaces and links a test created, even when it fails.
#[derive(Default)]
pub struct Cleanup(Vec<Vec<String>>);

impl Cleanup {
    pub fn on_drop(&mut self, args: &[&str]) {
        self.0.push(strings(args));
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in self.0.iter().rev() {
            let _ = Command::new(&c[0]).args(&c[1..]).stderr(Stdio::null()).status();
        }
    }
}

/// One DPDK telemetry command against the process with EAL prefix
/// `prefix` (tests/helpers/telemetry.py); None while it does not answer.
pub fn telemetry(prefix: &str, cmd: &str) -> Option<serde_json::Value> {
    let script = repo_root().join("tests/helpers/telemetry.py");
    let o = Command::new("/usr/bin/python3")
        .arg(script)
        .args([prefix, "cmd", cmd])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    serde_json::from_slice(&o.stdout).ok()
}

/// Whether port `port` of the DPDK process `prefix` reports link up.
pub fn link_up(prefix: &str, port: u16) -> bool {
    telemetry(prefix, &format!("/ethdev/link_status,{port}"))
        .is_some_and(|v| v["/ethdev/link_status"]["status"] == "UP")
}

/// An ethdev counter (ipackets, opackets, ...) of a port, via telemetry.
pub fn port_stat(prefix: &str, port: u16, field: &str) -> Option<u64> {
    telemetry(prefix, &format!("/ethdev/stats,{port}"))?["/ethdev/stats"][field].as_u64()
}

/// (rx-packets, tx-packets) of `device`'s row in pmd-app's last counters table.
pub fn app_port_counts(stdout: &str, device: &str) -> (u64, u64) {
    let row = stdout
        .lines()
        .rev()
        .find(|l| l.split_whitespace().nth(2) == Some(device))
        .unwrap_or_else(|| panic!("no counters row for {device}\n{stdout}"));
    let c: Vec<&str> = row.split_whitespace().collect();
    // vport path device port state rx tx ...
    (c[5].parse().unwrap(), c[6].parse().unwrap())
}

/// Asserts that two pcaps hold the same frames in the same order: byte for
/// byte, and as decoded by tshark.
pub fn assert_same_pcap(expected: &str, actual: &str) {
    let a = pcap_frames(expected);
    let b = pcap_frames(actual);
    assert_eq!(a.len(), b.len(), "{actual}: {} frames, expected {}", b.len(), a.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "{actual}: frame {i} differs");
    }
    let f = [
        "frame.len",
        "eth.src",
        "eth.dst",
        "vlan.id",
        "ip.src",
        "ip.dst",
        "ipv6.dst",
        "udp.dstport",
        "tcp.srcport",
        "icmp.ident",
        "arp.dst.proto_ipv4",
    ];
    assert_eq!(tshark_fields(expected, &f), tshark_fields(actual, &f));
}
