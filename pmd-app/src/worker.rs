//! The per-lcore poll loop: rx burst -> (pipeline) -> tx burst.
//!
//! A worker owns the rx queues its [`WorkerPlan`] lists and tx queue
//! number `worker id` on every device. It picks up a new plan, or any
//! other command, at the top of an iteration — its quiescent point — and
//! acknowledges it through its stats block, so the control plane knows
//! when no worker touches an old device any more. When its queues stay
//! empty it backs off: `pause` first, then sleeps growing to
//! `--idle-sleep-us`, so an idle dataplane does not burn its core.

use crate::dpdk::{self, Burst, Mbuf};
use crate::handoff::{Handoff, Inboxes};
use crate::plan::{TxRoute, WorkerPlan};
use crate::stats::{AppDrop, WorkerStats};
use crossbeam::channel::Receiver;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Commands the control plane sends a worker.
pub enum WorkerCmd {
    /// Run this plan from now on.
    Plan(Arc<WorkerPlan>),
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
}

/// Empty polls before the worker starts sleeping.
const SPIN_BEFORE_SLEEP: u32 = 256;
/// Inbox entries handled per iteration (bounds one iteration's latency).
const INBOX_BUDGET: usize = 256;

impl Worker {
    pub fn new(
        id: usize,
        plan: Arc<WorkerPlan>,
        cmds: Receiver<WorkerCmd>,
        inboxes: Inboxes,
        stats: Arc<WorkerStats>,
        running: Arc<AtomicBool>,
        quiesced: Arc<AtomicUsize>,
        idle_sleep_max_us: u32,
    ) -> Worker {
        let tx = (0..plan.tx.len()).map(|_| Burst::new()).collect();
        Worker {
            id,
            plan,
            cmds,
            inboxes,
            stats,
            running,
            quiesced,
            idle_sleep_max_us,
            tx,
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
        while self.running.load(Ordering::Relaxed) {
            self.take_commands();
            let t0 = dpdk::rdtsc();
            let mut moved = 0usize;
            let plan = Arc::clone(&self.plan);
            for rq in plan.rx.iter() {
                let n = rq.port.rx_burst(rq.queue, &mut rx);
                if n == 0 {
                    continue;
                }
                moved += n;
                self.count_rx(rq.port.0, &rx);
                self.forward_burst(rq.vport, &mut rx);
            }
            moved += self.drain_inbox();
            self.flush_tx();
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
                    self.plan = p;
                    self.stats.plan_ack.store(gen, Ordering::Release);
                }
            }
        }
    }

    #[inline(always)]
    fn count_rx(&self, port: u16, burst: &Burst) {
        let bytes: usize = burst.iter().map(Mbuf::pkt_len).sum();
        let pc = self.stats.port(port);
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
            TxRoute::Queue { port, queue } => self.transmit(port, queue, burst),
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

    /// Transmits a burst, retries once what the ring refused, drops (and
    /// counts) the rest.
    #[inline(always)]
    fn transmit(&self, port: dpdk::Port, queue: u16, burst: &mut Burst) {
        let bytes: usize = burst.iter().map(Mbuf::pkt_len).sum();
        let want = burst.len();
        let mut sent = port.tx_burst(queue, burst);
        if !burst.is_empty() {
            sent += port.tx_burst(queue, burst);
        }
        let left_bytes: usize = burst.iter().map(Mbuf::pkt_len).sum();
        let dropped = burst.free_all();
        if dropped > 0 {
            self.stats.count_drop(AppDrop::TxFull, dropped as u64);
        }
        debug_assert_eq!(sent + dropped, want);
        let pc = self.stats.port(port.0);
        pc.tx_packets.add(sent as u64);
        pc.tx_bytes.add((bytes - left_bytes) as u64);
        self.stats.tx_packets.add(sent as u64);
        self.stats.tx_bytes.add((bytes - left_bytes) as u64);
    }

    #[inline(always)]
    fn hand_off(&self, to: usize, h: Handoff) {
        match self.inboxes[to].push(h) {
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
            TxRoute::Queue { port, queue } => {
                let b = &mut self.tx[vport as usize];
                if let Err(m) = b.push(m) {
                    let mut full = std::mem::take(b);
                    self.transmit(port, queue, &mut full);
                    self.tx[vport as usize] = full;
                    let _ = self.tx[vport as usize].push(m);
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
            let mut b = std::mem::take(&mut self.tx[v]);
            match self.plan.tx.get(v).copied().unwrap_or(TxRoute::Down) {
                TxRoute::Queue { port, queue } => self.transmit(port, queue, &mut b),
                TxRoute::Via(w) => {
                    for m in b.drain() {
                        self.hand_off(
                            w,
                            Handoff::Tx {
                                vport: v as u16,
                                mbuf: m,
                            },
                        );
                    }
                }
                TxRoute::Down => {
                    let n = b.free_all();
                    self.stats.count_drop(AppDrop::NoTxPath, n as u64);
                }
            }
            self.tx[v] = b;
        }
    }

    /// Handles what other lcores handed us; returns how many packets.
    fn drain_inbox(&mut self) -> usize {
        let inboxes = Arc::clone(&self.inboxes);
        let inbox = &inboxes[self.id];
        let mut n = 0;
        while n < INBOX_BUDGET {
            let Some(h) = inbox.pop() else { break };
            n += 1;
            self.stats.handoff_in.inc();
            match h {
                Handoff::Tx { vport, mbuf } => self.enqueue_tx(vport, mbuf),
                Handoff::Process { vport, mbuf } => {
                    let out = self.plan.peer[vport as usize];
                    self.enqueue_tx(out, mbuf);
                }
            }
        }
        n
    }

    /// Two-phase stop: this worker no longer receives, but keeps serving
    /// its inbox until every worker stopped receiving and every inbox is
    /// empty, so packets handed between lcores at the end are delivered.
    fn shutdown(&mut self) {
        self.flush_tx();
        self.quiesced.fetch_add(1, Ordering::AcqRel);
        let n = self.inboxes.len();
        loop {
            let moved = self.drain_inbox();
            self.flush_tx();
            if moved == 0 && self.quiesced.load(Ordering::Acquire) == n && self.inboxes.iter().all(|q| q.is_empty()) {
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
