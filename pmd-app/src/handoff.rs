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

/// Most times one packet is handed to another lcore to be processed: from
/// the lcore it arrived on to its key's owner (or its datagram's, for a
/// later fragment), and from there to where the flow lives, when an entry
/// of the owner's says so. A shard may hand on a packet it was handed
/// (vfp-core's redirect entries and fragment entries), so only this bound
/// guarantees that no packet goes round between lcores: two shards whose
/// fragment entries of one datagram point at each other (two first
/// fragments with one IP id, each denied by the shard it was handed to)
/// would otherwise pass its later fragments back and forth until the
/// entries expire. One more hand-off than that is dropped and counted
/// (`handoff-limit`).
pub const MAX_HANDOFFS: u8 = 2;

/// The `hops` of a packet handed on once more, or None when it has been
/// handed on [`MAX_HANDOFFS`] times already.
pub fn next_hop(hops: u8) -> Option<u8> {
    (hops < MAX_HANDOFFS).then_some(hops + 1)
}

/// Capacity of each worker's packet inbox.
pub const INBOX_CAPACITY: usize = 4096;
/// Capacity of each worker's shard-message inbox.
pub const MSG_CAPACITY: usize = 16384;

pub enum Handoff {
    /// Transmit on `vport`'s active path (the receiver owns the tx queue).
    Tx { vport: u16, mbuf: Mbuf },
    /// Run through the pipeline: the receiver owns the packet's flow.
    /// `vport` is where it arrived; `hops`: how many times it has been
    /// handed on so far, this time included (see [`MAX_HANDOFFS`]).
    Process { vport: u16, mbuf: Mbuf, hops: u8 },
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
