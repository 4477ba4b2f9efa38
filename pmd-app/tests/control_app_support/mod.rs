//! Shared by the tests that drive the real `pmd-app` through its control
//! socket (`control_app*.rs`): start an app on DPDK virtual devices and
//! wait until its socket answers, run `vfpctl` (also as `nobody`), speak
//! raw JSON lines, poll for a condition with a deadline, and read results.
#![allow(dead_code)]

use crate::common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const VFPCTL: &str = env!("CARGO_BIN_EXE_vfpctl");
/// Bound on every wait: start-up, a condition, an exit. Generous, since
/// two shared cores carry several busy-polling apps.
pub const LIMIT: Duration = Duration::from_secs(90);

/// A running pmd-app; killed (SIGKILL) if the test ends without `finish`.
pub struct App {
    pub child: Child,
    pub out: Option<JoinHandle<String>>,
    pub err: Option<JoinHandle<String>>,
    pub sock: PathBuf,
    pub prefix: String,
}

pub fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

impl App {
    /// Starts `pmd-app` on lcore 0 with `vdevs`, the control socket `sock`
    /// and `args`, without waiting for it.
    pub fn spawn(tag: &str, vdevs: &[String], sock: &Path, args: &[String]) -> App {
        let mut eal = eal_base(tag, "0");
        for v in vdevs {
            eal.push("--vdev".into());
            eal.push(v.clone());
        }
        let mut app = vec!["--control-socket".to_string(), sock.to_string_lossy().into_owned()];
        app.extend_from_slice(args);
        let mut child = spawn_app(&eal, &app);
        App {
            out: Some(drain(child.stdout.take().unwrap())),
            err: Some(drain(child.stderr.take().unwrap())),
            child,
            sock: sock.to_path_buf(),
            prefix: prefix(tag),
        }
    }

    /// Starts it and waits until its control socket answers `status`.
    pub fn start(tag: &str, vdevs: &[String], sock: &Path, args: &[String]) -> App {
        let mut app = App::spawn(tag, vdevs, sock, args);
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(st) = app.child.try_wait().unwrap() {
                panic!(
                    "pmd-app exited ({st}) before its control socket answered\n{}",
                    app.collect(st).all()
                );
            }
            if let Ok(mut c) = Conn::open(sock) {
                if c.call(r#"{"cmd":"status"}"#)["ok"] == true {
                    return app;
                }
            }
            assert!(
                Instant::now() < deadline,
                "control socket {} never answered",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn collect(&mut self, status: std::process::ExitStatus) -> Output {
        Output {
            status,
            stdout: self.out.take().map(|h| h.join().unwrap()).unwrap_or_default(),
            stderr: self.err.take().map(|h| h.join().unwrap()).unwrap_or_default(),
        }
    }

    /// Waits for the app to exit by itself.
    pub fn finish(mut self) -> Output {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return self.collect(st);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let st = self.child.wait().unwrap();
                panic!("pmd-app did not exit within {LIMIT:?}\n{}", self.collect(st).all());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no clean-up at all, like a crash.
    pub fn kill(mut self) -> Output {
        self.child.kill().unwrap();
        let st = self.child.wait().unwrap();
        self.collect(st)
    }

    pub fn ctl(&self, args: &[&str]) -> Run {
        vfpctl(&self.sock, args)
    }

    /// `vfpctl ARGS` must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.ctl(args);
        assert_eq!(r.code, 0, "vfpctl {args:?} failed: {}", r.all());
        r.stdout
    }

    /// `vfpctl --json ARGS` must succeed; its result.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("vfpctl {a:?}: not JSON ({e}): {out}"))
    }

    /// `vfpctl ARGS` must fail with `error (CODE): ...` and exit 1; the message.
    pub fn err(&self, args: &[&str], code: &str) -> String {
        let r = self.ctl(args);
        assert_eq!(r.code, 1, "vfpctl {args:?}: expected an error reply: {}", r.all());
        let prefix = format!("error ({code}): ");
        assert!(r.stderr.starts_with(&prefix), "vfpctl {args:?}: {}", r.all());
        r.stderr[prefix.len()..].trim_end().to_string()
    }

    /// A `stats` result (JSON).
    pub fn stats(&self) -> Value {
        self.json(&["stats"])
    }

    /// `vfpctl shutdown`, then the app must exit 0 with every mbuf back
    /// and its socket file gone.
    pub fn shutdown(self) -> Output {
        assert_eq!(self.ok(&["shutdown"]), "shutting down\n");
        let sock = self.sock.clone();
        let o = self.finish();
        assert_eq!(o.code(), 0, "{}", o.all());
        assert!(o.stdout.contains("mbufs: all"), "{}", o.all());
        assert!(!sock.exists(), "{} left behind after shutdown", sock.display());
        o
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A scratch directory others may traverse (the `nobody` tests reach the
/// socket inside it).
pub fn scratch(tag: &str) -> Scratch {
    let d = Scratch::new(tag);
    std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

pub fn s(v: &[&str]) -> Vec<String> {
    strings(v)
}

/// Traffic both ways: the vm vport replays a pcap forever on its fast
/// path (net_null no-rx as soft); the wan vport has two loopback rings, so
/// what the app sends on a wan path comes back on that same path's rx.
/// Without a policy (forward mode) the pcap holds 16 UDP flows; with one
/// (pipeline mode, the acl-snat-vxlan example) it holds the six VM flows of
/// `vm_flows.py`, SNATed and VXLAN-encapsulated towards wan (what loops
/// back is denied inbound and counted as dropped).
pub fn traffic_app(tag: &str, d: &Scratch, with_policy: bool) -> App {
    let mut args = s(&[
        "--vport",
        "name=vm,fast=net_pcap0,soft=net_null0,role=vm",
        "--vport",
        "name=wan,fast=net_ring0,soft=net_ring1,role=net",
    ]);
    let pcap = if with_policy {
        args.extend(s(&["--policy", &long_lived_policy(d)]));
        vm_flows_pcap(d)
    } else {
        let pcap = d.path("flows.pcap");
        traffic(&["udp-flows", &pcap, "--flows", "16", "--count", "64"]);
        pcap
    };
    App::start(
        tag,
        &s(&[
            &format!("net_pcap0,rx_pcap={pcap},infinite_rx=1"),
            "net_null0,no-rx=1",
            "net_ring0",
            "net_ring1",
        ]),
        &d.0.join("ctl.sock"),
        &args,
    )
}

/// The six VM flows of tests/helpers/vm_flows.py, one packet each.
pub fn vm_flows_pcap(d: &Scratch) -> String {
    let pcap = d.path("vm.pcap");
    let st = Command::new("/usr/bin/python3")
        .arg(repo_root().join("tests/helpers/vm_flows.py"))
        .arg(&pcap)
        .status()
        .unwrap();
    assert!(st.success(), "vm_flows.py failed");
    pcap
}

/// An app with no traffic at all (two paired sinks), for socket tests.
pub fn idle_app(tag: &str, sock: &Path, extra: &[&str]) -> App {
    App::start(tag, &s(&["net_null0,no-rx=1", "net_null1,no-rx=1"]), sock, &s(extra))
}

// ---------------------------------------------------------------- clients

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let o = cmd.stdin(Stdio::null()).output().expect("run vfpctl");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn vfpctl(sock: &Path, args: &[&str]) -> Run {
    run(Command::new(VFPCTL)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .current_dir(repo_root()))
}

/// `vfpctl` as `nobody` with primary group `gid` and no other groups.
pub fn vfpctl_as_nobody(gid: &str, sock: &Path, args: &[&str]) -> Run {
    run(Command::new("setpriv")
        .args(["--reuid=nobody", &format!("--regid={gid}"), "--clear-groups", VFPCTL])
        .arg("--socket")
        .arg(sock)
        .args(args))
}

/// A raw connection: bytes out, reply lines in (no client library).
pub struct Conn {
    pub r: BufReader<UnixStream>,
    pub w: UnixStream,
}

impl Conn {
    pub fn open(sock: &Path) -> std::io::Result<Conn> {
        let w = UnixStream::connect(sock)?;
        w.set_read_timeout(Some(LIMIT))?;
        Ok(Conn {
            r: BufReader::new(w.try_clone()?),
            w,
        })
    }
    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }
    pub fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.r.read_line(&mut line).expect("read a reply line");
        assert!(
            n > 0 && line.ends_with('\n'),
            "connection closed without a reply line: {line:?}"
        );
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line}"));
        assert_eq!(v["v"], 1, "{v}");
        v
    }
    /// One request line and its reply.
    pub fn call(&mut self, line: &str) -> Value {
        self.send(format!("{line}\n").as_bytes());
        self.recv()
    }
}

/// The error code of a failed reply (panics on success).
pub fn code(reply: &Value) -> &str {
    assert_eq!(reply["ok"], false, "expected an error reply: {reply}");
    reply["error"]["code"].as_str().unwrap()
}

/// Polls `f` until it returns Some, failing after LIMIT.
pub fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------- results

pub fn vport<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["vports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vport {name} in {status}"))
}

/// A path counter from a `stats` result.
pub fn counter(stats: &Value, vp: &str, path: &str, field: &str) -> u64 {
    vport(stats, vp)["paths"][path][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {vp}.{path}.{field} in {stats}"))
}

/// (rx, tx) packets of every path, keyed "vport.path".
pub fn path_counters(stats: &Value) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    for v in stats["vports"].as_array().unwrap() {
        for p in ["fast", "soft"] {
            let name = v["name"].as_str().unwrap();
            out.push((
                format!("{name}.{p}"),
                counter(stats, name, p, "rx_packets"),
                counter(stats, name, p, "tx_packets"),
            ));
        }
    }
    out
}

/// DPDK's own counters of `port` (telemetry `/ethdev/stats`): an oracle
/// independent of the app's.
pub fn ethdev(app: &App, port: u64) -> Value {
    let script = repo_root().join("tests/helpers/telemetry.py");
    let o = Command::new("/usr/bin/python3")
        .arg(script)
        .args([&app.prefix, "stats", &port.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "telemetry: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The reply to any DPDK telemetry command, e.g. `/vfp/stats`.
pub fn telemetry(app: &App, cmd: &str) -> Value {
    let script = repo_root().join("tests/helpers/telemetry.py");
    let o = Command::new("/usr/bin/python3")
        .arg(script)
        .args([&app.prefix, "cmd", cmd])
        .output()
        .unwrap();
    assert!(o.status.success(), "telemetry: {}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v[cmd].clone()
}

pub fn opackets(app: &App, port: u64) -> u64 {
    ethdev(app, port)["opackets"].as_u64().unwrap()
}

pub fn lines_with<'a>(text: &'a str, word: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.split_whitespace().any(|w| w == word))
        .collect()
}

pub fn has_all(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "missing {w:?} in:\n{text}");
    }
}

/// The acl-snat-vxlan example with idle timeouts long enough that no flow
/// of the test expires while it runs, however slow the machine.
pub fn long_lived_policy(d: &Scratch) -> String {
    let text = std::fs::read_to_string(repo_root().join("examples/acl-snat-vxlan.toml")).unwrap();
    let text = text
        .replace("[timeouts]\n", "[timeouts]\ntcp_syn = 3600\nicmp = 3600\n")
        .replace("udp = 60", "udp = 3600");
    assert!(text.contains("tcp_syn = 3600") && text.contains("udp = 3600"));
    let path = d.path("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}
