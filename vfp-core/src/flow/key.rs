//! The unified flow table's exact-match key and the hashes derived from it.
//!
//! A key is (vport, direction, 5-tuple, VNI). IPv4 addresses are stored
//! v4-mapped (`::ffff:a.b.c.d`) so one fixed-size key serves both families.
//! Two hashes come from a key:
//! - [`FlowKey::owner_hash`] is *symmetric* (the same for a tuple and its
//!   reverse) and ignores vport and direction, so both directions of a
//!   connection pick the same owning shard (lcore) whatever queue they
//!   arrived on;
//! - [`FlowKey::table_hash`] covers every field and is the hash the flow
//!   table is indexed by.

use std::hash::{Hash, Hasher};
use zerocopy::{Immutable, IntoBytes};

use crate::flow::v4_key::V4Key;

/// Which way a packet crosses the switch, seen from the VM.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, IntoBytes, Immutable)]
#[repr(u8)]
pub enum Direction {
    /// From a VM-side vport towards the network: layers top-down.
    #[default]
    Outbound = 0,
    /// From a network-side vport towards a VM: layers bottom-up.
    Inbound = 1,
}

impl Direction {
    pub fn reverse(self) -> Direction {
        match self {
            Direction::Outbound => Direction::Inbound,
            Direction::Inbound => Direction::Outbound,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "out",
            Direction::Inbound => "in",
        }
    }
}

/// VNI value meaning "not VXLAN-encapsulated".
pub const NO_VNI: u32 = u32::MAX;

/// IP protocol numbers used in keys.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

/// Exact-match key of the unified flow table. 44 bytes without padding
/// (`IntoBytes` proves it), compared as bytes (see the `PartialEq`).
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
#[repr(C)]
pub struct FlowKey {
    /// Source address; IPv4 is v4-mapped.
    pub src: [u8; 16],
    /// Destination address; IPv4 is v4-mapped.
    pub dst: [u8; 16],
    /// VXLAN network identifier of the tenant frame, or [`NO_VNI`].
    pub vni: u32,
    /// L4 source port; ICMP echo: identifier for requests, 0 for replies;
    /// ICMP error: [`crate::parse::ICMP_ERROR_PORT`].
    pub src_port: u16,
    /// L4 destination port; ICMP echo: 0 for requests, identifier for
    /// replies; ICMP error: [`crate::parse::ICMP_ERROR_PORT`].
    pub dst_port: u16,
    /// Index of the vport the packet arrived on.
    pub vport: u16,
    /// IP protocol number (0 when the frame has no IP header).
    pub proto: u8,
    pub dir: Direction,
}

impl Default for FlowKey {
    fn default() -> Self {
        FlowKey {
            src: [0; 16],
            dst: [0; 16],
            vni: NO_VNI,
            src_port: 0,
            dst_port: 0,
            vport: 0,
            proto: 0,
            dir: Direction::Outbound,
        }
    }
}

/// Field-by-field equality, computed on the key's bytes as three
/// overlapping 16-byte words (0..16, 16..32, 28..44): a handful of vector
/// instructions and one branch instead of a compare and branch per field.
/// Every packet's hit confirms its key this way. The same as the derived
/// equality because the key has no padding and every field's value is
/// its bytes.
impl PartialEq for FlowKey {
    #[inline(always)]
    fn eq(&self, other: &FlowKey) -> bool {
        let (a, b) = (self.as_bytes(), other.as_bytes());
        let word = |s: &[u8], at: usize| u128::from_ne_bytes(s[at..at + 16].try_into().unwrap());
        let diff = |at| word(a, at) ^ word(b, at);
        diff(0) | diff(16) | diff(KEY_LEN - 16) == 0
    }
}

impl Eq for FlowKey {}

/// Hashes the bytes equality compares, so equal keys hash alike.
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

const KEY_LEN: usize = core::mem::size_of::<FlowKey>();
const _: () = assert!(KEY_LEN == 44);

const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// Stores an IPv4 address v4-mapped. Built as one 128-bit value so it is
/// written with whole-word stores: the hash reads it back as two words,
/// and a load spanning a 12-byte and a 4-byte store cannot be forwarded.
#[inline]
pub fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    (0xffff_u128 << 32 | u128::from(u32::from_be_bytes(a))).to_be_bytes()
}

/// The IPv4 address of a v4-mapped address, if it is one.
#[inline]
pub fn as_v4(a: &[u8; 16]) -> Option<[u8; 4]> {
    if a[..12] == V4_MAPPED_PREFIX {
        Some([a[12], a[13], a[14], a[15]])
    } else {
        None
    }
}

#[inline]
fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser: cheap and well distributed.
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[inline]
fn endpoint_hash(addr: &[u8; 16], port: u16) -> u64 {
    let hi = u64::from_ne_bytes(addr[0..8].try_into().unwrap());
    let lo = u64::from_ne_bytes(addr[8..16].try_into().unwrap());
    mix(hi ^ mix(lo ^ u64::from(port)))
}

impl FlowKey {
    pub fn is_ipv4(&self) -> bool {
        as_v4(&self.src).is_some() && as_v4(&self.dst).is_some()
    }

    /// The key a reply to this packet carries, seen arriving on `vport` in
    /// the opposite direction (no NAT applied).
    #[inline]
    pub fn reversed(&self, vport: u16) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            vni: self.vni,
            src_port: self.dst_port,
            dst_port: self.src_port,
            vport,
            proto: self.proto,
            dir: self.dir.reverse(),
        }
    }

    /// Symmetric hash of the connection: equal for a tuple and its reverse,
    /// independent of vport and direction. Decides the owning shard.
    #[inline]
    pub fn owner_hash(&self) -> u64 {
        let a = endpoint_hash(&self.src, self.src_port);
        let b = endpoint_hash(&self.dst, self.dst_port);
        // Commutative combination: a+b and a^b are both symmetric.
        mix(a.wrapping_add(b) ^ (u64::from(self.proto) << 32) ^ u64::from(self.vni))
    }

    /// Which of `n` shards owns this connection.
    #[inline]
    pub fn owner(&self, n: usize) -> usize {
        if n <= 1 {
            0
        } else {
            ((self.owner_hash() >> 32) as usize * n) >> 32
        }
    }

    /// Hash of every field, for the flow table. A key with a short form
    /// ([`V4Key`]: IPv4, no VNI) takes that form's hash, so that a packet
    /// whose short key was read straight from its bytes finds its pair
    /// without a `FlowKey` being built; any other key its wide hash.
    #[inline]
    pub fn table_hash(&self) -> u64 {
        match V4Key::of(self) {
            Some(k) => k.table_hash(),
            None => self.wide_hash(),
        }
    }

    /// [`FlowKey::table_hash`] of a key without a short form: two
    /// independent folded 64×64→128-bit multiplies (the addresses' high
    /// words and their low words) mixed into a third with the ports and
    /// the rest, so the dependency chain is two multiplies long instead
    /// of a chain of finalisers. Every input bit reaches both halves of
    /// the result, which the index uses for its bucket (low bits) and its
    /// signature (high bits).
    #[inline]
    fn wide_hash(&self) -> u64 {
        let word = |b: &[u8; 16], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        // src * 65537 + dst is injective on u16 pairs, and unlike a
        // shift-or it does not let the compiler read both ports with one
        // 4-byte load, which could not be forwarded from the parser's two
        // 2-byte stores (a stall of a dozen cycles per packet).
        let ports = (u64::from(self.src_port) * 65537 + u64::from(self.dst_port)) | u64::from(self.vport) << 33;
        let tail = u64::from(self.vni) | u64::from(self.proto) << 32 | (self.dir as u64) << 40;
        let hi = fold(word(&self.src, 0) ^ SEED[0], word(&self.dst, 0) ^ SEED[1]);
        let lo = fold(word(&self.src, 8) ^ SEED[2], word(&self.dst, 8) ^ SEED[3]);
        fold(ports ^ hi ^ SEED[4], tail ^ lo ^ SEED[5])
    }
}

/// Random odd constants (from splitmix64) keyed into [`FlowKey::table_hash`].
const SEED: [u64; 6] = [
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0xd6e8_feb8_6659_fd93,
    0xa076_1d64_78bd_642f,
    0xe703_7ed1_a0b4_28db,
];

/// The two halves of a 128-bit product xored: a fast, well-mixing
/// combination of two words (wyhash's "mum").
#[inline(always)]
pub(crate) fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ (p >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: [u8; 4], sp: u16, d: [u8; 4], dp: u16) -> FlowKey {
        FlowKey {
            src: v4_mapped(s),
            dst: v4_mapped(d),
            src_port: sp,
            dst_port: dp,
            proto: proto::TCP,
            ..FlowKey::default()
        }
    }

    /// The byte-wise equality sees a difference in every field, at every
    /// byte of the addresses (the three words overlap in 28..32), and
    /// agrees with a field-by-field compare.
    #[test]
    fn keys_differing_in_any_field_or_byte_are_unequal() {
        let k = FlowKey {
            vni: 7,
            vport: 2,
            dir: Direction::Inbound,
            ..key([10, 0, 0, 1], 1234, [8, 8, 8, 8], 53)
        };
        let same = k;
        assert_eq!(same, k);
        let fields = |a: &FlowKey, b: &FlowKey| {
            a.src == b.src
                && a.dst == b.dst
                && a.vni == b.vni
                && a.src_port == b.src_port
                && a.dst_port == b.dst_port
                && a.vport == b.vport
                && a.proto == b.proto
                && a.dir == b.dir
        };
        let mut changed: Vec<FlowKey> = Vec::new();
        for i in 0..16 {
            let mut c = k;
            c.src[i] ^= 0x80;
            changed.push(c);
            let mut c = k;
            c.dst[i] ^= 1;
            changed.push(c);
        }
        changed.push(FlowKey { vni: NO_VNI, ..k });
        changed.push(FlowKey { src_port: 1235, ..k });
        changed.push(FlowKey { dst_port: 54, ..k });
        changed.push(FlowKey { vport: 3, ..k });
        changed.push(FlowKey { proto: proto::UDP, ..k });
        changed.push(FlowKey {
            dir: Direction::Outbound,
            ..k
        });
        for c in &changed {
            assert_ne!(*c, k, "{c:?}");
            assert!(!fields(c, &k));
        }
    }

    #[test]
    fn owner_hash_is_symmetric_and_ignores_vport_and_direction() {
        let k = key([10, 0, 0, 1], 1234, [8, 8, 8, 8], 53);
        let r = k.reversed(3);
        assert_eq!(k.owner_hash(), r.owner_hash());
        assert_ne!(k.table_hash(), r.table_hash());
        for n in 1..8 {
            assert_eq!(k.owner(n), r.owner(n));
            assert!(k.owner(n) < n);
        }
    }

    #[test]
    fn owner_spreads_over_shards() {
        let mut counts = [0usize; 4];
        for p in 0..4000u16 {
            counts[key([10, 0, 0, 1], 1000 + p, [1, 1, 1, 1], 80).owner(4)] += 1;
        }
        for c in counts {
            assert!(c > 800, "{counts:?}");
        }
    }

    #[test]
    fn table_hash_covers_every_field_and_spreads() {
        let k = key([10, 0, 0, 1], 1234, [8, 8, 8, 8], 53);
        let variants = [
            FlowKey {
                src: v4_mapped([10, 0, 0, 2]),
                ..k
            },
            FlowKey {
                dst: v4_mapped([8, 8, 4, 4]),
                ..k
            },
            // The addresses' high words (IPv6) go through their own fold.
            FlowKey {
                src: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1],
                ..k
            },
            FlowKey {
                dst: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 8, 8, 8, 8],
                ..k
            },
            FlowKey { src_port: 1235, ..k },
            FlowKey { dst_port: 54, ..k },
            FlowKey { vni: 7, ..k },
            FlowKey { vport: 1, ..k },
            FlowKey { proto: proto::UDP, ..k },
            FlowKey {
                dir: Direction::Inbound,
                ..k
            },
        ];
        for v in variants {
            assert_ne!(v.table_hash(), k.table_hash(), "{v:?}");
        }
        // Low bits (bucket) and high bits (signature) both spread.
        let (mut lo, mut hi) = ([0usize; 64], [0usize; 64]);
        for p in 0..64_000u16 {
            let h = key([10, 0, (p >> 8) as u8, p as u8], 1000, [1, 1, 1, 1], 80).table_hash();
            lo[(h & 63) as usize] += 1;
            hi[(h >> 58) as usize] += 1;
        }
        for c in lo.iter().chain(hi.iter()) {
            assert!((800..1200).contains(c), "{lo:?} {hi:?}");
        }
    }

    #[test]
    fn v4_mapping_round_trips() {
        assert_eq!(as_v4(&v4_mapped([1, 2, 3, 4])), Some([1, 2, 3, 4]));
        assert_eq!(as_v4(&[0; 16]), None);
    }
}
