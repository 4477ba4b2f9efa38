//! The unified flow table and what each flow carries.
//!
//! [`key`] is the exact-match key; [`pair`] the unit of state (forward and
//! reverse entry of one connection); [`table`] the per-shard index and
//! slab; [`index`] a fixed-capacity cuckoo hash index whose lookups can be
//! prefetched a burst at a time; [`tcp_state`] the coarse TCP tracker
//! that picks idle timeouts; [`v4_key`] the short key of an IPv4 packet
//! outside a tunnel, which a common frame's hit hashes and compares; [`expiry`] the amortised idle sweep;
//! [`fragments`] the flows of fragmented datagrams.

pub mod expiry;
pub mod fragments;
pub mod index;
pub mod key;
pub mod pair;
pub mod table;
pub mod tcp_state;
pub mod timeouts;
pub mod v4_key;

/// An empty vector with room for `n` values, or why there is none: the
/// flow tables' allocations, checked rather than aborting.
pub(crate) fn reserved<T>(n: usize) -> Result<Vec<T>, std::collections::TryReserveError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)?;
    Ok(v)
}
