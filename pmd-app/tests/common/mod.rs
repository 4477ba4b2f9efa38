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
    format!("vfpt-{name}-{}", std::process::id())
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

/// Waits for `child`, killing it (and failing the test) after `limit`.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let s = child.wait().unwrap();
            let o = Output {
                status: s,
                stdout: out.join().unwrap(),
                stderr: err.join().unwrap(),
            };
            panic!("process did not finish within {limit:?}\n{}", o.all());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
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
    let mounted = std::fs::read_to_string("/proc/mounts")
        .map(|m| m.contains("hugetlbfs"))
        .unwrap_or(false);
    n >= 256 && mounted
}

/// A running app under its control socket, followed helper processes.
pub mod live;
/// Real-kernel plumbing: namespaces, bridges, veths and taps around the app.
pub mod netns;
