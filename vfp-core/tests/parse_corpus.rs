//! Writes the parser fuzz target's seed corpus (fuzz/corpus/parse/) from
//! the same builders the parser tests use. Run it by hand when the
//! builders change:
//! `cargo test -p vfp-core --test parse_corpus -- --ignored`.
//! The normal run only checks that every seed still parses.

mod parse_support;

use parse_support::*;

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let v6_chain = ext(43, 8, &ext(TCP, 16, &tcp(2000, 22, 0x12, 1, b"ssh")));
    let v6_frag = frag6(UDP, 0, true, &udp(53, 5353, b"abcd"));
    let v4_frag = V4 {
        more_frags: false,
        frag_offset: 1480,
        ..V4::new(UDP)
    };
    let v4_opts = V4 {
        options: vec![0x94, 0x04, 0, 0],
        ..V4::new(TCP)
    };
    vec![
        ("ipv4_tcp", v4_tcp_frame()),
        ("vxlan_vlan_ipv4_tcp", vxlan_tcp_frame()),
        (
            "qinq_ipv4_udp",
            eth(
                &[(ET_QINQ, 10), (ET_VLAN, 20)],
                ET_IPV4,
                &V4::new(UDP).build(&udp(1, 53, b"q")),
            ),
        ),
        ("arp", eth(&[], ET_ARP, &arp())),
        (
            "ipv4_options_tcp",
            eth(&[], ET_IPV4, &v4_opts.build(&tcp(1, 2, 0x10, 2, &[]))),
        ),
        ("ipv4_later_fragment", eth(&[], ET_IPV4, &v4_frag.build(&[0; 16]))),
        (
            "ipv4_icmp_echo",
            eth(&[], ET_IPV4, &V4::new(ICMP).build(&icmp(8, 7, b"ping"))),
        ),
        (
            "ipv6_ext_tcp",
            eth(&[], ET_IPV6, &ipv6(v6_addr(1), v6_addr(2), 0, 64, &v6_chain)),
        ),
        (
            "ipv6_first_fragment",
            eth(&[], ET_IPV6, &ipv6(v6_addr(1), v6_addr(2), 44, 64, &v6_frag)),
        ),
        (
            "ipv6_icmp_echo_reply",
            eth(
                &[],
                ET_IPV6,
                &ipv6(v6_addr(1), v6_addr(2), ICMPV6, 64, &icmp(129, 7, &[])),
            ),
        ),
        (
            "vxlan_ipv6_arp",
            eth(
                &[],
                ET_IPV6,
                &ipv6(
                    v6_addr(1),
                    v6_addr(2),
                    UDP,
                    64,
                    &udp(9, 4789, &vxlan(77, &eth(&[], ET_ARP, &arp()))),
                ),
            ),
        ),
    ]
}

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse")
}

#[test]
fn seeds_parse() {
    for (name, frame) in seeds() {
        assert!(vfp_core::parse::parse(&frame).is_ok(), "{name}");
    }
}

#[test]
fn committed_seeds_are_current() {
    for (name, frame) in seeds() {
        // A missing file is fine (e.g. a packaged crate without fuzz/).
        if let Ok(bytes) = std::fs::read(corpus_dir().join(name)) {
            assert_eq!(bytes, frame, "{name}: rerun the ignored writer");
        }
    }
}

#[test]
#[ignore = "writes files; run by hand when the builders change"]
fn write_seed_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, frame) in seeds() {
        // Write then rename, so `committed_seeds_are_current` running in
        // parallel never reads half a file.
        let tmp = corpus_dir().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, frame).unwrap();
        std::fs::rename(&tmp, corpus_dir().join(name)).unwrap();
    }
}
