//! Packets a path's devices lost on their side of the app, from the
//! drivers' own counters (`rte_eth_stats`): received frames the app never
//! saw, and handed-over frames the device failed to send. The engine's
//! and workers' drop counters cover only packets the app held, so
//! received = transmitted + `drops` stays exact; these are reported next
//! to them, per path and summed, as `testpmd` shows RX-missed, RX-nombuf,
//! RX-errors and TX-errors per port.

use crate::dpdk::{Port, PortStats};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// One reading of the four counters (serialized as the fields of a path
/// in `stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceDrops {
    /// Frames the device had no room for in its rx ring (`imissed`).
    pub rx_missed: u64,
    /// Frames lost because the mbuf pool was empty (`rx_nombuf`).
    pub rx_nombuf: u64,
    /// Erroneous frames the device discarded (`ierrors`; for a tap, frames
    /// larger than the mbuf).
    pub rx_errors: u64,
    /// Frames the driver took and failed to send (`oerrors`).
    pub tx_errors: u64,
}

impl DeviceDrops {
    pub fn of(s: &PortStats) -> DeviceDrops {
        DeviceDrops {
            rx_missed: s.imissed,
            rx_nombuf: s.rx_nombuf,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
        }
    }

    pub fn plus(self, o: DeviceDrops) -> DeviceDrops {
        DeviceDrops {
            rx_missed: self.rx_missed + o.rx_missed,
            rx_nombuf: self.rx_nombuf + o.rx_nombuf,
            rx_errors: self.rx_errors + o.rx_errors,
            tx_errors: self.tx_errors + o.tx_errors,
        }
    }

    /// The counters under the names `stats` reports them by.
    pub fn named(self) -> [(&'static str, u64); 4] {
        [
            ("rx-missed", self.rx_missed),
            ("rx-nombuf", self.rx_nombuf),
            ("rx-errors", self.rx_errors),
            ("tx-errors", self.tx_errors),
        ]
    }

    /// Adds these counters into a `{name: count}` map.
    pub fn add_to(self, map: &mut BTreeMap<String, u64>) {
        for (k, n) in self.named() {
            *map.entry(k.to_string()).or_default() += n;
        }
    }
}

/// A path's device counters across the devices that served it: a device
/// that is removed and plugged again starts from zero, so what its
/// earlier incarnations counted is kept aside when it is retired.
#[derive(Clone, Debug, Default)]
pub struct PathDeviceDrops {
    /// Summed over the devices this path had before the current one.
    retired: DeviceDrops,
    /// The current device's counters at the last reading (what is left
    /// to report if the device vanishes before it can be read again).
    last: DeviceDrops,
}

impl PathDeviceDrops {
    /// Remembers a reading of the current device's counters.
    pub fn record(&mut self, s: &PortStats) {
        self.last = DeviceDrops::of(s);
    }

    /// Reads the current device's counters and remembers them.
    pub fn refresh(&mut self, port: Port) {
        if let Some(s) = port.stats() {
            self.record(&s);
        }
    }

    /// The path's totals, reading the current device if there is one.
    pub fn total(&self, port: Option<Port>) -> DeviceDrops {
        let current = port.and_then(|p| p.stats()).map(|s| DeviceDrops::of(&s));
        self.retired.plus(current.unwrap_or(self.last))
    }

    /// The path's totals as last read (no device access): what
    /// [`Published`] carries.
    pub fn recorded(&self) -> DeviceDrops {
        self.retired.plus(self.last)
    }

    /// The current device is going away: its counters join the retired
    /// (a device already physically gone cannot be read: its last
    /// reading, at most one link poll old, stands in).
    pub fn retire(&mut self, port: Port) {
        self.refresh(port);
        self.retired = self.retired.plus(self.last);
        self.last = DeviceDrops::default();
    }
}

/// The devices' losses summed over every path as the control thread last
/// read them (every link poll), for readers on other threads (DPDK
/// telemetry's `/vfp/device_drops`), which must not read a device the
/// control thread may be removing.
#[derive(Debug, Default)]
pub struct Published([AtomicU64; 4]);

impl Published {
    pub fn store(&self, d: DeviceDrops) {
        for (slot, (_, n)) in self.0.iter().zip(d.named()) {
            slot.store(n, Ordering::Relaxed);
        }
    }

    pub fn load(&self) -> DeviceDrops {
        let [rx_missed, rx_nombuf, rx_errors, tx_errors] = self.0.each_ref().map(|a| a.load(Ordering::Relaxed));
        DeviceDrops {
            rx_missed,
            rx_nombuf,
            rx_errors,
            tx_errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sums() {
        let a = DeviceDrops {
            rx_missed: 1,
            rx_nombuf: 2,
            rx_errors: 3,
            tx_errors: 4,
        };
        let b = a.plus(a);
        assert_eq!(
            b.named(),
            [("rx-missed", 2), ("rx-nombuf", 4), ("rx-errors", 6), ("tx-errors", 8)]
        );
        let mut m = BTreeMap::new();
        a.add_to(&mut m);
        b.add_to(&mut m);
        assert_eq!(m["rx-errors"], 9);
        assert_eq!(m.len(), 4);
        let p = Published::default();
        p.store(b);
        assert_eq!(p.load(), b);
    }

    #[test]
    fn a_vanished_device_reports_its_last_reading_and_retiring_keeps_it() {
        let mut p = PathDeviceDrops {
            retired: DeviceDrops {
                rx_nombuf: 5,
                ..DeviceDrops::default()
            },
            last: DeviceDrops {
                rx_nombuf: 7,
                ..DeviceDrops::default()
            },
        };
        // No port: the last reading stands in for the current device.
        assert_eq!(p.total(None).rx_nombuf, 12);
        // A port the driver cannot read (no such port id): the same.
        let gone = Port(u16::MAX);
        assert_eq!(p.total(Some(gone)).rx_nombuf, 12);
        p.refresh(gone);
        assert_eq!(p.total(None).rx_nombuf, 12);
        // Retired, its last reading moves to the retired sum, once.
        p.retire(gone);
        assert_eq!((p.retired.rx_nombuf, p.last.rx_nombuf), (12, 0));
        p.retire(gone);
        assert_eq!(p.total(None).rx_nombuf, 12);
    }
}
