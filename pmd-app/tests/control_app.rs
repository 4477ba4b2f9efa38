//! The control socket of the real `pmd-app` (issue 7), driven through
//! `vfpctl` (tables and `--json`) and raw JSON lines: every command
//! against live vports on DPDK virtual devices, protocol errors that never
//! disturb the datapath, and `switch` / hot-unplug moving traffic from one
//! path to the other, as seen by the app's counters and by DPDK's own
//! telemetry. Socket ownership, permissions and concurrent clients are in
//! `control_app_socket.rs`.
//!
//! The mock-handler tests (`control_protocol.rs`, `control_vfpctl.rs`)
//! cover the server and the client in isolation; these check that the app
//! behind them does what the replies say.

mod common;
mod control_app_support;

use common::*;
use control_app_support::telemetry;
use control_app_support::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[test]
fn every_command_in_json_and_tables() {
    let d = scratch("ctlcmd");
    let pcap = vm_flows_pcap(&d);
    let policy = long_lived_policy(&d);
    let bad = d.path("bad.toml");
    std::fs::write(&bad, "[[layers]]\nname = \"x\"\ndefault = \"dorp\"\n").unwrap();
    let app = App::start(
        "ctlcmd",
        &s(&[
            &format!("net_pcap0,rx_pcap={pcap},tx_pcap={}", d.path("vm-out.pcap")),
            "net_null0,no-rx=1",
            "net_null1,no-rx=1",
            "net_null2,no-rx=1",
        ]),
        &d.0.join("ctl.sock"),
        &s(&[
            "--vport",
            "name=vm,fast=net_pcap0,soft=net_null0,role=vm",
            "--vport",
            "name=wan,fast=net_null1,soft=net_null2,role=net",
            "--policy",
            &policy,
        ]),
    );
    // The pcap is read once: six packets, six flows.
    poll("six flows", || {
        (app.json(&["flows", "count"])["count"] == 6).then_some(())
    });

    // status
    let st = app.json(&["status"]);
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(st["protocol"], 1);
    assert_eq!(st["mode"], "pipeline");
    assert_eq!(st["lcores"], json!([0]));
    assert_eq!(st["workers"], 1);
    assert_eq!(st["policy_generation"], 1);
    assert_eq!(st["policy"], policy.as_str());
    assert!(st["uptime_s"].is_u64(), "{st}");
    let names: Vec<&str> = st["vports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vm", "wan"]);
    let vm = vport(&st, "vm");
    assert_eq!(vm["role"], "vm");
    assert_eq!(vm["active"], "fast");
    assert_eq!(vm["mode"], "auto");
    assert_eq!(vm["fast"], json!({"device": "net_pcap0", "port_id": 0, "state": "up"}));
    assert_eq!(
        vm["soft"],
        json!({"device": "net_null0", "port_id": 1, "state": "standby"})
    );
    let wan = vport(&st, "wan");
    assert_eq!((&wan["role"], &wan["active"]), (&json!("net"), &json!("fast")));
    assert_eq!(wan["soft"]["device"], "net_null2");
    let t = app.ok(&["status"]);
    has_all(
        &t,
        &["pmd-app 0.1.0 (protocol 1)", "mode pipeline, 1 workers on lcores 0"],
    );
    has_all(&t, &[&format!("policy generation 1 from {policy}"), "VPORT", "ACTIVE"]);
    let row = lines_with(&t, "vm");
    assert_eq!(row.len(), 1, "{t}");
    has_all(
        row[0],
        &["fast", "auto", "net_pcap0 (port 0, up)", "net_null0 (port 1, standby)"],
    );

    // ports
    let ports = app.json(&["ports"]);
    let ports = ports["ports"].as_array().unwrap();
    let devs: Vec<(&str, &str, &str, u64)> = ports
        .iter()
        .map(|p| {
            assert_eq!(p["link_up"], true, "{p}");
            assert_eq!(
                (p["rx_queues"].as_u64(), p["tx_queues"].as_u64()),
                (Some(1), Some(1)),
                "{p}"
            );
            assert!(p["mac"].as_str().is_some_and(|m| m.len() == 17), "{p}");
            (
                p["device"].as_str().unwrap(),
                p["vport"].as_str().unwrap(),
                p["path"].as_str().unwrap(),
                p["port_id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        devs,
        [
            ("net_pcap0", "vm", "fast", 0),
            ("net_null0", "vm", "soft", 1),
            ("net_null1", "wan", "fast", 2),
            ("net_null2", "wan", "soft", 3)
        ]
    );
    let t = app.ok(&["ports"]);
    has_all(&t, &["PORT", "DEVICE", "VPORT", "PATH", "LINK", "MAC"]);
    assert_eq!(lines_with(&t, "net_null2").len(), 1, "{t}");

    // stats: exactly the six packets went vm.fast -> wan.fast.
    let stats = app.stats();
    assert_eq!(counter(&stats, "vm", "fast", "rx_packets"), 6, "{stats}");
    assert_eq!(counter(&stats, "wan", "fast", "tx_packets"), 6, "{stats}");
    assert_eq!(counter(&stats, "wan", "soft", "tx_packets"), 0, "{stats}");
    assert_eq!(counter(&stats, "vm", "fast", "tx_packets"), 0, "{stats}");
    assert_eq!(vport(&stats, "wan")["active"], "fast");
    assert_eq!(stats["lcores"][0]["flows"], 6, "{stats}");
    assert_eq!(stats["lcores"][0]["rx_packets"], 6, "{stats}");
    assert_eq!(stats["engine"]["flows-created"], 6, "{stats}");
    assert_eq!(stats["engine"]["forwarded"], 6, "{stats}");
    assert!(stats["drops"].as_object().unwrap().values().all(|n| n == 0), "{stats}");
    assert!(stats["mbufs"]["total"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["switch_count"], 0);
    // The same counters under DPDK telemetry.
    let tel = telemetry(&app, "/vfp/stats");
    assert_eq!(
        (
            &tel["rx_packets"],
            &tel["tx_packets"],
            &tel["forwarded"],
            &tel["flows_active"]
        ),
        (&json!(6), &json!(6), &json!(6), &json!(6)),
        "{tel}"
    );
    let t = app.ok(&["stats"]);
    has_all(&t, &["VPORT", "RX PKTS", "LCORE", "CYC/PKT", "DROP REASON"]);
    assert!(lines_with(&t, "wan").iter().any(|l| l.contains("fast*")), "{t}");

    // flows list
    let list = app.json(&["flows"]);
    assert_eq!(list["count"], 6);
    let flows = list["flows"].as_array().unwrap();
    let tuples: BTreeSet<(String, String, String)> = flows
        .iter()
        .map(|f| {
            assert_eq!((&f["vport"], &f["dir"]), (&json!("vm"), &json!("out")), "{f}");
            assert_eq!(f["packets"], 1, "{f}");
            assert!(f["nat"].as_str().unwrap().starts_with("203.0.113.10:"), "{f}");
            assert!(
                f["action_fwd"].as_str().unwrap().contains("encap vxlan vni 5001"),
                "{f}"
            );
            (
                f["proto"].as_str().unwrap().to_string(),
                f["src"].as_str().unwrap().to_string(),
                f["dst"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        ("udp", "10.1.0.2:5000", "198.51.100.7:53"),
        ("udp", "10.1.0.2:5001", "198.51.100.7:53"),
        ("udp", "10.1.0.3:5002", "198.51.100.7:53"),
        ("udp", "10.1.0.3:5003", "198.51.100.7:53"),
        ("tcp", "10.1.0.4:40000", "93.184.216.34:443"),
        ("icmp", "10.1.0.5:7", "198.51.100.9:0"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(tuples, want);
    let t = app.ok(&["flows", "list"]);
    has_all(&t, &["ID", "VPORT", "PROTO", "SRC", "DST", "STATE"]);
    let tcp_row = lines_with(&t, "10.1.0.4:40000");
    assert_eq!(tcp_row.len(), 1, "{t}");
    has_all(tcp_row[0], &["vm", "out", "tcp", "93.184.216.34:443", "syn-sent"]);
    let limited = app.json(&["flows", "--limit", "2"]);
    assert_eq!(
        (limited["count"].as_u64(), limited["flows"].as_array().unwrap().len()),
        (Some(6), 2)
    );
    assert!(app
        .ok(&["flows", "--limit", "2"])
        .contains("(2 of 6 flows shown; raise --limit for more)"));

    // flows count with every filter
    let count = |args: &[&str]| {
        let mut a = vec!["flows", "count"];
        a.extend_from_slice(args);
        app.json(&a)["count"].as_u64().unwrap()
    };
    assert_eq!(count(&["--proto", "tcp"]), 1);
    assert_eq!(count(&["--proto", "udp"]), 4);
    assert_eq!(count(&["--proto", "icmp"]), 1);
    assert_eq!(count(&["--proto", "17"]), 4);
    assert_eq!(count(&["--src", "10.1.0.2"]), 2);
    assert_eq!(count(&["--src", "10.1.0.9"]), 0);
    assert_eq!(count(&["--dst", "93.184.216.34"]), 1);
    assert_eq!(count(&["--dst", "198.51.100.7"]), 4);
    assert_eq!(count(&["--port", "53"]), 4);
    assert_eq!(count(&["--port", "40000"]), 1);
    assert_eq!(count(&["--vport", "vm"]), 6);
    // A pair joins two vports: its reverse key arrives on wan.
    assert_eq!(count(&["--vport", "wan"]), 6);
    assert_eq!(count(&["--src", "10.1.0.3", "--proto", "udp", "--port", "5003"]), 1);
    assert_eq!(count(&["--src", "10.1.0.3", "--proto", "tcp"]), 0);
    assert_eq!(app.ok(&["flows", "count", "--proto", "udp"]), "4 flows\n");
    let only = app.json(&["flows", "list", "--src", "10.1.0.5"]);
    assert_eq!(
        (&only["count"], &only["flows"][0]["proto"]),
        (&json!(1), &json!("icmp"))
    );
    assert!(app
        .err(&["flows", "count", "--vport", "nope"], "not_found")
        .contains("nope"));

    // flows show
    let tcp = flows.iter().find(|f| f["proto"] == "tcp").unwrap();
    let id = tcp["id"].as_u64().unwrap().to_string();
    let shown = app.json(&["flows", "show", &id]);
    let f = &shown["flow"];
    assert_eq!(f["id"], tcp["id"]);
    assert_eq!(
        (&f["src"], &f["dst"], &f["state"]),
        (&tcp["src"], &tcp["dst"], &json!("syn-sent"))
    );
    assert_eq!((&f["packets_fwd"], &f["packets_rev"]), (&json!(1), &json!(0)));
    assert!(f["action_rev"].as_str().unwrap().contains("decap vni 5001"), "{f}");
    let t = app.ok(&["flows", "show", &id]);
    assert!(
        t.lines().any(|l| l.starts_with("state") && l.ends_with("syn-sent")),
        "{t}"
    );
    assert!(
        t.lines().any(|l| l.starts_with("src") && l.ends_with("10.1.0.4:40000")),
        "{t}"
    );
    assert!(app.err(&["flows", "show", "4242424"], "not_found").contains("4242424"));

    // policy show / validate (relative path, resolved by vfpctl) / load
    let p = app.json(&["policy", "show"]);
    assert_eq!(
        (&p["generation"], &p["origin"], &p["rules"]),
        (&json!(1), &json!(policy), &json!(8))
    );
    let layers: Vec<&str> = p["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(layers, ["acl", "nat", "vnet"]);
    let t = app.ok(&["policy"]);
    has_all(
        &t,
        &[
            &format!("policy generation 1 from {policy}"),
            "LAYER",
            "CONDITIONS",
            "HITS",
        ],
    );
    // A summary line per layer, then a row per rule.
    assert_eq!(lines_with(&t, "vnet").len(), 1 + 2, "{t}");
    let snat = lines_with(&t, "snat");
    assert_eq!(snat.len(), 1, "{t}");
    has_all(
        snat[0],
        &[
            "nat",
            "out",
            "snat addrs=203.0.113.10 ports=1024-65535",
            "src=10.1.0.0/24",
        ],
    );
    // Every one of the six first packets hit the SNAT rule.
    assert_eq!(snat[0].split_whitespace().nth(9), Some("6"), "{t}");
    let v = app.json(&["policy", "validate", "examples/allow-all.toml"]);
    assert_eq!(v, json!({"valid": true, "rules": 0, "layers": 1}));
    assert_eq!(app.ok(&["policy", "validate", &policy]), "valid: 8 rules\n");
    let msg = app.err(&["policy", "validate", &bad], "invalid_argument");
    assert!(msg.starts_with(&format!("{bad}:3:")), "{msg}");
    assert!(msg.contains("dorp"), "{msg}");
    let msg = app.err(&["--json", "policy", "load", &bad], "invalid_argument");
    assert!(msg.starts_with(&format!("{bad}:3:")), "{msg}");
    let missing = d.path("missing.toml");
    assert!(app
        .err(&["policy", "load", &missing], "invalid_argument")
        .contains(&missing));
    assert_eq!(
        app.json(&["status"])["policy_generation"],
        1,
        "a bad file must not be loaded"
    );
    assert_eq!(app.json(&["policy", "show"])["rules"], 8);
    let allow_all = repo_root()
        .join("examples/allow-all.toml")
        .to_string_lossy()
        .into_owned();
    let l = app.json(&["policy", "load", "examples/allow-all.toml"]);
    assert_eq!(
        (&l["generation"], &l["rules"], &l["origin"]),
        (&json!(2), &json!(0), &json!(allow_all))
    );
    let st = app.json(&["status"]);
    assert_eq!(
        (&st["policy_generation"], &st["policy"]),
        (&json!(2), &json!(allow_all))
    );
    assert_eq!(app.json(&["policy"])["layers"][0]["name"], "allow-all");
    assert_eq!(
        app.ok(&["policy", "load", &policy]),
        "loaded policy generation 3 (8 rules)\n"
    );
    assert_eq!(app.json(&["status"])["policy_generation"], 3);

    // flows flush with a filter, then all (the pcap does not replay).
    assert_eq!(
        app.json(&["flows", "flush", "--src", "10.1.0.2"]),
        json!({"flushed": 2})
    );
    assert_eq!(app.json(&["flows", "count"])["count"], 4);
    assert_eq!(count(&["--src", "10.1.0.2"]), 0);
    assert_eq!(app.ok(&["flows", "flush", "--proto", "tcp"]), "flushed 1 flows\n");
    assert_eq!(app.json(&["flows", "flush"])["flushed"], 3);
    assert_eq!(app.ok(&["flows"]), "no flows\n");
    assert!(app.err(&["flows", "show", &id], "not_found").contains(&id));

    // log-level
    assert_eq!(app.json(&["log-level"]), json!({"level": "info"}));
    assert_eq!(app.ok(&["log-level", "debug"]), "log level: debug\n");
    assert_eq!(app.json(&["log-level"]), json!({"level": "debug"}));
    assert_eq!(app.json(&["log-level", "warn"]), json!({"level": "warn"}));
    assert_eq!(app.ok(&["log-level"]), "log level: warn\n");
    assert_eq!(app.ctl(&["log-level", "loud"]).code, 2);
    assert_eq!(app.json(&["log-level", "info"]), json!({"level": "info"}));

    // shutdown: exit 0, every mbuf back, the socket file removed.
    let sock = app.sock.clone();
    let o = app.shutdown();
    assert!(
        o.stderr.contains("shutdown requested through the control socket"),
        "{}",
        o.all()
    );
    // The app started at info (RUST_LOG=info): the control connection's
    // debug lines reach stderr only because log-level raised the level.
    assert!(
        o.stderr.contains("DEBUG") && o.stderr.contains("control client"),
        "{}",
        o.all()
    );
    let r = vfpctl(&sock, &["status"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains(&sock.display().to_string()) && r.stderr.contains("no such socket"),
        "{}",
        r.all()
    );
}

#[test]
fn malformed_unknown_oversized_and_bad_arguments_get_structured_errors() {
    let d = scratch("ctlraw");
    let app = traffic_app("ctlraw", &d, false);
    let rx0 = counter(&app.stats(), "vm", "fast", "rx_packets");
    let mut c = Conn::open(&app.sock).unwrap();
    let cases: &[(&str, &str)] = &[
        (r#"{"cmd":"status""#, "parse_error"),
        ("not json at all", "parse_error"),
        ("[1, 2]", "invalid_request"),
        ("42", "invalid_request"),
        (r#"{"args":{}}"#, "invalid_request"),
        (r#"{"cmd":7}"#, "invalid_request"),
        (r#"{"cmd":"status","args":[1]}"#, "invalid_request"),
        (r#"{"cmd":"status","id":{"a":1}}"#, "invalid_request"),
        (r#"{"cmd":"stats","v":2}"#, "invalid_request"),
        (r#"{"cmd":"frobnicate"}"#, "unknown_command"),
        (r#"{"cmd":"STATUS"}"#, "unknown_command"),
        (r#"{"cmd":"status","args":{"verbose":true}}"#, "invalid_argument"),
        (r#"{"cmd":"switch","args":{"vport":"wan"}}"#, "missing_argument"),
        (r#"{"cmd":"switch","args":{"path":"soft"}}"#, "missing_argument"),
        (
            r#"{"cmd":"switch","args":{"vport":"wan","path":"sideways"}}"#,
            "invalid_argument",
        ),
        (
            r#"{"cmd":"switch","args":{"vport":3,"path":"soft"}}"#,
            "invalid_argument",
        ),
        (r#"{"cmd":"switch","args":{"vport":"wna","path":"soft"}}"#, "not_found"),
        (r#"{"cmd":"flows","args":{"op":"show"}}"#, "missing_argument"),
        (r#"{"cmd":"flows","args":{"op":"list","id":3}}"#, "invalid_argument"),
        (r#"{"cmd":"flows","args":{"limit":0}}"#, "invalid_argument"),
        (r#"{"cmd":"flows","args":{"src":"10.1.0.300"}}"#, "invalid_argument"),
        (r#"{"cmd":"flows","args":{"port":70000}}"#, "invalid_argument"),
        (r#"{"cmd":"flows","args":{"proto":"sctpx"}}"#, "invalid_argument"),
        (r#"{"cmd":"flows","args":{"op":"shred"}}"#, "invalid_argument"),
        (r#"{"cmd":"policy","args":{"op":"load"}}"#, "missing_argument"),
        (
            r#"{"cmd":"policy","args":{"op":"validate","file":"/nonexistent/p.toml"}}"#,
            "invalid_argument",
        ),
        (r#"{"cmd":"log-level","args":{"level":"loud"}}"#, "invalid_argument"),
        (r#"{"cmd":"debug","args":{"op":"unplug"}}"#, "missing_argument"),
        (
            r#"{"cmd":"debug","args":{"op":"unplug","device":"net_nope0"}}"#,
            "not_found",
        ),
        (r#"{"cmd":"debug","args":{"op":"plug","device":"net_ring0"}}"#, "failed"),
        (r#"{"cmd":"shutdown","args":{"now":true}}"#, "invalid_argument"),
    ];
    for (line, want) in cases {
        let r = c.call(line);
        assert_eq!(code(&r), *want, "{line} -> {r}");
        assert!(!r["error"]["message"].as_str().unwrap().is_empty(), "{r}");
    }
    // Ids are echoed on errors the request could be read far enough for.
    let r = c.call(r#"{"id":"x-1","cmd":"frobnicate"}"#);
    assert_eq!((code(&r), &r["id"]), ("unknown_command", &json!("x-1")));
    assert!(r["error"]["message"].as_str().unwrap().contains("frobnicate"), "{r}");
    let r = c.call(r#"{"id":5,"cmd":"switch","args":{"vport":"wan"}}"#);
    assert_eq!((code(&r), &r["id"]), ("missing_argument", &json!(5)));
    assert_eq!(c.call(r#"{"id":6,"cmd":"status""#)["id"], Value::Null);
    // Not UTF-8.
    c.send(b"{\"cmd\":\"st\xff\xfeatus\"}\n");
    assert_eq!(code(&c.recv()), "parse_error");
    // Over 64 KiB: too_large, the rest of the line discarded, and the same
    // connection keeps working.
    let big = format!(r#"{{"id":1,"cmd":"status","pad":"{}"}}"#, "x".repeat(70 * 1024));
    let r = c.call(&big);
    assert_eq!((code(&r), &r["id"]), ("too_large", &Value::Null));
    let r = c.call(r#"{"id":2,"cmd":"status"}"#);
    assert_eq!((&r["ok"], &r["id"]), (&json!(true), &json!(2)), "{r}");
    // Just under the bound is an ordinary request.
    let pad = 64 * 1024 - r#"{"id":3,"cmd":"status","pad":""}"#.len();
    let r = c.call(&format!(r#"{{"id":3,"cmd":"status","pad":"{}"}}"#, "y".repeat(pad)));
    assert_eq!((&r["ok"], &r["id"]), (&json!(true), &json!(3)), "{r}");
    // Pipelined requests in one write: answered in order.
    c.send(b"{\"id\":10,\"cmd\":\"status\"}\n\n{\"id\":11,\"cmd\":\"nope\"}\r\n{\"id\":12,\"cmd\":\"ports\"}\n");
    let ids: Vec<Value> = (0..3).map(|_| c.recv()["id"].clone()).collect();
    assert_eq!(ids, [json!(10), json!(11), json!(12)]);

    // vfpctl raw prints the reply line and exits 1 on an error reply.
    let r = app.ctl(&["raw", r#"{"cmd":"#]);
    assert_eq!(r.code, 1, "{}", r.all());
    let reply: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(code(&reply), "parse_error");
    let r = app.ctl(&["raw", r#"{"cmd":"frobnicate","id":"q"}"#]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).unwrap()["id"], "q");
    let r = app.ctl(&["raw", r#"{"cmd":"status","id":4}"#]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap()["result"]["mode"],
        "forward"
    );
    // vfpctl's own usage errors never reach the instance.
    assert_eq!(app.ctl(&["switch", "wan", "sideways"]).code, 2);
    assert_eq!(app.ctl(&["flows", "show"]).code, 2);
    assert_eq!(app.ctl(&["flows", "count", "7"]).code, 2);

    // None of it disturbed the datapath: still forwarding, nothing moved.
    poll("traffic after the bad requests", || {
        (counter(&app.stats(), "vm", "fast", "rx_packets") > rx0 + 10_000).then_some(())
    });
    let st = app.json(&["status"]);
    assert_eq!(
        (&vport(&st, "wan")["active"], &st["switches"]),
        (&json!("fast"), &json!(0))
    );
    drop(c);
    app.shutdown();
}

#[test]
fn switch_moves_traffic_and_unplug_fails_over() {
    let d = scratch("ctlsw");
    let app = traffic_app("ctlsw", &d, true);
    // Ports: 0 net_pcap0, 1 net_null0, 2 net_ring0 (wan fast), 3 net_ring1 (wan soft).
    let (fast_port, soft_port) = (2, 3);
    let ports = app.json(&["ports"]);
    assert_eq!(ports["ports"][fast_port as usize]["device"], "net_ring0");
    assert_eq!(ports["ports"][soft_port as usize]["device"], "net_ring1");

    let grows = |what: &str, base: &Value, vp: &str, path: &str, field: &str| -> Value {
        let before = counter(base, vp, path, field);
        poll(&format!("{vp}.{path}.{field} to grow ({what})"), || {
            let s = app.stats();
            (counter(&s, vp, path, field) > before + 10_000).then_some(s)
        })
    };
    let zero = app.stats();
    let s0 = grows("start", &zero, "wan", "fast", "tx_packets");
    assert_eq!(counter(&s0, "wan", "soft", "tx_packets"), 0, "{s0}");
    assert_eq!(counter(&s0, "wan", "soft", "rx_packets"), 0, "{s0}");
    assert!(
        counter(&s0, "wan", "fast", "rx_packets") > 0,
        "the ring loops back: {s0}"
    );
    assert!(opackets(&app, fast_port) > 0);
    assert_eq!(opackets(&app, soft_port), 0);
    // Flow state lives in the workers, not in a device: the six flows
    // outlive every switch, unplug and plug below.
    let flows0 = poll("six flows", || {
        let l = app.json(&["flows"]);
        (l["count"] == 6).then_some(l)
    });

    // switch wan soft
    let r = app.json(&["switch", "wan", "soft"]);
    assert_eq!(
        (&r["vport"], &r["active"], &r["mode"]),
        (&json!("wan"), &json!("soft"), &json!("pinned"))
    );
    assert!(r["took_us"].is_u64(), "{r}");
    let st = app.json(&["status"]);
    let wan = vport(&st, "wan");
    assert_eq!((&wan["active"], &wan["mode"]), (&json!("soft"), &json!("pinned")));
    assert_eq!(
        (&wan["fast"]["state"], &wan["soft"]["state"]),
        (&json!("standby"), &json!("up"))
    );
    assert_eq!(vport(&st, "vm")["active"], "fast", "only wan moves");
    // Once acknowledged, no worker transmits on the fast path: its tx is
    // frozen from the first sample on; its rx stops once the ring is empty.
    let s1 = app.stats();
    let tele_fast = opackets(&app, fast_port);
    let s2 = grows("after switch to soft", &s1, "wan", "soft", "tx_packets");
    let s3 = grows("after switch to soft", &s2, "wan", "soft", "rx_packets");
    for s in [&s2, &s3] {
        assert_eq!(
            counter(s, "wan", "fast", "tx_packets"),
            counter(&s1, "wan", "fast", "tx_packets"),
            "old path tx moved"
        );
    }
    assert_eq!(
        counter(&s3, "wan", "fast", "rx_packets"),
        counter(&s2, "wan", "fast", "rx_packets"),
        "old path rx still moving"
    );
    assert!(counter(&s3, "wan", "soft", "tx_packets") > counter(&s1, "wan", "soft", "tx_packets"));
    assert_eq!(opackets(&app, fast_port), tele_fast, "DPDK saw tx on the old path");
    assert!(opackets(&app, soft_port) > 0);
    assert!(vport(&s3, "wan")["paths"]["soft"]["active"] == true && vport(&s3, "wan")["active"] == "soft");
    let sw = s3["switches"].as_array().unwrap();
    assert_eq!(sw.len(), 1, "{s3}");
    assert_eq!(
        (&sw[0]["vport"], &sw[0]["from"], &sw[0]["to"]),
        (&json!("wan"), &json!("fast"), &json!("soft"))
    );
    assert_eq!(sw[0]["cause"], "command");
    let t = app.ok(&["stats"]);
    assert!(lines_with(&t, "wan").iter().any(|l| l.contains("soft*")), "{t}");
    // Switching to the active path changes nothing.
    assert_eq!(app.json(&["switch", "wan", "soft"])["active"], "soft");
    assert_eq!(app.json(&["stats"])["switch_count"], 1);

    // switch wan auto: failover chooses fast again, traffic moves back.
    let t = app.ok(&["switch", "wan", "auto"]);
    assert!(t.starts_with("wan: active path fast (auto)"), "{t}");
    let s4 = app.stats();
    let s5 = grows("after auto", &s4, "wan", "fast", "tx_packets");
    assert_eq!(
        counter(&s5, "wan", "soft", "tx_packets"),
        counter(&s4, "wan", "soft", "tx_packets")
    );
    assert_eq!(vport(&app.json(&["status"]), "wan")["mode"], "auto");
    assert!(app.err(&["switch", "nope", "soft"], "not_found").contains("nope"));

    // debug unplug the active fast device: failover to soft.
    let r = app.json(&["debug", "unplug", "net_ring0"]);
    assert_eq!((&r["device"], &r["op"]), (&json!("net_ring0"), &json!("unplug")));
    let st = app.json(&["status"]);
    let wan = vport(&st, "wan");
    assert_eq!(
        (&wan["active"], &wan["fast"]["state"]),
        (&json!("soft"), &json!("removed"))
    );
    assert_eq!(wan["fast"]["port_id"], Value::Null);
    let p = app.json(&["ports"]);
    let ring0 = p["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["device"] == "net_ring0")
        .unwrap();
    assert_eq!(
        (&ring0["port_id"], &ring0["link_up"]),
        (&Value::Null, &json!(false)),
        "{ring0}"
    );
    assert!(app.ok(&["status"]).contains("net_ring0 (port -, removed)"));
    let s6 = app.stats();
    grows("after unplug", &s6, "wan", "soft", "tx_packets");
    let msg = app.err(&["switch", "wan", "fast"], "failed");
    assert!(msg.contains("removed"), "{msg}");
    assert!(app
        .err(&["debug", "unplug", "net_nope0"], "not_found")
        .contains("net_nope0"));

    // debug plug: it comes back (same devargs) and wan fails back to it.
    assert_eq!(app.ok(&["debug", "plug", "net_ring0"]), "net_ring0: plug done\n");
    let st = app.json(&["status"]);
    let wan = vport(&st, "wan");
    assert_eq!((&wan["active"], &wan["fast"]["state"]), (&json!("fast"), &json!("up")));
    assert!(app
        .err(&["debug", "plug", "net_ring0"], "failed")
        .contains("already present"));
    let s7 = app.stats();
    let s8 = grows("after plug", &s7, "wan", "fast", "tx_packets");
    assert_eq!(
        counter(&s8, "wan", "soft", "tx_packets"),
        counter(&s7, "wan", "soft", "tx_packets")
    );
    let causes: Vec<&str> = s8["switches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cause"].as_str().unwrap())
        .collect();
    assert_eq!(causes, ["command", "command", "device-removed", "device-added"], "{s8}");
    let flows1 = app.json(&["flows"]);
    assert_eq!(flows1["count"], 6, "{flows1}");
    for f in flows0["flows"].as_array().unwrap() {
        let now = flows1["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == f["id"])
            .unwrap_or_else(|| panic!("flow {} is gone: {flows1}", f["id"]));
        assert_eq!((&now["src"], &now["nat"]), (&f["src"], &f["nat"]));
        assert!(now["packets"].as_u64() > f["packets"].as_u64(), "{now} vs {f}");
    }
    assert_eq!(s8["engine"]["flows-created"], 6, "no flow was created again: {s8}");

    // vfpctl top, twice, as JSON lines and as tables.
    let r = app.ctl(&["top", "--count", "2", "--interval", "0.2", "--json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let refreshes: Vec<Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(refreshes.len(), 2, "{}", r.stdout);
    for s in &refreshes {
        assert_eq!(path_counters(s).len(), 4, "{s}");
        assert_eq!(s["lcores"][0]["lcore"], 0, "{s}");
    }
    let rx = |s: &Value| s["lcores"][0]["rx_packets"].as_u64().unwrap();
    assert!(rx(&refreshes[1]) > rx(&refreshes[0]), "traffic between refreshes");
    let r = app.ctl(&["top", "--count", "2", "--interval", "0.2"]);
    assert_eq!(r.code, 0, "{}", r.all());
    has_all(&r.stdout, &["refresh 1\n", "refresh 2\n", "LCORE"]);
    assert!(
        !r.stdout.contains("refresh 3") && !r.stdout.contains('\x1b'),
        "{}",
        r.stdout
    );
    assert_eq!(
        lines_with(&r.stdout, "wan").len(),
        2 * 2,
        "two paths per refresh:\n{}",
        r.stdout
    );

    app.shutdown();
}

/// An app started without a policy builds its flow tables on the first
/// `policy load`: one larger than the host can hold is refused with the
/// reason (it used to abort the running app), and the app runs on.
#[test]
fn a_first_policy_load_whose_flow_tables_do_not_fit_is_refused() {
    let d = scratch("ctlbig");
    let app = idle_app("ctlbig", &d.0.join("ctl.sock"), &["--max-flows", "4000000000"]);
    let msg = app.err(&["policy", "load", "examples/allow-all.toml"], "failed");
    assert!(
        msg.starts_with("--max-flows 4000000000: the flow tables of") && msg.ends_with("lower --max-flows"),
        "{msg}"
    );
    assert_eq!(app.json(&["status"])["policy_generation"], 0);
    app.shutdown();
}

/// SNAT addresses keep their NAT slot until the instance restarts, and
/// there are 64 slots. A policy whose new addresses do not fit is refused
/// by `validate` and by `load` with a message that says so, and a refused
/// load takes no slot: the policy that fills the table exactly still loads
/// after it.
#[test]
fn snat_address_slots_are_counted_reused_and_a_refused_load_takes_none() {
    let d = scratch("ctlnat");
    let app = idle_app(
        "ctlnat",
        &d.0.join("ctl.sock"),
        &[
            "--vport",
            "name=vm,fast=net_null0,role=vm",
            "--vport",
            "name=wan,fast=net_null1,role=net",
        ],
    );
    let policy = |name: &str, net: u8, n: u8| -> String {
        let addrs: Vec<String> = (1..=n).map(|i| format!("\"198.18.{net}.{i}\"")).collect();
        let text = format!(
            "[[layers]]\nname = \"nat\"\ndefault = \"allow\"\n[[layers.groups]]\n[[layers.groups.rules]]\n\
             id = 1\npriority = 1\ndirection = \"out\"\naction = \"snat\"\n\
             snat = {{ addrs = [{}], ports = \"1024-1027\" }}\n",
            addrs.join(", ")
        );
        let path = d.path(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (p40, p30, p24) = (
        policy("p40.toml", 1, 40),
        policy("p30.toml", 2, 30),
        policy("p24.toml", 3, 24),
    );
    assert_eq!(app.json(&["policy", "load", &p40])["generation"], 1);
    let msg = app.err(&["policy", "validate", &p30], "invalid_argument");
    assert!(
        msg.contains("30 SNAT addresses not used before") && msg.contains("24 of the 64"),
        "{msg}"
    );
    let msg = app.err(&["policy", "load", &p30], "failed");
    assert!(msg.contains("30 SNAT addresses not used before"), "{msg}");
    assert_eq!(app.json(&["policy", "show"])["origin"], p40.as_str());
    assert_eq!(app.json(&["policy", "validate", &p24])["valid"], true);
    assert_eq!(app.json(&["policy", "load", &p24])["origin"], p24.as_str());
    // p40's addresses are registered: loading it again needs no slot.
    app.json(&["policy", "load", &p40]);
    // Every slot is taken, but p24's addresses are named by no policy in
    // force and no connection holds their ports: a new address takes one
    // of their slots, and p30 (with p1 in force) finds room among p40's
    // and p24's.
    app.json(&["policy", "load", &policy("p1.toml", 4, 1)]);
    assert_eq!(app.json(&["policy", "load", &p30])["origin"], p30.as_str());
    // With p30 in force, 34 slots are not its own: 35 new addresses do
    // not fit, and the refusal says so.
    let msg = app.err(&["policy", "load", &policy("p35.toml", 5, 35)], "failed");
    assert!(
        msg.contains("35 SNAT addresses not used before") && msg.contains("34 of the 64"),
        "{msg}"
    );
    assert_eq!(app.json(&["policy", "show"])["origin"], p30.as_str());
    let out = app.shutdown();
    assert!(out.status.success(), "{}", out.stderr);
}
