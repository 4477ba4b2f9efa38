//! A first-packet index over a layer's rules for IPv4 packets.
//!
//! The slow path must find the first matching rule in evaluation order.
//! Scanning every rule costs a pointer chase per rule (its prefix lists
//! live on the heap), so for each (direction, protocol bucket) the layer
//! keeps, for IPv4 packets:
//! - the rules that restrict the destination to networks of /8 or
//!   longer, filed under each first octet they allow;
//! - every other rule, in a "wildcard" list;
//!
//! and a packet scans the wildcard list merged (by rule index, so in
//! evaluation order) with its destination octet's list. Every entry also
//! carries a 16-byte summary of the rule's IPv4 prefixes (the common
//! network of its source and of its destination prefixes) that rejects
//! most non-matching rules without touching the rule itself. Both are
//! necessary conditions only: a candidate still goes through the full
//! match, so the index can skip rules but never change a decision.
//!
//! A list is stored field by field in chunks of [`LANES`] entries, padded
//! with entries that admit nothing, so the summary test runs over a whole
//! chunk in straight-line code (which the compiler vectorises) and gives
//! a bitmask of the entries that pass; only those are looked at one by
//! one. A policy of a thousand rules that a packet must scan to the end
//! (the benchmark's) costs a few instructions per rule, not a branchy
//! iterator step each.

use super::prefix::{Addr, Prefix};
use super::rule::Rule;

/// One rule as the index sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub rule: u32,
    src: Net4,
    dst: Net4,
}

/// `addr & mask == net`; mask 0 admits everything. `never` when the rule
/// has only IPv6 prefixes on that side (no IPv4 packet can match).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Net4 {
    net: u32,
    mask: u32,
    never: bool,
}

impl Net4 {
    /// The widest IPv4 network containing every IPv4 prefix of `ps`.
    fn common(ps: &[Prefix]) -> Net4 {
        if ps.is_empty() {
            return Net4::default();
        }
        let mut acc: Option<(u32, u32)> = None;
        for (net, mask) in ps.iter().filter_map(Prefix::v4_net_mask) {
            acc = Some(match acc {
                None => (net, mask),
                Some((n, m)) => {
                    // Keep the leading bits both networks share.
                    let d = n ^ net;
                    let lcp = if d == 0 {
                        u32::MAX
                    } else {
                        !(u32::MAX >> d.leading_zeros())
                    };
                    let m2 = m & mask & lcp;
                    (n & m2, m2)
                }
            });
        }
        match acc {
            Some((net, mask)) => Net4 {
                net,
                mask,
                never: false,
            },
            None => Net4 {
                net: 0,
                mask: 0,
                never: true,
            },
        }
    }

    /// What the summary means (the chunks test an encoding of it).
    #[cfg(test)]
    fn admits(&self, a: u32) -> bool {
        !self.never && a & self.mask == self.net
    }

    /// `(net, mask)` for the chunk test `a & mask == net`: a network that
    /// admits nothing is net 1 under mask 0, which no address meets.
    fn net_mask(&self) -> (u32, u32) {
        if self.never {
            (1, 0)
        } else {
            (self.net, self.mask)
        }
    }
}

impl Entry {
    pub fn new(i: u32, r: &Rule) -> Entry {
        Entry {
            rule: i,
            src: Net4::common(&r.matcher.src),
            dst: Net4::common(&r.matcher.dst),
        }
    }
}

/// Entries a chunk holds.
const LANES: usize = 8;

/// [`LANES`] entries, field by field.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct Chunk {
    src_net: [u32; LANES],
    src_mask: [u32; LANES],
    dst_net: [u32; LANES],
    dst_mask: [u32; LANES],
    rule: [u32; LANES],
}

impl Chunk {
    /// Admits nothing: the padding of a list's last chunk.
    const NONE: Chunk = Chunk {
        src_net: [1; LANES],
        src_mask: [0; LANES],
        dst_net: [1; LANES],
        dst_mask: [0; LANES],
        rule: [u32::MAX; LANES],
    };

    fn set(&mut self, lane: usize, e: &Entry) {
        (self.src_net[lane], self.src_mask[lane]) = e.src.net_mask();
        (self.dst_net[lane], self.dst_mask[lane]) = e.dst.net_mask();
        self.rule[lane] = e.rule;
    }

    /// Bit `i` set when entry `i`'s summaries admit these addresses.
    /// Most chunks admit nothing, so that is tested first, as one
    /// reduction over the lanes (a handful of vector instructions); only
    /// a chunk that passes has its bits gathered.
    #[inline(always)]
    fn admitted(&self, src: u32, dst: u32) -> u32 {
        // Bit 31 of `m | -m` is set exactly when `m` is not zero: AND it
        // over the lanes, so no lane compares or branches on its own.
        let all_miss = (0..LANES).fold(u32::MAX, |a, i| {
            let m = self.miss(i, src, dst);
            a & (m | m.wrapping_neg())
        });
        if all_miss >> 31 != 0 {
            return 0;
        }
        (0..LANES).fold(0, |m, i| m | u32::from(self.miss(i, src, dst) == 0) << i)
    }

    /// Zero when entry `i` admits the addresses.
    #[inline(always)]
    fn miss(&self, i: usize, src: u32, dst: u32) -> u32 {
        (src & self.src_mask[i]) ^ self.src_net[i] | (dst & self.dst_mask[i]) ^ self.dst_net[i]
    }
}

/// Entries in evaluation order, in chunks (the last one padded).
#[derive(Debug, Default)]
struct List(Box<[Chunk]>);

impl List {
    fn new(entries: &[Entry]) -> List {
        List(
            entries
                .chunks(LANES)
                .map(|es| {
                    let mut c = Chunk::NONE;
                    for (lane, e) in es.iter().enumerate() {
                        c.set(lane, e);
                    }
                    c
                })
                .collect(),
        )
    }
}

/// A position in a [`List`]: the chunk being read and which of its
/// entries passed the test and are still to be returned.
struct Cursor<'a> {
    rest: &'a [Chunk],
    chunk: &'a Chunk,
    pending: u32,
}

impl<'a> Cursor<'a> {
    fn new(chunks: &'a [Chunk]) -> Cursor<'a> {
        Cursor {
            rest: chunks,
            chunk: &Chunk::NONE,
            pending: 0,
        }
    }

    /// The rule of the next entry that admits the addresses, left in place.
    #[inline(always)]
    fn peek(&mut self, src: u32, dst: u32) -> Option<u32> {
        while self.pending == 0 {
            let (c, rest) = self.rest.split_first()?;
            (self.chunk, self.rest) = (c, rest);
            self.pending = c.admitted(src, dst);
        }
        self.chunk.rule.get(self.pending.trailing_zeros() as usize).copied()
    }

    /// Drops the entry [`Cursor::peek`] returned.
    #[inline(always)]
    fn advance(&mut self) {
        self.pending &= self.pending.wrapping_sub(1);
    }
}

/// The IPv4 index of one (direction, protocol bucket).
#[derive(Debug, Default)]
pub struct V4Index {
    wild: List,
    /// 256 lists, by the destination's first octet.
    by_octet: Box<[List]>,
}

impl V4Index {
    /// Indexes the rules `ids` (in evaluation order) of `rules`.
    pub fn new(rules: &[Rule], ids: &[u32]) -> V4Index {
        let mut wild = Vec::new();
        let mut by_octet: Vec<Vec<Entry>> = vec![Vec::new(); 256];
        for &i in ids {
            let r = &rules[i as usize];
            let e = Entry::new(i, r);
            let octets: Option<Vec<u8>> = if r.matcher.dst.is_empty() {
                None
            } else {
                // Only when every destination prefix is IPv4 and /8 or longer.
                r.matcher
                    .dst
                    .iter()
                    .map(|p| {
                        p.v4_net_mask()
                            .filter(|(_, m)| m >> 24 == 0xff)
                            .map(|(n, _)| (n >> 24) as u8)
                    })
                    .collect()
            };
            match octets {
                None => wild.push(e),
                Some(mut os) => {
                    os.sort_unstable();
                    os.dedup();
                    for o in os {
                        by_octet[usize::from(o)].push(e);
                    }
                }
            }
        }
        V4Index {
            wild: List::new(&wild),
            by_octet: by_octet.iter().map(|es| List::new(es)).collect(),
        }
    }

    /// The candidate rules for an IPv4 packet, in evaluation order.
    #[inline]
    pub fn candidates(&self, src: Addr, dst: Addr) -> Candidates<'_> {
        let d = dst.bits as u32;
        let octet = self.by_octet.get((d >> 24) as usize).map_or(&[][..], |l| &l.0);
        Candidates {
            a: Cursor::new(&self.wild.0),
            b: Cursor::new(octet),
            src: src.bits as u32,
            dst: d,
        }
    }
}

/// The wildcard list merged with one octet's list (by rule index, so in
/// evaluation order; no rule is in both), filtered by the prefix
/// summaries.
pub struct Candidates<'a> {
    a: Cursor<'a>,
    b: Cursor<'a>,
    src: u32,
    dst: u32,
}

impl Iterator for Candidates<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        let (src, dst) = (self.src, self.dst);
        match (self.a.peek(src, dst), self.b.peek(src, dst)) {
            (Some(x), Some(y)) if x < y => {
                self.a.advance();
                Some(x)
            }
            (_, Some(y)) => {
                self.b.advance();
                Some(y)
            }
            (Some(x), None) => {
                self.a.advance();
                Some(x)
            }
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(ps: &[&str]) -> Net4 {
        let v: Vec<Prefix> = ps.iter().map(|p| Prefix::parse(p).unwrap()).collect();
        Net4::common(&v)
    }

    #[test]
    fn common_network_of_prefixes() {
        assert_eq!(net(&[]), Net4::default());
        let n = net(&["10.1.0.0/16"]);
        assert_eq!((n.net, n.mask), (0x0a01_0000, 0xffff_0000));
        let n = net(&["10.1.0.0/16", "10.2.0.0/16"]);
        assert_eq!((n.net, n.mask), (0x0a00_0000, 0xfffc_0000));
        assert!(n.admits(0x0a02_0304) && n.admits(0x0a01_ffff) && !n.admits(0x0b00_0000));
        let n = net(&["192.168.0.0/24", "172.16.0.0/24"]);
        assert_eq!(
            (n.net, n.mask),
            (0x8000_0000, 0x8000_0000),
            "only the leading 1 bit is shared"
        );
        assert!(net(&["2001:db8::/32"]).never);
        let n = net(&["2001:db8::/32", "10.0.0.0/8"]);
        assert!(!n.never && n.admits(0x0a00_0001));
    }

    /// A list of any length (empty, within one chunk, on and across chunk
    /// boundaries) yields exactly the entries whose summaries admit the
    /// addresses, in order, whatever mix of wildcards, networks and
    /// never-matching sides they have.
    #[test]
    fn a_list_yields_every_admitting_entry_in_order_across_chunks() {
        let ten = Net4 {
            net: 0x0a00_0000,
            mask: 0xff00_0000,
            never: false,
        };
        let top = Net4 {
            net: 0xc000_0000,
            mask: 0xf000_0000,
            never: false,
        };
        let never = Net4 {
            never: true,
            ..Net4::default()
        };
        for n in [0u32, 1, 7, 8, 9, 16, 17, 40] {
            let entries: Vec<Entry> = (0..n)
                .map(|i| Entry {
                    rule: i * 3,
                    src: if i % 3 == 0 { ten } else { Net4::default() },
                    dst: [top, Net4::default(), never, top, ten][i as usize % 5],
                })
                .collect();
            let list = List::new(&entries);
            assert_eq!(list.0.len(), (n as usize).div_ceil(LANES));
            for (src, dst) in [
                (0x0a01_0203, 0xc0a8_0001),
                (0x0b00_0000, 0xc000_0000),
                (0x0a00_0000, 0x0a00_0001),
                (0, 0),
            ] {
                let want: Vec<u32> = entries
                    .iter()
                    .filter(|e| e.src.admits(src) && e.dst.admits(dst))
                    .map(|e| e.rule)
                    .collect();
                let mut c = Cursor::new(&list.0);
                let mut got = Vec::new();
                while let Some(r) = c.peek(src, dst) {
                    got.push(r);
                    c.advance();
                }
                assert_eq!(got, want, "{n} entries, {src:#x} -> {dst:#x}");
            }
        }
    }
}
