//! Amortised idle expiry: each call looks at a bounded number of slab
//! slots from a cursor, so the poll loop can expire flows a little at a
//! time without ever stalling a burst.
//!
//! Paced ([`Sweeper::paced_budget`]), the slices add up to one pass over
//! the slab per [`SWEEP_PERIOD_NS`] whatever the loop's rate: a pair is
//! removed at most that long after its timeout (as long as the loop runs
//! at least slots / [`MAX_SLICE`] iterations per period: an idle loop
//! sleeping 200 us between polls does for a million slots), and a large
//! table costs a busy loop a few slots per iteration instead of a fixed
//! number (each slot examined is a cache miss or three in a table of a
//! million pairs).
//!
//! A pair expires when it has been idle longer than its timeout (per TCP
//! state, or per protocol; see [`FlowPair::idle_timeout`]). The sweeper
//! removes it from the table and hands it to the caller, which releases
//! its NAT port and tells other shards to drop redirects to it.

use crate::flow::pair::FlowPair;
use crate::flow::table::FlowTable;
use crate::flow::timeouts::Timeouts;

/// A paced sweeper passes over the whole slab once per this period.
pub const SWEEP_PERIOD_NS: u64 = 1_000_000_000;

/// Most slots one paced slice examines (a loop that stalled for a while
/// catches up over several iterations, not in one).
pub const MAX_SLICE: usize = 256;

/// Cursor over the slab of one table.
#[derive(Debug, Default)]
pub struct Sweeper {
    cursor: usize,
    /// Clock of the previous paced slice (None before the first).
    last_ns: Option<u64>,
    /// Slots owed, in slot-nanoseconds (slots x elapsed time), not yet
    /// worth a whole slot per period.
    credit: u64,
    /// Size of the last paced slice: the next one is most likely as
    /// large (the loop's rate changes slowly).
    last_budget: usize,
}

impl Sweeper {
    pub fn new() -> Sweeper {
        Sweeper::default()
    }

    /// How many of `slots` slots to examine at `now_ns` so that the
    /// slices add up to `slots` per [`SWEEP_PERIOD_NS`]; at most
    /// [`MAX_SLICE`], and 0 on the first call (it starts the clock).
    pub fn paced_budget(&mut self, now_ns: u64, slots: usize) -> usize {
        let Some(last) = self.last_ns.replace(now_ns) else {
            return 0;
        };
        // Bounded so the product fits: at most 2^32 slots x 1e9 ns.
        let dt = now_ns.saturating_sub(last).min(SWEEP_PERIOD_NS);
        let slots = (slots as u64).min(u64::from(u32::MAX));
        self.credit = self.credit.saturating_add(slots * dt);
        let due = self.credit / SWEEP_PERIOD_NS;
        let budget = due.min(MAX_SLICE as u64);
        self.credit -= budget * SWEEP_PERIOD_NS;
        // What the cap left over is owed later, but never more than one
        // more slice's worth: a long stall does not become a long burst.
        self.credit = self.credit.min(MAX_SLICE as u64 * SWEEP_PERIOD_NS);
        self.last_budget = budget as usize;
        budget as usize
    }

    /// The slots the next paced slice most likely examines, in order: as
    /// many as the last slice had, at most `max`, from the cursor on
    /// (wrapping) in a slab of `slots` slots. A caller that prefetches
    /// them a loop iteration ahead turns the sweep's cache misses (one
    /// per slot in a table larger than the cache) into hits.
    pub fn upcoming(&self, slots: usize, max: usize) -> impl Iterator<Item = u32> {
        let n = self.last_budget.min(max).min(slots);
        // The cursor is at most `slots` (the slab never shrinks), where the
        // sweep wraps to 0: the modulo wraps the same way.
        let cursor = self.cursor;
        (0..n).map(move |k| ((cursor + k) % slots) as u32)
    }

    /// Examines up to `budget` slots (at most one full pass); removes the
    /// pairs idle at `now_ns` and passes each to `on_expired`. Returns how
    /// many were removed.
    pub fn sweep(
        &mut self,
        table: &mut FlowTable,
        now_ns: u64,
        budget: usize,
        timeouts: &Timeouts,
        mut on_expired: impl FnMut(u32, FlowPair),
    ) -> usize {
        let slots = table.slots();
        if slots == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget.min(slots) {
            if self.cursor >= slots {
                self.cursor = 0;
            }
            let idx = self.cursor as u32;
            self.cursor += 1;
            if table.pair(idx).is_some_and(|p| p.is_expired(now_ns, timeouts)) {
                if let Some(p) = table.remove_pair(idx) {
                    on_expired(idx, p);
                    removed += 1;
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::compile::FirstPacket;
    use crate::action::transposition::Transposition;
    use crate::flow::key::{proto, v4_mapped, FlowKey};
    use crate::flow::pair::Side;
    use crate::flow::tcp_state::flags::*;
    use crate::parse::Parsed;

    const SEC: u64 = 1_000_000_000;

    fn pair(n: u8, p: u8, now: u64) -> FlowPair {
        let k = FlowKey {
            src: v4_mapped([10, 0, 0, n]),
            dst: v4_mapped([1, 1, 1, 1]),
            src_port: 1000,
            dst_port: 53,
            proto: p,
            ..FlowKey::default()
        };
        let first = FirstPacket {
            parsed: Parsed {
                key: k,
                ..Parsed::default()
            },
            ..FirstPacket::default()
        };
        FlowPair::new(first, k.reversed(1), [Transposition::default(); 2], None, 0, now)
    }

    #[test]
    fn expires_by_protocol_and_tcp_state() {
        let t = Timeouts::default();
        let mut table = FlowTable::with_capacity(8, 0);
        let udp = table.insert_pair(pair(1, proto::UDP, 0)).unwrap();
        let syn = table.insert_pair(pair(2, proto::TCP, 0)).unwrap();
        let est = table.insert_pair(pair(3, proto::TCP, 0)).unwrap();
        let rst = table.insert_pair(pair(4, proto::TCP, 0)).unwrap();
        let icmp = table.insert_pair(pair(5, proto::ICMP, 0)).unwrap();
        {
            let p = table.pair_mut(est).unwrap();
            p.touch(Side::Reverse, 60, 0, SYN | ACK);
            p.touch(Side::Forward, 60, 0, ACK);
        }
        table.pair_mut(rst).unwrap().touch(Side::Reverse, 60, 0, RST);
        let mut s = Sweeper::new();
        let mut gone = Vec::new();
        let mut sweep =
            |table: &mut FlowTable, now: u64, gone: &mut Vec<u32>| s.sweep(table, now, 100, &t, |i, _| gone.push(i));
        // Closed TCP (5 s) goes first.
        assert_eq!(sweep(&mut table, 6 * SEC, &mut gone), 1);
        assert_eq!(gone, [rst]);
        // SYN-only (30 s) and ICMP (30 s).
        assert_eq!(sweep(&mut table, 31 * SEC, &mut gone), 2);
        assert!(gone.contains(&syn) && gone.contains(&icmp));
        // UDP (60 s).
        assert_eq!(sweep(&mut table, 61 * SEC, &mut gone), 1);
        assert!(gone.contains(&udp));
        // Established survives until 240 s of idleness.
        assert_eq!(sweep(&mut table, 239 * SEC, &mut gone), 0);
        assert_eq!(sweep(&mut table, 241 * SEC, &mut gone), 1);
        assert!(table.is_empty());
    }

    #[test]
    fn budget_bounds_the_scan_and_the_cursor_wraps() {
        let t = Timeouts::default();
        let mut table = FlowTable::with_capacity(8, 0);
        for i in 0..8 {
            table.insert_pair(pair(i, proto::UDP, 0)).unwrap();
        }
        let mut s = Sweeper::new();
        let now = 100 * SEC;
        assert_eq!(s.sweep(&mut table, now, 3, &t, |_, _| {}), 3);
        assert_eq!(s.sweep(&mut table, now, 3, &t, |_, _| {}), 3);
        assert_eq!(s.sweep(&mut table, now, 3, &t, |_, _| {}), 2);
        assert!(table.is_empty());
        // A recently seen pair is left alone.
        table.insert_pair(pair(1, proto::UDP, now)).unwrap();
        assert_eq!(s.sweep(&mut table, now + SEC, 100, &t, |_, _| {}), 0);
    }

    /// Paced slices add up to one pass over the slab per period, at any
    /// loop rate, without a rounding drift; the first call only starts
    /// the clock.
    #[test]
    fn paced_slices_add_up_to_one_pass_per_period() {
        for (slots, step_ns) in [
            (1000usize, 1_700u64),
            (3, 10_000),
            (1_000_000, 4_600),
            (50, 250_000_000),
        ] {
            let mut s = Sweeper::new();
            assert_eq!(s.paced_budget(5 * SEC, slots), 0);
            let (mut now, mut total) = (5 * SEC, 0usize);
            while now < 5 * SEC + 4 * SWEEP_PERIOD_NS {
                now += step_ns;
                let b = s.paced_budget(now, slots);
                assert!(b <= MAX_SLICE);
                total += b;
            }
            // Exactly the slots owed for the time elapsed: no drift.
            let owed = slots as u128 * u128::from(now - 5 * SEC) / u128::from(SWEEP_PERIOD_NS);
            assert_eq!(total as u128, owed, "{slots} slots every {step_ns} ns");
        }
    }

    /// The slots announced as upcoming are the slots the next slice of the
    /// same size examines, in order, across the wrap; at most `max`.
    #[test]
    fn upcoming_names_the_slots_the_next_slice_examines() {
        let t = Timeouts::default();
        let mut table = FlowTable::with_capacity(7, 0);
        for i in 0..7 {
            table.insert_pair(pair(i, proto::UDP, 0)).unwrap();
        }
        let mut s = Sweeper::new();
        assert_eq!(s.upcoming(7, 16).count(), 0, "no slice yet");
        assert_eq!(s.paced_budget(0, 7), 0);
        let budget = s.paced_budget(SWEEP_PERIOD_NS / 2, 7);
        assert_eq!(budget, 3);
        let want: Vec<u32> = s.upcoming(7, 16).collect();
        assert_eq!(want, [0, 1, 2]);
        assert_eq!(s.upcoming(7, 2).count(), 2, "capped by max");
        assert_eq!(s.upcoming(0, 16).count(), 0, "empty slab");
        // Every pair is long idle: a slice removes each slot it examines.
        let mut examined = Vec::new();
        s.sweep(&mut table, 1000 * SEC, budget, &t, |i, _| examined.push(i));
        assert_eq!(examined, want);
        // Move the cursor to the last slot: the next slice wraps.
        s.sweep(&mut table, 1000 * SEC, 3, &t, |_, _| {});
        let want: Vec<u32> = s.upcoming(7, 16).collect();
        assert_eq!(want, [6, 0, 1]);
        for i in 10..16 {
            table.insert_pair(pair(i, proto::UDP, 0)).unwrap();
        }
        let mut examined = Vec::new();
        s.sweep(&mut table, 1000 * SEC, budget, &t, |i, _| examined.push(i));
        assert_eq!(examined, want);
    }

    /// A slice is capped, and a loop that stalled (or a clock that jumped)
    /// owes at most one more slice, not the whole backlog.
    #[test]
    fn a_stall_does_not_turn_into_a_long_slice() {
        let mut s = Sweeper::new();
        assert_eq!(s.paced_budget(0, 1_000_000), 0);
        assert_eq!(s.paced_budget(3600 * SEC, 1_000_000), MAX_SLICE);
        assert_eq!(s.paced_budget(3600 * SEC, 1_000_000), MAX_SLICE);
        assert_eq!(s.paced_budget(3600 * SEC, 1_000_000), 0);
        // Time going backwards (another lcore's clock) owes nothing.
        assert_eq!(s.paced_budget(SEC, 1_000_000), 0);
        assert_eq!(s.paced_budget(u64::MAX, usize::MAX), MAX_SLICE);
    }
}
