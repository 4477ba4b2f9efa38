//! The internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Vocabulary: a *sum* is the folded ones'-complement sum of 16-bit
//! big-endian words (never complemented); a *checksum* is the complement
//! of a sum, as stored in a header. Pseudo-header sums combine with a
//! segment's sum through [`add`]. NAT rewrites use the `update*` helpers
//! (RFC 1624 equation 3: `HC' = ~(~HC + ~m + m')`), which are exact: they
//! give the same value as recomputing the checksum from scratch whenever
//! the covered data is not all zeros (the only case where the two
//! representations of zero, 0x0000 and 0xFFFF, could differ).
//!
//! UDP differs from TCP in one rule: a transmitted checksum of 0 means
//! "no checksum" (IPv4), so a computed 0 is sent as 0xFFFF, and a packet
//! that arrived without a checksum must keep 0 after a rewrite. The
//! `udp_*` helpers apply both halves of that rule.

/// Folds a wide accumulator to a 16-bit ones'-complement sum.
#[inline]
fn fold(mut acc: u64) -> u16 {
    // At most four rounds for a u64; the loop stops as soon as it fits.
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Ones'-complement sum of `data` as big-endian 16-bit words; an odd
/// trailing byte is padded with a zero byte on the right.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    // Adding 32-bit words and folding later is equivalent (2^16 = 1 mod
    // 0xFFFF) and halves the additions; a u64 cannot overflow below 16 GiB.
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// Ones'-complement addition of two sums.
#[inline]
pub fn add(a: u16, b: u16) -> u16 {
    // End-around carry: the carry out of the 16-bit sum is added back
    // (it cannot carry again: the sum without it is at most 0xFFFE).
    let (s, carry) = a.overflowing_add(b);
    s + u16::from(carry)
}

/// The checksum to store for `data`, whose checksum field must be zero
/// while computing (to check a stored checksum use [`verify`]).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// True when `data`, including its stored checksum field, sums to the
/// ones'-complement zero (0xFFFF): the checksum is valid.
#[inline]
pub fn verify(data: &[u8]) -> bool {
    sum(data) == 0xffff
}

/// Sum of the IPv4 pseudo-header for TCP/UDP: addresses, protocol and
/// the L4 length (header + payload).
#[inline]
pub fn pseudo_v4(src: &[u8; 4], dst: &[u8; 4], proto: u8, l4_len: u16) -> u16 {
    let acc = u64::from(u32::from_be_bytes(*src))
        + u64::from(u32::from_be_bytes(*dst))
        + u64::from(proto)
        + u64::from(l4_len);
    fold(acc)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1): addresses, upper-layer
/// length (32 bits) and next header.
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, l4_len: u32) -> u16 {
    let acc = u64::from(sum(src))
        + u64::from(sum(dst))
        + u64::from(proto)
        + u64::from(l4_len >> 16)
        + u64::from(l4_len & 0xffff);
    fold(acc)
}

/// TCP/UDP/ICMPv6 checksum of `segment` (its checksum field zeroed)
/// under the pseudo-header sum `pseudo`. UDP callers then apply
/// [`udp_finish`].
#[inline]
pub fn l4_checksum(pseudo: u16, segment: &[u8]) -> u16 {
    !add(pseudo, sum(segment))
}

/// True when a TCP/UDP/ICMPv6 segment with its stored checksum is valid
/// under `pseudo`.
#[inline]
pub fn l4_verify(pseudo: u16, segment: &[u8]) -> bool {
    add(pseudo, sum(segment)) == 0xffff
}

/// New checksum after one 16-bit word covered by `csum` changed from
/// `old` to `new` (RFC 1624 eqn. 3).
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!csum) + u64::from(!old) + u64::from(new))
}

/// New checksum after a 32-bit field (an IPv4 address, or a port pair)
/// changed from `old` to `new`.
#[inline]
pub fn update32(csum: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let acc = u64::from(!csum)
        + u64::from(!u16::from_be_bytes([old[0], old[1]]))
        + u64::from(!u16::from_be_bytes([old[2], old[3]]))
        + u64::from(u16::from_be_bytes([new[0], new[1]]))
        + u64::from(u16::from_be_bytes([new[2], new[3]]));
    !fold(acc)
}

/// New checksum after a 128-bit field (an IPv6 address) changed.
#[inline]
pub fn update128(csum: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    // ~sum(old) is the ones'-complement negation of the whole field, so
    // one subtraction covers its eight words.
    !fold(u64::from(!csum) + u64::from(!sum(old)) + u64::from(sum(new)))
}

/// What a field changing from `old` to `new` (equal lengths, whole
/// 16-bit words) adds to a covering checksum's sum: RFC 1624's `~m + m'`
/// for every word, worked out once for changes known in advance (a flow's
/// NAT rewrite). Several deltas combine with [`add`].
pub fn delta(old: &[u8], new: &[u8]) -> u16 {
    add(!sum(old), sum(new))
}

/// A checksum after the data it covers changed by `delta` (see
/// [`delta`]): the same result as the `update*` helpers for that change.
#[inline]
pub fn apply_delta(csum: u16, delta: u16) -> u16 {
    !add(!csum, delta)
}

/// [`apply_delta`] for a UDP checksum: a zero ("none") checksum stays zero.
#[inline]
pub fn udp_apply_delta(csum: u16, delta: u16) -> u16 {
    if csum == 0 {
        0
    } else {
        udp_finish(apply_delta(csum, delta))
    }
}

/// Maps a computed UDP checksum to the transmitted value: 0 is reserved
/// for "no checksum", so it is sent as 0xFFFF (its ones'-complement twin).
#[inline]
pub fn udp_finish(csum: u16) -> u16 {
    if csum == 0 {
        0xffff
    } else {
        csum
    }
}

/// [`update16`] for a UDP checksum: a zero ("none") checksum stays zero.
#[inline]
pub fn udp_update16(csum: u16, old: u16, new: u16) -> u16 {
    if csum == 0 {
        0
    } else {
        udp_finish(update16(csum, old, new))
    }
}

/// [`update32`] for a UDP checksum: a zero ("none") checksum stays zero.
#[inline]
pub fn udp_update32(csum: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    if csum == 0 {
        0
    } else {
        udp_finish(update32(csum, old, new))
    }
}

/// [`update128`] for a UDP checksum: a zero ("none") checksum stays zero.
#[inline]
pub fn udp_update128(csum: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    if csum == 0 {
        0
    } else {
        udp_finish(update128(csum, old, new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_is_the_folded_sum() {
        let edges = [0u16, 1, 2, 0x7fff, 0x8000, 0xfffe, 0xffff];
        let sampled = (0..=u16::MAX).step_by(251);
        for a in edges.into_iter().chain(sampled.clone()) {
            for b in edges.into_iter().chain(sampled.clone()) {
                assert_eq!(add(a, b), fold(u64::from(a) + u64::from(b)), "{a:#x} + {b:#x}");
            }
        }
    }

    /// A tiny deterministic generator so the tests need no dependency.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn bytes<const N: usize>(&mut self) -> [u8; N] {
            let mut a = [0u8; N];
            for b in &mut a {
                *b = self.next() as u8;
            }
            a
        }
    }

    /// Reference: plain 16-bit ones'-complement sum, word by word.
    fn naive_sum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u32::from(u16::from_be_bytes([c[0], c[1]]))
            } else {
                u32::from(c[0]) << 8
            };
            s += w;
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), 0x220d);
    }

    #[test]
    fn ipv4_header_example_verifies() {
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert!(verify(&hdr));
        let mut z = hdr;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0xb861);
    }

    #[test]
    fn sum_matches_naive_for_all_lengths_and_odd_tails() {
        let mut g = Lcg(7);
        let buf: [u8; 97] = g.bytes();
        for n in 0..=buf.len() {
            assert_eq!(sum(&buf[..n]), naive_sum(&buf[..n]), "len {n}");
        }
        assert_eq!(sum(&[0xff; 64]), 0xffff);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn pseudo_headers_match_byte_layouts() {
        let (s4, d4) = ([10, 0, 0, 1], [192, 168, 1, 200]);
        let mut p4 = [0u8; 12];
        p4[..4].copy_from_slice(&s4);
        p4[4..8].copy_from_slice(&d4);
        p4[9] = 17;
        p4[10..].copy_from_slice(&1234u16.to_be_bytes());
        assert_eq!(pseudo_v4(&s4, &d4, 17, 1234), sum(&p4));

        let mut g = Lcg(3);
        let (s6, d6): ([u8; 16], [u8; 16]) = (g.bytes(), g.bytes());
        let mut p6 = [0u8; 40];
        p6[..16].copy_from_slice(&s6);
        p6[16..32].copy_from_slice(&d6);
        p6[32..36].copy_from_slice(&70000u32.to_be_bytes());
        p6[39] = 6;
        assert_eq!(pseudo_v6(&s6, &d6, 6, 70000), sum(&p6));
    }

    #[test]
    fn precomputed_deltas_match_recomputation() {
        let mut g = Lcg(23);
        for _ in 0..2000 {
            // A 20-byte header whose bytes 4..10 (an address and a port)
            // change, and its checksum kept by a precomputed delta.
            let mut hdr: [u8; 20] = g.bytes();
            hdr[10] = 0;
            hdr[11] = 0;
            let c = checksum(&hdr);
            hdr[10..12].copy_from_slice(&c.to_be_bytes());
            let new: [u8; 6] = g.bytes();
            let d = delta(&hdr[4..10], &new);
            let mut out = hdr;
            out[4..10].copy_from_slice(&new);
            let stored = u16::from_be_bytes([out[10], out[11]]);
            out[10..12].copy_from_slice(&apply_delta(stored, d).to_be_bytes());
            assert!(verify(&out), "{hdr:?} -> {new:?}");
            // The same as the word-by-word update.
            let old4 = [hdr[4], hdr[5], hdr[6], hdr[7]];
            let new4 = [new[0], new[1], new[2], new[3]];
            assert_eq!(apply_delta(stored, delta(&old4, &new4)), update32(stored, old4, new4));
            // UDP: "no checksum" stays, a computed 0 is sent as 0xffff.
            assert_eq!(udp_apply_delta(0, d), 0);
            assert_ne!(udp_apply_delta(stored, d), 0);
        }
    }

    #[test]
    fn l4_checksum_verifies() {
        let mut g = Lcg(11);
        let mut seg: [u8; 33] = g.bytes();
        seg[6] = 0;
        seg[7] = 0;
        let ps = pseudo_v4(&[1, 2, 3, 4], &[5, 6, 7, 8], 17, seg.len() as u16);
        let c = l4_checksum(ps, &seg);
        seg[6..8].copy_from_slice(&c.to_be_bytes());
        assert!(l4_verify(ps, &seg));
        seg[20] ^= 1;
        assert!(!l4_verify(ps, &seg));
    }

    /// Writes `csum` at bytes 0..2 of `data` after recomputing it.
    fn full(data: &mut [u8]) -> u16 {
        data[0] = 0;
        data[1] = 0;
        let c = checksum(data);
        data[..2].copy_from_slice(&c.to_be_bytes());
        c
    }

    #[test]
    fn incremental_updates_equal_recomputation() {
        let mut g = Lcg(42);
        for _ in 0..2000 {
            let mut d: [u8; 40] = g.bytes();
            let c0 = full(&mut d);

            let at = 2 + 2 * (g.next() as usize % 3);
            let old16 = u16::from_be_bytes([d[at], d[at + 1]]);
            let new16 = g.next() as u16;
            d[at..at + 2].copy_from_slice(&new16.to_be_bytes());
            let c1 = update16(c0, old16, new16);
            assert_eq!(c1, full(&mut d));

            let old32: [u8; 4] = d[8..12].try_into().unwrap();
            let new32: [u8; 4] = g.bytes();
            d[8..12].copy_from_slice(&new32);
            let c2 = update32(c1, old32, new32);
            assert_eq!(c2, full(&mut d));

            let old128: [u8; 16] = d[16..32].try_into().unwrap();
            let new128: [u8; 16] = g.bytes();
            d[16..32].copy_from_slice(&new128);
            let c3 = update128(c2, &old128, &new128);
            assert_eq!(c3, full(&mut d));
            assert!(verify(&d));
        }
    }

    #[test]
    fn incremental_update_corners() {
        // Data summing to 0xFFFF gives checksum 0x0000, and the update
        // must land on exactly that (not its twin 0xFFFF).
        let mut d = [0u8, 0, 0xff, 0x00, 0x00, 0xff];
        assert_eq!(full(&mut d), 0x0000);
        // Change 0xff00 -> 0xfe00 and back through the incremental path.
        let c = update16(0x0000, 0xff00, 0xfe00);
        d[2] = 0xfe;
        assert_eq!(c, full(&mut d));
        assert_eq!(update16(c, 0xfe00, 0xff00), 0x0000);
        // Unchanged word: checksum unchanged.
        for csum in [0x0000, 0x1234, 0xfffe] {
            assert_eq!(update16(csum, 0xabcd, 0xabcd), csum);
        }
        // A stored 0xFFFF (a non-canonical zero no computation produces)
        // comes out canonical: 0x0000 verifies exactly like 0xFFFF.
        assert_eq!(update16(0xffff, 0xabcd, 0xabcd), 0x0000);
        let mut d = [0xff, 0xff, 0xff, 0x00, 0x00, 0xff];
        assert!(verify(&d));
        d[..2].copy_from_slice(&[0, 0]);
        assert!(verify(&d));
        // Swapping 0x0000 for 0xFFFF changes nothing in ones' complement.
        assert_eq!(update16(0x1234, 0x0000, 0xffff), 0x1234);
    }

    #[test]
    fn udp_zero_checksum_rule() {
        assert_eq!(udp_finish(0), 0xffff);
        assert_eq!(udp_finish(0x1234), 0x1234);
        // "No checksum" survives any rewrite.
        assert_eq!(udp_update16(0, 1, 2), 0);
        assert_eq!(udp_update32(0, [1, 2, 3, 4], [5, 6, 7, 8]), 0);
        assert_eq!(udp_update128(0, &[1; 16], &[2; 16]), 0);
        // A rewrite whose true result is 0x0000 is sent as 0xFFFF.
        let tcp_style = update16(0x0001, 0x0000, 0x0001);
        assert_eq!(tcp_style, 0x0000);
        assert_eq!(udp_update16(0x0001, 0x0000, 0x0001), 0xffff);
        // And a 0xFFFF checksum is treated as a real checksum, not "none".
        assert_eq!(udp_update16(0xffff, 0x0000, 0x0001), 0xfffe);
    }
}
