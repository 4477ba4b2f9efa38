//! What scripts/demo.sh shows must be true: its generated VM traffic
//! (traffic.py vm-flows) is allowed by its policy
//! (examples/acl-snat-vxlan.toml), SNAT'd and VXLAN-encapsulated towards
//! `wan`, every packet. Checked here on finite pcaps instead of the demo's
//! endless replay, decoded by tshark.

mod common;
use common::*;
use std::collections::HashMap;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn demo_script_uses_this_traffic_and_policy() {
    let demo = std::fs::read_to_string(repo_root().join("scripts/demo.sh")).unwrap();
    for s in [
        "traffic.py vm-flows",
        "--policy examples/acl-snat-vxlan.toml",
        "name=vm,fast=net_pcap0,role=vm",
        "name=wan,fast=net_null0,role=net",
        "--stats-period 1",
    ] {
        assert!(
            demo.contains(s),
            "scripts/demo.sh no longer has `{s}`: update this test"
        );
    }
}

#[test]
fn demo_traffic_is_allowed_snatted_and_encapsulated() {
    const N: usize = 512;
    let d = Scratch::new("demo");
    let (inp, out, back) = (d.path("in.pcap"), d.path("out.pcap"), d.path("back.pcap"));
    traffic(&["vm-flows", &inp, "--flows", "64", "--count", &N.to_string()]);
    let mut eal = eal_base("demo", "0");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_pcap0,rx_pcap={inp},tx_pcap={back}"),
        "--vdev",
        &format!("net_pcap1,tx_pcap={out}"),
    ]));
    let policy = repo_root().join("examples/acl-snat-vxlan.toml");
    let o = run_app(
        &eal,
        &strings(&[
            "--vport",
            "name=vm,fast=net_pcap0,role=vm",
            "--vport",
            "name=wan,fast=net_pcap1,role=net",
            "--policy",
            policy.to_str().unwrap(),
            "--stop-after",
            &N.to_string(),
            "--no-control-socket",
        ]),
        LIMIT,
    );
    assert_eq!(o.code(), 0, "{}", o.all());
    assert!(o.stdout.contains("drops: none"), "{}", o.all());
    assert_eq!(app_port_counts(&o.stdout, "net_pcap1"), (0, N as u64), "{}", o.stdout);
    assert!(pcap_frames(&back).is_empty(), "nothing goes back to the VM");

    let fin = tshark_fields(
        &inp,
        &[
            "frame.len",
            "ip.dst",
            "ip.proto",
            "udp.srcport",
            "tcp.srcport",
            "udp.dstport",
            "tcp.dstport",
        ],
    );
    let fout = tshark_fields(
        &out,
        &[
            "frame.len",
            "eth.src",
            "eth.dst",
            "vxlan.vni",
            "ip.src",
            "ip.dst",
            "ip.proto",
            "udp.srcport",
            "tcp.srcport",
            "udp.dstport",
            "tcp.dstport",
        ],
    );
    assert_eq!(fout.len(), N, "{out}");
    // Each VM flow (source port) keeps one public source port, and no two
    // flows share one.
    let mut nat: HashMap<String, String> = HashMap::new();
    for (i, (a, b)) in fin.iter().zip(&fout).enumerate() {
        let len: usize = a[0].parse().unwrap();
        assert_eq!(
            b[0],
            (len + 50).to_string(),
            "frame {i}: VXLAN adds 50 bytes\n{a:?}\n{b:?}"
        );
        // Outer MACs from the encap rule, then the VM's frame unchanged.
        assert_eq!(b[1], "02:00:00:00:00:01,02:00:00:00:00:01", "frame {i}");
        assert_eq!(b[2], "02:00:00:00:00:fe,02:00:00:00:00:02", "frame {i}");
        assert_eq!(b[3], "5001", "frame {i}");
        assert_eq!(
            b[4], "192.0.2.1,203.0.113.10",
            "frame {i}: outer source, SNAT'd inner source"
        );
        assert_eq!(
            b[5],
            format!("192.0.2.254,{}", a[1]),
            "frame {i}: inner destination kept"
        );
        assert_eq!(b[6], format!("17,{}", a[2]), "frame {i}");
        let (vm_sport, inner_sport, inner_dport) = if a[2] == "17" {
            let s: Vec<&str> = b[7].split(',').collect();
            let dp: Vec<&str> = b[9].split(',').collect();
            assert_eq!(dp.first(), Some(&"4789"), "frame {i}");
            (a[3].clone(), s[1].to_string(), dp[1].to_string())
        } else if a[2] == "6" {
            (a[4].clone(), b[8].clone(), b[10].clone())
        } else {
            continue; // ICMP: identifier NAT is covered by vfp-core's golden tests
        };
        let a_dport = if a[2] == "17" { &a[5] } else { &a[6] };
        assert_eq!(&inner_dport, a_dport, "frame {i}: destination port kept");
        let prev = nat.entry(vm_sport.clone()).or_insert_with(|| inner_sport.clone());
        assert_eq!(*prev, inner_sport, "frame {i}: flow {vm_sport} changed its public port");
    }
    let mut public: Vec<&String> = nat.values().collect();
    public.sort();
    public.dedup();
    assert_eq!(public.len(), nat.len(), "two flows share a public port: {nat:?}");
}
