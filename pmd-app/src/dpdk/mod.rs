//! Safe types over dpdk-sys: THE ONLY place in pmd-app with `unsafe`.
//!
//! Everything above this module works with owned Rust values: an [`Mbuf`]
//! is freed exactly once (by `Drop` or by a successful transmit), a
//! [`Burst`] owns up to 32 of them, a [`Port`] names an ethdev by id.

pub mod eal;
pub mod events;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod pages;
pub mod port;
pub mod telemetry;

pub use eal::Eal;
pub use mbuf::{Burst, Mbuf, BURST_SIZE};
pub use mempool::Mempool;
pub use port::{Port, PortStats};

use std::ffi::CStr;

/// `rte_errno` of the calling thread and its text.
pub fn last_error() -> (i32, String) {
    // SAFETY: reads a thread-local int through the C accessor.
    let e = unsafe { dpdk_sys::dpdk_sys_rte_errno() };
    (e, strerror(e))
}

/// Text for a DPDK or libc error number (positive or negative).
pub fn strerror(e: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string, which we copy before returning.
    unsafe {
        let p = dpdk_sys::rte_strerror(e.abs());
        if p.is_null() {
            format!("error {e}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Timestamp counter and its frequency.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // DPDK's rte_rdtsc is a static inline function, reached through the
    // shim as a call; the instruction itself is what it runs.
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads the CPU timestamp counter; no memory is touched.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above.
    unsafe {
        dpdk_sys::rte_rdtsc()
    }
}

/// Starts loading the cache line at `p` (a hint: it never faults, and
/// any address is allowed).
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint to the cache; it does not
    // dereference `p` architecturally and cannot fault.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above (DPDK's portable prefetch).
    unsafe {
        dpdk_sys::rte_prefetch0(p as *const _)
    }
}

pub fn tsc_hz() -> u64 {
    // SAFETY: plain getter of a value EAL computed at init.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// Spin-wait hint.
#[inline(always)]
pub fn pause() {
    // SAFETY: a `pause` instruction.
    unsafe { dpdk_sys::rte_pause() }
}

pub fn version() -> String {
    // SAFETY: rte_version returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(dpdk_sys::rte_version()).to_string_lossy().into_owned() }
}
