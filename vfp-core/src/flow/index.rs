//! A fixed-capacity, bucketized cuckoo hash index from a 64-bit hash to an
//! opaque `u32` value (a reference into a slab the caller owns).
//!
//! Built for a burst-oriented fast path: every lookup touches at most two
//! cache lines, both known from the hash alone, instead of a control-byte
//! group and a separate bucket array, so independent lookups of a burst
//! overlap their misses well (the flow table looks a whole burst up ahead
//! before processing it). Keys are not stored here: a slot holds a 32-bit
//! signature of the hash and the value, and the caller confirms a
//! signature match by comparing its own key through an `eq(value)`
//! closure.
//!
//! Layout: a bucket is 8 slots in one 64-byte cache line (8 signatures,
//! then 8 values). A hash picks a signature (its high 32 bits), a primary
//! bucket (its low bits) and an alternate bucket (the primary XOR a mix of
//! the signature). Because the alternate is derived from the signature and
//! XOR is its own inverse, an entry's other bucket can be computed from the
//! bucket it sits in and its signature, without the key: that is what lets
//! [`FlowIndex::insert`] move entries aside (cuckoo displacement) when both
//! buckets of a new entry are full.
//!
//! Capacity is fixed at construction (at most 75% of the slots used at the
//! requested size, which two-choice, 8-way cuckoo hashing fills without
//! failures in practice); nothing allocates afterwards. An insert that
//! finds no room within its search bound is refused with [`IndexFull`] and
//! leaves the index unchanged.

use core::fmt;
use std::collections::TryReserveError;

use arrayvec::ArrayVec;

use crate::flow::reserved;

/// Slots per bucket: 8 signatures + 8 values = one 64-byte cache line.
const SLOTS: usize = 8;

/// The signature of an empty slot. Real signatures are forced non-zero
/// ([`signature`]), so values stay fully opaque (any `u32` may be stored)
/// and a freshly zeroed table is empty.
const EMPTY: u32 = 0;

/// Most buckets the displacement search of one insert visits. With 2 root
/// buckets and 8 children per bucket, 256 nodes reach every bucket at
/// depth 2 (2 + 16 + 128) and part of depth 3, so a successful insert moves
/// at most 4 entries, and a failing one reads at most 256 * 8 buckets.
const SEARCH_NODES: usize = 256;
// Search nodes name their parent with a `u8`.
const _: () = assert!(SEARCH_NODES <= 256);

/// Multiplier that spreads a signature over the bucket bits (MurmurHash2's).
const ALT_MIX: u32 = 0x5bd1_e995;

/// An insert found no free slot within `SEARCH_NODES` (256) buckets of
/// displacement search; the index is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexFull;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    sig: [u32; SLOTS],
    val: [u32; SLOTS],
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        sig: [EMPTY; SLOTS],
        val: [0; SLOTS],
    };

    /// Bit `i` set when slot `i` holds signature `sig`. The compares go
    /// into one byte each, and one multiply gathers byte `i` (0 or 1) into
    /// bit `56 + i`: the multiplier has bit `7 * j + 7` set for each `j`,
    /// so byte `i` reaches bit `56 + i` only through `j = 7 - i`, and no
    /// two partial products share a bit, so nothing carries. (A loop
    /// shifting each compare into place compiled to eight scalar compares
    /// and shifts: 10 more instructions per lookup.)
    #[inline]
    fn matching(&self, sig: u32) -> u8 {
        const GATHER: u64 = 0x0102_0408_1020_4080;
        let eq = u64::from_le_bytes(self.sig.map(|s| u8::from(s == sig)));
        (eq.wrapping_mul(GATHER) >> 56) as u8
    }

    /// A guess at the value stored under `sig`, if a slot holds it: that
    /// slot's value, or the values of all such slots ORed when several
    /// do (a value the caller's confirmation then most likely rejects).
    /// Unlike [`Bucket::first`] this reduces over the slots with masks
    /// only, which the compiler turns into a dozen vector instructions
    /// instead of gathering a bit per slot.
    #[inline(always)]
    fn select(&self, sig: u32) -> Option<u32> {
        let (any, val) = (0..SLOTS).fold((0u32, 0u32), |(any, val), i| {
            let hit = 0u32.wrapping_sub(u32::from(self.sig[i] == sig));
            (any | hit, val | (self.val[i] & hit))
        });
        (any != 0).then_some(val)
    }

    /// The value in the first slot holding `sig`, if any.
    #[inline(always)]
    fn first(&self, sig: u32) -> Option<u32> {
        let mask = self.matching(sig);
        (mask != 0).then(|| self.val[mask.trailing_zeros() as usize % SLOTS])
    }

    #[inline]
    fn free_slot(&self) -> Option<usize> {
        slots(self.matching(EMPTY)).next()
    }
}

/// The slots whose bit is set in `mask`, lowest first.
#[inline]
fn slots(mut mask: u8) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let slot = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(slot)
    })
}

/// The first value among the slots of `bucket` in `mask` for which `eq`
/// holds.
#[inline(always)]
fn find_in(bucket: &Bucket, mut mask: u8, eq: &mut impl FnMut(u32) -> bool) -> Option<u32> {
    while mask != 0 {
        let v = bucket.val[mask.trailing_zeros() as usize % SLOTS];
        if eq(v) {
            return Some(v);
        }
        mask &= mask - 1;
    }
    None
}

/// The signature of a hash: its high half, never [`EMPTY`]. Mapping only 0
/// to 1 keeps the other 2^32 - 1 signatures equally likely.
#[inline]
fn signature(hash: u64) -> u32 {
    ((hash >> 32) as u32).max(1)
}

/// What a signature XORs into a bucket number to reach the other bucket.
/// Odd, so it is non-zero under any mask of two or more buckets and the two
/// buckets of an entry always differ.
#[inline]
fn alt_offset(sig: u32) -> usize {
    (sig.wrapping_mul(ALT_MIX) | 1) as usize
}

/// Where a hash may live.
#[derive(Clone, Copy)]
struct Place {
    sig: u32,
    primary: usize,
    alternate: usize,
}

/// One bucket reached by the displacement search: the entry in slot `slot`
/// of the parent's bucket has `bucket` as its other bucket. Roots (the new
/// entry's two buckets) have no parent.
#[derive(Clone, Copy)]
struct Node {
    bucket: usize,
    parent: Option<u8>,
    slot: u8,
}

/// A cuckoo hash index from a 64-bit hash to a `u32` value; see the module
/// documentation.
pub struct FlowIndex {
    buckets: Box<[Bucket]>,
    /// `buckets.len() - 1`; the length is a power of two.
    mask: usize,
    len: usize,
}

/// Buckets of an index for `max_entries` values (see
/// [`FlowIndex::with_capacity`]).
fn buckets_for(max_entries: usize) -> usize {
    max_entries.div_ceil(SLOTS * 3 / 4).max(1).next_power_of_two()
}

impl FlowIndex {
    /// An index for up to `max_entries` values: the next power of two of
    /// buckets at or above `max_entries / 6`, so a full index uses at most
    /// 75% of its slots. The only allocation the index ever makes.
    /// Aborts if the memory cannot be had, as `Vec::with_capacity` does;
    /// [`FlowIndex::try_with_capacity`] returns the failure instead.
    pub fn with_capacity(max_entries: usize) -> FlowIndex {
        Self::try_with_capacity(max_entries).unwrap_or_else(|e| panic!("flow index of {max_entries} entries: {e}"))
    }

    /// [`FlowIndex::with_capacity`], or why its memory cannot be had.
    pub fn try_with_capacity(max_entries: usize) -> Result<FlowIndex, TryReserveError> {
        let n = buckets_for(max_entries);
        let mut buckets = reserved(n)?;
        buckets.resize(n, Bucket::EMPTY);
        Ok(FlowIndex {
            buckets: buckets.into_boxed_slice(),
            mask: n - 1,
            len: 0,
        })
    }

    /// Bytes an index for `max_entries` values allocates.
    pub fn bytes_for(max_entries: usize) -> usize {
        buckets_for(max_entries).saturating_mul(std::mem::size_of::<Bucket>())
    }

    /// Values stored.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets (a power of two).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Number of slots: the hard upper bound on [`len`](Self::len).
    pub fn slots(&self) -> usize {
        self.buckets.len() * SLOTS
    }

    #[inline]
    fn place(&self, hash: u64) -> Place {
        let sig = signature(hash);
        let primary = hash as usize & self.mask;
        Place {
            sig,
            primary,
            alternate: self.other_bucket(primary, sig),
        }
    }

    /// The bucket an entry with signature `sig` sitting in bucket `b` could
    /// move to.
    #[inline]
    fn other_bucket(&self, b: usize, sig: u32) -> usize {
        (b ^ alt_offset(sig)) & self.mask
    }

    /// Bucket `b`. Indices are always masked, so the fallback is never
    /// taken; it only spares a panic path.
    #[inline]
    fn bucket(&self, b: usize) -> &Bucket {
        self.buckets.get(b).unwrap_or(&Bucket::EMPTY)
    }

    #[inline]
    fn set(&mut self, b: usize, slot: usize, sig: u32, val: u32) {
        if let Some(bucket) = self.buckets.get_mut(b) {
            bucket.sig[slot] = sig;
            bucket.val[slot] = val;
        }
    }

    /// The buckets' memory (start, bytes): for an app that backs it with
    /// huge pages (this crate never reads through the address).
    pub fn memory(&self) -> (*const u8, usize) {
        (self.buckets.as_ptr().cast(), std::mem::size_of_val(&*self.buckets))
    }

    /// Where the primary bucket of `hash` lives: the line a lookup reads
    /// first, for a caller that can prefetch it. (Only an address; this
    /// crate never reads through it.)
    #[inline]
    pub fn bucket_addr(&self, hash: u64) -> *const u8 {
        core::ptr::from_ref(self.bucket(hash as usize & self.mask)).cast()
    }

    /// The value stored under `hash` for which `eq` holds. `eq` is only
    /// called for values whose 32-bit signature matches, so it is almost
    /// always called once on a hit and not at all on a miss.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let sig = signature(hash);
        let primary = hash as usize & self.mask;
        // The common case, straight-line: the first slot of the primary
        // bucket with this signature holds the entry.
        if let Some(v) = self.bucket(primary).first(sig) {
            if eq(v) {
                return Some(v);
            }
        }
        self.find_rest(primary, sig, eq)
    }

    /// The rest of [`find`](Self::find): the other signature matches in
    /// the primary bucket (its first one already tried), then the
    /// alternate bucket. Out of line, so the common case stays small.
    #[inline(never)]
    fn find_rest(&self, primary: usize, sig: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let bucket = self.bucket(primary);
        let mask = bucket.matching(sig);
        let untried = mask & mask.wrapping_sub(1);
        if let Some(v) = find_in(bucket, untried, &mut eq) {
            return Some(v);
        }
        let alt = self.bucket(self.other_bucket(primary, sig));
        find_in(alt, alt.matching(sig), &mut eq)
    }

    /// The value a lookup of `hash` most likely ends at, without asking
    /// the caller's key: the value under its signature in the primary
    /// bucket, else in the alternate one ([`Bucket::select`]: when
    /// several slots of a bucket share the signature, their values ORed,
    /// which need not be any of them). Reads one line (two when the entry
    /// sits in its alternate bucket); a burst takes it for every packet
    /// ahead of processing, and confirms it with one key compare when it
    /// processes the packet, so a wrong guess costs a full lookup, never
    /// a wrong answer.
    #[inline]
    pub fn candidate(&self, hash: u64) -> Option<u32> {
        let sig = signature(hash);
        let primary = hash as usize & self.mask;
        match self.bucket(primary).select(sig) {
            Some(v) => Some(v),
            None => self.alternate_candidate(primary, sig),
        }
    }

    #[inline(never)]
    fn alternate_candidate(&self, primary: usize, sig: u32) -> Option<u32> {
        self.bucket(self.other_bucket(primary, sig)).select(sig)
    }

    /// Stores `val` under `hash`. The caller guarantees its key is not
    /// already stored (different keys may share a hash). When both buckets
    /// of `hash` are full, entries are moved to their other buckets along
    /// the shortest path found to a free slot; if there is none within the
    /// search bound nothing changes and [`IndexFull`] is returned.
    pub fn insert(&mut self, hash: u64, val: u32) -> Result<(), IndexFull> {
        let p = self.place(hash);
        let free = [p.primary, p.alternate]
            .into_iter()
            .find_map(|b| self.bucket(b).free_slot().map(|s| (b, s)));
        let (b, slot) = match free {
            Some(free) => free,
            None => self.make_room(p.primary, p.alternate).ok_or(IndexFull)?,
        };
        self.set(b, slot, p.sig, val);
        self.len += 1;
        Ok(())
    }

    /// Removes the entry of `hash` holding exactly `val`; false if there is
    /// none.
    pub fn remove(&mut self, hash: u64, val: u32) -> bool {
        self.remove_if(hash, |v| v == val).is_some()
    }

    /// Removes and returns the first value stored under `hash` for which
    /// `eq` holds.
    pub fn remove_if(&mut self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let p = self.place(hash);
        for b in [p.primary, p.alternate] {
            let bucket = self.bucket(b);
            if let Some(slot) = slots(bucket.matching(p.sig)).find(|&s| eq(bucket.val[s])) {
                let val = bucket.val[slot];
                self.set(b, slot, EMPTY, 0);
                self.len -= 1;
                return Some(val);
            }
        }
        None
    }

    /// Frees a slot in `primary` or `alternate` (both full) by moving
    /// entries to their other buckets, and returns it.
    ///
    /// A breadth-first search from both buckets over "the entry in this
    /// slot could move to that bucket" finds the shortest chain ending in a
    /// bucket with a free slot; the chain is then shifted from its free end
    /// back to the root, so every entry stays findable at every step.
    /// Nothing moves unless a chain is found. A bucket is never enqueued
    /// twice on one chain: a chain through the same bucket twice would move
    /// an entry that an earlier step had already replaced.
    fn make_room(&mut self, primary: usize, alternate: usize) -> Option<(usize, usize)> {
        let mut queue: ArrayVec<Node, SEARCH_NODES> = ArrayVec::new();
        for bucket in [primary, alternate] {
            if queue.iter().all(|n| n.bucket != bucket) {
                queue.push(Node {
                    bucket,
                    parent: None,
                    slot: 0,
                });
            }
        }
        let mut head = 0;
        while let Some(&node) = queue.get(head) {
            let sigs = self.bucket(node.bucket).sig;
            for (slot, &sig) in sigs.iter().enumerate() {
                let next = self.other_bucket(node.bucket, sig);
                if let Some(free) = self.bucket(next).free_slot() {
                    return Some(self.shift(&queue, head, slot, (next, free)));
                }
                if !queue.is_full() && !on_chain(&queue, head, next) {
                    queue.push(Node {
                        bucket: next,
                        parent: Some(head as u8),
                        slot: slot as u8,
                    });
                }
            }
            head += 1;
        }
        None
    }

    /// Moves the entry in `slot` of node `leaf`'s bucket to `to`, then each
    /// ancestor's entry into the slot just vacated, and returns the root
    /// slot left free.
    fn shift(&mut self, queue: &[Node], leaf: usize, slot: usize, to: (usize, usize)) -> (usize, usize) {
        let (mut index, mut slot, mut to) = (leaf, slot, to);
        while let Some(node) = queue.get(index) {
            let from = self.bucket(node.bucket);
            let (sig, val) = (from.sig[slot], from.val[slot]);
            self.set(to.0, to.1, sig, val);
            to = (node.bucket, slot);
            match node.parent {
                Some(parent) => (index, slot) = (usize::from(parent), usize::from(node.slot)),
                None => break,
            }
        }
        to
    }
}

/// Whether `bucket` is node `index`'s bucket or one of its ancestors'.
fn on_chain(queue: &[Node], index: usize, bucket: usize) -> bool {
    let mut node = queue.get(index);
    while let Some(n) = node {
        if n.bucket == bucket {
            return true;
        }
        node = n.parent.and_then(|p| queue.get(usize::from(p)));
    }
    false
}

impl fmt::Debug for FlowIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowIndex")
            .field("len", &self.len)
            .field("buckets", &self.buckets.len())
            .field("slots", &self.slots())
            .finish()
    }
}

#[cfg(test)]
mod tests;
