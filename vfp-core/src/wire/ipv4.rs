//! IPv4 header view (RFC 791): options, flags and fragment offset, and
//! the header checksum.
//!
//! `new_checked` validates version, IHL and total length against the
//! buffer once. A buffer longer than the total length is accepted
//! (Ethernet pads short frames); [`Ipv4Packet::payload`] stops at the
//! total length, so padding never reaches L4.

use super::{array, be16, checksum, put16, Error, Result};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }
    /// Checks length, version 4, IHL >= 5 and `header_len <= total_len
    /// <= buffer length`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Ipv4Packet { buffer };
        let len = p.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 4 || p.header_len() < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < p.header_len() {
            return Err(Error::Truncated);
        }
        let total = usize::from(p.total_len());
        if total < p.header_len() {
            return Err(Error::Malformed);
        }
        if total > len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }
    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }
    /// True for any fragment (first, middle or last).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    #[inline]
    pub fn src_addr(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::SRC.start)
    }
    #[inline]
    pub fn dst_addr(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::DST.start)
    }
    /// The option bytes (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }
    /// The bytes between the header and the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
    /// True when the stored header checksum is valid.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buffer.as_ref()[..self.header_len()])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the IHL for a header of `header_len` bytes
    /// (a multiple of 4, 20..=60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f)
    }
    #[inline]
    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = (dscp << 2) | (ecn & 0x03)
    }
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, len)
    }
    #[inline]
    pub fn set_ident(&mut self, id: u16) {
        put16(self.buffer.as_mut(), field::IDENT, id)
    }
    /// Sets DF, MF and the fragment offset (in bytes, a multiple of 8).
    #[inline]
    pub fn set_flags_and_frag_offset(&mut self, df: bool, mf: bool, offset: u16) {
        let v = (if df { FLAG_DF } else { 0 }) | (if mf { FLAG_MF } else { 0 }) | (offset >> 3);
        put16(self.buffer.as_mut(), field::FLG_OFF, v)
    }
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl
    }
    #[inline]
    pub fn set_protocol(&mut self, p: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = p
    }
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, c)
    }
    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a)
    }
    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a)
    }
    /// Recomputes the header checksum over `header_len` bytes.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(c)
    }
}

/// An option-less IPv4 header, for building (e.g. a VXLAN outer header).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ipv4Repr {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: u8,
    /// Bytes after the 20-byte header.
    pub payload_len: u16,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub dscp: u8,
    pub ecn: u8,
}

impl Ipv4Repr {
    /// Writes a 20-byte header (checksum filled) at the start of the
    /// view, whose buffer must hold at least [`MIN_HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>) {
        p.set_version_and_header_len(MIN_HEADER_LEN);
        p.set_dscp_ecn(self.dscp, self.ecn);
        p.set_total_len(self.payload_len.saturating_add(MIN_HEADER_LEN as u16));
        p.set_ident(self.ident);
        p.set_flags_and_frag_offset(self.dont_frag, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 24-byte header: one 4-byte option (NOP NOP NOP EOL), MF set,
    /// offset 0, UDP, 4 bytes of payload, then 2 bytes of padding.
    const PKT: [u8; 30] = [
        0x46, 0xb9, 0x00, 0x1c, // v4 ihl6, dscp 46 ecn 1, len 28
        0x12, 0x34, 0x20, 0x00, // ident, MF
        0x40, 0x11, 0x00, 0x00, // ttl 64, udp, checksum (filled below)
        10, 0, 0, 1, // src
        192, 168, 0, 9, // dst
        0x01, 0x01, 0x01, 0x00, // options
        0xde, 0xad, 0xbe, 0xef, // payload
        0, 0, // padding
    ];

    fn pkt() -> [u8; 30] {
        let mut b = PKT;
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn reads_every_field() {
        let b = pkt();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!((p.dscp(), p.ecn()), (46, 1));
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(!p.dont_frag());
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), [10, 0, 0, 1]);
        assert_eq!(p.dst_addr(), [192, 168, 0, 9]);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(p.verify_checksum());
        assert_ne!(p.checksum(), 0);
    }

    #[test]
    fn writes_every_field_back() {
        let b = pkt();
        let mut out = [0u8; 30];
        out[20..].copy_from_slice(&b[20..]);
        let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
        p.set_version_and_header_len(24);
        p.set_dscp_ecn(46, 1);
        p.set_total_len(28);
        p.set_ident(0x1234);
        p.set_flags_and_frag_offset(false, true, 0);
        p.set_ttl(64);
        p.set_protocol(17);
        p.set_src_addr([10, 0, 0, 1]);
        p.set_dst_addr([192, 168, 0, 9]);
        p.fill_checksum();
        assert_eq!(out, b);
    }

    #[test]
    fn fragment_offset_in_bytes() {
        let mut b = pkt();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_flags_and_frag_offset(true, false, 1480);
        assert_eq!(&b[6..8], &[0x40, 0xb9]);
        let p = Ipv4Packet::new_unchecked(&b[..]);
        assert!(p.dont_frag() && !p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment());
        assert!(!p.verify_checksum());
    }

    #[test]
    fn checks_lengths_and_version() {
        let b = pkt();
        // Cut anywhere inside the total length: truncated.
        for n in 0..28 {
            assert_eq!(
                Ipv4Packet::new_checked(&b[..n]).err(),
                Some(Error::Truncated),
                "len {n}"
            );
        }
        assert!(Ipv4Packet::new_checked(&b[..28]).is_ok());
        let mut v6 = b;
        v6[0] = 0x66;
        assert_eq!(Ipv4Packet::new_checked(&v6[..]).err(), Some(Error::Malformed));
        let mut ihl4 = b;
        ihl4[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&ihl4[..]).err(), Some(Error::Malformed));
        let mut short_total = b;
        short_total[3] = 23;
        assert_eq!(Ipv4Packet::new_checked(&short_total[..]).err(), Some(Error::Malformed));
    }

    #[test]
    fn repr_emits_valid_header() {
        let r = Ipv4Repr {
            src: [1, 2, 3, 4],
            dst: [5, 6, 7, 8],
            protocol: 17,
            payload_len: 100,
            ttl: 64,
            ident: 7,
            dont_frag: true,
            dscp: 0,
            ecn: 0,
        };
        let mut b = [0xffu8; 120];
        r.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 120);
        assert_eq!((p.src_addr(), p.dst_addr()), ([1, 2, 3, 4], [5, 6, 7, 8]));
        assert!(p.dont_frag() && !p.is_fragment());
        assert_eq!((p.ttl(), p.protocol(), p.ident()), (64, 17, 7));
    }
}
