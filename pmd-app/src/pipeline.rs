//! The per-lcore VFP pipeline over DPDK mbufs: parse -> flow table
//! lookup (slow path on a miss) -> header transposition, in place.
//!
//! A worker owns one [`Pipeline`], that is one shard of the unified flow
//! table. [`Pipeline::classify`] decides one packet's fate; the worker
//! transmits, hands off or frees it. Nothing here allocates or locks per
//! packet: the shard's table is preallocated, messages to other shards
//! go through a preallocated outbox the worker drains every iteration.

use crate::dpdk::Mbuf;
use std::sync::Arc;
use vfp_core::flow::key::Direction;
use vfp_core::frame::Frame;
use vfp_core::parse::parse;
use vfp_core::policy::Policy;
use vfp_core::shard::{DropReason, Shard, Verdict};
use vfp_core::wire::ipv4::Ipv4Packet;

/// What the worker does with a classified packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Transposed in place: transmit on this vport.
    Tx(u16),
    /// Another lcore owns the flow: hand the untouched packet over.
    HandOff(usize),
    /// Counted (by the shard) and to be freed.
    Drop,
    /// A chained mbuf: headers must be in the first segment. Not
    /// counted yet: the worker counts it as an app drop.
    MultiSegment,
}

pub struct Pipeline {
    pub shard: Shard,
    /// Direction of packets arriving on each vport (from its role).
    dirs: Vec<Direction>,
    /// TSC at start and nanoseconds per TSC tick, for the flow clock.
    tsc0: u64,
    ns_per_tsc: f64,
}

impl Pipeline {
    pub fn new(shard: Shard, tsc0: u64, tsc_hz: u64) -> Pipeline {
        let dirs = dirs_of(shard.policy());
        Pipeline {
            shard,
            dirs,
            tsc0,
            ns_per_tsc: 1e9 / tsc_hz.max(1) as f64,
        }
    }

    /// Flow-clock nanoseconds for a TSC reading.
    #[inline(always)]
    pub fn now_ns(&self, tsc: u64) -> u64 {
        (tsc.wrapping_sub(self.tsc0) as f64 * self.ns_per_tsc) as u64
    }

    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.dirs = dirs_of(&policy);
        self.shard.set_policy(policy);
    }

    /// Runs one packet that arrived on `vport` through the shard. With
    /// `may_redirect` false (the packet was handed here) a miss is
    /// evaluated here rather than sent to the key's owner again.
    #[inline(always)]
    pub fn classify(&mut self, m: &mut Mbuf, vport: u16, may_redirect: bool, now_ns: u64) -> Fate {
        if !m.is_contiguous() {
            // Frames larger than one mbuf's data room arrive chained
            // (net_pcap, jumbo frames); the rewrite works on one segment.
            return Fate::MultiSegment;
        }
        let (room, off, len) = m.room_mut();
        let Some(mut frame) = Frame::new(room, off, len) else {
            self.shard.count_drop(DropReason::ParseMalformed);
            return Fate::Drop;
        };
        let mut parsed = match parse(frame.data()) {
            Ok(p) => p,
            Err(e) => {
                self.shard.count_drop(e.into());
                return Fate::Drop;
            }
        };
        parsed.key.vport = vport;
        parsed.key.dir = self
            .dirs
            .get(usize::from(vport))
            .copied()
            .unwrap_or(Direction::Outbound);
        match self.shard.process(&mut frame, &parsed, now_ns, may_redirect) {
            Verdict::Forward { vport: out } => {
                let (start, len) = (frame.start(), frame.len());
                m.set_window(start, len);
                Fate::Tx(out)
            }
            Verdict::Redirect { owner } => Fate::HandOff(owner),
            Verdict::Drop(_) => Fate::Drop,
        }
    }
}

fn dirs_of(p: &Policy) -> Vec<Direction> {
    p.vports().iter().map(|v| v.role.direction()).collect()
}

/// Computes an IPv4 header checksum the mbuf asked the NIC for, and
/// clears the request (a path without the offload transmits it).
pub fn software_ipv4_checksum(m: &mut Mbuf) {
    let Some((l2, _)) = m.ipv4_checksum_offloaded() else {
        return;
    };
    m.clear_ipv4_checksum_offload();
    let (room, off, len) = m.room_mut();
    if let Some(Ok(mut ip)) = room.get_mut(off + l2..off + len).map(Ipv4Packet::new_checked) {
        ip.fill_checksum();
    }
}
