//! Typed access to a request's `args` object, with the protocol's error
//! codes: an absent required argument is `missing_argument`, a present one
//! of the wrong type or value is `invalid_argument`, and an argument the
//! command does not take is `invalid_argument` too (typos should not be
//! silently ignored by an operator tool).

use serde_json::{Map, Value};

use super::protocol::{json_type, CtlError};

/// The arguments of one command, consumed as they are read.
pub struct Args {
    cmd: &'static str,
    map: Map<String, Value>,
}

impl Args {
    pub fn new(cmd: &'static str, map: Map<String, Value>) -> Args {
        Args { cmd, map }
    }

    /// Remove an argument; `null` counts as absent.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|v| !v.is_null())
    }

    fn invalid(&self, name: &str, want: &str, got: &Value) -> CtlError {
        CtlError::invalid_argument(format!(
            "'{}': argument '{name}' must be {want}, got {}",
            self.cmd,
            describe(got)
        ))
    }

    fn missing(&self, name: &str) -> CtlError {
        CtlError::missing_argument(format!("'{}' needs argument '{name}'", self.cmd))
    }

    /// An optional non-empty string.
    pub fn opt_str(&mut self, name: &str) -> Result<Option<String>, CtlError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            Some(v) => Err(self.invalid(name, "a non-empty string", &v)),
        }
    }

    /// A required non-empty string.
    pub fn str(&mut self, name: &str) -> Result<String, CtlError> {
        self.opt_str(name)?.ok_or_else(|| self.missing(name))
    }

    /// An optional unsigned integer within `min..=max`.
    pub fn opt_uint(&mut self, name: &str, min: u64, max: u64) -> Result<Option<u64>, CtlError> {
        match self.take(name) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.invalid(name, &format!("an integer in {min}..={max}"), &v)),
            },
        }
    }

    /// A required unsigned integer within `min..=max`.
    pub fn uint(&mut self, name: &str, min: u64, max: u64) -> Result<u64, CtlError> {
        self.opt_uint(name, min, max)?.ok_or_else(|| self.missing(name))
    }

    /// An optional string that must be one of `choices`; returns its index.
    pub fn opt_choice(&mut self, name: &str, choices: &[&str]) -> Result<Option<usize>, CtlError> {
        match self.take(name) {
            None => Ok(None),
            Some(v) => match v.as_str().and_then(|s| choices.iter().position(|c| *c == s)) {
                Some(i) => Ok(Some(i)),
                None => Err(self.invalid(name, &one_of(choices), &v)),
            },
        }
    }

    /// A required string that must be one of `choices`; returns its index.
    pub fn choice(&mut self, name: &str, choices: &[&str]) -> Result<usize, CtlError> {
        self.opt_choice(name, choices)?.ok_or_else(|| self.missing(name))
    }

    /// An optional value parsed by `parse` (which returns `None` on a bad
    /// value); `want` describes the accepted values for the error message.
    pub fn opt_with<T>(
        &mut self,
        name: &str,
        want: &str,
        parse: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<Option<T>, CtlError> {
        match self.take(name) {
            None => Ok(None),
            Some(v) => match parse(&v) {
                Some(t) => Ok(Some(t)),
                None => Err(self.invalid(name, want, &v)),
            },
        }
    }

    /// Reject `name` if present: the argument exists but not for this
    /// variant of the command (`why` says which one).
    pub fn forbid(&self, name: &str, why: &str) -> Result<(), CtlError> {
        if self.has(name) {
            return Err(CtlError::invalid_argument(format!(
                "'{}': argument '{name}' does not apply to {why}",
                self.cmd
            )));
        }
        Ok(())
    }

    /// Fail on any argument not consumed so far.
    pub fn finish(self) -> Result<(), CtlError> {
        let mut left: Vec<&String> = self.map.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect();
        if left.is_empty() {
            return Ok(());
        }
        left.sort();
        let names: Vec<String> = left.iter().map(|k| format!("'{k}'")).collect();
        Err(CtlError::invalid_argument(format!(
            "'{}' does not take argument{} {}",
            self.cmd,
            if names.len() > 1 { "s" } else { "" },
            names.join(", ")
        )))
    }
}

/// `"one of \"a\", \"b\""`.
fn one_of(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("\"{c}\"")).collect();
    format!("one of {}", quoted.join(", "))
}

/// A short description of a received value for error messages; strings are
/// quoted and long ones truncated so a huge argument cannot bloat a reply.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let short: String = s.chars().take(64).collect();
            let ell = if short.len() < s.len() { "..." } else { "" };
            format!("\"{short}{ell}\"")
        }
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => json_type(other).to_string(),
    }
}
