//! Counters of one shard, written by its lcore only and read by the
//! control plane (see [`crate::counter`]).

use crate::counter::Counter;
use crate::shard::DropReason;

const NDROPS: usize = DropReason::ALL.len();

/// Every counter of a shard. Aligned to a cache line so two shards'
/// counters never share one.
#[derive(Debug)]
#[repr(align(64))]
pub struct ShardStats {
    drops: [Counter; NDROPS],
    /// IP packets forwarded through a flow pair's transposition.
    pub forwarded: Counter,
    /// Non-IP frames (ARP, other ethertypes) passed to the vport's peer.
    pub l2_forwarded: Counter,
    /// Flow pairs created.
    pub flows_created: Counter,
    /// Flow pairs removed by idle expiry.
    pub flows_expired: Counter,
    /// Flow pairs removed by policy reconciliation or flush.
    pub flows_removed: Counter,
    /// Flow pairs currently in the table (a gauge).
    pub flows_active: Counter,
    /// Packets handed to another shard (`Verdict::Redirect`).
    pub redirects_out: Counter,
    /// Redirect entries installed in this shard's table by other shards.
    pub redirects_installed: Counter,
    /// Redirect installs refused (redirect slab full or key held by a pair).
    pub redirects_refused: Counter,
    /// Table lookups that found a pair or a redirect.
    pub lookups_hit: Counter,
    /// Table lookups that found nothing (the slow path ran or redirected).
    pub lookups_miss: Counter,
    /// Pairs re-evaluated because the policy generation changed.
    pub reconciled: Counter,
    /// ICMP errors forwarded as part of the flow whose packet they quote
    /// (also counted as `forwarded`).
    pub icmp_related: Counter,
    /// Later fragments forwarded through the pair side their datagram's
    /// first fragment took (also counted as `forwarded`).
    pub fragments_forwarded: Counter,
    /// Fragmented datagrams whose entry a newer datagram replaced while
    /// their later fragments could still come (those are then dropped as
    /// `fragment`): a sign the fragment table is too small for the load.
    pub fragments_evicted: Counter,
}

impl Default for ShardStats {
    fn default() -> Self {
        ShardStats::new()
    }
}

impl ShardStats {
    pub const fn new() -> ShardStats {
        ShardStats {
            drops: [const { Counter::new() }; NDROPS],
            forwarded: Counter::new(),
            l2_forwarded: Counter::new(),
            flows_created: Counter::new(),
            flows_expired: Counter::new(),
            flows_removed: Counter::new(),
            flows_active: Counter::new(),
            redirects_out: Counter::new(),
            redirects_installed: Counter::new(),
            redirects_refused: Counter::new(),
            lookups_hit: Counter::new(),
            lookups_miss: Counter::new(),
            reconciled: Counter::new(),
            icmp_related: Counter::new(),
            fragments_forwarded: Counter::new(),
            fragments_evicted: Counter::new(),
        }
    }

    /// Counts a dropped packet. Owning lcore only.
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        self.drops[reason.index()].inc();
    }

    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].get()
    }

    /// Every drop reason with its count, in [`DropReason::ALL`] order.
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.drop_count(r)))
    }

    /// Sum of all drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }

    /// Every other counter with its kebab-case name.
    pub fn named(&self) -> [(&'static str, u64); 15] {
        [
            ("forwarded", self.forwarded.get()),
            ("l2-forwarded", self.l2_forwarded.get()),
            ("flows-created", self.flows_created.get()),
            ("flows-expired", self.flows_expired.get()),
            ("flows-removed", self.flows_removed.get()),
            ("flows-active", self.flows_active.get()),
            ("redirects-out", self.redirects_out.get()),
            ("redirects-installed", self.redirects_installed.get()),
            ("redirects-refused", self.redirects_refused.get()),
            ("lookups-hit", self.lookups_hit.get()),
            ("lookups-miss", self.lookups_miss.get()),
            ("reconciled", self.reconciled.get()),
            ("icmp-related", self.icmp_related.get()),
            ("fragments-forwarded", self.fragments_forwarded.get()),
            ("fragments-evicted", self.fragments_evicted.get()),
        ]
    }
}
