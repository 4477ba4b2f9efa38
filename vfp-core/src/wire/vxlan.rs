//! VXLAN header view (RFC 7348): 8 bytes after a UDP header to port 4789,
//! followed by the tenant's Ethernet frame.
//!
//! `flags(1) reserved(3) vni(3) reserved(1)`; the I flag (0x08) says the
//! VNI is valid. Receivers must ignore the reserved bits, so the view
//! neither checks nor preserves them beyond what the setters write.

use super::{be32, put32, Error, Result};

pub const HEADER_LEN: usize = 8;
/// IANA-assigned UDP destination port.
pub const UDP_PORT: u16 = 4789;
/// The "VNI valid" flag.
pub const FLAG_I: u8 = 0x08;
/// VNIs are 24 bits.
pub const VNI_MAX: u32 = 0x00ff_ffff;

mod field {
    pub const FLAGS: usize = 0;
    pub const VNI_RSVD: usize = 4;
}

#[derive(Debug, Clone)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        VxlanHeader { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(VxlanHeader { buffer })
    }
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// True when the I flag is set (the VNI is meaningful).
    #[inline]
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }
    #[inline]
    pub fn vni(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VNI_RSVD) >> 8
    }
    /// The encapsulated Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanHeader<T> {
    #[inline]
    pub fn set_flags(&mut self, f: u8) {
        self.buffer.as_mut()[field::FLAGS] = f
    }
    /// Sets the 24-bit VNI (higher bits dropped) and zeroes the last
    /// reserved byte.
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        put32(self.buffer.as_mut(), field::VNI_RSVD, (vni & VNI_MAX) << 8)
    }
    /// Writes a whole header: I flag, zero reserved bytes, `vni`.
    #[inline]
    pub fn emit(&mut self, vni: u32) {
        self.buffer.as_mut()[..HEADER_LEN].copy_from_slice(&[FLAG_I, 0, 0, 0, 0, 0, 0, 0]);
        self.set_vni(vni)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HDR: [u8; 10] = [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0, 0xaa, 0xbb];

    #[test]
    fn reads_every_field() {
        let v = VxlanHeader::new_checked(&HDR[..]).unwrap();
        assert_eq!(v.flags(), FLAG_I);
        assert!(v.vni_valid());
        assert_eq!(v.vni(), 0x123456);
        assert_eq!(v.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn writes_every_field_back() {
        let mut out = [0xffu8; 10];
        out[8..].copy_from_slice(&[0xaa, 0xbb]);
        VxlanHeader::new_unchecked(&mut out[..]).emit(0xff12_3456);
        assert_eq!(out, HDR);
        let mut v = VxlanHeader::new_unchecked(&mut out[..]);
        v.set_flags(0);
        assert!(!v.vni_valid());
    }

    #[test]
    fn refuses_truncated() {
        for n in 0..HEADER_LEN {
            assert!(VxlanHeader::new_checked(&HDR[..n]).is_err());
        }
    }
}
