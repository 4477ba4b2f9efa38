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

    #[inline(always)]
    fn admits(&self, a: u32) -> bool {
        !self.never && a & self.mask == self.net
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

    #[inline(always)]
    fn admits(&self, src: u32, dst: u32) -> bool {
        self.src.admits(src) && self.dst.admits(dst)
    }
}

/// The IPv4 index of one (direction, protocol bucket).
#[derive(Debug, Default)]
pub struct V4Index {
    wild: Box<[Entry]>,
    /// 256 lists, by the destination's first octet.
    by_octet: Box<[Box<[Entry]>]>,
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
            wild: wild.into_boxed_slice(),
            by_octet: by_octet.into_iter().map(Vec::into_boxed_slice).collect(),
        }
    }

    /// The candidate rules for an IPv4 packet, in evaluation order.
    #[inline]
    pub fn candidates(&self, src: Addr, dst: Addr) -> Candidates<'_> {
        let d = dst.bits as u32;
        Candidates {
            a: &self.wild,
            b: self.by_octet.get((d >> 24) as usize).map_or(&[], |x| x),
            src: src.bits as u32,
            dst: d,
        }
    }
}

/// The wildcard list merged with one octet's list, filtered by the
/// prefix summaries.
pub struct Candidates<'a> {
    a: &'a [Entry],
    b: &'a [Entry],
    src: u32,
    dst: u32,
}

impl Iterator for Candidates<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        loop {
            let e = match (self.a.split_first(), self.b.split_first()) {
                (Some((x, ra)), Some((y, _))) if x.rule < y.rule => {
                    self.a = ra;
                    x
                }
                (_, Some((y, rb))) => {
                    self.b = rb;
                    y
                }
                (Some((x, ra)), None) => {
                    self.a = ra;
                    x
                }
                (None, None) => return None,
            };
            if e.admits(self.src, self.dst) {
                return Some(e.rule);
            }
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
}
