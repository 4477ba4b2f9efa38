//! Formatting of single values: counts, rates, durations, JSON scalars.
//!
//! Every helper accepts any JSON value and falls back to `-` for absent or
//! mistyped fields, so a newer instance with extra or renamed fields never
//! makes `vfpctl` fail, only print less.

use serde_json::Value;

/// A JSON value as a table cell: `-` for null/absent, strings bare, lists
/// comma-joined, objects as compact JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Number(n) if n.is_f64() => trimmed(n.as_f64().unwrap_or(0.0)),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(_) => v.to_string(),
    }
}

/// A fraction in fixed notation, to the millisecond of a time in
/// seconds: `0.5`, `212.25`, `0` for an idle time of 2.85e-6 s (never
/// exponent notation in a table).
fn trimmed(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match s {
        "" | "-0" => "0".into(),
        s => s.into(),
    }
}

/// `v[key]` as a cell.
pub fn field(v: &Value, key: &str) -> String {
    cell(v.get(key).unwrap_or(&Value::Null))
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// A rate or a large count with an SI suffix: `950`, `12.3K`, `1.25M`.
pub fn si(v: &Value) -> String {
    let Some(n) = num(v) else {
        return "-".into();
    };
    let a = n.abs();
    if a < 1e3 {
        format!("{n:.0}")
    } else if a < 1e6 {
        format!("{:.1}K", n / 1e3)
    } else if a < 1e9 {
        format!("{:.2}M", n / 1e6)
    } else {
        format!("{:.2}G", n / 1e9)
    }
}

/// A fixed-precision number: `0.64`.
pub fn fixed(v: &Value, decimals: usize) -> String {
    match num(v) {
        Some(n) => format!("{n:.decimals$}"),
        None => "-".into(),
    }
}

/// A ratio 0..1 as a percentage: `41%`.
pub fn percent(v: &Value) -> String {
    match num(v) {
        Some(n) => format!("{:.0}%", n * 100.0),
        None => "-".into(),
    }
}

/// Seconds as `3h02m05s`, `2m05s`, `5.0s`.
pub fn duration(v: &Value) -> String {
    let Some(s) = num(v) else {
        return "-".into();
    };
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let t = s as u64;
    let (d, h, m, sec) = (t / 86400, t / 3600 % 24, t / 60 % 60, t % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m")
    } else if h > 0 {
        format!("{h}h{m:02}m{sec:02}s")
    } else {
        format!("{m}m{sec:02}s")
    }
}

/// Link speed in Mbit/s as `10G`, `100M`, or `-` when unknown (0).
pub fn speed(v: &Value) -> String {
    match v.as_u64() {
        Some(0) | None => "-".into(),
        Some(m) if m >= 1000 && m % 1000 == 0 => format!("{}G", m / 1000),
        Some(m) => format!("{m}M"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!([1, 2])), "1,2");
        assert_eq!(cell(&json!(2.85e-6)), "0");
        assert_eq!(cell(&json!(0.5)), "0.5");
        assert_eq!(cell(&json!(212.25)), "212.25");
        assert_eq!(cell(&json!(1.5e7)), "15000000");
        assert_eq!(cell(&json!(-0.0001)), "0");
        assert_eq!(cell(&json!(7)), "7");
        assert_eq!(si(&json!(950)), "950");
        assert_eq!(si(&json!(12345)), "12.3K");
        assert_eq!(si(&json!(1250000.0)), "1.25M");
        assert_eq!(si(&json!("x")), "-");
        assert_eq!(percent(&json!(0.41)), "41%");
        assert_eq!(duration(&json!(3725)), "1h02m05s");
        assert_eq!(duration(&json!(125)), "2m05s");
        assert_eq!(duration(&json!(4.3)), "4.3s");
        assert_eq!(speed(&json!(10000)), "10G");
        assert_eq!(speed(&json!(0)), "-");
    }
}
