//! One test per protocol path of `vfp_core::parse::parse`, on frames
//! built byte by byte by `parse_support` (independent of the wire views).

mod parse_support;

use parse_support::*;
use vfp_core::flow::key::{v4_mapped, FlowKey, NO_VNI};
use vfp_core::parse::{parse, Fragment, Outer, ParseError, ICMP_ERROR_PORT, L3};

fn v4(a: [u8; 4]) -> [u8; 16] {
    v4_mapped(a)
}

#[test]
fn ipv4_tcp_untagged() {
    let f = v4_tcp_frame();
    let p = parse(&f).unwrap();
    assert_eq!(p.key.src, v4([10, 0, 0, 1]));
    assert_eq!(p.key.dst, v4([10, 0, 0, 2]));
    assert_eq!((p.key.src_port, p.key.dst_port, p.key.proto), (1234, 80, TCP));
    assert_eq!(p.key.vni, NO_VNI);
    assert_eq!((p.key.vport, p.key.dir), (0, Default::default()));
    assert_eq!(p.outer, None);
    assert_eq!((p.eth_off, p.vlan_count, p.vlan_id), (0, 0, 0));
    assert_eq!((p.ethertype, p.l3), (ET_IPV4, L3::Ipv4));
    assert_eq!((p.l3_off, p.l4_off, p.payload_off), (14, 34, 54));
    assert_eq!(&f[usize::from(p.payload_off)..], b"hello");
    assert_eq!((p.fragment, p.tcp_flags, p.ttl), (Fragment::None, 0x02, 64));
}

#[test]
fn single_vlan_tag() {
    let f = eth(
        &[(ET_VLAN, 0x2000 | 100)],
        ET_IPV4,
        &V4::new(UDP).build(&udp(5000, 53, b"q")),
    );
    let p = parse(&f).unwrap();
    assert_eq!((p.vlan_count, p.vlan_id, p.ethertype), (1, 100, ET_IPV4));
    assert_eq!((p.l3_off, p.l4_off, p.payload_off), (18, 38, 46));
    assert_eq!((p.key.src_port, p.key.dst_port, p.key.proto), (5000, 53, UDP));
}

#[test]
fn qinq_both_tpids_and_too_many_tags() {
    let ip = V4::new(TCP).build(&tcp(1, 2, 0x10, 0, &[]));
    for outer_tpid in [ET_QINQ, ET_VLAN] {
        let f = eth(&[(outer_tpid, 300), (ET_VLAN, 400)], ET_IPV4, &ip);
        let p = parse(&f).unwrap();
        assert_eq!((p.vlan_count, p.vlan_id), (2, 300));
        assert_eq!((p.l3_off, p.l3), (22, L3::Ipv4));
        assert_eq!((p.key.src_port, p.key.dst_port), (1, 2));
    }
    let f = eth(&[(ET_QINQ, 1), (ET_VLAN, 2), (ET_VLAN, 3)], ET_IPV4, &ip);
    assert_eq!(parse(&f), Err(ParseError::TooDeep));
}

#[test]
fn arp_has_default_key() {
    let f = eth(&[(ET_VLAN, 9)], ET_ARP, &arp());
    let p = parse(&f).unwrap();
    assert_eq!(p.l3, L3::Arp);
    assert_eq!(p.key, FlowKey::default());
    assert_eq!((p.ethertype, p.l3_off, p.l4_off), (ET_ARP, 18, 46));
    assert_eq!(p.payload_off, p.l4_off);
    assert_eq!(parse(&f[..45]), Err(ParseError::Truncated));
}

#[test]
fn other_ethertype_is_recognised_without_key() {
    let f = eth(&[], 0x88cc, &[0u8; 30]);
    let p = parse(&f).unwrap();
    assert_eq!((p.l3, p.ethertype), (L3::Other, 0x88cc));
    assert_eq!(p.key, FlowKey::default());
    assert_eq!((p.l3_off, p.l4_off, p.payload_off), (14, 14, 14));
}

#[test]
fn ipv4_options_move_l4() {
    let ip = V4 {
        options: vec![0x94, 0x04, 0, 0, 1, 1, 1, 0],
        ttl: 3,
        ..V4::new(TCP)
    };
    let f = eth(&[], ET_IPV4, &ip.build(&tcp(7, 8, 0x01, 2, b"x")));
    let p = parse(&f).unwrap();
    assert_eq!((p.l3_off, p.l4_off, p.payload_off), (14, 42, 70));
    assert_eq!((p.key.src_port, p.key.dst_port, p.tcp_flags, p.ttl), (7, 8, 0x01, 3));
}

#[test]
fn ipv4_total_length_padding_and_truncation() {
    // Padding after the IP packet (a 60-byte minimum frame) is ignored.
    let mut f = eth(&[], ET_IPV4, &V4::new(UDP).build(&udp(1, 2, &[])));
    f.resize(60, 0xee);
    let p = parse(&f).unwrap();
    assert_eq!((p.key.src_port, p.key.dst_port, p.payload_off), (1, 2, 42));
    // A frame shorter than the total length is truncated.
    let f = v4_tcp_frame();
    assert_eq!(parse(&f[..f.len() - 1]), Err(ParseError::Truncated));
}

#[test]
fn ipv4_malformed_headers() {
    let f = v4_tcp_frame();
    let mut bad_version = f.clone();
    bad_version[14] = 0x55;
    assert_eq!(parse(&bad_version), Err(ParseError::Malformed));
    let mut short_ihl = f.clone();
    short_ihl[14] = 0x44;
    assert_eq!(parse(&short_ihl), Err(ParseError::Malformed));
    let mut total_below_header = f.clone();
    total_below_header[16..18].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(parse(&total_below_header), Err(ParseError::Malformed));
}

#[test]
fn ipv4_fragments() {
    let first = V4 {
        more_frags: true,
        ..V4::new(UDP)
    };
    // The first fragment's UDP length covers more than is here: allowed.
    let mut seg = udp(1111, 2222, &[0; 16]);
    seg[4..6].copy_from_slice(&3000u16.to_be_bytes());
    let p = parse(&eth(&[], ET_IPV4, &first.build(&seg))).unwrap();
    assert_eq!(p.fragment, Fragment::First);
    assert_eq!((p.key.src_port, p.key.dst_port, p.key.proto), (1111, 2222, UDP));
    assert_eq!((p.l4_off, p.payload_off), (34, 42));

    for more in [true, false] {
        let later = V4 {
            more_frags: more,
            frag_offset: 1480,
            ..V4::new(UDP)
        };
        let p = parse(&eth(&[], ET_IPV4, &later.build(&[0xab; 24]))).unwrap();
        assert_eq!(p.fragment, Fragment::Later);
        assert_eq!((p.key.src_port, p.key.dst_port, p.key.proto), (0, 0, UDP));
        assert_eq!((p.l4_off, p.payload_off), (34, 34));
    }

    // A first fragment too short for its TCP header.
    let tiny = V4 {
        more_frags: true,
        ..V4::new(TCP)
    };
    let f = eth(&[], ET_IPV4, &tiny.build(&[0; 8]));
    assert_eq!(parse(&f), Err(ParseError::Truncated));
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let l4 = tcp(2000, 22, 0x12, 0, b"ssh");
    let chain = ext(43, 8, &ext(60, 24, &ext(TCP, 16, &l4)));
    let f = eth(&[], ET_IPV6, &ipv6(v6_addr(1), v6_addr(2), 0, 9, &chain));
    let p = parse(&f).unwrap();
    assert_eq!(p.l3, L3::Ipv6);
    assert_eq!((p.key.src, p.key.dst), (v6_addr(1), v6_addr(2)));
    assert_eq!((p.key.src_port, p.key.dst_port, p.key.proto), (2000, 22, TCP));
    assert_eq!(
        (p.l3_off, p.l4_off, p.payload_off),
        (14, 14 + 40 + 48, 14 + 40 + 48 + 20)
    );
    assert_eq!((p.ttl, p.tcp_flags, p.fragment), (9, 0x12, Fragment::None));
}

#[test]
fn ipv6_too_many_extension_headers() {
    let mut chain = udp(1, 2, &[]);
    let mut next = UDP;
    for _ in 0..9 {
        chain = ext(next, 8, &chain);
        next = 60;
    }
    let f = eth(&[], ET_IPV6, &ipv6(v6_addr(1), v6_addr(2), next, 1, &chain));
    assert_eq!(parse(&f), Err(ParseError::TooDeep));
}

#[test]
fn ipv6_fragments() {
    let l4 = udp(53, 5353, b"abcd");
    let first = ipv6(v6_addr(1), v6_addr(2), 44, 64, &frag6(UDP, 0, true, &l4));
    let p = parse(&eth(&[], ET_IPV6, &first)).unwrap();
    assert_eq!(p.fragment, Fragment::First);
    assert_eq!((p.key.src_port, p.key.dst_port, p.key.proto), (53, 5353, UDP));
    assert_eq!(p.l4_off, 14 + 48);

    let later = ipv6(
        v6_addr(1),
        v6_addr(2),
        0,
        64,
        &ext(44, 8, &frag6(UDP, 64, false, &[7; 16])),
    );
    let p = parse(&eth(&[], ET_IPV6, &later)).unwrap();
    assert_eq!(p.fragment, Fragment::Later);
    assert_eq!((p.key.src_port, p.key.dst_port, p.key.proto), (0, 0, UDP));
    assert_eq!((p.l4_off, p.payload_off), (14 + 56, 14 + 56));

    // Offset 0, M clear: an atomic fragment, keyed like any datagram.
    let atomic = ipv6(v6_addr(1), v6_addr(2), 44, 64, &frag6(UDP, 0, false, &l4));
    let p = parse(&eth(&[], ET_IPV6, &atomic)).unwrap();
    assert_eq!((p.fragment, p.key.dst_port), (Fragment::None, 5353));
}

#[test]
fn ipv6_length_and_version_checks() {
    let f = eth(&[], ET_IPV6, &ipv6(v6_addr(1), v6_addr(2), UDP, 1, &udp(1, 2, &[])));
    assert_eq!(parse(&f[..f.len() - 1]), Err(ParseError::Truncated));
    let mut bad = f.clone();
    bad[14] = 0x40;
    assert_eq!(parse(&bad), Err(ParseError::Malformed));
}

#[test]
fn tcp_flags_and_data_offset() {
    for flags in [0x02, 0x12, 0x10, 0x11, 0x04, 0x18, 0xff] {
        let f = eth(&[], ET_IPV4, &V4::new(TCP).build(&tcp(1, 2, flags, 0, &[])));
        assert_eq!(parse(&f).map(|p| p.tcp_flags), Ok(flags));
    }
    let mut seg = tcp(1, 2, 0x02, 0, &[]);
    seg[12] = 0x40; // data offset 4 < 5
    let f = eth(&[], ET_IPV4, &V4::new(TCP).build(&seg));
    assert_eq!(parse(&f), Err(ParseError::Malformed));
    seg[12] = 0xf0; // 60-byte header in a 20-byte segment
    let f = eth(&[], ET_IPV4, &V4::new(TCP).build(&seg));
    assert_eq!(parse(&f), Err(ParseError::Truncated));
}

#[test]
fn udp_length_checks() {
    let p = parse(&eth(&[], ET_IPV4, &V4::new(UDP).build(&udp(9, 10, b"pay")))).unwrap();
    assert_eq!((p.key.src_port, p.key.dst_port, p.payload_off), (9, 10, 42));
    let mut seg = udp(9, 10, b"pay");
    seg[4..6].copy_from_slice(&7u16.to_be_bytes());
    let f = eth(&[], ET_IPV4, &V4::new(UDP).build(&seg));
    assert_eq!(parse(&f), Err(ParseError::Malformed));
    seg[4..6].copy_from_slice(&12u16.to_be_bytes());
    let f = eth(&[], ET_IPV4, &V4::new(UDP).build(&seg));
    assert_eq!(parse(&f), Err(ParseError::Truncated));
}

#[test]
fn icmp_echo_identifier_both_ways() {
    let req = eth(&[], ET_IPV4, &V4::new(ICMP).build(&icmp(8, 0x4242, b"ping")));
    let p = parse(&req).unwrap();
    assert_eq!((p.key.src_port, p.key.dst_port, p.key.proto), (0x4242, 0, ICMP));
    assert_eq!(p.payload_off, 42);
    let rep = eth(&[], ET_IPV4, &V4::new(ICMP).build(&icmp(0, 0x4242, b"ping")));
    let p = parse(&rep).unwrap();
    assert_eq!((p.key.src_port, p.key.dst_port), (0, 0x4242));
    // Other types: no identifier; errors have a key no flow holds.
    let timestamp = eth(&[], ET_IPV4, &V4::new(ICMP).build(&icmp(13, 0x4242, &[0; 12])));
    let p = parse(&timestamp).unwrap();
    assert_eq!((p.key.src_port, p.key.dst_port), (0, 0));
    let unreach = eth(&[], ET_IPV4, &V4::new(ICMP).build(&icmp(3, 0x4242, &[])));
    let p = parse(&unreach).unwrap();
    assert_eq!((p.key.src_port, p.key.dst_port), (ICMP_ERROR_PORT, ICMP_ERROR_PORT));

    let v6 = |t| {
        eth(
            &[],
            ET_IPV6,
            &ipv6(v6_addr(1), v6_addr(2), ICMPV6, 255, &icmp(t, 7, &[])),
        )
    };
    let p = parse(&v6(128)).unwrap();
    assert_eq!((p.key.src_port, p.key.dst_port, p.key.proto), (7, 0, ICMPV6));
    let p = parse(&v6(129)).unwrap();
    assert_eq!((p.key.src_port, p.key.dst_port), (0, 7));
    let p = parse(&v6(135)).unwrap();
    assert_eq!((p.key.src_port, p.key.dst_port), (0, 0));
    let p = parse(&v6(2)).unwrap();
    assert_eq!((p.key.src_port, p.key.dst_port), (ICMP_ERROR_PORT, ICMP_ERROR_PORT));
    // ICMPv4 type numbers mean nothing inside IPv6, and vice versa.
    let p = parse(&v6(8)).unwrap();
    assert_eq!((p.key.src_port, p.key.dst_port), (0, 0));

    let short = eth(&[], ET_IPV4, &V4::new(ICMP).build(&[8, 0, 0, 0]));
    assert_eq!(parse(&short), Err(ParseError::Truncated));
}

#[test]
fn vxlan_key_describes_inner_frame() {
    let f = vxlan_tcp_frame();
    let p = parse(&f).unwrap();
    let outer = Outer {
        l3_off: 14,
        is_ipv6: false,
        udp_off: 34,
        vxlan_off: 42,
        vni: 5000,
    };
    assert_eq!(p.outer, Some(outer));
    assert_eq!(p.key.vni, 5000);
    assert_eq!(p.key.src, v4([192, 168, 1, 1]));
    assert_eq!(p.key.dst, v4([192, 168, 1, 2]));
    assert_eq!((p.key.src_port, p.key.dst_port, p.key.proto), (40000, 443, TCP));
    assert_eq!((p.eth_off, p.vlan_count, p.vlan_id), (50, 1, 7));
    assert_eq!((p.l3_off, p.l4_off, p.payload_off), (68, 88, 112));
    assert_eq!(&f[usize::from(p.payload_off)..], b"data");
    assert_eq!((p.ttl, p.tcp_flags), (17, 0x18));
}

#[test]
fn vxlan_over_ipv6_with_inner_arp() {
    let inner = eth(&[], ET_ARP, &arp());
    let outer = ipv6(v6_addr(1), v6_addr(2), UDP, 64, &udp(1, 4789, &vxlan(77, &inner)));
    let f = eth(&[], ET_IPV6, &outer);
    let p = parse(&f).unwrap();
    let o = p.outer.unwrap();
    assert_eq!(
        (o.l3_off, o.is_ipv6, o.udp_off, o.vxlan_off, o.vni),
        (14, true, 54, 62, 77)
    );
    assert_eq!((p.l3, p.eth_off, p.key.vni), (L3::Arp, 70, 77));
    assert_eq!(
        p.key,
        FlowKey {
            vni: 77,
            ..FlowKey::default()
        }
    );
}

#[test]
fn vxlan_inner_frame_ends_at_udp_length() {
    // Outer padding must not be read as inner bytes: cut the inner frame
    // short through the UDP length while the frame keeps the bytes.
    let mut f = vxlan_tcp_frame();
    let udp_len = u16::from_be_bytes([f[38], f[39]]);
    f[38..40].copy_from_slice(&(udp_len - 1).to_be_bytes());
    assert_eq!(parse(&f), Err(ParseError::Truncated));
}

#[test]
fn nested_vxlan_is_too_deep() {
    let innermost = v4_tcp_frame();
    let middle = eth(&[], ET_IPV4, &V4::new(UDP).build(&udp(1, 4789, &vxlan(2, &innermost))));
    let f = eth(&[], ET_IPV4, &V4::new(UDP).build(&udp(1, 4789, &vxlan(1, &middle))));
    assert_eq!(parse(&f), Err(ParseError::TooDeep));
}

#[test]
fn port_4789_without_valid_vxlan_is_plain_udp() {
    let mut hdr = vxlan(9, &v4_tcp_frame());
    hdr[0] = 0; // I flag clear
    let f = eth(&[], ET_IPV4, &V4::new(UDP).build(&udp(1, 4789, &hdr)));
    let p = parse(&f).unwrap();
    assert_eq!((p.outer, p.key.vni, p.key.dst_port), (None, NO_VNI, 4789));
    // Too short to hold a VXLAN header.
    let f = eth(&[], ET_IPV4, &V4::new(UDP).build(&udp(1, 4789, &[8, 0, 0])));
    assert_eq!(parse(&f).map(|p| p.outer), Ok(None));
    // A fragment is never decapsulated.
    let frag = V4 {
        more_frags: true,
        ..V4::new(UDP)
    };
    let f = eth(&[], ET_IPV4, &frag.build(&udp(1, 4789, &vxlan(9, &v4_tcp_frame()))));
    let p = parse(&f).unwrap();
    assert_eq!((p.outer, p.fragment), (None, Fragment::First));
}

#[test]
fn every_truncation_is_an_error() {
    let frames = [
        v4_tcp_frame(),
        vxlan_tcp_frame(),
        eth(&[(ET_QINQ, 1), (ET_VLAN, 2)], ET_ARP, &arp()),
        eth(
            &[],
            ET_IPV6,
            &ipv6(
                v6_addr(1),
                v6_addr(2),
                0,
                1,
                &ext(44, 8, &frag6(TCP, 0, true, &tcp(1, 2, 2, 1, &[]))),
            ),
        ),
    ];
    for f in &frames {
        assert!(parse(f).is_ok());
        for n in 0..f.len() {
            assert_eq!(parse(&f[..n]), Err(ParseError::Truncated), "len {n} of {}", f.len());
        }
    }
}

#[test]
fn error_names() {
    assert_eq!(ParseError::Truncated.as_str(), "truncated");
    assert_eq!(ParseError::Malformed.as_str(), "malformed");
    assert_eq!(ParseError::TooDeep.as_str(), "too-deep");
}
