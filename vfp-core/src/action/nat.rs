//! App-wide ownership of source-NAT ports, shared by every shard without
//! locks on the allocate/release path.
//!
//! Each NAT address has a 65,536-bit bitmap (1,024 `AtomicU64`): a set bit
//! is a port held by some flow pair. A shard claims a port with `fetch_or`
//! (whoever flips the bit from 0 to 1 owns it, so two shards can never
//! hold the same port) and gives it back with `fetch_and` when the pair is
//! removed (expiry, flush, policy reconciliation).
//!
//! Addresses live in a fixed table of [`MAX_ADDRS`] slots whose bitmaps are
//! allocated up front. The control thread registers addresses (a mutex
//! serialises registrations only); a slot's address is written before the
//! slot count is published with `Release`, and readers load the count with
//! `Acquire`, so a worker never sees a half-registered slot.
//!
//! A slot stays with its address while a policy in force names it or a
//! connection holds one of its ports (a port of an address that a newer
//! policy dropped stays releasable, so old connections' ports are safe).
//! Once neither holds, a registration that finds no unused slot *reuses*
//! it for a new address. A shard that claims a port checks, after setting
//! the bit, that the slot still has the address it meant; the reuse
//! checks, after changing the address, that no bit is set, and puts the
//! old address back if one is. Both sides use sequentially consistent
//! operations, so at least one of them sees the other: a port is never
//! held under an address other than its claimer's.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most NAT addresses the app can hold.
pub const MAX_ADDRS: usize = 64;

const WORDS: usize = 65536 / 64;

/// A port held by a flow pair: which address slot and which port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatBinding {
    pub slot: u8,
    pub addr: [u8; 4],
    pub port: u16,
}

/// The address table is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("NAT address table full ({MAX_ADDRS} addresses)")]
pub struct NatTableFull;

struct AddrSlot {
    /// The IPv4 address (as a u32), or [`IN_TRANSIT`] while a reuse
    /// decides whether the slot may change hands.
    addr: AtomicU64,
    bits: Box<[AtomicU64]>,
}

/// A slot's address value that no address matches.
const IN_TRANSIT: u64 = 1 << 32;

fn addr_value(a: [u8; 4]) -> u64 {
    u64::from(u32::from_be_bytes(a))
}

impl AddrSlot {
    fn addr(&self) -> Option<[u8; 4]> {
        u32::try_from(self.addr.load(Ordering::SeqCst))
            .ok()
            .map(u32::to_be_bytes)
    }

    /// After setting `bit` of `word`: whether the slot still has `addr`.
    /// If it was reused meanwhile, the bit is cleared again.
    #[inline]
    fn holds(&self, addr: [u8; 4], word: &AtomicU64, bit: u64) -> bool {
        if self.addr.load(Ordering::SeqCst) == addr_value(addr) {
            return true;
        }
        word.fetch_and(!bit, Ordering::SeqCst);
        false
    }
}

/// Port bitmaps of every NAT address.
pub struct NatPorts {
    slots: Box<[AddrSlot]>,
    published: AtomicUsize,
    register_lock: Mutex<()>,
}

impl Default for NatPorts {
    fn default() -> Self {
        NatPorts::new()
    }
}

impl std::fmt::Debug for NatPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatPorts")
            .field("addrs", &self.published.load(Ordering::Acquire))
            .finish()
    }
}

/// Every SNAT pool address `policy` names, in rule order (repeats
/// included).
fn snat_addrs(policy: &crate::policy::Policy) -> impl Iterator<Item = [u8; 4]> + '_ {
    policy
        .layers()
        .iter()
        .flat_map(|l| l.rules.iter())
        .filter_map(|r| match &r.verb {
            crate::policy::Verb::Snat(spec) => Some(spec.addrs.iter().copied()),
            _ => None,
        })
        .flatten()
}

impl NatPorts {
    /// An empty table (bitmaps for all [`MAX_ADDRS`] slots, 512 KiB).
    pub fn new() -> NatPorts {
        let slots = (0..MAX_ADDRS)
            .map(|_| AddrSlot {
                addr: AtomicU64::new(0),
                bits: (0..WORDS).map(|_| AtomicU64::new(0)).collect(),
            })
            .collect();
        NatPorts {
            slots,
            published: AtomicUsize::new(0),
            register_lock: Mutex::new(()),
        }
    }

    /// A table with `addrs` registered.
    pub fn with_addrs<I: IntoIterator<Item = [u8; 4]>>(addrs: I) -> Result<NatPorts, NatTableFull> {
        let n = NatPorts::new();
        for a in addrs {
            n.register(a)?;
        }
        Ok(n)
    }

    /// Registers every SNAT pool address of `policy` (call before
    /// publishing the policy to the shards), all or none: a policy whose
    /// new addresses do not all fit registers none of them. Returns how
    /// many addresses the policy names. Same as
    /// [`NatPorts::register_replacing`] with no policy in force.
    pub fn register_policy(&self, policy: &crate::policy::Policy) -> Result<usize, NatTableFull> {
        self.register_replacing(policy, None, true)
    }

    /// [`NatPorts::register_policy`] for a policy that replaces
    /// `installed`: when no slot is unused and `may_reuse` (no shard runs
    /// a policy older than `installed`), a new address takes the slot of
    /// an address that neither policy names and no connection holds a
    /// port of ([`NatPorts::room`]).
    pub fn register_replacing(
        &self,
        policy: &crate::policy::Policy,
        installed: Option<&crate::policy::Policy>,
        may_reuse: bool,
    ) -> Result<usize, NatTableFull> {
        let _g = self.lock();
        let new = self.new_addrs(policy);
        let (fresh, reused) = new.split_at(new.len().min(self.unused_slots()));
        // Take every slot to reuse out of service first, so that a refusal
        // leaves the table as it was (all or none).
        let mut candidates = self.reusable(policy, installed, may_reuse);
        let mut detached: Vec<(u8, u64)> = Vec::new();
        while detached.len() < reused.len() {
            let Some(slot) = candidates.pop() else {
                for (slot, old) in detached {
                    self.slots[usize::from(slot)].addr.store(old, Ordering::SeqCst);
                }
                return Err(NatTableFull);
            };
            // A shard still on an older policy may just have claimed a
            // port of it: then it stays, and the next candidate is tried.
            if let Some(old) = self.detach(slot) {
                detached.push((slot, old));
            }
        }
        for a in fresh {
            self.register_locked(*a)?;
        }
        for (a, (slot, _)) in reused.iter().zip(detached) {
            self.slots[usize::from(slot)]
                .addr
                .store(addr_value(*a), Ordering::SeqCst);
        }
        Ok(snat_addrs(policy).count())
    }

    /// Distinct SNAT addresses of `policy` that have no slot.
    fn new_addrs(&self, policy: &crate::policy::Policy) -> Vec<[u8; 4]> {
        let mut new: Vec<[u8; 4]> = snat_addrs(policy).filter(|a| self.slot_of(*a).is_none()).collect();
        new.sort_unstable();
        new.dedup();
        new
    }

    /// Slots whose address neither `policy` nor `installed` names and of
    /// which no port is held, in slot order (none unless `may_reuse`).
    fn reusable(
        &self,
        policy: &crate::policy::Policy,
        installed: Option<&crate::policy::Policy>,
        may_reuse: bool,
    ) -> Vec<u8> {
        if !may_reuse {
            return Vec::new();
        }
        let named: Vec<[u8; 4]> = snat_addrs(policy)
            .chain(installed.into_iter().flat_map(snat_addrs))
            .collect();
        let n = self.published.load(Ordering::Acquire);
        (0..n as u8)
            .filter(|&i| {
                self.slots[usize::from(i)]
                    .addr()
                    .is_some_and(|a| !named.contains(&a) && self.in_use(i) == 0)
            })
            .collect()
    }

    /// Takes `slot` out of service for a reuse unless a port of it is
    /// held: returns its address value, to restore or replace. While out
    /// of service no claim can succeed on it (its address matches none),
    /// and the bits are checked after the address changed, so a claim
    /// that got in before is seen (both sides are sequentially
    /// consistent). Under the registration lock.
    fn detach(&self, slot: u8) -> Option<u64> {
        let s = &self.slots[usize::from(slot)];
        let old = s.addr.swap(IN_TRANSIT, Ordering::SeqCst);
        if s.bits.iter().any(|w| w.load(Ordering::SeqCst) != 0) {
            s.addr.store(old, Ordering::SeqCst);
            return None;
        }
        Some(old)
    }

    /// How many distinct SNAT addresses of `policy` have no slot.
    pub fn unregistered(&self, policy: &crate::policy::Policy) -> usize {
        self.new_addrs(policy).len()
    }

    /// Slots never used yet.
    pub fn unused_slots(&self) -> usize {
        MAX_ADDRS - self.published.load(Ordering::Acquire)
    }

    /// Slots a registration of `policy` replacing `installed` could give
    /// to new addresses: the unused ones and, if `may_reuse`, those whose
    /// address neither policy names and no connection holds a port of.
    pub fn room(
        &self,
        policy: &crate::policy::Policy,
        installed: Option<&crate::policy::Policy>,
        may_reuse: bool,
    ) -> usize {
        self.unused_slots() + self.reusable(policy, installed, may_reuse).len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A poisoned lock only means another registration panicked; the
        // table itself is consistent, so carry on.
        self.register_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `addr` available to the shards; idempotent. Control thread
    /// only (it may block briefly on other registrations, never on shards).
    pub fn register(&self, addr: [u8; 4]) -> Result<u8, NatTableFull> {
        let _g = self.lock();
        self.register_locked(addr)
    }

    fn register_locked(&self, addr: [u8; 4]) -> Result<u8, NatTableFull> {
        if let Some(s) = self.slot_of(addr) {
            return Ok(s);
        }
        let n = self.published.load(Ordering::Relaxed);
        if n >= MAX_ADDRS {
            return Err(NatTableFull);
        }
        self.slots[n].addr.store(addr_value(addr), Ordering::Relaxed);
        self.published.store(n + 1, Ordering::Release);
        Ok(n as u8)
    }

    /// The slot of a registered address.
    #[inline]
    pub fn slot_of(&self, addr: [u8; 4]) -> Option<u8> {
        let n = self.published.load(Ordering::Acquire);
        let a = addr_value(addr);
        self.slots[..n]
            .iter()
            .position(|s| s.addr.load(Ordering::Relaxed) == a)
            .map(|i| i as u8)
    }

    /// Registered addresses, in slot order (a slot in the middle of a
    /// reuse is left out).
    pub fn addrs(&self) -> Vec<[u8; 4]> {
        let n = self.published.load(Ordering::Acquire);
        self.slots[..n].iter().filter_map(AddrSlot::addr).collect()
    }

    /// Claims `port` of `slot` if it is free and the slot still has
    /// `addr` (see the module notes on reuse).
    #[inline]
    pub fn try_claim(&self, slot: u8, addr: [u8; 4], port: u16) -> bool {
        let Some(s) = self.slot(slot) else {
            return false;
        };
        let bit = 1u64 << (port % 64);
        let w = &s.bits[usize::from(port / 64)];
        if w.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
            return false;
        }
        s.holds(addr, w, bit)
    }

    /// True when `port` of `slot` is held.
    pub fn is_claimed(&self, slot: u8, port: u16) -> bool {
        self.slot(slot)
            .is_some_and(|s| s.bits[usize::from(port / 64)].load(Ordering::Acquire) & (1 << (port % 64)) != 0)
    }

    /// Gives a binding's port back.
    #[inline]
    pub fn release(&self, b: NatBinding) {
        if let Some(s) = self.slot(b.slot) {
            let bit = 1u64 << (b.port % 64);
            s.bits[usize::from(b.port / 64)].fetch_and(!bit, Ordering::AcqRel);
        }
    }

    /// Number of ports held on `slot` (control plane; O(1024)).
    pub fn in_use(&self, slot: u8) -> u32 {
        self.slot(slot).map_or(0, |s| {
            s.bits.iter().map(|w| w.load(Ordering::Relaxed).count_ones()).sum()
        })
    }

    /// Claims some free port in `lo..=hi` of `slot`, scanning whole bitmap
    /// words from `start` (wrapping inside the range). At most one pass
    /// over the range's words: O(1024) loads when the pool is exhausted.
    pub fn claim_any(&self, slot: u8, addr: [u8; 4], lo: u16, hi: u16, start: u16) -> Option<u16> {
        let s = self.slot(slot)?;
        if lo > hi {
            return None;
        }
        let start = if (lo..=hi).contains(&start) { start } else { lo };
        let (wlo, whi) = (usize::from(lo / 64), usize::from(hi / 64));
        let nwords = whi - wlo + 1;
        let w0 = usize::from(start / 64);
        for i in 0..=nwords {
            let w = wlo + (w0 - wlo + i) % nwords;
            // Only the range's ports of the edge words are candidates.
            let mut mask = !0u64;
            if w == wlo {
                mask &= !0u64 << (lo % 64);
            }
            if w == whi {
                mask &= !0u64 >> (63 - hi % 64);
            }
            if i == 0 {
                mask &= !0u64 << (start % 64);
            } else if i == nwords {
                // Back at the start word: the ports below `start`.
                mask &= !(!0u64 << (start % 64));
            }
            loop {
                let cur = s.bits[w].load(Ordering::Acquire);
                let free = !cur & mask;
                if free == 0 {
                    break;
                }
                let bit = free.trailing_zeros();
                let b = 1u64 << bit;
                if s.bits[w].fetch_or(b, Ordering::SeqCst) & b == 0 {
                    return s.holds(addr, &s.bits[w], b).then_some((w * 64) as u16 + bit as u16);
                }
                // Lost a race for that bit: look at the word again.
            }
        }
        None
    }

    #[inline]
    fn slot(&self, slot: u8) -> Option<&AddrSlot> {
        let n = self.published.load(Ordering::Acquire);
        self.slots[..n].get(usize::from(slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    const A: [u8; 4] = [192, 0, 2, 1];

    #[test]
    fn register_is_idempotent_and_bounded() {
        let n = NatPorts::new();
        assert_eq!(n.register(A), Ok(0));
        assert_eq!(n.register(A), Ok(0));
        assert_eq!(n.slot_of(A), Some(0));
        assert_eq!(n.slot_of([1, 1, 1, 1]), None);
        for i in 1..MAX_ADDRS {
            assert_eq!(n.register([10, 0, 0, i as u8]), Ok(i as u8));
        }
        assert_eq!(n.register([10, 1, 0, 0]), Err(NatTableFull));
        assert_eq!(n.addrs().len(), MAX_ADDRS);
    }

    fn snat_policy(addrs: &[&str]) -> crate::policy::Policy {
        let list = addrs.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
        let text = format!(
            "[[layers]]\nname = \"nat\"\ndefault = \"allow\"\n[[layers.groups]]\n[[layers.groups.rules]]\n\
             id = 1\npriority = 1\ndirection = \"out\"\naction = \"snat\"\n\
             snat = {{ addrs = [{list}], ports = \"1024-2047\" }}\n"
        );
        let vports = [crate::topology::VportInfo::new("vm", crate::topology::Role::Vm, 1)];
        crate::policy::load_str(&text, "<test>", &vports).unwrap()
    }

    /// A policy whose new addresses do not all fit registers none of them
    /// (a failed load does not use slots up); addresses already registered
    /// need no slot.
    #[test]
    fn a_policy_registers_all_its_addresses_or_none() {
        let n = NatPorts::new();
        // 63 addresses, each with a connection holding a port.
        for i in 0..MAX_ADDRS - 1 {
            let a = [10, 0, 0, i as u8];
            let slot = n.register(a).unwrap();
            assert!(n.try_claim(slot, a, 1024));
        }
        let two_new = snat_policy(&["192.0.2.1", "192.0.2.2", "10.0.0.5"]);
        assert_eq!(n.unregistered(&two_new), 2);
        assert_eq!(n.room(&two_new, None, true), 1);
        assert_eq!(n.register_policy(&two_new), Err(NatTableFull));
        assert_eq!((n.unused_slots(), n.slot_of([192, 0, 2, 1])), (1, None));
        let one_new = snat_policy(&["192.0.2.2", "10.0.0.5"]);
        assert_eq!(n.unregistered(&one_new), 1);
        assert_eq!(n.register_policy(&one_new), Ok(2));
        assert_eq!(n.unused_slots(), 0);
        assert_eq!(n.register_policy(&snat_policy(&["10.0.0.1"])), Ok(1));
    }

    /// With every slot used, a new address takes the slot of one that no
    /// policy in force names and no connection holds; never one with a
    /// held port or one the installed policy names.
    #[test]
    fn a_slot_is_reused_once_its_address_is_unnamed_and_idle() {
        let n = NatPorts::new();
        for i in 0..MAX_ADDRS {
            n.register([10, 0, 0, i as u8]).unwrap();
        }
        let old = [10, 0, 0, 7];
        assert!(n.try_claim(7, old, 2000), "a connection holds a port of 10.0.0.7");
        let installed = snat_policy(&["10.0.0.0", "10.0.0.1"]);
        let next = snat_policy(&["192.0.2.1"]);
        // Slots 0 and 1 are named, slot 7 is busy: 61 are reusable.
        assert_eq!(n.room(&next, Some(&installed), true), MAX_ADDRS - 3);
        assert_eq!(n.register_replacing(&next, Some(&installed), true), Ok(1));
        let slot = n.slot_of([192, 0, 2, 1]).expect("registered");
        assert!(![0, 1, 7].contains(&slot), "took slot {slot}");
        assert_eq!(n.slot_of(old), Some(7));
        // The old address of the reused slot is gone; its new one works.
        assert_eq!(n.addrs().len(), MAX_ADDRS);
        assert!(n.try_claim(slot, [192, 0, 2, 1], 1024));

        // A claim that meant the slot's previous address gets nothing.
        let prev = [10, 0, 0, slot];
        assert!(!n.try_claim(slot, prev, 1025));
        assert_eq!(n.claim_any(slot, prev, 1024, 2047, 1024), None);
        assert_eq!(n.in_use(slot), 1);

        // The connection on 10.0.0.7 ends: its slot can go too.
        n.release(NatBinding {
            slot: 7,
            addr: old,
            port: 2000,
        });
        let all_new: Vec<String> = (0..MAX_ADDRS - 2).map(|i| format!("198.18.0.{i}")).collect();
        let all_new: Vec<&str> = all_new.iter().map(String::as_str).collect();
        let big = snat_policy(&all_new);
        // Named by `installed`: 2; holding a port: the reused slot.
        assert_eq!(n.room(&big, Some(&installed), true), MAX_ADDRS - 3);
        assert_eq!(n.register_replacing(&big, Some(&installed), true), Err(NatTableFull));
        assert_eq!(n.slot_of([198, 18, 0, 0]), None, "none registered");
        assert_eq!(n.register_replacing(&big, None, true), Ok(MAX_ADDRS - 2));
        assert_eq!(n.slot_of([192, 0, 2, 1]), Some(slot), "the busy slot kept its address");
    }

    /// A shard claiming ports of a slot while the control thread reuses
    /// it and another: a port is never held under another address than
    /// its claimer's, and a reuse that loses the race leaves the table as
    /// it was (all or none).
    #[test]
    fn reuse_racing_claims_never_mixes_addresses() {
        let next = snat_policy(&["192.0.2.1", "192.0.2.2"]);
        let mut outcomes = [0; 2];
        for round in 0..300 {
            let n = Arc::new(NatPorts::new());
            // Only slots 0 and 1 are reusable: every other one holds a port.
            for i in 0..MAX_ADDRS {
                let a = [10, 0, 0, i as u8];
                n.register(a).unwrap();
                if i > 1 {
                    assert!(n.try_claim(i as u8, a, 1));
                }
            }
            let before = n.addrs();
            let old = [10, 0, 0, 0];
            let claimer = {
                let n = n.clone();
                std::thread::spawn(move || (1000..1300).filter(|&p| n.try_claim(0, old, p)).collect::<Vec<u16>>())
            };
            let reused = n.register_policy(&next).is_ok();
            let held = claimer.join().unwrap();
            if reused {
                assert!(held.is_empty(), "round {round}: ports {held:?} held after the reuse");
                assert_eq!(n.in_use(0), 0);
                assert_eq!(
                    (n.slot_of([192, 0, 2, 1]).is_some(), n.slot_of([192, 0, 2, 2]).is_some()),
                    (true, true)
                );
            } else {
                assert_eq!(
                    n.addrs(),
                    before,
                    "round {round}: a refused registration changed the table"
                );
                assert_eq!(n.in_use(0) as usize, held.len(), "round {round}");
            }
            outcomes[usize::from(reused)] += 1;
        }
        // Not an assertion on timing: the counts only show what was seen.
        eprintln!("reuse won {} times, the claimer {}", outcomes[1], outcomes[0]);
    }

    #[test]
    fn claim_release_and_exhaustion() {
        let n = NatPorts::with_addrs([A]).unwrap();
        assert!(n.try_claim(0, A, 1000));
        assert!(!n.try_claim(0, A, 1000));
        assert!(!n.try_claim(5, A, 1000), "unregistered slot");
        n.release(NatBinding {
            slot: 0,
            addr: A,
            port: 1000,
        });
        assert!(n.try_claim(0, A, 1000));

        // A 130-port range spanning three words, starting mid-range.
        let (lo, hi) = (60, 189);
        let mut got = Vec::new();
        while let Some(p) = n.claim_any(0, A, lo, hi, 100) {
            assert!((lo..=hi).contains(&p));
            got.push(p);
        }
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 130);
        assert_eq!(n.in_use(0), 131);
        n.release(NatBinding {
            slot: 0,
            addr: A,
            port: 77,
        });
        assert_eq!(n.claim_any(0, A, lo, hi, 150), Some(77));
        assert_eq!(n.claim_any(0, A, 5, 4, 5), None);
    }

    #[test]
    fn claim_any_covers_full_range_edges() {
        let n = NatPorts::with_addrs([A]).unwrap();
        assert_eq!(n.claim_any(0, A, 0, 0, 0), Some(0));
        assert_eq!(n.claim_any(0, A, 65535, 65535, 0), Some(65535));
        assert_eq!(n.claim_any(0, A, 65535, 65535, 0), None);
        assert_eq!(n.claim_any(0, A, 1, 65535, 65535), Some(1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// Two threads allocating and releasing from a small shared range
        /// never hold the same port at once.
        #[test]
        fn concurrent_allocation_never_double_allocates(seed in 0u64..1000, range in 8u16..200) {
            let n = Arc::new(NatPorts::with_addrs([A]).unwrap());
            let held = Arc::new((0..=range).map(|_| AtomicU64::new(0)).collect::<Vec<_>>());
            let lo = 1000u16;
            let hi = lo + range;
            let threads: Vec<_> = (0..2u64).map(|t| {
                let n = n.clone();
                let held = held.clone();
                std::thread::spawn(move || {
                    let mut x = seed ^ (t << 32) | 1;
                    let mut mine: Vec<u16> = Vec::new();
                    for _ in 0..4000 {
                        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                        if x % 3 != 0 || mine.is_empty() {
                            let start = lo + (x >> 20) as u16 % (range + 1);
                            let claimed = if x % 2 == 0 {
                                n.claim_any(0, A, lo, hi, start)
                            } else if n.try_claim(0, A, start) {
                                Some(start)
                            } else {
                                None
                            };
                            if let Some(p) = claimed {
                                // Nobody else may be holding it.
                                let prev = held[usize::from(p - lo)].fetch_add(1, Ordering::SeqCst);
                                assert_eq!(prev, 0, "port {p} double-allocated");
                                mine.push(p);
                            }
                        } else {
                            let p = mine.swap_remove((x >> 8) as usize % mine.len());
                            held[usize::from(p - lo)].fetch_sub(1, Ordering::SeqCst);
                            n.release(NatBinding { slot: 0, addr: A, port: p });
                        }
                    }
                    mine.len() as u32
                })
            }).collect();
            let total: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
            prop_assert_eq!(n.in_use(0), total);
        }
    }
}
