//! Foundation: plain forwarding through real DPDK virtual devices, pcap in
//! -> pcap out, compared byte for byte and decoded by tshark.

mod common;
use common::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn pcap_in_pcap_out_unmodified_and_in_order() {
    let d = Scratch::new("fwd1");
    let (inp, out) = (d.path("in.pcap"), d.path("out.pcap"));
    traffic(&["mixed", &inp, "--count", "700"]);
    let mut eal = eal_base("fwd1", "0");
    eal.extend(strings(&["--vdev", &format!("net_pcap0,rx_pcap={inp},tx_pcap={out}")]));
    let o = run_app(&eal, &strings(&["--stop-after", "700", "--no-control-socket"]), LIMIT);
    assert_eq!(o.code(), 0, "{}", o.all());
    assert!(o.stdout.contains("mbufs: all"), "{}", o.all());
    assert_same_pcap(&inp, &out);
}

#[test]
fn two_queues_on_two_lcores_keep_per_queue_order() {
    let d = Scratch::new("fwd2q");
    let (i0, i1, o0, o1) = (
        d.path("i0.pcap"),
        d.path("i1.pcap"),
        d.path("o0.pcap"),
        d.path("o1.pcap"),
    );
    traffic(&["mixed", &i0, "--count", "400", "--seed", "7"]);
    traffic(&["udp-flows", &i1, "--flows", "50", "--count", "300", "--size", "128"]);
    let mut eal = eal_base("fwd2q", "0-1");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_pcap0,rx_pcap={i0},rx_pcap={i1},tx_pcap={o0},tx_pcap={o1}"),
    ]));
    let o = run_app(&eal, &strings(&["--stop-after", "700", "--no-control-socket"]), LIMIT);
    assert_eq!(o.code(), 0, "{}", o.all());
    // Both workers moved packets: rx queue q is polled by worker q.
    let rows: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| l.starts_with("0 ") || l.starts_with("1 "))
        .collect();
    assert_eq!(rows.len(), 2, "{}", o.all());
    assert_same_pcap(&i0, &o0);
    assert_same_pcap(&i1, &o1);
}

#[test]
fn ports_pair_like_testpmd() {
    let d = Scratch::new("fwdpair");
    let (i0, i1, o0, o1) = (
        d.path("i0.pcap"),
        d.path("i1.pcap"),
        d.path("o0.pcap"),
        d.path("o1.pcap"),
    );
    traffic(&["mixed", &i0, "--count", "200", "--seed", "3"]);
    traffic(&["udp-flows", &i1, "--flows", "10", "--count", "150"]);
    let mut eal = eal_base("fwdpair", "0");
    eal.extend(strings(&[
        "--vdev",
        &format!("net_pcap0,rx_pcap={i0},tx_pcap={o0}"),
        "--vdev",
        &format!("net_pcap1,rx_pcap={i1},tx_pcap={o1}"),
    ]));
    let o = run_app(&eal, &strings(&["--stop-after", "350", "--no-control-socket"]), LIMIT);
    assert_eq!(o.code(), 0, "{}", o.all());
    assert_same_pcap(&i0, &o1);
    assert_same_pcap(&i1, &o0);
}

#[test]
fn runs_on_hugepages() {
    if !hugepages_available() {
        // scripts/setup.sh reserves them; a machine without them cannot run this.
        eprintln!("SKIP runs_on_hugepages: no free 2 MB hugepages mounted (run scripts/setup.sh as root)");
        return;
    }
    let d = Scratch::new("fwdhuge");
    let (inp, out) = (d.path("in.pcap"), d.path("out.pcap"));
    traffic(&["mixed", &inp, "--count", "100"]);
    let pfx = prefix("fwdhuge");
    let eal = strings(&[
        "--no-pci",
        "-m",
        "256",
        // Without it DPDK keeps its hugepage files after the app exits
        // (for secondary processes): 128 pages lost per run.
        "--huge-unlink",
        "--file-prefix",
        &pfx,
        "-l",
        "0",
        "--vdev",
        &format!("net_pcap0,rx_pcap={inp},tx_pcap={out}"),
    ]);
    let o = run_app(&eal, &strings(&["--stop-after", "100", "--no-control-socket"]), LIMIT);
    assert_eq!(o.code(), 0, "{}", o.all());
    assert_same_pcap(&inp, &out);
    let left: Vec<String> = hugetlbfs_mounts()
        .iter()
        .filter_map(|m| std::fs::read_dir(m).ok())
        .flat_map(|d| d.flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&pfx))
        .collect();
    assert!(left.is_empty(), "hugepage files left behind: {left:?}");
}

/// `systemctl stop` sends SIGTERM: under a full load (net_null receives
/// on every poll) the app stops as it does on SIGINT, with status 0, its
/// final counters, its `--final-stats` file and every mbuf back.
#[test]
fn sigterm_stops_cleanly_under_load() {
    let d = Scratch::new("fwdterm");
    let eal = eal_null_pair("fwdterm", "0-1");
    let fin = d.path("final.json");
    let args = strings(&[
        "--vport",
        "name=vm,fast=net_null0,role=vm",
        "--vport",
        "name=wan,fast=net_null1,role=net",
        "--final-stats",
        &fin,
    ]);
    let app = live::App::start(&eal, &args, &d.path("ctl.sock"), LIMIT);
    poll_until(
        LIMIT,
        "traffic",
        || app.stats().total("rx_packets") > 10_000,
        String::new,
    );
    let o = app.stop_by("TERM", LIMIT);
    assert_eq!(o.code(), 0, "{}", o.all());
    assert!(o.stderr.contains("signal received, stopping"), "{}", o.all());
    assert!(o.stdout.contains("final counters"), "{}", o.all());
    assert!(o.stdout.contains("mbufs: all"), "{}", o.all());
    let f = live::Stats::read(&fin);
    assert_eq!(f.mbufs_in_use(), 0, "{:#}", f.0);
    assert!(f.total("tx_packets") > 10_000, "{:#}", f.0);
}

/// Committing a large flow table can take seconds (1.9 GiB here: 9 s
/// where the kernel compacts memory for 2 MB pages, 0.15 s where it has
/// them free): the app says so, and Ctrl-C meanwhile stops it there
/// instead of after the commit (it used to wait the whole commit out,
/// silently, then start and stop). The signal is sent once the app
/// announces the commit; whether it lands before the commit ends is up
/// to the host, so either end is checked for what it must be.
/// (`prefault_until`'s stopping is tested on its own in vfp-core.)
#[test]
fn a_signal_while_the_flow_tables_are_committed_stops_the_start() {
    let eal = eal_null_pair("fwdcommit", "0");
    let policy = repo_root().join("examples/allow-all.toml");
    let args = strings(&[
        "--no-control-socket",
        "--policy",
        policy.to_str().unwrap(),
        "--max-flows",
        "3000000",
    ]);
    let mut app = Live::app(&eal, &args);
    app.wait_for("the commit", LIMIT, |_, e| {
        e.contains("flow tables: committing 1.9 GiB")
    });
    app.interrupt();
    let o = app.finish(LIMIT);
    if o.stderr.contains("committed in") {
        // The commit ended first: the app started and stopped cleanly.
        assert_eq!(o.code(), 0, "{}", o.all());
        assert!(o.stderr.contains("signal received, stopping"), "{}", o.all());
    } else {
        assert_eq!(o.code(), 1, "{}", o.all());
        assert!(
            o.stderr
                .contains("error: signal received while committing the flow tables: stopped"),
            "{}",
            o.all()
        );
        assert!(!o.stderr.contains("forwarding on"), "{}", o.all());
    }
}

/// The counter tables go to stdout, which an operator may pipe into a
/// program that exits (`pmd-app ... | head`): the app keeps forwarding,
/// says once on stderr that stdout failed, and still stops cleanly.
#[test]
fn a_closed_stdout_does_not_stop_the_app() {
    use std::io::{BufRead, BufReader, Read};
    let eal = eal_null_pair("fwdpipe", "0");
    let mut child = KillOnDrop(spawn_app(
        &eal,
        &strings(&["--stats-period", "1", "--no-control-socket"]),
    ));
    let mut err = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // The first periodic table, then the reading end goes away.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while out.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("pmd-app counters") {
        line.clear();
    }
    assert!(line.contains("pmd-app counters"), "no counters on stdout");
    drop(out);
    // Stopped now, it prints its final counters into the closed pipe.
    let status = interrupt(&mut child);
    let stderr = err.join().unwrap();
    assert!(status.is_ok_and(|s| s.code() == Some(0)), "{status:?}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.matches("stdout: Broken pipe").count(), 1, "{stderr}");
}

/// A program that stops reading the app's stdout (a paused pager) fills
/// the pipe: the control thread goes on (the control socket answers),
/// tables are skipped and said to be, and the app still stops on SIGINT,
/// after a bounded wait for its last lines.
#[test]
fn a_stdout_nobody_reads_does_not_stop_the_app() {
    use std::io::{BufRead, BufReader};
    let d = Scratch::new("fwdstall");
    let sock = d.path("ctl.sock");
    let eal = eal_null_pair("fwdstall", "0");
    let mut child = KillOnDrop(spawn_app(
        &eal,
        &strings(&["--stats-period", "1", "--control-socket", &sock]),
    ));
    // Never read; one page of pipe (the kernel's least) fills in seconds.
    let stdout = child.stdout.take().unwrap();
    one_page(&stdout);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let err = BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in err.lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = std::time::Instant::now() + LIMIT;
    let skipped = std::iter::from_fn(|| {
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .ok()
    })
    .any(|l| l.contains("counter tables are skipped"));
    assert!(skipped, "no skipped tables reported within {LIMIT:?}");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_vfpctl"))
        .args(["--socket", &sock, "--timeout", "10", "status"])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "control socket: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let status = interrupt(&mut child);
    let stderr = reader.join().unwrap();
    drop(stdout);
    assert!(status.is_ok_and(|s| s.code() == Some(0)), "{status:?}\n{stderr}");
    assert!(stderr.contains("the last counters were not all written"), "{stderr}");
}

/// The same for stderr (`pmd-app ... 2>&1 | less`, paused): logging never
/// stops the thread that logs. 2,000 control requests that each log a
/// line are all answered while nobody reads stderr (one page of pipe
/// holds about 50 lines); the lines past what stderr and the log queue
/// hold are dropped and counted, the count is written once stderr is
/// read again (every request's line is written or counted), and the app
/// stops cleanly, its last lines written.
#[test]
fn a_stderr_nobody_reads_does_not_stop_the_app() {
    use std::io::{BufRead, BufReader, Read, Write};
    let d = Scratch::new("fwderr");
    let sock = d.path("ctl.sock");
    let eal = eal_null_pair("fwderr", "0");
    let mut child = KillOnDrop(spawn_app(&eal, &strings(&["--control-socket", &sock])));
    let mut out = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let stderr = child.stderr.take().unwrap();
    one_page(&stderr);
    poll_until(
        LIMIT,
        "the control socket",
        || std::os::unix::net::UnixStream::connect(&sock).is_ok(),
        String::new,
    );
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut replies = BufReader::new(s.try_clone().unwrap());
    const REQUESTS: usize = 2000;
    let mut line = String::new();
    for i in 0..REQUESTS {
        writeln!(s, r#"{{"id":{i},"cmd":"log-level","args":{{"level":"info"}}}}"#).unwrap();
        line.clear();
        let n = replies.read_line(&mut line);
        assert!(
            n.as_ref().is_ok_and(|&n| n > 0) && line.contains(r#""ok":true"#),
            "request {i}: {n:?} {line}"
        );
    }
    // Now read stderr: what was queued, then the count of what was not.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    // Each request's line is written or counted as dropped; the count of
    // a run of drops is written before the next line that is not. Once
    // every request is accounted for, the queue is empty again (nothing
    // else logs meanwhile) and the stop's own lines are not dropped.
    let mut stderr = String::new();
    let accounted = |all: &str| {
        let dropped: usize = all
            .lines()
            .filter_map(|l| l.strip_suffix(" log line(s) dropped: stderr was not being read"))
            .map(|l| l.strip_prefix("pmd-app: ").unwrap().parse::<usize>().unwrap())
            .sum();
        (all.matches("log level set to INFO").count(), dropped)
    };
    let deadline = std::time::Instant::now() + LIMIT;
    while {
        let (w, d) = accounted(&stderr);
        w + d < REQUESTS
    } {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        let l = rx
            .recv_timeout(wait)
            .unwrap_or_else(|e| panic!("stderr: {e} before every request was accounted for\n{stderr}"));
        stderr.push_str(&l);
        stderr.push('\n');
    }
    drop((s, replies));
    let status = interrupt(&mut child);
    stderr.extend(rx.iter().map(|l| l + "\n"));
    reader.join().unwrap();
    let stdout = out.join().unwrap();
    assert!(status.is_ok_and(|s| s.code() == Some(0)), "{status:?}\n{stderr}");
    assert!(stdout.contains("mbufs: all"), "{stdout}");
    let (written, dropped) = accounted(&stderr);
    assert!(dropped > 0, "nothing dropped: the test did not fill stderr\n{stderr}");
    assert_eq!(written + dropped, REQUESTS, "{stderr}");
    assert!(stderr.contains("worker 0 stopped"), "{stderr}");
}

/// Shrinks a pipe to one page, the kernel's least: never read, it fills
/// in a few lines.
fn one_page(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_SETPIPE_SZ on a pipe this test owns; no memory is passed.
    let rc = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(rc >= 4096, "F_SETPIPE_SZ: {rc}");
}

/// SIGINT to `child`, then its exit status (Err: it had to be killed).
fn interrupt(child: &mut std::process::Child) -> Result<std::process::ExitStatus, std::process::ExitStatus> {
    let pid = child.id().to_string();
    let k = std::process::Command::new("kill").args(["-INT", &pid]).status();
    assert!(k.as_ref().is_ok_and(|s| s.success()), "kill -INT {pid}: {k:?}");
    wait_bounded(child, LIMIT)
}

#[test]
fn null_and_ring_devices_forward() {
    // net_null generates on rx; net_ring loops its tx back to its rx, so
    // packets cross the app both ways.
    let mut eal = eal_base("fwdnull", "0");
    eal.extend(strings(&["--vdev", "net_null0,size=64", "--vdev", "net_ring0"]));
    let o = run_app(
        &eal,
        &strings(&["--stop-after", "100000", "--no-control-socket"]),
        LIMIT,
    );
    assert_eq!(o.code(), 0, "{}", o.all());
    let line = |name: &str| {
        o.stdout
            .lines()
            .find(|l| l.starts_with(name) && l.contains("net_"))
            .map(str::to_owned)
    };
    let ring = line("port1").unwrap_or_else(|| panic!("no ring row\n{}", o.all()));
    let cols: Vec<u64> = ring.split_whitespace().filter_map(|c| c.parse().ok()).collect();
    // port id, rx, tx, ...: the ring received what it was sent.
    assert!(cols.len() >= 3 && cols[1] > 0 && cols[2] > 0, "{ring}");
}
