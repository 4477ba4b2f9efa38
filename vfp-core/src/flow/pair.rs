//! A flow pair: the forward and reverse entries of one connection, created
//! and removed together (VFP/OPTE style), with everything the fast path
//! and expiry need.
//!
//! The pair is the unit of state: both keys, both compiled
//! transpositions, per-direction counters, times, the TCP tracker, the
//! policy generation it was compiled under, the first packet (to
//! re-evaluate after a policy change) and the SNAT port it holds. It holds
//! no heap memory, so creating and freeing one never allocates.

use crate::action::compile::FirstPacket;
use crate::action::nat::NatBinding;
use crate::action::transposition::Transposition;
use crate::flow::key::{proto, FlowKey};
use crate::flow::tcp_state::TcpTracker;
use crate::flow::timeouts::Timeouts;

/// Which entry of a pair: the direction of the first packet, or the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Side {
    Forward = 0,
    Reverse = 1,
}

impl Side {
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn other(self) -> Side {
        match self {
            Side::Forward => Side::Reverse,
            Side::Reverse => Side::Forward,
        }
    }
}

/// Packets and bytes of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirCounters {
    pub packets: u64,
    pub bytes: u64,
}

/// What one side of a pair holds, laid out for a hit: the key and the
/// counters fill one cache line, the transposition the next two. Aligned
/// to a line so the sides start on one: without it they started 48 bytes
/// into the pair, the forward key straddled lines 0 and 1 and a hit on
/// the reverse side read five lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct SideState {
    pub key: FlowKey,
    pub counters: DirCounters,
    pub xpos: Transposition,
}

/// Field order is the cache layout (hence `repr(C)`), and a pair starts on
/// a 128-byte boundary. Line 0 holds what both sides share, including the
/// TCP tracker; each side's state follows in three lines of its own, so a
/// hit touches four lines; what only the slow path and the operator read
/// comes last. The processor's spatial prefetcher completes the aligned
/// 128-byte block around each line it fetches: aligned, the four lines of
/// a forward hit are two such blocks, where a pair of nine lines (576
/// bytes on 64-byte boundaries) had every other slot's hit straddle
/// three, which cost about 8% at a million flows (docs/performance.md).
/// So the pair is ten lines (640 bytes), the last one padding.
///
/// What tells a live slab slot (`Some`) from a free one is the pair's
/// largest niche, [`Live`], in line 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(128))]
pub struct FlowPair {
    pub tcp: TcpTracker,
    /// Marks the pair live in the slab (see [`Live`]): in line 0, in what
    /// was padding.
    pub live: Live,
    /// Policy generation the transpositions were compiled under.
    pub generation: u64,
    pub last_seen_ns: u64,
    pub created_ns: u64,
    pub nat: Option<NatBinding>,
    /// The DNAT backend the connection was sent to (address, and port as
    /// its rule lists it), kept when the pair is re-evaluated.
    pub dnat: Option<([u8; 16], u16)>,
    /// Indexed by [`Side`].
    pub sides: [SideState; 2],
    pub first: FirstPacket,
}

/// The largest niche of a [`FlowPair`] (a 4-byte value with one valid
/// bit pattern), so that `Option<FlowPair>`, the slab's slot, tells a live
/// pair from a free slot here, in line 0, which every hit and every sweep
/// step reads anyway; otherwise rustc picks the next largest, the forward
/// transposition's `decap` tag in line 2, which a reverse hit and the
/// sweep would read only for that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Live {
    Yes = 1,
}

/// Byte offsets inside a pair of the cache lines a hit on each side reads:
/// the shared line 0, the side's key and counters line and its two
/// transposition lines. For callers that prefetch them.
pub const HIT_LINES: [[usize; 4]; 2] = {
    let side = core::mem::size_of::<SideState>();
    let xpos = core::mem::offset_of!(SideState, xpos);
    let first = core::mem::offset_of!(FlowPair, sides);
    [
        [0, first, first + xpos, first + xpos + 64],
        [0, first + side, first + side + xpos, first + side + xpos + 64],
    ]
};

/// Byte offsets inside a pair of the cache lines the expiry sweep reads
/// of every slot it examines: the slot's liveness ([`Live`]), the
/// last-seen time and TCP state (line 0) and the protocol (the forward
/// key's line). For callers that prefetch the slots a sweep will examine
/// next.
pub const SWEEP_LINES: [usize; 2] = [HIT_LINES[0][0], HIT_LINES[0][1]];

impl FlowPair {
    /// A new pair for a connection whose first packet is `first` (its key
    /// is the forward key).
    pub fn new(
        first: FirstPacket,
        rev_key: FlowKey,
        xpos: [Transposition; 2],
        nat: Option<NatBinding>,
        generation: u64,
        now_ns: u64,
    ) -> FlowPair {
        let side = |key, xpos| SideState {
            key,
            counters: DirCounters::default(),
            xpos,
        };
        FlowPair {
            tcp: TcpTracker::new(),
            live: Live::Yes,
            generation,
            last_seen_ns: now_ns,
            created_ns: now_ns,
            nat,
            dnat: None,
            sides: [side(first.parsed.key, xpos[0]), side(rev_key, xpos[1])],
            first,
        }
    }

    #[inline]
    pub fn key(&self, side: Side) -> &FlowKey {
        &self.sides[side.index()].key
    }

    #[inline]
    pub fn xpos(&self, side: Side) -> &Transposition {
        &self.sides[side.index()].xpos
    }

    #[inline]
    pub fn counters(&self, side: Side) -> &DirCounters {
        &self.sides[side.index()].counters
    }

    /// Both keys, forward first.
    pub fn keys(&self) -> [&FlowKey; 2] {
        [&self.sides[0].key, &self.sides[1].key]
    }

    /// Records a packet of `bytes` on `side` at `now_ns`.
    #[inline]
    pub fn touch(&mut self, side: Side, bytes: usize, now_ns: u64, tcp_flags: u8) {
        let s = &mut self.sides[side.index()];
        s.counters.packets += 1;
        s.counters.bytes += bytes as u64;
        let tcp = s.key.proto == proto::TCP;
        // The caller's clock may differ slightly between lcores that hand
        // packets to each other; never move last-seen backwards.
        self.last_seen_ns = self.last_seen_ns.max(now_ns);
        if tcp {
            self.tcp.update(side, tcp_flags);
        }
    }

    /// Idle time after which the pair expires.
    pub fn idle_timeout(&self, t: &Timeouts) -> u64 {
        match self.sides[0].key.proto {
            proto::TCP => self.tcp.state().timeout(t),
            proto::UDP => t.udp,
            proto::ICMP | proto::ICMPV6 => t.icmp,
            _ => t.other,
        }
    }

    /// True when the pair has been idle longer than its timeout at `now_ns`.
    #[inline]
    pub fn is_expired(&self, now_ns: u64, t: &Timeouts) -> bool {
        now_ns.saturating_sub(self.last_seen_ns) > self.idle_timeout(t)
    }

    /// Human-readable state for the operator.
    pub fn state_str(&self) -> &'static str {
        match self.sides[0].key.proto {
            proto::TCP => self.tcp.state().as_str(),
            _ => "active",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_starts_on_its_own_line_and_the_pair_is_ten_lines_128_byte_aligned() {
        let first = core::mem::offset_of!(FlowPair, sides);
        assert_eq!(first, 64);
        assert_eq!(core::mem::size_of::<SideState>(), 192);
        assert_eq!(core::mem::offset_of!(SideState, xpos), 64);
        assert_eq!(core::mem::size_of::<FlowPair>(), 640);
        assert_eq!(core::mem::align_of::<FlowPair>(), 128);
        assert_eq!(core::mem::size_of::<Option<FlowPair>>(), 640);
    }

    /// The prefetch targets follow the layout: line 0 and, for each side,
    /// its key line and the two lines its transposition occupies.
    #[test]
    fn hit_lines_are_the_lines_a_hit_reads() {
        let base = core::mem::offset_of!(FlowPair, sides);
        for (s, lines) in HIT_LINES.iter().enumerate() {
            let side = base + s * core::mem::size_of::<SideState>();
            let xpos = side + core::mem::offset_of!(SideState, xpos);
            assert_eq!(core::mem::offset_of!(SideState, key), 0);
            assert_eq!(lines, &[0, side, xpos, xpos + 64]);
            assert!(lines
                .iter()
                .all(|l| l % 64 == 0 && *l < core::mem::size_of::<FlowPair>()));
        }
        assert!(core::mem::size_of::<Transposition>() <= 128);
    }

    /// What the expiry sweep reads of a slot lies in the lines it names:
    /// the liveness marker (the niche, see [`FlowPair`]), the last-seen
    /// time and the tracker, and the forward key's protocol.
    #[test]
    fn sweep_lines_cover_what_the_sweep_reads() {
        use core::mem::{offset_of, size_of};
        let within = |at: usize, len: usize| SWEEP_LINES.iter().any(|l| *l <= at && at + len <= l + 64);
        let side = offset_of!(FlowPair, sides);
        assert!(within(offset_of!(FlowPair, last_seen_ns), 8));
        assert!(within(offset_of!(FlowPair, tcp), size_of::<TcpTracker>()));
        assert!(within(
            side + offset_of!(SideState, key) + offset_of!(FlowKey, proto),
            1
        ));
        assert!(within(offset_of!(FlowPair, live), size_of::<Live>()));
        assert!(SWEEP_LINES.iter().all(|l| l % 64 == 0));
    }
}
