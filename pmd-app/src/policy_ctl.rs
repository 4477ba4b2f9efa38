//! Policy and flow operations of the control plane: building the
//! workers' shards, publishing a new policy to them and waiting for every
//! worker to run it, and the `flows` queries (answered by each worker at
//! its quiescent point, so no lock is ever taken on a flow table).

use crate::dataplane::{Dataplane, ACK_TIMEOUT};
use crate::dpdk;
use crate::pipeline::Pipeline;
use crate::worker::WorkerCmd;
use crossbeam::channel;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use vfp_core::policy::{self, Policy};
use vfp_core::shard::{FlowFilter, FlowInfo, Shard, ShardConfig};
use vfp_core::topology::VportInfo;

/// Why [`Dataplane::install_policy`] did not complete.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Not installed: the running policy stays.
    #[error("{0}")]
    Refused(String),
    /// Sent to every worker, but not every one acknowledged in time: it
    /// is the dataplane's policy, and late workers take it when they get
    /// to their commands.
    #[error("{0}")]
    Late(String),
}

impl Dataplane {
    /// The vports as the policy sees them.
    pub fn topology(&self) -> Vec<VportInfo> {
        self.vports
            .iter()
            .map(|v| VportInfo {
                name: v.name.clone(),
                role: v.role,
                peer: v.peer,
            })
            .collect()
    }

    /// Loads and checks a policy file against this instance's vports.
    pub fn read_policy(&self, file: &Path) -> Result<Policy, String> {
        policy::load_file(file, &self.topology()).map_err(|e| e.to_string())
    }

    /// Whether the NAT address table has a slot for every SNAT address of
    /// `policy` not registered yet (`policy validate` asks too).
    pub fn check_snat_room(&self, policy: &Policy) -> Result<(), String> {
        let installed = self.policy.as_deref();
        let room = self.nat.room(policy, installed, self.workers_caught_up());
        let new = self.nat.unregistered(policy);
        if new > room {
            return Err(format!(
                "the policy has {new} SNAT addresses not used before, and {room} of the {} NAT address slots \
                 are free (an address keeps its slot while the policy in force names it or a connection \
                 holds one of its ports)",
                vfp_core::action::nat::MAX_ADDRS
            ));
        }
        Ok(())
    }

    fn register_snat(&self, policy: &Policy) -> Result<(), String> {
        self.check_snat_room(policy)?;
        self.nat
            .register_replacing(policy, self.policy.as_deref(), self.workers_caught_up())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Whether every worker has taken every command sent so far, so none
    /// runs a policy older than the installed one (whose SNAT addresses'
    /// slots must not be reused yet).
    fn workers_caught_up(&self) -> bool {
        self.workers
            .iter()
            .all(|w| w.stats.cmd_ack.load(Ordering::Acquire) >= self.cmd_seq)
    }

    /// One pipeline for each of `n` workers for `policy` (start-up, or
    /// the first load).
    pub fn pipelines(&mut self, policy: &Arc<Policy>, n: usize) -> Result<Vec<Box<Pipeline>>, String> {
        let n = n.max(1);
        let cap = self.shard_capacity;
        let cfg = |id| ShardConfig {
            id,
            nshards: n,
            capacity: cap,
        };
        // Committing more than the host has would end in the OOM killer
        // (or a failed allocation) after seconds of page faults: an
        // operator's typo in --max-flows gets an answer instead.
        let bytes = Shard::table_bytes(&cfg(0)).saturating_mul(n);
        let gib = |b: usize| format!("{:.1} GiB", b as f64 / f64::from(1 << 30));
        if let Some(avail) = dpdk::pages::mem_available().filter(|&a| bytes > a) {
            return Err(format!(
                "--max-flows {cap}: the flow tables of {n} lcore(s) need {}, more than the {} this host has \
                 available (MemAvailable); lower --max-flows",
                gib(bytes),
                gib(avail)
            ));
        }
        self.register_snat(policy)?;
        let (tsc0, hz) = (dpdk::rdtsc(), dpdk::tsc_hz());
        let t = Instant::now();
        // Seconds for a few GiB (more where the kernel compacts memory
        // for 2 MB pages): long enough to say what is going on.
        if bytes >= 1 << 30 {
            log::info!("flow tables: committing {} for {n} x {cap} pairs", gib(bytes));
        }
        let stop = self.stop.clone();
        let pipes = (0..n)
            .map(|id| {
                let mut shard = Shard::try_new(cfg(id), policy.clone(), self.nat.clone()).map_err(|e| {
                    format!(
                        "--max-flows {cap}: cannot allocate the flow tables ({}): {e}",
                        gib(bytes)
                    )
                })?;
                // Commit the table's memory now, off the datapath, on
                // huge pages where the kernel gives them.
                huge_pages(&shard, dpdk::pages::advise_huge);
                if !shard.prefault_until(|| stop.load(Ordering::Relaxed)) {
                    return Err("signal received while committing the flow tables: stopped".to_string());
                }
                huge_pages(&shard, dpdk::pages::collapse);
                Ok(Box::new(Pipeline::new(shard, tsc0, hz)))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mib = bytes >> 20;
        let huge = dpdk::pages::anon_huge_bytes().map_or(0, |b| b >> 20);
        log::info!(
            "flow tables: {n} x {} pairs, {mib} MiB committed in {} ms; the process has {huge} MiB on 2 MB pages",
            self.shard_capacity,
            t.elapsed().as_millis()
        );
        Ok(pipes)
    }

    /// Installs `policy`: the first one turns the pipeline on, a later one
    /// replaces the running policy (existing flows are re-evaluated on
    /// their next packet). Returns once every worker runs it. Once every
    /// worker was sent it, it is the dataplane's policy even if a worker
    /// is late to acknowledge (it runs it when it gets there).
    pub fn install_policy(&mut self, mut policy: Policy) -> Result<Arc<Policy>, InstallError> {
        self.policy_generation += 1;
        policy.generation = self.policy_generation;
        let policy = Arc::new(policy);
        if self.policy.is_none() {
            let pipes = self
                .pipelines(&policy, self.workers.len())
                .map_err(InstallError::Refused)?;
            let mut shared = self.engine_stats.lock().unwrap_or_else(|e| e.into_inner());
            shared.clear();
            for (w, p) in self.workers.iter().zip(pipes) {
                shared.push(p.shard.stats().clone());
                w.cmds
                    .send(WorkerCmd::Pipeline(p))
                    .map_err(|_| InstallError::Refused(format!("worker on lcore {} is gone", w.lcore)))?;
            }
        } else {
            self.register_snat(&policy).map_err(InstallError::Refused)?;
        }
        self.cmd_seq += 1;
        let seq = self.cmd_seq;
        for w in &self.workers {
            w.cmds
                .send(WorkerCmd::Policy {
                    policy: policy.clone(),
                    seq,
                })
                .map_err(|_| InstallError::Refused(format!("worker on lcore {} is gone", w.lcore)))?;
        }
        self.policy = Some(policy.clone());
        let deadline = Instant::now() + ACK_TIMEOUT;
        while self
            .workers
            .iter()
            .any(|w| w.stats.cmd_ack.load(Ordering::Acquire) < seq)
        {
            if Instant::now() > deadline {
                return Err(InstallError::Late(format!(
                    "workers did not take policy generation {} in time (they run it once they catch up)",
                    policy.generation
                )));
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        log::info!(
            "policy generation {} from {} ({} rules) in force",
            policy.generation,
            policy.origin(),
            policy.rule_count()
        );
        Ok(policy)
    }

    /// Asks every worker; `f` builds the command with a reply sender.
    fn ask_all<T: Send + 'static>(&self, f: impl Fn(channel::Sender<T>) -> WorkerCmd) -> Result<Vec<T>, String> {
        let mut rxs = Vec::new();
        for w in &self.workers {
            let (tx, rx) = channel::bounded(1);
            w.cmds
                .send(f(tx))
                .map_err(|_| format!("worker on lcore {} is gone", w.lcore))?;
            rxs.push((w.lcore, rx));
        }
        let deadline = Instant::now() + ACK_TIMEOUT;
        rxs.into_iter()
            .map(|(lcore, rx)| {
                rx.recv_deadline(deadline)
                    .map_err(|_| format!("worker on lcore {lcore} did not answer in time"))
            })
            .collect()
    }

    /// How many flows match, and up to `limit` of them.
    pub fn flows(&self, filter: &FlowFilter, limit: usize) -> Result<(usize, Vec<FlowInfo>), String> {
        let answers = self.ask_all(|reply| WorkerCmd::Flows {
            filter: filter.clone(),
            limit,
            reply,
        })?;
        let mut count = 0;
        let mut list = Vec::new();
        for (n, l) in answers {
            count += n;
            list.extend(l);
        }
        list.truncate(limit);
        Ok((count, list))
    }

    /// Flow `id` (shard in the high 32 bits, slot in the low ones).
    pub fn flow(&self, id: u64) -> Result<Option<FlowInfo>, String> {
        let (shard, slot) = ((id >> 32) as usize, id as u32);
        let Some(w) = self.workers.get(shard) else {
            return Ok(None);
        };
        let (tx, rx) = channel::bounded(1);
        w.cmds
            .send(WorkerCmd::Flow { id: slot, reply: tx })
            .map_err(|_| format!("worker on lcore {} is gone", w.lcore))?;
        rx.recv_deadline(Instant::now() + ACK_TIMEOUT)
            .map_err(|_| format!("worker on lcore {} did not answer in time", w.lcore))
    }

    /// Removes the matching flows from every shard.
    pub fn flush_flows(&self, filter: &FlowFilter) -> Result<usize, String> {
        Ok(self
            .ask_all(|reply| WorkerCmd::Flush {
                filter: filter.clone(),
                reply,
            })?
            .into_iter()
            .sum())
    }
}

/// Applies a huge-page advice to a shard's table memory; the kernel may
/// refuse (THP off, no free 2 MB pages): the table then stays on 4 KB
/// pages, which only costs speed.
fn huge_pages(shard: &Shard, advise: fn(*const u8, usize) -> std::io::Result<()>) {
    for (start, bytes) in shard.memory() {
        if let Err(e) = advise(start, bytes) {
            log::debug!("flow table: huge pages refused for {} MiB: {e}", bytes >> 20);
        }
    }
}
