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
//! No allocation happens on either path except inside the policy
//! evaluator: pairs go into a preallocated slab, messages into a
//! preallocated outbox (which the app must drain every poll iteration).

mod inspect;
mod msg;
mod stats;
mod verdict;

pub use inspect::{fmt_key, FlowFilter, FlowInfo};
pub use msg::ShardMsg;
pub use stats::ShardStats;
pub use verdict::{DropReason, Verdict};

use std::sync::Arc;

use crate::action::compile::{compile_pair, reverse_key, FirstPacket};
use crate::action::encap::OuterChecksum;
use crate::action::icmp_error::{self, Quote};
use crate::action::nat::{NatBinding, NatPorts};
use crate::action::transposition::ChecksumPlan;
use crate::decision::{Actions, Decision, SnatSpec};
use crate::engine;
use crate::flow::expiry::Sweeper;
use crate::flow::fragments::{frag_key, FragTable, FragTarget};
use crate::flow::key::{proto, FlowKey};
use crate::flow::pair::{FlowPair, Side, HIT_LINES, SWEEP_LINES};
use crate::flow::table::{FlowTable, InsertError, Lookup};
use crate::flow::tcp_state::flags;
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
/// Ports examined when looking for an SNAT port whose return traffic
/// hashes to this shard, before settling for any free port.
const PREFERRED_SNAT_SCAN: usize = 128;

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
    pub fn new(cfg: ShardConfig, policy: Arc<Policy>, nat: Arc<NatPorts>) -> Shard {
        Shard {
            // A lone shard owns every key, so it never holds a redirect:
            // no index room is set aside for them (a smaller index stays
            // in cache better).
            table: FlowTable::with_capacity(cfg.capacity, if cfg.nshards > 1 { cfg.capacity } else { 0 }),
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
        }
    }

    /// Commits the flow table's memory up front (see
    /// [`FlowTable::prefault`]); the app does this when it creates a
    /// worker's shard, so no page fault lands on the datapath.
    pub fn prefault(&mut self) {
        self.table.prefault();
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

    /// The slow path, kept out of line so the hit path stays small (no
    /// stack frame for a pair under construction, fewer spills).
    #[inline(never)]
    fn miss(&mut self, frame: &mut Frame, parsed: &Parsed, now: u64, may_redirect: bool) -> Verdict {
        if icmp_error::is_error(frame.data(), parsed) {
            return match icmp_error::quoted(frame.data(), parsed) {
                Some(q) => self.related(frame, parsed, &q, may_redirect),
                None => Verdict::Drop(DropReason::NoFlow),
            };
        }
        let key = &parsed.key;
        let owner = key.owner(self.cfg.nshards);
        if may_redirect && owner != self.cfg.id {
            return Verdict::Redirect { owner };
        }
        if !opens_connection(parsed) {
            return Verdict::Drop(DropReason::NoFlow);
        }
        if self.table.is_full() {
            return Verdict::Drop(DropReason::TableFull);
        }
        // The decision borrows the policy while the pair is created from
        // the shard's other fields: no reference count is touched (a
        // locked instruction would wait for every cache miss in flight).
        let Shard {
            cfg,
            policy,
            nat,
            table,
            stats,
            outbox,
            snat,
            ..
        } = self;
        let actions = match engine::evaluate(policy, parsed, key) {
            Decision::Allow(a) => a,
            Decision::Deny(_) => return Verdict::Drop(DropReason::PolicyDeny),
        };
        let first = FirstPacket::capture(frame.data(), parsed);
        let creator = Creator {
            cfg,
            nat,
            table,
            stats,
            outbox,
            snat,
        };
        match creator.create_pair(&first, &actions, policy.generation, now) {
            Ok(idx) => self.hit(idx, Side::Forward, frame, parsed, now, may_redirect),
            Err(r) => Verdict::Drop(r),
        }
    }

    /// A fragment (see [`crate::flow::fragments`]). A first fragment is
    /// looked up like any packet; once forwarded through a pair side it
    /// leaves that side for the datagram's later fragments (and asks the
    /// datagram key's owner, when that is another shard, to redirect them
    /// here), and once handed to another shard it leaves that shard. A
    /// later fragment takes the side its first fragment took, or follows
    /// it to the shard its entry names.
    #[cold]
    #[inline(never)]
    fn fragment(
        &mut self,
        frame: &mut Frame,
        parsed: &Parsed,
        hash: u64,
        hint: Hint,
        now: u64,
        may_redirect: bool,
    ) -> Verdict {
        let Some((fk, span)) = frag_key(frame.data(), parsed) else {
            return Verdict::Drop(DropReason::Fragment);
        };
        if !span.fits() {
            return Verdict::Drop(DropReason::Fragment);
        }
        if parsed.fragment == Fragment::First {
            let v = self.look_up_and_run(frame, parsed, hash, hint, now, may_redirect);
            match v {
                Verdict::Forward { .. } => {
                    if let Some(Lookup::Pair { idx, side }) = self.table.lookup_hashed(hash, &parsed.key) {
                        let target = FragTarget::Pair {
                            idx,
                            side,
                            key: parsed.key,
                            first_end: span.end,
                        };
                        self.note_fragment(fk, target, now);
                        self.ask_owner_to_redirect(fk, now);
                    }
                }
                Verdict::Redirect { owner } => self.note_fragment(fk, FragTarget::Shard(owner), now),
                Verdict::Drop(_) => {}
            }
            return v;
        }
        let (idx, side, key, first_end) = match self.frags.find(&fk, now) {
            Some(FragTarget::Pair {
                idx,
                side,
                key,
                first_end,
            }) => (idx, side, key, first_end),
            Some(FragTarget::Shard(owner)) => return Verdict::Redirect { owner },
            None => {
                let owner = fk.owner(self.cfg.nshards);
                if may_redirect && owner != self.cfg.id {
                    return Verdict::Redirect { owner };
                }
                return Verdict::Drop(DropReason::Fragment);
            }
        };
        // RFC 1858: a fragment overlapping the first could rewrite the L4
        // header the flow was matched on.
        if span.offset < first_end {
            return Verdict::Drop(DropReason::Fragment);
        }
        // The pair must still be the one the first fragment took (its
        // slot may hold another flow now), before and after a reload's
        // reconciliation (which may rekey the side).
        if !self.table.pair(idx).is_some_and(|p| *p.key(side) == key) {
            return Verdict::Drop(DropReason::Fragment);
        }
        match self.still_holds(idx, side, &key) {
            Ok(true) => {}
            Ok(false) => return Verdict::Drop(DropReason::Fragment),
            Err(r) => return Verdict::Drop(r),
        }
        let len = frame.len();
        let (offload, default) = (self.offload_vports, self.outer_csum);
        let Some(pair) = self.table.pair_mut(idx) else {
            return Verdict::Drop(DropReason::Fragment);
        };
        let x = *pair.xpos(side);
        let vport = x.out_vport;
        match x.apply_with(frame, parsed, outer_checksum(offload, default, vport)) {
            Ok(plan) => {
                pair.touch(side, len, now, 0);
                self.plan = plan;
                self.stats.fragments_forwarded.inc();
                self.stats.forwarded.inc();
                Verdict::Forward { vport }
            }
            Err(r) => Verdict::Drop(r),
        }
    }

    /// Remembers where a datagram's later fragments go, counting the
    /// live entry of another datagram this replaces.
    fn note_fragment(&mut self, fk: FlowKey, target: FragTarget, at_ns: u64) {
        if self.frags.insert(fk, target, at_ns) {
            self.stats.fragments_evicted.inc();
        }
    }

    /// For a packet that found side `side` of pair `idx` other than by
    /// its own key (an ICMP error's quote, a fragment's datagram), where
    /// the side had `key`: reconciles the pair if it was compiled under
    /// an older policy generation; true while the side still has `key`
    /// (reconciling may rekey it, or remove the pair).
    fn still_holds(&mut self, idx: u32, side: Side, key: &FlowKey) -> Result<bool, DropReason> {
        if self
            .table
            .pair(idx)
            .is_some_and(|p| p.generation != self.policy.generation)
        {
            self.reconcile(idx)?;
        }
        Ok(self.table.pair(idx).is_some_and(|p| p.key(side) == key))
    }

    /// Asks the owner of the datagram key `fk`, when it is another shard,
    /// to redirect the datagram's later fragments here. Best effort: with
    /// the outbox half full (a flood of first fragments) it is skipped, so
    /// the flow table's own redirects are never held up.
    fn ask_owner_to_redirect(&mut self, fk: FlowKey, now: u64) {
        let to = fk.owner(self.cfg.nshards);
        if to != self.cfg.id && self.outbox.len() < OUTBOX_CAPACITY / 2 {
            let (key, owner) = (fk, self.cfg.id);
            self.outbox.push(ShardMsg::InstallFragRedirect {
                to,
                key,
                owner,
                at_ns: now,
            });
        }
    }

    /// An ICMP error without a pair of its own: it takes the pair side a
    /// reply to the packet it quotes would take (see
    /// [`crate::action::icmp_error`]), found here, through a redirect, or
    /// on the shard owning that reply's key. An error that belongs to no
    /// flow (or quotes no packet a flow could hold) never opens one: it is
    /// dropped as `no-flow`.
    #[cold]
    #[inline(never)]
    fn related(&mut self, frame: &mut Frame, parsed: &Parsed, quote: &Quote, may_redirect: bool) -> Verdict {
        // An error goes to the source of the packet it quotes; one sent
        // anywhere else (a forged quote to reach another host) is not
        // this flow's.
        let Some(key) = quote.reply_key(&parsed.key) else {
            return Verdict::Drop(DropReason::NoFlow);
        };
        let (idx, side) = match self.table.lookup(&key) {
            Some(Lookup::Pair { idx, side }) => (idx, side),
            Some(Lookup::Redirect { owner }) => return Verdict::Redirect { owner },
            None => {
                let owner = key.owner(self.cfg.nshards);
                if may_redirect && owner != self.cfg.id {
                    return Verdict::Redirect { owner };
                }
                return Verdict::Drop(DropReason::NoFlow);
            }
        };
        // Rekeyed by a new policy: the quote names a flow that is gone.
        match self.still_holds(idx, side, &key) {
            Ok(true) => {}
            Ok(false) => return Verdict::Drop(DropReason::NoFlow),
            Err(r) => return Verdict::Drop(r),
        }
        let Some(x) = self.table.pair(idx).map(|p| *p.xpos(side)) else {
            return Verdict::Drop(DropReason::NoFlow);
        };
        let vport = x.out_vport;
        let outer = outer_checksum(self.offload_vports, self.outer_csum, vport);
        match x.apply_to_error(frame, parsed, quote, outer) {
            Ok(plan) => {
                self.plan = plan;
                self.stats.icmp_related.inc();
                self.stats.forwarded.inc();
                Verdict::Forward { vport }
            }
            Err(r) => Verdict::Drop(r),
        }
    }

    /// Tells the owner of `key` (when it is another shard) to install or
    /// remove a redirect to this shard.
    fn send_redirect(&mut self, key: &FlowKey, install: bool) {
        send_redirect(&self.cfg, &mut self.outbox, key, install);
    }

    /// Re-evaluates a pair compiled under an older policy generation.
    /// Denied: the pair is removed. Allowed: its transpositions are
    /// recompiled, keeping the SNAT address:port it holds if the new
    /// decision still source-NATs from a pool that holds it (otherwise it
    /// takes a port of the new pool).
    #[cold]
    #[inline(never)]
    fn reconcile(&mut self, idx: u32) -> Result<(), DropReason> {
        let Some(p) = self.table.pair(idx) else {
            return Err(DropReason::NoFlow);
        };
        let (first, old_nat, old_dnat, old_rev) = (p.first, p.nat, p.dnat, *p.key(Side::Reverse));
        self.stats.reconciled.inc();
        let policy = Arc::clone(&self.policy);
        let a = match engine::evaluate_sticky(&policy, &first.parsed, first.key(), old_dnat) {
            Decision::Allow(a) => a,
            Decision::Deny(_) => return Err(self.drop_pair(idx, DropReason::PolicyDeny)),
        };
        let nat = match (&a.snat, old_nat) {
            (Some(spec), Some(b)) if spec.holds(b.addr, b.port) => Some(b),
            (Some(spec), old) => {
                // A binding the new pool no longer holds (its address or
                // port left it) is given back: the address may be in use
                // elsewhere now. The connection moves to a port of the
                // new pool, as a DNAT connection whose backend is gone
                // moves to another backend.
                if let Some(b) = old {
                    self.nat.release(b);
                    if let Some(p) = self.table.pair_mut(idx) {
                        p.nat = None;
                    }
                }
                match claim_snat(&self.cfg, &self.nat, &mut self.snat, first.key(), &a, spec) {
                    Ok(b) => Some(b),
                    Err(r) => return Err(self.drop_pair(idx, r)),
                }
            }
            (None, Some(b)) => {
                self.nat.release(b);
                None
            }
            (None, None) => None,
        };
        if let Some(p) = self.table.pair_mut(idx) {
            p.nat = nat;
            p.dnat = a.dnat;
        }
        let c = match compile_pair(&first, &a, nat) {
            Ok(c) => c,
            Err(r) => return Err(self.drop_pair(idx, r)),
        };
        if c.rev_key != old_rev {
            if self.table.rekey(idx, Side::Reverse, c.rev_key).is_err() {
                return Err(self.drop_pair(idx, DropReason::FlowConflict));
            }
            self.send_redirect(&old_rev, false);
            self.send_redirect(&c.rev_key, true);
        }
        if let Some(p) = self.table.pair_mut(idx) {
            p.sides[0].xpos = c.fwd;
            p.sides[1].xpos = c.rev;
            p.generation = policy.generation;
        }
        Ok(())
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

/// Where the next SNAT port search starts, and which pool address.
#[derive(Clone, Copy, Debug)]
struct SnatCursor {
    port: u16,
    addr: usize,
}

/// What creating a pair touches: every part of the shard but its policy,
/// which the decision being compiled borrows.
struct Creator<'a> {
    cfg: &'a ShardConfig,
    nat: &'a NatPorts,
    table: &'a mut FlowTable,
    stats: &'a ShardStats,
    outbox: &'a mut Vec<ShardMsg>,
    snat: &'a mut SnatCursor,
}

impl Creator<'_> {
    /// Claims the SNAT port (if any), compiles and inserts a pair.
    fn create_pair(self, first: &FirstPacket, a: &Actions, generation: u64, now: u64) -> Result<u32, DropReason> {
        let nat = match a.snat {
            Some(spec) => Some(claim_snat(self.cfg, self.nat, self.snat, first.key(), a, spec)?),
            None => None,
        };
        let compiled = compile_pair(first, a, nat);
        let inserted = compiled.and_then(|c| {
            let mut pair = FlowPair::new(*first, c.rev_key, [c.fwd, c.rev], nat, generation, now);
            pair.dnat = a.dnat;
            self.table.insert_pair(pair).map_err(|e| match e {
                InsertError::Full => DropReason::TableFull,
                InsertError::Conflict => DropReason::FlowConflict,
            })
        });
        let idx = match inserted {
            Ok(idx) => idx,
            Err(r) => {
                if let Some(b) = nat {
                    self.nat.release(b);
                }
                return Err(r);
            }
        };
        for side in [Side::Forward, Side::Reverse] {
            if let Some(k) = self.table.pair(idx).map(|p| *p.key(side)) {
                send_redirect(self.cfg, self.outbox, &k, true);
            }
        }
        self.stats.flows_created.inc();
        self.stats.flows_active.set(self.table.len() as u64);
        Ok(idx)
    }
}

/// Claims an SNAT port from `spec`: preferably one whose return
/// traffic hashes to this shard (no redirect needed), else any.
fn claim_snat(
    cfg: &ShardConfig,
    nat: &NatPorts,
    cur: &mut SnatCursor,
    key: &FlowKey,
    a: &Actions,
    spec: &SnatSpec,
) -> Result<NatBinding, DropReason> {
    if !key.is_ipv4() {
        return Err(DropReason::NatFamily);
    }
    let (lo, hi) = (spec.port_lo, spec.port_hi);
    let naddrs = spec.addrs.len();
    if lo > hi || naddrs == 0 {
        return Err(DropReason::NatExhausted);
    }
    let range = u32::from(hi - lo) + 1;
    let first_addr = cur.addr % naddrs;
    cur.addr = cur.addr.wrapping_add(1);
    let start = lo + (u32::from(cur.port) % range) as u16;
    let n = cfg.nshards;
    let bind = |slot: u8, addr: [u8; 4], port: u16| NatBinding { slot, addr, port };
    let addrs = (0..naddrs).map(|i| spec.addrs[(first_addr + i) % naddrs]);
    if n > 1 {
        for addr in addrs.clone() {
            let Some(slot) = nat.slot_of(addr) else {
                continue;
            };
            for i in 0..(PREFERRED_SNAT_SCAN as u32).min(range) {
                let port = lo + ((u32::from(start - lo) + i) % range) as u16;
                let rk = reverse_key(key, a, Some((addr, port)));
                if rk.owner(n) == cfg.id && !nat.is_claimed(slot, port) && nat.try_claim(slot, addr, port) {
                    cur.port = port.wrapping_add(1);
                    return Ok(bind(slot, addr, port));
                }
            }
        }
    }
    for addr in addrs {
        let Some(slot) = nat.slot_of(addr) else {
            continue;
        };
        if let Some(port) = nat.claim_any(slot, addr, lo, hi, start) {
            cur.port = port.wrapping_add(1);
            return Ok(bind(slot, addr, port));
        }
    }
    Err(DropReason::NatExhausted)
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

/// Whether a packet that missed may open a connection.
fn opens_connection(p: &Parsed) -> bool {
    let k = &p.key;
    match k.proto {
        proto::TCP => p.tcp_flags & (flags::SYN | flags::ACK | flags::RST) == flags::SYN,
        // Echo replies carry the identifier as destination port.
        proto::ICMP | proto::ICMPV6 => !(k.src_port == 0 && k.dst_port != 0),
        _ => true,
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
