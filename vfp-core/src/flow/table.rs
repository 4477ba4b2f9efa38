//! The unified flow table of one shard: an exact-match index from
//! [`FlowKey`] to either one side of a flow pair or a redirect to the
//! shard that holds the pair.
//!
//! Layout: pairs live in a slab (`Vec<Option<FlowPair>>` with a free
//! list); redirects in a second, smaller slab. The index is a cuckoo
//! [`FlowIndex`] of 4-byte entry references under [`FlowKey::table_hash`];
//! the key itself is read from the slab when comparing (the index's 32-bit
//! signatures make a wasted comparison rare, and a hit needs the pair's
//! cache lines anyway). A lookup reads one index cache line (two when the
//! entry sits in its alternate bucket) and then the pair; a burst reads
//! the index for all its keys before processing any (`Shard::look_ahead`,
//! [`FlowTable::candidate`]), so those misses overlap.
//!
//! Capacity is fixed at construction and nothing grows afterwards: the
//! slabs are reserved up front (committed by [`FlowTable::prefault`]) and
//! the index is sized for every entry the slabs can hold. When the slab of
//! pairs is full a new connection is refused ([`InsertError::Full`],
//! counted as `table-full` by the shard): evicting live connections to make
//! room would let a flood of new flows break established ones, while
//! refusing leaves existing traffic untouched and the table drains by
//! expiry. The index refusing an entry (its displacement search is bounded)
//! is reported the same way and leaves the table unchanged.

use crate::flow::index::FlowIndex;
use crate::flow::key::FlowKey;
use crate::flow::pair::{FlowPair, Side};
use crate::flow::reserved;
use std::collections::TryReserveError;

/// What a key leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Side `side` of the pair in slab slot `idx`.
    Pair { idx: u32, side: Side },
    /// The pair lives on shard `owner`.
    Redirect { owner: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The slab (of pairs or of redirects) is full.
    Full,
    /// A key is already in the table.
    Conflict,
}

#[derive(Clone, Copy, Debug)]
struct Redirect {
    key: FlowKey,
    owner: u16,
}

/// Entry references: `idx << 1 | side` for pairs, `REDIRECT | idx` for
/// redirects.
const REDIRECT: u32 = 1 << 31;
/// Largest slab either kind of entry can address.
pub const MAX_CAPACITY: usize = 1 << 30;

#[inline]
fn pair_ref(idx: u32, side: Side) -> u32 {
    idx << 1 | side as u32
}

/// The slot and side of a pair entry reference (see [`pair_ref`]).
#[inline(always)]
fn pair_of(e: u32) -> (u32, Side) {
    let side = if e & 1 == 0 { Side::Forward } else { Side::Reverse };
    (e >> 1, side)
}

pub struct FlowTable {
    index: FlowIndex,
    pairs: Vec<Option<FlowPair>>,
    free: Vec<u32>,
    live: usize,
    pair_cap: usize,
    redirects: Vec<Option<Redirect>>,
    free_redirects: Vec<u32>,
    live_redirects: usize,
    redirect_cap: usize,
}

impl std::fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable")
            .field("pairs", &self.live)
            .field("pair_cap", &self.pair_cap)
            .field("redirects", &self.live_redirects)
            .finish()
    }
}

impl FlowTable {
    /// A table for up to `pairs` flow pairs and `redirects` redirects
    /// (each clamped to [`MAX_CAPACITY`]).
    /// Aborts if the memory cannot be had, as `Vec::with_capacity` does;
    /// [`FlowTable::try_with_capacity`] returns the failure instead.
    pub fn with_capacity(pairs: usize, redirects: usize) -> FlowTable {
        Self::try_with_capacity(pairs, redirects)
            .unwrap_or_else(|e| panic!("flow table of {pairs} pairs, {redirects} redirects: {e}"))
    }

    /// [`FlowTable::with_capacity`], or why its memory cannot be had.
    /// Everything the table will ever allocate is reserved here.
    pub fn try_with_capacity(pairs: usize, redirects: usize) -> Result<FlowTable, TryReserveError> {
        let (pair_cap, redirect_cap) = (pairs.min(MAX_CAPACITY), redirects.min(MAX_CAPACITY));
        Ok(FlowTable {
            index: FlowIndex::try_with_capacity(2 * pair_cap + redirect_cap)?,
            pairs: reserved(pair_cap)?,
            free: reserved(pair_cap)?,
            live: 0,
            pair_cap,
            redirects: reserved(redirect_cap)?,
            free_redirects: reserved(redirect_cap)?,
            live_redirects: 0,
            redirect_cap,
        })
    }

    /// Bytes [`FlowTable::with_capacity`] allocates for these capacities:
    /// what an app checks against the memory it has before asking.
    pub fn bytes_for(pairs: usize, redirects: usize) -> usize {
        let (pair_cap, redirect_cap) = (pairs.min(MAX_CAPACITY), redirects.min(MAX_CAPACITY));
        let per_pair = std::mem::size_of::<Option<FlowPair>>() + std::mem::size_of::<u32>();
        let per_redirect = std::mem::size_of::<Option<Redirect>>() + std::mem::size_of::<u32>();
        FlowIndex::bytes_for(2 * pair_cap + redirect_cap)
            .saturating_add(pair_cap * per_pair)
            .saturating_add(redirect_cap * per_redirect)
    }

    /// Commits the memory of every pair slot now rather than on first
    /// use: a page fault costs about as much as creating a flow, and a
    /// table filling at millions of flows per second would take one every
    /// eight pairs. Writes each unused slot without making it live.
    pub fn prefault(&mut self) {
        self.prefault_until(|| false);
    }

    /// [`FlowTable::prefault`] that asks `stop` every 64 Ki slots whether
    /// to give up (a large table takes seconds to commit): false when it
    /// gave up, with the rest of the slab left to fault in on use.
    pub fn prefault_until(&mut self, mut stop: impl FnMut() -> bool) -> bool {
        for chunk in self.pairs.spare_capacity_mut().chunks_mut(1 << 16) {
            if stop() {
                return false;
            }
            for slot in chunk {
                slot.write(None);
            }
        }
        true
    }

    /// The table's large memory regions (start, bytes): the pair slab,
    /// the index and the redirect slab, each reserved up front at its
    /// full capacity. For an app that backs them with huge pages: at a
    /// million flows a lookup reads two random places in 600 MB, each a
    /// TLB miss on 4 KB pages. (Addresses only; nothing reads through
    /// them here.)
    pub fn memory(&self) -> [(*const u8, usize); 3] {
        fn reserved<T>(slab: &Vec<T>) -> (*const u8, usize) {
            (slab.as_ptr().cast(), slab.capacity() * std::mem::size_of::<T>())
        }
        [reserved(&self.pairs), self.index.memory(), reserved(&self.redirects)]
    }

    /// Live pairs.
    #[inline]
    pub fn len(&self) -> usize {
        self.live
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
    #[inline]
    pub fn is_full(&self) -> bool {
        self.live >= self.pair_cap
    }
    pub fn capacity(&self) -> usize {
        self.pair_cap
    }
    /// Live redirect entries.
    pub fn redirect_count(&self) -> usize {
        self.live_redirects
    }
    /// Slab slots ever used (the range expiry scans).
    #[inline]
    pub fn slots(&self) -> usize {
        self.pairs.len()
    }

    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<Lookup> {
        self.lookup_hashed(key.table_hash(), key)
    }

    /// Looks `key` up with its precomputed [`FlowKey::table_hash`].
    #[inline]
    pub fn lookup_hashed(&self, hash: u64, key: &FlowKey) -> Option<Lookup> {
        let e = self.index.find(hash, |e| self.holds(e, key))?;
        if e & REDIRECT != 0 {
            let r = self.redirects.get((e & !REDIRECT) as usize)?.as_ref()?;
            Some(Lookup::Redirect {
                owner: usize::from(r.owner),
            })
        } else {
            let (idx, side) = pair_of(e);
            Some(Lookup::Pair { idx, side })
        }
    }

    /// The pair side a lookup of `hash` most likely finds, from the
    /// index alone ([`FlowIndex::candidate`]): the key it holds is not
    /// compared, so the caller must confirm it.
    #[inline]
    pub fn candidate(&self, hash: u64) -> Option<(u32, Side)> {
        let e = self.index.candidate(hash)?;
        (e & REDIRECT == 0).then(|| pair_of(e))
    }

    /// The index line a lookup of `hash` reads first (see
    /// [`FlowIndex::bucket_addr`]).
    #[inline]
    pub fn index_addr(&self, hash: u64) -> *const u8 {
        self.index.bucket_addr(hash)
    }

    /// Where pair slot `idx` lives, if it is in the slab (an address for a
    /// prefetch; it may hold a free slot).
    #[inline]
    pub fn pair_addr(&self, idx: u32) -> Option<*const u8> {
        self.pairs.get(idx as usize).map(|p| core::ptr::from_ref(p).cast())
    }

    /// Whether entry `e` is stored under `key`. Redirects are compared
    /// out of line: the pair case is the one a hit takes.
    #[inline(always)]
    fn holds(&self, e: u32, key: &FlowKey) -> bool {
        if e & REDIRECT != 0 {
            return self.redirect_holds(e, key);
        }
        let (idx, side) = pair_of(e);
        self.pair(idx).is_some_and(|p| p.key(side) == key)
    }

    #[inline(never)]
    fn redirect_holds(&self, e: u32, key: &FlowKey) -> bool {
        match self.redirects.get((e & !REDIRECT) as usize) {
            Some(Some(r)) => r.key == *key,
            _ => false,
        }
    }

    #[inline]
    pub fn pair(&self, idx: u32) -> Option<&FlowPair> {
        self.pairs.get(idx as usize)?.as_ref()
    }
    #[inline]
    pub fn pair_mut(&mut self, idx: u32) -> Option<&mut FlowPair> {
        self.pairs.get_mut(idx as usize)?.as_mut()
    }

    /// Live pairs with their slot numbers.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &FlowPair)> + '_ {
        self.pairs
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i as u32, p)))
    }

    /// Inserts a pair under both its keys; returns its slot.
    pub fn insert_pair(&mut self, pair: FlowPair) -> Result<u32, InsertError> {
        if self.is_full() {
            return Err(InsertError::Full);
        }
        let [k0, k1] = pair.keys();
        let (h0, h1) = (k0.table_hash(), k1.table_hash());
        if k0 == k1 || self.lookup_hashed(h0, k0).is_some() || self.lookup_hashed(h1, k1).is_some() {
            return Err(InsertError::Conflict);
        }
        let idx = match self.free.pop() {
            Some(i) => {
                self.pairs[i as usize] = Some(pair);
                i
            }
            None => {
                // live < cap and no free slot: the slab has room to push.
                self.pairs.push(Some(pair));
                (self.pairs.len() - 1) as u32
            }
        };
        self.live += 1;
        let fwd = pair_ref(idx, Side::Forward);
        let indexed = self.index.insert(h0, fwd).and_then(|()| {
            self.index.insert(h1, pair_ref(idx, Side::Reverse)).inspect_err(|_| {
                self.index.remove(h0, fwd);
            })
        });
        if indexed.is_err() {
            self.pairs[idx as usize] = None;
            self.free.push(idx);
            self.live -= 1;
            return Err(InsertError::Full);
        }
        Ok(idx)
    }

    /// Removes the pair in slot `idx` and both its index entries.
    pub fn remove_pair(&mut self, idx: u32) -> Option<FlowPair> {
        let pair = self.pairs.get_mut(idx as usize)?.take()?;
        for side in [Side::Forward, Side::Reverse] {
            self.unindex(pair.key(side).table_hash(), pair_ref(idx, side));
        }
        self.free.push(idx);
        self.live -= 1;
        Some(pair)
    }

    /// Replaces the key of one side of a pair (a policy change altered the
    /// reverse tuple). The old key stays if the new one is taken.
    pub fn rekey(&mut self, idx: u32, side: Side, new: FlowKey) -> Result<(), InsertError> {
        let old = match self.pair(idx) {
            Some(p) => *p.key(side),
            None => return Err(InsertError::Conflict),
        };
        if old == new {
            return Ok(());
        }
        let (old_hash, new_hash) = (old.table_hash(), new.table_hash());
        if self.lookup_hashed(new_hash, &new).is_some() {
            return Err(InsertError::Conflict);
        }
        let r = pair_ref(idx, side);
        self.unindex(old_hash, r);
        if self.index.insert(new_hash, r).is_err() {
            // The old entry's slot was just freed, so it goes back.
            let _ = self.index.insert(old_hash, r);
            return Err(InsertError::Full);
        }
        if let Some(p) = self.pair_mut(idx) {
            p.sides[side.index()].key = new;
        }
        Ok(())
    }

    /// Points `key` at shard `owner`. An existing redirect is updated; a
    /// pair under that key wins ([`InsertError::Conflict`]).
    pub fn insert_redirect(&mut self, key: FlowKey, owner: usize) -> Result<(), InsertError> {
        let owner = u16::try_from(owner).map_err(|_| InsertError::Full)?;
        let h = key.table_hash();
        let found = self.index.find(h, |e| self.holds(e, &key));
        if let Some(e) = found {
            if e & REDIRECT == 0 {
                return Err(InsertError::Conflict);
            }
            if let Some(Some(r)) = self.redirects.get_mut((e & !REDIRECT) as usize) {
                r.owner = owner;
            }
            return Ok(());
        }
        if self.live_redirects >= self.redirect_cap {
            return Err(InsertError::Full);
        }
        let r = Some(Redirect { key, owner });
        let idx = match self.free_redirects.pop() {
            Some(i) => {
                self.redirects[i as usize] = r;
                i
            }
            None => {
                self.redirects.push(r);
                (self.redirects.len() - 1) as u32
            }
        };
        self.live_redirects += 1;
        if self.index.insert(h, REDIRECT | idx).is_err() {
            self.redirects[idx as usize] = None;
            self.free_redirects.push(idx);
            self.live_redirects -= 1;
            return Err(InsertError::Full);
        }
        Ok(())
    }

    /// Removes the redirect of `key` if it points at `owner` (a newer
    /// redirect to another shard is left alone).
    pub fn remove_redirect(&mut self, key: &FlowKey, owner: usize) -> bool {
        let h = key.table_hash();
        let redirects = &self.redirects;
        let Some(e) = self.index.remove_if(h, |e| {
            e & REDIRECT != 0
                && redirects
                    .get((e & !REDIRECT) as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|r| r.key == *key && usize::from(r.owner) == owner)
        }) else {
            return false;
        };
        let idx = e & !REDIRECT;
        self.redirects[idx as usize] = None;
        self.free_redirects.push(idx);
        self.live_redirects -= 1;
        true
    }

    fn unindex(&mut self, hash: u64, r: u32) {
        self.index.remove(hash, r);
    }
}

#[cfg(test)]
mod tests;
