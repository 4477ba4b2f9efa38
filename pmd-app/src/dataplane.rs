//! The control plane's view of the running dataplane: vports and their
//! paths, the workers (command channels and stats), plan publication and
//! the switch log. Only the control thread touches a `Dataplane`; workers
//! see immutable plans it publishes and acknowledge them.

use crate::dpdk::Mempool;
use crate::handoff::Inboxes;
use crate::plan::{self, WorkerPlan};
use crate::stats::WorkerStats;
use crate::vport::{PathKind, Vport};
use crate::worker::WorkerCmd;
use crossbeam::channel::Sender;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vfp_core::action::nat::NatPorts;
use vfp_core::policy::Policy;
use vfp_core::shard::ShardStats;

/// How long the control plane waits for every worker to acknowledge.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);

/// Why publishing a change to the running dataplane did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// Some workers did not acknowledge the new plans in time (or the app
    /// is stopping); the plans are published and may still take effect.
    NotAcknowledged(String),
    /// A worker's command channel is closed (it exited).
    WorkerGone(String),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::NotAcknowledged(m) | PublishError::WorkerGone(m) => f.write_str(m),
        }
    }
}

impl From<PublishError> for String {
    fn from(e: PublishError) -> String {
        e.to_string()
    }
}

pub struct WorkerHandle {
    pub lcore: u32,
    pub cmds: Sender<WorkerCmd>,
    pub stats: Arc<WorkerStats>,
}

/// One datapath switch, for the log and `stats`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SwitchEvent {
    pub vport: String,
    pub from: &'static str,
    pub to: &'static str,
    pub cause: String,
    /// Seconds since start.
    pub at_s: f64,
    /// Time from decision to every worker running the new plan.
    pub took_us: u64,
}

pub struct Dataplane {
    pub vports: Vec<Vport>,
    pub workers: Vec<WorkerHandle>,
    pub inboxes: Inboxes,
    pub pool: Arc<Mempool>,
    pub generation: u64,
    pub queues: u16,
    pub nb_desc: u16,
    pub socket: i32,
    pub started: Instant,
    pub running: Arc<AtomicBool>,
    /// Set by SIGINT/SIGTERM: the supervisor stops the app when it sees
    /// it; work that holds the control thread for long (committing flow
    /// tables) gives up on it.
    pub stop: Arc<AtomicBool>,
    pub switches: Vec<SwitchEvent>,
    pub switch_count: u64,
    /// Packets drained from a retired device that no inbox could take.
    pub drain_dropped: u64,
    /// The running policy (`None`: plain forwarding) and where it came from.
    pub policy: Option<Arc<Policy>>,
    /// SNAT port bitmaps shared by every shard.
    pub nat: Arc<NatPorts>,
    /// Flow pairs each shard holds at most.
    pub shard_capacity: usize,
    /// Sequence number of the last command that needs an acknowledgement.
    pub cmd_seq: u64,
    /// The last policy generation handed out. Never reused, not even by
    /// an install that failed: a worker may have taken that policy, and
    /// its pairs must be reconciled against the next one.
    pub policy_generation: u64,
    /// Every shard's counters, indexed like `workers` (empty until the
    /// pipeline starts); shared with DPDK telemetry's thread.
    pub engine_stats: Arc<std::sync::Mutex<Vec<Arc<ShardStats>>>>,
    /// Every path's device drops as the last link poll read them; shared
    /// with DPDK telemetry's thread.
    pub device_drops: Arc<crate::device_drops::Published>,
    /// The supervisor's latest rate sample (rates are against it).
    pub last_sample: Option<crate::report::Snapshot>,
}

const SWITCH_LOG: usize = 256;

fn path_name(k: Option<PathKind>) -> &'static str {
    k.map(PathKind::as_str).unwrap_or("none")
}

impl Dataplane {
    /// Plans for `workers` workers and the vports as they are now,
    /// without publishing them (start-up).
    pub fn plans(&self, workers: usize) -> Vec<WorkerPlan> {
        plan::build(&self.vports, workers.max(1), self.generation)
    }

    /// Publishes new plans and waits until every worker runs them. After
    /// this returns Ok no worker touches a queue the plans left out.
    pub fn publish(&mut self) -> Result<Duration, PublishError> {
        let t0 = Instant::now();
        self.generation += 1;
        let plans = plan::build(&self.vports, self.workers.len(), self.generation);
        for (w, p) in self.workers.iter().zip(plans) {
            w.cmds
                .send(WorkerCmd::Plan(Arc::new(p)))
                .map_err(|_| PublishError::WorkerGone(format!("worker on lcore {} is gone", w.lcore)))?;
        }
        self.wait_acks(self.generation)?;
        Ok(t0.elapsed())
    }

    fn wait_acks(&self, gen: u64) -> Result<(), PublishError> {
        let deadline = Instant::now() + ACK_TIMEOUT;
        loop {
            let lagging: Vec<u32> = self
                .workers
                .iter()
                .filter(|w| w.stats.plan_ack.load(Ordering::Acquire) < gen)
                .map(|w| w.lcore)
                .collect();
            if lagging.is_empty() {
                return Ok(());
            }
            if !self.running.load(Ordering::Relaxed) || Instant::now() > deadline {
                return Err(PublishError::NotAcknowledged(format!(
                    "lcore(s) {lagging:?} did not acknowledge plan {gen}"
                )));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Moves every vport whose desired path differs from its active one,
    /// publishes, and logs each switch with `cause`.
    pub fn reconcile(&mut self, cause: &str) -> Result<usize, PublishError> {
        let mut changed = Vec::new();
        for v in self.vports.iter_mut() {
            let want = v.desired();
            if want != v.active {
                changed.push((v.name.clone(), v.active, want));
                v.active = want;
            }
        }
        if changed.is_empty() {
            return Ok(0);
        }
        let took = self.publish()?;
        let at = self.started.elapsed().as_secs_f64();
        for (name, from, to) in &changed {
            log::warn!(
                "vport {name}: datapath {} -> {} ({cause}), workers switched in {} us",
                path_name(*from),
                path_name(*to),
                took.as_micros()
            );
            self.switch_count += 1;
            if self.switches.len() == SWITCH_LOG {
                self.switches.remove(0);
            }
            self.switches.push(SwitchEvent {
                vport: name.clone(),
                from: path_name(*from),
                to: path_name(*to),
                cause: cause.to_string(),
                at_s: at,
                took_us: took.as_micros() as u64,
            });
        }
        Ok(changed.len())
    }

    pub fn vport_index(&self, name: &str) -> Option<usize> {
        self.vports.iter().position(|v| v.name == name)
    }

    /// (vport index, path) that owns the device called `device`.
    pub fn find_device(&self, device: &str) -> Option<(usize, PathKind)> {
        self.vports.iter().enumerate().find_map(|(i, v)| {
            PathKind::BOTH
                .into_iter()
                .find(|k| v.path(*k).is_some_and(|p| p.device == device))
                .map(|k| (i, k))
        })
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn lcores(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.lcore).collect()
    }
}
