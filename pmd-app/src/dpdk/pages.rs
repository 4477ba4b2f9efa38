//! Transparent huge pages for memory the app allocates itself (the flow
//! tables: DPDK's own memory is on hugetlbfs already).
//!
//! A flow table of a million pairs is 600 MB read at random places; on
//! 4 KB pages nearly every lookup also misses the TLB. The kernel backs
//! an anonymous range with 2 MB pages when asked to (`MADV_HUGEPAGE`,
//! honoured unless THP is `never`) for memory faulted in afterwards, and
//! replaces the 4 KB pages of memory already touched (`MADV_COLLAPSE`,
//! Linux 6.1). Both are advice: when the kernel refuses, the table works
//! as before on 4 KB pages, so failures are returned, not fatal.

use std::io;

const HUGE: usize = 2 << 20;

/// The 2 MB-aligned part of `(start, bytes)`, if it holds a whole page.
fn aligned(start: *const u8, bytes: usize) -> Option<(usize, usize)> {
    let a = (start as usize).checked_add(HUGE - 1)? & !(HUGE - 1);
    let end = (start as usize).checked_add(bytes)? & !(HUGE - 1);
    (end > a).then(|| (a, end - a))
}

fn madvise(start: *const u8, bytes: usize, advice: libc::c_int) -> io::Result<()> {
    let Some((a, len)) = aligned(start, bytes) else {
        return Ok(());
    };
    // SAFETY: madvise with these advices only changes how the kernel
    // backs the pages of the range, never their contents; the range lies
    // inside an allocation the caller owns (it is whole pages of it).
    let rc = unsafe { libc::madvise(a as *mut libc::c_void, len, advice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks for 2 MB pages for the part of the range not faulted in yet.
pub fn advise_huge(start: *const u8, bytes: usize) -> io::Result<()> {
    madvise(start, bytes, libc::MADV_HUGEPAGE)
}

/// Moves the range's faulted-in 4 KB pages onto 2 MB pages now.
pub fn collapse(start: *const u8, bytes: usize) -> io::Result<()> {
    madvise(start, bytes, libc::MADV_COLLAPSE)
}

/// Anonymous memory of this process on transparent huge pages, in bytes.
pub fn anon_huge_bytes() -> Option<u64> {
    kb_field("/proc/self/smaps_rollup", "AnonHugePages:")
}

/// Memory the kernel says it can give new allocations without swapping
/// (`MemAvailable` of /proc/meminfo), if it says.
pub fn mem_available() -> Option<usize> {
    kb_field("/proc/meminfo", "MemAvailable:").and_then(|b| usize::try_from(b).ok())
}

/// The `key  N kB` line of a /proc file, in bytes.
fn kb_field(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_aligned_pages_are_advised() {
        let p = |a: usize| a as *const u8;
        assert_eq!(aligned(p(HUGE), 2 * HUGE), Some((HUGE, 2 * HUGE)));
        assert_eq!(aligned(p(HUGE + 1), 2 * HUGE), Some((2 * HUGE, HUGE)));
        assert_eq!(aligned(p(HUGE + 1), HUGE), None);
        assert_eq!(aligned(p(0), 0), None);
        assert_eq!(aligned(p(usize::MAX - 10), 100), None);
    }

    #[test]
    fn proc_fields_read_in_bytes() {
        let total = kb_field("/proc/meminfo", "MemTotal:").unwrap();
        assert!(total > 1 << 20 && total.is_multiple_of(1024), "{total}");
        assert!(mem_available().is_some_and(|a| (a as u64) <= total));
        assert_eq!(kb_field("/proc/meminfo", "NoSuchField:"), None);
        assert_eq!(kb_field("/proc/no-such-file", "MemTotal:"), None);
    }
}
