//! Typed zero-copy views over protocol headers, one file per header.
//!
//! Each view wraps any buffer (`T: AsRef<[u8]>`, plus `AsMut<[u8]>` for
//! setters). `new_checked` validates the length (and the few fields the
//! other accessors depend on, such as IPv4's IHL) once, so every getter
//! afterwards indexes without re-checking and cannot panic.
//! `new_unchecked` skips that check: use it only on buffers you sized
//! yourself (e.g. when emitting headers). Byte ranges of fields live in a
//! private `field` module in each file. [`checksum`] holds the internet
//! checksum, pseudo-header sums and the RFC 1624 incremental updates that
//! NAT rewrites use.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vxlan;

/// Why a view could not be built over a buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// The buffer is shorter than the header (or the length it claims).
    Truncated,
    /// A field is invalid: wrong version, a length smaller than the
    /// fixed header, ...
    Malformed,
    /// A header chain is longer than we are willing to follow.
    TooDeep,
}

pub type Result<T> = core::result::Result<T, Error>;

/// Reads a big-endian u16 at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a big-endian u32 at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Reads a big-endian u16 at `at`, if `b` holds it (for bytes no view
/// has checked yet).
#[inline]
pub(crate) fn get16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Copies `N` bytes starting at `at` into an array.
#[inline]
pub(crate) fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}
