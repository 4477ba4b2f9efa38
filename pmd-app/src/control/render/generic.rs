//! Rendering of `flows` and `policy` results, whose objects come from the
//! engine and are shown generically, plus the fallback for any result
//! `vfpctl` has no dedicated layout for.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::format::{cell, field};
use super::table::Table;

/// The columns of the flows list, and the fields `flows show` puts first
/// (it shows every other field the engine reports after them).
const FLOW_COLUMNS: [&str; 11] = [
    "id", "vport", "dir", "proto", "src", "dst", "state", "packets", "bytes", "idle_s", "nat",
];

/// A table of objects with `first` columns leading and every other key
/// seen (in first-seen order) after them.
pub fn object_table(items: &[Value], first: &[&str]) -> Table {
    let mut keys: Vec<String> = first.iter().map(|s| s.to_string()).collect();
    for item in items {
        if let Some(obj) = item.as_object() {
            for k in obj.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    let headers: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
    let mut t = Table::new(&headers);
    for item in items {
        t.row(keys.iter().map(|k| field(item, k)).collect());
    }
    t
}

pub fn flows(v: &Value) -> String {
    if let Some(flows) = v["flows"].as_array() {
        if flows.is_empty() {
            return "no flows\n".into();
        }
        // One line per flow: the main columns only (`flows show ID` or
        // `--json` have the transpositions and the rest).
        let headers: Vec<String> = FLOW_COLUMNS.iter().map(|k| k.to_ascii_uppercase()).collect();
        let mut t = Table::new(&headers);
        for f in flows {
            t.row(FLOW_COLUMNS.iter().map(|k| field(f, k)).collect());
        }
        let mut out = t.to_string();
        if let Some(count) = v["count"].as_u64().filter(|c| *c > flows.len() as u64) {
            let _ = writeln!(out, "({} of {count} flows shown; raise --limit for more)", flows.len());
        }
        return out;
    }
    if let Some(flow) = v["flow"].as_object() {
        // The well-known fields first, then whatever else the engine adds.
        let keys = FLOW_COLUMNS
            .iter()
            .map(|k| k.to_string())
            .chain(flow.keys().filter(|k| !FLOW_COLUMNS.contains(&k.as_str())).cloned());
        let rows: Vec<(String, &Value)> = keys.filter_map(|k| flow.get(&k).map(|v| (k, v))).collect();
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:width$}  {}", cell(v));
        }
        return out;
    }
    if v.get("flushed").is_some() {
        return format!("flushed {} flows\n", field(v, "flushed"));
    }
    if v.get("count").is_some() {
        return format!("{} flows\n", field(v, "count"));
    }
    key_values(v)
}

pub fn policy(v: &Value) -> String {
    if v.get("valid").is_some() {
        return format!("valid: {} rules\n", field(v, "rules"));
    }
    if let Some(layers) = v["layers"].as_array() {
        let mut out = format!(
            "policy generation {} from {}\n",
            field(v, "generation"),
            field(v, "origin")
        );
        if layers.iter().any(|l| l["groups"].is_array()) {
            let _ = write!(out, "\n{}", policy_rules(layers));
        } else if !layers.is_empty() {
            let _ = write!(out, "\n{}", object_table(layers, &["name"]));
        }
        return out;
    }
    if v.get("generation").is_some() && v.get("rules").is_some() {
        return format!(
            "loaded policy generation {} ({} rules)\n",
            field(v, "generation"),
            field(v, "rules")
        );
    }
    key_values(v)
}

/// Layers as the engine reports them (layer -> groups -> rules): one
/// line per layer with its default and rule count, then one row per rule.
fn policy_rules(layers: &[Value]) -> String {
    let empty = Vec::new();
    let groups = |l: &Value| l["groups"].as_array().unwrap_or(&empty).clone();
    let rules = |g: &Value| g["rules"].as_array().unwrap_or(&empty).clone();
    let mut summary = Table::new(&["LAYER", "DEFAULT", "GROUPS", "RULES"]);
    let mut table = Table::new(&[
        "LAYER",
        "GROUP",
        "ID",
        "PRIO",
        "DIR",
        "ACTION",
        "CONDITIONS",
        "HITS",
        "DESCRIPTION",
    ]);
    for l in layers {
        let gs = groups(l);
        let n: usize = gs.iter().map(|g| rules(g).len()).sum();
        summary.row(vec![
            field(l, "name"),
            field(l, "default"),
            gs.len().to_string(),
            n.to_string(),
        ]);
        for g in &gs {
            for r in rules(g) {
                table.row(vec![
                    field(l, "name"),
                    field(g, "name"),
                    field(&r, "id"),
                    field(&r, "priority"),
                    field(&r, "direction"),
                    field(&r, "action"),
                    field(&r, "conditions"),
                    field(&r, "hits"),
                    field(&r, "description"),
                ]);
            }
        }
    }
    if table.is_empty() {
        summary.to_string()
    } else {
        format!("{summary}\n{table}")
    }
}

/// Any value as indented `key: value` lines; arrays of objects as tables.
pub fn key_values(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) => write_object(&mut out, m, 0),
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            out = object_table(items, &[]).to_string();
        }
        other => {
            let _ = writeln!(out, "{}", cell(other));
        }
    }
    out
}

fn write_object(out: &mut String, m: &Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    let width = m.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    for (k, v) in m {
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                let _ = writeln!(out, "{pad}{k}:");
                write_object(out, inner, indent + 2);
            }
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                let _ = writeln!(out, "{pad}{k}:");
                for line in object_table(items, &[]).to_string().lines() {
                    let _ = writeln!(out, "{pad}  {line}");
                }
            }
            _ => {
                let _ = writeln!(out, "{pad}{k:width$}  {}", cell(v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flows_list_is_one_short_line_per_flow_and_show_has_everything() {
        let f = json!({"id": 4294967297u64, "vport": "vm", "dir": "out", "proto": "udp",
            "src": "10.1.0.2:5000", "dst": "198.51.100.7:53", "state": "active", "packets": 3,
            "bytes": 180, "idle_s": 0.5, "nat": "203.0.113.10:1024",
            "action_fwd": "src 203.0.113.10:1024; encap vni 5001", "forward": "udp 10.1.0.2:5000 > ..."});
        let list = flows(&json!({"count": 2, "flows": [f.clone()]}));
        let lines: Vec<&str> = list.lines().collect();
        assert!(
            lines[0].trim_start().starts_with("ID") && lines[0].contains("NAT"),
            "{list}"
        );
        assert!(
            lines[1].contains("203.0.113.10:1024") && lines[1].contains("198.51.100.7:53"),
            "{list}"
        );
        assert!(
            !list.contains("encap vni"),
            "the list leaves the transpositions to `show`: {list}"
        );
        assert!(list.contains("(1 of 2 flows shown"), "{list}");
        let show = flows(&json!({"flow": f}));
        assert!(show.contains("encap vni 5001") && show.contains("forward"), "{show}");
    }

    #[test]
    fn policy_with_groups_lists_its_rules() {
        let v = json!({"generation": 2, "origin": "/p.toml", "rules": 2, "layers": [
            {"name": "acl", "default": "deny", "groups": [
                {"name": "out", "rules": [
                    {"id": 7, "priority": 100, "direction": "out", "action": "allow",
                     "conditions": "src=10.0.0.0/8", "hits": 12, "description": null},
                    {"id": 8, "priority": 200, "direction": "in", "action": "deny",
                     "conditions": "proto=tcp", "hits": 0, "description": "no tcp in"}]}]},
            {"name": "empty", "default": "allow", "groups": []}]});
        let text = policy(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "policy generation 2 from /p.toml");
        assert!(lines[2].starts_with("LAYER") && lines[2].ends_with("RULES"), "{text}");
        let acl: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(acl, ["acl", "deny", "1", "2"]);
        let empty: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(empty, ["empty", "allow", "0", "0"]);
        assert!(lines[6].contains("CONDITIONS") && lines[6].contains("HITS"), "{text}");
        let rule: Vec<&str> = lines[7].split_whitespace().collect();
        assert_eq!(
            rule,
            ["acl", "out", "7", "100", "out", "allow", "src=10.0.0.0/8", "12", "-"]
        );
        assert!(lines[8].ends_with("no tcp in"), "{text}");
        assert_eq!(lines.len(), 9, "{text}");
    }

    #[test]
    fn policy_without_groups_keeps_the_layer_table() {
        let v = json!({"generation": 3, "origin": "/p.toml",
                       "layers": [{"name": "acl", "rules": 12, "default": "deny"}]});
        let text = policy(&v);
        assert!(
            text.contains("NAME") && text.contains("RULES") && text.contains("acl"),
            "{text}"
        );
        assert!(!text.contains("CONDITIONS"), "{text}");
    }
}
