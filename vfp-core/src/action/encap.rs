//! VXLAN encapsulation (RFC 7348) over an IPv4 underlay: a precompiled
//! 50-byte header pushed into the frame's headroom.
//!
//! Everything but the two length fields and the IPv4 checksum is fixed for
//! the life of a flow, so the header is built once when the flow pair is
//! compiled ([`Encap::new`]), together with the ones'-complement sum of its
//! constant IPv4 words; per packet only the lengths are written and the
//! checksum finished from that partial sum (still a full, correct header
//! checksum, or zero when the NIC computes it).
//!
//! Outer headers: Ethernet (MACs from the spec, ethertype IPv4), IPv4 (DF,
//! TTL 64, id 0, protocol UDP), UDP (source port 49152 + flow hash % 16384
//! so the underlay's ECMP/RSS can spread flows, destination 4789, checksum
//! 0 as RFC 7348 allows for IPv4), VXLAN (I flag, VNI).

use crate::decision::EncapSpec;
use crate::frame::Frame;
use crate::wire::checksum;

/// Bytes pushed: Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8.
pub const ENCAP_LEN: usize = 50;
/// IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

const IP: usize = 14;
const UDP: usize = 34;
const VXLAN: usize = 42;

/// Outer headers of an encapsulated frame as it arrived, kept so that the
/// reply can be encapsulated back towards where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OuterHeaders {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
}

impl OuterHeaders {
    /// The spec that sends a reply back: addresses swapped, same VNI.
    pub fn reply_spec(&self, vni: u32) -> EncapSpec {
        EncapSpec {
            vni,
            outer_src_ip: self.dst_ip,
            outer_dst_ip: self.src_ip,
            outer_src_mac: self.dst_mac,
            outer_dst_mac: self.src_mac,
        }
    }
}

/// A compiled VXLAN encapsulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encap {
    hdr: [u8; ENCAP_LEN],
    /// Sum of the IPv4 header words except total length and checksum.
    ip_partial: u16,
}

/// Who computes the outer IPv4 header checksum of a pushed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OuterChecksum {
    /// Written in software (the default).
    #[default]
    Software,
    /// Left zero for the NIC (the app sets the mbuf's offload flags with
    /// the lengths in the returned plan).
    Offload,
}

impl Encap {
    /// Compiles `spec`; `flow_hash` picks the UDP source port.
    pub fn new(spec: &EncapSpec, flow_hash: u64) -> Encap {
        let mut h = [0u8; ENCAP_LEN];
        h[0..6].copy_from_slice(&spec.outer_dst_mac);
        h[6..12].copy_from_slice(&spec.outer_src_mac);
        h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        h[IP] = 0x45;
        h[IP + 6] = 0x40; // DF
        h[IP + 8] = 64; // TTL
        h[IP + 9] = 17; // UDP
        h[IP + 12..IP + 16].copy_from_slice(&spec.outer_src_ip);
        h[IP + 16..IP + 20].copy_from_slice(&spec.outer_dst_ip);
        let sport = 49152 + (flow_hash % 16384) as u16;
        h[UDP..UDP + 2].copy_from_slice(&sport.to_be_bytes());
        h[UDP + 2..UDP + 4].copy_from_slice(&VXLAN_PORT.to_be_bytes());
        h[VXLAN] = 0x08; // I flag: the VNI is valid
        h[VXLAN + 4..VXLAN + 7].copy_from_slice(&(spec.vni & 0x00ff_ffff).to_be_bytes()[1..]);
        // Total length and checksum are still zero here.
        let ip_partial = checksum::sum(&h[IP..UDP]);
        Encap { hdr: h, ip_partial }
    }

    /// The spec this header was compiled from, read back from the header
    /// (the flow pair keeps only the header, to stay small).
    pub fn spec(&self) -> EncapSpec {
        let h = &self.hdr;
        let mac = |at: usize| -> [u8; 6] { h[at..at + 6].try_into().unwrap() };
        let ip = |at: usize| -> [u8; 4] { h[at..at + 4].try_into().unwrap() };
        EncapSpec {
            vni: u32::from_be_bytes([0, h[VXLAN + 4], h[VXLAN + 5], h[VXLAN + 6]]),
            outer_src_ip: ip(IP + 12),
            outer_dst_ip: ip(IP + 16),
            outer_src_mac: mac(6),
            outer_dst_mac: mac(0),
        }
    }

    /// The UDP source port this flow's frames carry.
    pub fn udp_src_port(&self) -> u16 {
        u16::from_be_bytes([self.hdr[UDP], self.hdr[UDP + 1]])
    }

    /// Pushes the header in front of the frame. Fails when the headroom is
    /// too small or the result would exceed an IPv4 datagram.
    #[inline]
    pub fn push(&self, frame: &mut Frame, csum: OuterChecksum) -> Result<(), EncapError> {
        let inner = frame.len();
        let ip_len = inner + (ENCAP_LEN - IP);
        if ip_len > usize::from(u16::MAX) {
            return Err(EncapError::TooBig);
        }
        let ip_len = ip_len as u16;
        let udp_len = ip_len - 20;
        let h = frame.prepend(ENCAP_LEN).map_err(|_| EncapError::NoHeadroom)?;
        h.copy_from_slice(&self.hdr);
        h[IP + 2..IP + 4].copy_from_slice(&ip_len.to_be_bytes());
        h[UDP + 4..UDP + 6].copy_from_slice(&udp_len.to_be_bytes());
        if csum == OuterChecksum::Software {
            let c = !checksum::add(self.ip_partial, ip_len);
            h[IP + 10..IP + 12].copy_from_slice(&c.to_be_bytes());
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        let s = self.spec();
        format!(
            "encap vxlan vni {} {}->{} udp-src {}",
            s.vni,
            fmt_v4(s.outer_src_ip),
            fmt_v4(s.outer_dst_ip),
            self.udp_src_port()
        )
    }
}

/// Why a header could not be pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    NoHeadroom,
    TooBig,
}

pub(crate) fn fmt_v4(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> EncapSpec {
        EncapSpec {
            vni: 0x12_3456,
            outer_src_ip: [10, 1, 0, 1],
            outer_dst_ip: [10, 1, 0, 2],
            outer_src_mac: [2, 0, 0, 0, 0, 1],
            outer_dst_mac: [2, 0, 0, 0, 0, 2],
        }
    }

    #[test]
    fn push_writes_valid_outer_headers() {
        let e = Encap::new(&spec(), 0xdead_beef);
        let mut buf = [0u8; 200];
        buf[100..].fill(0xab);
        let mut f = Frame::new(&mut buf, 100, 100).unwrap();
        e.push(&mut f, OuterChecksum::Software).unwrap();
        assert_eq!((f.start(), f.len()), (50, 150));
        let d = f.data();
        assert_eq!(&d[0..6], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(&d[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([d[16], d[17]]), 136);
        assert!(checksum::verify(&d[14..34]));
        assert_eq!(d[14 + 6], 0x40);
        assert_eq!(d[14 + 8], 64);
        let sport = u16::from_be_bytes([d[34], d[35]]);
        assert_eq!(sport, 49152 + (0xdead_beef_u64 % 16384) as u16);
        assert_eq!(u16::from_be_bytes([d[36], d[37]]), 4789);
        assert_eq!(u16::from_be_bytes([d[38], d[39]]), 116);
        assert_eq!(&d[40..42], &[0, 0]);
        assert_eq!(&d[42..50], &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        assert_eq!(d[50], 0xab);
    }

    #[test]
    fn spec_reads_back_from_the_header() {
        assert_eq!(Encap::new(&spec(), 9).spec(), spec());
    }

    #[test]
    fn offload_leaves_checksum_zero_and_errors_are_reported() {
        let e = Encap::new(&spec(), 1);
        let mut buf = [0u8; 120];
        let mut f = Frame::new(&mut buf, 60, 60).unwrap();
        e.push(&mut f, OuterChecksum::Offload).unwrap();
        assert_eq!(&f.data()[24..26], &[0, 0]);
        let mut buf = [0u8; 120];
        let mut f = Frame::new(&mut buf, 49, 60).unwrap();
        assert_eq!(e.push(&mut f, OuterChecksum::Software), Err(EncapError::NoHeadroom));
        assert_eq!((f.start(), f.len()), (49, 60));
    }

    #[test]
    fn reply_spec_swaps_endpoints() {
        let o = OuterHeaders {
            src_mac: [1; 6],
            dst_mac: [2; 6],
            src_ip: [1, 1, 1, 1],
            dst_ip: [2, 2, 2, 2],
        };
        let s = o.reply_spec(7);
        assert_eq!(s.outer_src_ip, [2, 2, 2, 2]);
        assert_eq!(s.outer_dst_mac, [1; 6]);
        assert_eq!(s.vni, 7);
    }
}
