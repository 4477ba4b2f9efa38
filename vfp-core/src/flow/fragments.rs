//! Which flow the later fragments of a datagram belong to.
//!
//! Only a datagram's first fragment carries the L4 header, so only it can
//! be looked up by its flow key. A shard that forwards a first fragment
//! remembers, under the datagram's [`frag_key`] (addresses, protocol, IP
//! identification, arrival vport and VNI), the pair side that took it
//! (with that side's key, so a pair slot reused by another flow is never
//! taken for it), and where the first fragment's bytes end; a shard that
//! hands a first fragment to the lcore holding its flow remembers that
//! lcore. The later fragments, which carry the same identification, take
//! the same side (its address rewrites, MACs and encapsulation; their
//! bytes hold no L4 header to rewrite) or follow the first fragment to
//! that lcore (hand-offs between two lcores keep their order). Nothing is
//! reassembled or buffered. A later fragment is dropped (counted as
//! `fragment`) when its first was not forwarded, came too long ago or had
//! its entry replaced, or when it overlaps the first fragment's bytes
//! (RFC 1858: it could rewrite the L4 header the flow was matched on) or
//! would end past 65,535 bytes.
//!
//! The table is direct-mapped and fixed-size: a new datagram's entry
//! replaces whatever shared its slot, and entries last
//! [`FRAGMENT_TIMEOUT_NS`]. When the datagram key's owner
//! ([`FlowKey::owner`]) is another shard, the holder also asks it (best
//! effort) to redirect the datagram, for later fragments that a NIC's RSS
//! sent elsewhere than the first.

use crate::flow::key::FlowKey;
use crate::flow::pair::Side;
use crate::parse::{Fragment, Parsed, L3};
use crate::wire::{get16, ipv6};

/// Entries in each shard's table.
pub const FRAGMENT_ENTRIES: usize = 1024;
/// How long after its first fragment a datagram's later fragments are
/// still recognised.
pub const FRAGMENT_TIMEOUT_NS: u64 = 5_000_000_000;
/// Largest IP datagram: no fragment may end past it.
const MAX_DATAGRAM: u32 = 65_535;

/// Where a datagram's later fragments go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragTarget {
    /// This shard's pair `idx`, side `side`, whose key was `key` when the
    /// first fragment took it; later fragments must not start before
    /// byte `first_end` of the datagram.
    Pair {
        idx: u32,
        side: Side,
        key: FlowKey,
        first_end: u32,
    },
    /// The shard holding the pair (or on the way to it).
    Shard(usize),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: FlowKey,
    target: FragTarget,
    until_ns: u64,
}

/// One shard's table of fragmented datagrams.
pub struct FragTable {
    slots: Box<[Option<Entry>]>,
}

impl Default for FragTable {
    fn default() -> Self {
        FragTable::new()
    }
}

impl std::fmt::Debug for FragTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FragTable").field("entries", &self.slots.len()).finish()
    }
}

impl FragTable {
    pub fn new() -> FragTable {
        FragTable {
            slots: vec![None; FRAGMENT_ENTRIES].into_boxed_slice(),
        }
    }

    fn slot(&self, key: &FlowKey) -> usize {
        key.table_hash() as usize % self.slots.len()
    }

    /// Remembers where the datagram `key` goes, from `at_ns` on. Returns
    /// true when that replaced the live entry of another datagram (whose
    /// later fragments will be dropped).
    pub fn insert(&mut self, key: FlowKey, target: FragTarget, at_ns: u64) -> bool {
        let i = self.slot(&key);
        let evicted = self.slots[i]
            .as_ref()
            .is_some_and(|e| e.key != key && at_ns <= e.until_ns);
        self.slots[i] = Some(Entry {
            key,
            target,
            until_ns: at_ns.saturating_add(FRAGMENT_TIMEOUT_NS),
        });
        evicted
    }

    /// Where the datagram `key` goes, if its entry is still there.
    pub fn find(&self, key: &FlowKey, now_ns: u64) -> Option<FragTarget> {
        let e = self.slots[self.slot(key)].as_ref()?;
        (e.key == *key && now_ns <= e.until_ns).then_some(e.target)
    }
}

/// Where a fragment's bytes sit in its datagram: (offset, end), in
/// bytes of the fragmentable part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: u32,
    pub end: u32,
}

impl Span {
    /// Whether the fragment ends within an IP datagram's size.
    pub fn fits(&self) -> bool {
        self.end <= MAX_DATAGRAM
    }
}

/// The key of the datagram a fragment belongs to, and where the
/// fragment's bytes sit in it: the fragment's addresses, protocol (IPv6:
/// the fragment header's next header, the same in every fragment),
/// arrival vport, direction and VNI, with the IP identification in place
/// of the ports. None for a packet that is not a fragment (or whose
/// headers cannot be read again).
pub fn frag_key(data: &[u8], p: &Parsed) -> Option<(FlowKey, Span)> {
    if p.fragment == Fragment::None {
        return None;
    }
    let l3 = usize::from(p.l3_off);
    let (ident, proto, span) = match p.l3 {
        L3::Ipv4 => {
            let ihl = u32::from(*data.get(l3)? & 0x0f) * 4;
            let total = u32::from(get16(data, l3 + 2)?);
            let offset = u32::from(get16(data, l3 + 6)? & 0x1fff) * 8;
            let span = Span {
                offset,
                end: offset + total.saturating_sub(ihl),
            };
            (u32::from(get16(data, l3 + 4)?), p.key.proto, span)
        }
        L3::Ipv6 => {
            let next = *data.get(l3 + 6)?;
            let payload = u32::from(get16(data, l3 + 4)?);
            let rest = data.get(l3 + ipv6::HEADER_LEN..)?;
            let f = ipv6::walk_ext_headers(rest, next, crate::parse::MAX_IPV6_EXT_HEADERS)
                .ok()?
                .fragment?;
            let offset = u32::from(f.offset);
            let span = Span {
                offset,
                end: offset + payload.saturating_sub(f.data_off as u32),
            };
            (f.ident, f.next, span)
        }
        L3::Arp | L3::Other => return None,
    };
    let k = &p.key;
    let key = FlowKey {
        src: k.src,
        dst: k.dst,
        vni: k.vni,
        src_port: (ident >> 16) as u16,
        dst_port: ident as u16,
        vport: k.vport,
        proto,
        dir: k.dir,
    };
    Some((key, span))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::v4_mapped;

    fn key(id: u16) -> FlowKey {
        FlowKey {
            src: v4_mapped([10, 0, 0, 1]),
            dst: v4_mapped([10, 0, 0, 2]),
            dst_port: id,
            proto: 17,
            ..FlowKey::default()
        }
    }

    #[test]
    fn entries_expire_and_newer_datagrams_replace_older_ones() {
        let mut t = FragTable::new();
        t.insert(key(1), FragTarget::Shard(3), 0);
        assert_eq!(t.find(&key(1), FRAGMENT_TIMEOUT_NS), Some(FragTarget::Shard(3)));
        assert_eq!(t.find(&key(1), FRAGMENT_TIMEOUT_NS + 1), None);
        assert_eq!(t.find(&key(2), 0), None);
        // 64 Ki datagrams in 1,024 slots: each slot keeps its newest.
        for id in 2..=u16::MAX {
            t.insert(key(id), FragTarget::Shard(1), 10);
        }
        assert_eq!(t.find(&key(1), 10), None, "replaced");
        assert_eq!(t.find(&key(u16::MAX), 10), Some(FragTarget::Shard(1)));
        // Replacing a live entry of another datagram is reported, an
        // expired one or the same datagram's is not.
        let mut t = FragTable::new();
        assert!(!t.insert(key(1), FragTarget::Shard(1), 0));
        assert!(!t.insert(key(1), FragTarget::Shard(2), 1));
        let other = (2..=u16::MAX).find(|&id| t.slot(&key(id)) == t.slot(&key(1))).unwrap();
        assert!(t.insert(key(other), FragTarget::Shard(1), 2));
        assert!(!t.insert(key(1), FragTarget::Shard(1), 3 + FRAGMENT_TIMEOUT_NS));
    }
}
