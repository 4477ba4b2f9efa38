//! ICMP errors that quote a packet of a flow (see
//! [`crate::action::icmp_error`]): they travel with that flow.

use super::{outer_checksum, DropReason, Shard, Verdict};
use crate::action::icmp_error::Quote;
use crate::flow::table::Lookup;
use crate::frame::Frame;
use crate::parse::Parsed;

impl Shard {
    /// An ICMP error without a pair of its own: it takes the pair side a
    /// reply to the packet it quotes would take (see
    /// [`crate::action::icmp_error`]), found here, through a redirect, or
    /// on the shard owning that reply's key. An error that belongs to no
    /// flow (or quotes no packet a flow could hold) never opens one: it is
    /// dropped as `no-flow`.
    #[cold]
    #[inline(never)]
    pub(super) fn related(&mut self, frame: &mut Frame, parsed: &Parsed, quote: &Quote, may_redirect: bool) -> Verdict {
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
}
