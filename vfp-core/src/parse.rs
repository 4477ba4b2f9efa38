//! Bytes -> parsed descriptor: header offsets plus the flow key.
//!
//! CONTRACT (shared with the engine and pmd-app; keep the field names):
//! `parse(frame)` never panics, never reads out of bounds and never loops
//! on any input. For a VXLAN frame (outer UDP dst 4789) the *key* and the
//! `eth_off/l3_off/l4_off` offsets describe the inner (tenant) frame and
//! `outer` describes the encapsulation. The key's `vport` and `dir` are
//! left at their defaults: the caller sets them.
//!
//! The walk is Ethernet (up to [`MAX_VLAN_TAGS`] 802.1Q/802.1ad tags) ->
//! ARP | IPv4 | IPv6 (up to [`MAX_IPV6_EXT_HEADERS`] extension headers)
//! -> TCP | UDP | ICMP, and once more for the inner frame of a VXLAN
//! packet. Every step is a checked [`crate::wire`] view, so a length is
//! validated once and the field reads after it cannot fail. Choices the
//! contract leaves open:
//! - IPv4/IPv6 lengths bound everything after them: bytes past the total
//!   length (Ethernet padding) are ignored, a frame shorter than it is
//!   `Truncated`.
//! - A non-first fragment carries no L4 header: ports stay 0 and
//!   `l4_off == payload_off ==` the end of the IP headers. A first
//!   fragment must hold the whole L4 header (a tiny first fragment that
//!   splits it is `Truncated`); its UDP length is not checked, as it
//!   covers bytes in later fragments.
//! - Only an unfragmented UDP datagram to port 4789 whose VXLAN header
//!   has the I flag (and whose payload holds that header) is decapsulated;
//!   anything else to port 4789 is keyed as the plain UDP flow it is.
//! - ARP and other ethertypes get the default key (VNI still set for an
//!   inner frame, which does live in that VNI).
//! - IP header checksums are not verified here: that is NIC offload work,
//!   and the flow key does not depend on it.

use crate::flow::key::{proto, v4_mapped, Direction, FlowKey, NO_VNI};
use crate::flow::v4_key::V4Key;
use crate::wire::arp::ArpPacket;
use crate::wire::ethernet::{self, ethertype};
use crate::wire::icmp::{self, Echo, IcmpPacket};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::{self, UdpPacket};
use crate::wire::vxlan::{self, VxlanHeader};
use crate::wire::{be16, Error as WireError};

/// Both "ports" of an ICMP error's key. Echo keys have the identifier
/// on one side and 0 on the other, other ICMP keys 0 on both, and an
/// error never opens a flow: so no flow pair holds a key like an error's,
/// and an error always takes the slow path that finds the flow it quotes
/// ([`crate::action::icmp_error`]).
pub const ICMP_ERROR_PORT: u16 = 0xffff;

/// Most VLAN tags followed (an 802.1ad S-tag plus an 802.1Q C-tag).
pub const MAX_VLAN_TAGS: u8 = 2;
/// Most IPv6 extension headers crossed before giving up (`TooDeep`).
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

/// What sits at `l3_off`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum L3 {
    Ipv4,
    Ipv6,
    /// ARP is recognised but carries no flow key.
    Arp,
    /// Any other ethertype (value given); no flow key.
    #[default]
    Other,
}

/// Fragmentation state of the key frame's IP packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Fragment {
    #[default]
    None,
    /// First fragment: L4 header present, more fragments follow.
    First,
    /// Non-first fragment: no L4 header; ports in the key are 0.
    Later,
}

/// The VXLAN encapsulation around the key frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Outer {
    /// Offset of the outer IPv4/IPv6 header.
    pub l3_off: u16,
    pub is_ipv6: bool,
    /// Offset of the outer UDP header.
    pub udp_off: u16,
    /// Offset of the VXLAN header (inner Ethernet follows 8 bytes later).
    pub vxlan_off: u16,
    pub vni: u32,
}

/// Result of parsing one frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Parsed {
    /// Flow key of the key frame (vport and dir at defaults).
    pub key: FlowKey,
    /// Present when the frame is VXLAN-encapsulated.
    pub outer: Option<Outer>,
    /// Offset of the key frame's Ethernet header (0 unless VXLAN).
    pub eth_off: u16,
    /// Number of 802.1Q/802.1ad tags in the key frame's Ethernet header.
    pub vlan_count: u8,
    /// Outermost VLAN id of the key frame (0 when untagged).
    pub vlan_id: u16,
    /// Ethertype after the VLAN tags.
    pub ethertype: u16,
    pub l3: L3,
    /// Offset of the key frame's L3 header.
    pub l3_off: u16,
    /// Offset of the L4 header (== payload start of L3 when no L4 parsed).
    pub l4_off: u16,
    /// Offset of the L4 payload.
    pub payload_off: u16,
    pub fragment: Fragment,
    /// TCP flags byte (0 when not TCP).
    pub tcp_flags: u8,
    /// IPv4 TTL / IPv6 hop limit of the key frame.
    pub ttl: u8,
}

/// Why a frame could not be parsed; each is a counted drop reason.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParseError {
    /// Shorter than the header it claims to carry.
    Truncated,
    /// A header field is invalid (IP version, IHL < 5, bad total length...).
    Malformed,
    /// Nested encapsulation or a header chain too long to follow.
    TooDeep,
}

impl ParseError {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated",
            ParseError::Malformed => "malformed",
            ParseError::TooDeep => "too-deep",
        }
    }
}

impl From<WireError> for ParseError {
    #[inline]
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated => ParseError::Truncated,
            WireError::Malformed => ParseError::Malformed,
            WireError::TooDeep => ParseError::TooDeep,
        }
    }
}

/// Parses a frame starting with an Ethernet header.
#[inline]
pub fn parse(frame: &[u8]) -> Result<Parsed, ParseError> {
    let mut p = Parsed::default();
    parse_into(frame, &mut p)?;
    Ok(p)
}

/// Parses a frame into `p`, which the caller may keep in place (a burst's
/// descriptor array): the descriptor is written once where it lives
/// instead of being built on the stack and copied out. On error `p` holds
/// no meaningful value.
///
/// The most common frame (untagged Ethernet, IPv4 without options or
/// fragmentation, TCP or UDP other than VXLAN) is recognised at fixed
/// offsets in one pass (`parse_common`); anything else, and any doubt
/// about that one, takes the general walk below, which gives the same
/// result for the common frame (a property test checks this).
#[inline]
pub fn parse_into(frame: &[u8], p: &mut Parsed) -> Result<(), ParseError> {
    if parse_common(frame, p) {
        return Ok(());
    }
    parse_general(frame, p)
}

/// The general walk of [`parse_into`], for every frame.
#[inline(never)]
fn parse_general(frame: &[u8], p: &mut Parsed) -> Result<(), ParseError> {
    let Some(vx) = parse_frame(frame, 0, p)? else {
        return Ok(());
    };
    let (outer_l3_off, outer_is_ipv6, outer_udp_off) = (p.l3_off, p.l3 == L3::Ipv6, p.l4_off);
    // The inner frame ends where the outer UDP payload does, so outer
    // padding never looks like inner bytes.
    let inner_bytes = frame.get(..vx.end).ok_or(ParseError::Truncated)?;
    if parse_frame(inner_bytes, vx.vxlan_off + vxlan::HEADER_LEN, p)?.is_some() {
        return Err(ParseError::TooDeep);
    }
    p.key.vni = vx.vni;
    p.outer = Some(Outer {
        l3_off: outer_l3_off,
        is_ipv6: outer_is_ipv6,
        udp_off: outer_udp_off,
        vxlan_off: off16(vx.vxlan_off)?,
        vni: vx.vni,
    });
    Ok(())
}

/// Offsets inside the common frame (see [`parse_into`]): untagged
/// Ethernet, then IPv4 without options, then the L4 header. The fixed
/// offset rewrite of a transposition uses the same layout.
pub mod common {
    use crate::wire::{ethernet, ipv4, tcp, udp};
    pub const ETHERTYPE: usize = IP - 2;
    pub const IP: usize = ethernet::HEADER_LEN;
    pub const L4: usize = IP + ipv4::MIN_HEADER_LEN;
    /// Bytes a UDP frame needs.
    pub const UDP_END: usize = L4 + udp::HEADER_LEN;
    /// Bytes a TCP frame needs.
    pub const TCP_END: usize = L4 + tcp::MIN_HEADER_LEN;
}

/// What the fixed-offset parse of a common frame reads (see
/// [`common_frame`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Common {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub src_port: u16,
    pub dst_port: u16,
    /// [`proto::TCP`] or [`proto::UDP`].
    pub proto: u8,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    pub ttl: u8,
    /// Offset of the L4 payload.
    pub payload_off: u16,
}

impl Common {
    /// The short flow key of this frame arriving on `vport`, travelling
    /// `dir`: the [`V4Key`] of the key [`parse_into`] gives it.
    #[inline(always)]
    pub fn key(&self, vport: u16, dir: Direction) -> V4Key {
        V4Key::new(self.src, self.dst, self.src_port, self.dst_port, vport, self.proto, dir)
    }

    /// The descriptor [`parse_into`] gives the frame.
    #[inline(always)]
    fn parsed(&self) -> Parsed {
        Parsed {
            key: FlowKey {
                src: v4_mapped(self.src),
                dst: v4_mapped(self.dst),
                vni: NO_VNI,
                src_port: self.src_port,
                dst_port: self.dst_port,
                proto: self.proto,
                ..FlowKey::default()
            },
            outer: None,
            eth_off: 0,
            vlan_count: 0,
            vlan_id: 0,
            ethertype: ethertype::IPV4,
            l3: L3::Ipv4,
            l3_off: common::IP as u16,
            l4_off: common::L4 as u16,
            payload_off: self.payload_off,
            fragment: Fragment::None,
            tcp_flags: self.tcp_flags,
            ttl: self.ttl,
        }
    }
}

/// Reads `frame` at fixed offsets if it is the common frame: untagged
/// Ethernet, IPv4 with a 20-byte header, neither fragmented nor claiming
/// more bytes than the frame has, carrying a complete TCP or UDP header
/// (UDP not to the VXLAN port). None for anything else: the general walk
/// then decides, including every error. Where this gives a [`Common`],
/// [`parse_into`] gives exactly the descriptor of these fields.
#[inline(always)]
pub fn common_frame(frame: &[u8]) -> Option<Common> {
    use common::*;
    let h = frame.get(..UDP_END)?;
    let ip = &h[IP..L4];
    // Version 4 with IHL 5; no MF flag, no fragment offset (DF allowed).
    if be16(h, ETHERTYPE) != ethertype::IPV4 || ip[0] != 0x45 || be16(ip, 6) & 0x3fff != 0 {
        return None;
    }
    let total = usize::from(be16(ip, 2));
    if total > frame.len() - IP {
        return None;
    }
    let l4_room = total.wrapping_sub(L4 - IP);
    let proto = ip[9];
    let (src_port, dst_port) = (be16(h, L4), be16(h, L4 + 2));
    let (payload_off, tcp_flags) = match proto {
        proto::UDP => {
            let len = usize::from(be16(h, L4 + 4));
            // The general walk decapsulates the VXLAN port and reports a
            // datagram length outside its IP payload.
            if total < L4 - IP + udp::HEADER_LEN
                || len < udp::HEADER_LEN
                || len > l4_room
                || dst_port == vxlan::UDP_PORT
            {
                return None;
            }
            (UDP_END, 0)
        }
        proto::TCP => {
            let t = frame.get(L4..TCP_END)?;
            let hl = usize::from(t[12] >> 4) * 4;
            if hl < 20 || hl > l4_room || total < L4 - IP + 20 {
                return None;
            }
            (L4 + hl, t[13])
        }
        _ => return None,
    };
    Some(Common {
        src: [ip[12], ip[13], ip[14], ip[15]],
        dst: [ip[16], ip[17], ip[18], ip[19]],
        src_port,
        dst_port,
        proto,
        tcp_flags,
        ttl: ip[8],
        payload_off: payload_off as u16,
    })
}

/// [`parse_into`] of a common frame; false (`p` unspecified) for any other.
#[inline(always)]
fn parse_common(frame: &[u8], p: &mut Parsed) -> bool {
    match common_frame(frame) {
        Some(c) => {
            *p = c.parsed();
            true
        }
        None => false,
    }
}

/// A VXLAN header found behind a UDP header.
struct VxlanAt {
    vxlan_off: usize,
    /// End of the UDP datagram (= end of the inner frame).
    end: usize,
    vni: u32,
}

/// Offsets are stored as u16: a header ending past 64 KiB is a chain we
/// will not follow.
#[inline]
fn off16(off: usize) -> Result<u16, ParseError> {
    u16::try_from(off).map_err(|_| ParseError::TooDeep)
}

/// Parses the Ethernet frame at `eth_off` (L2 to L4) into `p` (every
/// field rewritten, `key.vni == NO_VNI`, no `outer`), and reports a VXLAN
/// header behind it.
#[inline(always)]
fn parse_frame(frame: &[u8], eth_off: usize, p: &mut Parsed) -> Result<Option<VxlanAt>, ParseError> {
    let l2 = frame.get(eth_off..).ok_or(ParseError::Truncated)?;
    let tags = ethernet::walk_tags(l2, MAX_VLAN_TAGS)?;
    let l3_off = eth_off + tags.l3_off;
    *p = Parsed {
        key: FlowKey {
            vni: NO_VNI,
            ..FlowKey::default()
        },
        eth_off: off16(eth_off)?,
        vlan_count: tags.count,
        vlan_id: tags.outer_vid,
        ethertype: tags.ethertype,
        l3_off: off16(l3_off)?,
        ..Parsed::default()
    };
    // walk_tags checked that every byte before l3_off exists.
    let l3 = &frame[l3_off..];
    match tags.ethertype {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(l3)?;
            p.l3 = L3::Ipv4;
            p.key.src = v4_mapped(ip.src_addr());
            p.key.dst = v4_mapped(ip.dst_addr());
            p.key.proto = ip.protocol();
            p.ttl = ip.ttl();
            p.fragment = fragment(ip.frag_offset(), ip.more_frags());
            let l4_off = l3_off + ip.header_len();
            let l3_end = l3_off + usize::from(ip.total_len());
            parse_l4(frame, l4_off, l3_end, p)
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(l3)?;
            let chain = ipv6::walk_ext_headers(ip.payload(), ip.next_header(), MAX_IPV6_EXT_HEADERS)?;
            p.l3 = L3::Ipv6;
            p.key.src = ip.src_addr();
            p.key.dst = ip.dst_addr();
            p.key.proto = chain.protocol;
            p.ttl = ip.hop_limit();
            if let Some(f) = chain.fragment {
                p.fragment = fragment(f.offset, f.more);
            }
            let l4_off = l3_off + ipv6::HEADER_LEN + chain.l4_off;
            let l3_end = l3_off + ipv6::HEADER_LEN + usize::from(ip.payload_len());
            parse_l4(frame, l4_off, l3_end, p)
        }
        ethertype::ARP => {
            let arp = ArpPacket::new_checked(l3)?;
            p.l3 = L3::Arp;
            p.l4_off = off16(l3_off + arp.packet_len())?;
            p.payload_off = p.l4_off;
            Ok(None)
        }
        _ => {
            p.l3 = L3::Other;
            p.l4_off = p.l3_off;
            p.payload_off = p.l3_off;
            Ok(None)
        }
    }
}

#[inline]
fn fragment(offset: u16, more: bool) -> Fragment {
    if offset != 0 {
        Fragment::Later
    } else if more {
        Fragment::First
    } else {
        Fragment::None
    }
}

/// Fills ports, TCP flags and `l4_off`/`payload_off` from the L4 header
/// in `frame[l4_off..l3_end]` (both checked by the IP view).
#[inline]
fn parse_l4(frame: &[u8], l4_off: usize, l3_end: usize, p: &mut Parsed) -> Result<Option<VxlanAt>, ParseError> {
    p.l4_off = off16(l4_off)?;
    p.payload_off = p.l4_off;
    if p.fragment == Fragment::Later {
        return Ok(None);
    }
    let seg = frame.get(l4_off..l3_end).ok_or(ParseError::Truncated)?;
    let v6 = p.l3 == L3::Ipv6;
    match p.key.proto {
        proto::TCP => {
            let tcp = TcpPacket::new_checked(seg)?;
            p.key.src_port = tcp.src_port();
            p.key.dst_port = tcp.dst_port();
            p.tcp_flags = tcp.flags();
            p.payload_off = off16(l4_off + tcp.header_len())?;
        }
        proto::UDP => {
            let dgram = if p.fragment == Fragment::First {
                UdpPacket::check_header(seg)?
            } else {
                UdpPacket::new_checked(seg)?
            };
            p.key.src_port = dgram.src_port();
            p.key.dst_port = dgram.dst_port();
            p.payload_off = off16(l4_off + udp::HEADER_LEN)?;
            if dgram.dst_port() == vxlan::UDP_PORT && p.fragment == Fragment::None {
                return Ok(vxlan_at(&dgram, l4_off));
            }
        }
        proto::ICMP | proto::ICMPV6 if (p.key.proto == proto::ICMPV6) == v6 => {
            let msg = IcmpPacket::new_checked(seg)?;
            match icmp::echo_kind(msg.msg_type(), v6) {
                Some(Echo::Request) => p.key.src_port = msg.echo_ident(),
                Some(Echo::Reply) => p.key.dst_port = msg.echo_ident(),
                // An error belongs to the flow it quotes, never to one of
                // its own: its key holds ports no flow's key has.
                None if icmp::is_error(msg.msg_type(), v6) => {
                    (p.key.src_port, p.key.dst_port) = (ICMP_ERROR_PORT, ICMP_ERROR_PORT)
                }
                None => {}
            }
            p.payload_off = off16(l4_off + icmp::HEADER_LEN)?;
        }
        _ => {}
    }
    Ok(None)
}

/// The VXLAN header behind a complete UDP datagram at `udp_off`, if its
/// payload holds one with the I flag set.
#[inline]
fn vxlan_at(dgram: &UdpPacket<&[u8]>, udp_off: usize) -> Option<VxlanAt> {
    let vx = VxlanHeader::new_checked(dgram.payload()).ok()?;
    if !vx.vni_valid() {
        return None;
    }
    Some(VxlanAt {
        vxlan_off: udp_off + udp::HEADER_LEN,
        end: udp_off + usize::from(dgram.len()),
        vni: vx.vni(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A valid untagged IPv4 frame carrying `proto` (TCP or UDP) with
    /// `payload` bytes after a 20-byte TCP or 8-byte UDP header.
    fn frame(proto: u8, sp: u16, dp: u16, payload: usize) -> Vec<u8> {
        let l4 = if proto == proto::TCP { 20 } else { 8 };
        let total = 20 + l4 + payload;
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 192, 0, 2, 7]);
        f.extend_from_slice(&sp.to_be_bytes());
        f.extend_from_slice(&dp.to_be_bytes());
        if proto == proto::TCP {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x12, 0xff, 0xff, 0, 0, 0, 0]);
        } else {
            f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
        f.resize(14 + total, 0xab);
        f
    }

    fn general(frame: &[u8]) -> Result<Parsed, ParseError> {
        let mut p = Parsed::default();
        parse_general(frame, &mut p).map(|()| p)
    }

    #[test]
    fn the_common_frame_takes_the_fast_path() {
        for proto in [proto::TCP, proto::UDP] {
            let f = frame(proto, 1234, 80, 10);
            let mut p = Parsed::default();
            assert!(parse_common(&f, &mut p));
            assert_eq!(Ok(p), general(&f));
        }
        // VXLAN, options, fragments and VLAN tags go the general way.
        let mut p = Parsed::default();
        assert!(!parse_common(&frame(proto::UDP, 1, vxlan::UDP_PORT, 16), &mut p));
        let mut f = frame(proto::UDP, 1, 2, 0);
        f[20] |= 0x20;
        assert!(!parse_common(&f, &mut p));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Whatever the fast path accepts, the general walk parses to the
        /// same descriptor; and parse_into always agrees with the general
        /// walk. Frames start valid and get bytes overwritten (biased to
        /// the headers) and their ends cut or padded.
        #[test]
        fn fast_path_agrees_with_the_general_walk(
            tcp in any::<bool>(),
            sp in any::<u16>(),
            dp in prop_oneof![any::<u16>(), Just(vxlan::UDP_PORT)],
            payload in 0usize..40,
            edits in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
            cut in 0usize..8,
            pad in 0usize..8,
        ) {
            let mut f = frame(if tcp { proto::TCP } else { proto::UDP }, sp, dp, payload);
            for (at, v) in edits {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            f.truncate(f.len().saturating_sub(cut));
            f.resize(f.len() + pad, 0);
            let mut fast = Parsed::default();
            if parse_common(&f, &mut fast) {
                prop_assert_eq!(Ok(fast), general(&f));
                // The short key is the descriptor's key, in short.
                let c = common_frame(&f).unwrap();
                for (vport, dir) in [(0, Direction::Outbound), (3, Direction::Inbound)] {
                    let mut key = fast.key;
                    (key.vport, key.dir) = (vport, dir);
                    let short = c.key(vport, dir);
                    prop_assert_eq!(Some(short), V4Key::of(&key));
                    prop_assert!(short.matches(&key));
                    prop_assert_eq!(short.table_hash(), key.table_hash());
                }
            } else {
                prop_assert_eq!(common_frame(&f), None);
            }
            let mut p = Parsed::default();
            let r = parse_into(&f, &mut p).map(|()| p);
            prop_assert_eq!(r, general(&f));
        }
    }
}
