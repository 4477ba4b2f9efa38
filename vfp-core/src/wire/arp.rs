//! ARP packet view (RFC 826). The switch only recognises ARP (it carries
//! no flow key); the view exists so callers can tell requests from
//! replies and read the addresses of Ethernet/IPv4 ARP.

use super::{array, be16, put16, Error, Result};

/// Fixed part: hardware type, protocol type, lengths, operation.
pub const FIXED_LEN: usize = 8;
/// Length of an Ethernet/IPv4 ARP packet.
pub const ETH_IPV4_LEN: usize = 28;

pub mod operation {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
}

#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    /// Checks the fixed part and that the four variable-length addresses
    /// it announces are present.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = ArpPacket { buffer };
        let len = p.buffer.as_ref().len();
        if len < FIXED_LEN || len < p.packet_len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    #[inline]
    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER)
    }
    /// Total length announced by the address lengths.
    #[inline]
    pub fn packet_len(&self) -> usize {
        FIXED_LEN + 2 * (usize::from(self.hardware_len()) + usize::from(self.protocol_len()))
    }
    /// True for Ethernet (1) hardware and IPv4 protocol addresses.
    #[inline]
    pub fn is_eth_ipv4(&self) -> bool {
        self.hardware_type() == 1
            && self.protocol_type() == super::ethernet::ethertype::IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }
    /// Sender hardware address; meaningful when [`Self::is_eth_ipv4`].
    #[inline]
    pub fn sender_hw(&self) -> [u8; 6] {
        array(self.buffer.as_ref(), field::SHA)
    }
    #[inline]
    pub fn sender_ip(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::SHA + 6)
    }
    #[inline]
    pub fn target_hw(&self) -> [u8; 6] {
        array(self.buffer.as_ref(), field::SHA + 10)
    }
    #[inline]
    pub fn target_ip(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::SHA + 16)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    #[inline]
    pub fn set_operation(&mut self, op: u16) {
        put16(self.buffer.as_mut(), field::OPER, op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // fixed
        0x02, 0, 0, 0, 0, 0x01, 10, 0, 0, 1, // sender
        0, 0, 0, 0, 0, 0, 10, 0, 0, 2, // target
    ];

    #[test]
    fn reads_request() {
        let a = ArpPacket::new_checked(&REQ[..]).unwrap();
        assert!(a.is_eth_ipv4());
        assert_eq!(a.operation(), operation::REQUEST);
        assert_eq!(a.packet_len(), ETH_IPV4_LEN);
        assert_eq!(a.sender_hw(), [0x02, 0, 0, 0, 0, 0x01]);
        assert_eq!(a.sender_ip(), [10, 0, 0, 1]);
        assert_eq!(a.target_hw(), [0; 6]);
        assert_eq!(a.target_ip(), [10, 0, 0, 2]);
    }

    #[test]
    fn writes_operation() {
        let mut b = REQ;
        ArpPacket::new_unchecked(&mut b[..]).set_operation(operation::REPLY);
        assert_eq!(&b[6..8], &[0, 2]);
    }

    #[test]
    fn refuses_truncated() {
        for n in 0..REQ.len() {
            assert!(ArpPacket::new_checked(&REQ[..n]).is_err(), "len {n}");
        }
    }
}
