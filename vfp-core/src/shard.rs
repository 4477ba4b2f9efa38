//! A per-lcore shard of the unified flow table and the fast path over it.
//!
//! Each worker lcore owns one [`Shard`]: its flow table, its counters and
//! its outbox of messages to other shards; nothing in it is shared with
//! other lcores except the app-wide [`NatPorts`] bitmaps (lock-free) and
//! the read-only [`Policy`].
//!
//! One packet, top to bottom ([`Shard::process`]):
//! - non-IP frames go to their vport's peer untouched; a non-first IP
//!   fragment takes the pair side its datagram's first fragment took
//!   ([`crate::flow::fragments`]; no reassembly), or is dropped;
//! - *hit* on a pair side: if the pair was compiled under an older policy
//!   generation it is re-evaluated first (lazy reconciliation), then the
//!   side's transposition is applied in place and the packet forwarded;
//! - *hit* on a redirect: the pair lives on another shard → `Redirect`;
//! - *miss*: a packet whose key another shard owns is handed to it (unless
//!   it was handed here already); otherwise, for a first packet (TCP: SYN
//!   without ACK; ICMP: not an echo reply; anything else: any packet) the
//!   policy is evaluated and, when allowed, a flow pair is created (SNAT
//!   port claimed, both transpositions compiled, both keys indexed,
//!   redirects sent for keys other shards own) and the packet takes the
//!   forward transposition.
//!
//! A common frame's hit (IPv4 TCP/UDP at fixed offsets, the pair current,
//! its rewrite the fixed-offset one) can be taken by its short key
//! instead ([`Shard::process_common`]): the same outcome without the
//! parse descriptor; anything else it leaves to [`Shard::process`].
//!
//! No allocation happens on either path except inside the policy
//! evaluator: pairs go into a preallocated slab, messages into a
//! preallocated outbox (which the app must drain every poll iteration).
//!
//! This file holds the shard, its hit path and its flow lifecycle; the
//! rarer paths have files of their own: `first_packet.rs` (the miss),
//! `fragment.rs`, `related.rs` (ICMP errors) and `reconcile.rs`.

mod first_packet;
mod fragment;
mod inspect;
mod msg;
mod reconcile;
mod related;
mod stats;
mod verdict;

pub use inspect::{fmt_key, FlowFilter, FlowInfo};
pub use msg::ShardMsg;
pub use stats::ShardStats;
pub use verdict::{DropReason, Verdict};

use first_packet::{claim_snat, SnatCursor};

use std::collections::TryReserveError;
use std::sync::Arc;

use crate::action::encap::OuterChecksum;
use crate::action::nat::NatPorts;
use crate::action::transposition::ChecksumPlan;
use crate::flow::expiry::Sweeper;
use crate::flow::fragments::{FragTable, FragTarget};
use crate::flow::key::FlowKey;
use crate::flow::pair::{FlowPair, Side, HIT_LINES, SWEEP_LINES};
use crate::flow::table::{FlowTable, Lookup};
use crate::flow::v4_key::V4Key;
use crate::frame::Frame;
use crate::parse::{Fragment, Parsed, L3};
use crate::policy::Policy;

/// What [`Shard::look_ahead`] found: the pair side a hash most likely
/// leads to, if any. A candidate only: processing confirms it with one
/// key compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hint(Option<(u32, Side)>);

impl Hint {
    /// No look-ahead: process looks the key up itself.
    pub const NONE: Hint = Hint(None);
}

/// Messages the outbox holds before it would have to grow.
pub const OUTBOX_CAPACITY: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardConfig {
    /// This shard's index, `0..nshards`.
    pub id: usize,
    pub nshards: usize,
    /// Most flow pairs (and, separately, most redirects) the shard holds.
    pub capacity: usize,
}

pub struct Shard {
    cfg: ShardConfig,
    policy: Arc<Policy>,
    nat: Arc<NatPorts>,
    table: FlowTable,
    sweeper: Sweeper,
    frags: FragTable,
    stats: Arc<ShardStats>,
    outbox: Vec<ShardMsg>,
    /// Where the next SNAT port search starts, and which pool address.
    snat: SnatCursor,
    outer_csum: OuterChecksum,
    /// Bit v: packets leaving by vport v may leave their pushed outer
    /// IPv4 checksum to the NIC (its active path offers the offload).
    offload_vports: u64,
    plan: ChecksumPlan,
    /// Latest time seen, for the control plane's idle times.
    clock_ns: u64,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("cfg", &self.cfg)
            .field("table", &self.table)
            .field("generation", &self.policy.generation)
            .finish()
    }
}

impl Shard {
    /// Aborts if the flow table's memory cannot be had;
    /// [`Shard::try_new`] returns the failure instead.
    pub fn new(cfg: ShardConfig, policy: Arc<Policy>, nat: Arc<NatPorts>) -> Shard {
        Self::try_new(cfg, policy, nat).unwrap_or_else(|e| panic!("shard {}: {e}", cfg.id))
    }

    /// Redirect entries a shard of `cfg` has room for. A lone shard owns
    /// every key, so it never holds a redirect: no index room is set
    /// aside for them (a smaller index stays in cache better).
    fn redirect_capacity(cfg: &ShardConfig) -> usize {
        if cfg.nshards > 1 {
            cfg.capacity
        } else {
            0
        }
    }

    /// Bytes the flow table of a shard of `cfg` allocates (see
    /// [`FlowTable::bytes_for`]).
    pub fn table_bytes(cfg: &ShardConfig) -> usize {
        FlowTable::bytes_for(cfg.capacity, Self::redirect_capacity(cfg))
    }

    /// A shard, or why its flow table's memory cannot be had.
    pub fn try_new(cfg: ShardConfig, policy: Arc<Policy>, nat: Arc<NatPorts>) -> Result<Shard, TryReserveError> {
        Ok(Shard {
            table: FlowTable::try_with_capacity(cfg.capacity, Self::redirect_capacity(&cfg))?,
            sweeper: Sweeper::new(),
            frags: FragTable::new(),
            stats: Arc::new(ShardStats::new()),
            outbox: Vec::with_capacity(OUTBOX_CAPACITY),
            // Spread the shards' searches over the port range.
            snat: SnatCursor {
                port: (cfg.id as u16).wrapping_mul(8191),
                addr: cfg.id,
            },
            outer_csum: OuterChecksum::Software,
            offload_vports: 0,
            plan: ChecksumPlan::default(),
            clock_ns: 0,
            cfg,
            policy,
            nat,
        })
    }

    /// Commits the flow table's memory up front (see
    /// [`FlowTable::prefault`]); the app does this when it creates a
    /// worker's shard, so no page fault lands on the datapath.
    pub fn prefault(&mut self) {
        self.table.prefault();
    }

    /// [`Shard::prefault`], giving up when `stop` says so (see
    /// [`FlowTable::prefault_until`]); false when it gave up.
    pub fn prefault_until(&mut self, stop: impl FnMut() -> bool) -> bool {
        self.table.prefault_until(stop)
    }

    /// The flow table's large memory regions (see [`FlowTable::memory`]).
    pub fn memory(&self) -> [(*const u8, usize); 3] {
        self.table.memory()
    }

    pub fn config(&self) -> &ShardConfig {
        &self.cfg
    }
    pub fn stats(&self) -> &Arc<ShardStats> {
        &self.stats
    }
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Installs a new policy. Existing pairs are re-evaluated lazily, on
    /// their next packet.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.policy = policy;
    }

    /// Whether pushed VXLAN headers leave their IPv4 checksum to the NIC.
    pub fn set_outer_checksum(&mut self, c: OuterChecksum) {
        self.outer_csum = c;
    }

    /// Which egress vports take the outer IPv4 checksum offload (bit v
    /// for vport v); overrides [`Shard::set_outer_checksum`] for them.
    pub fn set_offload_vports(&mut self, mask: u64) {
        self.offload_vports = mask;
    }

    /// Checksum work left for the NIC by the last forwarded packet.
    pub fn checksum_plan(&self) -> ChecksumPlan {
        self.plan
    }

    /// Counts a drop the app decided (parse errors, tx full, no mbuf).
    pub fn count_drop(&self, reason: DropReason) {
        self.stats.count_drop(reason);
    }

    /// Live redirect entries: keys this shard owns whose pair another
    /// shard holds.
    pub fn redirect_count(&self) -> usize {
        self.table.redirect_count()
    }

    /// Live flow pairs.
    pub fn len(&self) -> usize {
        self.table.len()
    }
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Messages for other shards; the app drains and delivers them.
    pub fn outbox(&mut self) -> &mut Vec<ShardMsg> {
        &mut self.outbox
    }

    /// Applies a message another shard sent here.
    pub fn deliver(&mut self, msg: ShardMsg) {
        match msg {
            ShardMsg::InstallRedirect { key, owner, .. } => match self.table.insert_redirect(key, owner) {
                Ok(()) => self.stats.redirects_installed.inc(),
                Err(_) => self.stats.redirects_refused.inc(),
            },
            ShardMsg::RemoveRedirect { key, owner, .. } => {
                self.table.remove_redirect(&key, owner);
            }
            ShardMsg::InstallFragRedirect { key, owner, at_ns, .. } => {
                self.note_fragment(key, FragTarget::Shard(owner), at_ns);
            }
        }
    }

    /// Decides the fate of one packet and transposes it in place.
    /// `parsed` describes `frame` with the key's vport and direction set.
    ///
    /// `may_redirect`: the packet arrived here (true), so a miss whose key
    /// another shard owns is sent there; or another shard handed it here
    /// (false), and a miss is evaluated here. Either way an entry of this
    /// shard's may still send it on (a redirect to where its flow lives,
    /// or to where its datagram's first fragment went), and two shards'
    /// fragment entries of one datagram can point at each other: a caller
    /// that hands packets between shards bounds how often it hands on one
    /// packet (pmd-app: `MAX_HANDOFFS`).
    #[inline]
    pub fn process(&mut self, frame: &mut Frame, parsed: &Parsed, now_ns: u64, may_redirect: bool) -> Verdict {
        let hash = parsed.key.table_hash();
        self.process_hinted(frame, parsed, hash, Hint::NONE, now_ns, may_redirect)
    }

    /// Looks a key's [`FlowKey::table_hash`] up ahead of processing, in
    /// the index only ([`FlowTable::candidate`]): the pair side it most
    /// likely leads to, or no hint. [`Shard::process_hinted`] confirms
    /// the hint with one key compare and then skips its own lookup. A
    /// burst does this for every packet before it processes any: the
    /// index reads are independent, so the processor overlaps their cache
    /// misses instead of taking them one by one, and the pair itself is
    /// first read when the packet is processed (after its lines were
    /// prefetched, [`Shard::hint_lines`]), not twice.
    #[inline]
    pub fn look_ahead(&self, hash: u64) -> Hint {
        Hint(self.table.candidate(hash))
    }

    /// The index line a [`Shard::look_ahead`] of `hash` reads first. An
    /// app that can prefetch (vfp-core has no `unsafe`, so it cannot)
    /// prefetches it as soon as it knows the hash, and the line of each
    /// [`Shard::hint_lines`] once it has the hint: by the time the burst
    /// is looked up and processed, those lines are in cache.
    #[inline]
    pub fn index_line(&self, hash: u64) -> *const u8 {
        self.table.index_addr(hash)
    }

    /// The pair lines processing a packet with this hint reads: shared
    /// state, the side's key and counters, its transposition (see
    /// [`Shard::index_line`]); nothing for no hint.
    #[inline]
    pub fn hint_lines(&self, hint: Hint) -> Option<[*const u8; 4]> {
        let (idx, side) = hint.0?;
        let base = self.table.pair_addr(idx)?;
        Some(HIT_LINES[side.index()].map(|off| base.wrapping_add(off)))
    }

    /// The lines the next [`Shard::expire_paced`] slice most likely
    /// reads (see [`Sweeper::upcoming`]), at most `max_slots` slots' worth:
    /// an app that prefetches them one poll iteration ahead takes the
    /// sweep's cache misses off the loop (see [`Shard::index_line`]).
    #[inline]
    pub fn sweep_lines(&self, max_slots: usize) -> impl Iterator<Item = *const u8> + '_ {
        self.sweeper
            .upcoming(self.table.slots(), max_slots)
            .filter_map(|idx| self.table.pair_addr(idx))
            .flat_map(|base| SWEEP_LINES.map(|off| base.wrapping_add(off)))
    }

    /// [`Shard::process`] with the key's table hash computed and,
    /// optionally, a [`Shard::look_ahead`] result from earlier in the same
    /// burst. The hint is only trusted if the pair it names holds this
    /// key (the index's signature may be another key's, and an earlier
    /// packet of the burst may have removed or replaced the pair);
    /// otherwise the key is looked up in full.
    #[inline(always)]
    pub fn process_hinted(
        &mut self,
        frame: &mut Frame,
        parsed: &Parsed,
        hash: u64,
        hint: Hint,
        now_ns: u64,
        may_redirect: bool,
    ) -> Verdict {
        self.plan = ChecksumPlan::default();
        self.clock_ns = self.clock_ns.max(now_ns);
        let v = self.decide(frame, parsed, hash, hint, now_ns, may_redirect);
        match v {
            Verdict::Forward { .. } => {}
            Verdict::Redirect { .. } => self.stats.redirects_out.inc(),
            Verdict::Drop(r) => self.stats.count_drop(r),
        }
        v
    }

    /// [`Shard::process_hinted`] for a common frame
    /// ([`crate::parse::common_frame`]) without its descriptor: `key` is
    /// its short key, `tcp_flags` its TCP flags byte. Handles the frame
    /// when the hint names the pair holding `key`, compiled under the
    /// current policy, with a transposition the fixed-offset rewrite does
    /// ([`Transposition::apply_common`]): the same bytes, counters and
    /// verdict as `process_hinted`. None, with the frame untouched and
    /// nothing counted, for anything else: the caller then parses the
    /// frame and processes it the general way.
    ///
    /// [`Transposition::apply_common`]: crate::action::transposition::Transposition::apply_common
    #[inline(always)]
    pub fn process_common(
        &mut self,
        frame: &mut Frame,
        key: &V4Key,
        tcp_flags: u8,
        hint: Hint,
        now_ns: u64,
    ) -> Option<Verdict> {
        let (idx, side) = hint.0?;
        let generation = self.policy.generation;
        let pair = self.table.pair_mut(idx)?;
        if !key.matches(pair.key(side)) || pair.generation != generation {
            return None;
        }
        let x = pair.xpos(side);
        let vport = x.out_vport;
        let len = frame.len();
        let applied = x.apply_common(frame, outer_checksum(self.offload_vports, self.outer_csum, vport))?;
        self.clock_ns = self.clock_ns.max(now_ns);
        self.stats.lookups_hit.inc();
        Some(match applied {
            Ok(plan) => {
                pair.touch(side, len, now_ns, tcp_flags);
                self.plan = plan;
                self.stats.forwarded.inc();
                Verdict::Forward { vport }
            }
            Err(r) => {
                self.plan = ChecksumPlan::default();
                self.stats.count_drop(r);
                Verdict::Drop(r)
            }
        })
    }

    #[inline(always)]
    fn decide(
        &mut self,
        frame: &mut Frame,
        parsed: &Parsed,
        hash: u64,
        hint: Hint,
        now: u64,
        may_redirect: bool,
    ) -> Verdict {
        if !matches!(parsed.l3, L3::Ipv4 | L3::Ipv6) {
            return match self.policy.vports().get(usize::from(parsed.key.vport)) {
                Some(v) => {
                    self.stats.l2_forwarded.inc();
                    Verdict::Forward { vport: v.peer }
                }
                None => Verdict::Drop(DropReason::NoVport),
            };
        }
        if parsed.fragment != Fragment::None {
            return self.fragment(frame, parsed, hash, hint, now, may_redirect);
        }
        self.look_up_and_run(frame, parsed, hash, hint, now, may_redirect)
    }

    /// The flow table part of [`Shard::decide`]: hit, redirect or miss.
    #[inline(always)]
    fn look_up_and_run(
        &mut self,
        frame: &mut Frame,
        parsed: &Parsed,
        hash: u64,
        hint: Hint,
        now: u64,
        may_redirect: bool,
    ) -> Verdict {
        // The common case reaches the slab once: the look-ahead's hint
        // names the pair holding this key, compiled under the current
        // policy. A stale pair takes the full hit below (reconciling).
        let hinted = match hint.0 {
            Some((idx, side)) => match self.table.pair_mut(idx) {
                Some(pair) if *pair.key(side) == parsed.key => {
                    if pair.generation == self.policy.generation {
                        self.stats.lookups_hit.inc();
                        let csum = (self.offload_vports, self.outer_csum);
                        return forward(pair, side, frame, parsed, now, csum, &mut self.plan, &self.stats);
                    }
                    Some(Lookup::Pair { idx, side })
                }
                _ => None,
            },
            None => None,
        };
        let found = hinted.or_else(|| self.table.lookup_hashed(hash, &parsed.key));
        match found {
            Some(Lookup::Pair { idx, side }) => {
                self.stats.lookups_hit.inc();
                self.hit(idx, side, frame, parsed, now, may_redirect)
            }
            Some(Lookup::Redirect { owner }) => {
                self.stats.lookups_hit.inc();
                Verdict::Redirect { owner }
            }
            None => {
                self.stats.lookups_miss.inc();
                self.miss(frame, parsed, now, may_redirect)
            }
        }
    }

    #[inline(always)]
    fn hit(
        &mut self,
        idx: u32,
        side: Side,
        frame: &mut Frame,
        parsed: &Parsed,
        now: u64,
        may_redirect: bool,
    ) -> Verdict {
        let generation = self.policy.generation;
        if self.table.pair(idx).is_some_and(|p| p.generation != generation) {
            if let Some(v) = self.stale_hit(idx, side, frame, parsed, now, may_redirect) {
                return v;
            }
        }
        let Some(pair) = self.table.pair_mut(idx) else {
            return Verdict::Drop(DropReason::NoFlow);
        };
        let csum = (self.offload_vports, self.outer_csum);
        forward(pair, side, frame, parsed, now, csum, &mut self.plan, &self.stats)
    }

    /// A hit on a pair compiled under an older policy generation:
    /// reconciles the pair. None: the hit goes on under the new
    /// compilation; otherwise the packet's verdict.
    #[cold]
    #[inline(never)]
    fn stale_hit(
        &mut self,
        idx: u32,
        side: Side,
        frame: &mut Frame,
        parsed: &Parsed,
        now: u64,
        may_redirect: bool,
    ) -> Option<Verdict> {
        if let Err(r) = self.reconcile(idx) {
            return Some(Verdict::Drop(r));
        }
        // A rekeyed reverse side (the new policy NATs differently) no
        // longer carries this packet: it is looked at as any packet without
        // a flow would be. Applying the new rewrite to it would start from
        // addresses the rewrite's checksum deltas do not assume.
        if self.table.pair(idx).is_some_and(|p| *p.key(side) != parsed.key) {
            self.stats.lookups_miss.inc();
            return Some(self.miss(frame, parsed, now, may_redirect));
        }
        None
    }

    /// Tells the owner of `key` (when it is another shard) to install or
    /// remove a redirect to this shard.
    fn send_redirect(&mut self, key: &FlowKey, install: bool) {
        send_redirect(&self.cfg, &mut self.outbox, key, install);
    }

    /// Removes a pair for `reason` and returns the reason.
    fn drop_pair(&mut self, idx: u32, reason: DropReason) -> DropReason {
        if self.remove(idx).is_some() {
            self.stats.flows_removed.inc();
        }
        reason
    }

    /// Removes a pair: releases its NAT port and its remote redirects.
    fn remove(&mut self, idx: u32) -> Option<FlowPair> {
        let p = self.table.remove_pair(idx)?;
        on_removed(&self.cfg, &self.nat, &mut self.outbox, &p);
        self.stats.flows_active.set(self.table.len() as u64);
        Some(p)
    }

    /// Expires idle pairs among the next `budget` slab slots; returns how
    /// many were removed. Call it from the poll loop with a small budget.
    pub fn expire(&mut self, now_ns: u64, budget: usize) -> usize {
        self.clock_ns = self.clock_ns.max(now_ns);
        let timeouts = self.policy.timeouts;
        let Shard {
            cfg,
            nat,
            outbox,
            table,
            sweeper,
            ..
        } = self;
        let n = sweeper.sweep(table, now_ns, budget, &timeouts, |_, p| {
            on_removed(cfg, nat, outbox, &p);
        });
        self.stats.flows_expired.add(n as u64);
        self.stats.flows_active.set(self.table.len() as u64);
        n
    }

    /// [`Shard::expire`] paced by the clock ([`Sweeper::paced_budget`]):
    /// the poll loop calls it every iteration and the slab is swept once
    /// per [`SWEEP_PERIOD_NS`](crate::flow::expiry::SWEEP_PERIOD_NS),
    /// whatever the iteration rate.
    #[inline]
    pub fn expire_paced(&mut self, now_ns: u64) -> usize {
        match self.sweeper.paced_budget(now_ns, self.table.slots()) {
            0 => 0,
            budget => self.expire(now_ns, budget),
        }
    }

    /// Removes every pair (redirects held for other shards stay).
    pub fn flush(&mut self) -> usize {
        let ids: Vec<u32> = self.table.iter().map(|(i, _)| i).collect();
        let mut n = 0;
        for i in ids {
            if self.remove(i).is_some() {
                n += 1;
            }
        }
        self.stats.flows_removed.add(n as u64);
        n
    }

    /// Removes the pairs matching `filter`; returns how many.
    pub fn flush_matching(&mut self, filter: &FlowFilter) -> usize {
        let ids: Vec<u32> = self
            .table
            .iter()
            .filter(|(_, p)| filter.matches(p))
            .map(|(i, _)| i)
            .collect();
        let mut n = 0;
        for i in ids {
            if self.remove(i).is_some() {
                n += 1;
            }
        }
        self.stats.flows_removed.add(n as u64);
        n
    }

    /// How many pairs match `filter`.
    pub fn count(&self, filter: &FlowFilter) -> usize {
        self.table.iter().filter(|(_, p)| filter.matches(p)).count()
    }

    /// The pair in slab slot `id`, if one lives there.
    pub fn flow(&self, id: u32) -> Option<FlowInfo> {
        self.table
            .pair(id)
            .map(|p| FlowInfo::new(self.cfg.id, id, p, self.clock_ns))
    }

    /// Up to `limit` pairs matching `filter`, for the control plane.
    pub fn flows(&self, filter: &FlowFilter, limit: usize) -> Vec<FlowInfo> {
        self.table
            .iter()
            .filter(|(_, p)| filter.matches(p))
            .take(limit)
            .map(|(i, p)| FlowInfo::new(self.cfg.id, i, p, self.clock_ns))
            .collect()
    }
}

/// Applies side `side` of a live, current `pair` to the packet and
/// accounts it; `csum` is the shard's outer checksum offload per vport
/// and its default (see [`outer_checksum`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward(
    pair: &mut FlowPair,
    side: Side,
    frame: &mut Frame,
    parsed: &Parsed,
    now: u64,
    csum: (u64, OuterChecksum),
    plan: &mut ChecksumPlan,
    stats: &ShardStats,
) -> Verdict {
    let len = frame.len();
    let x = pair.xpos(side);
    let vport = x.out_vport;
    match x.apply_with(frame, parsed, outer_checksum(csum.0, csum.1, vport)) {
        Ok(p) => {
            pair.touch(side, len, now, parsed.tcp_flags);
            *plan = p;
            stats.forwarded.inc();
            Verdict::Forward { vport }
        }
        Err(r) => Verdict::Drop(r),
    }
}

/// Whether a packet pushing VXLAN headers out of `vport` leaves their
/// IPv4 checksum to the NIC: where the vport's path offers the offload
/// (bit `vport` of `offload_vports`), else as the shard is set.
#[inline(always)]
fn outer_checksum(offload_vports: u64, default: OuterChecksum, vport: u16) -> OuterChecksum {
    if vport < 64 && offload_vports & (1 << vport) != 0 {
        OuterChecksum::Offload
    } else {
        default
    }
}

fn send_redirect(cfg: &ShardConfig, outbox: &mut Vec<ShardMsg>, key: &FlowKey, install: bool) {
    let to = key.owner(cfg.nshards);
    if to == cfg.id {
        return;
    }
    let (key, owner) = (*key, cfg.id);
    outbox.push(if install {
        ShardMsg::InstallRedirect { to, key, owner }
    } else {
        ShardMsg::RemoveRedirect { to, key, owner }
    });
}

fn on_removed(cfg: &ShardConfig, nat: &NatPorts, outbox: &mut Vec<ShardMsg>, p: &FlowPair) {
    if let Some(b) = p.nat {
        nat.release(b);
    }
    for k in p.keys() {
        send_redirect(cfg, outbox, k, false);
    }
}
