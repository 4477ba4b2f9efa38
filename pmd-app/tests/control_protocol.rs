//! The control socket server against a mock handler: framing, envelope and
//! argument validation, concurrency, timeouts, socket file ownership and
//! permissions. No DPDK involved.

mod control_support;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use control_support::{Fixture, Mock, TempDir};
use pmd_app::control::{
    Client, ClientError, Command, DebugOp, ErrorCode, FlowFilter, FlowsOp, FlowsQuery, Limits, PathChoice, PolicyOp,
    Server,
};
use serde_json::{json, Value};

/// Send one raw line on a fresh connection and return the reply object.
fn raw(fx: &Fixture, line: &str) -> Value {
    Client::connect(fx.sock()).unwrap().call_raw(line).unwrap()
}

fn error_code(reply: &Value) -> &str {
    assert_eq!(reply["ok"], json!(false), "expected an error reply: {reply}");
    reply["error"]["code"].as_str().unwrap()
}

#[test]
fn every_command_reaches_the_handler_typed() {
    let fx = Fixture::start();
    let mut c = Client::connect(fx.sock()).unwrap();
    let cases: Vec<(&str, Value, Command)> = vec![
        ("status", json!({}), Command::Status),
        ("ports", Value::Null, Command::Ports),
        (
            "switch",
            json!({"vport": "wan", "path": "soft"}),
            Command::Switch {
                vport: "wan".into(),
                path: PathChoice::Soft,
            },
        ),
        ("stats", json!({}), Command::Stats),
        (
            "flows",
            json!({"op": "list", "limit": 5, "src": "10.0.0.2", "proto": "tcp", "port": 443}),
            Command::Flows(FlowsQuery {
                op: FlowsOp::List,
                filter: FlowFilter {
                    src: Some("10.0.0.2".parse().unwrap()),
                    port: Some(443),
                    proto: Some(6),
                    ..FlowFilter::default()
                },
                limit: 5,
            }),
        ),
        (
            "flows",
            json!({"op": "show", "id": 17}),
            Command::Flows(FlowsQuery {
                op: FlowsOp::Show { id: 17 },
                filter: FlowFilter::default(),
                limit: 100,
            }),
        ),
        ("policy", json!({}), Command::Policy(PolicyOp::Show)),
        (
            "policy",
            json!({"op": "validate", "file": "/p.toml"}),
            Command::Policy(PolicyOp::Validate { file: "/p.toml".into() }),
        ),
        ("log-level", json!({}), Command::LogLevel { level: None }),
        (
            "log-level",
            json!({"level": "trace"}),
            Command::LogLevel {
                level: Some(log::Level::Trace),
            },
        ),
        (
            "debug",
            json!({"op": "unplug", "device": "net_tap0"}),
            Command::Debug(DebugOp::Unplug {
                device: "net_tap0".into(),
            }),
        ),
        ("shutdown", json!({}), Command::Shutdown),
    ];
    for (cmd, args, want) in cases {
        let reply = c.call(cmd, args).unwrap();
        assert!(reply.result.is_ok(), "{cmd}: {:?}", reply.result);
        assert_eq!(fx.mock.last(), Some(want));
    }
}

#[test]
fn argument_validation_over_the_socket() {
    let fx = Fixture::start();
    let mut c = Client::connect(fx.sock()).unwrap();
    use ErrorCode::*;
    let cases: Vec<(&str, Value, ErrorCode)> = vec![
        ("status", json!({"verbose": true}), InvalidArgument),
        ("ports", json!({"x": 1}), InvalidArgument),
        ("stats", json!({"x": 1}), InvalidArgument),
        ("shutdown", json!({"now": true}), InvalidArgument),
        ("switch", json!({"path": "soft"}), MissingArgument),
        ("switch", json!({"vport": "wan"}), MissingArgument),
        ("switch", json!({"vport": "wan", "path": "warp"}), InvalidArgument),
        ("switch", json!({"vport": ["wan"], "path": "fast"}), InvalidArgument),
        ("switch", json!({"vport": "", "path": "fast"}), InvalidArgument),
        ("switch", json!({"vport": "nope", "path": "fast"}), NotFound),
        ("flows", json!({"op": "explode"}), InvalidArgument),
        ("flows", json!({"op": "show"}), MissingArgument),
        ("flows", json!({"op": "show", "id": "17"}), InvalidArgument),
        ("flows", json!({"op": "show", "id": 404}), NotFound),
        (
            "flows",
            json!({"op": "show", "id": 1, "src": "1.2.3.4"}),
            InvalidArgument,
        ),
        ("flows", json!({"op": "count", "id": 1}), InvalidArgument),
        ("flows", json!({"limit": 0}), InvalidArgument),
        ("flows", json!({"limit": 100_001}), InvalidArgument),
        ("flows", json!({"src": "not-an-ip"}), InvalidArgument),
        ("flows", json!({"dst": 7}), InvalidArgument),
        ("flows", json!({"port": 65536}), InvalidArgument),
        ("flows", json!({"proto": "gre!"}), InvalidArgument),
        ("flows", json!({"vport": 3}), InvalidArgument),
        ("policy", json!({"op": "load"}), MissingArgument),
        ("policy", json!({"op": "reload"}), InvalidArgument),
        (
            "policy",
            json!({"op": "validate", "file": "/bad.toml"}),
            InvalidArgument,
        ),
        ("log-level", json!({"level": "verbose"}), InvalidArgument),
        ("log-level", json!({"level": 3}), InvalidArgument),
        ("debug", json!({"device": "net_tap0"}), MissingArgument),
        ("debug", json!({"op": "plug"}), MissingArgument),
        ("debug", json!({"op": "eject", "device": "x"}), InvalidArgument),
        (
            "debug",
            json!({"op": "unplug", "device": "x", "devargs": "y"}),
            InvalidArgument,
        ),
        ("debug", json!({"op": "unplug", "device": "net_missing0"}), NotFound),
        ("debug", json!({"op": "plug", "device": "net_fail0"}), Failed),
        ("frobnicate", json!({}), UnknownCommand),
    ];
    for (cmd, args, want) in cases {
        let reply = c.call(cmd, args.clone()).unwrap();
        match reply.result {
            Err(e) => {
                assert_eq!(e.code, want, "{cmd} {args}: {}", e.message);
                assert!(!e.message.is_empty());
            }
            Ok(v) => panic!("{cmd} {args}: expected {want}, got {v}"),
        }
    }
    // The loader's file:line message reaches the client untouched.
    let e = c
        .call("policy", json!({"op": "load", "file": "/bad.toml"}))
        .unwrap()
        .result
        .unwrap_err();
    assert_eq!(e.message, "/bad.toml:3: unknown action \"dorp\"");
}

#[test]
fn envelope_errors() {
    let fx = Fixture::start();
    let r = raw(&fx, r#"{"cmd": "status""#);
    assert_eq!(error_code(&r), "parse_error");
    assert_eq!(r["id"], Value::Null);
    assert_eq!(r["v"], json!(1));
    assert_eq!(error_code(&raw(&fx, "[1,2]")), "invalid_request");
    assert_eq!(error_code(&raw(&fx, "42")), "invalid_request");
    assert_eq!(error_code(&raw(&fx, r#"{"id": 1}"#)), "invalid_request");
    assert_eq!(error_code(&raw(&fx, r#"{"cmd": ["status"]}"#)), "invalid_request");
    assert_eq!(
        error_code(&raw(&fx, r#"{"cmd": "status", "args": 1}"#)),
        "invalid_request"
    );
    assert_eq!(error_code(&raw(&fx, r#"{"cmd": "status", "v": 9}"#)), "invalid_request");
    assert_eq!(error_code(&raw(&fx, r#"{"cmd": "nope", "id": 3}"#)), "unknown_command");
    // `v: 1` and `args: null` are accepted; unknown top-level keys ignored.
    let r = raw(&fx, r#"{"v": 1, "cmd": "status", "args": null, "trace": "x"}"#);
    assert_eq!(r["ok"], json!(true));
    assert_eq!(r["result"]["workers"], json!(3));
}

#[test]
fn id_is_echoed() {
    let fx = Fixture::start();
    let mut c = Client::connect(fx.sock()).unwrap();
    for id in [json!(7), json!("req-1"), json!(1.5), json!(true), json!(-3)] {
        let line = json!({"id": id, "cmd": "status"}).to_string();
        assert_eq!(c.call_raw(&line).unwrap()["id"], id);
        // Error replies echo it too.
        let line = json!({"id": id, "cmd": "switch"}).to_string();
        let r = c.call_raw(&line).unwrap();
        assert_eq!(r["id"], id);
        assert_eq!(error_code(&r), "missing_argument");
    }
    assert_eq!(c.call_raw(r#"{"cmd":"status"}"#).unwrap()["id"], Value::Null);
    assert_eq!(
        error_code(&c.call_raw(r#"{"cmd":"status","id":{"a":1}}"#).unwrap()),
        "invalid_request"
    );
}

#[test]
fn oversized_request_keeps_the_connection() {
    let fx = Fixture::start();
    let mut s = UnixStream::connect(fx.sock()).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let big = format!(
        "{{\"cmd\":\"status\",\"args\":{{\"pad\":\"{}\"}}}}\n",
        "x".repeat(70 * 1024)
    );
    s.write_all(big.as_bytes()).unwrap();
    s.write_all(b"{\"id\":2,\"cmd\":\"status\"}\n").unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let r: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(error_code(&r), "too_large");
    line.clear();
    reader.read_line(&mut line).unwrap();
    let r: Value = serde_json::from_str(&line).unwrap();
    assert_eq!((r["id"].clone(), r["ok"].clone()), (json!(2), json!(true)));
    // Exactly at the limit is fine (it fails later, as unparsable JSON).
    let exact = "y".repeat(64 * 1024);
    s.write_all(format!("{exact}\n").as_bytes()).unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    let r: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(error_code(&r), "parse_error");
}

#[test]
fn blank_lines_and_crlf() {
    let fx = Fixture::start();
    let mut s = UnixStream::connect(fx.sock()).unwrap();
    s.write_all(b"\n  \r\n{\"id\":1,\"cmd\":\"status\"}\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    let r: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(r["id"], json!(1));
    assert_eq!(r["ok"], json!(true));
}

#[test]
fn unterminated_last_line_is_answered() {
    let fx = Fixture::start();
    let mut s = UnixStream::connect(fx.sock()).unwrap();
    s.write_all(br#"{"id":9,"cmd":"ports"}"#).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let r: Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(r["id"], json!(9));
    assert_eq!(r["result"]["ports"][0]["device"], json!("net_tap0"));
}

#[test]
fn concurrent_clients() {
    let fx = Fixture::start();
    let start = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let sock = fx.sock();
            thread::spawn(move || {
                let mut c = Client::connect(&sock).unwrap();
                if i == 0 {
                    // One slow request must not hold up the others.
                    let r = c.call("switch", json!({"vport": "slow", "path": "fast"})).unwrap();
                    assert!(r.result.is_ok());
                }
                for _ in 0..50 {
                    let r = c.call("status", json!({})).unwrap();
                    assert_eq!(r.result.unwrap()["vports"][0]["name"], json!("wan"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn silent_and_vanished_clients_block_nobody() {
    let fx = Fixture::start();
    // Connected, never sends.
    let _silent = UnixStream::connect(fx.sock()).unwrap();
    // Sends half a request and stays.
    let mut half = UnixStream::connect(fx.sock()).unwrap();
    half.write_all(br#"{"cmd":"sta"#).unwrap();
    // Sends half a request and vanishes.
    let mut gone = UnixStream::connect(fx.sock()).unwrap();
    gone.write_all(br#"{"cmd":"switch","args":{"vp"#).unwrap();
    drop(gone);
    // Sends a request and vanishes without reading the reply.
    let mut rude = UnixStream::connect(fx.sock()).unwrap();
    rude.write_all(b"{\"cmd\":\"stats\"}\n").unwrap();
    drop(rude);
    let start = Instant::now();
    let mut c = Client::connect(fx.sock()).unwrap();
    c.set_timeout(Some(Duration::from_secs(2))).unwrap();
    assert!(c.call("status", json!({})).unwrap().result.is_ok());
    assert!(start.elapsed() < Duration::from_secs(1));
    // Shutdown is not held up by the idle clients either.
    let mut handle = fx.handle;
    let start = Instant::now();
    handle.shutdown();
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_panicking_handler_costs_only_its_connection() {
    let limits = Limits {
        max_clients: 1,
        ..Limits::default()
    };
    let fx = Fixture::with_limits(limits);
    let mut c = Client::connect(fx.sock()).unwrap();
    c.set_timeout(Some(Duration::from_secs(2))).unwrap();
    let err = c.call("switch", json!({"vport": "panic", "path": "fast"})).unwrap_err();
    assert!(matches!(err, ClientError::Closed), "{err}");
    // The slot was released: the single allowed client can connect again.
    let mut d = Client::connect(fx.sock()).unwrap();
    assert!(d.call("status", json!({})).unwrap().result.is_ok());
}

#[test]
fn client_limit() {
    let limits = Limits {
        max_clients: 2,
        ..Limits::default()
    };
    let fx = Fixture::with_limits(limits);
    let mut a = Client::connect(fx.sock()).unwrap();
    let mut b = Client::connect(fx.sock()).unwrap();
    assert!(a.call("status", json!({})).unwrap().result.is_ok());
    assert!(b.call("status", json!({})).unwrap().result.is_ok());
    let mut c = Client::connect(fx.sock()).unwrap();
    let line = c.read_line().unwrap();
    let r: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(error_code(&r), "unavailable");
    assert!(matches!(c.read_line(), Err(ClientError::Closed)));
    // A freed slot is reused.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut d = Client::connect(fx.sock()).unwrap();
        match d.call("status", json!({})) {
            Ok(r) if r.result.is_ok() => break,
            _ if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            other => panic!("slot not freed: {other:?}"),
        }
    }
}

#[test]
fn idle_clients_are_disconnected() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let fx = Fixture::with_limits(limits);
    let mut c = Client::connect(fx.sock()).unwrap();
    assert!(c.call("status", json!({})).unwrap().result.is_ok());
    thread::sleep(Duration::from_millis(500));
    assert!(c.call("status", json!({})).is_err());
    assert_eq!(fx.handle.clients(), 0);
}

/// The idle limit covers a whole request line: a client that trickles an
/// unfinished line, a byte at a time, is disconnected like a silent one
/// instead of keeping its slot.
#[test]
fn a_trickled_unfinished_line_is_disconnected() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let fx = Fixture::with_limits(limits);
    let mut s = UnixStream::connect(fx.sock()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(10), "still connected");
        if s.write_all(b" ").is_err() {
            break;
        }
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => panic!("unexpected reply: {}", String::from_utf8_lossy(&b[..n])),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    assert!(t0.elapsed() >= Duration::from_millis(300));
}

#[test]
fn shutdown_answers_in_flight_then_refuses() {
    let fx = Fixture::start();
    let mut s = UnixStream::connect(fx.sock()).unwrap();
    // A slow request, and a second one already queued behind it.
    s.write_all(b"{\"id\":1,\"cmd\":\"switch\",\"args\":{\"vport\":\"slow\",\"path\":\"soft\"}}\n{\"id\":2,\"cmd\":\"status\"}\n")
        .unwrap();
    thread::sleep(Duration::from_millis(100));
    let mut handle = fx.handle;
    handle.shutdown();
    assert!(!fx.dir.sock().exists(), "socket file removed");
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let replies: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(replies.len(), 2, "{out}");
    assert_eq!(replies[0]["ok"], json!(true));
    assert_eq!(error_code(&replies[1]), "unavailable");
}

/// A client that queued many requests and reads their replies slowly
/// (never slowly enough to hit the write timeout) does not hold the
/// server's shutdown up: after one write timeout its connection is closed,
/// and the client finds end-of-file behind what was already sent.
#[test]
fn a_slow_reader_does_not_hold_up_shutdown() {
    let limits = Limits {
        write_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let fx = Fixture::with_limits(limits);
    let mut s = UnixStream::connect(fx.sock()).unwrap();
    const QUEUED: usize = 4000;
    s.write_all("{\"cmd\":\"status\"}\n".repeat(QUEUED).as_bytes()).unwrap();
    // Answering all of them at 200 bytes every 50 ms would take minutes;
    // once the server is down the rest is read at full speed.
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mut r, done) = (s.try_clone().unwrap(), stopped.clone());
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 200];
        let mut lines = 0;
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => return lines,
                Ok(n) => lines += buf[..n].iter().filter(|b| **b == b'\n').count(),
            }
            if !done.load(std::sync::atomic::Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(50));
            }
        }
    });
    let wait = Instant::now();
    while fx.mock.last().is_none() {
        assert!(
            wait.elapsed() < Duration::from_secs(10),
            "no request reached the handler"
        );
        thread::sleep(Duration::from_millis(1));
    }
    let t0 = Instant::now();
    let mut handle = fx.handle;
    handle.shutdown();
    let took = t0.elapsed();
    stopped.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    let replies = reader.join().unwrap();
    assert!(replies > 0 && replies < QUEUED, "{replies} replies");
}

#[test]
fn shutdown_command_reply_is_delivered() {
    let fx = Fixture::start();
    let signalled = fx.mock.on_shutdown();
    let sock = fx.sock();
    let caller = thread::spawn(move || {
        let mut c = Client::connect(&sock).unwrap();
        c.call("shutdown", json!({})).unwrap()
    });
    // What the application does: the handler signals, main shuts down.
    signalled.recv_timeout(Duration::from_secs(2)).unwrap();
    let mut handle = fx.handle;
    handle.shutdown();
    let reply = caller.join().unwrap();
    assert_eq!(reply.result.unwrap(), json!({"shutting_down": true}));
    let err = Client::connect(fx.dir.sock()).err().unwrap();
    assert_eq!(err.exit_code(), 3);
}

#[test]
fn socket_file_mode_and_removal() {
    let dir = TempDir::new();
    let path = dir.sock();
    let handle = Server::bind(&path, None)
        .unwrap()
        .spawn(Arc::new(Mock::default()))
        .unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(handle.path(), path);
    // Nothing but the socket is left in the directory (no staging dirs).
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    drop(handle);
    assert!(!path.exists(), "Drop removes the socket file");
}

#[test]
fn socket_group_mode() {
    let dir = TempDir::new();
    let path = dir.sock();
    let _h = Server::bind(&path, Some("nogroup"))
        .unwrap()
        .spawn(Arc::new(Mock::default()))
        .unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 65534);
    let err = Server::bind(&dir.path().join("b.sock"), Some("no-such-group-vfp")).unwrap_err();
    assert!(err.to_string().contains("no-such-group-vfp"), "{err}");
}

#[test]
fn parent_directory_is_created() {
    let dir = TempDir::new();
    let path = dir.path().join("run/vfp/rte.sock");
    let h = Server::bind(&path, None)
        .unwrap()
        .spawn(Arc::new(Mock::default()))
        .unwrap();
    assert!(Client::connect(&path).unwrap().call("status", json!({})).is_ok());
    drop(h);
}

#[test]
fn stale_socket_is_replaced() {
    let dir = TempDir::new();
    let path = dir.sock();
    // What a crashed run leaves: a socket file nobody listens on.
    drop(UnixListener::bind(&path).unwrap());
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    let err = UnixStream::connect(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let _h = Server::bind(&path, None)
        .unwrap()
        .spawn(Arc::new(Mock::default()))
        .unwrap();
    let r = Client::connect(&path).unwrap().call("status", json!({})).unwrap();
    assert!(r.result.is_ok());
}

#[test]
fn live_socket_is_not_stolen() {
    let fx = Fixture::start();
    let err = Server::bind(&fx.sock(), None).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(
        err.to_string(),
        format!("control socket {} is in use by a running instance", fx.sock().display())
    );
    let r = Client::connect(fx.sock()).unwrap().call("status", json!({})).unwrap();
    assert!(r.result.is_ok(), "the first instance still serves");
}

#[test]
fn non_socket_file_is_left_alone() {
    let dir = TempDir::new();
    let path = dir.sock();
    fs::write(&path, "precious").unwrap();
    let err = Server::bind(&path, None).unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn replaced_socket_file_is_not_removed_by_the_old_server() {
    let fx = Fixture::start();
    let path = fx.sock();
    // Someone removes our file and a new instance binds the path.
    fs::remove_file(&path).unwrap();
    let newer = Server::bind(&path, None)
        .unwrap()
        .spawn(Arc::new(Mock::default()))
        .unwrap();
    drop(fx.handle);
    assert!(path.exists(), "the old server must not remove the new socket");
    drop(newer);
    assert!(!path.exists());
}

#[test]
fn connect_errors_name_the_path_and_cause() {
    let dir = TempDir::new();
    let err = Client::connect(dir.sock()).err().unwrap();
    assert_eq!(err.exit_code(), 3);
    let msg = err.to_string();
    assert!(msg.contains(&dir.sock().display().to_string()), "{msg}");
    assert!(msg.contains("no such socket"), "{msg}");
    drop(UnixListener::bind(dir.sock()).unwrap());
    let msg = Client::connect(dir.sock()).err().unwrap().to_string();
    assert!(msg.contains("connection refused"), "{msg}");
}

#[test]
fn client_timeout() {
    let dir = TempDir::new();
    // A listener that accepts but never answers.
    let listener = UnixListener::bind(dir.sock()).unwrap();
    let mut c = Client::connect(dir.sock()).unwrap();
    let _peer = listener.accept().unwrap();
    c.set_timeout(Some(Duration::from_millis(200))).unwrap();
    let err = c.call("status", json!({})).unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    assert_eq!(err.exit_code(), 4);
}
