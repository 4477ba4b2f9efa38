//! Property tests for `vfp_core::parse::parse`: no input makes it panic,
//! and frames assembled from random parts parse back to those parts.

mod parse_support;

use parse_support::*;
use proptest::collection::vec;
use proptest::prelude::*;
use vfp_core::flow::key::{v4_mapped, NO_VNI};
use vfp_core::parse::{parse, Fragment, L3};

#[derive(Clone, Debug)]
enum L4 {
    Tcp {
        sp: u16,
        dp: u16,
        flags: u8,
        opt_words: usize,
    },
    Udp {
        sp: u16,
        dp: u16,
    },
    Echo {
        request: bool,
        ident: u16,
    },
}

#[derive(Clone, Debug)]
enum Ip {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        opt_words: usize,
    },
    /// Extension headers as (kind, length in 8-byte units).
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        exts: Vec<(u8, usize)>,
    },
}

#[derive(Clone, Debug)]
struct Spec {
    vids: Vec<u16>,
    ip: Ip,
    ttl: u8,
    l4: L4,
    payload: Vec<u8>,
    padding: usize,
    /// VNI and whether the underlay is IPv6.
    vxlan: Option<(u32, bool)>,
}

/// Any port but VXLAN's, so only `Spec::vxlan` makes a VXLAN frame.
fn port() -> impl Strategy<Value = u16> {
    any::<u16>().prop_map(|p| if p == 4789 { 4788 } else { p })
}

fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (port(), port(), any::<u8>(), 0..=10usize).prop_map(|(sp, dp, flags, opt_words)| L4::Tcp {
            sp,
            dp,
            flags,
            opt_words
        }),
        (port(), port()).prop_map(|(sp, dp)| L4::Udp { sp, dp }),
        (any::<bool>(), any::<u16>()).prop_map(|(request, ident)| L4::Echo { request, ident }),
    ]
}

fn ip() -> impl Strategy<Value = Ip> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>(), 0..=10usize)
            .prop_map(|(src, dst, opt_words)| { Ip::V4 { src, dst, opt_words } }),
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            vec((prop_oneof![Just(0u8), Just(43u8), Just(60u8)], 1..=4usize), 0..=4)
        )
            .prop_map(|(src, dst, exts)| Ip::V6 { src, dst, exts }),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        vec(0..4096u16, 0..=2),
        ip(),
        any::<u8>(),
        l4(),
        vec(any::<u8>(), 0..40),
        0..20usize,
        proptest::option::of((0..=0x00ff_ffffu32, any::<bool>())),
    )
        .prop_map(|(vids, ip, ttl, l4, payload, padding, vxlan)| Spec {
            vids,
            ip,
            ttl,
            l4,
            payload,
            padding,
            vxlan,
        })
}

fn is_v6(s: &Spec) -> bool {
    matches!(s.ip, Ip::V6 { .. })
}

/// The tenant frame described by `s` (without padding).
fn build_inner(s: &Spec) -> Vec<u8> {
    let (proto, seg) = match s.l4 {
        L4::Tcp {
            sp,
            dp,
            flags,
            opt_words,
        } => (TCP, tcp(sp, dp, flags, opt_words, &s.payload)),
        L4::Udp { sp, dp } => (UDP, udp(sp, dp, &s.payload)),
        L4::Echo { request, ident } => {
            let (icmp_proto, t) = match (is_v6(s), request) {
                (false, true) => (ICMP, 8),
                (false, false) => (ICMP, 0),
                (true, true) => (ICMPV6, 128),
                (true, false) => (ICMPV6, 129),
            };
            (icmp_proto, icmp(t, ident, &s.payload))
        }
    };
    let tags: Vec<(u16, u16)> = s
        .vids
        .iter()
        .enumerate()
        .map(|(i, &v)| (if i == 0 && s.vids.len() == 2 { ET_QINQ } else { ET_VLAN }, v))
        .collect();
    match &s.ip {
        Ip::V4 { src, dst, opt_words } => {
            let h = V4 {
                src: *src,
                dst: *dst,
                proto,
                ttl: s.ttl,
                options: vec![1; 4 * opt_words],
                ..V4::new(proto)
            };
            eth(&tags, ET_IPV4, &h.build(&seg))
        }
        Ip::V6 { src, dst, exts } => {
            let mut rest = seg;
            let mut next = proto;
            for &(kind, units) in exts.iter().rev() {
                rest = ext(next, 8 * units, &rest);
                next = kind;
            }
            eth(&tags, ET_IPV6, &ipv6(*src, *dst, next, s.ttl, &rest))
        }
    }
}

fn build(s: &Spec) -> Vec<u8> {
    let mut f = match s.vxlan {
        None => build_inner(s),
        Some((vni, false)) => {
            let body = udp(999, 4789, &vxlan(vni, &build_inner(s)));
            eth(&[], ET_IPV4, &V4::new(UDP).build(&body))
        }
        Some((vni, true)) => {
            let body = udp(999, 4789, &vxlan(vni, &build_inner(s)));
            eth(&[], ET_IPV6, &ipv6(v6_addr(1), v6_addr(2), UDP, 9, &body))
        }
    };
    f.resize(f.len() + s.padding, 0);
    f
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in vec(any::<u8>(), 0..300)) {
        let _ = parse(&b);
    }

    /// Random bytes behind a plausible Ethernet + IP start reach deeper.
    #[test]
    fn arbitrary_ip_bodies_never_panic(
        ethertype in prop_oneof![Just(ET_IPV4), Just(ET_IPV6), Just(ET_VLAN), Just(ET_ARP)],
        first in prop_oneof![Just(0x45u8), Just(0x4f), Just(0x60), any::<u8>()],
        body in vec(any::<u8>(), 0..200),
    ) {
        let mut rest = vec![first];
        rest.extend_from_slice(&body);
        let _ = parse(&eth(&[], ethertype, &rest));
    }

    /// Valid frames with bytes flipped and the tail cut: never a panic.
    #[test]
    fn mutated_frames_never_panic(
        s in spec(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut f = build(&s);
        for (at, v) in flips {
            let i = at.index(f.len());
            f[i] = v;
        }
        let n = cut.index(f.len() + 1);
        let _ = parse(&f[..n]);
    }

    #[test]
    fn built_frames_parse_back(s in spec()) {
        let f = build(&s);
        let p = parse(&f).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;

        prop_assert_eq!(usize::from(p.vlan_count), s.vids.len());
        prop_assert_eq!(p.vlan_id, s.vids.first().copied().unwrap_or(0));
        prop_assert_eq!(p.ttl, s.ttl);
        prop_assert_eq!(p.fragment, Fragment::None);
        match &s.ip {
            Ip::V4 { src, dst, .. } => {
                prop_assert_eq!(p.l3, L3::Ipv4);
                prop_assert_eq!(p.key.src, v4_mapped(*src));
                prop_assert_eq!(p.key.dst, v4_mapped(*dst));
            }
            Ip::V6 { src, dst, .. } => {
                prop_assert_eq!(p.l3, L3::Ipv6);
                prop_assert_eq!(p.key.src, *src);
                prop_assert_eq!(p.key.dst, *dst);
            }
        }
        let (proto, ports, flags) = match s.l4 {
            L4::Tcp { sp, dp, flags, .. } => (TCP, (sp, dp), flags),
            L4::Udp { sp, dp } => (UDP, (sp, dp), 0),
            L4::Echo { request, ident } => {
                let proto = if is_v6(&s) { ICMPV6 } else { ICMP };
                (proto, if request { (ident, 0) } else { (0, ident) }, 0)
            }
        };
        prop_assert_eq!(p.key.proto, proto);
        prop_assert_eq!((p.key.src_port, p.key.dst_port), ports);
        prop_assert_eq!(p.tcp_flags, flags);

        let po = usize::from(p.payload_off);
        prop_assert_eq!(&f[po..po + s.payload.len()], &s.payload[..]);
        prop_assert!(p.eth_off < p.l3_off && p.l3_off < p.l4_off && p.l4_off < p.payload_off);

        match s.vxlan {
            None => {
                prop_assert_eq!(p.outer, None);
                prop_assert_eq!(p.key.vni, NO_VNI);
                prop_assert_eq!(p.eth_off, 0);
            }
            Some((vni, v6)) => {
                let o = p.outer.expect("VXLAN frame has an outer");
                prop_assert_eq!((o.vni, p.key.vni, o.is_ipv6), (vni, vni, v6));
                prop_assert_eq!(o.l3_off, 14);
                prop_assert_eq!(o.udp_off, if v6 { 54 } else { 34 });
                prop_assert_eq!(o.vxlan_off, o.udp_off + 8);
                prop_assert_eq!(p.eth_off, o.vxlan_off + 8);
            }
        }
    }
}
