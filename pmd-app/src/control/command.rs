//! The typed commands of the control protocol.
//!
//! [`Command::parse`] validates a request's `cmd` and `args` once, here, so
//! the application's [`Handler`](super::Handler) receives a [`Command`] and
//! never looks at JSON. Each variant's doc names its wire arguments; the
//! results are built by the handler and documented in
//! `docs/control-protocol.md`.

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::args::Args;
use super::protocol::CtlError;

/// Every command name, in documentation order.
pub const COMMAND_NAMES: [&str; 9] = [
    "status",
    "ports",
    "switch",
    "stats",
    "flows",
    "policy",
    "log-level",
    "shutdown",
    "debug",
];

/// Default and maximum of `flows` `limit`.
pub const FLOWS_DEFAULT_LIMIT: u32 = 100;
pub const FLOWS_MAX_LIMIT: u32 = 100_000;

/// A validated control request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `status`: instance, worker and vport overview.
    Status,
    /// `ports`: the DPDK ports behind the vports' paths.
    Ports,
    /// `switch {vport, path}`: pin a vport to a path, or back to automatic
    /// failover.
    Switch { vport: String, path: PathChoice },
    /// `stats`: rates, counters, drops and recent path switches.
    Stats,
    /// `flows {op, id, limit, src, dst, port, proto, vport}`.
    Flows(FlowsQuery),
    /// `policy {op, file}`.
    Policy(PolicyOp),
    /// `log-level {level?}`: set the level, or read it when `None`.
    LogLevel { level: Option<log::Level> },
    /// `shutdown`: stop the instance cleanly.
    Shutdown,
    /// `debug {op, device, devargs?}`: test hook for hot (un)plug of a vdev.
    Debug(DebugOp),
}

/// The `path` argument of `switch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathChoice {
    /// Pin the vport to its fast (hardware) path.
    Fast,
    /// Pin the vport to its soft (software) path.
    Soft,
    /// Let failover choose again.
    Auto,
}

impl PathChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            PathChoice::Fast => "fast",
            PathChoice::Soft => "soft",
            PathChoice::Auto => "auto",
        }
    }
}

/// A `flows` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowsQuery {
    pub op: FlowsOp,
    /// Which flows `count`, `list` and `flush` apply to (empty for `show`).
    pub filter: FlowFilter,
    /// Most flows `list` returns: 1..=[`FLOWS_MAX_LIMIT`], default
    /// [`FLOWS_DEFAULT_LIMIT`].
    pub limit: u32,
}

/// What `flows` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowsOp {
    Count,
    List,
    Show { id: u64 },
    Flush,
}

/// Flow selection; every `Some` field must match (an empty filter matches
/// every flow). `port` matches either the source or the destination port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowFilter {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub port: Option<u16>,
    /// IP protocol number (`"tcp"` is 6, `"udp"` 17, `"icmp"` 1,
    /// `"icmpv6"` 58).
    pub proto: Option<u8>,
    pub vport: Option<String>,
}

impl FlowFilter {
    pub fn is_empty(&self) -> bool {
        *self == FlowFilter::default()
    }
}

/// What `policy` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyOp {
    /// Describe the running policy.
    Show,
    /// Load a policy file and publish it to the workers.
    Load { file: PathBuf },
    /// Check a policy file without loading it.
    Validate { file: PathBuf },
}

/// What `debug` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DebugOp {
    /// Hot-unplug a vdev (e.g. `net_tap0`), as if the device disappeared.
    Unplug { device: String },
    /// Hot-plug a vdev back, with optional devargs (`iface=...`).
    Plug { device: String, devargs: Option<String> },
}

impl Command {
    /// Validate a command name and its arguments.
    pub fn parse(cmd: &str, args: Map<String, Value>) -> Result<Command, CtlError> {
        let name = COMMAND_NAMES.iter().copied().find(|n| *n == cmd).ok_or_else(|| {
            CtlError::unknown_command(format!(
                "unknown command \"{}\" (known: {})",
                cmd.chars().take(64).collect::<String>(),
                COMMAND_NAMES.join(", ")
            ))
        })?;
        let mut a = Args::new(name, args);
        let command = match name {
            "status" => Command::Status,
            "ports" => Command::Ports,
            "stats" => Command::Stats,
            "shutdown" => Command::Shutdown,
            "switch" => {
                let vport = a.str("vport")?;
                let path = match a.choice("path", &["fast", "soft", "auto"])? {
                    0 => PathChoice::Fast,
                    1 => PathChoice::Soft,
                    _ => PathChoice::Auto,
                };
                Command::Switch { vport, path }
            }
            "flows" => Command::Flows(parse_flows(&mut a)?),
            "policy" => {
                let op = a.opt_choice("op", &["show", "load", "validate"])?;
                match op.unwrap_or(0) {
                    0 => {
                        a.forbid("file", "policy show")?;
                        Command::Policy(PolicyOp::Show)
                    }
                    1 => Command::Policy(PolicyOp::Load {
                        file: a.str("file")?.into(),
                    }),
                    _ => Command::Policy(PolicyOp::Validate {
                        file: a.str("file")?.into(),
                    }),
                }
            }
            "log-level" => {
                const LEVELS: [log::Level; 5] = [
                    log::Level::Error,
                    log::Level::Warn,
                    log::Level::Info,
                    log::Level::Debug,
                    log::Level::Trace,
                ];
                let level = a.opt_choice("level", &["error", "warn", "info", "debug", "trace"])?;
                Command::LogLevel {
                    level: level.map(|i| LEVELS[i]),
                }
            }
            "debug" => {
                let op = a.choice("op", &["unplug", "plug"])?;
                let device = a.str("device")?;
                if op == 0 {
                    a.forbid("devargs", "debug unplug")?;
                    Command::Debug(DebugOp::Unplug { device })
                } else {
                    let devargs = a.opt_str("devargs")?;
                    Command::Debug(DebugOp::Plug { device, devargs })
                }
            }
            // COMMAND_NAMES and this match list the same names.
            _ => return Err(CtlError::unknown_command(format!("unknown command \"{name}\""))),
        };
        a.finish()?;
        Ok(command)
    }

    /// The wire name of the command.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Status => "status",
            Command::Ports => "ports",
            Command::Switch { .. } => "switch",
            Command::Stats => "stats",
            Command::Flows(_) => "flows",
            Command::Policy(_) => "policy",
            Command::LogLevel { .. } => "log-level",
            Command::Shutdown => "shutdown",
            Command::Debug(_) => "debug",
        }
    }
}

fn parse_flows(a: &mut Args) -> Result<FlowsQuery, CtlError> {
    let op = a.opt_choice("op", &["count", "list", "show", "flush"])?;
    let op = match op.unwrap_or(1) {
        0 => FlowsOp::Count,
        1 => FlowsOp::List,
        2 => FlowsOp::Show {
            id: a.uint("id", 0, u64::MAX)?,
        },
        _ => FlowsOp::Flush,
    };
    if let FlowsOp::Show { .. } = op {
        for name in ["limit", "src", "dst", "port", "proto", "vport"] {
            a.forbid(name, "flows show")?;
        }
    } else {
        a.forbid("id", "flows count/list/flush (use op \"show\")")?;
    }
    if op != FlowsOp::List {
        a.forbid("limit", "flows count/show/flush")?;
    }
    let limit = a
        .opt_uint("limit", 1, u64::from(FLOWS_MAX_LIMIT))?
        .map_or(FLOWS_DEFAULT_LIMIT, |n| n as u32);
    let ip = |v: &Value| v.as_str().and_then(|s| s.parse::<IpAddr>().ok());
    let filter = FlowFilter {
        src: a.opt_with("src", "an IPv4 or IPv6 address", ip)?,
        dst: a.opt_with("dst", "an IPv4 or IPv6 address", ip)?,
        port: a.opt_uint("port", 0, 65535)?.map(|p| p as u16),
        proto: a.opt_with(
            "proto",
            "\"tcp\", \"udp\", \"icmp\", \"icmpv6\" or a protocol number 0..=255",
            parse_proto,
        )?,
        vport: a.opt_str("vport")?,
    };
    Ok(FlowsQuery { op, filter, limit })
}

/// `"tcp"`, `"udp"`, `"icmp"`, `"icmpv6"`, a number, or a decimal string.
pub fn parse_proto(v: &Value) -> Option<u8> {
    if let Some(n) = v.as_u64() {
        return u8::try_from(n).ok();
    }
    match v.as_str()?.to_ascii_lowercase().as_str() {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmpv6" | "icmp6" => Some(58),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::ErrorCode;
    use serde_json::json;

    fn parse(cmd: &str, args: Value) -> Result<Command, CtlError> {
        let Value::Object(m) = args else { panic!() };
        Command::parse(cmd, m)
    }

    fn code(cmd: &str, args: Value) -> ErrorCode {
        parse(cmd, args).unwrap_err().code
    }

    #[test]
    fn simple_commands() {
        assert_eq!(parse("status", json!({})).unwrap(), Command::Status);
        assert_eq!(parse("shutdown", json!({"x": null})).unwrap(), Command::Shutdown);
        assert_eq!(code("status", json!({"x": 1})), ErrorCode::InvalidArgument);
        assert_eq!(code("stat", json!({})), ErrorCode::UnknownCommand);
        for n in COMMAND_NAMES {
            assert_ne!(code(n, json!({"zz": 1})), ErrorCode::UnknownCommand);
        }
    }

    #[test]
    fn switch() {
        assert_eq!(
            parse("switch", json!({"vport": "wan", "path": "soft"})).unwrap(),
            Command::Switch {
                vport: "wan".into(),
                path: PathChoice::Soft
            }
        );
        assert_eq!(code("switch", json!({"path": "soft"})), ErrorCode::MissingArgument);
        assert_eq!(code("switch", json!({"vport": "wan"})), ErrorCode::MissingArgument);
        assert_eq!(
            code("switch", json!({"vport": "wan", "path": "slow"})),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code("switch", json!({"vport": 1, "path": "fast"})),
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn flows() {
        let q = parse("flows", json!({})).unwrap();
        assert_eq!(
            q,
            Command::Flows(FlowsQuery {
                op: FlowsOp::List,
                filter: FlowFilter::default(),
                limit: FLOWS_DEFAULT_LIMIT
            })
        );
        let q = parse(
            "flows",
            json!({"op": "count", "src": "10.0.0.1", "dst": "::1", "port": 443, "proto": "udp", "vport": "lan"}),
        )
        .unwrap();
        let Command::Flows(q) = q else { panic!() };
        assert_eq!(q.filter.proto, Some(17));
        assert_eq!(q.filter.port, Some(443));
        assert_eq!(q.filter.dst, Some("::1".parse().unwrap()));
        assert_eq!(
            parse("flows", json!({"op": "show", "id": 5})).unwrap(),
            Command::Flows(FlowsQuery {
                op: FlowsOp::Show { id: 5 },
                filter: FlowFilter::default(),
                limit: FLOWS_DEFAULT_LIMIT
            })
        );
        assert_eq!(code("flows", json!({"op": "show"})), ErrorCode::MissingArgument);
        assert_eq!(
            code("flows", json!({"op": "show", "id": -1})),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code("flows", json!({"op": "list", "id": 1})),
            ErrorCode::InvalidArgument
        );
        assert_eq!(code("flows", json!({"limit": 0})), ErrorCode::InvalidArgument);
        assert_eq!(code("flows", json!({"limit": 100001})), ErrorCode::InvalidArgument);
        assert_eq!(
            code("flows", json!({"op": "count", "limit": 5})),
            ErrorCode::InvalidArgument
        );
        assert_eq!(code("flows", json!({"src": "10.0.0"})), ErrorCode::InvalidArgument);
        assert_eq!(code("flows", json!({"port": 70000})), ErrorCode::InvalidArgument);
        assert_eq!(code("flows", json!({"proto": "sctp"})), ErrorCode::InvalidArgument);
        assert_eq!(code("flows", json!({"proto": 256})), ErrorCode::InvalidArgument);
        assert_eq!(code("flows", json!({"op": "drop"})), ErrorCode::InvalidArgument);
        assert_eq!(parse_proto(&json!("47")), Some(47));
    }

    #[test]
    fn policy_log_debug() {
        assert_eq!(parse("policy", json!({})).unwrap(), Command::Policy(PolicyOp::Show));
        assert_eq!(
            parse("policy", json!({"op": "load", "file": "/p.toml"})).unwrap(),
            Command::Policy(PolicyOp::Load { file: "/p.toml".into() })
        );
        assert_eq!(code("policy", json!({"op": "validate"})), ErrorCode::MissingArgument);
        assert_eq!(
            code("policy", json!({"op": "show", "file": "x"})),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            parse("log-level", json!({"level": "debug"})).unwrap(),
            Command::LogLevel {
                level: Some(log::Level::Debug)
            }
        );
        assert_eq!(code("log-level", json!({"level": "loud"})), ErrorCode::InvalidArgument);
        assert_eq!(
            parse(
                "debug",
                json!({"op": "plug", "device": "net_tap0", "devargs": "iface=t0"})
            )
            .unwrap(),
            Command::Debug(DebugOp::Plug {
                device: "net_tap0".into(),
                devargs: Some("iface=t0".into())
            })
        );
        assert_eq!(code("debug", json!({"device": "net_tap0"})), ErrorCode::MissingArgument);
        assert_eq!(
            code("debug", json!({"op": "unplug", "device": "d", "devargs": "x"})),
            ErrorCode::InvalidArgument
        );
    }
}
