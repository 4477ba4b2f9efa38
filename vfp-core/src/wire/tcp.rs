//! TCP header view (RFC 9293): ports, sequence numbers, data offset,
//! flags, and checksum fill/verify under a pseudo-header sum.
//!
//! The view's buffer is the whole segment (header and payload, no IP
//! padding): the checksum covers exactly that.

use super::{be16, be32, checksum, put16, put32, Error, Result};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// Bits of the flags byte.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    /// Checks the fixed header, data offset >= 5 and that the options it
    /// announces are present.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = TcpPacket { buffer };
        let len = p.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.header_len() < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if p.header_len() > len {
            return Err(Error::Truncated);
        }
        Ok(p)
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
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ_NUM)
    }
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK_NUM)
    }
    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }
    /// The flags byte (see [`flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    #[inline]
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WIN_SIZE)
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// True when the checksum is valid under `pseudo` (see
    /// [`checksum::pseudo_v4`] / [`checksum::pseudo_v6`]).
    #[inline]
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        checksum::l4_verify(pseudo, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, p)
    }
    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, p)
    }
    #[inline]
    pub fn set_seq_number(&mut self, n: u32) {
        put32(self.buffer.as_mut(), field::SEQ_NUM, n)
    }
    #[inline]
    pub fn set_ack_number(&mut self, n: u32) {
        put32(self.buffer.as_mut(), field::ACK_NUM, n)
    }
    /// Sets the data offset for a header of `len` bytes (multiple of 4);
    /// clears the reserved bits and NS.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = ((len / 4) as u8) << 4
    }
    #[inline]
    pub fn set_flags(&mut self, f: u8) {
        self.buffer.as_mut()[field::FLAGS] = f
    }
    #[inline]
    pub fn set_window_len(&mut self, w: u16) {
        put16(self.buffer.as_mut(), field::WIN_SIZE, w)
    }
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, c)
    }
    #[inline]
    pub fn set_urgent_at(&mut self, u: u16) {
        put16(self.buffer.as_mut(), field::URGENT, u)
    }
    /// Computes and stores the checksum of the whole segment.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let c = checksum::l4_checksum(pseudo, self.buffer.as_ref());
        self.set_checksum(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::pseudo_v4;

    /// SYN with a 4-byte MSS option and 2 bytes of payload.
    const SEG: [u8; 26] = [
        0x30, 0x39, 0x00, 0x50, // 12345 -> 80
        0x01, 0x02, 0x03, 0x04, // seq
        0x0a, 0x0b, 0x0c, 0x0d, // ack
        0x60, 0x12, 0xff, 0xff, // doff 6, SYN|ACK, window
        0x00, 0x00, 0x00, 0x07, // checksum (filled in), urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0xaa, 0xbb, // payload
    ];
    const SRC: [u8; 4] = [10, 0, 0, 1];
    const DST: [u8; 4] = [10, 0, 0, 2];

    fn seg() -> [u8; 26] {
        let mut b = SEG;
        let ps = pseudo_v4(&SRC, &DST, 6, 26);
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(ps);
        b
    }

    #[test]
    fn reads_every_field() {
        let b = seg();
        let t = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (12345, 80));
        assert_eq!(t.seq_number(), 0x01020304);
        assert_eq!(t.ack_number(), 0x0a0b0c0d);
        assert_eq!(t.header_len(), 24);
        assert_eq!(t.flags(), flags::SYN | flags::ACK);
        assert_eq!(t.window_len(), 0xffff);
        assert_eq!(t.urgent_at(), 7);
        assert_eq!(t.options(), &[2, 4, 5, 0xb4]);
        assert_eq!(t.payload(), &[0xaa, 0xbb]);
        assert!(t.verify_checksum(pseudo_v4(&SRC, &DST, 6, 26)));
        assert!(!t.verify_checksum(pseudo_v4(&SRC, &[10, 0, 0, 3], 6, 26)));
    }

    #[test]
    fn writes_every_field_back() {
        let b = seg();
        let mut out = [0u8; 26];
        out[20..].copy_from_slice(&SEG[20..]);
        let mut t = TcpPacket::new_unchecked(&mut out[..]);
        t.set_src_port(12345);
        t.set_dst_port(80);
        t.set_seq_number(0x01020304);
        t.set_ack_number(0x0a0b0c0d);
        t.set_header_len(24);
        t.set_flags(flags::SYN | flags::ACK);
        t.set_window_len(0xffff);
        t.set_urgent_at(7);
        t.fill_checksum(pseudo_v4(&SRC, &DST, 6, 26));
        assert_eq!(out, b);
    }

    #[test]
    fn checks_data_offset() {
        let b = seg();
        for n in 0..24 {
            assert_eq!(TcpPacket::new_checked(&b[..n]).err(), Some(Error::Truncated), "len {n}");
        }
        let mut bad = b;
        bad[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&bad[..]).err(), Some(Error::Malformed));
    }
}
