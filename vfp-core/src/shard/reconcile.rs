//! Lazy reconciliation: a pair compiled under an older policy
//! generation is re-evaluated on its next packet.

use super::{claim_snat, DropReason, Shard};
use crate::action::compile::compile_pair;
use crate::decision::Decision;
use crate::engine;
use crate::flow::key::FlowKey;
use crate::flow::pair::Side;
use std::sync::Arc;

impl Shard {
    /// For a packet that found side `side` of pair `idx` other than by
    /// its own key (an ICMP error's quote, a fragment's datagram), where
    /// the side had `key`: reconciles the pair if it was compiled under
    /// an older policy generation; true while the side still has `key`
    /// (reconciling may rekey it, or remove the pair).
    pub(super) fn still_holds(&mut self, idx: u32, side: Side, key: &FlowKey) -> Result<bool, DropReason> {
        if self
            .table
            .pair(idx)
            .is_some_and(|p| p.generation != self.policy.generation)
        {
            self.reconcile(idx)?;
        }
        Ok(self.table.pair(idx).is_some_and(|p| p.key(side) == key))
    }

    /// Re-evaluates a pair compiled under an older policy generation.
    /// Denied: the pair is removed. Allowed: its transpositions are
    /// recompiled, keeping the SNAT address:port it holds if the new
    /// decision still source-NATs from a pool that holds it (otherwise it
    /// takes a port of the new pool).
    #[cold]
    #[inline(never)]
    pub(super) fn reconcile(&mut self, idx: u32) -> Result<(), DropReason> {
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
}
