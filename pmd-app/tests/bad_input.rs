//! Bad command lines and missing devices: one clear line, a non-zero exit,
//! never a panic or a hang.

mod common;
use common::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn app_err(name: &str, extra_eal: &[&str], app: &[&str]) -> Output {
    let mut eal = eal_base(name, "0");
    eal.extend(strings(extra_eal));
    let o = run_app(&eal, &strings(app), LIMIT);
    assert!(!o.stderr.contains("panicked"), "{}", o.all());
    o
}

#[test]
fn unknown_app_option_is_a_usage_error() {
    let o = app_err("bad1", &["--vdev", "net_null0"], &["--bogus"]);
    assert_eq!(o.code(), 2, "{}", o.all());
    assert!(o.stderr.contains("unexpected argument '--bogus'"), "{}", o.all());
}

/// `--help` helps, also after an option whose value is wrong (clap
/// reported that value instead).
#[test]
fn help_lists_the_options() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["--final-stats", "/nonexistent/dir/f.json", "--help"],
    ] {
        let o = run_app(&[pmd_app().to_string()], &strings(args), LIMIT);
        assert_eq!(o.code(), 0, "{args:?}: {}", o.all());
        for opt in ["--vport", "--policy", "--control-socket", "--stats-period", "--queues"] {
            assert!(o.stdout.contains(opt), "{args:?}: --help lacks {opt}\n{}", o.stdout);
        }
    }
}

/// Without `--`, `--help` is the EAL's: it lists the EAL's options and
/// then the app's (as testpmd does); `--version` answers without
/// starting the EAL.
#[test]
fn help_and_version_before_the_separator() {
    let run = |arg: &str| {
        let child = std::process::Command::new(pmd_app())
            .arg(arg)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn pmd-app");
        wait_output(child, LIMIT)
    };
    let o = run("--help");
    assert_eq!(o.code(), 0, "{}", o.all());
    let eal = o
        .stdout
        .find("EAL common options")
        .unwrap_or_else(|| panic!("{}", o.all()));
    let app = o
        .stdout
        .find("pmd-app options (after --)")
        .unwrap_or_else(|| panic!("{}", o.all()));
    assert!(eal < app, "{}", o.stdout);
    for opt in ["--vport", "--policy", "--control-socket"] {
        assert!(o.stdout[app..].contains(opt), "--help lacks {opt}\n{}", o.stdout);
    }
    for arg in ["--version", "-V"] {
        let o = run(arg);
        assert_eq!(o.code(), 0, "{}", o.all());
        let want = format!("pmd-app {} (DPDK ", env!("CARGO_PKG_VERSION"));
        assert!(o.stdout.starts_with(&want), "{arg}: {}", o.all());
        assert!(!o.stderr.contains("EAL"), "{arg} started the EAL: {}", o.all());
    }
}

/// `--final-stats` where no file can be written is a usage error at
/// start, not a surprise at the end of the run; a directory that goes
/// away during the run fails the exit status (1) after the usual
/// teardown, the mbuf check included.
#[test]
fn final_stats_file_that_cannot_be_written() {
    let d = Scratch::new("badfin");
    for (file, msg) in [
        (d.path("no/such/dir/f.json"), "cannot create a file in"),
        (d.path(""), "is a directory"),
    ] {
        let o = app_err("badfin", &["--vdev", "net_null0"], &["--final-stats", &file]);
        assert_eq!(o.code(), 2, "{file}: {}", o.all());
        assert!(
            o.stderr.contains("--final-stats") && o.stderr.contains(msg),
            "{}",
            o.all()
        );
        assert!(!o.stderr.contains("EAL: Detected"), "the EAL started: {}", o.all());
    }
    let sub = d.path("gone");
    std::fs::create_dir(&sub).unwrap();
    let file = format!("{sub}/final.json");
    let eal = eal_null_pair("badfin2", "0");
    let app = live::App::start(&eal, &strings(&["--final-stats", &file]), &d.path("ctl.sock"), LIMIT);
    assert!(
        std::fs::read_dir(&sub).unwrap().next().is_none(),
        "the start-up check left a file"
    );
    std::fs::remove_dir(&sub).unwrap();
    let o = app.stop(LIMIT);
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(o.stderr.contains(&format!("--final-stats {file}")), "{}", o.all());
    assert!(o.stdout.contains("mbufs: all"), "{}", o.all());
}

#[test]
fn malformed_vport_specs_are_rejected_before_eal() {
    for (spec, msg) in [
        ("name=a", "has no device"),
        ("fast=net_null0", "needs name"),
        ("name=a,fast=x,soft=x", "same device"),
        ("name=a,fast=x,role=router", "role `router`"),
        ("name=a,fast=x,speed=9", "unknown vport key"),
        ("name=a,fast", "not key=value"),
    ] {
        let o = app_err("bad2", &["--vdev", "net_null0"], &["--vport", spec]);
        assert_eq!(o.code(), 2, "{spec}: {}", o.all());
        assert!(o.stderr.contains(msg), "{spec}: expected `{msg}`\n{}", o.all());
        // Rejected before the EAL started.
        assert!(!o.stderr.contains("EAL: Detected"), "{}", o.all());
    }
}

#[test]
fn device_unknown_to_the_eal() {
    let o = app_err("bad3", &["--vdev", "net_null0"], &["--vport", "name=a,fast=net_null7"]);
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(
        o.stderr
            .contains("error: device `net_null7` is not known to the EAL (probed: net_null0)"),
        "{}",
        o.all()
    );
}

#[test]
fn device_named_twice() {
    let o = app_err(
        "bad4",
        &["--vdev", "net_null0", "--vdev", "net_null1"],
        &[
            "--vport",
            "name=a,fast=net_null0",
            "--vport",
            "name=b,fast=net_null1,soft=net_null0",
        ],
    );
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(
        o.stderr
            .contains("device `net_null0` is named by more than one vport path"),
        "{}",
        o.all()
    );
}

#[test]
fn vport_declared_twice() {
    let o = app_err(
        "bad5",
        &["--vdev", "net_null0", "--vdev", "net_null1"],
        &["--vport", "name=a,fast=net_null0", "--vport", "name=a,fast=net_null1"],
    );
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(o.stderr.contains("vport `a` declared twice"), "{}", o.all());
}

#[test]
fn no_ports_at_all() {
    let o = app_err("bad6", &[], &[]);
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(o.stderr.contains("error: no DPDK ports"), "{}", o.all());
}

#[test]
fn vdev_that_fails_to_probe() {
    let o = app_err(
        "bad7",
        &["--vdev", "net_pcap0,rx_pcap=/nonexistent/in.pcap,tx_iface=lo"],
        &[],
    );
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(
        o.stderr
            .contains("device `net_pcap0` given with --vdev did not come up"),
        "{}",
        o.all()
    );
}

#[test]
fn bad_eal_option() {
    let mut eal = eal_base("bad8", "0");
    eal.push("--no-such-eal-option".into());
    let o = run_app(&eal, &[], LIMIT);
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(o.stderr.contains("error: EAL initialisation failed"), "{}", o.all());
}

#[test]
fn no_hugepages_where_asked_for() {
    let d = Scratch::new("nohuge");
    let eal = strings(&[
        "--no-pci",
        "--huge-dir",
        &d.path(""),
        "--file-prefix",
        &prefix("bad9"),
        "-l",
        "0",
        "--vdev",
        "net_null0",
    ]);
    let o = run_app(&eal, &[], LIMIT);
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(o.stderr.contains("error: EAL initialisation failed"), "{}", o.all());
}

/// A second instance on a --file-prefix in use: the EAL says why, and
/// the app's own line adds no "Success" (rte_errno is 0 there).
#[test]
fn file_prefix_in_use() {
    let eal = eal_base("bad-prefix", "0");
    let mut first = Live::app(
        &[eal.clone(), strings(&["--vdev", "net_null0,no-rx=1"])].concat(),
        &strings(&["--no-control-socket"]),
    );
    first.wait_for("the first instance", LIMIT, |_, e| e.contains("forwarding on"));
    let o = run_app(
        &[eal, strings(&["--vdev", "net_null0,no-rx=1"])].concat(),
        &strings(&["--no-control-socket"]),
        LIMIT,
    );
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(o.stderr.contains("Is another primary process running?"), "{}", o.all());
    assert!(
        o.stderr
            .contains("error: EAL initialisation failed: see the EAL's messages above"),
        "{}",
        o.all()
    );
    assert!(!o.stderr.contains("Success"), "{}", o.all());
    first.interrupt();
    assert_eq!(first.finish(LIMIT).code(), 0);
}

/// A pool too large for the memory: when the app sized it (from
/// --queues and --nb-desc), the error names those options; when the
/// operator did (--mbufs), it does not blame the others.
#[test]
fn mempool_too_large_for_the_memory() {
    let o = app_err(
        "bad-pool",
        &["--vdev", "net_ring0"],
        &["--queues", "64", "--no-control-socket"],
    );
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(
        o.stderr.contains("error: cannot create mempool of 262143 mbufs"),
        "{}",
        o.all()
    );
    assert!(
        o.stderr
            .contains("262143 mbufs is what 64 queue(s) of 1024 descriptors on every path need (set --mbufs, or lower --queues or --nb-desc)"),
        "{}",
        o.all()
    );
    let o = app_err(
        "bad-pool",
        &["--vdev", "net_ring0"],
        &["--mbufs", "100000000", "--no-control-socket"],
    );
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(
        o.stderr.contains("error: cannot create mempool of 100000000 mbufs"),
        "{}",
        o.all()
    );
    assert!(!o.stderr.contains("set --mbufs"), "{}", o.all());
}

#[test]
fn lcore_that_does_not_exist() {
    let mut eal = eal_base("bad10", "0");
    let i = eal.iter().position(|a| a == "-l").unwrap();
    eal[i + 1] = "0,64".into();
    eal.extend(strings(&["--vdev", "net_null0"]));
    let o = run_app(&eal, &[], LIMIT);
    assert_eq!(o.code(), 1, "{}", o.all());
    assert!(o.stderr.contains("EAL initialisation failed"), "{}", o.all());
}

/// An extra zero in --max-flows asked for more flow table than the host
/// has: the app used to fault pages in for minutes (17 GB of them at 300
/// million) and then abort on a failed allocation. Now a clear error, at
/// once, with every number the operator needs.
#[test]
fn flow_tables_larger_than_the_host_are_refused() {
    let policy = repo_root().join("examples/allow-all.toml");
    for flows in ["4000000000", "300000000"] {
        let o = app_err(
            "bad-flows",
            &["--vdev", "net_null0"],
            &["--policy", policy.to_str().unwrap(), "--max-flows", flows],
        );
        assert_eq!(o.code(), 1, "{}", o.all());
        let msg = format!("error: --max-flows {flows}: the flow tables of 1 lcore(s) need ");
        assert!(o.stderr.contains(&msg), "{}", o.all());
        assert!(
            o.stderr.contains("available (MemAvailable); lower --max-flows"),
            "{}",
            o.all()
        );
        assert!(!o.stderr.contains("panicked"), "{}", o.all());
    }
}

#[test]
fn idle_sleep_longer_than_a_second_is_refused() {
    // A worker asleep for longer than the control plane waits for its
    // acknowledgement would make every swap and policy load time out.
    let o = app_err("bad-idle", &["--vdev", "net_null0"], &["--idle-sleep-us", "5000000"]);
    assert_eq!(o.code(), 2, "{}", o.all());
    assert!(o.stderr.contains("--idle-sleep-us"), "{}", o.all());
    assert!(o.stderr.contains("0..=1000000"), "{}", o.all());
}

#[test]
fn argument_that_is_not_utf8_is_an_error_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"/tmp/\xff.toml");
    let o = wait_output(
        std::process::Command::new(pmd_app())
            .args(eal_base("bad-utf8", "0"))
            .args(["--vdev", "net_null0", "--", "--policy"])
            .arg(bad)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        LIMIT,
    );
    assert_eq!(o.code(), 2, "{}", o.all());
    assert!(o.stderr.contains("is not valid UTF-8"), "{}", o.all());
    assert!(!o.stderr.contains("panicked"), "{}", o.all());
}

/// Two taps whose rx rings (1024 mbufs each, filled at set-up) do not fit
/// in a pool of 1024: the second ring's set-up fails, and the error says
/// how big the ring and the pool are and what to change.
#[test]
fn rx_rings_larger_than_the_pool() {
    let p = std::process::id();
    let o = app_err(
        "bad13",
        &[
            "--vdev",
            &format!("net_tap0,iface=vtP{p}"),
            "--vdev",
            &format!("net_tap1,iface=vtQ{p}"),
        ],
        &["--mbufs", "1024", "--nb-desc", "1024", "--no-control-socket"],
    );
    assert_eq!(o.code(), 1, "{}", o.all());
    let line = o
        .stderr
        .lines()
        .find(|l| l.starts_with("pmd-app: error:"))
        .unwrap_or_else(|| panic!("no error line\n{}", o.all()));
    for part in [
        "(net_tap1): rx queue 0 setup failed",
        "1024 descriptors",
        "of the pool's 1024 mbufs were free",
        "raise --mbufs or lower --nb-desc",
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
}
