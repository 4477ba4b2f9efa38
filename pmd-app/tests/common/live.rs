//! A live instance under test: the running pmd-app driven through its
//! control socket with `vfpctl --json`, helper processes followed through
//! their JSON-lines output, accessors over the `stats` result, and bounded
//! polling. Everything started here is killed when its guard drops.

use super::pmd_app;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A child process whose stdout is JSON lines, followed while it runs.
/// Killed when dropped.
pub struct Proc {
    pub what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command, what: &str) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let out = child.stdout.take().unwrap();
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let (m, cv) = &*l2;
                m.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = Some(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }));
        Proc {
            what: what.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    /// Every JSON line printed so far.
    pub fn events(&self) -> Vec<Value> {
        let (m, _) = &*self.lines;
        m.lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn output_so_far(&self) -> String {
        self.lines.0.lock().unwrap().join("\n")
    }

    /// Waits (bounded) for an event satisfying `pred`; fails the test with
    /// the process's output if it does not come or the process exits.
    pub fn wait_event(&mut self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            {
                let (m, cv) = &*self.lines;
                let g = m.lock().unwrap();
                if let Some(v) = g
                    .iter()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|v| pred(v))
                {
                    return v;
                }
                let _ = cv.wait_timeout(g, Duration::from_millis(50)).unwrap();
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                // Give the reader thread a last chance to catch the lines.
                let (m, _) = &*self.lines;
                if let Some(v) = m
                    .lock()
                    .unwrap()
                    .iter()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|v| pred(v))
                {
                    return v;
                }
                let err = self.take_stderr();
                panic!(
                    "{} exited ({st}) before the awaited event:\n{}\n{err}",
                    self.what,
                    self.output_so_far()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: awaited event not seen within {limit:?}:\n{}",
                    self.what,
                    self.output_so_far()
                );
            }
        }
    }

    /// The last `progress` byte count, 0 before the first.
    pub fn progress(&self) -> u64 {
        self.events()
            .iter()
            .filter(|e| e["event"] == "progress")
            .filter_map(|e| e["bytes"].as_u64())
            .max()
            .unwrap_or(0)
    }

    /// Waits until a `progress` event reports more than `bytes`.
    pub fn wait_progress_beyond(&mut self, bytes: u64, limit: Duration) -> u64 {
        let v = self.wait_event(limit, |e| {
            e["event"] == "progress" && e["bytes"].as_u64().is_some_and(|b| b > bytes)
        });
        v["bytes"].as_u64().unwrap()
    }

    /// Closes the process's stdin (the client's "stop streaming").
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    pub fn write_stdin(&mut self, s: &str) {
        if let Some(i) = self.stdin.as_mut() {
            let _ = i.write_all(s.as_bytes());
        }
    }

    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit; kills it at the deadline
    /// and fails the test.
    pub fn wait(&mut self, limit: Duration) -> (ExitStatus, Vec<Value>, String) {
        let deadline = Instant::now() + limit;
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self.take_stderr();
                panic!(
                    "{} did not finish within {limit:?}:\n{}\n{err}",
                    self.what,
                    self.output_so_far()
                );
            }
            let (m, cv) = &*self.lines;
            let g = m.lock().unwrap();
            let _ = cv.wait_timeout(g, Duration::from_millis(50)).unwrap();
        };
        let err = self.take_stderr();
        // The stdout reader ends at EOF right after exit.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && Arc::strong_count(&self.lines) > 1 {
            std::thread::sleep(Duration::from_millis(10));
        }
        (st, self.events(), err)
    }

    /// Waits for exit 0 and returns the `done` event.
    pub fn wait_success(&mut self, limit: Duration) -> Value {
        let (st, ev, err) = self.wait(limit);
        assert!(st.success(), "{} failed ({st}):\n{ev:?}\n{err}", self.what);
        ev.into_iter()
            .rev()
            .find(|e| e["event"] == "done")
            .unwrap_or(Value::Null)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running pmd-app with a control socket, stopped (SIGINT) by
/// [`App::stop`] or killed when dropped.
pub struct App {
    child: Option<Child>,
    pub socket: String,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<String>>,
    /// Dropped after the app is stopped (see [`super::af_packet_turn`]).
    _turn: Option<std::sync::MutexGuard<'static, ()>>,
}

pub const VFPCTL: &str = env!("CARGO_BIN_EXE_vfpctl");

impl App {
    /// Starts `pmd-app EAL -- APP --control-socket SOCKET` and waits until
    /// the control socket answers `status`.
    pub fn start(eal: &[String], app: &[String], socket: &str, limit: Duration) -> App {
        // DPDK 22.11's af_packet PMD names its PACKET_FANOUT group
        // (pid ^ ifindex) & 0xffff; when another process on the host holds
        // that group id on another interface the probe fails with EINVAL.
        // A new process has a new pid, hence another group id.
        const FANOUT_CLASH: &str = "could not set PACKET_FANOUT";
        let mut attempt = 1;
        loop {
            match App::try_start(eal, app, socket, limit) {
                Ok(a) => return a,
                Err((_, _, e)) if e.contains(FANOUT_CLASH) && attempt < 4 => {
                    eprintln!("pmd-app start-up attempt {attempt}: af_packet fanout group id clash, retrying");
                    attempt += 1;
                }
                Err((st, o, e)) => {
                    panic!("pmd-app exited ({st}) during start-up:\n--- stdout\n{o}\n--- stderr\n{e}")
                }
            }
        }
    }

    /// One start-up: Err with the exit status and output if the app exits
    /// before its control socket answers.
    fn try_start(
        eal: &[String],
        app: &[String],
        socket: &str,
        limit: Duration,
    ) -> Result<App, (ExitStatus, String, String)> {
        let turn = super::af_packet_turn(eal);
        let mut child = Command::new(pmd_app())
            .args(eal)
            .arg("--")
            .args(app)
            .args(["--control-socket", socket])
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pmd-app");
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut s = Vec::new();
                let _ = r.read_to_end(&mut s);
                String::from_utf8_lossy(&s).into_owned()
            })
        };
        let out = Some(drain(Box::new(child.stdout.take().unwrap())));
        let err = Some(drain(Box::new(child.stderr.take().unwrap())));
        let mut app = App {
            child: Some(child),
            socket: socket.to_string(),
            out,
            err,
            _turn: turn,
        };
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = app.child.as_mut().unwrap().try_wait().unwrap() {
                let (o, e) = app.collect();
                app.child = None;
                return Err((st, o, e));
            }
            let r = app.ctl_output(&["status"]);
            if r.status.success() {
                return Ok(app);
            }
            if Instant::now() > deadline {
                let _ = app.child.as_mut().unwrap().kill();
                let (o, e) = app.collect();
                panic!(
                    "pmd-app's control socket {socket} did not answer within {limit:?} ({}):\n--- stdout\n{o}\n--- stderr\n{e}",
                    String::from_utf8_lossy(&r.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn collect(&mut self) -> (String, String) {
        let _ = self.child.as_mut().map(|c| c.wait());
        let o = self
            .out
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let e = self
            .err
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (o, e)
    }

    pub fn ctl_output(&self, args: &[&str]) -> std::process::Output {
        Command::new(VFPCTL)
            .args(["--socket", &self.socket, "--json", "--timeout", "20"])
            .args(args)
            .output()
            .expect("run vfpctl")
    }

    /// `vfpctl --json ARGS`, which must succeed; its result as JSON.
    pub fn ctl(&self, args: &[&str]) -> Value {
        let o = self.ctl_output(args);
        assert!(
            o.status.success(),
            "vfpctl {args:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "vfpctl {args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&o.stdout)
            )
        })
    }

    /// `stats`, which must succeed.
    pub fn stats(&self) -> Stats {
        Stats(self.ctl(&["stats"]))
    }

    /// Runs `traffic` between two `stats` and asserts that `vport`
    /// transmitted on `path` meanwhile (`what` says when, for the
    /// message); returns the stats after.
    pub fn transmits_during(&self, vport: &str, path: &str, what: &str, traffic: impl FnOnce()) -> Stats {
        let before = self.stats();
        traffic();
        let after = self.stats();
        let tx = |s: &Stats| s.path_counter(vport, path, "tx_packets");
        assert!(
            tx(&after) > tx(&before),
            "no transmit on {vport}'s {path} path {what}: {:#}",
            after.0
        );
        after
    }

    /// [`App::stop`], checking a clean exit (status 0, every mbuf back).
    pub fn stop_clean(self, limit: Duration) -> super::Output {
        let o = self.stop(limit);
        assert_eq!(o.code(), 0, "{}", o.all());
        assert!(o.stdout.contains("mbufs: all"), "{}", o.all());
        o
    }

    /// Stops the app with SIGINT and waits (bounded) for it to exit.
    pub fn stop(self, limit: Duration) -> super::Output {
        self.stop_by("INT", limit)
    }

    /// Stops the app with signal `sig` (`INT`, `TERM`) and waits
    /// (bounded) for it to exit.
    pub fn stop_by(mut self, sig: &str, limit: Duration) -> super::Output {
        let child = self.child.as_mut().unwrap();
        let pid = child.id().to_string();
        let k = Command::new("kill").args([&format!("-{sig}"), &pid]).status();
        assert!(k.as_ref().is_ok_and(|s| s.success()), "kill -{sig} {pid}: {k:?}");
        let waited = super::wait_bounded(child, limit);
        let (stdout, stderr) = self.collect();
        let Ok(status) = waited else {
            panic!("pmd-app did not stop within {limit:?} of SIG{sig}:\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
        };
        self.child = None;
        super::Output { status, stdout, stderr }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// Accessors over a `stats` result (docs/control-protocol.md), in one
/// place so the tests read as assertions.
pub struct Stats(pub Value);

impl Stats {
    /// Reads the file `--final-stats` wrote.
    pub fn read(path: &str) -> Stats {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("--final-stats {path}: {e}"));
        Stats(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}")))
    }
    fn path(&self, vport: &str, path: &str) -> &Value {
        self.0["vports"]
            .as_array()
            .and_then(|v| v.iter().find(|x| x["name"] == vport))
            .map(|v| &v["paths"][path])
            .unwrap_or(&Value::Null)
    }
    /// A counter of one path of one vport (0 when the path is absent).
    pub fn path_counter(&self, vport: &str, path: &str, counter: &str) -> u64 {
        self.path(vport, path)[counter].as_u64().unwrap_or(0)
    }
    /// A counter summed over both paths of every vport.
    pub fn total(&self, counter: &str) -> u64 {
        self.0["vports"]
            .as_array()
            .map(|vs| {
                vs.iter()
                    .flat_map(|v| ["fast", "soft"].map(|p| v["paths"][p][counter].as_u64().unwrap_or(0)))
                    .sum()
            })
            .unwrap_or(0)
    }
    /// Every counted drop, by reason.
    pub fn drops(&self) -> Vec<(String, u64)> {
        self.0["drops"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
            .unwrap_or_default()
    }
    pub fn drop_total(&self) -> u64 {
        self.drops().iter().map(|(_, n)| n).sum()
    }
    /// Drops of one reason (`policy-deny` and `policy_deny` alike).
    pub fn drop_count(&self, reason: &str) -> u64 {
        let norm = |s: &str| s.replace('_', "-");
        self.drops()
            .iter()
            .filter(|(k, _)| norm(k) == norm(reason))
            .map(|(_, n)| n)
            .sum()
    }
    /// Switches of `vport` with this cause in the recent-switch log.
    pub fn switch_count(&self, vport: &str, cause: &str) -> usize {
        self.switches()
            .iter()
            .filter(|w| w["vport"] == vport && w["cause"] == cause)
            .count()
    }
    /// A device-side loss summed over every path (`rx-nombuf`, ...).
    pub fn device_drop(&self, name: &str) -> u64 {
        self.0["device_drops"][name].as_u64().unwrap_or(0)
    }
    pub fn mbufs_in_use(&self) -> u64 {
        self.0["mbufs"]["in_use"]
            .as_u64()
            .unwrap_or_else(|| panic!("stats without mbufs.in_use: {}", self.0))
    }
    pub fn switches(&self) -> Vec<Value> {
        self.0["switches"].as_array().cloned().unwrap_or_default()
    }
    /// A counter of the lcore row of worker `w` (0 when there is none).
    pub fn worker_counter(&self, w: u64, counter: &str) -> u64 {
        self.0["lcores"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["worker"] == w))
            .and_then(|l| l[counter].as_u64())
            .unwrap_or(0)
    }
}

/// The entry of `vport` in a `status` result.
pub fn vport_status(status: &Value, vport: &str) -> Value {
    status["vports"]
        .as_array()
        .and_then(|v| v.iter().find(|x| x["name"] == vport))
        .cloned()
        .unwrap_or_else(|| panic!("status has no vport {vport}: {status}"))
}

/// The active path of `vport` in a `status` result.
pub fn active_path(status: &Value, vport: &str) -> String {
    let v = vport_status(status, vport);
    v["active"]
        .as_str()
        .unwrap_or_else(|| panic!("no active path in {v}"))
        .to_string()
}

/// The flows of a `flows` result.
pub fn flow_list(flows: &Value) -> Vec<Value> {
    flows["flows"].as_array().cloned().unwrap_or_default()
}

/// The flow whose text mentions `needle` (e.g. "10.1.0.4:43210"), with
/// the whole listing on failure.
pub fn find_flow(flows: &Value, needle: &str) -> Value {
    flow_list(flows)
        .into_iter()
        .find(|f| f.to_string().contains(needle))
        .unwrap_or_else(|| panic!("no flow mentions {needle}:\n{flows:#}"))
}

/// Waits (bounded) until `vport` has switched at least `n` times for
/// `cause`; the stats that show it.
pub fn wait_switches(app: &App, vport: &str, cause: &str, n: usize, limit: Duration) -> Stats {
    poll(limit, &format!("{n} {cause} switch(es) of {vport}"), || {
        let s = Stats(app.ctl(&["stats"]));
        if s.switch_count(vport, cause) >= n {
            Ok(s)
        } else {
            Err(format!("{:#?}", s.switches()))
        }
    })
}

/// Polls `cond` every 50 ms until it returns Some, failing after `limit`
/// with `what` and the last value seen.
pub fn poll<T>(limit: Duration, what: &str, mut cond: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match cond() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => panic!("{what}: not within {limit:?}; last: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
