//! Slow path: evaluate the policy layers for the first packet of a connection.
//!
//! Outbound packets (arrived on a VM-facing vport) traverse the layers
//! top-down, inbound ones bottom-up. Each layer matches its rules against
//! the packet *as the layers already traversed left it* — outbound, the
//! encap layer sees the SNAT'd source; inbound, the ACL layer sees the DNAT
//! backend — so every layer's conditions are written in its own address
//! space. Within one layer all rules see the packet as it entered the
//! layer; rewrites take effect for the next layer.
//!
//! Rules are scanned in (group, priority, id) order. Every matching rule
//! applies; the first matching terminating rule ends the layer (a `deny`
//! ends the whole evaluation). When no terminating rule matched, the
//! layer's default decides. The result is a [`Decision`] the shard turns
//! into a flow pair.
//!
//! `evaluate` allocates nothing: actions are copied out of the compiled
//! rules (the decision borrows the policy's `SnatSpec`).

use crate::decision::{Actions, Decision, Deny, RuleRef};
use crate::flow::key::{Direction, FlowKey};
use crate::parse::Parsed;
use crate::policy::{Addr, LayerDefault, PacketView, Policy, Verb};

/// Evaluates `policy` for a packet with flow key `key` (vport and
/// direction set by the caller); `parsed` supplies what the key lacks
/// (TCP flags, the VXLAN outer header).
pub fn evaluate<'p>(policy: &'p Policy, parsed: &Parsed, key: &FlowKey) -> Decision<'p> {
    evaluate_sticky(policy, parsed, key, None)
}

/// [`evaluate`] for a connection already sent to DNAT backend `backend`
/// (address and port as its rule lists it): a DNAT rule that still lists
/// it keeps it, so re-evaluating an established connection after a
/// policy change (another backend added, say) does not move it.
pub fn evaluate_sticky<'p>(
    policy: &'p Policy,
    parsed: &Parsed,
    key: &FlowKey,
    backend: Option<([u8; 16], u16)>,
) -> Decision<'p> {
    let layers = policy.layers();
    let mut view = PacketView {
        src: Addr::from_key(&key.src),
        dst: Addr::from_key(&key.dst),
        src_port: key.src_port,
        dst_port: key.dst_port,
        proto: key.proto,
        vni: key.vni,
        vport: key.vport,
        tcp_flags: parsed.tcp_flags,
    };
    let mut acts = Actions::default();
    let mut route = None;
    for step in 0..layers.len() {
        let li = match key.dir {
            Direction::Outbound => step,
            Direction::Inbound => layers.len() - 1 - step,
        };
        let layer = &layers[li];
        // Rewrites of this layer, visible from the next one on.
        let mut next = view;
        let mut ended = false;
        for ri in layer.candidates(key.dir, key.proto, view.src, view.dst) {
            let ri = ri as usize;
            let Some(rule) = layer.rules.get(ri) else {
                continue;
            };
            if !rule.matcher.matches(&view) {
                continue;
            }
            layer.hit(ri);
            let at = RuleRef {
                layer: li as u16,
                rule: rule.id,
            };
            match &rule.verb {
                Verb::Deny => return Decision::Deny(Deny::Rule(at)),
                Verb::Count => {
                    // More than 8 counting rules on one connection: the
                    // extra ones only keep their slow-path hit counter.
                    let _ = acts.counted.try_push(at);
                }
                Verb::Allow => {}
                Verb::Snat(pool) => {
                    // The port is only chosen when the shard creates the
                    // flow; layers below match the pool's first address and
                    // the original source port.
                    if let Some(a) = pool.addrs.first() {
                        next.src = Addr::from_key(&crate::flow::key::v4_mapped(*a));
                    }
                    acts.snat = Some(pool);
                }
                Verb::Dnat(backends) => {
                    if backends.is_empty() {
                        return Decision::Deny(Deny::Action(at));
                    }
                    // The backend the connection has, if still listed; else
                    // by the arrival key's symmetric hash: the same
                    // connection always lands on the same backend,
                    // different ones spread.
                    let kept =
                        backend.and_then(|(addr, port)| backends.iter().find(|b| b.addr == addr && b.port == port));
                    let b = match kept {
                        Some(b) => *b,
                        None => backends[(key.owner_hash() % backends.len() as u64) as usize],
                    };
                    next.dst = Addr::from_key(&b.addr);
                    if b.port != 0 {
                        next.dst_port = b.port;
                    }
                    acts.dnat = Some((b.addr, b.port));
                }
                Verb::Encap(e) => {
                    next.vni = e.vni;
                    acts.encap = Some(*e);
                }
                Verb::Decap => {
                    if parsed.outer.is_none() {
                        return Decision::Deny(Deny::Action(at));
                    }
                    acts.decap = true;
                }
            }
            let m = &rule.mods;
            if m.route.is_some() {
                route = m.route;
            }
            if m.set_src_mac.is_some() {
                acts.set_src_mac = m.set_src_mac;
            }
            if m.set_dst_mac.is_some() {
                acts.set_dst_mac = m.set_dst_mac;
            }
            acts.dec_ttl |= m.dec_ttl;
            if rule.terminating {
                ended = true;
                break;
            }
        }
        if !ended && layer.default == LayerDefault::Deny {
            return Decision::Deny(Deny::LayerDefault { layer: li as u16 });
        }
        view = next;
    }
    acts.out_vport = route.unwrap_or_else(|| {
        policy
            .vports()
            .get(usize::from(key.vport))
            .map_or(key.vport, |v| v.peer)
    });
    Decision::Allow(acts)
}
