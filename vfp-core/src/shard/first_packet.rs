//! First packets: a packet that found no flow is handed to its key's
//! owner, or dropped unless it may open a connection, or evaluated
//! against the policy; an allowed one gets a flow pair (SNAT port claimed,
//! both transpositions compiled, both keys indexed, redirects sent for
//! keys other shards own).

use super::{send_redirect, DropReason, Shard, ShardConfig, ShardMsg, ShardStats, Verdict};
use crate::action::compile::{compile_pair, reverse_key, FirstPacket};
use crate::action::icmp_error;
use crate::action::nat::{NatBinding, NatPorts};
use crate::decision::{Actions, Decision, SnatSpec};
use crate::engine;
use crate::flow::key::{proto, FlowKey};
use crate::flow::pair::{FlowPair, Side};
use crate::flow::table::{FlowTable, InsertError};
use crate::flow::tcp_state::flags;
use crate::frame::Frame;
use crate::parse::Parsed;

/// Ports examined when looking for an SNAT port whose return traffic
/// hashes to this shard, before settling for any free port.
const PREFERRED_SNAT_SCAN: usize = 128;

impl Shard {
    /// The slow path, kept out of line so the hit path stays small (no
    /// stack frame for a pair under construction, fewer spills).
    #[inline(never)]
    pub(super) fn miss(&mut self, frame: &mut Frame, parsed: &Parsed, now: u64, may_redirect: bool) -> Verdict {
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
}

/// Where the next SNAT port search starts, and which pool address.
#[derive(Clone, Copy, Debug)]
pub(super) struct SnatCursor {
    pub(super) port: u16,
    pub(super) addr: usize,
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
pub(super) fn claim_snat(
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
