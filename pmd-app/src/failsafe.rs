//! Choosing, switching and draining a vport's datapaths.
//!
//! Both paths of a vport are polled while they are up (new connections or
//! broadcasts may arrive on the soft path while the fast one carries the
//! rest); only transmit follows the *active* path. So a planned switch is
//! a plan change: workers move their tx at a quiescent point and nothing
//! in flight is lost. When a device goes away (removal event, unplug, link
//! down) its queues leave the plan first, then what is left in its rx
//! rings is drained into the workers, and only then is the device stopped
//! and closed. When it returns under the same name it is brought up with
//! the same queues, MAC and MTU, and the vport fails back unless pinned.
//! Flow state lives in the workers' shards, never in a device, so none of
//! this touches it.

use crate::dataplane::{Dataplane, PublishError};
use crate::device_drops::DeviceDrops;
use crate::dpdk::events::{self, DeviceEvent};
use crate::dpdk::{Burst, Port};
use crate::handoff::Handoff;
use crate::setup;
use crate::vport::{PathDev, PathKind, PathState, SwitchMode};
use std::time::{Duration, Instant};

/// Bursts drained per rx queue of a departing device (bounded: a device
/// that keeps producing, like an infinite pcap, must not hold us here).
const DRAIN_BURSTS: usize = 64;
/// 100 ms link polls with failing transmits (as many failed as sent, or
/// packets refused and none sent), with no poll of clean transmits in
/// between, before the active path is declared faulty.
const FAULT_POLLS: u32 = 3;

/// What one poll's transmit counters (errors, packets refused, packets
/// sent since the last poll) say of a path: Some(true) failing, when sends
/// fail at least as often as they succeed or the queue refuses packets
/// and sends none at all (a hung queue; a congested one refuses some and
/// keeps sending); Some(false) healthy, when it sent and nothing failed;
/// None when nothing was sent or refused, which says nothing either way
/// (the senders may be backing off from the very failures: TCP
/// retransmits ever more rarely).
fn transmit_verdict(oerrs: u64, refused: u64, sent: u64) -> Option<bool> {
    if (oerrs > 0 && oerrs >= sent) || (refused > 0 && sent == 0) {
        Some(true)
    } else if oerrs == 0 && sent > 0 {
        Some(false)
    } else {
        None
    }
}

/// Kernel carrier of the interface an af_packet path is bound to (its
/// driver reports link up regardless); `None` when not applicable.
fn carrier(p: &PathDev) -> Option<bool> {
    if !p.device.starts_with("net_af_packet") && !p.device.starts_with("eth_af_packet") {
        return None;
    }
    let iface = p
        .devargs
        .as_deref()?
        .split(',')
        .find_map(|kv| kv.strip_prefix("iface="))?;
    match std::fs::read_to_string(format!("/sys/class/net/{iface}/carrier")) {
        Ok(s) => Some(s.trim() == "1"),
        // Reading carrier of an interface that is down fails (EINVAL);
        // a vanished interface has no file: both mean no link.
        Err(_) => Some(false),
    }
}

/// Attempts (10 us apart) to put a drained packet into a full inbox.
const DRAIN_PUSH_TRIES: u32 = 10_000;

/// Why `switch` did not move a vport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwitchError {
    /// The request cannot be carried out (no such vport or path, the path
    /// is not usable); nothing changed.
    Refused(String),
    /// The switch was published but not every worker confirmed it.
    Publish(PublishError),
}

impl std::fmt::Display for SwitchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SwitchError::Refused(m) => f.write_str(m),
            SwitchError::Publish(e) => e.fmt(f),
        }
    }
}

/// Stops and closes a port no worker polls, and with `detach` also
/// removes its device from the bus (closing already released the port of
/// most PMDs; the bus may still hold the device).
pub fn release(port: Port, device: &str, detach: bool) {
    if let Err(e) = port.stop() {
        log::warn!("{e}");
    }
    if let Err(e) = port.close() {
        log::warn!("{e}");
    }
    if detach {
        if let Err(e) = events::hotplug_remove(bus_of(device), device) {
            log::debug!("{e}");
        }
    }
}

fn bus_of(device: &str) -> &'static str {
    // PCI devices are named by address (0000:03:00.1); the rest are vdevs.
    if device.len() >= 7 && device.as_bytes()[4] == b':' && device.contains('.') {
        "pci"
    } else {
        "vdev"
    }
}

impl Dataplane {
    /// `switch VPORT fast|soft|auto`.
    pub fn switch(&mut self, vport: &str, to: Option<PathKind>) -> Result<(PathKind, SwitchMode, u64), SwitchError> {
        let vi = self
            .vport_index(vport)
            .ok_or_else(|| SwitchError::Refused(format!("no vport named `{vport}`")))?;
        let v = &self.vports[vi];
        if let Some(k) = to {
            match v.path(k) {
                None => {
                    return Err(SwitchError::Refused(format!(
                        "vport {vport} has no {} path",
                        k.as_str()
                    )))
                }
                Some(p) if !p.usable() => {
                    return Err(SwitchError::Refused(format!(
                        "the {} path of vport {vport} is {}",
                        k.as_str(),
                        p.state.as_str()
                    )))
                }
                Some(_) => {}
            }
        }
        let t0 = std::time::Instant::now();
        self.vports[vi].mode = match to {
            Some(k) => SwitchMode::Pinned(k),
            None => SwitchMode::Auto,
        };
        self.reconcile("command").map_err(SwitchError::Publish)?;
        let v = &self.vports[vi];
        let active = v
            .active
            .ok_or_else(|| SwitchError::Refused(format!("vport {vport} has no usable path")))?;
        Ok((active, v.mode, t0.elapsed().as_micros() as u64))
    }

    /// Reacts to a device event from DPDK's interrupt thread.
    pub fn on_device_event(&mut self, ev: DeviceEvent) {
        match ev {
            DeviceEvent::Removed { port, seq } => {
                let port = Port(port);
                if let Some((vi, k)) = self.owner_of(port) {
                    if self.vports[vi].path(k).is_some_and(|d| seq < d.events_from) {
                        // Raised for the device this port id named before
                        // it was detached and the id reused.
                        log::info!(
                            "ignoring a removal event of port {} raised before its device was attached",
                            port.0
                        );
                        return;
                    }
                    log::warn!(
                        "vport {}: {} device {} removed",
                        self.vports[vi].name,
                        k.as_str(),
                        port.name()
                    );
                    if let Err(e) = self.retire(vi, k, "device-removed", true) {
                        log::error!("retiring removed device: {e}");
                    }
                }
            }
            DeviceEvent::LinkChange(_) => self.poll_links(),
            DeviceEvent::New { port, seq } => {
                let name = Port(port).name();
                if let Some((vi, k)) = self.find_device(&name) {
                    if self.vports[vi].path(k).is_some_and(|d| d.port.is_none()) {
                        if let Err(e) = self.adopt(vi, k, Port(port), seq, "device-added") {
                            log::error!("adopting {name}: {e}");
                        }
                    }
                }
            }
            DeviceEvent::Destroyed(_) => {}
        }
    }

    fn owner_of(&self, port: Port) -> Option<(usize, PathKind)> {
        self.vports
            .iter()
            .enumerate()
            .find_map(|(i, v)| v.path_of(port).map(|k| (i, k)))
    }

    /// Link state and transmit health of every started device; switches
    /// on a change. A path is down when its link is down (for af_packet,
    /// whose driver always reports link up, when its kernel interface has
    /// no carrier). The active path is *faulty* when its transmits keep
    /// failing (`oerrors` growing as fast as `opackets`, or its tx ring
    /// refusing packets while `opackets` stands still) in `FAULT_POLLS`
    /// (3) polls with no clean one in between (idle polls do not count
    /// either way); it is tried again after a back-off that doubles on
    /// every relapse (1 s .. 30 s).
    pub fn poll_links(&mut self) {
        let now = Instant::now();
        let mut causes: Vec<&'static str> = Vec::new();
        for (vi, v) in self.vports.iter_mut().enumerate() {
            let name = v.name.clone();
            let active = v.active;
            for k in PathKind::BOTH {
                let Some(p) = v.path_mut(k) else { continue };
                let Some(port) = p.port else { continue };
                let slot = crate::plan::path_slot(vi, k);
                let refused_now: u64 = self.workers.iter().map(|w| w.stats.path(slot).tx_full.get()).sum();
                let up = port.link().up && carrier(p).unwrap_or(true);
                let mut next = match (p.state, up) {
                    (PathState::Up, false) | (PathState::Faulty, false) => PathState::LinkDown,
                    (PathState::LinkDown, true) => PathState::Up,
                    (s, _) => s,
                };
                let st = port.stats();
                if let Some(s) = &st {
                    p.device_drops.record(s);
                }
                let h = &mut p.health;
                // A device that cannot be read counts as nothing sent and
                // nothing failed, and keeps its baselines.
                let (oe, op) = st.map_or((h.oerrors, h.opackets), |s| (s.oerrors, s.opackets));
                let (oerrs, refused, sent) = (
                    oe.saturating_sub(h.oerrors),
                    refused_now.saturating_sub(h.refused),
                    op.saturating_sub(h.opackets),
                );
                (h.oerrors, h.opackets, h.refused) = (oe, op, refused_now);
                if next == PathState::Up && active == Some(k) {
                    match transmit_verdict(oerrs, refused, sent) {
                        Some(true) => h.bad_polls += 1,
                        Some(false) => h.bad_polls = 0,
                        None => {}
                    }
                    if h.bad_polls >= FAULT_POLLS {
                        let recent = h
                            .last_fault
                            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(60));
                        h.backoff_ms = if recent {
                            (h.backoff_ms * 2).clamp(1000, 30_000)
                        } else {
                            1000
                        };
                        h.retry_at = Some(now + Duration::from_millis(h.backoff_ms));
                        h.last_fault = Some(now);
                        h.bad_polls = 0;
                        next = PathState::Faulty;
                        log::warn!(
                            "vport {name}: {} path {} fails to transmit ({oerrs} errors, {refused} refused, {sent} \
                             sent in the last poll), faulty for {} ms",
                            k.as_str(),
                            p.device,
                            h.backoff_ms
                        );
                        causes.push("tx-errors");
                    }
                } else if p.state == PathState::Faulty && h.retry_at.is_some_and(|t| now >= t) {
                    log::info!(
                        "vport {name}: {} path {} back in service after its back-off",
                        k.as_str(),
                        p.device
                    );
                    h.retry_at = None;
                    h.bad_polls = 0;
                    next = PathState::Up;
                    causes.push("tx-retry");
                }
                if next != p.state {
                    if matches!((p.state, next), (_, PathState::LinkDown) | (PathState::LinkDown, _)) {
                        log::warn!(
                            "vport {}: {} path {} link {}",
                            name,
                            k.as_str(),
                            p.device,
                            if up { "up" } else { "down" }
                        );
                        causes.push("link-change");
                    }
                    p.state = next;
                }
            }
        }
        let seen = self
            .vports
            .iter()
            .flat_map(|v| PathKind::BOTH.into_iter().filter_map(|k| v.path(k)))
            .fold(DeviceDrops::default(), |sum, p| sum.plus(p.device_drops.recorded()));
        self.device_drops.store(seen);
        if let Some(cause) = causes.first() {
            if let Err(e) = self.reconcile(cause) {
                log::error!("{e}");
            }
        }
    }

    /// Takes a path out of service: off the plan, rx rings drained into
    /// the workers, device stopped and closed, and optionally detached.
    fn retire(&mut self, vi: usize, k: PathKind, cause: &str, detach: bool) -> Result<(), String> {
        let (port, rx_queues, was) = {
            let p = self.vports[vi].path_mut(k).ok_or("no such path")?;
            let port = p.port.take().ok_or_else(|| format!("{} is not present", p.device))?;
            let was = std::mem::replace(&mut p.state, PathState::Removed);
            (port, p.rx_queues, was)
        };
        // Off the plan first (tx moves to the other path in the same step).
        let moved = self.vports[vi].active != self.vports[vi].desired();
        let published = if moved {
            self.reconcile(cause).map(|_| ())
        } else {
            self.publish().map(|_| ())
        };
        if let Err(e) = published {
            // Some worker may still poll the port (or the workers are
            // stopping): it must not be stopped here, nor forgotten. The
            // path keeps it, so a retry or the teardown drains and closes
            // it; the next reconcile moves the vport back if it moved.
            if let Some(p) = self.vports[vi].path_mut(k) {
                p.port = Some(port);
                p.state = was;
            }
            return Err(e.to_string());
        }
        let drained = self.drain(vi, port, rx_queues);
        let device = match self.vports[vi].path_mut(k) {
            Some(p) => {
                // Read while the device is still open; a re-plugged one
                // counts from zero.
                p.device_drops.retire(port);
                p.device.clone()
            }
            None => String::new(),
        };
        release(port, &device, detach);
        log::info!("{device}: retired ({cause}), {drained} packet(s) drained from its rx rings");
        Ok(())
    }

    /// Pulls what is left in `port`'s rx rings and hands it to the
    /// workers as if it had arrived on vport `vi` (no worker polls it now).
    /// Only the `queues` rx queues set up on the port exist: polling one
    /// past them (up to the device's maximum) dereferences a NULL queue in
    /// the PMD.
    fn drain(&mut self, vi: usize, port: Port, queues: u16) -> usize {
        let n_workers = self.workers.len().max(1);
        let mut burst = Burst::new();
        let mut total = 0;
        for q in 0..queues {
            for _ in 0..DRAIN_BURSTS {
                if port.rx_burst(q, &mut burst) == 0 {
                    break;
                }
                for m in burst.drain() {
                    let w = total % n_workers;
                    total += 1;
                    let mut h = Handoff::Rx {
                        vport: vi as u16,
                        mbuf: m,
                    };
                    // The workers are running: a full inbox empties soon.
                    let mut tries = 0;
                    while let Err(back) = self.inboxes.packets[w].push(h) {
                        tries += 1;
                        if tries > DRAIN_PUSH_TRIES {
                            // Freed on drop; counted so nothing vanishes silently.
                            self.drain_dropped += 1;
                            break;
                        }
                        h = back;
                        std::thread::sleep(std::time::Duration::from_micros(10));
                    }
                }
            }
        }
        total
    }

    /// Brings a returning device up as path `k` of vport `vi`.
    /// Events numbered from `events_from` on may be about this device.
    fn adopt(&mut self, vi: usize, k: PathKind, port: Port, events_from: u64, cause: &str) -> Result<(), String> {
        let (queues, nb_desc, socket) = (self.queues, self.nb_desc, self.socket);
        let pool = self.pool.clone();
        {
            let p = self.vports[vi].path_mut(k).ok_or("no such path")?;
            p.port = Some(port);
            p.events_from = events_from;
            if let Err(e) = setup::bring_up(p, queues, nb_desc, &pool, socket) {
                p.port = None;
                p.state = PathState::Removed;
                // Nothing polls it yet. Released and detached, the device
                // can be plugged again; left probed, a later plug would
                // fail on the device the EAL still holds.
                release(port, &p.device, true);
                return Err(e);
            }
        }
        setup::unify_identity(&self.vports[vi]);
        log::info!(
            "vport {}: {} path {} is back",
            self.vports[vi].name,
            k.as_str(),
            port.name()
        );
        // Polled from now on; transmit follows if it is the desired path.
        if self.reconcile(cause)? == 0 {
            self.publish()?;
        }
        Ok(())
    }

    /// Test hook and operator tool: hot-unplug a device as if the host had
    /// removed it.
    pub fn unplug(&mut self, device: &str) -> Result<(), String> {
        let (vi, k) = self
            .find_device(device)
            .ok_or_else(|| format!("no vport path uses device `{device}`"))?;
        self.retire(vi, k, "device-removed", true)
    }

    /// Hot-plugs a device back (devargs default to those it started with).
    pub fn plug(&mut self, device: &str, devargs: Option<&str>) -> Result<(), String> {
        let (vi, k) = self
            .find_device(device)
            .ok_or_else(|| format!("no vport path uses device `{device}`"))?;
        let p = self.vports[vi].path(k).ok_or("no such path")?;
        if p.port.is_some() {
            return Err(format!("device `{device}` is already present"));
        }
        let args = devargs
            .map(str::to_owned)
            .or_else(|| p.devargs.clone())
            .unwrap_or_default();
        // Taken before the device exists: any event about it comes later.
        let events_from = events::sequence();
        events::hotplug_add(bus_of(device), device, &args)?;
        let port = Port::by_name(device).ok_or_else(|| format!("`{device}` was plugged but has no ethdev port"))?;
        // The NEW event may already have adopted it.
        if self.vports[vi].path(k).is_some_and(|p| p.port.is_none()) {
            self.adopt(vi, k, port, events_from, "device-added")?;
        }
        if devargs.is_some() {
            if let Some(p) = self.vports[vi].path_mut(k) {
                p.devargs = devargs.map(str::to_owned);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::transmit_verdict;

    #[test]
    fn transmit_verdicts() {
        // (errors, refused, sent)
        assert_eq!(transmit_verdict(0, 0, 0), None, "idle");
        assert_eq!(transmit_verdict(0, 0, 500), Some(false), "clean");
        assert_eq!(transmit_verdict(5, 0, 5), Some(true), "half the sends fail");
        assert_eq!(transmit_verdict(5, 0, 0), Some(true), "every send fails");
        assert_eq!(transmit_verdict(0, 64, 0), Some(true), "hung queue");
        assert_eq!(transmit_verdict(0, 400, 1000), Some(false), "congested but sending");
        assert_eq!(transmit_verdict(3, 0, 1000), None, "a few errors");
        assert_eq!(transmit_verdict(3, 400, 1000), None, "a few errors, congested");
    }
}
