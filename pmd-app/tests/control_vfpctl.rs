//! `vfpctl` end to end against a control server with a mock handler:
//! tables, `--json`, `raw`, `top`, and every exit code (0 ok, 1 error
//! reply, 2 usage, 3 cannot connect, 4 protocol error).

mod control_support;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use control_support::{Fixture, Mock, TempDir};
use pmd_app::control::{default_socket_path, Command, DebugOp, Limits, PolicyOp, Server};
use serde_json::{json, Value};

const VFPCTL: &str = env!("CARGO_BIN_EXE_vfpctl");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

fn vfpctl(sock: &Path, args: &[&str]) -> Run {
    Process::new(VFPCTL)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap()
        .into()
}

/// Run and expect success; returns stdout.
fn ok(fx: &Fixture, args: &[&str]) -> String {
    let r = vfpctl(&fx.sock(), args);
    assert_eq!(r.code, 0, "vfpctl {args:?}: {}{}", r.stdout, r.stderr);
    r.stdout
}

fn has_all(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "missing {w:?} in:\n{text}");
    }
}

#[test]
fn tables() {
    let fx = Fixture::start();
    let status = ok(&fx, &["status"]);
    has_all(
        &status,
        &[
            "pmd-app 0.1.0 (protocol 1), up 1h02m05s",
            "mode pipeline, 3 workers on lcores 1,2,3",
            "VPORT",
            "ROLE",
            "ACTIVE",
            "MODE",
            "FAST",
            "SOFT",
            "net_tap0 (port 0, up)",
            "net_ring1 (port 3, up)",
            "0000:03:00.1 (port 4, faulty, retry in 1.8 s)",
        ],
    );
    let ports = ok(&fx, &["ports"]);
    has_all(
        &ports,
        &[
            "PORT",
            "DEVICE",
            "VPORT",
            "PATH",
            "STATE",
            "LINK",
            "SPEED",
            "RXQ",
            "TXQ",
            "MAC",
            "MTU",
            "10G",
            "02:00:00:00:00:01",
        ],
    );
    assert_eq!(ports.lines().count(), 3);
    let stats = ok(&fx, &["stats"]);
    has_all(
        &stats,
        &[
            "mbufs 1536 / 16384 in use (9.4%)",
            "RX PPS",
            "TX GBPS",
            "CYC/PKT",
            "IDLE",
            "FLOWS",
            "DROPS",
            "1.25M",
            "fast*",
            "41%",
            "policy_deny",
            "link down",
            "RX NOMBUF",
            "TX ERRORS",
        ],
    );
    let device_row = stats
        .lines()
        .find(|l| l.starts_with("wan") && l.contains(" 12 "))
        .unwrap_or_else(|| panic!("no device drops row for wan/fast\n{stats}"));
    assert_eq!(
        device_row.split_whitespace().collect::<Vec<_>>(),
        ["wan", "fast", "0", "12", "0", "3"],
        "{stats}"
    );
    let flows = ok(&fx, &["flows"]);
    has_all(
        &flows,
        &[
            "ID",
            "VPORT",
            "DIR",
            "PROTO",
            "SRC",
            "DST",
            "STATE",
            "PACKETS",
            "BYTES",
            "IDLE_S",
            "93.184.216.34:443",
        ],
    );
    assert_eq!(ok(&fx, &["flows", "count"]), "2 flows\n");
    assert_eq!(ok(&fx, &["flows", "flush", "--vport", "wan"]), "flushed 2 flows\n");
    has_all(&ok(&fx, &["flows", "show", "17"]), &["state", "established"]);
    has_all(
        &ok(&fx, &["policy"]),
        &[
            "policy generation 3 from /etc/vfp/policy.toml",
            "NAME",
            "RULES",
            "acl",
            "nat",
        ],
    );
    assert_eq!(ok(&fx, &["log-level"]), "log level: info\n");
    assert_eq!(ok(&fx, &["log-level", "debug"]), "log level: debug\n");
    assert_eq!(
        ok(&fx, &["switch", "wan", "soft"]),
        "wan: active path soft (pinned), took 183 us\n"
    );
    assert_eq!(ok(&fx, &["shutdown"]), "shutting down\n");
}

#[test]
fn arguments_reach_the_handler() {
    let fx = Fixture::start();
    ok(
        &fx,
        &[
            "flows", "list", "--src", "10.0.0.2", "--proto", "47", "--limit", "5", "--port", "53",
        ],
    );
    let Some(Command::Flows(q)) = fx.mock.last() else {
        panic!()
    };
    assert_eq!(q.filter.proto, Some(47));
    assert_eq!(q.filter.port, Some(53));
    assert_eq!(q.limit, 5);
    ok(&fx, &["flows", "count", "--proto", "udp"]);
    let Some(Command::Flows(q)) = fx.mock.last() else {
        panic!()
    };
    assert_eq!(q.filter.proto, Some(17));
    // Relative policy paths are made absolute before they are sent.
    let r = Process::new(VFPCTL)
        .current_dir(fx.dir.path())
        .args(["--socket"])
        .arg(fx.sock())
        .args(["policy", "load", "p.toml"])
        .output()
        .unwrap();
    assert!(r.status.success());
    assert_eq!(
        fx.mock.last(),
        Some(Command::Policy(PolicyOp::Load {
            file: fx.dir.path().join("p.toml")
        }))
    );
    ok(&fx, &["debug", "plug", "net_tap0", "iface=tap9"]);
    assert_eq!(
        fx.mock.last(),
        Some(Command::Debug(DebugOp::Plug {
            device: "net_tap0".into(),
            devargs: Some("iface=tap9".into())
        }))
    );
    // Global options may follow the subcommand.
    let r = Process::new(VFPCTL)
        .args(["status", "--json", "--socket"])
        .arg(fx.sock())
        .output()
        .unwrap();
    assert!(r.status.success());
}

#[test]
fn json_output_is_the_result() {
    let fx = Fixture::start();
    let parse = |s: String| serde_json::from_str::<Value>(&s).unwrap();
    assert_eq!(parse(ok(&fx, &["--json", "status"])), control_support::status());
    assert_eq!(parse(ok(&fx, &["--json", "ports"])), control_support::ports());
    assert_eq!(parse(ok(&fx, &["--json", "stats"])), control_support::stats());
    assert_eq!(parse(ok(&fx, &["--json", "flows"]))["count"], json!(2));
    assert_eq!(
        parse(ok(&fx, &["--json", "policy", "validate", "/p.toml"]))["valid"],
        json!(true)
    );
    assert_eq!(
        parse(ok(&fx, &["--json", "debug", "unplug", "net_tap0"])),
        json!({"device": "net_tap0", "op": "unplug"})
    );
}

#[test]
fn error_replies_exit_1() {
    let fx = Fixture::start();
    let r = vfpctl(&fx.sock(), &["switch", "nope", "fast"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "error (not_found): no vport named \"nope\"\n");
    assert!(r.stdout.is_empty());
    let r = vfpctl(&fx.sock(), &["policy", "validate", "/bad.toml"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "error (invalid_argument): /bad.toml:3: unknown action \"dorp\"\n"
    );
    let r = vfpctl(&fx.sock(), &["debug", "unplug", "net_fail0"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("error (failed): "), "{}", r.stderr);
}

#[test]
fn raw_requests() {
    let fx = Fixture::start();
    let r = vfpctl(&fx.sock(), &["raw", "{\n \"id\": \"x\",\n \"cmd\": \"log-level\"\n}"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let reply: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        reply,
        json!({"v": 1, "id": "x", "ok": true, "result": {"level": "info"}})
    );
    let r = vfpctl(&fx.sock(), &["raw", "{not json"]);
    assert_eq!(r.code, 1);
    let reply: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(reply["error"]["code"], json!("parse_error"));
    let r = vfpctl(&fx.sock(), &["raw", r#"{"cmd":"teleport"}"#]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("unknown_command"));
}

#[test]
fn top_refreshes() {
    let fx = Fixture::start();
    let out = ok(&fx, &["top", "--count", "2", "--interval", "0.05"]);
    assert_eq!(out.matches("vfpctl top: ").count(), 2, "{out}");
    assert_eq!(out.matches("LCORE").count(), 2);
    has_all(&out, &["refresh 1", "refresh 2", "CYC/PKT", "fast*"]);
    assert!(!out.contains('\x1b'), "no clear codes without a tty");
    let out = ok(&fx, &["--json", "top", "--count", "3", "--interval", "0.01"]);
    assert_eq!(out.lines().count(), 3);
    for line in out.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
}

/// An interval longer than the instance's idle timeout: the server drops
/// the connection between refreshes, and `top` connects again.
#[test]
fn top_outlives_the_idle_timeout() {
    let fx = Fixture::with_limits(Limits {
        idle_timeout: Duration::from_millis(100),
        ..Limits::default()
    });
    let out = ok(&fx, &["--json", "top", "--count", "3", "--interval", "0.4"]);
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn usage_errors_exit_2() {
    let fx = Fixture::start();
    for args in [
        &["switch", "wan", "warp"][..],
        &["flows", "show"],
        &["flows", "list", "7"],
        &["flows", "--limit", "0"],
        &["log-level", "loud"],
        &["--timeout", "-1", "status"],
        &["bogus"],
        &[],
    ] {
        let r = vfpctl(&fx.sock(), args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
    let r = Process::new(VFPCTL)
        .args(["--socket", "/x", "--prefix", "y", "status"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let help = Process::new(VFPCTL).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    has_all(&help, &["Exit status:", "3  cannot connect"]);
}

#[test]
fn cannot_connect_exits_3() {
    let dir = TempDir::new();
    let r = vfpctl(&dir.sock(), &["status"]);
    assert_eq!(r.code, 3);
    has_all(&r.stderr, &[&dir.sock().display().to_string(), "no such socket"]);
    drop(UnixListener::bind(dir.sock()).unwrap());
    let r = vfpctl(&dir.sock(), &["status"]);
    assert_eq!(r.code, 3);
    has_all(&r.stderr, &["connection refused"]);
    // A path that is no socket at all (connect says "refused" there too).
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let r = vfpctl(&file, &["status"]);
    assert_eq!(r.code, 3);
    has_all(
        &r.stderr,
        &[&file.display().to_string(), "not a socket (check --socket)"],
    );
}

/// A listener that answers every line with `reply` (None: never answers).
fn fake_server(dir: &TempDir, reply: Option<&'static str>) -> PathBuf {
    let listener = UnixListener::bind(dir.sock()).unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut writer = stream.try_clone().unwrap();
            let mut lines = BufReader::new(stream).lines();
            while let Some(Ok(_)) = lines.next() {
                match reply {
                    Some(r) => {
                        let _ = writer.write_all(r.as_bytes());
                    }
                    None => thread::park(),
                }
            }
        }
    });
    dir.sock()
}

#[test]
fn protocol_errors_exit_4() {
    let garbage = TempDir::new();
    let sock = fake_server(&garbage, Some("this is not json\n"));
    let r = vfpctl(&sock, &["status"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("invalid reply"), "{}", r.stderr);

    let wrong = TempDir::new();
    let sock = fake_server(&wrong, Some("{\"v\":2,\"id\":1,\"ok\":true,\"result\":{}}\n"));
    let r = vfpctl(&sock, &["status"]);
    assert_eq!(r.code, 4);
    assert!(r.stderr.contains("protocol version 2"), "{}", r.stderr);

    let silent = TempDir::new();
    let sock = fake_server(&silent, None);
    let r = vfpctl(&sock, &["--timeout", "0.3", "status"]);
    assert_eq!(r.code, 4);
    assert!(r.stderr.contains("no reply within"), "{}", r.stderr);
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective uid.
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Run the binary as `nobody:nogroup` with no supplementary groups.
fn vfpctl_as_nobody(dir: &TempDir, sock: &Path) -> Run {
    // The build directory may not be reachable for nobody: put the binary
    // in the (world-traversable) temp dir. A hard link opens no file for
    // writing; a copy does, and a concurrent test's fork can inherit that
    // descriptor for a moment, making exec fail with ETXTBSY: retry then.
    let bin = dir.path().join("vfpctl");
    if !bin.exists() && fs::hard_link(VFPCTL, &bin).is_err() {
        fs::copy(VFPCTL, &bin).unwrap();
    }
    for _ in 0..50 {
        let r: Run = Process::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&bin)
            .arg("--socket")
            .arg(sock)
            .arg("status")
            .output()
            .unwrap()
            .into();
        if !r.stderr.contains("Text file busy") {
            return r;
        }
        thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{} stayed busy", bin.display());
}

#[test]
fn permission_denied_for_other_users() {
    if !is_root() {
        eprintln!("skipped: needs root to run vfpctl as nobody");
        return;
    }
    let fx = Fixture::start();
    let r = vfpctl_as_nobody(&fx.dir, &fx.sock());
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    has_all(&r.stderr, &["permission denied", &fx.sock().display().to_string()]);

    // With a control socket group, members get in.
    let dir = TempDir::new();
    let sock = dir.sock();
    let _h = Server::bind(&sock, Some("nogroup"))
        .unwrap()
        .spawn(Arc::new(Mock::default()))
        .unwrap();
    let r = vfpctl_as_nobody(&dir, &sock);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("VPORT"));
}

#[test]
fn prefix_selects_the_default_socket() {
    if !is_root() {
        eprintln!("skipped: needs root to create {}", default_socket_path("x").display());
        return;
    }
    let prefix = format!("vfpctl-test-{}", std::process::id());
    let path = default_socket_path(&prefix);
    let h = Server::bind(&path, None)
        .unwrap()
        .spawn(Arc::new(Mock::default()))
        .unwrap();
    let r: Run = Process::new(VFPCTL)
        .args(["--prefix", &prefix, "log-level"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    drop(h);
    assert!(!path.exists());
}
