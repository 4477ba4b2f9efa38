//! Live policy reload on SIGHUP: the new policy takes over without a
//! restart and without losing the flows' packets; a broken file keeps the
//! running policy. Observed through DPDK telemetry (`/vfp/stats`,
//! `/vfp/drops`), an oracle outside the app's own output.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn tel(prefix: &str, cmd: &str) -> serde_json::Value {
    telemetry(prefix, cmd).map_or(serde_json::Value::Null, |v| v[cmd].clone())
}

fn wait_for(what: &str, mut f: impl FnMut() -> Option<u64>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const DENY: &str = "[[layers]]\nname = \"acl\"\ndefault = \"deny\"\n";
const ALLOW: &str = "[[layers]]\nname = \"acl\"\ndefault = \"deny\"\n[[layers.groups]]\nname = \"g\"\n\
    [[layers.groups.rules]]\nid = 1\npriority = 1\ndirection = \"out\"\nsrc = [\"10.0.0.0/8\"]\naction = \"allow\"\n";

#[test]
fn sighup_reloads_the_policy_and_a_bad_file_keeps_the_old_one() {
    let d = Scratch::new("hup");
    let pcap = d.path("in.pcap");
    traffic(&["udp-flows", &pcap, "--flows", "4", "--count", "64"]);
    let policy = d.path("p.toml");
    std::fs::write(&policy, DENY).unwrap();
    let mut eal = eal_base("hup", "0");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_pcap0,rx_pcap={pcap},infinite_rx=1"),
        "--vdev",
        "net_null0,no-rx=1",
    ]));
    let child = spawn_app(
        &eal,
        &strings(&[
            "--vport",
            "name=vm,fast=net_pcap0,role=vm",
            "--vport",
            "name=wan,fast=net_null0,role=net",
            "--policy",
            &policy,
            "--no-control-socket",
            "--duration",
            "60",
        ]),
    );
    let pid = child.id().to_string();
    let pre = prefix("hup");
    // Generation 1 denies everything.
    wait_for("policy-deny drops", || {
        tel(&pre, "/vfp/drops")["policy_deny"].as_u64().filter(|n| *n > 100)
    });
    assert_eq!(tel(&pre, "/vfp/stats")["forwarded"], 0);

    // Generation 2 allows 10/8: after SIGHUP packets are forwarded.
    std::fs::write(&policy, ALLOW).unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    wait_for("forwarded packets", || {
        tel(&pre, "/vfp/stats")["forwarded"].as_u64().filter(|n| *n > 1000)
    });
    let created = tel(&pre, "/vfp/stats")["flows_created"].as_u64().unwrap();
    assert_eq!(created, 4, "one pair per flow");

    // A broken file: the running policy stays and traffic keeps flowing.
    std::fs::write(&policy, "[[layers]]\nname = 7\n").unwrap();
    let before = tel(&pre, "/vfp/stats")["forwarded"].as_u64().unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    wait_for("forwarding after a bad reload", || {
        tel(&pre, "/vfp/stats")["forwarded"]
            .as_u64()
            .filter(|n| *n > before + 100_000)
    });
    let deny_now = tel(&pre, "/vfp/drops")["policy_deny"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(200)); // observation window, not synchronisation
    assert_eq!(tel(&pre, "/vfp/drops")["policy_deny"].as_u64().unwrap(), deny_now);

    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let o = wait_output(child, Duration::from_secs(30));
    assert_eq!(o.code(), 0, "{}", o.all());
    assert!(o.all().contains("SIGHUP: reloaded"), "{}", o.all());
    assert!(o.all().contains("SIGHUP: policy not reloaded"), "{}", o.all());
    assert!(o.stdout.contains("mbufs: all"), "{}", o.all());
}
