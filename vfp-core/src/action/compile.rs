//! Compiles an allowed [`Decision`](crate::decision::Decision) into the two
//! transpositions of a flow pair and the key its return traffic carries.
//!
//! The forward key describes the first packet as it arrived: the tenant
//! (inner) tuple, the VNI of the frame as it arrived ([`NO_VNI`] when
//! plain), the arrival vport and direction. The reverse key is what a
//! reply looks like when it arrives on the forward's egress vport, in the
//! opposite direction: the tuple as the forward packet *left* (after NAT)
//! reversed, with the VNI it left with (the encap VNI, or none after a
//! decap, or unchanged when passing through).
//!
//! The reverse transposition undoes the forward one: SNAT is undone by a
//! destination rewrite back to the original source, DNAT by a source
//! rewrite back to the original destination; an encap becomes a decap
//! (checking the VNI); a decap becomes an encap towards where the frame
//! came from (outer addresses swapped, same VNI, captured from the first
//! packet). TTL decrement applies both ways (the reply is routed by the
//! same hop). When the forward direction changed MACs or crossed an
//! overlay boundary, the reply's key frame gets the first packet's MACs
//! swapped, so it reaches the sender whatever the peer put there.

use crate::action::encap::{Encap, OuterHeaders};
use crate::action::nat::NatBinding;
use crate::action::transposition::{Rewrite, Transposition};
use crate::decision::Actions;
use crate::flow::key::{as_v4, proto, v4_mapped, FlowKey, NO_VNI};
use crate::parse::{Parsed, L3};
use crate::shard::DropReason;

/// What the pair remembers of its first packet, to compile (and after a
/// policy change recompile) its transpositions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FirstPacket {
    /// As parsed, with the key's vport and direction set.
    pub parsed: Parsed,
    /// MACs of the key frame.
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// Outer headers when the frame arrived VXLAN over IPv4.
    pub outer: Option<OuterHeaders>,
}

impl FirstPacket {
    /// Captures what compiling needs from a frame (`data` is the packet).
    pub fn capture(data: &[u8], parsed: &Parsed) -> FirstPacket {
        let mac = |at: usize| -> [u8; 6] {
            let mut m = [0u8; 6];
            if let Some(b) = data.get(at..at + 6) {
                m.copy_from_slice(b);
            }
            m
        };
        let e = usize::from(parsed.eth_off);
        let outer = parsed.outer.filter(|o| !o.is_ipv6).and_then(|o| {
            let l3 = usize::from(o.l3_off);
            let ip = data.get(l3..l3 + 20)?;
            Some(OuterHeaders {
                dst_mac: mac(0),
                src_mac: mac(6),
                src_ip: [ip[12], ip[13], ip[14], ip[15]],
                dst_ip: [ip[16], ip[17], ip[18], ip[19]],
            })
        });
        FirstPacket {
            parsed: *parsed,
            dst_mac: mac(e),
            src_mac: mac(e + 6),
            outer,
        }
    }

    #[inline]
    pub fn key(&self) -> &FlowKey {
        &self.parsed.key
    }
}

/// Whether packets of this key carry a rewritable port (ICMP echo: the
/// identifier, which the key holds as the request's source port).
fn has_ports(key: &FlowKey) -> bool {
    match key.proto {
        proto::TCP | proto::UDP => true,
        proto::ICMP | proto::ICMPV6 => key.src_port != 0 && key.dst_port == 0,
        _ => false,
    }
}

/// The tuple as the forward packet leaves: (src, src_port, dst, dst_port).
fn translated(key: &FlowKey, a: &Actions, snat: Option<([u8; 4], u16)>) -> ([u8; 16], u16, [u8; 16], u16) {
    let ports = has_ports(key);
    let (mut s, mut sp, mut d, mut dp) = (key.src, key.src_port, key.dst, key.dst_port);
    if let Some((addr, port)) = snat {
        s = v4_mapped(addr);
        if ports {
            sp = port;
        }
    }
    if let Some((addr, port)) = a.dnat {
        d = addr;
        if port != 0 && ports && matches!(key.proto, proto::TCP | proto::UDP) {
            dp = port;
        }
    }
    (s, sp, d, dp)
}

/// The key return traffic of `key` carries, given the decision and the
/// SNAT address:port chosen (if any).
pub fn reverse_key(key: &FlowKey, a: &Actions, snat: Option<([u8; 4], u16)>) -> FlowKey {
    let (s, sp, d, dp) = translated(key, a, snat);
    let vni = match (&a.encap, a.decap) {
        (Some(e), _) => e.vni,
        (None, true) => NO_VNI,
        (None, false) => key.vni,
    };
    FlowKey {
        src: d,
        dst: s,
        vni,
        src_port: dp,
        dst_port: sp,
        vport: a.out_vport,
        proto: key.proto,
        dir: key.dir.reverse(),
    }
}

/// Both transpositions of a pair and its reverse key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompiledPair {
    pub fwd: Transposition,
    pub rev: Transposition,
    pub rev_key: FlowKey,
}

/// Compiles `a` for the pair whose first packet is `first`. `snat` is the
/// port the shard claimed when `a.snat` is set.
pub fn compile_pair(first: &FirstPacket, a: &Actions, snat: Option<NatBinding>) -> Result<CompiledPair, DropReason> {
    let key = first.key();
    let v4 = key.is_ipv4() && first.parsed.l3 == L3::Ipv4;
    let snat = match (&a.snat, snat) {
        (Some(_), Some(b)) => Some((b.addr, b.port)),
        (Some(_), None) => return Err(DropReason::NatExhausted),
        (None, _) => None,
    };
    if snat.is_some() && !v4 {
        return Err(DropReason::NatFamily);
    }
    if let Some((addr, _)) = a.dnat {
        if as_v4(&addr).is_some() != v4 {
            return Err(DropReason::NatFamily);
        }
    }
    if a.decap && first.parsed.outer.is_none() {
        return Err(DropReason::BadEncap);
    }
    let ports = has_ports(key);
    let (s, sp, d, dp) = translated(key, a, snat);
    let rev_key = reverse_key(key, a, snat);

    let fwd = Transposition {
        decap: a.decap.then_some(key.vni),
        src: snat.map(|_| Rewrite {
            addr: s,
            port: ports.then_some(sp),
        }),
        dst: a.dnat.map(|_| Rewrite {
            addr: d,
            port: (dp != key.dst_port).then_some(dp),
        }),
        dec_ttl: a.dec_ttl,
        // With an encap the frame that leaves is the outer one, whose MACs
        // come from the encap spec.
        src_mac: a.set_src_mac.filter(|_| a.encap.is_none()),
        dst_mac: a.set_dst_mac.filter(|_| a.encap.is_none()),
        encap: a.encap.map(|e| Encap::new(&e, key.owner_hash())),
        out_vport: a.out_vport,
        deltas: None,
    };

    let mirror_macs = a.set_src_mac.is_some() || a.set_dst_mac.is_some() || a.encap.is_some() || a.decap;
    let rev_encap = if a.decap {
        // Only IPv4 outer headers are captured (our encap is IPv4 only).
        let o = first.outer.ok_or(DropReason::BadEncap)?;
        Some(Encap::new(&o.reply_spec(key.vni), rev_key.owner_hash()))
    } else {
        None
    };
    let rev = Transposition {
        decap: a.encap.map(|e| e.vni),
        // Undo DNAT: the reply must come from the address the client used.
        src: a.dnat.map(|_| Rewrite {
            addr: key.dst,
            port: (dp != key.dst_port).then_some(key.dst_port),
        }),
        // Undo SNAT: the reply goes back to the original source.
        dst: snat.map(|_| Rewrite {
            addr: key.src,
            port: ports.then_some(key.src_port),
        }),
        dec_ttl: a.dec_ttl,
        src_mac: mirror_macs.then_some(first.dst_mac),
        dst_mac: mirror_macs.then_some(first.src_mac),
        encap: rev_encap,
        out_vport: key.vport,
        deltas: None,
    };
    Ok(CompiledPair {
        fwd: fwd.with_deltas(key),
        rev: rev.with_deltas(&rev_key),
        rev_key,
    })
}
