//! Lock-free queues between lcores.
//!
//! Each worker has one bounded inbox (crossbeam `ArrayQueue`, lock-free
//! multi-producer). Other workers push into it packets it must transmit
//! (it owns the tx queue) or process (it owns the flow), and flow-table
//! messages for its shard. Nothing here locks or allocates per packet.

use crate::dpdk::Mbuf;
use crossbeam::queue::ArrayQueue;
use std::sync::Arc;

/// Capacity of each worker's inbox.
pub const INBOX_CAPACITY: usize = 4096;

pub enum Handoff {
    /// Transmit on `vport`'s active path (the receiver owns the tx queue).
    Tx { vport: u16, mbuf: Mbuf },
    /// Run through the pipeline: the receiver owns the packet's flow.
    /// `vport` is where it arrived.
    Process { vport: u16, mbuf: Mbuf },
}

/// The inboxes of all workers, indexed by worker.
pub type Inboxes = Arc<Vec<ArrayQueue<Handoff>>>;

pub fn inboxes(workers: usize) -> Inboxes {
    Arc::new((0..workers).map(|_| ArrayQueue::new(INBOX_CAPACITY)).collect())
}
