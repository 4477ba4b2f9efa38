//! The fixed-offset path for the common frame against the general one.

use super::*;
use crate::decision::EncapSpec;
use crate::parse::parse;
use crate::wire::checksum;
use proptest::prelude::*;

/// A frame for the property: Ethernet (optionally one VLAN tag), IPv4
/// (optionally with 4 bytes of options, optionally a first or later
/// fragment), TCP or UDP with the given checksum bytes, and a payload.
#[derive(Clone, Debug)]
struct Spec {
    tcp: bool,
    vlan: bool,
    options: bool,
    /// 0: not fragmented, 1: first fragment, 2: later fragment.
    frag: u8,
    ttl: u8,
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    /// Zero the UDP checksum ("none").
    udp_no_csum: bool,
    payload: Vec<u8>,
}

fn build(s: &Spec) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    if s.vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let ihl = if s.options { 6 } else { 5 };
    let l4_len = if s.tcp { 20 } else { 8 } + s.payload.len();
    let total = (ihl * 4 + l4_len) as u16;
    let frag: u16 = match s.frag {
        0 => 0x4000,
        1 => 0x2000,
        _ => 0x0010,
    };
    let proto = if s.tcp { 6 } else { 17 };
    let mut ip = vec![0x40 | ihl as u8, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34]);
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&[s.ttl, proto, 0, 0]);
    ip.extend_from_slice(&s.src);
    ip.extend_from_slice(&s.dst);
    if s.options {
        ip.extend_from_slice(&[1, 1, 1, 0]);
    }
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut l4 = Vec::new();
    l4.extend_from_slice(&s.sport.to_be_bytes());
    l4.extend_from_slice(&s.dport.to_be_bytes());
    if s.tcp {
        l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        l4.extend_from_slice(&(l4_len as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(&s.payload);
    let pseudo = checksum::pseudo_v4(&s.src, &s.dst, proto, l4_len as u16);
    let at = if s.tcp { 16 } else { 6 };
    let c = checksum::l4_checksum(pseudo, &l4);
    let c = if s.tcp { c } else { checksum::udp_finish(c) };
    if s.tcp || !s.udp_no_csum {
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.2),
            prop::sample::select(vec![0u8, 0, 0, 1, 2]),
        ),
        (
            prop::sample::select(vec![0u8, 1, 2, 64, 255]),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
        ),
        (
            any::<u16>(),
            // Not the VXLAN port: the parser would decapsulate the frame.
            any::<u16>().prop_map(|p| if p == crate::wire::vxlan::UDP_PORT { p - 1 } else { p }),
            prop::bool::weighted(0.2),
            prop::collection::vec(any::<u8>(), 0..24),
        ),
    )
        .prop_map(
            |((tcp, vlan, options, frag), (ttl, src, dst), (sport, dport, udp_no_csum, payload))| Spec {
                tcp,
                vlan,
                options,
                frag,
                ttl,
                src,
                dst,
                sport,
                dport,
                udp_no_csum,
                payload,
            },
        )
}

fn rewrite() -> impl Strategy<Value = Option<Rewrite>> {
    prop::option::of(
        (any::<[u8; 4]>(), prop::option::of(any::<u16>())).prop_map(|(a, port)| {
            let mut addr = [0u8; 16];
            addr[10..12].copy_from_slice(&[0xff, 0xff]);
            addr[12..].copy_from_slice(&a);
            Rewrite { addr, port }
        }),
    )
}

fn transposition() -> impl Strategy<Value = Transposition> {
    (
        (rewrite(), rewrite(), any::<bool>()),
        (prop::option::of(any::<[u8; 6]>()), prop::option::of(any::<[u8; 6]>())),
        prop::option::of((any::<u32>(), any::<[u8; 4]>(), any::<u64>())),
    )
        .prop_map(|((src, dst, dec_ttl), (src_mac, dst_mac), encap)| Transposition {
            src,
            dst,
            dec_ttl,
            src_mac,
            dst_mac,
            encap: encap.map(|(vni, ip, h)| {
                let spec = EncapSpec {
                    vni: vni & 0xff_ffff,
                    outer_src_ip: ip,
                    outer_dst_ip: [192, 0, 2, 254],
                    outer_src_mac: [2, 0, 0, 0, 0, 1],
                    outer_dst_mac: [2, 0, 0, 0, 0, 0xfe],
                };
                Encap::new(&spec, h)
            }),
            out_vport: 1,
            ..Transposition::default()
        })
}

/// Runs `f` on a copy of `frame` with 64 bytes of headroom; the bytes
/// and the result.
fn run(frame: &[u8], f: impl FnOnce(&mut Frame) -> Result<(), DropReason>) -> (Result<(), DropReason>, Vec<u8>) {
    let mut buf = vec![0u8; 64 + frame.len()];
    buf[64..].copy_from_slice(frame);
    let mut fr = Frame::new(&mut buf, 64, frame.len()).unwrap();
    let r = f(&mut fr);
    (r, fr.data().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Whatever the frame and the transposition, applying it gives the
    /// bytes and the verdict of the general path (with the same pushed
    /// header); and when the fixed-offset path took the frame, its IPv4
    /// header checksum still verifies.
    #[test]
    fn the_common_frame_path_agrees_with_the_general_one(s in spec(), t in transposition()) {
        let frame = build(&s);
        let parsed = parse(&frame).expect("the built frame parses");
        let t = t.with_deltas(&parsed.key);
        let (fast, fast_bytes) = run(&frame, |fr| t.apply(fr, &parsed));
        let (slow, slow_bytes) = run(&frame, |fr| {
            t.transpose_key_frame(fr, &parsed, false)?;
            if let Some(e) = &t.encap {
                e.push(fr, OuterChecksum::Software).map_err(|_| DropReason::NoHeadroom)?;
            }
            Ok(())
        });
        prop_assert_eq!(fast, slow);
        prop_assert_eq!(&fast_bytes, &slow_bytes);
        let common = !s.vlan && !s.options && s.frag != 2 && t.deltas.is_some();
        if common && fast.is_ok() {
            let ip_at = if t.encap.is_some() { ENCAP_OFF } else { 0 } + crate::parse::common::IP;
            prop_assert!(checksum::verify(&fast_bytes[ip_at..ip_at + 20]));
        }
    }
}

/// Where the key frame starts after a pushed VXLAN header.
const ENCAP_OFF: usize = crate::action::encap::ENCAP_LEN;

/// The cases the property only samples, pinned: a frame of each kind
/// takes the path the documentation says.
#[test]
fn only_the_common_frame_takes_the_fixed_offsets() {
    let base = Spec {
        tcp: false,
        vlan: false,
        options: false,
        frag: 0,
        ttl: 64,
        src: [10, 0, 0, 1],
        dst: [198, 51, 100, 7],
        sport: 1000,
        dport: 53,
        udp_no_csum: false,
        payload: vec![1, 2, 3],
    };
    let mut addr = [0u8; 16];
    addr[10..].copy_from_slice(&[0xff, 0xff, 203, 0, 113, 10]);
    let takes = |s: &Spec| {
        let frame = build(s);
        let mut buf = frame.clone();
        let mut fr = Frame::whole(&mut buf);
        let parsed = parse(&frame).unwrap();
        let t = Transposition {
            src: Some(Rewrite {
                addr,
                port: Some(40000),
            }),
            ..Transposition::default()
        }
        .with_deltas(&parsed.key);
        t.common_frame(&mut fr, &parsed).is_some()
    };
    assert!(takes(&base));
    assert!(takes(&Spec {
        tcp: true,
        ..base.clone()
    }));
    assert!(takes(&Spec {
        frag: 1,
        ..base.clone()
    }));
    assert!(!takes(&Spec {
        vlan: true,
        ..base.clone()
    }));
    assert!(!takes(&Spec {
        options: true,
        ..base.clone()
    }));
    assert!(!takes(&Spec {
        frag: 2,
        ..base.clone()
    }));
}
