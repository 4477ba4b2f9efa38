//! Ethernet II header view and 802.1Q / 802.1ad (QinQ) tag handling.
//!
//! An Ethernet header is 14 bytes: destination MAC, source MAC, ethertype.
//! A VLAN tag is 4 bytes (TPID, TCI) inserted before the ethertype, so a
//! tagged frame reads `dst src TPID TCI [TPID TCI] ethertype`. The tag
//! helpers here walk at most a caller-given number of tags, and push/pop
//! one tag by moving the 12 MAC bytes within a [`Frame`]'s headroom.

use super::{array, be16, put16, Error, Result};
use crate::frame::{Frame, NoRoom};

/// Ethertypes we recognise.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer tag (also the inner tag of QinQ).
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (outer tag of QinQ).
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag.
pub const TAG_LEN: usize = 4;

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
    // Within a VLAN tag view (which starts right after the TPID).
    pub const TCI: usize = 0;
    pub const INNER_TYPE: usize = 2;
}

/// True for the ethertypes that announce a VLAN tag.
#[inline]
pub fn is_tag_tpid(ethertype: u16) -> bool {
    ethertype == ethertype::VLAN || ethertype == ethertype::QINQ
}

/// An Ethernet II header (the first ethertype, before any tag).
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }
    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        array(self.buffer.as_ref(), field::DST.start)
    }
    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        array(self.buffer.as_ref(), field::SRC.start)
    }
    /// The first ethertype: a TPID when the frame is tagged.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }
    /// Bytes after the first ethertype (a VLAN tag's TCI when tagged).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a)
    }
    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a)
    }
    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        put16(self.buffer.as_mut(), field::ETHERTYPE, t)
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
    /// Writes a whole untagged header.
    #[inline]
    pub fn emit(&mut self, dst: [u8; 6], src: [u8; 6], ethertype: u16) {
        self.set_dst_addr(dst);
        self.set_src_addr(src);
        self.set_ethertype(ethertype);
    }
}

/// One VLAN tag, viewed from its TCI (the 2 bytes after the TPID) to the
/// ethertype (or next TPID) that follows it.
#[derive(Debug, Clone)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < TAG_LEN {
            return Err(Error::Truncated);
        }
        Ok(VlanTag { buffer })
    }
    #[inline]
    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TCI)
    }
    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }
    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }
    /// VLAN id (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }
    /// The ethertype (or next TPID) after this tag.
    #[inline]
    pub fn inner_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::INNER_TYPE)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        put16(self.buffer.as_mut(), field::TCI, tci)
    }
    #[inline]
    pub fn set_inner_type(&mut self, t: u16) {
        put16(self.buffer.as_mut(), field::INNER_TYPE, t)
    }
}

/// What [`walk_tags`] found between the MACs and the L3 header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Tags {
    /// Number of tags (0..=max).
    pub count: u8,
    /// VLAN id of the outermost tag (0 when untagged).
    pub outer_vid: u16,
    /// Ethertype after the last tag.
    pub ethertype: u16,
    /// Offset of the L3 header from the start of the Ethernet header.
    pub l3_off: usize,
}

/// Walks the VLAN tags of the Ethernet frame at the start of `frame`:
/// `Truncated` if a header or tag is cut, `TooDeep` past `max` tags.
#[inline]
pub fn walk_tags(frame: &[u8], max: u8) -> Result<Tags> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut tags = Tags {
        count: 0,
        outer_vid: 0,
        ethertype: eth.ethertype(),
        l3_off: HEADER_LEN,
    };
    while is_tag_tpid(tags.ethertype) {
        if tags.count == max {
            return Err(Error::TooDeep);
        }
        // The tag's TCI sits where L3 would start; its inner type after it.
        let rest = frame.get(tags.l3_off..).ok_or(Error::Truncated)?;
        let tag = VlanTag::new_checked(rest)?;
        if tags.count == 0 {
            tags.outer_vid = tag.vid();
        }
        tags.ethertype = tag.inner_type();
        tags.l3_off += TAG_LEN;
        tags.count += 1;
    }
    Ok(tags)
}

/// Inserts a tag (`tpid`, `tci`) as the outermost tag, growing the frame
/// into its headroom by 4 bytes.
pub fn push_tag(frame: &mut Frame<'_>, tpid: u16, tci: u16) -> core::result::Result<(), NoRoom> {
    if frame.len() < HEADER_LEN {
        return Err(NoRoom);
    }
    frame.prepend(TAG_LEN)?;
    let d = frame.data_mut();
    d.copy_within(TAG_LEN..TAG_LEN + 12, 0);
    put16(d, 12, tpid);
    put16(d, 14, tci);
    Ok(())
}

/// Removes the outermost tag and returns its TCI; `None` (frame
/// untouched) when the frame carries no tag.
pub fn pop_tag(frame: &mut Frame<'_>) -> Option<u16> {
    let d = frame.data_mut();
    if d.len() < HEADER_LEN + TAG_LEN || !is_tag_tpid(be16(d, 12)) {
        return None;
    }
    let tci = be16(d, 14);
    d.copy_within(0..12, TAG_LEN);
    frame.adj(TAG_LEN).ok()?;
    Some(tci)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    fn qinq_bytes() -> [u8; 22] {
        [
            0x02, 0, 0, 0, 0, 0x01, // dst
            0x02, 0, 0, 0, 0, 0x02, // src
            0x88, 0xa8, 0xa0, 0x64, // S-tag: pcp 5, vid 100
            0x81, 0x00, 0x10, 0xc8, // C-tag: dei, vid 200
            0x08, 0x00, // IPv4
        ]
    }

    #[test]
    fn reads_and_writes_header() {
        let b = qinq_bytes();
        let e = EthernetFrame::new_checked(&b[..]).unwrap();
        assert_eq!(e.dst_addr(), DST);
        assert_eq!(e.src_addr(), SRC);
        assert_eq!(e.ethertype(), ethertype::QINQ);
        assert_eq!(e.payload().len(), 8);

        let mut out = [0u8; 14];
        EthernetFrame::new_unchecked(&mut out[..]).emit(DST, SRC, ethertype::QINQ);
        assert_eq!(out[..], b[..14]);
    }

    #[test]
    fn reads_and_writes_tags() {
        let b = qinq_bytes();
        let s = VlanTag::new_checked(&b[14..]).unwrap();
        assert_eq!((s.pcp(), s.dei(), s.vid()), (5, false, 100));
        assert_eq!(s.inner_type(), ethertype::VLAN);
        let c = VlanTag::new_checked(&b[18..]).unwrap();
        assert_eq!((c.pcp(), c.dei(), c.vid()), (0, true, 200));
        assert_eq!(c.inner_type(), ethertype::IPV4);

        let mut out = [0u8; 4];
        let mut t = VlanTag::new_unchecked(&mut out[..]);
        t.set_tci(0xa064);
        t.set_inner_type(ethertype::VLAN);
        assert_eq!(out[..], b[14..18]);
    }

    #[test]
    fn truncated_views_are_refused() {
        assert_eq!(EthernetFrame::new_checked(&[0u8; 13][..]).err(), Some(Error::Truncated));
        assert_eq!(VlanTag::new_checked(&[0u8; 3][..]).err(), Some(Error::Truncated));
    }

    #[test]
    fn walks_tags_up_to_max() {
        let b = qinq_bytes();
        let t = walk_tags(&b, 2).unwrap();
        assert_eq!(t.count, 2);
        assert_eq!(t.outer_vid, 100);
        assert_eq!(t.ethertype, ethertype::IPV4);
        assert_eq!(t.l3_off, 22);
        assert_eq!(walk_tags(&b, 1), Err(Error::TooDeep));
        for n in 0..b.len() {
            assert_eq!(walk_tags(&b[..n], 2), Err(Error::Truncated), "len {n}");
        }
        assert_eq!(walk_tags(&b[..14], 0), Err(Error::TooDeep));
        let mut plain = b;
        plain[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
        let t = walk_tags(&plain[..14], 0).unwrap();
        assert_eq!(
            (t.count, t.outer_vid, t.ethertype, t.l3_off),
            (0, 0, ethertype::IPV6, 14)
        );
    }

    #[test]
    fn push_then_pop_restores_frame() {
        let mut buf = [0u8; 64];
        let start = 8;
        buf[start..start + 14].copy_from_slice(&qinq_bytes()[..14]);
        buf[start + 12..start + 14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
        let before: [u8; 14] = buf[start..start + 14].try_into().unwrap();
        let mut f = Frame::new(&mut buf, start, 14).unwrap();
        push_tag(&mut f, ethertype::VLAN, 42).unwrap();
        assert_eq!(f.len(), 18);
        let t = walk_tags(f.data(), 2).unwrap();
        assert_eq!((t.count, t.outer_vid, t.ethertype), (1, 42, ethertype::IPV4));
        assert_eq!(pop_tag(&mut f), Some(42));
        assert_eq!(f.data(), &before[..]);
        assert_eq!(pop_tag(&mut f), None);

        let mut small = [0u8; 14];
        let mut f = Frame::whole(&mut small);
        assert_eq!(push_tag(&mut f, ethertype::VLAN, 1), Err(NoRoom));
    }
}
