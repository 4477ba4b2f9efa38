//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) header view.
//!
//! Both share the first 8 bytes: type, code, checksum, then 4 bytes that
//! echo messages use as identifier and sequence number. The flow key
//! needs only the type and the echo identifier; [`echo_kind`] maps the
//! two families' type numbers to one answer.

use super::{be16, checksum, put16, Error, Result};

/// Every ICMP message carries at least these 8 bytes.
pub const HEADER_LEN: usize = 8;

pub mod v4_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

pub mod v6_type {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
}

/// Which side of an echo exchange a message is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Echo {
    Request,
    Reply,
}

/// Whether `msg_type` is an error message, which quotes the packet that
/// caused it: ICMPv4 destination unreachable, time exceeded, parameter
/// problem; ICMPv6 destination unreachable, packet too big, time exceeded,
/// parameter problem.
#[inline]
pub fn is_error(msg_type: u8, v6: bool) -> bool {
    if v6 {
        (1..=4).contains(&msg_type)
    } else {
        matches!(msg_type, 3 | 11 | 12)
    }
}

/// Classifies `msg_type` for ICMPv4 (`v6 == false`) or ICMPv6.
#[inline]
pub fn echo_kind(msg_type: u8, v6: bool) -> Option<Echo> {
    match (v6, msg_type) {
        (false, v4_type::ECHO_REQUEST) | (true, v6_type::ECHO_REQUEST) => Some(Echo::Request),
        (false, v4_type::ECHO_REPLY) | (true, v6_type::ECHO_REPLY) => Some(Echo::Reply),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(IcmpPacket { buffer })
    }
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Identifier; meaningful for echo request/reply.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT)
    }
    /// Sequence number; meaningful for echo request/reply.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// ICMPv4 checksum (no pseudo-header) over the whole message.
    #[inline]
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }
    /// ICMPv6 checksum under an IPv6 pseudo-header sum.
    #[inline]
    pub fn verify_checksum_v6(&self, pseudo: u16) -> bool {
        checksum::l4_verify(pseudo, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    #[inline]
    pub fn set_msg_type(&mut self, t: u8) {
        self.buffer.as_mut()[field::TYPE] = t
    }
    #[inline]
    pub fn set_code(&mut self, c: u8) {
        self.buffer.as_mut()[field::CODE] = c
    }
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, c)
    }
    #[inline]
    pub fn set_echo_ident(&mut self, id: u16) {
        put16(self.buffer.as_mut(), field::ECHO_IDENT, id)
    }
    #[inline]
    pub fn set_echo_seq_no(&mut self, n: u16) {
        put16(self.buffer.as_mut(), field::ECHO_SEQNO, n)
    }
    #[inline]
    pub fn fill_checksum_v4(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c)
    }
    #[inline]
    pub fn fill_checksum_v6(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let c = checksum::l4_checksum(pseudo, self.buffer.as_ref());
        self.set_checksum(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::pseudo_v6;

    const ECHO: [u8; 12] = [
        8, 0, 0x00, 0x00, // request, code 0, checksum
        0x12, 0x34, 0x00, 0x01, // ident, seq
        b'p', b'i', b'n', b'g',
    ];

    #[test]
    fn reads_and_writes_v4_echo() {
        let mut b = ECHO;
        IcmpPacket::new_unchecked(&mut b[..]).fill_checksum_v4();
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.msg_type(), p.code()), (8, 0));
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 1));
        assert_eq!(p.payload(), b"ping");
        assert!(p.verify_checksum_v4());
        assert_eq!(echo_kind(p.msg_type(), false), Some(Echo::Request));

        let mut out = [0u8; 12];
        out[8..].copy_from_slice(b"ping");
        let mut w = IcmpPacket::new_unchecked(&mut out[..]);
        w.set_msg_type(8);
        w.set_code(0);
        w.set_echo_ident(0x1234);
        w.set_echo_seq_no(1);
        w.fill_checksum_v4();
        assert_eq!(out, b);
    }

    #[test]
    fn v6_echo_and_checksum() {
        let mut b = ECHO;
        b[0] = v6_type::ECHO_REPLY;
        let ps = pseudo_v6(&[1; 16], &[2; 16], 58, 12);
        IcmpPacket::new_unchecked(&mut b[..]).fill_checksum_v6(ps);
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum_v6(ps));
        assert_eq!(echo_kind(p.msg_type(), true), Some(Echo::Reply));
        assert_eq!(echo_kind(p.msg_type(), false), None);
        assert_eq!(echo_kind(v4_type::ECHO_REPLY, false), Some(Echo::Reply));
        assert_eq!(echo_kind(v6_type::ECHO_REQUEST, true), Some(Echo::Request));
        assert_eq!(echo_kind(v4_type::DEST_UNREACHABLE, false), None);
    }

    #[test]
    fn refuses_truncated() {
        for n in 0..HEADER_LEN {
            assert!(IcmpPacket::new_checked(&ECHO[..n]).is_err());
        }
    }
}
