//! A header transposition: everything one direction of a flow pair does
//! to each packet, compiled once when the pair is created and applied in
//! place on every packet of that direction.
//!
//! Steps, in order: check the VXLAN VNI (when decapsulating), rewrite the
//! source and/or destination address and port of the key (tenant) frame
//! with RFC 1624 incremental updates of the IPv4 header checksum and the
//! L4 checksum (pseudo-header included; a UDP checksum of 0 stays 0),
//! decrement the TTL / hop limit, set the key frame's MACs, pop the outer
//! headers, push new VXLAN headers. Each step works on offsets the parser
//! already validated, yet every access is bounds-checked again so a
//! `Parsed` that does not match the frame can only produce a drop, never a
//! panic. A drop may leave the frame half rewritten; it is freed anyway.
//!
//! ICMP echo: the flow key carries the identifier as the source "port" of
//! requests and the destination "port" of replies, so both port rewrites
//! land on the identifier field (other ICMP types keep theirs).

use crate::action::encap::{fmt_v4, Encap, OuterChecksum};
use crate::action::icmp_error::Quote;
use crate::flow::key::{as_v4, proto, FlowKey};
use crate::frame::Frame;
use crate::parse::{common, Fragment, Outer, Parsed, L3};
use crate::shard::DropReason;
use crate::wire::checksum;

/// A new address (v4-mapped for IPv4) and optionally a new port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite {
    pub addr: [u8; 16],
    pub port: Option<u16>,
}

/// What the app must still do for the checksums of a transposed frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChecksumPlan {
    /// A VXLAN header was pushed with its outer IPv4 checksum left at 0
    /// for the NIC (outer L2 length 14, outer L3 length 20).
    pub outer_ipv4_offloaded: bool,
}

/// The checksum changes of an IPv4 TCP/UDP address and port rewrite,
/// worked out when the pair is compiled. Every packet of the side carries
/// exactly its key's addresses and ports (that is how it matched), so the
/// change each checksum undergoes is the same for all of them: per packet
/// the rewrite is a few stores and two ones'-complement additions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deltas {
    /// Added to the IPv4 header checksum (the addresses).
    pub ip: u16,
    /// Added to the L4 checksum (pseudo-header addresses and the ports).
    pub l4: u16,
    /// UDP (checksum at 6, "none" kept) rather than TCP (at 16).
    pub udp: bool,
}

impl Deltas {
    /// The L4 checksum `c` after the rewrite (a UDP "none" stays 0).
    #[inline(always)]
    fn apply_l4(&self, c: u16) -> u16 {
        if self.udp {
            checksum::udp_apply_delta(c, self.l4)
        } else {
            checksum::apply_delta(c, self.l4)
        }
    }
}

/// One direction of a flow pair, compiled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transposition {
    /// Pop the outer headers; the frame must carry this VNI.
    pub decap: Option<u32>,
    pub src: Option<Rewrite>,
    pub dst: Option<Rewrite>,
    /// Precomputed checksum changes of `src`/`dst` for IPv4 TCP/UDP
    /// ([`Transposition::with_deltas`]); other packets take the general
    /// rewrite.
    pub deltas: Option<Deltas>,
    pub dec_ttl: bool,
    /// MACs of the key frame (the tenant frame, before any encap).
    pub src_mac: Option<[u8; 6]>,
    pub dst_mac: Option<[u8; 6]>,
    pub encap: Option<Encap>,
    /// Vport the packet leaves by.
    pub out_vport: u16,
}

impl Transposition {
    /// Applies the transposition, computing every checksum in software.
    #[inline]
    pub fn apply(&self, frame: &mut Frame, parsed: &Parsed) -> Result<(), DropReason> {
        self.apply_with(frame, parsed, OuterChecksum::Software).map(|_| ())
    }

    /// Applies the transposition; `outer` says whether the outer IPv4
    /// checksum of a pushed VXLAN header is left to the NIC.
    #[inline(always)]
    pub fn apply_with(
        &self,
        frame: &mut Frame,
        parsed: &Parsed,
        outer: OuterChecksum,
    ) -> Result<ChecksumPlan, DropReason> {
        match self.common_frame(frame, parsed) {
            Some(Ok(())) => {}
            Some(Err(r)) => return Err(r),
            None => self.transpose_key_frame(frame, parsed, false)?,
        }
        self.push(frame, outer)
    }

    /// Applies the transposition to an ICMP error of this side's flow
    /// (see [`crate::action::icmp_error`]): the address and port rewrites
    /// go to the error and, mirrored, to the packet it quotes; every other
    /// step as for any packet of the side.
    pub fn apply_to_error(
        &self,
        frame: &mut Frame,
        parsed: &Parsed,
        quote: &Quote,
        outer: OuterChecksum,
    ) -> Result<ChecksumPlan, DropReason> {
        quote.translate(frame.data_mut(), self.src.as_ref(), self.dst.as_ref())?;
        let rest = Transposition {
            src: None,
            dst: None,
            deltas: None,
            ..*self
        };
        let touched = self.src.is_some() || self.dst.is_some();
        rest.transpose_key_frame(frame, parsed, touched)?;
        self.push(frame, outer)
    }

    /// Pushes the VXLAN headers, if the side encapsulates.
    #[inline(always)]
    fn push(&self, frame: &mut Frame, outer: OuterChecksum) -> Result<ChecksumPlan, DropReason> {
        let mut plan = ChecksumPlan::default();
        if let Some(e) = &self.encap {
            e.push(frame, outer).map_err(|_| DropReason::NoHeadroom)?;
            plan.outer_ipv4_offloaded = outer == OuterChecksum::Offload;
        }
        Ok(plan)
    }

    /// The rewrites of the key frame (everything but a pushed header), on
    /// any frame the parser described; `touched`: the frame was changed
    /// already.
    #[inline(never)]
    fn transpose_key_frame(&self, frame: &mut Frame, parsed: &Parsed, touched: bool) -> Result<(), DropReason> {
        if let Some(vni) = self.decap {
            match parsed.outer {
                Some(o) if o.vni == vni => {}
                _ => return Err(DropReason::BadEncap),
            }
        }
        let data = frame.data_mut();
        let mut touched = touched;
        if self.dec_ttl {
            dec_ttl(data, parsed)?;
            touched = true;
        }
        if self.src.is_some() || self.dst.is_some() {
            match &self.deltas {
                Some(d) if parsed.l3 == L3::Ipv4 && parsed.fragment != Fragment::Later => {
                    rewrite_v4(data, parsed, self.src.as_ref(), self.dst.as_ref(), d)?
                }
                _ => rewrite(data, parsed, self.src.as_ref(), self.dst.as_ref())?,
            }
            touched = true;
        }
        if self.src_mac.is_some() || self.dst_mac.is_some() {
            let e = usize::from(parsed.eth_off);
            let eth = data.get_mut(e..e + 12).ok_or(DropReason::ParseTruncated)?;
            if let Some(m) = self.dst_mac {
                eth[0..6].copy_from_slice(&m);
            }
            if let Some(m) = self.src_mac {
                eth[6..12].copy_from_slice(&m);
            }
            touched = true;
        }
        match (parsed.outer, self.decap) {
            (Some(_), Some(_)) => frame
                .adj(usize::from(parsed.eth_off))
                .map_err(|_| DropReason::BadEncap)?,
            // A VXLAN frame passing through with its inner headers changed:
            // its outer UDP checksum (if any) no longer matches. Zero is
            // always valid for VXLAN over IPv4; over IPv6 a receiver may
            // refuse it (RFC 6935), so the checksum is computed again.
            (Some(o), None) if touched && !o.is_ipv6 => {
                let at = usize::from(o.udp_off) + 6;
                if let Some(c) = data_at(frame.data_mut(), at) {
                    c.copy_from_slice(&[0, 0]);
                }
            }
            (Some(o), None) if touched => outer_udp6_checksum(frame.data_mut(), &o)?,
            _ => {}
        }
        Ok(())
    }

    /// [`Transposition::transpose_key_frame`] for the common frame, at
    /// fixed offsets: an IPv4 TCP/UDP rewrite with precomputed deltas
    /// ([`Transposition::with_deltas`]) of a plain frame (no VXLAN to
    /// pop or pass through, untagged Ethernet, IPv4 without options, an
    /// L4 header). The headers are one fixed-size array, so no step
    /// checks a bound or an offset again. The same stores in the same
    /// order as the general path, hence the same bytes (a property test
    /// compares the two). None when the frame or the transposition is not
    /// of that kind.
    #[inline(always)]
    fn common_frame(&self, frame: &mut Frame, p: &Parsed) -> Option<Result<(), DropReason>> {
        let plain = p.outer.is_none()
            && p.l3 == L3::Ipv4
            && usize::from(p.l3_off) == common::IP
            && usize::from(p.l4_off) == common::L4
            && p.fragment != Fragment::Later;
        if !plain {
            return None;
        }
        self.rewrite_common(frame)
    }

    /// Applies the transposition to a frame the parser found common
    /// ([`crate::parse::common_frame`]) and that carries this side's key:
    /// [`Transposition::apply_with`] without a descriptor. None, the frame
    /// untouched, when the transposition is not one the fixed-offset
    /// rewrite does: one with precomputed checksum deltas
    /// ([`Transposition::with_deltas`]) and nothing to decapsulate.
    #[inline(always)]
    pub fn apply_common(&self, frame: &mut Frame, outer: OuterChecksum) -> Option<Result<ChecksumPlan, DropReason>> {
        Some(match self.rewrite_common(frame)? {
            Ok(()) => self.push(frame, outer),
            Err(r) => Err(r),
        })
    }

    /// The fixed-offset rewrite of [`Transposition::common_frame`], once
    /// the frame is known to be common.
    #[inline(always)]
    fn rewrite_common(&self, frame: &mut Frame) -> Option<Result<(), DropReason>> {
        let d = self.deltas.as_ref()?;
        if self.decap.is_some() {
            return None;
        }
        let data = frame.data_mut();
        // The L4 checksum sits 6 bytes into UDP, 16 into TCP.
        if d.udp {
            let h: &mut [u8; common::UDP_END] = data.get_mut(..common::UDP_END)?.try_into().ok()?;
            Some(self.rewrite_fixed::<{ common::UDP_END }, { common::L4 + 6 }>(h, d))
        } else {
            let h: &mut [u8; common::TCP_END] = data.get_mut(..common::TCP_END)?.try_into().ok()?;
            Some(self.rewrite_fixed::<{ common::TCP_END }, { common::L4 + 16 }>(h, d))
        }
    }

    /// The steps of [`Transposition::transpose_key_frame`] on the headers
    /// of a common frame (`N` bytes, the L4 checksum at `CSUM`).
    #[inline(always)]
    fn rewrite_fixed<const N: usize, const CSUM: usize>(&self, h: &mut [u8; N], d: &Deltas) -> Result<(), DropReason> {
        use common::{IP, L4};
        if self.dec_ttl {
            let ttl = h[IP + 8];
            if ttl <= 1 {
                return Err(DropReason::TtlExpired);
            }
            let old = get16(h, IP + 8);
            h[IP + 8] = ttl - 1;
            let c = checksum::update16(get16(h, IP + 10), old, get16(h, IP + 8));
            put16(h, IP + 10, c);
        }
        if let Some(r) = &self.src {
            h[IP + 12..IP + 16].copy_from_slice(&r.addr[12..]);
        }
        if let Some(r) = &self.dst {
            h[IP + 16..IP + 20].copy_from_slice(&r.addr[12..]);
        }
        let c = checksum::apply_delta(get16(h, IP + 10), d.ip);
        put16(h, IP + 10, c);
        if let Some(port) = self.src.and_then(|r| r.port) {
            put16(h, L4, port);
        }
        if let Some(port) = self.dst.and_then(|r| r.port) {
            put16(h, L4 + 2, port);
        }
        let c = d.apply_l4(get16(h, CSUM));
        put16(h, CSUM, c);
        if let Some(m) = self.dst_mac {
            h[0..6].copy_from_slice(&m);
        }
        if let Some(m) = self.src_mac {
            h[6..12].copy_from_slice(&m);
        }
        Ok(())
    }

    /// Precomputes the checksum changes of the address/port rewrite for
    /// packets carrying `key` (the side's key), when they are IPv4 TCP or
    /// UDP; otherwise returns the transposition unchanged.
    pub fn with_deltas(mut self, key: &FlowKey) -> Transposition {
        let (Some(src), Some(dst)) = (as_v4(&key.src), as_v4(&key.dst)) else {
            return self;
        };
        let udp = match key.proto {
            proto::UDP => true,
            proto::TCP => false,
            _ => return self,
        };
        if self.src.is_none() && self.dst.is_none() {
            return self;
        }
        let (mut ip, mut l4) = (0u16, 0u16);
        for (r, old_addr, old_port) in [(&self.src, src, key.src_port), (&self.dst, dst, key.dst_port)] {
            let Some(r) = r else { continue };
            let Some(new_addr) = as_v4(&r.addr) else {
                return self;
            };
            let a = checksum::delta(&old_addr, &new_addr);
            ip = checksum::add(ip, a);
            l4 = checksum::add(l4, a);
            if let Some(p) = r.port {
                l4 = checksum::add(l4, checksum::delta(&old_port.to_be_bytes(), &p.to_be_bytes()));
            }
        }
        self.deltas = Some(Deltas { ip, l4, udp });
        self
    }

    /// One line for the operator, e.g.
    /// `decap vni 7, snat 192.0.2.1:40000, dec-ttl, -> vport 1`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(v) = self.decap {
            parts.push(format!("decap vni {v}"));
        }
        if let Some(r) = &self.src {
            parts.push(format!("src {}", fmt_rewrite(r)));
        }
        if let Some(r) = &self.dst {
            parts.push(format!("dst {}", fmt_rewrite(r)));
        }
        if self.dec_ttl {
            parts.push("dec-ttl".into());
        }
        if let Some(m) = self.src_mac {
            parts.push(format!("src-mac {}", fmt_mac(m)));
        }
        if let Some(m) = self.dst_mac {
            parts.push(format!("dst-mac {}", fmt_mac(m)));
        }
        if let Some(e) = &self.encap {
            parts.push(e.describe());
        }
        parts.push(format!("-> vport {}", self.out_vport));
        parts.join(", ")
    }
}

/// Computes the UDP checksum of an IPv6 outer header again (one the
/// sender left zero stays zero).
#[cold]
fn outer_udp6_checksum(data: &mut [u8], o: &Outer) -> Result<(), DropReason> {
    let (l3, udp) = (usize::from(o.l3_off), usize::from(o.udp_off));
    let len = usize::from(get16(data.get(udp..udp + 8).ok_or(DropReason::ParseTruncated)?, 4));
    let addr = |at: usize| -> Result<[u8; 16], DropReason> {
        data.get(at..at + 16)
            .and_then(|a| a.try_into().ok())
            .ok_or(DropReason::ParseTruncated)
    };
    let pseudo = checksum::pseudo_v6(&addr(l3 + 8)?, &addr(l3 + 24)?, 17, len as u32);
    let seg = data.get_mut(udp..udp + len).ok_or(DropReason::ParseTruncated)?;
    if seg.len() < 8 || seg[6..8] == [0, 0] {
        return Ok(());
    }
    seg[6..8].copy_from_slice(&[0, 0]);
    let c = checksum::udp_finish(checksum::l4_checksum(pseudo, seg));
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[inline]
fn data_at(data: &mut [u8], at: usize) -> Option<&mut [u8]> {
    data.get_mut(at..at + 2)
}

#[inline]
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Decrements the TTL / hop limit; a packet that would leave with 0 is
/// dropped.
#[inline]
fn dec_ttl(data: &mut [u8], p: &Parsed) -> Result<(), DropReason> {
    let l3 = usize::from(p.l3_off);
    match p.l3 {
        L3::Ipv4 => {
            let ip = data.get_mut(l3..l3 + 20).ok_or(DropReason::ParseTruncated)?;
            let ttl = ip[8];
            if ttl <= 1 {
                return Err(DropReason::TtlExpired);
            }
            let old = get16(ip, 8);
            ip[8] = ttl - 1;
            let c = checksum::update16(get16(ip, 10), old, get16(ip, 8));
            put16(ip, 10, c);
        }
        L3::Ipv6 => {
            let ip = data.get_mut(l3..l3 + 40).ok_or(DropReason::ParseTruncated)?;
            if ip[7] <= 1 {
                return Err(DropReason::TtlExpired);
            }
            ip[7] -= 1;
        }
        L3::Arp | L3::Other => {}
    }
    Ok(())
}

/// Where the L4 checksum and the ports live, by protocol.
struct L4Layout {
    /// Offset of the checksum inside the L4 header.
    csum: usize,
    /// Bytes of L4 header the rewrite touches.
    need: usize,
    /// Whether the checksum covers the pseudo-header (addresses).
    pseudo: bool,
    udp: bool,
    /// Offsets of the source and destination "ports" (ICMP echo: both
    /// are the identifier), or None when this packet has none.
    ports: Option<(usize, usize)>,
}

fn l4_layout(data: &[u8], p: &Parsed) -> Option<L4Layout> {
    let l4 = usize::from(p.l4_off);
    let echo = |req: u8, rep: u8| data.get(l4).is_some_and(|t| *t == req || *t == rep).then_some((4, 4));
    match p.key.proto {
        proto::TCP => Some(L4Layout {
            csum: 16,
            need: 18,
            pseudo: true,
            udp: false,
            ports: Some((0, 2)),
        }),
        proto::UDP => Some(L4Layout {
            csum: 6,
            need: 8,
            pseudo: true,
            udp: true,
            ports: Some((0, 2)),
        }),
        proto::ICMP => Some(L4Layout {
            csum: 2,
            need: 8,
            pseudo: false,
            udp: false,
            ports: echo(8, 0),
        }),
        proto::ICMPV6 => Some(L4Layout {
            csum: 2,
            need: 8,
            pseudo: true,
            udp: false,
            ports: echo(128, 129),
        }),
        _ => None,
    }
}

/// Rewrites addresses and ports of the key frame with incremental
/// checksum updates.
#[inline]
fn rewrite(data: &mut [u8], p: &Parsed, src: Option<&Rewrite>, dst: Option<&Rewrite>) -> Result<(), DropReason> {
    let l3 = usize::from(p.l3_off);
    let l4 = usize::from(p.l4_off);
    // Non-first fragments carry no L4 header to rewrite.
    let layout = match p.fragment {
        Fragment::Later => None,
        _ => l4_layout(data, p),
    };
    if let Some(l) = &layout {
        if data.len() < l4 + l.need {
            return Err(DropReason::ParseTruncated);
        }
    }
    let is_udp = layout.as_ref().is_some_and(|l| l.udp);
    let l4_update32 = |c: u16, o: [u8; 4], n: [u8; 4]| {
        if is_udp {
            checksum::udp_update32(c, o, n)
        } else {
            checksum::update32(c, o, n)
        }
    };
    for (r, addr_at, port_idx) in [(src, 12usize, 0usize), (dst, 16, 1)] {
        let Some(r) = r else { continue };
        match p.l3 {
            L3::Ipv4 => {
                let new = as_v4(&r.addr).ok_or(DropReason::NatFamily)?;
                let ip = data.get_mut(l3..l3 + 20).ok_or(DropReason::ParseTruncated)?;
                let at = addr_at;
                let old: [u8; 4] = [ip[at], ip[at + 1], ip[at + 2], ip[at + 3]];
                ip[at..at + 4].copy_from_slice(&new);
                put16(ip, 10, checksum::update32(get16(ip, 10), old, new));
                if let Some(l) = layout.as_ref().filter(|l| l.pseudo) {
                    let c = l4_update32(get16(data, l4 + l.csum), old, new);
                    put16(data, l4 + l.csum, c);
                }
            }
            L3::Ipv6 => {
                if as_v4(&r.addr).is_some() {
                    return Err(DropReason::NatFamily);
                }
                // IPv6 addresses sit at 8 (source) and 24 (destination).
                let at = l3 + 8 + 16 * port_idx;
                let ip = data.get_mut(at..at + 16).ok_or(DropReason::ParseTruncated)?;
                let mut old = [0u8; 16];
                old.copy_from_slice(ip);
                ip.copy_from_slice(&r.addr);
                if let Some(l) = layout.as_ref().filter(|l| l.pseudo) {
                    let c = get16(data, l4 + l.csum);
                    let c = if l.udp {
                        checksum::udp_update128(c, &old, &r.addr)
                    } else {
                        checksum::update128(c, &old, &r.addr)
                    };
                    put16(data, l4 + l.csum, c);
                }
            }
            L3::Arp | L3::Other => return Err(DropReason::NatFamily),
        }
        if let (Some(port), Some(l)) = (r.port, layout.as_ref()) {
            if let Some(offs) = l.ports {
                let at = l4 + if port_idx == 0 { offs.0 } else { offs.1 };
                let old = get16(data, at);
                put16(data, at, port);
                let c = get16(data, l4 + l.csum);
                let c = if l.udp {
                    checksum::udp_update16(c, old, port)
                } else {
                    checksum::update16(c, old, port)
                };
                put16(data, l4 + l.csum, c);
            }
        }
    }
    Ok(())
}

/// [`rewrite`] for an IPv4 TCP/UDP packet with precomputed checksum
/// changes: store the new addresses and ports, add the deltas.
#[inline]
fn rewrite_v4(
    data: &mut [u8],
    p: &Parsed,
    src: Option<&Rewrite>,
    dst: Option<&Rewrite>,
    d: &Deltas,
) -> Result<(), DropReason> {
    let l3 = usize::from(p.l3_off);
    let ip = data.get_mut(l3..l3 + 20).ok_or(DropReason::ParseTruncated)?;
    if let Some(r) = src {
        ip[12..16].copy_from_slice(&r.addr[12..]);
    }
    if let Some(r) = dst {
        ip[16..20].copy_from_slice(&r.addr[12..]);
    }
    put16(ip, 10, checksum::apply_delta(get16(ip, 10), d.ip));
    let l4 = usize::from(p.l4_off);
    let (csum_at, need) = if d.udp { (6, 8) } else { (16, 18) };
    let seg = data.get_mut(l4..l4 + need).ok_or(DropReason::ParseTruncated)?;
    if let Some(port) = src.and_then(|r| r.port) {
        put16(seg, 0, port);
    }
    if let Some(port) = dst.and_then(|r| r.port) {
        put16(seg, 2, port);
    }
    let c = d.apply_l4(get16(seg, csum_at));
    put16(seg, csum_at, c);
    Ok(())
}

fn fmt_rewrite(r: &Rewrite) -> String {
    let a = match as_v4(&r.addr) {
        Some(v4) => fmt_v4(v4),
        None => format!("[{}]", std::net::Ipv6Addr::from(r.addr)),
    };
    match r.port {
        Some(p) => format!("{a}:{p}"),
        None => a,
    }
}

pub(crate) fn fmt_mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

#[cfg(test)]
mod tests;
