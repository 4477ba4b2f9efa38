//! DPDK telemetry keeps working under pmd-app, and the app's own counters
//! are registered there (`/vfp/stats`, `/vfp/drops`) and agree with the
//! ethdev counters DPDK itself reports.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn tel(prefix: &str, cmd: &str) -> serde_json::Value {
    telemetry(prefix, cmd).unwrap_or(serde_json::Value::Null)
}

#[test]
fn app_counters_are_in_dpdk_telemetry() {
    let d = Scratch::new("tel");
    let pcap = d.path("in.pcap");
    traffic(&["udp-flows", &pcap, "--flows", "8", "--count", "64"]);
    let mut eal = eal_base("tel", "0");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_pcap0,rx_pcap={pcap},infinite_rx=1"),
        "--vdev",
        "net_null0,no-rx=1",
    ]));
    let policy = d.path("p.toml");
    // Only 10.0.0.0/29 sources may leave: a real policy, so the engine
    // counters move (traffic.py's flows use 10.0.0.0 .. 10.0.0.7).
    std::fs::write(
        &policy,
        "[[layers]]\nname = \"acl\"\ndefault = \"deny\"\n[[layers.groups]]\nname = \"g\"\n\
         [[layers.groups.rules]]\nid = 1\npriority = 1\ndirection = \"out\"\nsrc = [\"10.0.0.0/29\"]\naction = \"allow\"\n",
    )
    .unwrap();
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
            "30",
        ]),
    );
    let guard = KillOnDrop(Some(child));
    let pre = prefix("tel");
    let deadline = Instant::now() + Duration::from_secs(20);
    let stats = loop {
        let v = tel(&pre, "/vfp/stats");
        if v["/vfp/stats"]["tx_packets"].as_u64().unwrap_or(0) > 1000 {
            break v["/vfp/stats"].clone();
        }
        assert!(Instant::now() < deadline, "no /vfp/stats with traffic: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(stats["flows_created"], 8, "{stats}");
    assert!(stats["forwarded"].as_u64().unwrap() > 0, "{stats}");
    let drops = tel(&pre, "/vfp/drops");
    assert_eq!(drops["/vfp/drops"]["policy_deny"], 0, "{drops}");
    // DPDK's own ethdev telemetry still answers, and the sink port's
    // opackets never lag the app's later tx count by more than in-flight.
    let eth = tel(&pre, "/ethdev/stats,1");
    let opackets = eth["/ethdev/stats"]["opackets"].as_u64().expect("ethdev stats");
    let later = tel(&pre, "/vfp/stats")["/vfp/stats"]["tx_packets"].as_u64().unwrap();
    assert!(
        opackets > 0 && opackets <= later,
        "ethdev opackets {opackets}, app tx {later}"
    );
    drop(guard);
}

struct KillOnDrop(Option<std::process::Child>);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
