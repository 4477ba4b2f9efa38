//! Fuzz the RFC 1624 incremental checksum updates against recomputation:
//! NAT rewrites rely on them being exact.
//!
//! Input: 2 bytes choosing the word to change, 16 bytes of new value,
//! then the covered data (its first two bytes are the checksum field).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vfp_core::wire::checksum::{checksum, udp_finish, udp_update16, update128, update16, update32};

fn fill(data: &mut [u8]) -> u16 {
    data[..2].copy_from_slice(&[0, 0]);
    let c = checksum(data);
    data[..2].copy_from_slice(&c.to_be_bytes());
    c
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 + 16 + 4 {
        return;
    }
    let (ctl, rest) = input.split_at(2);
    let (new, data) = rest.split_at(16);
    let mut d = data.to_vec();
    if d.len() % 2 == 1 {
        d.push(0);
    }
    let words = d.len() / 2;
    // The field lies after the checksum word and fits in the data.
    let at = 2 + 2 * (usize::from(u16::from_be_bytes([ctl[0], ctl[1]])) % (words - 1));
    let c0 = fill(&mut d);

    let old16 = u16::from_be_bytes([d[at], d[at + 1]]);
    let new16 = u16::from_be_bytes([new[0], new[1]]);
    d[at..at + 2].copy_from_slice(&new16.to_be_bytes());
    let got = update16(c0, old16, new16);
    let want = fill(&mut d);
    // Only all-zero data can tell the two zeros apart.
    if d[2..].iter().any(|&b| b != 0) {
        assert_eq!(got, want);
        // The same checksum as UDP would have sent it (0 goes as 0xFFFF).
        let sent = udp_finish(c0);
        assert_eq!(udp_update16(sent, old16, new16), udp_finish(want));
    }

    if at + 4 <= d.len() {
        let old: [u8; 4] = d[at..at + 4].try_into().unwrap();
        let n: [u8; 4] = new[..4].try_into().unwrap();
        d[at..at + 4].copy_from_slice(&n);
        let got = update32(want, old, n);
        let want2 = fill(&mut d);
        if d[2..].iter().any(|&b| b != 0) {
            assert_eq!(got, want2);
        }
    }
    if at + 16 <= d.len() {
        let old: [u8; 16] = d[at..at + 16].try_into().unwrap();
        let n: [u8; 16] = new.try_into().unwrap();
        let c = fill(&mut d);
        d[at..at + 16].copy_from_slice(&n);
        let got = update128(c, &old, &n);
        let want3 = fill(&mut d);
        if d[2..].iter().any(|&b| b != 0) {
            assert_eq!(got, want3);
        }
    }
});
