//! What each worker polls and where it transmits, computed by the control
//! plane and published to workers as an immutable [`WorkerPlan`].
//!
//! Assignments are stable by construction: rx queue `q` of the path in
//! declaration slot `s` always goes to worker `(s + q) % workers`, and
//! worker `w` always transmits on tx queue `w` (or hands off to worker
//! `w % tx_queues` when the device has fewer queues). A plan change can
//! only add or remove whole paths, so no queue is ever polled by two
//! workers, even while workers pick up a new plan at different moments.

use crate::dpdk::Port;
use crate::vport::{PathKind, Vport};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxQueue {
    pub port: Port,
    pub queue: u16,
    pub vport: u16,
    /// Counter slot of the (vport, path) the queue belongs to.
    pub slot: u16,
}

/// Counter slot of a vport's path: counters follow the path, not the
/// ethdev port id, which changes when a device is re-plugged.
pub fn path_slot(vport: usize, k: PathKind) -> u16 {
    (vport * 2 + k as usize) as u16
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxRoute {
    /// Transmit on this port's queue (counted under path `slot`).
    Queue { port: Port, queue: u16, slot: u16 },
    /// This worker has no tx queue on the active device: hand the packet
    /// to the worker that has.
    Via(usize),
    /// The vport has no usable path.
    Down,
}

#[derive(Clone, Debug, Default)]
pub struct WorkerPlan {
    pub generation: u64,
    pub rx: Vec<RxQueue>,
    /// Per vport: where this worker transmits.
    pub tx: Vec<TxRoute>,
    /// Per vport: the vport it forwards to without policy.
    pub peer: Vec<u16>,
    /// Bit v set: vport v's active path computes IPv4 header checksums.
    pub csum_offload: u64,
}

/// Declaration slot of a vport's path (fast and soft each take one when
/// declared), used to spread single-queue devices over workers.
fn slots(vports: &[Vport]) -> Vec<[usize; 2]> {
    let mut next = 0;
    vports
        .iter()
        .map(|v| {
            let mut s = [0; 2];
            for (i, k) in PathKind::BOTH.iter().enumerate() {
                if v.path(*k).is_some() {
                    s[i] = next;
                    next += 1;
                }
            }
            s
        })
        .collect()
}

/// One plan per worker for the vports as they are now.
pub fn build(vports: &[Vport], workers: usize, generation: u64) -> Vec<WorkerPlan> {
    let slots = slots(vports);
    let mut plans: Vec<WorkerPlan> = (0..workers)
        .map(|_| WorkerPlan {
            generation,
            rx: Vec::new(),
            tx: Vec::with_capacity(vports.len()),
            peer: vports.iter().map(|v| v.peer).collect(),
            csum_offload: 0,
        })
        .collect();
    for (vi, v) in vports.iter().enumerate() {
        for (ki, k) in PathKind::BOTH.iter().enumerate() {
            let Some(p) = v.path(*k) else { continue };
            let (Some(port), true) = (p.port, p.polled()) else {
                continue;
            };
            for q in 0..p.rx_queues {
                let w = (slots[vi][ki] + q as usize) % workers;
                plans[w].rx.push(RxQueue {
                    port,
                    queue: q,
                    vport: vi as u16,
                    slot: path_slot(vi, *k),
                });
            }
        }
        let slot = v.active.map_or(0, |k| path_slot(vi, k));
        let active = v.active.and_then(|k| v.path(k)).filter(|p| p.port.is_some());
        if active.is_some_and(|p| p.tx_ipv4_csum) && vi < 64 {
            for plan in plans.iter_mut() {
                plan.csum_offload |= 1 << vi;
            }
        }
        for (w, plan) in plans.iter_mut().enumerate() {
            plan.tx.push(match active {
                None => TxRoute::Down,
                Some(p) => {
                    let port = p.port.expect("filtered");
                    if (w as u16) < p.tx_queues {
                        TxRoute::Queue {
                            port,
                            queue: w as u16,
                            slot,
                        }
                    } else {
                        TxRoute::Via(w % p.tx_queues.max(1) as usize)
                    }
                }
            });
        }
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vport::{PathDev, PathState, SwitchMode};
    use vfp_core::topology::Role;

    fn dev(port: u16, q: u16) -> PathDev {
        PathDev {
            device: format!("d{port}"),
            devargs: None,
            port: Some(Port(port)),
            state: PathState::Up,
            rx_queues: q,
            tx_queues: q,
            rss: q > 1,
            tx_ipv4_csum: false,
            health: Default::default(),
            device_drops: Default::default(),
            events_from: 0,
        }
    }

    fn vp(fast: PathDev, soft: Option<PathDev>, peer: u16) -> Vport {
        Vport {
            name: "v".into(),
            role: Role::Vm,
            peer,
            fast: Some(fast),
            soft,
            active: Some(PathKind::Fast),
            mode: SwitchMode::Auto,
        }
    }

    #[test]
    fn every_queue_polled_by_exactly_one_worker() {
        let vps = vec![vp(dev(0, 2), Some(dev(1, 1)), 1), vp(dev(2, 1), Some(dev(3, 2)), 0)];
        let plans = build(&vps, 2, 1);
        let mut seen = Vec::new();
        for p in &plans {
            for r in &p.rx {
                assert!(!seen.contains(&(r.port, r.queue)), "{r:?} twice");
                seen.push((r.port, r.queue));
            }
        }
        assert_eq!(seen.len(), 6);
        // single-queue devices spread over both workers
        assert!(plans.iter().all(|p| !p.rx.is_empty()));
    }

    #[test]
    fn removing_a_path_moves_no_other_queue() {
        let mut vps = vec![vp(dev(0, 2), Some(dev(1, 1)), 1), vp(dev(2, 1), Some(dev(3, 2)), 0)];
        let before = build(&vps, 2, 1);
        vps[0].fast.as_mut().unwrap().state = PathState::Removed;
        vps[0].fast.as_mut().unwrap().port = None;
        vps[0].active = Some(PathKind::Soft);
        let after = build(&vps, 2, 2);
        for (b, a) in before.iter().zip(&after) {
            for r in &a.rx {
                assert!(b.rx.contains(r), "{r:?} moved");
            }
        }
        assert_eq!(
            after[0].tx[0],
            TxRoute::Queue {
                port: Port(1),
                queue: 0,
                slot: path_slot(0, PathKind::Soft)
            }
        );
        assert_eq!(after[1].tx[0], TxRoute::Via(0));
    }
}
