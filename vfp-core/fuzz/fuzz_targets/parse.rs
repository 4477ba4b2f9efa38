//! Fuzz `vfp_core::parse::parse`: it must never panic, and when it
//! accepts a frame every offset it returns must be in order and inside
//! the frame (the datapath slices with them without re-checking).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vfp_core::flow::key::NO_VNI;
use vfp_core::parse::{parse, Fragment};

fuzz_target!(|frame: &[u8]| {
    let Ok(p) = parse(frame) else {
        return;
    };
    assert!(p.eth_off < p.l3_off);
    assert!(p.l3_off <= p.l4_off);
    assert!(p.l4_off <= p.payload_off);
    assert!(usize::from(p.payload_off) <= frame.len());
    assert!(p.vlan_count <= 2);
    if p.fragment == Fragment::Later {
        assert_eq!((p.key.src_port, p.key.dst_port), (0, 0));
        assert_eq!(p.l4_off, p.payload_off);
    }
    match p.outer {
        None => assert_eq!((p.eth_off, p.key.vni), (0, NO_VNI)),
        Some(o) => {
            assert!(o.l3_off < o.udp_off && o.udp_off < o.vxlan_off);
            assert_eq!(p.eth_off, o.vxlan_off + 8);
            assert_eq!(p.key.vni, o.vni);
            assert!(o.vni <= 0x00ff_ffff);
        }
    }
});
