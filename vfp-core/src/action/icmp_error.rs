//! ICMP errors that belong to a flow.
//!
//! A router that cannot deliver a packet of a connection (packet too big,
//! TTL exceeded, unreachable) answers its *source* with an ICMP error that
//! quotes the packet: its IP header and at least the first 8 bytes after
//! it. The error has a flow key of its own that no flow pair holds, yet it
//! belongs to the connection the quote names: that connection's stateful
//! ACL must let it through, and, when the connection is NAT'd, the error
//! must be translated like a packet of the connection would be, or the
//! host never learns the path MTU (PMTUD behind SNAT fails silently).
//!
//! The quoted packet went out along one side of a pair; a reply to it
//! would match the *other* side, which is the side the error also takes.
//! [`Quote::reply_key`] is that reply's key; with the side's rewrites
//! [`Quote::translate`] changes:
//! - the error's own addresses: destination to the side's destination
//!   rewrite, source to its source rewrite (as for any packet of that
//!   side; a router's own source address has no rewrite unless the side
//!   rewrites sources, as DNAT's reply side does);
//! - the quoted packet the other way round: its source address and port
//!   take the side's destination rewrite, its destination the side's
//!   source rewrite, so the quote again shows the packet as its host sent
//!   it.
//!
//! Checksums are updated incrementally, never recomputed, so one that was
//! wrong stays wrong: the quoted IPv4 header's, the quoted L4 checksum
//! when the quote holds it (a UDP "none" stays 0), the ICMP checksum
//! (ICMPv6: pseudo-header included), the error's IPv4 header checksum.
//! Every access is bounds-checked: a quote that ends early leaves the
//! fields it does not hold alone.

use crate::flow::key::{as_v4, proto, v4_mapped, FlowKey};
use crate::parse::{Fragment, Parsed, L3};
use crate::shard::DropReason;
use crate::wire::checksum;
use crate::wire::icmp::{self, Echo};
use crate::wire::{get16, ipv6};

use super::transposition::Rewrite;

/// Most extension headers followed in a quoted IPv6 packet.
const MAX_QUOTED_EXT_HEADERS: usize = 8;

/// The packet an ICMP error quotes, located in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    v6: bool,
    /// Offsets in the frame: the error's IP header, its ICMP header, the
    /// quoted IP header and the quoted L4 header; the ICMP message ends at
    /// `end`.
    outer_l3: usize,
    icmp: usize,
    l3: usize,
    l4: usize,
    end: usize,
    /// The quoted packet's 5-tuple, as a flow key stores it.
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    src_port: u16,
    dst_port: u16,
    /// Offsets from `l4` of the quoted source and destination "ports"
    /// (ICMP echo: the identifier is the source of a request, the
    /// destination of a reply).
    src_port_at: Option<usize>,
    dst_port_at: Option<usize>,
    /// The quoted L4 checksum: offset from `l4`, whether it covers a
    /// pseudo-header, whether it is UDP's (0 means none).
    csum: Option<(usize, bool, bool)>,
}

/// Whether `data` (as `p` describes it) is an ICMP error message: one
/// that quotes a packet. Such a message never opens a flow of its own.
pub fn is_error(data: &[u8], p: &Parsed) -> bool {
    error_family(data, p).is_some()
}

/// For an ICMP error, whether it is ICMPv6 (true) or ICMPv4 (false).
fn error_family(data: &[u8], p: &Parsed) -> Option<bool> {
    let v6 = match (p.l3, p.key.proto) {
        (L3::Ipv4, proto::ICMP) => false,
        (L3::Ipv6, proto::ICMPV6) => true,
        _ => return None,
    };
    icmp::is_error(*data.get(usize::from(p.l4_off))?, v6).then_some(v6)
}

/// The packet quoted by the ICMP error `data` holds, as `p` describes it;
/// None when the frame is not an ICMP error, or its quote is not a packet
/// a flow could hold (truncated before 8 bytes of L4 header, a non-first
/// fragment, an ICMP message other than an echo: errors about errors are
/// never answered).
pub fn quoted(data: &[u8], p: &Parsed) -> Option<Quote> {
    let v6 = error_family(data, p)?;
    if p.fragment != Fragment::None {
        return None;
    }
    let (outer_l3, icmp) = (usize::from(p.l3_off), usize::from(p.l4_off));
    let end = if v6 {
        outer_l3 + ipv6::HEADER_LEN + usize::from(get16(data, outer_l3 + 4)?)
    } else {
        outer_l3 + usize::from(get16(data, outer_l3 + 2)?)
    };
    let msg = data.get(..end)?;
    let l3 = icmp + icmp::HEADER_LEN;
    let (src, dst, proto, l4) = if v6 {
        let ip = msg.get(l3..l3 + ipv6::HEADER_LEN)?;
        if ip[0] >> 4 != 6 {
            return None;
        }
        let rest = msg.get(l3 + ipv6::HEADER_LEN..)?;
        let chain = ipv6::walk_ext_headers(rest, ip[6], MAX_QUOTED_EXT_HEADERS).ok()?;
        if chain.fragment.is_some_and(|f| f.offset != 0) {
            return None;
        }
        let (src, dst) = (ip[8..24].try_into().ok()?, ip[24..40].try_into().ok()?);
        (src, dst, chain.protocol, l3 + ipv6::HEADER_LEN + chain.l4_off)
    } else {
        let ip = msg.get(l3..l3 + 20)?;
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[0] >> 4 != 4 || ihl < 20 || u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
            return None;
        }
        let src = v4_mapped([ip[12], ip[13], ip[14], ip[15]]);
        let dst = v4_mapped([ip[16], ip[17], ip[18], ip[19]]);
        (src, dst, ip[9], l3 + ihl)
    };
    let l4h = msg.get(l4..l4 + 8)?;
    let port = |at: usize| u16::from_be_bytes([l4h[at], l4h[at + 1]]);
    let mut q = Quote {
        v6,
        outer_l3,
        icmp,
        l3,
        l4,
        end,
        src,
        dst,
        proto,
        src_port: 0,
        dst_port: 0,
        src_port_at: None,
        dst_port_at: None,
        csum: None,
    };
    match proto {
        proto::TCP | proto::UDP => {
            (q.src_port, q.dst_port) = (port(0), port(2));
            (q.src_port_at, q.dst_port_at) = (Some(0), Some(2));
            let udp = proto == proto::UDP;
            q.csum = Some((if udp { 6 } else { 16 }, true, udp));
        }
        proto::ICMP | proto::ICMPV6 if (proto == proto::ICMPV6) == v6 => {
            match icmp::echo_kind(l4h[0], v6) {
                Some(Echo::Request) => (q.src_port, q.src_port_at) = (port(4), Some(4)),
                Some(Echo::Reply) => (q.dst_port, q.dst_port_at) = (port(4), Some(4)),
                None => return None,
            }
            q.csum = Some((2, v6, false));
        }
        proto::ICMP | proto::ICMPV6 => return None,
        _ => {}
    }
    Some(q)
}

impl Quote {
    /// The key a reply to the quoted packet would carry, arriving where
    /// the error arrived (`error` is the error's own key: its vport,
    /// direction and VNI). None when the error is not addressed to the
    /// quoted packet's source, as every genuine error is.
    pub fn reply_key(&self, error: &FlowKey) -> Option<FlowKey> {
        if error.dst != self.src {
            return None;
        }
        Some(FlowKey {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
            vni: error.vni,
            vport: error.vport,
            dir: error.dir,
        })
    }

    /// Applies a pair side's address and port rewrites to the error and,
    /// mirrored, to its quote (see the module notes). `data` is the frame
    /// the quote was found in.
    pub fn translate(&self, data: &mut [u8], src: Option<&Rewrite>, dst: Option<&Rewrite>) -> Result<(), DropReason> {
        if src.is_none() && dst.is_none() {
            return Ok(());
        }
        let msg = data.get_mut(..self.end).ok_or(DropReason::ParseTruncated)?;
        let quote_sum = checksum::sum(msg.get(self.l3..).ok_or(DropReason::ParseTruncated)?);
        // The quote: its source takes the side's destination rewrite. (A
        // delta of 0 leaves a checksum as it is.)
        let mut l4_delta = 0;
        for (r, addr_at, port_at) in [(dst, 0, self.src_port_at), (src, 1, self.dst_port_at)] {
            let Some(r) = r else { continue };
            let d = self.set_addr(msg, self.l3, addr_at, &r.addr)?;
            if !self.v6 {
                update(msg, self.l3 + 10, d, false);
            }
            if self.csum.is_some_and(|(_, pseudo, _)| pseudo) {
                l4_delta = checksum::add(l4_delta, d);
            }
            if let (Some(port), Some(at)) = (r.port, port_at) {
                if let Some(f) = msg.get_mut(self.l4 + at..self.l4 + at + 2) {
                    let old = [f[0], f[1]];
                    f.copy_from_slice(&port.to_be_bytes());
                    l4_delta = checksum::add(l4_delta, checksum::delta(&old, &port.to_be_bytes()));
                }
            }
        }
        if let Some((at, _, udp)) = self.csum {
            update(msg, self.l4 + at, l4_delta, udp);
        }
        let quote_delta = checksum::add(!quote_sum, checksum::sum(&msg[self.l3..]));
        // The error itself, as any packet of the side.
        let mut icmp_delta = quote_delta;
        for (r, addr_at) in [(src, 0), (dst, 1)] {
            let Some(r) = r else { continue };
            let d = self.set_addr(msg, self.outer_l3, addr_at, &r.addr)?;
            if self.v6 {
                icmp_delta = checksum::add(icmp_delta, d);
            } else {
                update(msg, self.outer_l3 + 10, d, false);
            }
        }
        update(msg, self.icmp + 2, icmp_delta, false);
        Ok(())
    }

    /// Stores `addr` as the source (`which` 0) or destination address of
    /// the IP header at `l3`; returns the checksum delta of the change.
    fn set_addr(&self, msg: &mut [u8], l3: usize, which: usize, addr: &[u8; 16]) -> Result<u16, DropReason> {
        let new: &[u8] = match (self.v6, as_v4(addr)) {
            (false, Some(_)) => &addr[12..],
            (true, None) => addr,
            _ => return Err(DropReason::NatFamily),
        };
        let at = l3 + if self.v6 { 8 + 16 * which } else { 12 + 4 * which };
        let f = msg.get_mut(at..at + new.len()).ok_or(DropReason::ParseTruncated)?;
        let d = checksum::delta(f, new);
        f.copy_from_slice(new);
        Ok(d)
    }
}

/// Adds `delta` to the checksum at `at`, if the message holds it.
fn update(msg: &mut [u8], at: usize, delta: u16, udp: bool) {
    if let Some(f) = msg.get_mut(at..at + 2) {
        let c = u16::from_be_bytes([f[0], f[1]]);
        let c = if udp {
            checksum::udp_apply_delta(c, delta)
        } else {
            checksum::apply_delta(c, delta)
        };
        f.copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;
    use proptest::prelude::*;

    /// An Ethernet + IPv4 ICMP error to the source of the IPv4 UDP header
    /// it quotes, or the IPv6 equivalent (checksums not filled:
    /// translation never checks them).
    fn error_frame(v6: bool, quote_l4: usize) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        let (quote_ip, msg_type) = if v6 {
            let mut q = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
            q.extend_from_slice(&[[0x20; 16], [0x21; 16]].concat());
            (q, 2)
        } else {
            let mut q = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
            q.extend_from_slice(&[10, 0, 0, 1, 192, 0, 2, 7]);
            (q, 3)
        };
        let mut msg = vec![msg_type, 4, 0, 0, 0, 0, 5, 0x78];
        msg.extend_from_slice(&quote_ip);
        msg.extend_from_slice(&[0x13, 0x88, 0, 53, 0, 8, 0x12, 0x34][..quote_l4.min(8)]);
        if v6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(msg.len() as u16).to_be_bytes());
            f.extend_from_slice(&[58, 64]);
            f.extend_from_slice(&[[0x30; 16], [0x20; 16]].concat());
        } else {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&((20 + msg.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 254, 10, 0, 0, 1]);
        }
        f.extend_from_slice(&msg);
        f
    }

    #[test]
    fn a_quote_needs_eight_bytes_of_its_l4_header() {
        for v6 in [false, true] {
            let p = parse(&error_frame(v6, 8)).unwrap();
            let q = quoted(&error_frame(v6, 8), &p).expect("a full quote");
            let k = q.reply_key(&p.key).expect("addressed to the quoted source");
            assert_eq!((k.src_port, k.dst_port, k.proto), (53, 5000, proto::UDP));
            let short = error_frame(v6, 7);
            let p = parse(&short).unwrap();
            assert!(is_error(&short, &p));
            assert_eq!(quoted(&short, &p), None);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        /// Whatever bytes an error frame holds, finding its quote and
        /// translating it never panics.
        #[test]
        fn any_error_frame_is_handled_without_panic(
            v6 in any::<bool>(),
            quote_l4 in 0usize..9,
            edits in proptest::collection::vec((0usize..110, any::<u8>()), 0..6),
            cut in 0usize..12,
            v4_rewrite in any::<bool>(),
            port in proptest::option::of(any::<u16>()),
        ) {
            let mut f = error_frame(v6, quote_l4);
            for (at, v) in edits {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            f.truncate(f.len().saturating_sub(cut));
            if let Ok(p) = parse(&f) {
                let _ = is_error(&f, &p);
                if let Some(q) = quoted(&f, &p) {
                    let addr = if v4_rewrite { v4_mapped([198, 51, 100, 1]) } else { [0x44; 16] };
                    let r = Rewrite { addr, port };
                    let _ = q.translate(&mut f, Some(&r), Some(&r));
                }
            }
        }
    }
}
