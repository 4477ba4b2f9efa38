//! IPv6 header view (RFC 8200) and the extension header walk.
//!
//! The fixed header is 40 bytes; `payload_len` covers everything after
//! it, extension headers included. [`walk_ext_headers`] follows
//! hop-by-hop, routing, destination options and fragment headers (bounded
//! count) to find the upper-layer protocol and where it starts, and
//! reports a fragment header. Walking stops at a non-first fragment,
//! because what follows it is the middle of someone else's payload.

use super::{array, be16, be32, put16, put32, Error, Result};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Length of a fragment extension header.
pub const FRAG_HEADER_LEN: usize = 8;

/// Next-header values the walk knows.
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
    // Extension headers.
    pub const EXT_NXT_HDR: usize = 0;
    pub const EXT_LEN: usize = 1;
    pub const FRAG_OFF_M: usize = 2;
    pub const FRAG_IDENT: usize = 4;
}

#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }
    /// Checks length, version 6 and that the payload length fits the
    /// buffer (trailing padding is allowed).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Ipv6Packet { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + usize::from(p.payload_len()) > len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    #[inline]
    fn first_word(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW)
    }
    #[inline]
    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    #[inline]
    pub fn src_addr(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::SRC.start)
    }
    #[inline]
    pub fn dst_addr(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::DST.start)
    }
    /// Everything after the fixed header, up to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Writes version 6, the traffic class and the flow label.
    #[inline]
    pub fn set_version_tc_flow(&mut self, tc: u8, flow: u32) {
        let w = (6u32 << 28) | (u32::from(tc) << 20) | (flow & 0x000f_ffff);
        put32(self.buffer.as_mut(), field::VER_TC_FLOW, w)
    }
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, len)
    }
    #[inline]
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = nh
    }
    #[inline]
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h
    }
    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a)
    }
    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a)
    }
}

/// A hop-by-hop, routing or destination options header: next header,
/// then a length in 8-byte units not counting the first 8 bytes.
#[derive(Debug, Clone)]
pub struct Ipv6ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6ExtHeader<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6ExtHeader { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Ipv6ExtHeader { buffer };
        let len = h.buffer.as_ref().len();
        if len < 8 || len < h.header_len() {
            return Err(Error::Truncated);
        }
        Ok(h)
    }
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::EXT_NXT_HDR]
    }
    /// Whole header length in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[field::EXT_LEN]) + 1) * 8
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6ExtHeader<T> {
    #[inline]
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::EXT_NXT_HDR] = nh
    }
    /// Sets the length for a whole header of `len` bytes (a multiple of 8).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::EXT_LEN] = (len / 8).saturating_sub(1) as u8
    }
}

/// The fragment extension header (8 bytes).
#[derive(Debug, Clone)]
pub struct Ipv6FragHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6FragHeader<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6FragHeader { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < FRAG_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Ipv6FragHeader { buffer })
    }
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::EXT_NXT_HDR]
    }
    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FRAG_OFF_M) & 0xfff8
    }
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FRAG_OFF_M) & 1 != 0
    }
    #[inline]
    pub fn ident(&self) -> u32 {
        be32(self.buffer.as_ref(), field::FRAG_IDENT)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6FragHeader<T> {
    #[inline]
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::EXT_NXT_HDR] = nh
    }
    /// Sets the offset (bytes, a multiple of 8) and the M flag.
    #[inline]
    pub fn set_frag_offset_and_more(&mut self, offset: u16, more: bool) {
        put16(
            self.buffer.as_mut(),
            field::FRAG_OFF_M,
            (offset & 0xfff8) | u16::from(more),
        )
    }
    #[inline]
    pub fn set_ident(&mut self, id: u32) {
        put32(self.buffer.as_mut(), field::FRAG_IDENT, id)
    }
}

/// Fragment header contents found by the walk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FragInfo {
    /// Offset in bytes.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
    /// The fragment header's next-header (the same in every fragment of
    /// a datagram, whatever follows it in the first).
    pub next: u8,
    /// Offset of the fragmentable part (after the fragment header)
    /// within the IPv6 payload.
    pub data_off: usize,
}

/// Result of [`walk_ext_headers`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExtChain {
    /// Upper-layer protocol (the last next-header value).
    pub protocol: u8,
    /// Offset of the upper-layer header within the IPv6 payload.
    pub l4_off: usize,
    /// Set when a fragment header was crossed (or stopped the walk).
    pub fragment: Option<FragInfo>,
}

/// Follows the extension headers at the start of `payload` (an IPv6
/// packet's payload), starting from the fixed header's next-header
/// `first`. At most `max` extension headers are crossed (`TooDeep`
/// beyond); a second fragment header is `Malformed`.
pub fn walk_ext_headers(payload: &[u8], first: u8, max: usize) -> Result<ExtChain> {
    let mut chain = ExtChain {
        protocol: first,
        l4_off: 0,
        fragment: None,
    };
    let mut crossed = 0;
    loop {
        match chain.protocol {
            next_header::HOP_BY_HOP | next_header::ROUTING | next_header::DEST_OPTS => {
                if crossed == max {
                    return Err(Error::TooDeep);
                }
                let rest = payload.get(chain.l4_off..).ok_or(Error::Truncated)?;
                let h = Ipv6ExtHeader::new_checked(rest)?;
                chain.protocol = h.next_header();
                chain.l4_off += h.header_len();
            }
            next_header::FRAGMENT => {
                if crossed == max {
                    return Err(Error::TooDeep);
                }
                if chain.fragment.is_some() {
                    return Err(Error::Malformed);
                }
                let rest = payload.get(chain.l4_off..).ok_or(Error::Truncated)?;
                let h = Ipv6FragHeader::new_checked(rest)?;
                chain.protocol = h.next_header();
                chain.l4_off += FRAG_HEADER_LEN;
                chain.fragment = Some(FragInfo {
                    offset: h.frag_offset(),
                    more: h.more_frags(),
                    ident: h.ident(),
                    next: h.next_header(),
                    data_off: chain.l4_off,
                });
                if h.frag_offset() != 0 {
                    return Ok(chain);
                }
            }
            _ => return Ok(chain),
        }
        crossed += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = last;
        a
    }

    /// Fixed header + hop-by-hop (8) + dest opts (16) + fragment (8) +
    /// 4 bytes of UDP-ish payload.
    fn pkt(frag_off: u16, more: bool) -> [u8; 76] {
        let mut b = [0u8; 76];
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_version_tc_flow(0xb8, 0x12345);
        p.set_payload_len(36);
        p.set_next_header(next_header::HOP_BY_HOP);
        p.set_hop_limit(63);
        p.set_src_addr(addr(1));
        p.set_dst_addr(addr(2));
        let mut h = Ipv6ExtHeader::new_unchecked(&mut b[40..]);
        h.set_next_header(next_header::DEST_OPTS);
        h.set_header_len(8);
        let mut d = Ipv6ExtHeader::new_unchecked(&mut b[48..]);
        d.set_next_header(next_header::FRAGMENT);
        d.set_header_len(16);
        let mut f = Ipv6FragHeader::new_unchecked(&mut b[64..]);
        f.set_next_header(next_header::UDP);
        f.set_frag_offset_and_more(frag_off, more);
        f.set_ident(0xdead_beef);
        b[72..76].copy_from_slice(&[1, 2, 3, 4]);
        b
    }

    #[test]
    fn reads_every_field() {
        let b = pkt(0, true);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 36);
        assert_eq!(p.next_header(), next_header::HOP_BY_HOP);
        assert_eq!(p.hop_limit(), 63);
        assert_eq!(p.src_addr(), addr(1));
        assert_eq!(p.dst_addr(), addr(2));
        assert_eq!(p.payload().len(), 36);
        assert_eq!(&b[..4], &[0x6b, 0x81, 0x23, 0x45]);

        let h = Ipv6ExtHeader::new_checked(&b[48..]).unwrap();
        assert_eq!((h.next_header(), h.header_len()), (next_header::FRAGMENT, 16));
        let f = Ipv6FragHeader::new_checked(&b[64..]).unwrap();
        assert_eq!(f.next_header(), next_header::UDP);
        assert_eq!((f.frag_offset(), f.more_frags()), (0, true));
        assert_eq!(f.ident(), 0xdead_beef);
    }

    #[test]
    fn walks_to_upper_layer() {
        let b = pkt(0, true);
        let c = walk_ext_headers(&b[40..], next_header::HOP_BY_HOP, 8).unwrap();
        assert_eq!(c.protocol, next_header::UDP);
        assert_eq!(c.l4_off, 32);
        let frag = FragInfo {
            offset: 0,
            more: true,
            ident: 0xdead_beef,
            next: next_header::UDP,
            data_off: 32,
        };
        assert_eq!(c.fragment, Some(frag));
        assert_eq!(
            walk_ext_headers(&b[40..], next_header::HOP_BY_HOP, 2),
            Err(Error::TooDeep)
        );
        // Every cut inside the chain is a truncation, never a panic.
        for n in 0..32 {
            assert_eq!(
                walk_ext_headers(&b[40..40 + n], next_header::HOP_BY_HOP, 8),
                Err(Error::Truncated),
                "len {n}"
            );
        }
    }

    #[test]
    fn later_fragment_stops_the_walk() {
        let b = pkt(1448, false);
        let c = walk_ext_headers(&b[40..], next_header::HOP_BY_HOP, 8).unwrap();
        assert_eq!(c.protocol, next_header::UDP);
        assert_eq!(c.fragment.map(|f| (f.offset, f.more)), Some((1448, false)));
    }

    #[test]
    fn plain_upper_layer_has_no_chain() {
        let c = walk_ext_headers(&[], next_header::TCP, 0).unwrap();
        assert_eq!((c.protocol, c.l4_off, c.fragment), (next_header::TCP, 0, None));
    }

    #[test]
    fn checks_lengths_and_version() {
        let b = pkt(0, false);
        for n in 0..76 {
            assert_eq!(
                Ipv6Packet::new_checked(&b[..n]).err(),
                Some(Error::Truncated),
                "len {n}"
            );
        }
        let mut v4 = b;
        v4[0] = 0x45;
        assert_eq!(Ipv6Packet::new_checked(&v4[..]).err(), Some(Error::Malformed));
    }
}
