//! Lock-free queues between lcores.
//!
//! Each worker has two bounded inboxes (crossbeam `ArrayQueue`, lock-free
//! multi-producer): one for packets other workers hand it — to transmit
//! (it owns the tx queue) or to process (it owns the flow) — and one for
//! flow-table messages to its shard (redirect installs and removals).
//! Messages have their own queue so a flood of packets can never crowd
//! out the redirect a reply needs; a sender whose message does not fit
//! keeps it and retries. Nothing here locks or allocates per packet.

use crate::dpdk::Mbuf;
use crossbeam::queue::ArrayQueue;
use std::sync::Arc;
use vfp_core::shard::ShardMsg;

/// Capacity of each worker's packet inbox.
pub const INBOX_CAPACITY: usize = 4096;
/// Capacity of each worker's shard-message inbox.
pub const MSG_CAPACITY: usize = 16384;

pub enum Handoff {
    /// Transmit on `vport`'s active path (the receiver owns the tx queue).
    Tx { vport: u16, mbuf: Mbuf },
    /// Run through the pipeline: the receiver owns the packet's flow.
    /// `vport` is where it arrived.
    Process { vport: u16, mbuf: Mbuf },
    /// Treat as received on `vport` (packets the control plane drained
    /// from a retired device's rx rings): the receiver may still hand it
    /// to the flow's owner.
    Rx { vport: u16, mbuf: Mbuf },
}

/// The inboxes of all workers, indexed by worker.
pub struct Lanes {
    pub packets: Vec<ArrayQueue<Handoff>>,
    pub msgs: Vec<ArrayQueue<ShardMsg>>,
}

impl Lanes {
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Whether every inbox of every worker is empty.
    pub fn all_empty(&self) -> bool {
        self.packets.iter().all(|q| q.is_empty()) && self.msgs.iter().all(|q| q.is_empty())
    }
}

pub type Inboxes = Arc<Lanes>;

pub fn inboxes(workers: usize) -> Inboxes {
    Arc::new(Lanes {
        packets: (0..workers).map(|_| ArrayQueue::new(INBOX_CAPACITY)).collect(),
        msgs: (0..workers).map(|_| ArrayQueue::new(MSG_CAPACITY)).collect(),
    })
}
