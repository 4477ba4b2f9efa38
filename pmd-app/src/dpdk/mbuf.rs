//! Owned packet buffers and bursts of them.
//!
//! An [`Mbuf`] owns one `rte_mbuf`: it is freed by `Drop` unless a
//! transmit consumed it, so a leak or a double free cannot be written in
//! safe code. A [`Burst`] is an array of up to [`BURST_SIZE`] mbufs laid
//! out exactly as `rte_eth_rx_burst`/`tx_burst` expect.

use arrayvec::ArrayVec;
use std::ptr::NonNull;

pub const BURST_SIZE: usize = 32;

/// One owned mbuf.
#[repr(transparent)]
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an Mbuf is uniquely owned; DPDK mbufs may be freed or sent from
// any lcore, so moving the owner between threads is sound.
unsafe impl Send for Mbuf {}

impl Mbuf {
    #[inline(always)]
    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: the pointer is valid and uniquely owned while self lives.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn raw_mut(&mut self) -> &mut dpdk_sys::rte_mbuf {
        // SAFETY: as above, and &mut self guarantees exclusive access.
        unsafe { self.0.as_mut() }
    }

    /// Length of the first segment's data.
    #[inline(always)]
    pub fn data_len(&self) -> usize {
        self.raw().data_len as usize
    }

    /// Total packet length over all segments.
    #[inline(always)]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    #[inline(always)]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// The first segment's data.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's
        // data room by the mbuf invariants DPDK maintains.
        unsafe { std::slice::from_raw_parts((m.buf_addr as *const u8).add(m.data_off as usize), m.data_len as usize) }
    }

    /// The whole data room of the first segment (headroom + data +
    /// tailroom) and the packet's offset and length inside it: the
    /// headroom contract of `vfp_core::frame::Frame`.
    #[inline(always)]
    pub fn room_mut(&mut self) -> (&mut [u8], usize, usize) {
        let m = self.raw_mut();
        let (off, len) = (m.data_off as usize, m.data_len as usize);
        // SAFETY: buf_addr..buf_addr+buf_len is the mbuf's data room,
        // exclusively ours through &mut self.
        let room = unsafe { std::slice::from_raw_parts_mut(m.buf_addr as *mut u8, m.buf_len as usize) };
        (room, off, len)
    }

    /// Moves the first segment's data window to `start..start+len` inside
    /// the data room (after an encap/decap), keeping pkt_len consistent.
    #[inline(always)]
    pub fn set_window(&mut self, start: usize, len: usize) {
        let m = self.raw_mut();
        debug_assert!(start + len <= m.buf_len as usize);
        let old = m.data_len as i64;
        m.data_off = start as u16;
        m.data_len = len as u16;
        m.pkt_len = (m.pkt_len as i64 + (len as i64 - old)) as u32;
    }

    /// Asks the NIC to compute the IPv4 header checksum of the header at
    /// `l2_len` (length `l3_len`) on transmit.
    #[inline(always)]
    pub fn offload_ipv4_checksum(&mut self, l2_len: u8, l3_len: u16) {
        let m = self.raw_mut();
        m.ol_flags |= dpdk_sys::RTE_MBUF_F_TX_IPV4 | dpdk_sys::RTE_MBUF_F_TX_IP_CKSUM;
        // tx_offload bit-fields: l2_len (7 bits), then l3_len (9 bits).
        m.__bindgen_anon_3.tx_offload = u64::from(l2_len & 0x7f) | (u64::from(l3_len & 0x1ff) << 7);
    }

    /// The (l2_len, l3_len) of an IPv4 checksum left to the NIC, if any.
    #[inline(always)]
    pub fn ipv4_checksum_offloaded(&self) -> Option<(usize, usize)> {
        let m = self.raw();
        if m.ol_flags & dpdk_sys::RTE_MBUF_F_TX_IP_CKSUM == 0 {
            return None;
        }
        // SAFETY: tx_offload is a plain u64 view of the union.
        let t = unsafe { m.__bindgen_anon_3.tx_offload };
        Some(((t & 0x7f) as usize, ((t >> 7) & 0x1ff) as usize))
    }

    /// Drops the IPv4 checksum offload request (after computing it).
    #[inline(always)]
    pub fn clear_ipv4_checksum_offload(&mut self) {
        self.raw_mut().ol_flags &= !(dpdk_sys::RTE_MBUF_F_TX_IPV4 | dpdk_sys::RTE_MBUF_F_TX_IP_CKSUM);
    }

    /// Prefetches the first cache line of packet data.
    #[inline(always)]
    pub fn prefetch(&self) {
        let m = self.raw();
        super::prefetch((m.buf_addr as *const u8).wrapping_add(m.data_off as usize));
    }

    /// Gives up ownership (the pointer now belongs to whoever takes it).
    #[inline(always)]
    pub fn into_raw(self) -> *mut dpdk_sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `p` must be a valid mbuf that nobody else owns or will free.
    #[inline(always)]
    pub unsafe fn from_raw(p: *mut dpdk_sys::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(p).map(Mbuf)
    }

    /// Allocates a fresh mbuf from `pool`.
    pub fn alloc(pool: &super::Mempool) -> Option<Mbuf> {
        // SAFETY: the pool is live; NULL is checked.
        unsafe { Mbuf::from_raw(dpdk_sys::rte_pktmbuf_alloc(pool.as_ptr())) }
    }
}

impl Drop for Mbuf {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (chain) and nobody else frees it.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// Up to [`BURST_SIZE`] owned mbufs, contiguous as DPDK expects.
#[derive(Default)]
pub struct Burst {
    pub(crate) mbufs: ArrayVec<Mbuf, BURST_SIZE>,
}

impl Burst {
    pub fn new() -> Burst {
        Burst { mbufs: ArrayVec::new() }
    }
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.mbufs.len()
    }
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.mbufs.is_empty()
    }
    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.mbufs.is_full()
    }
    /// Appends; hands the mbuf back when the burst is full.
    #[inline(always)]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        self.mbufs.try_push(m).map_err(|e| e.element())
    }
    #[inline(always)]
    pub fn pop(&mut self) -> Option<Mbuf> {
        self.mbufs.pop()
    }
    /// Takes every mbuf out, in order.
    #[inline(always)]
    pub fn drain(&mut self) -> arrayvec::Drain<'_, Mbuf, BURST_SIZE> {
        self.mbufs.drain(..)
    }
    #[inline(always)]
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.mbufs.iter()
    }
    /// Frees every mbuf and returns how many there were.
    pub fn free_all(&mut self) -> usize {
        let n = self.mbufs.len();
        self.mbufs.clear();
        n
    }

    /// Space left, as a raw pointer array for rx.
    #[inline(always)]
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, u16) {
        let len = self.mbufs.len();
        let spare = (BURST_SIZE - len) as u16;
        // SAFETY: Mbuf is repr(transparent) over a non-null pointer, so the
        // ArrayVec's storage is a *mut rte_mbuf array; we only compute the
        // address of the first unused slot.
        let p = unsafe { (self.mbufs.as_mut_ptr() as *mut *mut dpdk_sys::rte_mbuf).add(len) };
        (p, spare)
    }

    /// Records that `n` more slots were filled by rx.
    ///
    /// # Safety
    /// The `n` slots after the current length hold valid owned mbufs.
    #[inline(always)]
    pub(crate) unsafe fn commit_rx(&mut self, n: usize) {
        let len = self.mbufs.len();
        self.mbufs.set_len(len + n);
    }

    /// Forgets the first `n` mbufs (a transmit consumed them) and shifts
    /// the rest down.
    #[inline(always)]
    pub(crate) fn consume_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        for m in self.mbufs.drain(..n) {
            std::mem::forget(m);
        }
    }

    #[inline(always)]
    pub(crate) fn as_raw(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, u16) {
        (
            self.mbufs.as_mut_ptr() as *mut *mut dpdk_sys::rte_mbuf,
            self.mbufs.len() as u16,
        )
    }

    #[inline(always)]
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.mbufs.iter_mut()
    }
}
