//! UDP header view (RFC 768) with checksum fill/verify and a builder for
//! the outer header of an encapsulation.
//!
//! `new_checked` accepts a buffer longer than the UDP length (the caller
//! may pass the rest of an IP payload); [`UdpPacket::payload`] stops at
//! the UDP length. A checksum of 0 means "none" (IPv4): see
//! [`checksum::udp_finish`].

use super::{be16, checksum, put16, Error, Result};

pub const HEADER_LEN: usize = 8;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }
    /// Checks the header and `8 <= length <= buffer length`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = UdpPacket::check_header(buffer)?;
        let len = usize::from(p.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }
    /// Checks only that the 8-byte header is present: for the first
    /// fragment of a datagram, whose length field covers bytes that are
    /// not here. [`Self::payload`] must not be used on such a view.
    #[inline]
    pub fn check_header(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(UdpPacket { buffer })
    }
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// Header plus payload length, as stored.
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
    /// True when the checksum is absent (0) or valid under `pseudo`.
    #[inline]
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        self.checksum() == 0 || checksum::l4_verify(pseudo, &self.buffer.as_ref()[..usize::from(self.len())])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, p)
    }
    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, p)
    }
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, len)
    }
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, c)
    }
    /// Computes and stores the checksum over the UDP length (a computed
    /// 0 is stored as 0xFFFF).
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let end = usize::from(self.len());
        let c = checksum::l4_checksum(pseudo, &self.buffer.as_ref()[..end]);
        self.set_checksum(checksum::udp_finish(c))
    }
    /// Writes a header for `payload_len` bytes of payload with no
    /// checksum (0), as VXLAN senders usually do over IPv4 (RFC 7348).
    #[inline]
    pub fn emit(&mut self, src_port: u16, dst_port: u16, payload_len: u16) {
        self.set_src_port(src_port);
        self.set_dst_port(dst_port);
        self.set_len(payload_len.saturating_add(HEADER_LEN as u16));
        self.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::pseudo_v4;

    const DGRAM: [u8; 14] = [
        0x12, 0xb5, 0x00, 0x35, // 4789 -> 53
        0x00, 0x0c, 0x00, 0x00, // len 12, checksum
        1, 2, 3, 4, // payload
        0, 0, // padding beyond the UDP length
    ];

    #[test]
    fn reads_every_field() {
        let u = UdpPacket::new_checked(&DGRAM[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (4789, 53));
        assert_eq!(u.len(), 12);
        assert!(!u.is_empty());
        assert_eq!(u.checksum(), 0);
        assert_eq!(u.payload(), &[1, 2, 3, 4]);
        assert!(u.verify_checksum(0x1234));
    }

    #[test]
    fn writes_every_field_back() {
        let mut out = [0u8; 14];
        out[8..12].copy_from_slice(&[1, 2, 3, 4]);
        UdpPacket::new_unchecked(&mut out[..]).emit(4789, 53, 4);
        assert_eq!(out, DGRAM);
    }

    #[test]
    fn checksum_round_trip_and_zero_rule() {
        let ps = pseudo_v4(&[10, 0, 0, 1], &[10, 0, 0, 2], 17, 12);
        let mut b = DGRAM;
        let mut u = UdpPacket::new_unchecked(&mut b[..]);
        u.fill_checksum(ps);
        assert_ne!(u.checksum(), 0);
        assert!(u.verify_checksum(ps));
        assert!(!u.verify_checksum(ps ^ 1));

        // Choose payload so the computed checksum is 0: stored as 0xFFFF.
        let mut z = DGRAM;
        let mut u = UdpPacket::new_unchecked(&mut z[..]);
        u.fill_checksum(ps);
        let c = u.checksum();
        // Adding the stored checksum into the payload makes the sum 0xFFFF.
        z[8..10].copy_from_slice(&crate::wire::checksum::add(0x0102, c).to_be_bytes());
        let mut u = UdpPacket::new_unchecked(&mut z[..]);
        u.fill_checksum(ps);
        assert_eq!(u.checksum(), 0xffff);
        assert!(u.verify_checksum(ps));
    }

    #[test]
    fn checks_lengths() {
        for n in 0..12 {
            assert_eq!(
                UdpPacket::new_checked(&DGRAM[..n]).err(),
                Some(Error::Truncated),
                "len {n}"
            );
        }
        assert!(UdpPacket::check_header(&DGRAM[..8]).is_ok());
        let mut bad = DGRAM;
        bad[5] = 7;
        assert_eq!(UdpPacket::new_checked(&bad[..]).err(), Some(Error::Malformed));
    }
}
