//! Shared fixtures of the control tests: a temporary directory, a mock
//! [`Handler`] with canned, realistic results, and a server started on it.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pmd_app::control::{Command, CtlError, DebugOp, FlowsOp, Handler, Limits, PolicyOp, Server, ServerHandle};
use serde_json::{json, Value};

/// A directory under /tmp (short: socket paths are limited to 108 bytes),
/// world-traversable so the `nobody` tests reach the socket itself.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/vfpctl-t{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn sock(&self) -> PathBuf {
        self.0.join("ctl.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Records every command and answers with canned results. Special names
/// trigger the error paths: vport `nope` / flow id 404 / device
/// `net_missing0` are `not_found`, device `net_fail0` is `failed`, policy
/// file `/bad.toml` is invalid, vport `slow` takes 300 ms, vport `panic`
/// panics.
#[derive(Default)]
pub struct Mock {
    pub seen: Mutex<Vec<Command>>,
    pub shutdown_tx: Mutex<Option<Sender<()>>>,
}

impl Mock {
    pub fn last(&self) -> Option<Command> {
        self.seen.lock().unwrap().last().cloned()
    }
    /// A receiver signalled when a `shutdown` command is handled.
    pub fn on_shutdown(&self) -> Receiver<()> {
        let (tx, rx) = channel();
        *self.shutdown_tx.lock().unwrap() = Some(tx);
        rx
    }
}

impl Handler for Mock {
    fn handle(&self, cmd: Command) -> Result<Value, CtlError> {
        self.seen.lock().unwrap().push(cmd.clone());
        match cmd {
            Command::Status => Ok(status()),
            Command::Ports => Ok(ports()),
            Command::Stats => Ok(stats()),
            Command::Switch { vport, path } => {
                if vport == "nope" {
                    return Err(CtlError::not_found(format!("no vport named \"{vport}\"")));
                }
                if vport == "panic" {
                    panic!("mock handler panics on purpose");
                }
                if vport == "slow" {
                    std::thread::sleep(Duration::from_millis(300));
                }
                let active = if path.as_str() == "auto" { "fast" } else { path.as_str() };
                let mode = if path.as_str() == "auto" { "auto" } else { "pinned" };
                Ok(json!({"vport": vport, "active": active, "mode": mode, "took_us": 183}))
            }
            Command::Flows(q) => match q.op {
                FlowsOp::Count => Ok(json!({"count": 2})),
                FlowsOp::List => Ok(json!({"count": 2, "flows": flows()})),
                FlowsOp::Show { id: 404 } => Err(CtlError::not_found("no flow with id 404")),
                FlowsOp::Show { .. } => Ok(json!({"flow": flows()[0]})),
                FlowsOp::Flush => Ok(json!({"flushed": 2})),
            },
            Command::Policy(PolicyOp::Show) => Ok(json!({
                "generation": 3, "origin": "/etc/vfp/policy.toml",
                "layers": [
                    {"name": "acl", "rules": 12, "default": "deny"},
                    {"name": "nat", "rules": 2, "default": "allow"}
                ]
            })),
            Command::Policy(PolicyOp::Load { file } | PolicyOp::Validate { file })
                if file == Path::new("/bad.toml") =>
            {
                Err(CtlError::invalid_argument("/bad.toml:3: unknown action \"dorp\""))
            }
            Command::Policy(PolicyOp::Load { .. }) => Ok(json!({"generation": 4, "rules": 14})),
            Command::Policy(PolicyOp::Validate { .. }) => Ok(json!({"valid": true, "rules": 14})),
            Command::LogLevel { level } => Ok(json!({
                "level": level.map_or("info".to_string(), |l| l.as_str().to_ascii_lowercase())
            })),
            Command::Shutdown => {
                if let Some(tx) = self.shutdown_tx.lock().unwrap().as_ref() {
                    let _ = tx.send(());
                }
                Ok(json!({"shutting_down": true}))
            }
            Command::Debug(op) => {
                let (device, name) = match &op {
                    DebugOp::Unplug { device } => (device.clone(), "unplug"),
                    DebugOp::Plug { device, .. } => (device.clone(), "plug"),
                };
                match device.as_str() {
                    "net_missing0" => Err(CtlError::not_found("no device net_missing0")),
                    "net_fail0" => Err(CtlError::failed("rte_dev_remove: -16 (device busy)")),
                    _ => Ok(json!({"device": device, "op": name})),
                }
            }
        }
    }
}

pub fn status() -> Value {
    json!({
        "version": "0.1.0", "protocol": 1, "uptime_s": 3725, "mode": "pipeline",
        "lcores": [1, 2, 3], "workers": 3, "policy_generation": 3,
        "policy": "/etc/vfp/policy.toml",
        "vports": [
            {"name": "wan", "role": "uplink", "active": "fast", "mode": "auto",
             "fast": {"device": "net_tap0", "port_id": 0, "state": "up"},
             "soft": {"device": "net_af_packet0", "port_id": 2, "state": "standby"}},
            {"name": "vm1", "role": "vm", "active": "soft", "mode": "pinned",
             "fast": {"device": "0000:03:00.1", "port_id": 4, "state": "faulty", "retry_in_ms": 1800},
             "soft": {"device": "net_ring1", "port_id": 3, "state": "up"}}
        ]
    })
}

pub fn ports() -> Value {
    json!({"ports": [
        {"port_id": 0, "device": "net_tap0", "vport": "wan", "path": "fast", "state": "up",
         "link_up": true, "speed_mbps": 10000, "rx_queues": 2, "tx_queues": 2,
         "mac": "02:00:00:00:00:01", "mtu": 1500},
        {"port_id": 2, "device": "net_af_packet0", "vport": "wan", "path": "soft",
         "state": "standby", "link_up": false, "speed_mbps": 0, "rx_queues": 1,
         "tx_queues": 1, "mac": "02:00:00:00:00:02", "mtu": 1500}
    ]})
}

pub fn stats() -> Value {
    json!({
        "interval_s": 1.0,
        "mbufs": {"in_use": 1536, "total": 16384},
        "switches": [
            {"vport": "wan", "from": "fast", "to": "soft", "cause": "link down",
             "at_s": 120.5, "took_us": 211}
        ],
        "drops": {"no_route": 3, "policy_deny": 17},
        "device_drops": {"rx-missed": 0, "rx-nombuf": 12, "rx-errors": 0, "tx-errors": 3},
        "vports": [
            {"name": "wan", "active": "fast", "paths": {
                "fast": {"rx_packets": 1000000, "tx_packets": 999000, "rx_bytes": 64000000,
                         "tx_bytes": 63936000, "rx_pps": 1250000.0, "tx_pps": 1249000.0,
                         "rx_gbps": 0.64, "tx_gbps": 0.639, "rx_missed": 0, "rx_nombuf": 12,
                         "rx_errors": 0, "tx_errors": 3},
                "soft": null}}
        ],
        "lcores": [
            {"lcore": 1, "worker": 0, "rx_packets": 500000, "tx_packets": 499500,
             "rx_pps": 625000.0, "tx_pps": 624500.0, "rx_gbps": 0.32, "tx_gbps": 0.319,
             "cycles_per_packet": 212.5, "idle_ratio": 0.41, "flows": 1024,
             "drops": {"policy_deny": 9}}
        ]
    })
}

pub fn flows() -> Vec<Value> {
    vec![
        json!({"id": 17, "vport": "wan", "dir": "out", "proto": "tcp",
               "src": "10.0.0.2:40000", "dst": "93.184.216.34:443", "state": "established",
               "packets": 120, "bytes": 80000, "idle_s": 0.5}),
        json!({"id": 18, "vport": "wan", "dir": "in", "proto": "udp",
               "src": "10.0.0.3:53000", "dst": "1.1.1.1:53", "state": "-",
               "packets": 2, "bytes": 180, "idle_s": 12.0}),
    ]
}

/// A server on a fresh temp dir with a [`Mock`] handler.
pub struct Fixture {
    pub handle: ServerHandle,
    pub mock: Arc<Mock>,
    pub dir: TempDir,
}

impl Fixture {
    pub fn start() -> Fixture {
        Fixture::with_limits(Limits::default())
    }
    pub fn with_limits(limits: Limits) -> Fixture {
        let dir = TempDir::new();
        let mock = Arc::new(Mock::default());
        let server = Server::bind(&dir.sock(), None).unwrap().with_limits(limits);
        let handle = server.spawn(mock.clone()).unwrap();
        Fixture { handle, mock, dir }
    }
    pub fn sock(&self) -> PathBuf {
        self.dir.sock()
    }
}
