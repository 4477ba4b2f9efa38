//! Rendering of `stats` results, also used by `vfpctl top`.

use std::fmt::Write;

use serde_json::Value;

use super::format::{cell, duration, field, fixed, percent, si};
use super::table::Table;

fn list(v: &Value, key: &str) -> Vec<Value> {
    v.get(key).and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The `drops` object (`{reason: count}`) as a sum, for table cells.
fn drop_total(v: &Value) -> String {
    match v.as_object() {
        Some(m) => si(&Value::from(m.values().filter_map(Value::as_u64).sum::<u64>())),
        None => "-".into(),
    }
}

fn mbufs_line(v: &Value) -> String {
    let m = &v["mbufs"];
    let pct = match (m["in_use"].as_f64(), m["total"].as_f64()) {
        (Some(u), Some(t)) if t > 0.0 => format!(" ({:.1}%)", u * 100.0 / t),
        _ => String::new(),
    };
    format!(
        "mbufs {} / {} in use{pct}, rates over {}\n",
        field(m, "in_use"),
        field(m, "total"),
        duration(&v["interval_s"])
    )
}

/// Per-path rates of every vport; the active path is starred.
fn paths_table(v: &Value) -> Table {
    let mut t = Table::new(&[
        "VPORT", "PATH", "RX PPS", "TX PPS", "RX GBPS", "TX GBPS", "RX PKTS", "TX PKTS",
    ]);
    for vp in list(v, "vports") {
        let active = vp["active"].as_str().unwrap_or_default().to_string();
        for path in ["fast", "soft"] {
            let p = &vp["paths"][path];
            if !p.is_object() {
                continue;
            }
            let star = if active == path { "*" } else { "" };
            t.row(vec![
                field(&vp, "name"),
                format!("{path}{star}"),
                si(&p["rx_pps"]),
                si(&p["tx_pps"]),
                fixed(&p["rx_gbps"], 2),
                fixed(&p["tx_gbps"], 2),
                cell(&p["rx_packets"]),
                cell(&p["tx_packets"]),
            ]);
        }
    }
    t
}

/// What the devices lost on their side, for the paths that lost any.
fn device_drops_table(v: &Value) -> Table {
    const COUNTERS: [&str; 4] = ["rx_missed", "rx_nombuf", "rx_errors", "tx_errors"];
    let mut t = Table::new(&["VPORT", "PATH", "RX MISSED", "RX NOMBUF", "RX ERRORS", "TX ERRORS"]);
    for vp in list(v, "vports") {
        for path in ["fast", "soft"] {
            let p = &vp["paths"][path];
            if COUNTERS.iter().all(|c| p[c].as_u64().unwrap_or(0) == 0) {
                continue;
            }
            let mut row = vec![field(&vp, "name"), path.to_string()];
            row.extend(COUNTERS.iter().map(|c| cell(&p[c])));
            t.row(row);
        }
    }
    t
}

fn lcores_table(v: &Value) -> Table {
    let mut t = Table::new(&[
        "LCORE", "WORKER", "RX PPS", "TX PPS", "RX GBPS", "TX GBPS", "CYC/PKT", "IDLE", "FLOWS", "DROPS",
    ]);
    for l in list(v, "lcores") {
        t.row(vec![
            field(&l, "lcore"),
            field(&l, "worker"),
            si(&l["rx_pps"]),
            si(&l["tx_pps"]),
            fixed(&l["rx_gbps"], 2),
            fixed(&l["tx_gbps"], 2),
            fixed(&l["cycles_per_packet"], 0),
            percent(&l["idle_ratio"]),
            cell(&l["flows"]),
            drop_total(&l["drops"]),
        ]);
    }
    t
}

pub fn stats(v: &Value) -> String {
    let mut out = mbufs_line(v);
    let paths = paths_table(v);
    if !paths.is_empty() {
        let _ = write!(out, "\n{paths}");
    }
    let lcores = lcores_table(v);
    if !lcores.is_empty() {
        let _ = write!(out, "\n{lcores}");
    }
    if let Some(drops) = v["drops"].as_object().filter(|d| !d.is_empty()) {
        let mut t = Table::new(&["DROP REASON", "COUNT"]);
        let mut reasons: Vec<_> = drops.iter().collect();
        reasons.sort_by(|a, b| a.0.cmp(b.0));
        for (reason, count) in reasons {
            t.row(vec![reason.clone(), cell(count)]);
        }
        let _ = write!(out, "\n{t}");
    }
    let device = device_drops_table(v);
    if !device.is_empty() {
        let _ = write!(
            out,
            "\ndevice drops (frames the devices lost before or after the app)\n{device}"
        );
    }
    let switches = list(v, "switches");
    if !switches.is_empty() {
        let mut t = Table::new(&["VPORT", "FROM", "TO", "CAUSE", "AT UPTIME", "TOOK US"]);
        for s in switches {
            t.row(vec![
                field(&s, "vport"),
                field(&s, "from"),
                field(&s, "to"),
                field(&s, "cause"),
                duration(&s["at_s"]),
                field(&s, "took_us"),
            ]);
        }
        let _ = write!(out, "\nrecent path switches\n{t}");
    }
    out
}

/// The compact `top` view: rates only, per lcore and per path.
pub fn top(v: &Value) -> String {
    let mut out = mbufs_line(v);
    let lcores = lcores_table(v);
    if !lcores.is_empty() {
        let _ = write!(out, "\n{lcores}");
    }
    let paths = paths_table(v);
    if !paths.is_empty() {
        let _ = write!(out, "\n{paths}");
    }
    out
}
