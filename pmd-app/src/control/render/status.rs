//! Rendering of `status`, `ports` and `switch` results.

use std::fmt::Write;

use serde_json::Value;

use super::format::{cell, duration, field, speed};
use super::table::Table;

fn list(v: &Value, key: &str) -> Vec<Value> {
    v.get(key).and_then(Value::as_array).cloned().unwrap_or_default()
}

/// `net_tap0 (port 0, up)` for a vport's path object, `-` for null.
fn path_cell(p: &Value) -> String {
    if !p.is_object() {
        return "-".into();
    }
    let retry = match p["retry_in_ms"].as_u64() {
        Some(ms) => format!(", retry in {:.1} s", ms as f64 / 1000.0),
        None => String::new(),
    };
    format!(
        "{} (port {}, {}{retry})",
        field(p, "device"),
        field(p, "port_id"),
        field(p, "state")
    )
}

pub fn status(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pmd-app {} (protocol {}), up {}",
        field(v, "version"),
        field(v, "protocol"),
        duration(&v["uptime_s"])
    );
    let _ = writeln!(
        out,
        "mode {}, {} workers on lcores {}",
        field(v, "mode"),
        field(v, "workers"),
        field(v, "lcores")
    );
    let _ = writeln!(
        out,
        "policy generation {} from {}",
        field(v, "policy_generation"),
        match &v["policy"] {
            Value::Null => "(none loaded)".to_string(),
            p => cell(p),
        }
    );
    let vports = list(v, "vports");
    if !vports.is_empty() {
        let mut t = Table::new(&["VPORT", "ROLE", "ACTIVE", "MODE", "FAST", "SOFT"]);
        for vp in &vports {
            t.row(vec![
                field(vp, "name"),
                field(vp, "role"),
                field(vp, "active"),
                field(vp, "mode"),
                path_cell(&vp["fast"]),
                path_cell(&vp["soft"]),
            ]);
        }
        let _ = write!(out, "\n{t}");
    }
    out
}

pub fn ports(v: &Value) -> String {
    let mut t = Table::new(&[
        "PORT", "DEVICE", "VPORT", "PATH", "STATE", "LINK", "SPEED", "RXQ", "TXQ", "MAC", "MTU",
    ]);
    for p in list(v, "ports") {
        let link = match p["link_up"].as_bool() {
            Some(true) => "up",
            Some(false) => "down",
            None => "-",
        };
        t.row(vec![
            field(&p, "port_id"),
            field(&p, "device"),
            field(&p, "vport"),
            field(&p, "path"),
            field(&p, "state"),
            link.into(),
            speed(&p["speed_mbps"]),
            field(&p, "rx_queues"),
            field(&p, "tx_queues"),
            field(&p, "mac"),
            field(&p, "mtu"),
        ]);
    }
    if t.is_empty() {
        return "no ports\n".into();
    }
    t.to_string()
}

pub fn switch(v: &Value) -> String {
    format!(
        "{}: active path {} ({}), took {} us\n",
        field(v, "vport"),
        field(v, "active"),
        field(v, "mode"),
        field(v, "took_us")
    )
}
