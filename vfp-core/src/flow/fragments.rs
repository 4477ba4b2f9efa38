//! Which flow the later fragments of a datagram belong to.
//!
//! Only a datagram's first fragment carries the L4 header, so only it can
//! be looked up by its flow key. The shard that forwards a first fragment
//! remembers, under the datagram's [`frag_key`] (addresses, protocol, IP
//! identification, arrival vport and VNI), the pair side that took it;
//! the later fragments, which carry the same identification, take the
//! same side (its address rewrites, MACs and encapsulation; their bytes
//! hold no L4 header to rewrite). Nothing is reassembled or buffered: a
//! later fragment that arrives before its first, or after the entry is
//! gone, is dropped (counted as `fragment`).
//!
//! The table is direct-mapped and fixed-size: a new datagram's entry
//! replaces whatever shared its slot, and entries last
//! [`FRAGMENT_TIMEOUT_NS`]. When the key's owner ([`FlowKey::owner`]) is
//! another shard, the holder also has a redirect installed there, so a
//! later fragment that lands on any shard finds its way to the holder.

use crate::flow::key::FlowKey;
use crate::flow::pair::Side;
use crate::parse::{Fragment, Parsed, L3};
use crate::wire::ipv6;

/// Entries in each shard's table.
pub const FRAGMENT_ENTRIES: usize = 1024;
/// How long after its first fragment a datagram's later fragments are
/// still recognised.
pub const FRAGMENT_TIMEOUT_NS: u64 = 5_000_000_000;

/// Where a datagram's later fragments go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragTarget {
    /// This shard's pair `idx`, side `side`.
    Pair(u32, Side),
    /// The shard holding the pair.
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

    /// Remembers where the datagram `key` goes, from `now_ns` on.
    pub fn insert(&mut self, key: FlowKey, target: FragTarget, now_ns: u64) {
        let i = self.slot(&key);
        self.slots[i] = Some(Entry {
            key,
            target,
            until_ns: now_ns.saturating_add(FRAGMENT_TIMEOUT_NS),
        });
    }

    /// Where the datagram `key` goes, if its entry is still there.
    pub fn find(&self, key: &FlowKey, now_ns: u64) -> Option<FragTarget> {
        let e = self.slots[self.slot(key)].as_ref()?;
        (e.key == *key && now_ns <= e.until_ns).then_some(e.target)
    }
}

/// The key of the datagram a fragment belongs to: the fragment's
/// addresses, protocol, arrival vport, direction and VNI, with the IP
/// identification in place of the ports. None for a packet that is not a
/// fragment (or whose headers cannot be read again).
pub fn frag_key(data: &[u8], p: &Parsed) -> Option<FlowKey> {
    if p.fragment == Fragment::None {
        return None;
    }
    let l3 = usize::from(p.l3_off);
    let ident = match p.l3 {
        L3::Ipv4 => u32::from(u16::from_be_bytes(data.get(l3 + 4..l3 + 6)?.try_into().ok()?)),
        L3::Ipv6 => {
            let next = *data.get(l3 + 6)?;
            let rest = data.get(l3 + ipv6::HEADER_LEN..)?;
            ipv6::walk_ext_headers(rest, next, crate::parse::MAX_IPV6_EXT_HEADERS)
                .ok()?
                .fragment?
                .ident
        }
        L3::Arp | L3::Other => return None,
    };
    let k = &p.key;
    Some(FlowKey {
        src: k.src,
        dst: k.dst,
        vni: k.vni,
        src_port: (ident >> 16) as u16,
        dst_port: ident as u16,
        vport: k.vport,
        proto: k.proto,
        dir: k.dir,
    })
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
        t.insert(key(1), FragTarget::Pair(7, Side::Forward), 0);
        assert_eq!(
            t.find(&key(1), FRAGMENT_TIMEOUT_NS),
            Some(FragTarget::Pair(7, Side::Forward))
        );
        assert_eq!(t.find(&key(1), FRAGMENT_TIMEOUT_NS + 1), None);
        assert_eq!(t.find(&key(2), 0), None);
        // Fill the table: the first entry is replaced by a colliding one.
        for id in 2..=u16::MAX {
            t.insert(key(id), FragTarget::Shard(1), 10);
        }
        let found = (1..=u16::MAX).filter(|&id| t.find(&key(id), 10).is_some()).count();
        assert!(found <= FRAGMENT_ENTRIES, "{found}");
        assert_eq!(t.find(&key(u16::MAX), 10), Some(FragTarget::Shard(1)));
    }
}
