//! The IPv4 first-packet index may only skip rules: for any packet, the
//! rules it yields that fully match are exactly the rules of the plain
//! scan that fully match, in the same order. Checked on a generated
//! policy of mixed prefixes (IPv4 and IPv6, /0 to /32, several per rule,
//! src-only, dst-only, both) against many addresses near those prefixes.

use vfp_core::flow::key::{v4_mapped, Direction};
use vfp_core::policy::{load_str, Addr, PacketView};
use vfp_core::topology::{Role, VportInfo};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

const OCTETS: [u8; 5] = [10, 172, 192, 198, 203];

/// A prefix; `slot` Some(i) makes it /8 or longer inside OCTETS[i] (so
/// the prefixes of one list never overlap).
fn prefix(r: &mut Lcg, slot: Option<usize>) -> String {
    if r.below(10) == 0 {
        return format!("2001:db8:{:x}::/48", slot.unwrap_or(0));
    }
    let lens: &[u32] = if slot.is_some() {
        &[8, 9, 12, 16, 24, 30, 32]
    } else {
        &[0, 1, 4, 7, 8, 9, 12, 16, 24, 30, 32]
    };
    let len = lens[r.below(lens.len() as u32) as usize];
    let o = slot.unwrap_or(r.below(5) as usize);
    let a = u32::from(OCTETS[o]) << 24 | r.below(4) << 16 | r.below(4) << 8 | r.below(4);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let n = a & mask;
    format!("{}.{}.{}.{}/{len}", n >> 24, n >> 16 & 255, n >> 8 & 255, n & 255)
}

fn list(r: &mut Lcg) -> String {
    let k = 1 + r.below(3) as usize;
    let first = r.below(5) as usize;
    let v: Vec<String> = if k == 1 {
        vec![format!("\"{}\"", prefix(r, None))]
    } else {
        (0..k)
            .map(|i| format!("\"{}\"", prefix(r, Some((first + i) % 5))))
            .collect()
    };
    format!("[{}]", v.join(", "))
}

#[test]
fn the_index_never_changes_which_rules_match() {
    let mut r = Lcg(7);
    let mut text = String::from("[[layers]]\nname = \"acl\"\ndefault = \"deny\"\n[[layers.groups]]\nname = \"g\"\n");
    for id in 0..300 {
        text += &format!("[[layers.groups.rules]]\nid = {id}\npriority = {id}\naction = \"count\"\n");
        match r.below(4) {
            0 => text += &format!("src = {}\n", list(&mut r)),
            1 => text += &format!("dst = {}\n", list(&mut r)),
            2 => text += &format!("src = {}\ndst = {}\n", list(&mut r), list(&mut r)),
            _ => {}
        }
        if r.below(3) == 0 {
            text += "proto = \"udp\"\n";
        }
    }
    let vports = vec![VportInfo::new("vm", Role::Vm, 0)];
    let p = load_str(&text, "generated", &vports).unwrap_or_else(|e| panic!("{e}"));
    let layer = &p.layers()[0];
    let addr = |r: &mut Lcg| -> Addr {
        let a = u32::from(OCTETS[r.below(5) as usize]) << 24 | r.below(5) << 16 | r.below(5) << 8 | r.below(5);
        Addr::from_key(&v4_mapped(a.to_be_bytes()))
    };
    let mut matched = 0usize;
    for _ in 0..20_000 {
        let view = PacketView {
            src: addr(&mut r),
            dst: addr(&mut r),
            src_port: 1000,
            dst_port: 53,
            proto: if r.below(2) == 0 { 17 } else { 6 },
            vni: u32::MAX,
            vport: 0,
            tcp_flags: 0,
        };
        for dir in [Direction::Outbound, Direction::Inbound] {
            let full = |ri: &u32| layer.rules[*ri as usize].matcher.matches(&view);
            let plain: Vec<u32> = layer.rules_for(dir, view.proto).iter().copied().filter(full).collect();
            let indexed: Vec<u32> = layer
                .candidates(dir, view.proto, view.src, view.dst)
                .filter(full)
                .collect();
            assert_eq!(plain, indexed, "{view:?} {dir:?}");
            matched += plain.len();
        }
    }
    assert!(matched > 10_000, "the generated policy must match often ({matched})");
}
