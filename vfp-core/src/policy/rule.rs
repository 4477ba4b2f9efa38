//! A compiled rule: what it matches ([`Match`]), what it does ([`Verb`] plus
//! [`Modifiers`]) and whether it ends its layer.
//!
//! Everything here is integers, masks and boxed slices built once by the
//! loader; the engine matches a [`PacketView`] against it without touching
//! a string or allocating.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::decision::{EncapSpec, SnatSpec};
use crate::flow::key::as_v4;
use crate::topology::VportInfo;

use super::prefix::{Addr, PortRange, Prefix};

/// The packet as the rules of one layer see it: the arrival key after the
/// rewrites of the layers already traversed (see `engine`).
#[derive(Clone, Copy, Debug)]
pub struct PacketView {
    pub src: Addr,
    pub dst: Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub vni: u32,
    pub vport: u16,
    pub tcp_flags: u8,
}

/// TCP flag bits as in the TCP header's flags byte.
pub mod tcp_flag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
    pub const NAMES: [(&str, u8); 8] = [
        ("fin", FIN),
        ("syn", SYN),
        ("rst", RST),
        ("psh", PSH),
        ("ack", ACK),
        ("urg", URG),
        ("ece", ECE),
        ("cwr", CWR),
    ];
}

/// `flags & mask == want`: named flags must be set, `!`-named ones clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFlags {
    pub mask: u8,
    pub want: u8,
}

impl TcpFlags {
    /// Parses `"syn"`, `"syn !ack"`, `"fin,ack"` (separators: space, `,`, `|`).
    pub fn parse(s: &str) -> Result<TcpFlags, String> {
        let mut f = TcpFlags { mask: 0, want: 0 };
        for word in s.split([' ', ',', '|']).filter(|w| !w.is_empty()) {
            let (neg, name) = match word.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, word),
            };
            let bit = tcp_flag::NAMES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|&(_, b)| b)
                .ok_or_else(|| format!("unknown TCP flag {name:?} (fin syn rst psh ack urg ece cwr)"))?;
            if f.mask & bit != 0 {
                return Err(format!("TCP flag {name:?} given twice"));
            }
            f.mask |= bit;
            if !neg {
                f.want |= bit;
            }
        }
        if f.mask == 0 {
            return Err("empty tcp_flags".to_string());
        }
        Ok(f)
    }
}

/// Conditions of a rule; an empty list or `None` means "any".
#[derive(Clone, Debug, Default)]
pub struct Match {
    pub vports: Box<[u16]>,
    pub src: Box<[Prefix]>,
    pub dst: Box<[Prefix]>,
    pub src_ports: Box<[PortRange]>,
    pub dst_ports: Box<[PortRange]>,
    pub proto: Option<u8>,
    pub vni: Option<u32>,
    pub tcp_flags: Option<TcpFlags>,
}

impl Match {
    /// Cheap, selective tests first; prefixes last.
    #[inline]
    pub fn matches(&self, p: &PacketView) -> bool {
        if self.proto.is_some_and(|x| x != p.proto)
            || self.vni.is_some_and(|x| x != p.vni)
            || self.tcp_flags.is_some_and(|f| p.tcp_flags & f.mask != f.want)
        {
            return false;
        }
        (self.vports.is_empty() || self.vports.contains(&p.vport))
            && (self.dst_ports.is_empty() || self.dst_ports.iter().any(|r| r.contains(p.dst_port)))
            && (self.src_ports.is_empty() || self.src_ports.iter().any(|r| r.contains(p.src_port)))
            && (self.dst.is_empty() || self.dst.iter().any(|x| x.contains(p.dst)))
            && (self.src.is_empty() || self.src.iter().any(|x| x.contains(p.src)))
    }

    /// Human-readable conditions for `policy show`.
    pub fn describe(&self, vports: &[VportInfo]) -> String {
        let mut s = String::new();
        let list = |s: &mut String, name: &str, items: Vec<String>| {
            if !items.is_empty() {
                let _ = write!(s, "{}{name}={}", if s.is_empty() { "" } else { " " }, items.join(","));
            }
        };
        let vp = self
            .vports
            .iter()
            .map(|&i| {
                vports
                    .get(usize::from(i))
                    .map_or_else(|| i.to_string(), |v| v.name.clone())
            })
            .collect();
        list(&mut s, "vports", vp);
        list(&mut s, "proto", self.proto.iter().map(|p| proto_name(*p)).collect());
        list(&mut s, "src", self.src.iter().map(|p| p.to_string()).collect());
        list(
            &mut s,
            "src_ports",
            self.src_ports.iter().map(|p| p.to_string()).collect(),
        );
        list(&mut s, "dst", self.dst.iter().map(|p| p.to_string()).collect());
        list(
            &mut s,
            "dst_ports",
            self.dst_ports.iter().map(|p| p.to_string()).collect(),
        );
        list(&mut s, "vni", self.vni.iter().map(|v| v.to_string()).collect());
        if let Some(f) = self.tcp_flags {
            let names = tcp_flag::NAMES
                .iter()
                .filter(|(_, b)| f.mask & b != 0)
                .map(|(n, b)| {
                    if f.want & b != 0 {
                        n.to_string()
                    } else {
                        format!("!{n}")
                    }
                })
                .collect();
            list(&mut s, "tcp_flags", names);
        }
        if s.is_empty() {
            s.push_str("any");
        }
        s
    }
}

pub fn proto_name(p: u8) -> String {
    use crate::flow::key::proto;
    match p {
        proto::TCP => "tcp".into(),
        proto::UDP => "udp".into(),
        proto::ICMP => "icmp".into(),
        proto::ICMPV6 => "icmpv6".into(),
        n => n.to_string(),
    }
}

/// A DNAT target: v4-mapped address and port (0 keeps the original port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    pub addr: [u8; 16],
    pub port: u16,
}

/// The primary action of a rule.
#[derive(Clone, Debug)]
pub enum Verb {
    Allow,
    Deny,
    /// Record the rule in `Actions::counted`; never terminating.
    Count,
    Snat(Arc<SnatSpec>),
    /// Pick a backend by the connection's symmetric hash.
    Dnat(Box<[Backend]>),
    Encap(EncapSpec),
    Decap,
}

/// Extra rewrites a letting-through rule may carry besides its verb.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Modifiers {
    pub route: Option<u16>,
    pub set_src_mac: Option<[u8; 6]>,
    pub set_dst_mac: Option<[u8; 6]>,
    pub dec_ttl: bool,
}

/// Bits of [`Rule::dirs`].
pub const DIR_OUT: u8 = 1;
pub const DIR_IN: u8 = 2;

#[derive(Clone, Debug)]
pub struct Rule {
    pub id: u32,
    pub priority: u32,
    /// Index of the rule's group in its layer.
    pub group: u16,
    /// Directions the rule applies to (`DIR_OUT` | `DIR_IN`).
    pub dirs: u8,
    pub terminating: bool,
    pub matcher: Match,
    pub verb: Verb,
    pub mods: Modifiers,
}

pub fn fmt_mac(m: &[u8; 6]) -> String {
    let mut s = String::with_capacity(17);
    for (i, b) in m.iter().enumerate() {
        let _ = write!(s, "{}{b:02x}", if i == 0 { "" } else { ":" });
    }
    s
}

fn fmt_addr16(a: &[u8; 16]) -> String {
    match as_v4(a) {
        Some(v4) => std::net::Ipv4Addr::from(v4).to_string(),
        None => format!("[{}]", std::net::Ipv6Addr::from(*a)),
    }
}

impl Rule {
    /// Human-readable action for `policy show`, e.g.
    /// `snat addrs=203.0.113.10 ports=1024-65535; route=wan`.
    pub fn describe_action(&self, vports: &[VportInfo]) -> String {
        let ip4 = |a: [u8; 4]| std::net::Ipv4Addr::from(a).to_string();
        let mut s = match &self.verb {
            Verb::Allow => "allow".to_string(),
            Verb::Deny => "deny".to_string(),
            Verb::Count => "count".to_string(),
            Verb::Decap => "decap".to_string(),
            Verb::Snat(p) => format!(
                "snat addrs={} ports={}",
                p.addrs.iter().map(|a| ip4(*a)).collect::<Vec<_>>().join(","),
                PortRange {
                    lo: p.port_lo,
                    hi: p.port_hi
                }
            ),
            Verb::Dnat(b) => format!(
                "dnat backends={}",
                b.iter()
                    .map(|b| if b.port == 0 {
                        fmt_addr16(&b.addr)
                    } else {
                        format!("{}:{}", fmt_addr16(&b.addr), b.port)
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Verb::Encap(e) => format!(
                "encap vni={} outer_src_ip={} outer_dst_ip={} outer_src_mac={} outer_dst_mac={}",
                e.vni,
                ip4(e.outer_src_ip),
                ip4(e.outer_dst_ip),
                fmt_mac(&e.outer_src_mac),
                fmt_mac(&e.outer_dst_mac)
            ),
        };
        let m = &self.mods;
        if let Some(v) = m.route {
            let name = vports
                .get(usize::from(v))
                .map_or_else(|| v.to_string(), |v| v.name.clone());
            let _ = write!(s, "; route={name}");
        }
        if let Some(mac) = m.set_src_mac {
            let _ = write!(s, "; set_src_mac={}", fmt_mac(&mac));
        }
        if let Some(mac) = m.set_dst_mac {
            let _ = write!(s, "; set_dst_mac={}", fmt_mac(&mac));
        }
        if m.dec_ttl {
            s.push_str("; dec_ttl");
        }
        if !self.terminating && !matches!(self.verb, Verb::Count) {
            s.push_str(" (non-terminating)");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::{proto, v4_mapped, NO_VNI};

    fn view() -> PacketView {
        PacketView {
            src: Addr::from_key(&v4_mapped([10, 0, 0, 5])),
            dst: Addr::from_key(&v4_mapped([8, 8, 8, 8])),
            src_port: 40000,
            dst_port: 443,
            proto: proto::TCP,
            vni: NO_VNI,
            vport: 1,
            tcp_flags: tcp_flag::SYN,
        }
    }

    #[test]
    fn empty_match_matches_everything() {
        assert!(Match::default().matches(&view()));
        assert_eq!(Match::default().describe(&[]), "any");
    }

    #[test]
    fn each_condition_filters() {
        let p = view();
        let pfx = |s: &str| vec![Prefix::parse(s).unwrap()].into_boxed_slice();
        let ports = |lo, hi| vec![PortRange { lo, hi }].into_boxed_slice();
        let cases: Vec<(Match, bool)> = vec![
            (
                Match {
                    src: pfx("10.0.0.0/24"),
                    ..Default::default()
                },
                true,
            ),
            (
                Match {
                    src: pfx("10.0.1.0/24"),
                    ..Default::default()
                },
                false,
            ),
            (
                Match {
                    dst: pfx("8.8.8.8/32"),
                    ..Default::default()
                },
                true,
            ),
            (
                Match {
                    dst: pfx("8.8.4.0/24"),
                    ..Default::default()
                },
                false,
            ),
            (
                Match {
                    dst_ports: ports(400, 500),
                    ..Default::default()
                },
                true,
            ),
            (
                Match {
                    dst_ports: ports(80, 80),
                    ..Default::default()
                },
                false,
            ),
            (
                Match {
                    src_ports: ports(1024, 65535),
                    ..Default::default()
                },
                true,
            ),
            (
                Match {
                    src_ports: ports(1, 1023),
                    ..Default::default()
                },
                false,
            ),
            (
                Match {
                    proto: Some(proto::TCP),
                    ..Default::default()
                },
                true,
            ),
            (
                Match {
                    proto: Some(proto::UDP),
                    ..Default::default()
                },
                false,
            ),
            (
                Match {
                    vports: vec![0, 1].into(),
                    ..Default::default()
                },
                true,
            ),
            (
                Match {
                    vports: vec![0].into(),
                    ..Default::default()
                },
                false,
            ),
            (
                Match {
                    vni: Some(7),
                    ..Default::default()
                },
                false,
            ),
            (
                Match {
                    tcp_flags: Some(TcpFlags::parse("syn").unwrap()),
                    ..Default::default()
                },
                true,
            ),
            (
                Match {
                    tcp_flags: Some(TcpFlags::parse("syn,ack").unwrap()),
                    ..Default::default()
                },
                false,
            ),
        ];
        for (i, (m, want)) in cases.iter().enumerate() {
            assert_eq!(m.matches(&p), *want, "case {i}: {m:?}");
        }
        let mut vxlan = p;
        vxlan.vni = 7;
        assert!(Match {
            vni: Some(7),
            ..Default::default()
        }
        .matches(&vxlan));
    }

    #[test]
    fn tcp_flags_parse() {
        assert_eq!(TcpFlags::parse("syn").unwrap(), TcpFlags { mask: 2, want: 2 });
        assert_eq!(TcpFlags::parse("SYN !ack").unwrap(), TcpFlags { mask: 0x12, want: 2 });
        assert!(TcpFlags::parse("syn syn").is_err());
        assert!(TcpFlags::parse("bogus").is_err());
        assert!(TcpFlags::parse(" ").is_err());
    }

    #[test]
    fn macs_format_lowercase() {
        assert_eq!(fmt_mac(&[0x02, 0, 0, 0xab, 0xcd, 0xef]), "02:00:00:ab:cd:ef");
    }
}
