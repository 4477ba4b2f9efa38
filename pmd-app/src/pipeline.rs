//! The per-lcore VFP pipeline over DPDK mbufs: parse -> flow table
//! lookup (slow path on a miss) -> header transposition, in place.
//!
//! A worker owns one [`Pipeline`], that is one shard of the unified flow
//! table. [`Pipeline::classify`] decides one packet's fate; the worker
//! transmits, hands off or frees it. Nothing here allocates or locks per
//! packet: the shard's table is preallocated, messages to other shards
//! go through a preallocated outbox the worker drains every iteration.

use crate::dpdk::{self, Burst, Mbuf, BURST_SIZE};
use std::sync::Arc;
use vfp_core::flow::key::Direction;
use vfp_core::flow::v4_key::V4Key;
use vfp_core::frame::Frame;
use vfp_core::parse::{common_frame, parse_into, Parsed};
use vfp_core::policy::Policy;
use vfp_core::shard::{DropReason, Hint, Shard, Verdict};
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
    /// The burst being classified: each packet's descriptor, its table
    /// hash, and its fate (or `None` while it still needs a lookup).
    parsed: Box<[Parsed; BURST_SIZE]>,
    /// A common frame's short key and TCP flags (its descriptor is only
    /// written if the short key does not settle it).
    keys: [Option<(V4Key, u8)>; BURST_SIZE],
    hashes: [u64; BURST_SIZE],
    hints: [Hint; BURST_SIZE],
    fates: [Option<Fate>; BURST_SIZE],
}

impl Pipeline {
    pub fn new(shard: Shard, tsc0: u64, tsc_hz: u64) -> Pipeline {
        let dirs = dirs_of(shard.policy());
        Pipeline {
            shard,
            dirs,
            tsc0,
            ns_per_tsc: 1e9 / tsc_hz.max(1) as f64,
            parsed: Box::new([Parsed::default(); BURST_SIZE]),
            keys: [None; BURST_SIZE],
            hashes: [0; BURST_SIZE],
            hints: [Hint::NONE; BURST_SIZE],
            fates: [None; BURST_SIZE],
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

    #[inline(always)]
    fn dir_of(&self, vport: u16) -> Direction {
        self.dirs
            .get(usize::from(vport))
            .copied()
            .unwrap_or(Direction::Outbound)
    }

    /// Classifies a whole burst that arrived on `vport`, in three passes
    /// so that the cache misses of different packets overlap instead of
    /// queueing one behind the other:
    /// 1. read every packet's key and hash it, and prefetch the index line
    ///    its lookup reads: a common frame's short key at fixed offsets
    ///    ([`common_frame`]), any other frame parsed into its descriptor;
    /// 2. look every hash up ahead in the index ([`Shard::look_ahead`]):
    ///    independent reads, whose misses the processor overlaps; prefetch
    ///    the pair lines processing will read (shared line, key,
    ///    transposition);
    /// 3. process each packet in arrival order with its look-ahead hint: a
    ///    common frame's hit by its short key ([`Shard::process_common`]),
    ///    anything else (a miss, a stale pair, a transposition the
    ///    fixed-offset rewrite does not do) parsed in full and processed
    ///    the general way.
    ///
    /// Pass 3 trusts a hint only if the pair holds the packet's key, so a
    /// signature shared by two keys costs a full lookup, never the wrong
    /// flow, and a flow created or removed by an earlier packet of the
    /// burst is seen by the later ones. [`Pipeline::fates`] then holds
    /// one fate per packet, in order.
    #[inline(always)]
    pub fn classify_burst(&mut self, burst: &mut Burst, vport: u16, now_ns: u64) {
        // One vport per burst: its direction is looked up once. The
        // passes walk the burst and the per-packet arrays together, so no
        // step checks an index against the burst's length.
        let dir = self.dir_of(vport);
        let shard = &mut self.shard;
        let slots = self
            .keys
            .iter_mut()
            .zip(self.parsed.iter_mut().zip(self.hashes.iter_mut()));
        for ((m, fate), (k, (p, h))) in burst.iter_mut().zip(self.fates.iter_mut()).zip(slots) {
            *fate = read_key(shard, m, vport, dir, k, p, h).err();
            if fate.is_none() {
                dpdk::prefetch(shard.index_line(*h));
            }
        }
        let n = burst.len();
        let todo = self.fates[..n].iter().zip(&self.hashes).zip(self.hints.iter_mut());
        for ((fate, &h), hint) in todo {
            if fate.is_none() {
                *hint = shard.look_ahead(h);
                if let Some(lines) = shard.hint_lines(*hint) {
                    lines.into_iter().for_each(dpdk::prefetch);
                }
            }
        }
        let each = self
            .keys
            .iter()
            .zip(self.parsed.iter_mut().zip(&self.hashes).zip(&self.hints));
        for ((m, fate), (k, ((p, &h), &hint))) in burst.iter_mut().zip(self.fates.iter_mut()).zip(each) {
            if fate.is_none() {
                *fate = Some(settle(shard, m, (vport, dir), k, p, h, hint, true, now_ns));
            }
        }
    }

    /// The fates [`Pipeline::classify_burst`] gave the first `n` packets
    /// of the last burst.
    #[inline(always)]
    pub fn fates(&self, n: usize) -> &[Option<Fate>] {
        &self.fates[..n.min(BURST_SIZE)]
    }

    /// Runs one packet that arrived on `vport` through the shard. With
    /// `may_redirect` false (the packet was handed here) a miss is
    /// evaluated here rather than sent to the key's owner again.
    #[inline(always)]
    pub fn classify(&mut self, m: &mut Mbuf, vport: u16, may_redirect: bool, now_ns: u64) -> Fate {
        let dir = self.dir_of(vport);
        let (k, p, h) = (&mut self.keys[0], &mut self.parsed[0], &mut self.hashes[0]);
        if let Err(fate) = read_key(&self.shard, m, vport, dir, k, p, h) {
            return fate;
        }
        let hint = self.shard.look_ahead(*h);
        settle(&mut self.shard, m, (vport, dir), k, p, *h, hint, may_redirect, now_ns)
    }
}

/// Decides the fate of a packet whose key [`read_key`] read, with its
/// look-ahead hint: a common frame's hit by its short key `k`
/// ([`process_common`]); anything else (a miss, a stale pair, a
/// transposition the fixed-offset rewrite does not do) parsed into `p`
/// if it was not yet and processed the general way, with the same hash
/// `h` (see `V4Key`; not computed again) and hint.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn settle(
    shard: &mut Shard,
    m: &mut Mbuf,
    (vport, dir): (u16, Direction),
    k: &Option<(V4Key, u8)>,
    p: &mut Parsed,
    h: u64,
    hint: Hint,
    may_redirect: bool,
    now_ns: u64,
) -> Fate {
    if let Some((key, flags)) = k {
        if let Some(f) = process_common(shard, m, key, *flags, hint, now_ns) {
            return f;
        }
        if let Err(f) = parse_packet(shard, m, vport, dir, p) {
            return f;
        }
    }
    process(shard, m, p, h, hint, may_redirect, now_ns)
}

/// Reads the key of `m` (arrived on `vport`, whose packets travel `dir`)
/// and its table hash `h`: a common frame's short key and TCP flags into
/// `k`, any other frame's descriptor into `p` (`k` None); or says why the
/// packet goes no further (see [`prepare`]).
#[inline(always)]
fn read_key(
    shard: &Shard,
    m: &Mbuf,
    vport: u16,
    dir: Direction,
    k: &mut Option<(V4Key, u8)>,
    p: &mut Parsed,
    h: &mut u64,
) -> Result<(), Fate> {
    if m.is_contiguous() {
        if let Some(c) = common_frame(m.data()) {
            let key = c.key(vport, dir);
            *h = key.table_hash();
            *k = Some((key, c.tcp_flags));
            return Ok(());
        }
    }
    *k = None;
    prepare(shard, m, vport, dir, p, h)
}

/// The hit of a common frame with short key `key` (see
/// [`Shard::process_common`]), applied to its mbuf as [`process`] does;
/// None when the short key does not settle it.
#[inline(always)]
fn process_common(
    shard: &mut Shard,
    m: &mut Mbuf,
    key: &V4Key,
    tcp_flags: u8,
    hint: Hint,
    now_ns: u64,
) -> Option<Fate> {
    let (room, off, len) = m.room_mut();
    let mut frame = Frame::new(room, off, len)?;
    // The verdict's mapping is `process`'s, written out again: one
    // function for both cost 8 instructions a packet (callgrind, 1k
    // flows), the compiler laying the hot loop out differently.
    Some(match shard.process_common(&mut frame, key, tcp_flags, hint, now_ns)? {
        Verdict::Forward { vport: out } => {
            let (start, len) = (frame.start(), frame.len());
            m.set_window(start, len);
            if shard.checksum_plan().outer_ipv4_offloaded {
                m.offload_ipv4_checksum(14, 20);
            }
            Fate::Tx(out)
        }
        Verdict::Redirect { owner } => Fate::HandOff(owner),
        Verdict::Drop(_) => Fate::Drop,
    })
}

/// Parses `m` (arrived on `vport`, whose packets travel `dir`) into `p`,
/// sets the key's vport and direction and its table hash `h`; or says
/// why the packet goes no further (a parse error is counted here).
#[inline(always)]
fn prepare(shard: &Shard, m: &Mbuf, vport: u16, dir: Direction, p: &mut Parsed, h: &mut u64) -> Result<(), Fate> {
    parse_packet(shard, m, vport, dir, p)?;
    *h = p.key.table_hash();
    Ok(())
}

/// [`prepare`] without the hash (a common frame's is known already).
#[inline(always)]
fn parse_packet(shard: &Shard, m: &Mbuf, vport: u16, dir: Direction, p: &mut Parsed) -> Result<(), Fate> {
    if !m.is_contiguous() {
        // Frames larger than one mbuf's data room arrive chained
        // (net_pcap, jumbo frames); the rewrite works on one segment.
        return Err(Fate::MultiSegment);
    }
    if let Err(e) = parse_into(m.data(), p) {
        shard.count_drop(e.into());
        return Err(Fate::Drop);
    }
    p.key.vport = vport;
    p.key.dir = dir;
    Ok(())
}

/// Runs one parsed packet through the shard and applies the verdict to
/// its mbuf (new data window, checksum offload request).
#[inline(always)]
fn process(
    shard: &mut Shard,
    m: &mut Mbuf,
    parsed: &Parsed,
    hash: u64,
    hint: Hint,
    may_redirect: bool,
    now_ns: u64,
) -> Fate {
    let (room, off, len) = m.room_mut();
    let Some(mut frame) = Frame::new(room, off, len) else {
        shard.count_drop(DropReason::ParseMalformed);
        return Fate::Drop;
    };
    match shard.process_hinted(&mut frame, parsed, hash, hint, now_ns, may_redirect) {
        Verdict::Forward { vport: out } => {
            let (start, len) = (frame.start(), frame.len());
            m.set_window(start, len);
            if shard.checksum_plan().outer_ipv4_offloaded {
                m.offload_ipv4_checksum(14, 20);
            }
            Fate::Tx(out)
        }
        Verdict::Redirect { owner } => Fate::HandOff(owner),
        Verdict::Drop(_) => Fate::Drop,
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
