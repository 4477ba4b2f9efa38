//! The flow key of an IPv4 packet outside any VXLAN tunnel, in 16 bytes.
//!
//! Most packets a switch sees are the *common frame* (untagged Ethernet,
//! IPv4 without options, TCP or UDP; see [`crate::parse::common_frame`]).
//! Their [`FlowKey`] says nothing a [`V4Key`] does not: the addresses are
//! v4-mapped, the VNI is [`NO_VNI`]. A hit on such a packet compares and
//! hashes the short form, read straight from the frame's bytes, instead of
//! building the 44-byte key first.
//!
//! [`FlowKey::table_hash`] of every key that has a short form is that
//! form's [`V4Key::table_hash`], so the flow table finds a pair by either.

use zerocopy::IntoBytes;

use crate::flow::key::{as_v4, fold, Direction, FlowKey, NO_VNI};

/// A [`FlowKey`] whose addresses are IPv4 and whose VNI is [`NO_VNI`],
/// in two words: the addresses as they are in the packet (source, then
/// destination), and the ports, the vport, the protocol and the
/// direction, laid out as the long key's last eight bytes are on a
/// little-endian host. So a hit compares the words with the long key's
/// bytes, and a frame's addresses are one load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V4Key {
    addrs: u64,
    rest: u64,
}

/// Offset of the long key's bytes the `rest` word holds.
const REST_AT: usize = core::mem::offset_of!(FlowKey, src_port);
const _: () = assert!(REST_AT + 8 == core::mem::size_of::<FlowKey>());
const _: () = assert!(core::mem::offset_of!(FlowKey, vni) + 4 == REST_AT);
const _: () = assert!(core::mem::offset_of!(FlowKey, dst) + 16 == core::mem::offset_of!(FlowKey, vni));

/// A v4-mapped address's first twelve bytes (0, ..., 0, 0xff, 0xff), as
/// the low 96 bits of the little-endian word of all sixteen.
const MAPPED: u128 = 0xffff << 80;

impl V4Key {
    #[inline(always)]
    pub fn new(
        src: [u8; 4],
        dst: [u8; 4],
        src_port: u16,
        dst_port: u16,
        vport: u16,
        proto: u8,
        dir: Direction,
    ) -> V4Key {
        let addrs = u64::from(u32::from_le_bytes(src)) | u64::from(u32::from_le_bytes(dst)) << 32;
        let rest = u64::from(src_port)
            | u64::from(dst_port) << 16
            | u64::from(vport) << 32
            | u64::from(proto) << 48
            | (dir as u64) << 56;
        V4Key { addrs, rest }
    }

    /// The short form of `key`, if it has one.
    pub fn of(key: &FlowKey) -> Option<V4Key> {
        if key.vni != NO_VNI {
            return None;
        }
        let (src, dst) = (as_v4(&key.src)?, as_v4(&key.dst)?);
        Some(V4Key::new(
            src,
            dst,
            key.src_port,
            key.dst_port,
            key.vport,
            key.proto,
            key.dir,
        ))
    }

    /// The flow table's hash of this key (see [`FlowKey::table_hash`]):
    /// the two words, each xored with a constant, folded together
    /// (wyhash's last step). The product's high half depends on every
    /// input bit, so both the low bits (the index's bucket) and the high
    /// bits (its signature) do; the tests below check that both spread.
    /// (A second fold, with a constant, cost 5 instructions a packet.)
    #[inline(always)]
    pub fn table_hash(&self) -> u64 {
        fold(self.addrs ^ SEED[0], self.rest ^ SEED[1])
    }

    /// Whether `key` is the long form of this key: its bytes compared as
    /// three overlapping 16-byte words, as [`FlowKey`]'s equality does
    /// (the last word starts with the destination address's last four
    /// bytes).
    #[inline(always)]
    pub fn matches(&self, key: &FlowKey) -> bool {
        // `rest` is the long key's last eight bytes read little-endian only
        // where its u16 fields are stored little-endian.
        if cfg!(target_endian = "big") {
            return V4Key::of(key) == Some(*self);
        }
        let b = key.as_bytes();
        let word = |at: usize| u128::from_le_bytes(b[at..at + 16].try_into().unwrap());
        let (src, dst) = (u128::from(self.addrs as u32), u128::from(self.addrs >> 32));
        let tail = dst | u128::from(NO_VNI) << 32 | u128::from(self.rest) << 64;
        let diff = (word(0) ^ (MAPPED | src << 96)) | (word(16) ^ (MAPPED | dst << 96)) | (word(REST_AT - 8) ^ tail);
        diff == 0
    }
}

/// Random odd constants (from splitmix64), other than [`FlowKey`]'s.
const SEED: [u64; 2] = [0x2d35_8dcc_aa6c_78a5, 0x8bb8_4b93_962e_acc9];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::{proto, v4_mapped};

    fn key() -> FlowKey {
        FlowKey {
            src: v4_mapped([10, 0, 0, 1]),
            dst: v4_mapped([192, 0, 2, 7]),
            src_port: 1234,
            dst_port: 80,
            vport: 1,
            proto: proto::TCP,
            dir: Direction::Inbound,
            ..FlowKey::default()
        }
    }

    #[test]
    fn only_ipv4_keys_outside_a_tunnel_have_a_short_form() {
        let k = key();
        let s = V4Key::of(&k).unwrap();
        let built = V4Key::new(
            [10, 0, 0, 1],
            [192, 0, 2, 7],
            1234,
            80,
            1,
            proto::TCP,
            Direction::Inbound,
        );
        assert_eq!(s, built);
        assert!(s.matches(&k));
        assert_eq!(V4Key::of(&FlowKey { vni: 7, ..k }), None);
        let mut v6 = k;
        v6.src[0] = 0x20;
        assert_eq!(V4Key::of(&v6), None);
        assert!(!s.matches(&v6));
    }

    #[test]
    fn a_short_key_matches_no_key_that_differs_in_any_field() {
        let k = key();
        let s = V4Key::of(&k).unwrap();
        let mut variants = vec![
            FlowKey { src_port: 1235, ..k },
            FlowKey { dst_port: 81, ..k },
            FlowKey { vport: 0, ..k },
            FlowKey { proto: proto::UDP, ..k },
            FlowKey {
                dir: Direction::Outbound,
                ..k
            },
            FlowKey { vni: 0, ..k },
        ];
        for i in 0..16 {
            let (mut a, mut b) = (k, k);
            a.src[i] ^= 1;
            b.dst[i] ^= 1;
            variants.extend([a, b]);
        }
        for v in variants {
            assert!(!s.matches(&v), "{v:?}");
            if let Some(short) = V4Key::of(&v) {
                assert_ne!(short.table_hash(), s.table_hash(), "{v:?}");
            }
        }
    }

    /// Low bits (the index's bucket) and high bits (its signature) both
    /// spread, whichever field varies.
    #[test]
    fn the_hash_spreads() {
        let k = key();
        let vary: [fn(&mut FlowKey, u16); 3] = [
            |k, i| k.src = v4_mapped([10, 0, (i >> 8) as u8, i as u8]),
            |k, i| k.src_port = i,
            |k, i| k.dst = v4_mapped([192, (i >> 8) as u8, i as u8, 7]),
        ];
        for f in vary {
            let (mut lo, mut hi) = ([0usize; 64], [0usize; 64]);
            for i in 0..64_000u16 {
                let mut v = k;
                f(&mut v, i);
                let h = V4Key::of(&v).unwrap().table_hash();
                lo[(h & 63) as usize] += 1;
                hi[(h >> 58) as usize] += 1;
            }
            for c in lo.iter().chain(hi.iter()) {
                assert!((800..1200).contains(c), "{lo:?} {hi:?}");
            }
        }
    }
}
