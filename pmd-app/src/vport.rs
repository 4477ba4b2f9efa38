//! A virtual port and its two datapaths.
//!
//! A vport is what the policy and the operator see ("vm", "wan"); under it
//! sit up to two DPDK devices: the *fast* path (an SR-IOV VF, or any DPDK
//! device) and the *soft* path (virtio, tap, af_packet, the synthetic
//! NIC). Which one transmits is the failsafe layer's choice
//! (`failsafe.rs`); both receive while they are up.

use crate::device_drops::PathDeviceDrops;
use crate::dpdk::Port;
use vfp_core::topology::Role;

/// Which of a vport's two datapaths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    Fast,
    Soft,
}

impl PathKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Fast => "fast",
            PathKind::Soft => "soft",
        }
    }
    pub fn other(self) -> PathKind {
        match self {
            PathKind::Fast => PathKind::Soft,
            PathKind::Soft => PathKind::Fast,
        }
    }
    pub const BOTH: [PathKind; 2] = [PathKind::Fast, PathKind::Soft];
}

/// Life of a path's device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathState {
    /// Started, link up: may transmit and is polled.
    Up,
    /// Started but the link is down: polled, never chosen to transmit.
    LinkDown,
    /// The device went away (removal event or unplug); waiting for it to
    /// come back under the same name.
    Removed,
    /// Transmit failures made it unusable until `retry_at`.
    Faulty,
}

impl PathState {
    pub fn as_str(self) -> &'static str {
        match self {
            PathState::Up => "up",
            PathState::LinkDown => "link-down",
            PathState::Removed => "removed",
            PathState::Faulty => "faulty",
        }
    }
}

/// One datapath of a vport: a DPDK device and its current port.
#[derive(Clone, Debug)]
pub struct PathDev {
    /// Device name as the EAL knows it.
    pub device: String,
    /// Devargs to hot-plug it again (vdevs), if known.
    pub devargs: Option<String>,
    /// Current ethdev port; None while removed.
    pub port: Option<Port>,
    pub state: PathState,
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rss: bool,
    /// The device computes IPv4 header checksums on transmit (chosen per
    /// path: a path without it gets them computed in software).
    pub tx_ipv4_csum: bool,
    /// Transmit-error watch (see `failsafe::poll_links`).
    pub health: TxHealth,
    /// The drivers' rx-missed, rx-nombuf, rx-errors and tx-errors.
    pub device_drops: PathDeviceDrops,
    /// Device events numbered below this were raised before the current
    /// device was attached (see [`crate::dpdk::events::sequence`]).
    pub events_from: u64,
}

/// What the control plane remembers to tell a path that keeps failing to
/// transmit (the driver takes the packets but counts them as `oerrors`)
/// from one that works, and when to give a faulty path another try.
#[derive(Clone, Debug, Default)]
pub struct TxHealth {
    /// Device counters at the previous poll.
    pub oerrors: u64,
    pub opackets: u64,
    /// The path's refused packets (`tx_full`, over all workers) then.
    pub refused: u64,
    /// Consecutive polls in which transmits failed.
    pub bad_polls: u32,
    /// Faulty until then; the wait doubles on each relapse.
    pub retry_at: Option<std::time::Instant>,
    pub backoff_ms: u64,
    /// Last time the path was found faulty.
    pub last_fault: Option<std::time::Instant>,
}

impl PathDev {
    /// May carry transmit traffic.
    pub fn usable(&self) -> bool {
        self.port.is_some() && self.state == PathState::Up
    }
    /// Is started and should be polled for rx.
    pub fn polled(&self) -> bool {
        self.port.is_some() && matches!(self.state, PathState::Up | PathState::LinkDown | PathState::Faulty)
    }
}

/// How the active path is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchMode {
    /// Prefer fast; fail over to soft and back by itself.
    Auto,
    /// Stay on this path while it is usable (fail over only when it is not,
    /// and come back to it when it returns).
    Pinned(PathKind),
}

impl SwitchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchMode::Auto => "auto",
            SwitchMode::Pinned(_) => "pinned",
        }
    }
    pub fn preferred(self) -> PathKind {
        match self {
            SwitchMode::Auto => PathKind::Fast,
            SwitchMode::Pinned(p) => p,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Vport {
    pub name: String,
    pub role: Role,
    /// Index of the vport this one forwards to without a policy route.
    pub peer: u16,
    pub fast: Option<PathDev>,
    pub soft: Option<PathDev>,
    /// The path that transmits now; None when neither is usable.
    pub active: Option<PathKind>,
    pub mode: SwitchMode,
}

impl Vport {
    pub fn path(&self, k: PathKind) -> Option<&PathDev> {
        match k {
            PathKind::Fast => self.fast.as_ref(),
            PathKind::Soft => self.soft.as_ref(),
        }
    }
    pub fn path_mut(&mut self, k: PathKind) -> Option<&mut PathDev> {
        match k {
            PathKind::Fast => self.fast.as_mut(),
            PathKind::Soft => self.soft.as_mut(),
        }
    }
    /// The path that should transmit now: the preferred one when usable,
    /// else the other when usable, else none.
    pub fn desired(&self) -> Option<PathKind> {
        let pref = self.mode.preferred();
        [pref, pref.other()]
            .into_iter()
            .find(|k| self.path(*k).is_some_and(PathDev::usable))
    }
    /// Which vport and path own `port`.
    pub fn path_of(&self, port: Port) -> Option<PathKind> {
        PathKind::BOTH
            .into_iter()
            .find(|k| self.path(*k).and_then(|p| p.port) == Some(port))
    }
}

/// testpmd pairing: 0<->1, 2<->3, an odd last one back to itself.
pub fn pair_peer(i: usize, n: usize) -> u16 {
    let p = if i.is_multiple_of(2) {
        if i + 1 < n {
            i + 1
        } else {
            i
        }
    } else {
        i - 1
    };
    p as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(state: PathState) -> PathDev {
        PathDev {
            device: "d".into(),
            devargs: None,
            port: Some(Port(0)),
            state,
            rx_queues: 1,
            tx_queues: 1,
            rss: false,
            tx_ipv4_csum: false,
            health: Default::default(),
            device_drops: Default::default(),
            events_from: 0,
        }
    }

    #[test]
    fn pairing_is_testpmd_like() {
        assert_eq!((0..4).map(|i| pair_peer(i, 4)).collect::<Vec<_>>(), [1, 0, 3, 2]);
        assert_eq!((0..3).map(|i| pair_peer(i, 3)).collect::<Vec<_>>(), [1, 0, 2]);
        assert_eq!(pair_peer(0, 1), 0);
    }

    #[test]
    fn desired_prefers_fast_then_falls_back_and_honours_pin() {
        let mut v = Vport {
            name: "v".into(),
            role: Role::Vm,
            peer: 0,
            fast: Some(dev(PathState::Up)),
            soft: Some(dev(PathState::Up)),
            active: None,
            mode: SwitchMode::Auto,
        };
        assert_eq!(v.desired(), Some(PathKind::Fast));
        v.fast.as_mut().unwrap().state = PathState::Removed;
        assert_eq!(v.desired(), Some(PathKind::Soft));
        v.fast.as_mut().unwrap().state = PathState::Up;
        v.mode = SwitchMode::Pinned(PathKind::Soft);
        assert_eq!(v.desired(), Some(PathKind::Soft));
        v.soft.as_mut().unwrap().state = PathState::LinkDown;
        assert_eq!(v.desired(), Some(PathKind::Fast));
        v.fast.as_mut().unwrap().state = PathState::LinkDown;
        assert_eq!(v.desired(), None);
    }
}
