//! A per-lcore shard of the unified flow table and the fast path over it.
