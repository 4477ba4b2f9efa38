//! The wire protocol: one JSON object per line, in both directions.
//!
//! A request line is `{"v": 1, "id": ..., "cmd": "...", "args": {...}}`
//! (`v`, `id` and `args` optional); a reply line is
//! `{"v": 1, "id": ..., "ok": true, "result": ...}` or
//! `{"v": 1, "id": ..., "ok": false, "error": {"code": "...", "message": "..."}}`.
//! This file owns the envelope only: [`parse_request`] turns a line into an
//! [`Envelope`] (or a ready error reply), [`Command::parse`] then turns
//! `cmd` + `args` into a typed command, and [`encode_reply`] writes the
//! answer. The full description lives in `docs/control-protocol.md`.
//!
//! [`Command::parse`]: super::Command::parse

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol version this build speaks, sent as `"v"` in every reply.
/// Adding a command, an argument or a result field keeps the version; a
/// change that an existing client could misread (a renamed field, a new
/// error code) bumps it.
pub const PROTOCOL_VERSION: u64 = 1;

/// Longest request line accepted, newline excluded. Longer lines get a
/// `too_large` error and are discarded up to the next newline.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Machine-readable failure class of a reply, sent as `error.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request line is not valid JSON (or not UTF-8).
    ParseError,
    /// Valid JSON, but not a request: not an object, `cmd` missing or not
    /// a string, `args` not an object, bad `id` or unsupported `v`.
    InvalidRequest,
    /// `cmd` names no command this instance knows.
    UnknownCommand,
    /// A required argument is absent.
    MissingArgument,
    /// An argument has the wrong type or value, or is not one the command
    /// takes.
    InvalidArgument,
    /// The request line is longer than [`MAX_REQUEST_LINE`].
    TooLarge,
    /// The named vport, flow or device does not exist.
    NotFound,
    /// The request was valid but the operation failed; the message says why.
    Failed,
    /// The instance cannot serve the request now (shutting down, too many
    /// clients).
    Unavailable,
    /// The datapath did not acknowledge the change in time.
    Timeout,
}

impl ErrorCode {
    /// Every code, in documentation order.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::ParseError,
        ErrorCode::InvalidRequest,
        ErrorCode::UnknownCommand,
        ErrorCode::MissingArgument,
        ErrorCode::InvalidArgument,
        ErrorCode::TooLarge,
        ErrorCode::NotFound,
        ErrorCode::Failed,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
    ];

    /// The code as it appears on the wire, e.g. `"not_found"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "parse_error",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::MissingArgument => "missing_argument",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Failed => "failed",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
        }
    }

    /// The code for a wire string, `None` if unknown.
    pub fn from_wire(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request: what the handler (or the server) answers instead of a
/// result. The message is for a human and should name the offending thing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CtlError {
    pub code: ErrorCode,
    pub message: String,
}

impl CtlError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> CtlError {
        CtlError {
            code,
            message: message.into(),
        }
    }
    pub fn parse_error(message: impl Into<String>) -> CtlError {
        CtlError::new(ErrorCode::ParseError, message)
    }
    pub fn invalid_request(message: impl Into<String>) -> CtlError {
        CtlError::new(ErrorCode::InvalidRequest, message)
    }
    pub fn unknown_command(message: impl Into<String>) -> CtlError {
        CtlError::new(ErrorCode::UnknownCommand, message)
    }
    pub fn missing_argument(message: impl Into<String>) -> CtlError {
        CtlError::new(ErrorCode::MissingArgument, message)
    }
    pub fn invalid_argument(message: impl Into<String>) -> CtlError {
        CtlError::new(ErrorCode::InvalidArgument, message)
    }
    pub fn too_large(message: impl Into<String>) -> CtlError {
        CtlError::new(ErrorCode::TooLarge, message)
    }
    pub fn not_found(message: impl Into<String>) -> CtlError {
        CtlError::new(ErrorCode::NotFound, message)
    }
    pub fn failed(message: impl Into<String>) -> CtlError {
        CtlError::new(ErrorCode::Failed, message)
    }
    pub fn unavailable(message: impl Into<String>) -> CtlError {
        CtlError::new(ErrorCode::Unavailable, message)
    }
    pub fn timeout(message: impl Into<String>) -> CtlError {
        CtlError::new(ErrorCode::Timeout, message)
    }
}

/// A syntactically valid request, before its command is interpreted.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The caller's `id`, echoed back; `Value::Null` when absent.
    pub id: Value,
    pub cmd: String,
    /// `args`, or an empty object when absent or `null`.
    pub args: Map<String, Value>,
}

/// A request line that could not be turned into an [`Envelope`]: the error
/// to send, and the id to send it with (null when the id was unreadable).
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    pub id: Value,
    pub error: CtlError,
}

/// Parse one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<Envelope, Rejected> {
    let reject = |id: Value, error: CtlError| Rejected { id, error };
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| reject(Value::Null, CtlError::parse_error(format!("malformed JSON: {e}"))))?;
    let Value::Object(mut obj) = value else {
        return Err(reject(
            Value::Null,
            CtlError::invalid_request(format!("a request must be a JSON object, got {}", json_type(&value))),
        ));
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    if id.is_array() || id.is_object() {
        return Err(reject(
            Value::Null,
            CtlError::invalid_request("\"id\" must be a JSON scalar (string, number, bool or null)"),
        ));
    }
    match obj.remove("v") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64() == Some(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(reject(
                id,
                CtlError::invalid_request(format!(
                    "unsupported protocol version {v} (this instance speaks {PROTOCOL_VERSION})"
                )),
            ))
        }
    }
    let cmd = match obj.remove("cmd") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(reject(
                id,
                CtlError::invalid_request(format!("\"cmd\" must be a string, got {}", json_type(&other))),
            ))
        }
        None => return Err(reject(id, CtlError::invalid_request("\"cmd\" is missing"))),
    };
    let args = match obj.remove("args") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(reject(
                id,
                CtlError::invalid_request(format!("\"args\" must be an object, got {}", json_type(&other))),
            ))
        }
    };
    // Other top-level members are ignored so that a newer client's extras
    // (e.g. tracing fields) do not break an older instance.
    Ok(Envelope { id, cmd, args })
}

/// The reply line for an outcome, newline included.
pub fn encode_reply(id: &Value, outcome: &Result<Value, CtlError>) -> Vec<u8> {
    let reply = match outcome {
        Ok(result) => serde_json::json!({
            "v": PROTOCOL_VERSION, "id": id, "ok": true, "result": result,
        }),
        Err(e) => serde_json::json!({
            "v": PROTOCOL_VERSION, "id": id, "ok": false,
            "error": {"code": e.code.as_str(), "message": e.message},
        }),
    };
    // Serializing a `Value` cannot fail (all keys are strings).
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    out
}

/// `"an object"`, `"a string"`, ... for error messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_request() {
        let e = parse_request(br#"{"v":1,"id":7,"cmd":"switch","args":{"vport":"wan"}}"#).unwrap();
        assert_eq!(e.id, json!(7));
        assert_eq!(e.cmd, "switch");
        assert_eq!(e.args.get("vport"), Some(&json!("wan")));
    }

    #[test]
    fn minimal_request() {
        let e = parse_request(br#"{"cmd":"status"}"#).unwrap();
        assert_eq!(e.id, Value::Null);
        assert!(e.args.is_empty());
    }

    #[test]
    fn envelope_errors() {
        let code = |line: &[u8]| parse_request(line).unwrap_err().error.code;
        assert_eq!(code(b"{"), ErrorCode::ParseError);
        assert_eq!(code(b"\xff"), ErrorCode::ParseError);
        assert_eq!(code(b"[1]"), ErrorCode::InvalidRequest);
        assert_eq!(code(br#"{"id":1}"#), ErrorCode::InvalidRequest);
        assert_eq!(code(br#"{"cmd":3}"#), ErrorCode::InvalidRequest);
        assert_eq!(code(br#"{"cmd":"x","args":[]}"#), ErrorCode::InvalidRequest);
        assert_eq!(code(br#"{"cmd":"x","id":[1]}"#), ErrorCode::InvalidRequest);
        assert_eq!(code(br#"{"cmd":"x","v":2}"#), ErrorCode::InvalidRequest);
        let r = parse_request(br#"{"id":"a","cmd":1}"#).unwrap_err();
        assert_eq!(r.id, json!("a"));
    }

    #[test]
    fn reply_shapes() {
        let ok = encode_reply(&json!(1), &Ok(json!({"a": 1})));
        assert_eq!(ok.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&ok).unwrap();
        assert_eq!(v, json!({"v":1,"id":1,"ok":true,"result":{"a":1}}));
        let err = encode_reply(&Value::Null, &Err(CtlError::not_found("vport x")));
        let v: Value = serde_json::from_slice(&err).unwrap();
        assert_eq!(
            v,
            json!({"v":1,"id":null,"ok":false,"error":{"code":"not_found","message":"vport x"}})
        );
    }

    #[test]
    fn codes_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.as_str()));
        }
    }
}
