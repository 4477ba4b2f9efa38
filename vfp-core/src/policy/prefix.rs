//! Address prefixes and port ranges as rules match them: compact integers
//! compared with a mask, parsed once from the policy file's strings.
//!
//! Addresses are handled as `u128` in the flow key's layout: IPv4 is
//! v4-mapped (`::ffff:a.b.c.d`), so an IPv4 prefix is the mapped network
//! with the 96 mapping bits added to its mask. A prefix also carries its
//! family so that an IPv6 prefix such as `::/0` never matches IPv4 traffic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::flow::key::{as_v4, v4_mapped};

/// An IPv4 or IPv6 network: `addr & mask == net`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    net: u128,
    mask: u128,
    v4: bool,
    /// Prefix length as written (0..=32 for IPv4, 0..=128 for IPv6).
    len: u8,
}

/// An address as the matcher sees it: the key's 16 bytes as one integer
/// plus its family, computed once per packet (and per rewrite).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr {
    pub bits: u128,
    pub v4: bool,
}

impl Addr {
    #[inline]
    pub fn from_key(a: &[u8; 16]) -> Addr {
        Addr {
            bits: u128::from_be_bytes(*a),
            v4: as_v4(a).is_some(),
        }
    }
}

impl Prefix {
    /// Parses `a.b.c.d/len` or `x::y/len`. A bare address is a host prefix
    /// (/32 or /128). Host bits set below the length are an error, because
    /// `10.0.0.1/24` is almost always a typo for either a host or a network.
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let (addr_s, len_s) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr_s.parse().map_err(|_| format!("invalid prefix {s}: bad address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = match len_s {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max && !l.starts_with('+') => n,
                _ => return Err(format!("invalid prefix {s}: length must be 0..={max}")),
            },
        };
        let (bits, mask, v4) = match ip {
            IpAddr::V4(a) => {
                let m4: u32 = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                let bits = u128::from_be_bytes(v4_mapped(a.octets()));
                (bits, (u128::MAX << 32) | u128::from(m4), true)
            }
            IpAddr::V6(a) => {
                let m: u128 = if len == 0 { 0 } else { u128::MAX << (128 - len) };
                (u128::from_be_bytes(a.octets()), m, false)
            }
        };
        if bits & !mask != 0 {
            return Err(format!("invalid prefix {s}: host bits set below /{len}"));
        }
        Ok(Prefix {
            net: bits,
            mask,
            v4,
            len,
        })
    }

    #[inline]
    pub fn contains(&self, a: Addr) -> bool {
        a.v4 == self.v4 && a.bits & self.mask == self.net
    }

    /// The IPv4 network and mask (host order), for an IPv4 prefix.
    pub fn v4_net_mask(&self) -> Option<(u32, u32)> {
        self.v4.then_some((self.net as u32, self.mask as u32))
    }

    /// Whether every address of `other` is also in `self`.
    pub fn covers(&self, other: &Prefix) -> bool {
        self.v4 == other.v4 && self.len <= other.len && other.net & self.mask == self.net
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.v4 {
            write!(f, "{}/{}", Ipv4Addr::from(self.net as u32), self.len)
        } else {
            write!(f, "{}/{}", Ipv6Addr::from(self.net), self.len)
        }
    }
}

/// An inclusive port range; a single port is `lo == hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    /// Parses `"N"` or `"N-M"` (inclusive, `N <= M`, both in 0..=65535).
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let num = |t: &str| -> Result<u16, String> {
            let t = t.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("invalid port range {s:?}: expected N or N-M"));
            }
            t.parse::<u16>()
                .map_err(|_| format!("invalid port range {s:?}: ports are 0..=65535"))
        };
        let (lo, hi) = match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let p = num(s)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(format!("invalid port range {s:?}: {lo} > {hi}"));
        }
        Ok(PortRange { lo, hi })
    }

    /// A single port given as a TOML integer.
    pub fn from_int(n: i64) -> Result<PortRange, String> {
        u16::try_from(n)
            .map(|p| PortRange { lo: p, hi: p })
            .map_err(|_| format!("invalid port {n}: ports are 0..=65535"))
    }

    #[inline]
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    pub fn overlaps(&self, o: &PortRange) -> bool {
        self.lo <= o.hi && o.lo <= self.hi
    }

    /// Number of ports in the range (never 0).
    pub fn count(&self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Addr {
        let key = match s.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => v4_mapped(a.octets()),
            IpAddr::V6(a) => a.octets(),
        };
        Addr::from_key(&key)
    }

    #[test]
    fn v4_prefixes_match_by_mask() {
        let p = Prefix::parse("10.1.0.0/16").unwrap();
        assert!(p.contains(addr("10.1.200.3")));
        assert!(!p.contains(addr("10.2.0.1")));
        let all = Prefix::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(addr("255.255.255.255")));
        assert!(!all.contains(addr("2001:db8::1")), "v4 /0 must not match v6");
        let host = Prefix::parse("192.0.2.7").unwrap();
        assert!(host.contains(addr("192.0.2.7")) && !host.contains(addr("192.0.2.8")));
        assert_eq!(p.to_string(), "10.1.0.0/16");
    }

    #[test]
    fn v6_prefixes_match_by_mask_and_not_v4() {
        let p = Prefix::parse("2001:db8::/32").unwrap();
        assert!(p.contains(addr("2001:db8:1::5")));
        assert!(!p.contains(addr("2001:db9::5")));
        let all = Prefix::parse("::/0").unwrap();
        assert!(all.contains(addr("::1")));
        assert!(!all.contains(addr("10.0.0.1")), "v6 /0 must not match v4");
        assert_eq!(p.to_string(), "2001:db8::/32");
    }

    #[test]
    fn bad_prefixes_are_rejected() {
        for s in [
            "10.0.0.300/24",
            "10.0.0.1/24",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "2001:db8::1/32",
            "::/129",
            "nope",
            "",
        ] {
            assert!(Prefix::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn covers_detects_nesting() {
        let a = Prefix::parse("10.0.0.0/8").unwrap();
        let b = Prefix::parse("10.1.0.0/16").unwrap();
        assert!(a.covers(&b) && !b.covers(&a) && a.covers(&a));
        assert!(!a.covers(&Prefix::parse("::/0").unwrap()));
    }

    #[test]
    fn port_ranges_parse_and_match() {
        let r = PortRange::parse("1024-65535").unwrap();
        assert!(r.contains(1024) && r.contains(65535) && !r.contains(1023));
        assert_eq!(r.count(), 64512);
        assert_eq!(PortRange::parse("80").unwrap(), PortRange { lo: 80, hi: 80 });
        assert_eq!(PortRange::parse(" 1 - 2 ").unwrap(), PortRange { lo: 1, hi: 2 });
        for s in ["10-5", "70000", "1-70000", "-5", "a", "", "1-", "+5"] {
            assert!(PortRange::parse(s).is_err(), "{s}");
        }
        assert!(PortRange::from_int(65536).is_err() && PortRange::from_int(-1).is_err());
        assert!(PortRange { lo: 1, hi: 5 }.overlaps(&PortRange { lo: 5, hi: 9 }));
        assert!(!PortRange { lo: 1, hi: 4 }.overlaps(&PortRange { lo: 5, hi: 9 }));
    }
}
