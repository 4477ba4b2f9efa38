//! The real `pmd-app`'s control socket as a file and a shared service
//! (issue 7): mode 0600 root-only by default and 0660 with
//! `--control-socket-group`, checked by running `vfpctl` as `nobody`; a
//! stale socket left by a killed instance is replaced while a live one is
//! never stolen; several clients at once are all answered while one of
//! them switches paths; the threads serving the socket run off the CPU
//! the worker busy-polls.

mod common;
mod control_app_support;

use control_app_support::*;
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;

#[test]
fn socket_access_is_root_only_unless_a_group_is_given() {
    let d = scratch("ctlperm");
    let sock = d.0.join("ctl.sock");
    let app = idle_app("ctlperm", &sock, &[]);
    let meta = std::fs::metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!((meta.mode() & 0o777, meta.uid()), (0o600, 0));
    let r = vfpctl_as_nobody("nogroup", &sock, &["status"]);
    assert_eq!(r.code, 3, "{}", r.all());
    has_all(&r.stderr, &[&sock.display().to_string(), "permission denied"]);
    // The same for a raw request: nothing reaches the instance.
    let r = vfpctl_as_nobody("nogroup", &sock, &["raw", r#"{"cmd":"shutdown"}"#]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert_eq!(app.json(&["status"])["mode"], "forward", "root still gets in");
    app.shutdown();

    // --control-socket-group: 0660 and that group; its members get in,
    // others still do not.
    let sock = d.0.join("grp.sock");
    let app = idle_app("ctlperm2", &sock, &["--control-socket-group", "nogroup"]);
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.uid(), meta.gid()), (0o660, 0, 65534));
    let r = vfpctl_as_nobody("nogroup", &sock, &["--json", "status"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let st: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(st["protocol"], 1);
    let r = vfpctl_as_nobody("4242", &sock, &["status"]);
    assert_eq!(r.code, 3, "{}", r.all());
    has_all(&r.stderr, &[&sock.display().to_string(), "permission denied"]);
    // A group member may operate it, shutdown included.
    let r = vfpctl_as_nobody("nogroup", &sock, &["shutdown"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let o = app.finish();
    assert_eq!(o.code(), 0, "{}", o.all());
    assert!(!sock.exists());

    // A group that does not exist is a clear start-up error.
    let sock = d.0.join("nogrp.sock");
    let mut app = App::spawn(
        "ctlperm3",
        &s(&["net_null0,no-rx=1", "net_null1,no-rx=1"]),
        &sock,
        &s(&["--control-socket-group", "no-such-group-vfp"]),
    );
    let o = {
        let st = poll("the app to fail", || app.child.try_wait().unwrap());
        app.collect(st)
    };
    assert_eq!(o.code(), 1, "{}", o.all());
    has_all(&o.stderr, &["no-such-group-vfp", "does not exist"]);
    assert!(!sock.exists());
}

#[test]
fn stale_socket_is_replaced_and_live_one_is_not_stolen() {
    let d = scratch("ctlstale");
    let sock = d.0.join("ctl.sock");

    // A crashed instance (SIGKILL) leaves its socket file behind.
    let a = idle_app("ctlstale1", &sock, &[]);
    a.kill();
    assert!(std::fs::symlink_metadata(&sock).unwrap().file_type().is_socket());
    let r = vfpctl(&sock, &["status"]);
    assert_eq!(r.code, 3, "{}", r.all());
    has_all(&r.stderr, &[&sock.display().to_string(), "connection refused"]);
    // The next start replaces it.
    let b = idle_app("ctlstale2", &sock, &[]);
    assert_eq!(b.json(&["status"])["protocol"], 1);
    let o = b.shutdown();
    assert!(o.stderr.contains("replacing stale control socket"), "{}", o.all());

    // A socket file whose listener was closed (bound, never unlinked).
    drop(UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let b = idle_app("ctlstale3", &sock, &[]);

    // A live instance's socket is not stolen: a second app on the same
    // path fails clearly and the first keeps answering.
    let c = App::spawn("ctlstale4", &s(&["net_null0,no-rx=1", "net_null1,no-rx=1"]), &sock, &[]);
    let o = c.finish();
    assert_eq!(o.code(), 1, "{}", o.all());
    // Said once, not "control socket P: control socket P is in use".
    let line = format!(
        "pmd-app: error: control socket {} is in use by a running instance\n",
        sock.display()
    );
    assert!(o.stderr.ends_with(&line), "{}", o.all());
    assert!(!o.stderr.contains("panicked"), "{}", o.all());
    assert_eq!(b.json(&["status"])["protocol"], 1);
    assert!(sock.exists());
    b.shutdown();

    // A path that is not a socket is never touched.
    std::fs::write(&sock, "keep me").unwrap();
    let c = App::spawn("ctlstale5", &s(&["net_null0,no-rx=1", "net_null1,no-rx=1"]), &sock, &[]);
    let o = c.finish();
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(o.stderr.contains("is not a socket"), "{}", o.all());
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "keep me");
}
#[test]
fn concurrent_clients_are_all_answered_while_one_switches() {
    let d = scratch("ctlconc");
    let app = traffic_app("ctlconc", &d, false);
    let sock = app.sock.clone();
    const ROUNDS: usize = 25;
    let mut readers = Vec::new();
    for t in 0..4 {
        let sock = sock.clone();
        readers.push(std::thread::spawn(move || {
            let mut c = Conn::open(&sock).unwrap();
            let mut last_rx = 0;
            for i in 0..ROUNDS {
                let cmd = if (i + t) % 2 == 0 { "stats" } else { "status" };
                let id = format!("r{t}-{i}");
                let r = c.call(&json!({"id": id, "cmd": cmd}).to_string());
                assert_eq!((&r["ok"], &r["id"]), (&json!(true), &json!(id)), "{r}");
                if cmd == "stats" {
                    // Counters only grow.
                    let rx = r["result"]["lcores"][0]["rx_packets"].as_u64().unwrap();
                    assert!(rx >= last_rx, "{rx} < {last_rx}");
                    last_rx = rx;
                } else {
                    let a = vport(&r["result"], "wan")["active"].as_str().unwrap().to_string();
                    assert!(a == "fast" || a == "soft", "{r}");
                }
            }
        }));
    }
    // One more client through vfpctl processes.
    let vsock = sock.clone();
    readers.push(std::thread::spawn(move || {
        for _ in 0..5 {
            let r = vfpctl(&vsock, &["--json", "stats"]);
            assert_eq!(r.code, 0, "{}", r.all());
            assert!(serde_json::from_str::<Value>(&r.stdout).unwrap()["lcores"].is_array());
        }
    }));
    let switcher = std::thread::spawn(move || {
        let mut c = Conn::open(&sock).unwrap();
        for i in 0..ROUNDS {
            let to = if i % 2 == 0 { "soft" } else { "fast" };
            let r = c.call(&json!({"id": i, "cmd": "switch", "args": {"vport": "wan", "path": to}}).to_string());
            assert_eq!(r["ok"], true, "{r}");
            assert_eq!(
                (&r["id"], &r["result"]["active"], &r["result"]["mode"]),
                (&json!(i), &json!(to), &json!("pinned")),
                "{r}"
            );
        }
    });
    switcher.join().expect("switcher");
    for r in readers {
        r.join().expect("reader");
    }
    let stats = app.stats();
    assert_eq!(stats["switch_count"], ROUNDS as u64, "{stats}");
    // The last switch went to soft (round 24).
    assert_eq!(vport(&app.json(&["status"]), "wan")["active"], "soft");
    let tx = counter(&stats, "wan", "soft", "tx_packets");
    poll("wan soft forwarding after the switches", || {
        (counter(&app.stats(), "wan", "soft", "tx_packets") > tx + 10_000).then_some(())
    });
    app.shutdown();
}

/// CPUs in a `Cpus_allowed_list` value such as `0-1,4`.
fn cpu_list(v: &str) -> Vec<usize> {
    v.trim()
        .split(',')
        .filter(|r| !r.is_empty())
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
            None => vec![r.parse().unwrap()],
        })
        .collect()
}

/// `Cpus_allowed_list` of a /proc status file.
fn allowed(status: &str) -> Vec<usize> {
    let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
    cpu_list(line.split_once(':').unwrap().1)
}

/// EAL pins the main thread to its lcore's CPU and a thread inherits its
/// creator's affinity: the control threads must be moved off that CPU, or
/// every request waits until the busy-polling worker's time slice ends
/// (several milliseconds). The worker (main lcore, lcore 0 here) stays on
/// CPU 0 and the control, accept, stdout and log threads may use any
/// other CPU the process had.
#[test]
fn control_threads_run_off_the_polling_cpu() {
    let mine = allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    if !mine.contains(&0) || mine.len() < 2 {
        eprintln!("skipped: this process may run on {mine:?}; the test needs CPU 0 and another");
        return;
    }
    let d = scratch("ctlcpu");
    let sock = d.0.join("ctl.sock");
    let app = App::start("ctlcpu", &s(&["net_null0,no-rx=1", "net_null1,no-rx=1"]), &sock, &[]);
    let pid = app.child.id();
    let threads = || {
        let mut seen = std::collections::BTreeMap::new();
        for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let t = t.unwrap().path();
            // A short-lived thread (a served connection) may be gone already.
            let (Ok(comm), Ok(status)) = (
                std::fs::read_to_string(t.join("comm")),
                std::fs::read_to_string(t.join("status")),
            ) else {
                continue;
            };
            seen.insert(comm.trim().to_string(), allowed(&status));
        }
        seen
    };
    let others: Vec<usize> = mine.iter().copied().filter(|&c| c != 0).collect();
    // The log writer starts before the EAL and moves itself as it writes
    // the line that follows the move ("control threads on CPU(s)").
    let seen = poll("the log writer off the polling CPU", || {
        let seen = threads();
        (seen.get("vfp-log") == Some(&others)).then_some(seen)
    });
    assert_eq!(seen.get("pmd-app"), Some(&vec![0]), "main lcore thread: {seen:?}");
    for name in ["vfp-control", "vfp-ctl-accept", "vfp-stdout"] {
        assert_eq!(seen.get(name), Some(&others), "{name}: {seen:?}");
    }
    app.ok(&["shutdown"]);
    let o = app.finish();
    assert!(o.status.success(), "{}", o.all());
    assert!(o.all().contains("control threads on CPU(s)"), "{}", o.all());
}
