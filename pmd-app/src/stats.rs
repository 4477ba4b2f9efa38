//! Per-lcore counters, written only by their worker, read by the control
//! plane without locks (single-writer relaxed atomics, one cache-aligned
//! block per worker so lcores never share a line).

use std::sync::atomic::AtomicU64;
use vfp_core::counter::Counter;

/// Path counter slots a worker keeps (two per vport, see
/// `plan::path_slot`), so counters survive a device's re-plug.
pub const MAX_PATHS: usize = 32;

/// Drops decided by the app around the engine (the engine counts its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppDrop {
    /// The device's tx ring stayed full after one retry.
    TxFull,
    /// The egress vport has no usable path.
    NoTxPath,
    /// Another lcore's hand-off queue was full.
    HandoffFull,
    /// Multi-segment mbuf in the pipeline (headers must be contiguous).
    MultiSegment,
    /// A packet already handed on [`crate::handoff::MAX_HANDOFFS`] times
    /// that its shard would hand on again.
    HandoffLimit,
}

impl AppDrop {
    pub const ALL: [AppDrop; 5] = [
        AppDrop::TxFull,
        AppDrop::NoTxPath,
        AppDrop::HandoffFull,
        AppDrop::MultiSegment,
        AppDrop::HandoffLimit,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AppDrop::TxFull => "tx-full",
            AppDrop::NoTxPath => "no-tx-path",
            AppDrop::HandoffFull => "handoff-full",
            AppDrop::MultiSegment => "multi-segment",
            AppDrop::HandoffLimit => "handoff-limit",
        }
    }
}

#[derive(Default)]
pub struct PathCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Packets the device refused (its tx ring stayed full; counted as
    /// `tx-full` drops too). The failsafe watch takes refusals with
    /// nothing sent for a hung transmit queue.
    pub tx_full: Counter,
}

#[repr(align(128))]
#[derive(Default)]
pub struct WorkerStats {
    pub rx_packets: Counter,
    pub tx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_bytes: Counter,
    /// Packets handed to or received from other lcores.
    pub handoff_out: Counter,
    pub handoff_in: Counter,
    /// TSC cycles spent in iterations that moved packets, and in all.
    pub busy_cycles: Counter,
    pub total_cycles: Counter,
    /// Packets processed in busy iterations (for cycles per packet).
    pub busy_packets: Counter,
    pub drops: [Counter; AppDrop::ALL.len()],
    pub paths: [PathCounters; MAX_PATHS],
    /// Last plan generation this worker runs (its acknowledgement).
    pub plan_ack: AtomicU64,
    /// Last command sequence number it processed.
    pub cmd_ack: AtomicU64,
}

impl WorkerStats {
    #[inline(always)]
    pub fn count_drop(&self, why: AppDrop, n: u64) {
        self.drops[why as usize].add(n);
    }
    #[inline(always)]
    pub fn path(&self, slot: u16) -> &PathCounters {
        &self.paths[slot as usize % MAX_PATHS]
    }
}
