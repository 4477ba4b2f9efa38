//! The headroom contract between vfp-core and whoever owns packet memory.
//!
//! A [`Frame`] is a packet inside a larger buffer: `buf` is the whole data
//! room (in DPDK: the mbuf's buffer), the packet occupies
//! `buf[start..start + len]`, and the bytes before `start` are headroom an
//! encapsulation may grow into. Transpositions move `start`/`len`; the
//! owner of the buffer copies them back (mbuf `data_off` / `data_len`).

#[derive(Debug)]
pub struct Frame<'a> {
    buf: &'a mut [u8],
    start: usize,
    len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

impl<'a> Frame<'a> {
    /// `start + len` must not exceed `buf.len()`; returns None otherwise.
    pub fn new(buf: &'a mut [u8], start: usize, len: usize) -> Option<Frame<'a>> {
        if start.checked_add(len)? > buf.len() {
            return None;
        }
        Some(Frame { buf, start, len })
    }
    /// A frame with no headroom over a whole slice.
    pub fn whole(buf: &'a mut [u8]) -> Frame<'a> {
        let len = buf.len();
        Frame { buf, start: 0, len }
    }
    #[inline]
    pub fn start(&self) -> usize {
        self.start
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start
    }
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
    /// Grows the packet at the front by `n` bytes (uninitialised content).
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8], NoRoom> {
        if n > self.start {
            return Err(NoRoom);
        }
        self.start -= n;
        self.len += n;
        Ok(&mut self.buf[self.start..self.start + n])
    }
    /// Removes `n` bytes from the front.
    #[inline]
    pub fn adj(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.len {
            return Err(NoRoom);
        }
        self.start += n;
        self.len -= n;
        Ok(())
    }
    /// Removes `n` bytes from the end.
    #[inline]
    pub fn trim(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.len {
            return Err(NoRoom);
        }
        self.len -= n;
        Ok(())
    }
}
