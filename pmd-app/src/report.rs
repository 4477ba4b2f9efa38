//! Counter snapshots: summed from the per-lcore blocks without locks,
//! turned into rates against the previous sample, printed as the live
//! table (`--stats-period`) and the final one, and served as `stats`.

use crate::dataplane::Dataplane;
use crate::device_drops::DeviceDrops;
use crate::stats::AppDrop;
use crate::vport::PathKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

#[derive(Clone, Debug, Default, Serialize)]
pub struct PathRow {
    pub vport: String,
    pub path: &'static str,
    pub device: String,
    pub port_id: Option<u16>,
    pub state: &'static str,
    pub active: bool,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_pps: f64,
    pub tx_pps: f64,
    pub rx_gbps: f64,
    pub tx_gbps: f64,
    /// Packets the app offered that the device refused (`tx-full`).
    pub tx_full: u64,
    /// The devices' own losses on this path (see `device_drops.rs`):
    /// `rx_missed`, `rx_nombuf`, `rx_errors`, `tx_errors`.
    #[serde(flatten)]
    pub lost: DeviceDrops,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LcoreRow {
    pub lcore: u32,
    pub worker: usize,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_pps: f64,
    pub tx_pps: f64,
    pub rx_gbps: f64,
    pub tx_gbps: f64,
    pub cycles_per_packet: f64,
    pub idle_ratio: f64,
    pub flows: u64,
    /// Packets this lcore handed to another one to process or transmit,
    /// and packets handed to it.
    pub handoff_out: u64,
    pub handoff_in: u64,
    pub drops: BTreeMap<String, u64>,
    #[serde(skip)]
    busy_cycles: u64,
    #[serde(skip)]
    total_cycles: u64,
    #[serde(skip)]
    busy_packets: u64,
    #[serde(skip)]
    rx_bytes: u64,
    #[serde(skip)]
    tx_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    #[serde(skip)]
    pub at: Instant,
    pub uptime_s: f64,
    pub interval_s: f64,
    pub paths: Vec<PathRow>,
    pub lcores: Vec<LcoreRow>,
    pub drops: BTreeMap<String, u64>,
    /// The devices' own losses summed over the paths: `rx-missed`,
    /// `rx-nombuf`, `rx-errors`, `tx-errors` (not in `drops`: the app
    /// never held those packets, or had already sent them).
    pub device_drops: BTreeMap<String, u64>,
    /// Flow-table counters summed over the shards (empty without policy).
    pub engine: BTreeMap<String, u64>,
    pub mbufs_in_use: u32,
    pub mbufs_total: u32,
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        now.saturating_sub(before) as f64 / secs
    }
}

impl Snapshot {
    pub fn take(dp: &Dataplane, prev: Option<&Snapshot>) -> Snapshot {
        let at = Instant::now();
        let secs = prev.map(|p| at.duration_since(p.at).as_secs_f64()).unwrap_or(0.0);
        let mut paths = Vec::new();
        let mut device_drops = BTreeMap::new();
        for (vi, v) in dp.vports.iter().enumerate() {
            for k in PathKind::BOTH {
                let Some(p) = v.path(k) else { continue };
                let mut row = PathRow {
                    vport: v.name.clone(),
                    path: k.as_str(),
                    device: p.device.clone(),
                    port_id: p.port.map(|x| x.0),
                    state: p.state.as_str(),
                    active: v.active == Some(k),
                    ..PathRow::default()
                };
                row.lost = p.device_drops.total(p.port);
                row.lost.add_to(&mut device_drops);
                let slot = crate::plan::path_slot(vi, k);
                for w in &dp.workers {
                    let c = w.stats.path(slot);
                    row.rx_packets += c.rx_packets.get();
                    row.tx_packets += c.tx_packets.get();
                    row.rx_bytes += c.rx_bytes.get();
                    row.tx_bytes += c.tx_bytes.get();
                    row.tx_full += c.tx_full.get();
                }
                if let Some(old) = prev.and_then(|s| s.paths.iter().find(|r| r.device == row.device)) {
                    row.rx_pps = rate(row.rx_packets, old.rx_packets, secs);
                    row.tx_pps = rate(row.tx_packets, old.tx_packets, secs);
                    row.rx_gbps = rate(row.rx_bytes, old.rx_bytes, secs) * 8e-9;
                    row.tx_gbps = rate(row.tx_bytes, old.tx_bytes, secs) * 8e-9;
                }
                paths.push(row);
            }
        }
        let mut drops: BTreeMap<String, u64> = BTreeMap::new();
        let mut engine: BTreeMap<String, u64> = BTreeMap::new();
        let mut lcores = Vec::new();
        let shards = dp.engine_stats.lock().unwrap_or_else(|e| e.into_inner());
        for (i, w) in dp.workers.iter().enumerate() {
            let s = &w.stats;
            let mut row = LcoreRow {
                lcore: w.lcore,
                worker: i,
                rx_packets: s.rx_packets.get(),
                tx_packets: s.tx_packets.get(),
                busy_cycles: s.busy_cycles.get(),
                total_cycles: s.total_cycles.get(),
                busy_packets: s.busy_packets.get(),
                rx_bytes: s.rx_bytes.get(),
                tx_bytes: s.tx_bytes.get(),
                handoff_out: s.handoff_out.get(),
                handoff_in: s.handoff_in.get(),
                ..LcoreRow::default()
            };
            for d in AppDrop::ALL {
                row.drops.insert(d.as_str().to_string(), s.drops[d as usize].get());
            }
            if let Some(e) = shards.get(i) {
                for (r, n) in e.drops() {
                    *row.drops.entry(r.as_str().to_string()).or_default() += n;
                }
                for (name, n) in e.named() {
                    *engine.entry(name.to_string()).or_default() += n;
                }
                row.flows = e.flows_active.get();
            }
            if i == 0 && dp.drain_dropped > 0 {
                row.drops.insert("drain-dropped".to_string(), dp.drain_dropped);
            }
            for (k, n) in &row.drops {
                *drops.entry(k.clone()).or_default() += n;
            }
            let (db, dt, dp_) = match prev.and_then(|p| p.lcores.get(i)) {
                Some(o) => (
                    row.busy_cycles - o.busy_cycles,
                    row.total_cycles - o.total_cycles,
                    row.busy_packets - o.busy_packets,
                ),
                None => (row.busy_cycles, row.total_cycles, row.busy_packets),
            };
            row.cycles_per_packet = if dp_ > 0 { db as f64 / dp_ as f64 } else { 0.0 };
            row.idle_ratio = if dt > 0 { 1.0 - db as f64 / dt as f64 } else { 1.0 };
            if let Some(o) = prev.and_then(|p| p.lcores.get(i)) {
                row.rx_pps = rate(row.rx_packets, o.rx_packets, secs);
                row.tx_pps = rate(row.tx_packets, o.tx_packets, secs);
                row.rx_gbps = rate(row.rx_bytes, o.rx_bytes, secs) * 8e-9;
                row.tx_gbps = rate(row.tx_bytes, o.tx_bytes, secs) * 8e-9;
            }
            lcores.push(row);
        }
        let total = dp.pool.size();
        Snapshot {
            at,
            uptime_s: dp.uptime().as_secs_f64(),
            interval_s: secs,
            paths,
            lcores,
            drops,
            device_drops,
            engine,
            mbufs_in_use: total - dp.pool.available().min(total),
            mbufs_total: total,
        }
    }

    /// The live / final table.
    pub fn render(&self, title: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "---- {title} (uptime {:.1}s) ----", self.uptime_s);
        let _ = writeln!(
            s,
            "{:<10} {:<5} {:<16} {:>4} {:<9} {:>12} {:>12} {:>12} {:>12}",
            "vport", "path", "device", "port", "state", "rx-packets", "tx-packets", "rx-pps", "tx-pps"
        );
        for r in &self.paths {
            let _ = writeln!(
                s,
                "{:<10} {:<5} {:<16} {:>4} {:<9} {:>12} {:>12} {:>12.0} {:>12.0}",
                r.vport,
                format!("{}{}", r.path, if r.active { "*" } else { "" }),
                r.device,
                r.port_id.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                r.state,
                r.rx_packets,
                r.tx_packets,
                r.rx_pps,
                r.tx_pps
            );
        }
        let _ = writeln!(
            s,
            "{:<6} {:<6} {:>12} {:>12} {:>12} {:>12} {:>10} {:>6} {:>9}",
            "lcore", "worker", "rx-packets", "tx-packets", "rx-pps", "tx-pps", "cyc/pkt", "idle%", "flows"
        );
        for l in &self.lcores {
            let _ = writeln!(
                s,
                "{:<6} {:<6} {:>12} {:>12} {:>12.0} {:>12.0} {:>10.1} {:>6.1} {:>9}",
                l.lcore,
                l.worker,
                l.rx_packets,
                l.tx_packets,
                l.rx_pps,
                l.tx_pps,
                l.cycles_per_packet,
                l.idle_ratio * 100.0,
                l.flows
            );
        }
        let nonzero: Vec<String> = self
            .drops
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let _ = writeln!(
            s,
            "drops: {}",
            if nonzero.is_empty() {
                "none".to_string()
            } else {
                nonzero.join(" ")
            }
        );
        let device: Vec<String> = self
            .paths
            .iter()
            .flat_map(|r| {
                r.lost
                    .named()
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(move |(k, n)| format!("{}/{}:{k}={n}", r.vport, r.path))
            })
            .collect();
        if !device.is_empty() {
            let _ = writeln!(s, "device drops: {}", device.join(" "));
        }
        if !self.engine.is_empty() {
            let pick = [
                "forwarded",
                "l2-forwarded",
                "flows-active",
                "flows-created",
                "flows-expired",
                "redirects-out",
            ];
            let shown: Vec<String> = pick
                .iter()
                .map(|k| format!("{k}={}", self.engine.get(*k).copied().unwrap_or(0)))
                .collect();
            let _ = writeln!(s, "engine: {}", shown.join(" "));
        }
        let _ = writeln!(s, "mbufs in use: {} of {}", self.mbufs_in_use, self.mbufs_total);
        s
    }
}
