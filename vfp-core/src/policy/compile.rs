//! One rule's TOML (`RawRule`) -> compiled [`Rule`], with every check on
//! its conditions, action parameters and modifiers.
//!
//! Errors point at the offending value (`toml::Spanned`) and name the
//! field under the rule's path; see `error.rs` for the format.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::sync::Arc;

use crate::decision::{EncapSpec, SnatSpec};
use crate::flow::key::{proto, v4_mapped};
use crate::topology::{vport_index, VportInfo};

use super::error::{PolicyError, Source};
use super::prefix::{PortRange, Prefix};
use super::raw::{PortItem, ProtoItem, RawRule, S};
use super::rule::{Backend, Match, Modifiers, Rule, TcpFlags, Verb, DIR_IN, DIR_OUT};

const SCTP: u8 = 132;
/// VXLAN network identifiers are 24 bits.
pub const MAX_VNI: i64 = (1 << 24) - 1;

/// Error helper bound to one rule: `e(span, "src", msg)` reports field
/// `<rule path>.src`.
struct Ctx<'a> {
    src: &'a Source<'a>,
    path: &'a str,
}

impl Ctx<'_> {
    fn e(&self, span: Range<usize>, field: &str, msg: impl Into<String>) -> PolicyError {
        self.src.err(span, &format!("{}.{field}", self.path), msg)
    }
}

pub(crate) fn compile_rule(
    src: &Source,
    path: &str,
    r: &RawRule,
    group: u16,
    vports: &[VportInfo],
) -> Result<Rule, PolicyError> {
    let cx = Ctx { src, path };
    let action = r.action.get_ref().as_str();
    let act_span = r.action.span();

    let dirs = match r.direction.as_ref().map(|d| (d.get_ref().as_str(), d.span())) {
        None | Some(("both", _)) => DIR_OUT | DIR_IN,
        Some(("out", _)) => DIR_OUT,
        Some(("in", _)) => DIR_IN,
        Some((other, span)) => {
            return Err(cx.e(
                span,
                "direction",
                format!("unknown direction {other:?} (out, in or both)"),
            ))
        }
    };

    let matcher = compile_match(&cx, r, vports)?;
    let (verb, mut mods) = compile_verb(&cx, r, action, act_span.clone())?;
    let lets_through = !matches!(verb, Verb::Deny | Verb::Count);

    // Modifiers.
    if let Some(v) = &r.route {
        mods.route = Some(vport(&cx, v, "route", vports)?);
    } else if action == "route" {
        return Err(cx.e(act_span.clone(), "route", "action `route` needs `route = \"VPORT\"`"));
    }
    if let Some(m) = &r.set_mac {
        let m2 = m.get_ref();
        if m2.src.is_none() && m2.dst.is_none() {
            return Err(cx.e(m.span(), "set_mac", "set_mac needs `src` and/or `dst`"));
        }
        if let Some(s) = &m2.src {
            mods.set_src_mac = Some(mac(&cx, s, "set_mac.src")?);
        }
        if let Some(d) = &m2.dst {
            mods.set_dst_mac = Some(mac(&cx, d, "set_mac.dst")?);
        }
    } else if action == "set_mac" {
        return Err(cx.e(
            act_span.clone(),
            "set_mac",
            "action `set_mac` needs `set_mac = { src = .., dst = .. }`",
        ));
    }
    if let Some(d) = &r.dec_ttl {
        if !*d.get_ref() && action == "dec_ttl" {
            return Err(cx.e(d.span(), "dec_ttl", "action `dec_ttl` with `dec_ttl = false`"));
        }
        mods.dec_ttl |= *d.get_ref();
    }
    if !lets_through {
        let given = [
            ("route", r.route.as_ref().map(|v| v.span())),
            ("set_mac", r.set_mac.as_ref().map(|v| v.span())),
            ("dec_ttl", r.dec_ttl.as_ref().map(|v| v.span())),
        ];
        if let Some((f, Some(span))) = given.into_iter().find(|(_, s)| s.is_some()) {
            return Err(cx.e(span, f, format!("modifier `{f}` cannot be used with action `{action}`")));
        }
    }

    let terminating = match (&verb, r.terminating.as_ref()) {
        (Verb::Count, Some(t)) if *t.get_ref() => {
            return Err(cx.e(t.span(), "terminating", "`count` is never terminating"))
        }
        (Verb::Deny, Some(t)) if !*t.get_ref() => {
            return Err(cx.e(t.span(), "terminating", "`deny` is always terminating"))
        }
        (Verb::Count, _) => false,
        (_, Some(t)) => *t.get_ref(),
        (_, None) => true,
    };

    Ok(Rule {
        id: *r.id.get_ref(),
        priority: *r.priority.get_ref(),
        group,
        dirs,
        terminating,
        matcher,
        verb,
        mods,
    })
}

fn compile_match(cx: &Ctx, r: &RawRule, vports: &[VportInfo]) -> Result<Match, PolicyError> {
    let mut m = Match::default();
    if let Some(list) = &r.vports {
        let mut v = Vec::with_capacity(list.len());
        for name in list {
            let i = vport(cx, name, "vports", vports)?;
            if v.contains(&i) {
                return Err(cx.e(name.span(), "vports", format!("duplicate vport {:?}", name.get_ref())));
            }
            v.push(i);
        }
        m.vports = v.into();
    }
    m.src = prefixes(cx, r.src.as_deref(), "src")?;
    m.dst = prefixes(cx, r.dst.as_deref(), "dst")?;
    if let Some(p) = &r.proto {
        m.proto = Some(match p.get_ref() {
            ProtoItem::Num(n) => u8::try_from(*n)
                .map_err(|_| cx.e(p.span(), "proto", format!("protocol number {n} out of range 0..=255")))?,
            ProtoItem::Name(s) => match s.to_ascii_lowercase().as_str() {
                "tcp" => proto::TCP,
                "udp" => proto::UDP,
                "icmp" => proto::ICMP,
                "icmpv6" => proto::ICMPV6,
                "sctp" => SCTP,
                _ => {
                    return Err(cx.e(
                        p.span(),
                        "proto",
                        format!("unknown proto {s:?} (tcp, udp, icmp, icmpv6, sctp or a number)"),
                    ))
                }
            },
        });
    }
    let has_ports = matches!(m.proto, Some(proto::TCP | proto::UDP | SCTP));
    for (field, list, slot) in [
        ("src_ports", &r.src_ports, &mut m.src_ports),
        ("dst_ports", &r.dst_ports, &mut m.dst_ports),
    ] {
        let Some(list) = list else { continue };
        if !has_ports {
            let span = list.first().map_or(0..0, |p| p.span());
            return Err(cx.e(span, field, format!("{field} needs proto tcp, udp or sctp")));
        }
        let mut v: Vec<PortRange> = Vec::with_capacity(list.len());
        for item in list {
            let pr = port_range(cx, item, field)?;
            if let Some(o) = v.iter().find(|o| o.overlaps(&pr)) {
                return Err(cx.e(
                    item.span(),
                    field,
                    format!("port range {pr} overlaps {o} listed earlier"),
                ));
            }
            v.push(pr);
        }
        *slot = v.into();
    }
    if let Some(v) = &r.vni {
        m.vni = Some(vni(cx, v, "vni")?);
    }
    if let Some(f) = &r.tcp_flags {
        if m.proto != Some(proto::TCP) {
            return Err(cx.e(f.span(), "tcp_flags", "tcp_flags needs proto = \"tcp\""));
        }
        m.tcp_flags = Some(TcpFlags::parse(f.get_ref()).map_err(|e| cx.e(f.span(), "tcp_flags", e))?);
    }
    Ok(m)
}

fn compile_verb(cx: &Ctx, r: &RawRule, action: &str, span: Range<usize>) -> Result<(Verb, Modifiers), PolicyError> {
    // A parameter table is only meaningful with its own action.
    let params = [
        ("snat", r.snat.as_ref().map(|s| s.span())),
        ("dnat", r.dnat.as_ref().map(|s| s.span())),
        ("encap", r.encap.as_ref().map(|s| s.span())),
    ];
    for (name, given) in params {
        if let Some(s) = given {
            if name != action {
                return Err(cx.e(
                    s,
                    name,
                    format!("`{name}` parameters given but the action is `{action}`"),
                ));
            }
        }
    }
    let missing = |what: &str, example: &str| cx.e(span.clone(), what, format!("action `{what}` needs {example}"));
    let mut mods = Modifiers::default();
    let verb = match action {
        "allow" | "route" | "set_mac" => Verb::Allow,
        "dec_ttl" => {
            mods.dec_ttl = true;
            Verb::Allow
        }
        "deny" => Verb::Deny,
        "count" => Verb::Count,
        "decap" => Verb::Decap,
        "snat" => {
            let s = r
                .snat
                .as_ref()
                .ok_or_else(|| missing("snat", "snat = { addrs = [\"A.B.C.D\"], ports = \"LO-HI\" }"))?;
            let sn = s.get_ref();
            if sn.addrs.is_empty() {
                return Err(cx.e(s.span(), "snat.addrs", "SNAT pool is empty: no addrs"));
            }
            let mut addrs = Vec::with_capacity(sn.addrs.len());
            for a in &sn.addrs {
                let ip = ipv4(cx, a, "snat.addrs")?;
                if addrs.contains(&ip) {
                    return Err(cx.e(
                        a.span(),
                        "snat.addrs",
                        format!("duplicate SNAT address {}", a.get_ref()),
                    ));
                }
                addrs.push(ip);
            }
            let pr = port_range(cx, &sn.ports, "snat.ports")?;
            if pr.lo == 0 {
                return Err(cx.e(
                    sn.ports.span(),
                    "snat.ports",
                    format!("SNAT pool {pr} includes port 0 (use 1..=65535)"),
                ));
            }
            Verb::Snat(Arc::new(SnatSpec {
                addrs,
                port_lo: pr.lo,
                port_hi: pr.hi,
            }))
        }
        "dnat" => {
            let d = r
                .dnat
                .as_ref()
                .ok_or_else(|| missing("dnat", "dnat = { backends = [\"A.B.C.D:PORT\", ...] }"))?;
            if d.get_ref().backends.is_empty() {
                return Err(cx.e(d.span(), "dnat.backends", "DNAT needs at least one backend"));
            }
            let b: Result<Vec<_>, _> = d.get_ref().backends.iter().map(|b| backend(cx, b)).collect();
            Verb::Dnat(b?.into())
        }
        "encap" => {
            let e = r.encap.as_ref().ok_or_else(|| {
                missing(
                    "encap",
                    "encap = { vni = N, outer_src_ip = .., outer_dst_ip = .., outer_src_mac = .., outer_dst_mac = .. }",
                )
            })?;
            let e = e.get_ref();
            let outer_src_mac = mac(cx, &e.outer_src_mac, "encap.outer_src_mac")?;
            if outer_src_mac[0] & 1 != 0 {
                return Err(cx.e(
                    e.outer_src_mac.span(),
                    "encap.outer_src_mac",
                    format!("source MAC {} is multicast", e.outer_src_mac.get_ref()),
                ));
            }
            Verb::Encap(EncapSpec {
                vni: vni(cx, &e.vni, "encap.vni")?,
                outer_src_ip: ipv4(cx, &e.outer_src_ip, "encap.outer_src_ip")?,
                outer_dst_ip: ipv4(cx, &e.outer_dst_ip, "encap.outer_dst_ip")?,
                outer_src_mac,
                outer_dst_mac: mac(cx, &e.outer_dst_mac, "encap.outer_dst_mac")?,
            })
        }
        other => {
            return Err(cx.e(
                span,
                "action",
                format!(
                    "unknown action {other:?} (allow, deny, count, snat, dnat, encap, decap, route, set_mac, dec_ttl)"
                ),
            ))
        }
    };
    Ok((verb, mods))
}

fn vport(cx: &Ctx, name: &S<String>, field: &str, vports: &[VportInfo]) -> Result<u16, PolicyError> {
    vport_index(vports, name.get_ref()).ok_or_else(|| {
        let known: Vec<&str> = vports.iter().map(|v| v.name.as_str()).collect();
        cx.e(
            name.span(),
            field,
            format!("unknown vport {:?} (known: {})", name.get_ref(), known.join(", ")),
        )
    })
}

fn prefixes(cx: &Ctx, list: Option<&[S<String>]>, field: &str) -> Result<Box<[Prefix]>, PolicyError> {
    let Some(list) = list else {
        return Ok(Box::new([]));
    };
    let mut v: Vec<Prefix> = Vec::with_capacity(list.len());
    for s in list {
        let p = Prefix::parse(s.get_ref().trim()).map_err(|e| cx.e(s.span(), field, e))?;
        if let Some(o) = v.iter().find(|o| o.covers(&p) || p.covers(o)) {
            let what = if *o == p { "duplicate prefix" } else { "prefix" };
            let tail = if *o == p {
                String::new()
            } else {
                format!(" overlaps {o} listed earlier")
            };
            return Err(cx.e(s.span(), field, format!("{what} {p}{tail}")));
        }
        v.push(p);
    }
    Ok(v.into())
}

fn port_range(cx: &Ctx, item: &S<PortItem>, field: &str) -> Result<PortRange, PolicyError> {
    match item.get_ref() {
        PortItem::Num(n) => PortRange::from_int(*n),
        PortItem::Text(s) => PortRange::parse(s),
    }
    .map_err(|e| cx.e(item.span(), field, e))
}

fn vni(cx: &Ctx, v: &S<i64>, field: &str) -> Result<u32, PolicyError> {
    match *v.get_ref() {
        n @ 0..=MAX_VNI => Ok(n as u32),
        n => Err(cx.e(v.span(), field, format!("VNI {n} out of range 0..={MAX_VNI}"))),
    }
}

fn ipv4(cx: &Ctx, s: &S<String>, field: &str) -> Result<[u8; 4], PolicyError> {
    s.get_ref()
        .trim()
        .parse::<Ipv4Addr>()
        .map(|a| a.octets())
        .map_err(|_| cx.e(s.span(), field, format!("invalid IPv4 address {:?}", s.get_ref())))
}

fn mac(cx: &Ctx, s: &S<String>, field: &str) -> Result<[u8; 6], PolicyError> {
    parse_mac(s.get_ref()).ok_or_else(|| cx.e(s.span(), field, format!("invalid MAC address {:?}", s.get_ref())))
}

/// `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `A.B.C.D:PORT`, `A.B.C.D`, `[V6]:PORT` or `V6` (no port: keep it).
fn backend(cx: &Ctx, s: &S<String>) -> Result<Backend, PolicyError> {
    let t = s.get_ref().trim();
    let bad = || {
        cx.e(
            s.span(),
            "dnat.backends",
            format!("invalid backend {t:?} (ADDR or ADDR:PORT)"),
        )
    };
    let (ip, port) = if let Ok(sa) = t.parse::<std::net::SocketAddr>() {
        (sa.ip(), sa.port())
    } else {
        (t.parse::<IpAddr>().map_err(|_| bad())?, 0)
    };
    let addr = match ip {
        IpAddr::V4(a) => v4_mapped(a.octets()),
        IpAddr::V6(a) => a.octets(),
    };
    Ok(Backend { addr, port })
}

#[cfg(test)]
mod tests {
    use super::parse_mac;

    #[test]
    fn macs_parse_both_separators() {
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02-00-00-00-00-FF"), Some([2, 0, 0, 0, 0, 255]));
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "2:0:0:0:0:0",
            "zz:00:00:00:00:00",
            "",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
