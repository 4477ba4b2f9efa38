//! Amortised idle expiry: each call looks at a bounded number of slab
//! slots from a cursor, so the poll loop can expire flows a little at a
//! time without ever stalling a burst.
//!
//! A pair expires when it has been idle longer than its timeout (per TCP
//! state, or per protocol; see [`FlowPair::idle_timeout`]). The sweeper
//! removes it from the table and hands it to the caller, which releases
//! its NAT port and tells other shards to drop redirects to it.

use crate::flow::pair::FlowPair;
use crate::flow::table::FlowTable;
use crate::flow::timeouts::Timeouts;

/// Cursor over the slab of one table.
#[derive(Debug, Default)]
pub struct Sweeper {
    cursor: usize,
}

impl Sweeper {
    pub fn new() -> Sweeper {
        Sweeper::default()
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
}
