//! The application's control-socket [`Handler`]: each validated command
//! becomes a request that the supervisor runs on the control thread
//! against the [`Dataplane`], and the result is the JSON reply the
//! protocol documents (`docs/control-protocol.md`). Connection threads
//! only wait, with a deadline, for their answer; the datapath never
//! waits on them.

use crate::control::{Command, CtlError, DebugOp, FlowsOp, FlowsQuery, Handler, PathChoice, PolicyOp};
use crate::dataplane::{Dataplane, PublishError};
use crate::failsafe::SwitchError;
use crate::policy_ctl::InstallError;
use crate::report::Snapshot;
use crate::supervisor::Request;
use crate::vport::{PathKind, PathState};
use crossbeam::channel::{self, Sender};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vfp_core::policy::Policy;
use vfp_core::shard::{FlowFilter, FlowInfo};
use vfp_core::topology::VportInfo;

/// How long a connection waits for the control thread to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(8);

pub struct AppHandler {
    pub requests: Sender<Request>,
    pub running: Arc<AtomicBool>,
    /// The vports as a policy sees them (fixed once the app runs): policy
    /// files are read and checked on the connection's thread, so a large
    /// one does not hold the control thread (failover, other clients) up.
    pub topology: Vec<VportInfo>,
}

/// Where a request handed to the control thread is: pending, then either
/// started (by the control thread) or abandoned (by its connection, whose
/// client is answered `timeout`), never both.
#[derive(Default)]
struct RequestState(AtomicU8);

impl RequestState {
    const PENDING: u8 = 0;
    const STARTED: u8 = 1;
    const ABANDONED: u8 = 2;

    /// The control thread may run the request (it was not abandoned).
    fn start(&self) -> bool {
        self.swap_pending(Self::STARTED)
    }

    /// The request will not run (it had not started).
    fn abandon(&self) -> bool {
        self.swap_pending(Self::ABANDONED)
    }

    fn swap_pending(&self, to: u8) -> bool {
        self.0
            .compare_exchange(Self::PENDING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

type Outcome = Result<Value, CtlError>;

impl Handler for AppHandler {
    fn handle(&self, cmd: Command) -> Outcome {
        if !self.running.load(Ordering::Relaxed) {
            return Err(CtlError::unavailable("the instance is shutting down"));
        }
        match cmd {
            Command::LogLevel { level } => {
                if let Some(l) = level {
                    log::set_max_level(l.to_level_filter());
                    log::info!("log level set to {l} by the control socket");
                }
                Ok(json!({"level": log::max_level().to_string().to_lowercase()}))
            }
            Command::Shutdown => {
                log::info!("shutdown requested through the control socket");
                self.running.store(false, Ordering::Relaxed);
                Ok(json!({"shutting_down": true}))
            }
            Command::Policy(PolicyOp::Validate { file }) => {
                let p = self.read_policy(&file)?;
                self.on_control_thread(move |dp| policy_validate(dp, p))
            }
            Command::Policy(PolicyOp::Load { file }) => {
                let p = self.read_policy(&file)?;
                self.on_control_thread(move |dp| policy_load(dp, p))
            }
            other => self.on_control_thread(move |dp| execute(dp, other)),
        }
    }
}

impl AppHandler {
    fn read_policy(&self, file: &Path) -> Result<Policy, CtlError> {
        vfp_core::policy::load_file(file, &self.topology).map_err(|e| CtlError::invalid_argument(e.to_string()))
    }

    /// Runs `f` on the control thread and returns its outcome. A request
    /// still queued when its client is answered `timeout` is dropped
    /// unrun, so a `timeout` never hides a change made later; one that
    /// started by then is waited for once more, and its outcome returned.
    fn on_control_thread(&self, f: impl FnOnce(&mut Dataplane) -> Outcome + Send + 'static) -> Outcome {
        let (tx, rx) = channel::bounded(1);
        let state = Arc::new(RequestState::default());
        let run_state = Arc::clone(&state);
        let rq: Request = Box::new(move |dp: &mut Dataplane| {
            if run_state.start() {
                let _ = tx.send(f(dp));
            }
        });
        self.requests
            .send_timeout(rq, ANSWER_TIMEOUT)
            .map_err(|_| CtlError::unavailable("the control thread is not taking requests"))?;
        let gone = || CtlError::unavailable("the instance is shutting down");
        match rx.recv_timeout(ANSWER_TIMEOUT) {
            Ok(r) => r,
            Err(channel::RecvTimeoutError::Timeout) => {
                if state.abandon() {
                    return Err(CtlError::timeout(
                        "the control thread did not get to the request in time; it was not carried out",
                    ));
                }
                match rx.recv_timeout(ANSWER_TIMEOUT) {
                    Ok(r) => r,
                    Err(channel::RecvTimeoutError::Timeout) => Err(CtlError::timeout(
                        "the request started but did not finish in time; it completes on its own",
                    )),
                    Err(channel::RecvTimeoutError::Disconnected) => Err(gone()),
                }
            }
            Err(channel::RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }
}

fn execute(dp: &mut Dataplane, cmd: Command) -> Outcome {
    match cmd {
        Command::Status => Ok(status(dp)),
        Command::Ports => Ok(ports(dp)),
        Command::Switch { vport, path } => switch(dp, &vport, path),
        Command::Stats => Ok(stats(dp, &Snapshot::take(dp, dp.last_sample.as_ref()))),
        Command::Flows(q) => flows(dp, q),
        Command::Policy(op) => policy(dp, op),
        Command::Debug(op) => debug(dp, op),
        Command::LogLevel { .. } | Command::Shutdown => Err(CtlError::failed("handled elsewhere")),
    }
}

fn path_json(dp: &Dataplane, vi: usize, k: PathKind) -> Value {
    let v = &dp.vports[vi];
    match v.path(k) {
        None => Value::Null,
        Some(p) => {
            let state = if p.state == PathState::Up && v.active != Some(k) {
                "standby"
            } else {
                p.state.as_str()
            };
            let mut o = json!({"device": p.device, "port_id": p.port.map(|x| x.0), "state": state});
            // A faulty path is tried again after a back-off: say when.
            if let (PathState::Faulty, Some(at)) = (p.state, p.health.retry_at) {
                let left = at.saturating_duration_since(std::time::Instant::now());
                o["retry_in_ms"] = json!(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
            }
            o
        }
    }
}

fn active(dp: &Dataplane, vi: usize) -> &'static str {
    dp.vports[vi].active.map_or("none", PathKind::as_str)
}

pub fn status(dp: &Dataplane) -> Value {
    let vports: Vec<Value> = (0..dp.vports.len())
        .map(|i| {
            let v = &dp.vports[i];
            json!({
                "name": v.name,
                "role": v.role.as_str(),
                "active": active(dp, i),
                "mode": v.mode.as_str(),
                "fast": path_json(dp, i, PathKind::Fast),
                "soft": path_json(dp, i, PathKind::Soft),
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": crate::control::PROTOCOL_VERSION,
        "uptime_s": dp.uptime().as_secs(),
        "mode": if dp.policy.is_some() { "pipeline" } else { "forward" },
        "lcores": dp.lcores(),
        "workers": dp.workers.len(),
        "policy_generation": dp.policy.as_ref().map_or(0, |p| p.generation),
        "policy": dp.policy.as_ref().map(|p| p.origin().to_string()),
        "switches": dp.switch_count,
        "vports": vports,
    })
}

fn ports(dp: &Dataplane) -> Value {
    let mut out = Vec::new();
    for v in &dp.vports {
        for k in PathKind::BOTH {
            let Some(p) = v.path(k) else { continue };
            let mut o = json!({
                "port_id": p.port.map(|x| x.0),
                "device": p.device,
                "vport": v.name,
                "path": k.as_str(),
                "active": v.active == Some(k),
                "state": p.state.as_str(),
                "rx_queues": p.rx_queues,
                "tx_queues": p.tx_queues,
                "rss": p.rss,
                "tx_ipv4_csum_offload": p.tx_ipv4_csum,
            });
            if let Some(port) = p.port {
                let link = port.link();
                let m = port.mac();
                o["link_up"] = json!(link.up);
                o["speed_mbps"] = json!(link.speed_mbps);
                o["mac"] = json!(format!(
                    "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    m[0], m[1], m[2], m[3], m[4], m[5]
                ));
                o["mtu"] = json!(port.mtu());
            } else {
                o["link_up"] = json!(false);
            }
            out.push(o);
        }
    }
    json!({"ports": out})
}

fn switch(dp: &mut Dataplane, vport: &str, path: PathChoice) -> Outcome {
    if dp.vport_index(vport).is_none() {
        return Err(CtlError::not_found(format!("no vport named \"{vport}\"")));
    }
    let to = match path {
        PathChoice::Fast => Some(PathKind::Fast),
        PathChoice::Soft => Some(PathKind::Soft),
        PathChoice::Auto => None,
    };
    match dp.switch(vport, to) {
        Ok((k, mode, took_us)) => Ok(json!({
            "vport": vport, "active": k.as_str(), "mode": mode.as_str(), "took_us": took_us
        })),
        Err(e @ SwitchError::Publish(PublishError::NotAcknowledged(_))) => Err(CtlError::timeout(e.to_string())),
        Err(e) => Err(CtlError::failed(e.to_string())),
    }
}

/// The `stats` result (also written by `--final-stats`).
pub fn stats(dp: &Dataplane, s: &Snapshot) -> Value {
    let vports: Vec<Value> = dp
        .vports
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut paths = serde_json::Map::new();
            for k in PathKind::BOTH {
                let row = s.paths.iter().find(|r| r.vport == v.name && r.path == k.as_str());
                paths.insert(k.as_str().into(), row.map_or(Value::Null, |r| json!(r)));
            }
            json!({"name": v.name, "active": active(dp, i), "paths": paths})
        })
        .collect();
    json!({
        "uptime_s": s.uptime_s,
        "interval_s": s.interval_s,
        "mbufs": {"in_use": s.mbufs_in_use, "total": s.mbufs_total},
        "switches": dp.switches,
        "switch_count": dp.switch_count,
        "drops": s.drops,
        "device_drops": s.device_drops,
        "engine": s.engine,
        "vports": vports,
        "lcores": s.lcores,
    })
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    }
}

fn flow_json(dp: &Dataplane, f: &FlowInfo) -> Value {
    let mut v = json!(f);
    v["id"] = json!(((f.shard as u64) << 32) | u64::from(f.id));
    v["slot"] = json!(f.id);
    v["vport"] = json!(dp.vports.get(usize::from(f.vport)).map(|v| v.name.clone()));
    v["packets"] = json!(f.packets_fwd + f.packets_rev);
    v["bytes"] = json!(f.bytes_fwd + f.bytes_rev);
    v["idle_s"] = json!(f.idle_ns as f64 / 1e9);
    v
}

fn flows(dp: &mut Dataplane, q: FlowsQuery) -> Outcome {
    let vport = match &q.filter.vport {
        Some(name) => Some(
            dp.vport_index(name)
                .ok_or_else(|| CtlError::not_found(format!("no vport named \"{name}\"")))? as u16,
        ),
        None => None,
    };
    let filter = FlowFilter {
        vport,
        proto: q.filter.proto,
        addr: None,
        src: q.filter.src.map(v6),
        dst: q.filter.dst.map(v6),
        port: q.filter.port,
    };
    let failed = CtlError::timeout;
    match q.op {
        FlowsOp::Count => {
            let (n, _) = dp.flows(&filter, 0).map_err(failed)?;
            Ok(json!({"count": n}))
        }
        FlowsOp::List => {
            let (n, list) = dp.flows(&filter, q.limit as usize).map_err(failed)?;
            let flows: Vec<Value> = list.iter().map(|f| flow_json(dp, f)).collect();
            Ok(json!({"count": n, "flows": flows}))
        }
        FlowsOp::Show { id } => match dp.flow(id).map_err(failed)? {
            Some(f) => Ok(json!({"flow": flow_json(dp, &f)})),
            None => Err(CtlError::not_found(format!("no flow with id {id}"))),
        },
        FlowsOp::Flush => {
            let n = dp.flush_flows(&filter).map_err(failed)?;
            log::info!("flushed {n} flow(s) on request");
            Ok(json!({"flushed": n}))
        }
    }
}

fn policy(dp: &mut Dataplane, op: PolicyOp) -> Outcome {
    match op {
        PolicyOp::Show => match &dp.policy {
            Some(p) => {
                let mut v = json!(p.summary());
                v["generation"] = json!(p.generation);
                v["origin"] = json!(p.origin());
                v["rules"] = json!(p.rule_count());
                Ok(v)
            }
            None => Ok(json!({"generation": 0, "origin": null, "rules": 0, "layers": []})),
        },
        // The app's handler reads the file on the connection's thread and
        // calls the two below; this reads it here (same outcome).
        PolicyOp::Validate { file } => {
            let p = dp.read_policy(&file).map_err(CtlError::invalid_argument)?;
            policy_validate(dp, p)
        }
        PolicyOp::Load { file } => {
            let p = dp.read_policy(&file).map_err(CtlError::invalid_argument)?;
            policy_load(dp, p)
        }
    }
}

fn policy_validate(dp: &mut Dataplane, p: Policy) -> Outcome {
    dp.check_snat_room(&p).map_err(CtlError::invalid_argument)?;
    Ok(json!({"valid": true, "rules": p.rule_count(), "layers": p.layers().len()}))
}

fn policy_load(dp: &mut Dataplane, p: Policy) -> Outcome {
    let p = dp.install_policy(p).map_err(|e| match e {
        InstallError::Refused(m) => CtlError::failed(m),
        InstallError::Late(m) => CtlError::timeout(m),
    })?;
    Ok(json!({"generation": p.generation, "rules": p.rule_count(), "origin": p.origin()}))
}

fn debug(dp: &mut Dataplane, op: DebugOp) -> Outcome {
    let (device, name, r) = match &op {
        DebugOp::Unplug { device } => (device.clone(), "unplug", None),
        DebugOp::Plug { device, devargs } => (device.clone(), "plug", Some(devargs.clone())),
    };
    if dp.find_device(&device).is_none() {
        return Err(CtlError::not_found(format!("no vport path uses device \"{device}\"")));
    }
    let res = match r {
        None => dp.unplug(&device),
        Some(args) => dp.plug(&device, args.as_deref()),
    };
    res.map_err(CtlError::failed)?;
    Ok(json!({"device": device, "op": name, "status": status(dp)["vports"].clone()}))
}

#[cfg(test)]
mod tests {
    use super::RequestState;

    #[test]
    fn an_abandoned_request_never_starts() {
        let s = RequestState::default();
        assert!(s.abandon());
        assert!(!s.start());
        assert!(!s.abandon());
    }

    #[test]
    fn a_started_request_cannot_be_abandoned() {
        let s = RequestState::default();
        assert!(s.start());
        assert!(!s.abandon());
        assert!(!s.start());
    }
}
