//! TOML text -> validated, compiled [`Policy`]; all or nothing.
//!
//! serde (`raw.rs`) checks the shape and rejects unknown keys; this module
//! checks meaning in file order and stops at the first problem, reporting
//! it with file, line, column and field path. Rule bodies are compiled by
//! `compile.rs`; here live the policy-, layer- and group-level checks.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::flow::timeouts::Timeouts;
use crate::topology::VportInfo;

use super::compile::compile_rule;
use super::error::{PolicyError, Source};
use super::group::Group;
use super::layer::{Layer, LayerDefault, RuleText};
use super::raw::{RawPolicy, RawTimeouts, S};
use super::Policy;

/// Largest file accepted: policies are hand-written or generated, and a
/// bound keeps a mistaken path (a disk image, /dev/zero) from eating memory.
pub const MAX_POLICY_BYTES: u64 = 64 << 20;

/// Reads and loads the policy file at `path`, validating vport names
/// against `vports`.
pub fn load_file(path: &Path, vports: &[VportInfo]) -> Result<Policy, PolicyError> {
    let origin = path.display().to_string();
    let file_err = |m: String| PolicyError {
        origin: origin.clone(),
        line: 1,
        col: 1,
        field: "(file)".to_string(),
        message: m,
    };
    // Only a regular file: a FIFO would block the reader (the control
    // thread) until a writer appears, and a device reports no length, so
    // the size check below would not bound reading /dev/zero. The path is
    // looked at before it is opened (opening some devices has effects of
    // its own), then opened without blocking and the opened file looked
    // at again: a FIFO swapped in between the two cannot block the open,
    // and what is read is what was checked.
    check_regular(&std::fs::metadata(path).map_err(|e| file_err(format!("cannot read: {e}")))?).map_err(file_err)?;
    let file = open_regular(path).map_err(file_err)?;
    // The file may grow between the check and the read: read at most one
    // byte past the bound, and refuse what reached it.
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| file_err(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(file_err(format!("file is more than {MAX_POLICY_BYTES} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let ok = std::str::from_utf8(&e.as_bytes()[..at]).unwrap_or("");
        let (line, col) = super::error::line_col(ok, at);
        PolicyError {
            line,
            col,
            ..file_err("file is not valid UTF-8".to_string())
        }
    })?;
    load_str(&text, &origin, vports)
}

/// Opens `path` without blocking and checks that what was opened is a
/// regular file within the size bound.
fn open_regular(path: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    check_regular(&file.metadata().map_err(|e| format!("cannot read: {e}"))?)?;
    Ok(file)
}

/// A policy file must be a regular file of at most [`MAX_POLICY_BYTES`].
fn check_regular(meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    if meta.len() > MAX_POLICY_BYTES {
        return Err(format!("file is {} bytes, more than {MAX_POLICY_BYTES}", meta.len()));
    }
    Ok(())
}

/// Loads a policy from `text`; `origin` names it in errors and `policy show`.
pub fn load_str(text: &str, origin: &str, vports: &[VportInfo]) -> Result<Policy, PolicyError> {
    let src = Source { origin, text };
    let raw: RawPolicy = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    let timeouts = match &raw.timeouts {
        Some(t) => compile_timeouts(&src, t)?,
        None => Timeouts::default(),
    };
    if raw.layers.is_empty() {
        return Err(src.err(0..0, "layers", "a policy needs at least one layer ([[layers]])"));
    }
    if raw.layers.len() > usize::from(u16::MAX) {
        return Err(src.err(0..0, "layers", "too many layers (at most 65535)"));
    }
    let mut names: HashSet<&str> = HashSet::new();
    let mut layers = Vec::with_capacity(raw.layers.len());
    for (li, rl) in raw.layers.iter().enumerate() {
        let path = format!("layers[{li}]");
        let rl = rl.get_ref();
        let name = rl.name.get_ref().as_str();
        if name.is_empty() {
            return Err(src.err(rl.name.span(), &format!("{path}.name"), "layer name is empty"));
        }
        if !names.insert(name) {
            return Err(src.err(
                rl.name.span(),
                &format!("{path}.name"),
                format!("duplicate layer name {name:?}"),
            ));
        }
        let default = match rl.default.get_ref().as_str() {
            "allow" => LayerDefault::Allow,
            "deny" => LayerDefault::Deny,
            other => {
                return Err(src.err(
                    rl.default.span(),
                    &format!("{path}.default"),
                    format!("unknown default {other:?} (allow or deny)"),
                ))
            }
        };
        if rl.groups.len() > usize::from(u16::MAX) {
            return Err(src.err(rl.name.span(), &format!("{path}.groups"), "too many groups"));
        }
        let mut group_names = Vec::with_capacity(rl.groups.len());
        let mut ids: HashMap<u32, String> = HashMap::new();
        let mut compiled = Vec::new();
        for (gi, rg) in rl.groups.iter().enumerate() {
            let rg = rg.get_ref();
            group_names.push(
                rg.name
                    .as_ref()
                    .map_or_else(|| format!("group{gi}"), |n| n.get_ref().clone()),
            );
            for (ri, rr) in rg.rules.iter().enumerate() {
                let rpath = format!("{path}.groups[{gi}].rules[{ri}]");
                let id = *rr.get_ref().id.get_ref();
                if let Some(first) = ids.get(&id) {
                    return Err(src.err(
                        rr.get_ref().id.span(),
                        &format!("{rpath}.id"),
                        format!("duplicate rule id {id} in layer {name:?} (first used by {first})"),
                    ));
                }
                ids.insert(id, rpath.clone());
                let rule = compile_rule(&src, &rpath, rr.get_ref(), gi as u16, vports)?;
                let text = RuleText {
                    description: rr.get_ref().description.clone(),
                    conditions: rule.matcher.describe(vports),
                    action: rule.describe_action(vports),
                };
                compiled.push((rule, text));
            }
        }
        // Evaluation order: groups in file order, then priority, then id.
        compiled.sort_by_key(|(r, _)| (r.group, r.priority, r.id));
        let groups = group_names
            .into_iter()
            .enumerate()
            .map(|(gi, name)| {
                let lo = compiled.partition_point(|(r, _)| usize::from(r.group) < gi);
                let hi = compiled.partition_point(|(r, _)| usize::from(r.group) <= gi);
                Group { name, rules: lo..hi }
            })
            .collect();
        let (rules, texts) = compiled.into_iter().unzip();
        layers.push(Layer::new(name.to_string(), default, groups, rules, texts));
    }
    Ok(Policy {
        generation: 0,
        timeouts,
        layers,
        vports: vports.to_vec(),
        origin: origin.to_string(),
    })
}

fn compile_timeouts(src: &Source, t: &S<RawTimeouts>) -> Result<Timeouts, PolicyError> {
    const NS: u64 = 1_000_000_000;
    let mut out = Timeouts::default();
    let r = t.get_ref();
    let fields: [(&str, &Option<S<u64>>, &mut u64); 7] = [
        ("tcp_syn", &r.tcp_syn, &mut out.tcp_syn),
        ("tcp_established", &r.tcp_established, &mut out.tcp_established),
        ("tcp_fin", &r.tcp_fin, &mut out.tcp_fin),
        ("tcp_closed", &r.tcp_closed, &mut out.tcp_closed),
        ("udp", &r.udp, &mut out.udp),
        ("icmp", &r.icmp, &mut out.icmp),
        ("other", &r.other, &mut out.other),
    ];
    for (name, value, slot) in fields {
        let Some(v) = value else { continue };
        let secs = *v.get_ref();
        // A year bounds typos like an extra zero without limiting real use.
        if secs == 0 || secs > 365 * 24 * 3600 {
            return Err(src.err(
                v.span(),
                &format!("timeouts.{name}"),
                format!("timeout {secs} s out of range (1..=31536000 seconds)"),
            ));
        }
        *slot = secs * NS;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check on the opened file, on its own: a FIFO that was not there
    /// when the path was first looked at neither blocks the open (no writer
    /// ever appears here) nor gets read.
    #[test]
    fn a_fifo_met_at_open_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("vfp-loader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("policy.toml");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        // A blocked open fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(open_regular(&path)).unwrap());
        let r = rx.recv_timeout(std::time::Duration::from_secs(10));
        std::fs::remove_dir_all(&dir).unwrap();
        let r = r.expect("opening a FIFO blocked");
        assert_eq!(r.err().as_deref(), Some("not a regular file"));
    }

    #[test]
    fn a_regular_file_opens() {
        let path = std::env::temp_dir().join(format!("vfp-loader-ok-{}.toml", std::process::id()));
        std::fs::write(&path, "x").unwrap();
        let r = open_regular(&path);
        std::fs::remove_file(&path).unwrap();
        let mut text = String::new();
        r.unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "x");
    }
}
