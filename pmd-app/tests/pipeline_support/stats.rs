//! The `--final-stats` JSON the app writes at exit (the control `stats`
//! result): drop reasons, engine counters, per-lcore and per-vport
//! packet counts, and the assertions the tests make on them.

use serde_json::Value;
use std::collections::BTreeMap;

/// What `--final-stats` wrote.
pub struct Stats(pub Value);

impl Stats {
    pub fn read(path: &str, ctx: &str) -> Stats {
        let s = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("--final-stats file {path} not written: {e}\n{ctx}"));
        Stats(serde_json::from_str(&s).unwrap_or_else(|e| panic!("{path}: not JSON: {e}\n{s}")))
    }

    /// Drop count for `reason` (absent: 0).
    pub fn drop_count(&self, reason: &str) -> u64 {
        self.0["drops"].get(reason).and_then(Value::as_u64).unwrap_or(0)
    }

    /// Every nonzero drop counter.
    pub fn drops(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        if let Some(o) = self.0["drops"].as_object() {
            for (k, v) in o {
                let n = v.as_u64().unwrap_or_else(|| panic!("drops.{k} is not a count: {v}"));
                if n > 0 {
                    m.insert(k.clone(), n);
                }
            }
        }
        m
    }

    /// Asserts the nonzero drop counters are exactly `want`.
    pub fn assert_drops<S: AsRef<str>>(&self, want: &[(S, u64)]) {
        let want: BTreeMap<String, u64> = want
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.as_ref().to_string(), *n))
            .collect();
        assert_eq!(self.drops(), want, "drop counters\n{}", self.pretty());
    }

    /// Like [`Stats::assert_drops`] for a driven run: probes the driver
    /// sent before the app forwarded on both vports may have been dropped
    /// for want of a tx path, at most `lost_probes` of them.
    pub fn assert_drops_probed<S: AsRef<str>>(&self, want: &[(S, u64)], lost_probes: u64) {
        let mut got = self.drops();
        let no_tx = got.remove("no-tx-path").unwrap_or(0);
        assert!(
            no_tx <= lost_probes,
            "{no_tx} no-tx-path drops, only {lost_probes} probes lost\n{}",
            self.pretty()
        );
        let want: BTreeMap<String, u64> = want
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.as_ref().to_string(), *n))
            .collect();
        assert_eq!(got, want, "drop counters\n{}", self.pretty());
    }

    pub fn engine(&self, name: &str) -> u64 {
        self.0["engine"]
            .get(name)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("engine.{name} missing\n{}", self.pretty()))
    }

    pub fn lcores(&self) -> Vec<Value> {
        self.0["lcores"].as_array().cloned().unwrap_or_default()
    }

    pub fn lcore_sum(&self, field: &str) -> u64 {
        self.lcores().iter().map(|l| l[field].as_u64().unwrap_or(0)).sum()
    }

    /// (rx, tx) of a vport's fast path.
    pub fn vport_fast(&self, name: &str) -> (u64, u64) {
        let v = self.0["vports"]
            .as_array()
            .and_then(|a| a.iter().find(|v| v["name"] == name))
            .unwrap_or_else(|| panic!("no vport {name}\n{}", self.pretty()));
        let f = &v["paths"]["fast"];
        (
            f["rx_packets"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: rx_packets\n{v}")),
            f["tx_packets"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: tx_packets\n{v}")),
        )
    }

    /// Every packet received was transmitted or dropped for a counted
    /// reason, and the per-vport counters agree with the per-lcore ones.
    pub fn assert_balanced(&self) {
        let (rx, tx) = (self.lcore_sum("rx_packets"), self.lcore_sum("tx_packets"));
        assert_eq!(rx, tx + self.total_drops(), "rx = tx + drops\n{}", self.pretty());
        let (mut vrx, mut vtx) = (0, 0);
        for v in self.0["vports"].as_array().cloned().unwrap_or_default() {
            vrx += v["paths"]["fast"]["rx_packets"].as_u64().unwrap_or(0);
            vtx += v["paths"]["fast"]["tx_packets"].as_u64().unwrap_or(0);
        }
        assert_eq!((vrx, vtx), (rx, tx), "vport vs lcore counters\n{}", self.pretty());
    }

    pub fn total_drops(&self) -> u64 {
        self.drops().values().sum()
    }

    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(&self.0).unwrap_or_default()
    }
}
