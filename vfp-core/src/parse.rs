//! Bytes -> parsed descriptor: header offsets plus the flow key.
//!
//! CONTRACT (shared with the engine and pmd-app; keep the field names):
//! `parse(frame)` never panics, never reads out of bounds and never loops
//! on any input. For a VXLAN frame (outer UDP dst 4789) the *key* and the
//! `eth_off/l3_off/l4_off` offsets describe the inner (tenant) frame and
//! `outer` describes the encapsulation. The key's `vport` and `dir` are
//! left at their defaults: the caller sets them.

use crate::flow::key::FlowKey;

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

/// Parses a frame starting with an Ethernet header.
pub fn parse(frame: &[u8]) -> Result<Parsed, ParseError> {
    let _ = frame;
    todo!("implemented by the parser work")
}
