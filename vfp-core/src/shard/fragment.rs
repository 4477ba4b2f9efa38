//! Fragments (see [`crate::flow::fragments`]): a first fragment takes
//! its flow as any packet and leaves a note for the later ones, which
//! follow it to the pair side or the shard it went to.

use super::{outer_checksum, DropReason, Hint, Shard, ShardMsg, Verdict, OUTBOX_CAPACITY};
use crate::flow::fragments::{frag_key, FragTarget};
use crate::flow::key::FlowKey;
use crate::flow::table::Lookup;
use crate::frame::Frame;
use crate::parse::{Fragment, Parsed};

impl Shard {
    /// A fragment (see [`crate::flow::fragments`]). A first fragment is
    /// looked up like any packet; once forwarded through a pair side it
    /// leaves that side for the datagram's later fragments (and asks the
    /// datagram key's owner, when that is another shard, to redirect them
    /// here), and once handed to another shard it leaves that shard. A
    /// later fragment takes the side its first fragment took, or follows
    /// it to the shard its entry names.
    #[cold]
    #[inline(never)]
    pub(super) fn fragment(
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
    pub(super) fn note_fragment(&mut self, fk: FlowKey, target: FragTarget, at_ns: u64) {
        if self.frags.insert(fk, target, at_ns) {
            self.stats.fragments_evicted.inc();
        }
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
}
