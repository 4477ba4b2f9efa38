//! Frame builders for the parser tests, written independently of
//! `vfp_core::wire` (plain byte pushes) so a bug in a view cannot hide a
//! matching bug in the parser. Every builder returns owned bytes; frames
//! are made by concatenating a header with what it carries.

#![allow(dead_code)]

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

pub const ET_IPV4: u16 = 0x0800;
pub const ET_ARP: u16 = 0x0806;
pub const ET_VLAN: u16 = 0x8100;
pub const ET_QINQ: u16 = 0x88a8;
pub const ET_IPV6: u16 = 0x86dd;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;

/// Ethernet header with `tags` as (TPID, TCI), outermost first.
pub fn eth(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&MAC_A);
    b.extend_from_slice(&MAC_B);
    for (tpid, tci) in tags {
        b.extend_from_slice(&tpid.to_be_bytes());
        b.extend_from_slice(&tci.to_be_bytes());
    }
    b.extend_from_slice(&ethertype.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let hi = u32::from(c[0]) << 8;
        s += hi | c.get(1).map_or(0, |&x| u32::from(x));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// IPv4 fields a test may want to vary.
#[derive(Clone, Debug)]
pub struct V4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    pub ttl: u8,
    /// Option bytes, padded here to a multiple of 4 (max 40).
    pub options: Vec<u8>,
    pub more_frags: bool,
    /// Fragment offset in bytes (multiple of 8).
    pub frag_offset: u16,
}

impl V4 {
    pub fn new(proto: u8) -> V4 {
        V4 {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            proto,
            ttl: 64,
            options: Vec::new(),
            more_frags: false,
            frag_offset: 0,
        }
    }

    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut opts = self.options.clone();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        let hl = 20 + opts.len();
        let total = (hl + payload.len()) as u16;
        let flags = (u16::from(self.more_frags) << 13) | (self.frag_offset >> 3);
        let mut b = vec![0x40 | (hl / 4) as u8, 0];
        b.extend_from_slice(&total.to_be_bytes());
        b.extend_from_slice(&[0x12, 0x34]);
        b.extend_from_slice(&flags.to_be_bytes());
        b.extend_from_slice(&[self.ttl, self.proto, 0, 0]);
        b.extend_from_slice(&self.src);
        b.extend_from_slice(&self.dst);
        b.extend_from_slice(&opts);
        let c = csum(&b);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b.extend_from_slice(payload);
        b
    }
}

pub fn v6_addr(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..2].copy_from_slice(&[0xfd, 0x00]);
    a[15] = last;
    a
}

/// IPv6 header; `next` is the first next-header value, `rest` the
/// extension headers and upper-layer bytes after it.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, hop: u8, rest: &[u8]) -> Vec<u8> {
    let mut b = vec![0x60, 0, 0, 0];
    b.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    b.extend_from_slice(&[next, hop]);
    b.extend_from_slice(&src);
    b.extend_from_slice(&dst);
    b.extend_from_slice(rest);
    b
}

/// Hop-by-hop / routing / destination options header of `len` bytes
/// (multiple of 8, >= 8) followed by `rest`.
pub fn ext(next: u8, len: usize, rest: &[u8]) -> Vec<u8> {
    let mut b = vec![next, (len / 8 - 1) as u8];
    b.resize(len, 0);
    b.extend_from_slice(rest);
    b
}

/// Fragment header followed by `rest`.
pub fn frag6(next: u8, offset: u16, more: bool, rest: &[u8]) -> Vec<u8> {
    let mut b = vec![next, 0];
    b.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 42]);
    b.extend_from_slice(rest);
    b
}

/// TCP segment with `opt_words` 4-byte NOP option words.
pub fn tcp(sp: u16, dp: u16, flags: u8, opt_words: usize, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&sp.to_be_bytes());
    b.extend_from_slice(&dp.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    b.push(((5 + opt_words) as u8) << 4);
    b.push(flags);
    b.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    b.resize(b.len() + 4 * opt_words, 1);
    b.extend_from_slice(payload);
    b
}

pub fn udp(sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&sp.to_be_bytes());
    b.extend_from_slice(&dp.to_be_bytes());
    b.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(payload);
    b
}

pub fn icmp(msg_type: u8, ident: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![msg_type, 0, 0, 0];
    b.extend_from_slice(&ident.to_be_bytes());
    b.extend_from_slice(&[0, 1]);
    b.extend_from_slice(payload);
    b
}

/// VXLAN header (I flag set) followed by the inner frame.
pub fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut b = vec![0x08, 0, 0, 0];
    b.extend_from_slice(&(vni << 8).to_be_bytes());
    b.extend_from_slice(inner);
    b
}

/// ARP request for 10.0.0.2 from 10.0.0.1.
pub fn arp() -> Vec<u8> {
    let mut b = vec![0, 1, 0x08, 0, 6, 4, 0, 1];
    b.extend_from_slice(&MAC_A);
    b.extend_from_slice(&[10, 0, 0, 1]);
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(&[10, 0, 0, 2]);
    b
}

/// Untagged IPv4/TCP frame: 10.0.0.1:1234 -> 10.0.0.2:80, SYN.
pub fn v4_tcp_frame() -> Vec<u8> {
    eth(&[], ET_IPV4, &V4::new(TCP).build(&tcp(1234, 80, 0x02, 0, b"hello")))
}

/// VXLAN (outer IPv4, VNI 5000) around a VLAN-tagged IPv4/TCP frame.
pub fn vxlan_tcp_frame() -> Vec<u8> {
    let inner_ip = V4 {
        src: [192, 168, 1, 1],
        dst: [192, 168, 1, 2],
        ttl: 17,
        ..V4::new(TCP)
    };
    let inner = eth(
        &[(ET_VLAN, 7)],
        ET_IPV4,
        &inner_ip.build(&tcp(40000, 443, 0x18, 1, b"data")),
    );
    let outer_ip = V4 {
        src: [172, 16, 0, 1],
        dst: [172, 16, 0, 2],
        ..V4::new(UDP)
    };
    eth(&[], ET_IPV4, &outer_ip.build(&udp(55555, 4789, &vxlan(5000, &inner))))
}
