//! The per-lcore poll loop: rx burst -> pipeline -> tx burst.
//!
//! Without a policy a worker forwards every burst to the arrival vport's
//! peer unmodified (testpmd io-style). With one, every packet goes
//! through the worker's [`Pipeline`] (its shard of the flow table): it is
//! transposed and transmitted, handed to the lcore that owns its flow,
//! or dropped with a counted reason. Shard messages (redirects) are
//! delivered before a burst is processed, and sent once it is classified,
//! before any of its packets is transmitted or handed over (a full tx
//! burst leaves in the middle of a burst), so a reply never overtakes the
//! redirect it needs.
//!
//! A worker owns the rx queues its [`WorkerPlan`] lists and tx queue
//! number `worker id` on every device. It picks up a new plan, or any
//! other command, at the top of an iteration — its quiescent point — and
//! acknowledges it through its stats block, so the control plane knows
//! when no worker touches an old device any more. When its queues stay
//! empty it backs off: `pause` first, then sleeps growing to
//! `--idle-sleep-us`, so an idle dataplane does not burn its core.

use crate::dpdk::{self, Burst, Mbuf};
use crate::handoff::{next_hop, Handoff, Inboxes};
use crate::pipeline::{Fate, Pipeline};
use crate::plan::{TxRoute, WorkerPlan};
use crate::stats::{AppDrop, WorkerStats};
use crossbeam::channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vfp_core::policy::Policy;
use vfp_core::shard::{FlowFilter, FlowInfo};

/// Commands the control plane sends a worker.
pub enum WorkerCmd {
    /// Run this plan from now on.
    Plan(Arc<WorkerPlan>),
    /// Turn the pipeline on with this shard (the first policy).
    Pipeline(Box<Pipeline>),
    /// Use this policy from now on (flows are reconciled lazily).
    Policy { policy: Arc<Policy>, seq: u64 },
    /// Flows matching the filter: how many, and up to `limit` of them.
    Flows {
        filter: FlowFilter,
        limit: usize,
        reply: Sender<(usize, Vec<FlowInfo>)>,
    },
    /// One flow by its slot id.
    Flow { id: u32, reply: Sender<Option<FlowInfo>> },
    /// Remove the flows matching the filter; replies how many.
    Flush { filter: FlowFilter, reply: Sender<usize> },
}

pub struct Worker {
    pub id: usize,
    plan: Arc<WorkerPlan>,
    cmds: Receiver<WorkerCmd>,
    inboxes: Inboxes,
    stats: Arc<WorkerStats>,
    running: Arc<AtomicBool>,
    /// Workers that stopped receiving (two-phase shutdown).
    quiesced: Arc<AtomicUsize>,
    idle_sleep_max_us: u32,
    /// Per vport: packets waiting for a tx burst.
    tx: Vec<Burst>,
    /// The flow-table shard, once a policy is loaded.
    pipe: Option<Box<Pipeline>>,
}

/// Empty polls before the worker starts sleeping.
const SPIN_BEFORE_SLEEP: u32 = 256;
/// Inbox entries handled per iteration (bounds one iteration's latency).
const INBOX_BUDGET: usize = 256;
/// A busy worker looks at its commands and inbox every this many
/// iterations (an idle one on every iteration).
const CTL_POLL_EVERY: u32 = 4;
/// Most expiry-sweep slots prefetched one iteration ahead (a busy loop's
/// slices are a few slots; a loop catching up after a stall takes up to
/// `MAX_SLICE`, whose tail is then read without the prefetch).
const SWEEP_AHEAD: usize = 16;

/// What every worker shares with the others and the control plane.
#[derive(Clone)]
pub struct Shared {
    pub inboxes: Inboxes,
    pub running: Arc<AtomicBool>,
    /// Workers that stopped receiving (two-phase shutdown).
    pub quiesced: Arc<AtomicUsize>,
    pub idle_sleep_max_us: u32,
}

impl Worker {
    pub fn new(
        id: usize,
        plan: Arc<WorkerPlan>,
        pipe: Option<Box<Pipeline>>,
        cmds: Receiver<WorkerCmd>,
        stats: Arc<WorkerStats>,
        shared: Shared,
    ) -> Worker {
        let tx = (0..plan.tx.len()).map(|_| Burst::new()).collect();
        Worker {
            id,
            plan,
            cmds,
            inboxes: shared.inboxes,
            stats,
            running: shared.running,
            quiesced: shared.quiesced,
            idle_sleep_max_us: shared.idle_sleep_max_us,
            tx,
            pipe,
        }
    }

    /// Runs until the shared `running` flag clears; returns 0.
    pub fn run(mut self) -> i32 {
        log::info!(
            "worker {} on lcore {} polls {} queue(s)",
            self.id,
            dpdk::lcore::current(),
            self.plan.rx.len()
        );
        let mut rx = Burst::new();
        let mut idle: u32 = 0;
        let mut sleep_us: u32 = 1;
        let mut iteration: u32 = 0;
        while self.running.load(Ordering::Relaxed) {
            // Commands (and a single worker's inbox, which only the control
            // plane feeds) are looked at on every idle iteration and on
            // every CTL_POLL_EVERY-th busy one: each look costs atomic loads
            // and a call, several percent of an iteration that forwards a
            // burst.
            iteration = iteration.wrapping_add(1);
            let poll_ctl = idle > 0 || iteration.is_multiple_of(CTL_POLL_EVERY);
            if poll_ctl {
                self.take_commands();
            }
            let t0 = dpdk::rdtsc();
            let now = self.pipe.as_ref().map_or(0, |p| p.now_ns(t0));
            // With several workers packets cross lcores all the time: their
            // inboxes are drained on every iteration.
            let poll_inbox = poll_ctl || self.inboxes.len() > 1;
            let mut moved = if poll_inbox { self.drain_inbox(now) } else { 0 };
            // By index: the plan only changes at the top of the loop, and
            // an Arc clone per iteration would cost two atomic operations.
            for i in 0..self.plan.rx.len() {
                let rq = self.plan.rx[i];
                let n = rq.port.rx_burst(rq.queue, &mut rx);
                if n == 0 {
                    continue;
                }
                moved += n;
                self.count_rx(rq.slot, &rx);
                if self.pipe.is_some() {
                    self.deliver_msgs();
                    self.pipeline_burst(rq.vport, &mut rx, now);
                } else {
                    self.forward_burst(rq.vport, &mut rx);
                }
            }
            self.send_msgs();
            self.flush_tx();
            if let Some(p) = self.pipe.as_mut() {
                p.shard.expire_paced(now);
                // The slots the next slice examines: their lines arrive
                // while the next bursts are processed.
                p.shard.sweep_lines(SWEEP_AHEAD).for_each(dpdk::prefetch);
                self.send_msgs();
            }
            let dt = dpdk::rdtsc().wrapping_sub(t0);
            self.stats.total_cycles.add(dt);
            if moved > 0 {
                self.stats.busy_cycles.add(dt);
                self.stats.busy_packets.add(moved as u64);
                idle = 0;
                sleep_us = 1;
            } else {
                idle = idle.saturating_add(1);
                if idle < SPIN_BEFORE_SLEEP || self.idle_sleep_max_us == 0 {
                    dpdk::pause();
                } else {
                    let t = dpdk::rdtsc();
                    std::thread::sleep(Duration::from_micros(sleep_us as u64));
                    self.stats.total_cycles.add(dpdk::rdtsc().wrapping_sub(t));
                    sleep_us = (sleep_us * 2).min(self.idle_sleep_max_us);
                }
            }
        }
        self.shutdown();
        0
    }

    fn take_commands(&mut self) {
        while let Ok(cmd) = self.cmds.try_recv() {
            match cmd {
                WorkerCmd::Plan(p) => {
                    // Flush what is buffered for the old plan's devices first.
                    self.flush_tx();
                    if p.tx.len() != self.tx.len() {
                        self.tx = (0..p.tx.len()).map(|_| Burst::new()).collect();
                    }
                    let gen = p.generation;
                    if let Some(pipe) = self.pipe.as_mut() {
                        pipe.shard.set_offload_vports(p.csum_offload);
                    }
                    self.plan = p;
                    self.stats.plan_ack.store(gen, Ordering::Release);
                }
                WorkerCmd::Pipeline(mut p) => {
                    p.shard.set_offload_vports(self.plan.csum_offload);
                    self.pipe = Some(p);
                }
                WorkerCmd::Policy { policy, seq } => {
                    if let Some(p) = self.pipe.as_mut() {
                        p.set_policy(policy);
                    }
                    self.stats.cmd_ack.store(seq, Ordering::Release);
                }
                WorkerCmd::Flows { filter, limit, reply } => {
                    let r = match self.pipe.as_ref() {
                        Some(p) => (p.shard.count(&filter), p.shard.flows(&filter, limit)),
                        None => (0, Vec::new()),
                    };
                    let _ = reply.send(r);
                }
                WorkerCmd::Flow { id, reply } => {
                    let _ = reply.send(self.pipe.as_ref().and_then(|p| p.shard.flow(id)));
                }
                WorkerCmd::Flush { filter, reply } => {
                    let n = self.pipe.as_mut().map_or(0, |p| p.shard.flush_matching(&filter));
                    self.send_msgs();
                    let _ = reply.send(n);
                }
            }
        }
    }

    #[inline(always)]
    fn count_rx(&self, slot: u16, burst: &Burst) {
        let bytes: usize = burst.iter().map(Mbuf::pkt_len).sum();
        let pc = self.stats.path(slot);
        pc.rx_packets.add(burst.len() as u64);
        pc.rx_bytes.add(bytes as u64);
        self.stats.rx_packets.add(burst.len() as u64);
        self.stats.rx_bytes.add(bytes as u64);
    }

    /// Plain forwarding: the whole burst goes to the arrival vport's peer.
    #[inline(always)]
    fn forward_burst(&mut self, vport: u16, burst: &mut Burst) {
        let out = self.plan.peer[vport as usize];
        match self.plan.tx[out as usize] {
            TxRoute::Queue { port, queue, slot } => transmit(&self.stats, port, queue, slot, burst),
            TxRoute::Via(w) => {
                for m in burst.drain() {
                    self.hand_off(w, Handoff::Tx { vport: out, mbuf: m });
                }
            }
            TxRoute::Down => {
                let n = burst.free_all();
                self.stats.count_drop(AppDrop::NoTxPath, n as u64);
            }
        }
    }

    /// Runs a burst through the pipeline, run to completion.
    #[inline(always)]
    fn pipeline_burst(&mut self, vport: u16, burst: &mut Burst, now: u64) {
        for m in burst.iter() {
            m.prefetch();
        }
        let Some(mut pipe) = self.pipe.take() else {
            return self.forward_burst(vport, burst);
        };
        let n = burst.len();
        pipe.classify_burst(burst, vport, now);
        // The burst's redirects go out before any of its packets can: the
        // burst may be transmitted whole right below, a full tx burst from
        // inside dispatch, and a reply must not reach another lcore before
        // the redirect it needs.
        send_outbox(&self.inboxes, &mut pipe.shard);
        match same_tx(pipe.fates(n)) {
            Some(out) => self.transmit_burst(out, burst),
            None => {
                for (m, fate) in burst.drain().zip(pipe.fates(n).iter().copied()) {
                    self.dispatch(vport, m, fate.unwrap_or(Fate::Drop), 0);
                }
            }
        }
        self.pipe = Some(pipe);
    }

    /// A burst whose every packet leaves by `out` (the common case): when
    /// nothing is queued for `out` yet, it is transmitted as it stands,
    /// without queueing its packets one by one. Otherwise they queue
    /// behind what is there, in order.
    #[inline(always)]
    fn transmit_burst(&mut self, out: u16, burst: &mut Burst) {
        let v = usize::from(out);
        if let (Some(TxRoute::Queue { port, queue, slot }), Some(true)) =
            (self.plan.tx.get(v).copied(), self.tx.get(v).map(Burst::is_empty))
        {
            return transmit(&self.stats, port, queue, slot, burst);
        }
        for m in burst.drain() {
            self.enqueue_tx(out, m);
        }
    }

    /// One packet handed over by another lcore, `hops` times so far (0:
    /// it was received, the shard may send it to its flow's owner).
    #[inline(always)]
    fn pipeline_one(&mut self, vport: u16, mut m: Mbuf, hops: u8, now: u64) {
        let Some(pipe) = self.pipe.as_mut() else {
            let out = self.plan.peer[vport as usize];
            self.enqueue_tx(out, m);
            return;
        };
        let fate = pipe.classify(&mut m, vport, hops == 0, now);
        self.send_msgs();
        self.dispatch(vport, m, fate, hops);
    }

    /// Transmits, hands off or frees a classified packet that was handed
    /// on `hops` times before.
    #[inline(always)]
    fn dispatch(&mut self, vport: u16, m: Mbuf, fate: Fate, hops: u8) {
        match fate {
            Fate::Tx(out) => self.enqueue_tx(out, m),
            Fate::HandOff(owner) => match next_hop(hops) {
                Some(hops) => self.hand_off(owner, Handoff::Process { vport, mbuf: m, hops }),
                None => {
                    drop(m);
                    self.stats.count_drop(AppDrop::HandoffLimit, 1);
                }
            },
            Fate::Drop => drop(m),
            Fate::MultiSegment => {
                drop(m);
                self.stats.count_drop(AppDrop::MultiSegment, 1);
            }
        }
    }

    /// Applies the flow-table messages other shards sent this one.
    fn deliver_msgs(&mut self) {
        let q = &self.inboxes.msgs[self.id];
        match self.pipe.as_mut() {
            Some(p) => {
                while let Some(m) = q.pop() {
                    p.shard.deliver(m);
                }
            }
            None => while q.pop().is_some() {},
        }
    }

    /// Sends the shard's outbox; what does not fit stays for next time.
    fn send_msgs(&mut self) {
        if let Some(p) = self.pipe.as_mut() {
            send_outbox(&self.inboxes, &mut p.shard);
        }
    }

    #[inline(always)]
    fn hand_off(&self, to: usize, h: Handoff) {
        match self.inboxes.packets[to].push(h) {
            Ok(()) => self.stats.handoff_out.inc(),
            Err(h) => {
                drop(h);
                self.stats.count_drop(AppDrop::HandoffFull, 1);
            }
        }
    }

    /// Queues one packet for `vport`'s tx burst, flushing a full burst.
    #[inline(always)]
    fn enqueue_tx(&mut self, vport: u16, m: Mbuf) {
        match self.plan.tx[vport as usize] {
            TxRoute::Queue { port, queue, slot } => {
                let b = &mut self.tx[vport as usize];
                if let Err(m) = b.push(m) {
                    transmit(&self.stats, port, queue, slot, b);
                    let _ = b.push(m);
                }
            }
            TxRoute::Via(w) => self.hand_off(w, Handoff::Tx { vport, mbuf: m }),
            TxRoute::Down => {
                drop(m);
                self.stats.count_drop(AppDrop::NoTxPath, 1);
            }
        }
    }

    fn flush_tx(&mut self) {
        for v in 0..self.tx.len() {
            if self.tx[v].is_empty() {
                continue;
            }
            match self.plan.tx.get(v).copied().unwrap_or(TxRoute::Down) {
                TxRoute::Queue { port, queue, slot } => transmit(&self.stats, port, queue, slot, &mut self.tx[v]),
                TxRoute::Via(w) => {
                    let mut b = std::mem::take(&mut self.tx[v]);
                    for m in b.drain() {
                        self.hand_off(
                            w,
                            Handoff::Tx {
                                vport: v as u16,
                                mbuf: m,
                            },
                        );
                    }
                    self.tx[v] = b;
                }
                TxRoute::Down => {
                    let n = self.tx[v].free_all();
                    self.stats.count_drop(AppDrop::NoTxPath, n as u64);
                }
            }
        }
    }

    /// Handles what other lcores handed us (shard messages first);
    /// returns how many packets.
    fn drain_inbox(&mut self, now: u64) -> usize {
        self.deliver_msgs();
        let mut n = 0;
        while n < INBOX_BUDGET {
            let Some(h) = self.inboxes.packets[self.id].pop() else {
                break;
            };
            n += 1;
            self.stats.handoff_in.inc();
            match h {
                Handoff::Tx { vport, mut mbuf } => {
                    // Classified under the sender's plan: if this one's
                    // path lacks the offload, finish the checksum here.
                    if self.plan.csum_offload & (1 << (vport & 63)) == 0 {
                        crate::pipeline::software_ipv4_checksum(&mut mbuf);
                    }
                    self.enqueue_tx(vport, mbuf)
                }
                Handoff::Process { vport, mbuf, hops } => self.pipeline_one(vport, mbuf, hops, now),
                Handoff::Rx { vport, mbuf } => self.pipeline_one(vport, mbuf, 0, now),
            }
        }
        n
    }

    /// Two-phase stop: this worker no longer receives, but keeps serving
    /// its inbox until every worker stopped receiving and every inbox is
    /// empty, so packets handed between lcores at the end are delivered.
    fn shutdown(&mut self) {
        self.send_msgs();
        self.flush_tx();
        self.quiesced.fetch_add(1, Ordering::AcqRel);
        let n = self.inboxes.len();
        loop {
            let now = self.pipe.as_ref().map_or(0, |p| p.now_ns(dpdk::rdtsc()));
            let moved = self.drain_inbox(now);
            self.send_msgs();
            self.flush_tx();
            if moved == 0 && self.quiesced.load(Ordering::Acquire) == n && self.inboxes.all_empty() {
                break;
            }
            if moved == 0 {
                dpdk::pause();
            }
        }
        for b in &mut self.tx {
            b.free_all();
        }
        log::info!("worker {} stopped", self.id);
    }
}

/// Transmits a burst, retries once what the ring refused, drops (and
/// counts) the rest.
#[inline(always)]
fn transmit(stats: &WorkerStats, port: dpdk::Port, queue: u16, slot: u16, burst: &mut Burst) {
    let bytes: usize = burst.iter().map(Mbuf::pkt_len).sum();
    let want = burst.len();
    let mut sent = port.tx_burst(queue, burst);
    if !burst.is_empty() {
        sent += port.tx_burst(queue, burst);
    }
    // Usually everything went: skip the second pass over the mbufs.
    let left_bytes: usize = if burst.is_empty() {
        0
    } else {
        burst.iter().map(Mbuf::pkt_len).sum()
    };
    let dropped = burst.free_all();
    let pc = stats.path(slot);
    if dropped > 0 {
        stats.count_drop(AppDrop::TxFull, dropped as u64);
        pc.tx_full.add(dropped as u64);
    }
    debug_assert_eq!(sent + dropped, want);
    pc.tx_packets.add(sent as u64);
    pc.tx_bytes.add((bytes - left_bytes) as u64);
    stats.tx_packets.add(sent as u64);
    stats.tx_bytes.add((bytes - left_bytes) as u64);
}

/// The vport every packet of a classified burst is to be transmitted on,
/// if they all go to one.
#[inline(always)]
fn same_tx(fates: &[Option<Fate>]) -> Option<u16> {
    let Some(Some(Fate::Tx(out))) = fates.first().copied() else {
        return None;
    };
    fates.iter().all(|f| *f == Some(Fate::Tx(out))).then_some(out)
}

/// Pushes `shard`'s outbox into the other shards' message lanes; what does
/// not fit stays for next time.
#[inline(always)]
fn send_outbox(lanes: &Inboxes, shard: &mut vfp_core::shard::Shard) {
    let out = shard.outbox();
    if !out.is_empty() {
        out.retain(|m| lanes.msgs.get(m.to()).is_some_and(|q| q.push(*m).is_err()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a burst whose every packet is transmitted on one vport goes
    /// to the PMD whole: a drop, a hand-off, a chained mbuf or a second
    /// vport anywhere in it sends it packet by packet.
    #[test]
    fn a_burst_is_transmitted_whole_only_when_every_packet_leaves_by_one_vport() {
        let tx = |v| Some(Fate::Tx(v));
        assert_eq!(same_tx(&[tx(1); 32]), Some(1));
        assert_eq!(same_tx(&[tx(0)]), Some(0));
        assert_eq!(same_tx(&[]), None);
        for odd in [
            tx(2),
            Some(Fate::Drop),
            Some(Fate::HandOff(1)),
            Some(Fate::MultiSegment),
            None,
        ] {
            for at in [0, 5, 31] {
                let mut fates = [tx(1); 32];
                fates[at] = odd;
                assert_eq!(same_tx(&fates), None, "{odd:?} at {at}");
            }
        }
    }
}
