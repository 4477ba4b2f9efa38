//! The packet-buffer pool every port allocates from.

use std::ffi::CString;
use std::ptr::NonNull;

pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    size: u32,
}

// SAFETY: rte_mempool is designed for concurrent use from all lcores;
// the handle is just a pointer to shared memory.
unsafe impl Send for Mempool {}
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pktmbuf pool of `n` mbufs with `data_room` bytes each
    /// (headroom included) and a per-lcore cache of `cache`.
    pub fn new(name: &str, n: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool, String> {
        let cname = CString::new(name).map_err(|_| "mempool name contains NUL".to_string())?;
        // SAFETY: cname is a valid C string; the returned pointer is
        // either NULL (checked) or a pool that lives until rte_mempool_free.
        let p = unsafe { dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        match NonNull::new(p) {
            Some(raw) => Ok(Mempool { raw, size: n }),
            None => {
                let (_, msg) = super::last_error();
                Err(format!(
                    "cannot create mempool of {n} mbufs x {data_room} B: {msg} (not enough hugepage memory? try -m or --no-huge -m 1024)"
                ))
            }
        }
    }

    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs currently out of the pool (in rings, bursts, hand-off queues,
    /// or leaked). Includes other lcores' caches as in use.
    pub fn in_use(&self) -> u32 {
        // SAFETY: reads counters of a live pool.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) as u32 }
    }

    pub fn available(&self) -> u32 {
        // SAFETY: reads counters of a live pool.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) as u32 }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: every port using the pool is closed before the pool is
        // dropped (main.rs teardown order).
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
