//! `vfpctl`: the operator's command line for a running `pmd-app`.
//!
//! Each invocation connects to the instance's control socket, sends one
//! request (or, for `top`, one `stats` request per refresh), and prints the
//! result as an aligned table, or as JSON with `--json`. The protocol and
//! the exit codes are documented in `docs/control-protocol.md`; the client,
//! the request arguments and the tables all live in `pmd_app::control`, so
//! this file is only the command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use pmd_app::control::{default_socket_path, render, Client, ClientError};
use serde_json::{json, Map, Value};

const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  the instance answered with an error (printed as \"error (CODE): MESSAGE\")
  2  usage error
  3  cannot connect to the control socket (missing, permission denied, refused)
  4  protocol error (invalid reply, timeout, connection lost)";

#[derive(Parser)]
#[command(
    name = "vfpctl",
    version,
    about = "Inspect and operate a running pmd-app through its control socket",
    after_help = EXIT_STATUS
)]
struct Cli {
    /// Control socket path [default: /var/run/vfp/<PREFIX>.sock]
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "prefix")]
    socket: Option<PathBuf>,
    /// The instance's EAL --file-prefix, which names its socket
    #[arg(long, global = true, value_name = "NAME", default_value = "rte")]
    prefix: String,
    /// Print results as JSON instead of tables
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for each reply
    #[arg(long, global = true, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    timeout: Duration,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Instance, workers and vports overview
    Status,
    /// DPDK ports behind the vports' paths
    Ports,
    /// Pin a vport to its fast or soft path, or return it to automatic failover
    Switch {
        vport: String,
        #[arg(value_enum)]
        path: PathArg,
    },
    /// Rates, counters, drops and recent path switches
    Stats,
    /// List, count, show or flush flows
    Flows {
        #[arg(value_enum, default_value = "list")]
        op: FlowsOpArg,
        /// Flow id (for `show`)
        id: Option<u64>,
        /// Source address
        #[arg(long, value_name = "IP")]
        src: Option<std::net::IpAddr>,
        /// Destination address
        #[arg(long, value_name = "IP")]
        dst: Option<std::net::IpAddr>,
        /// Source or destination port
        #[arg(long, value_name = "N")]
        port: Option<u16>,
        /// tcp, udp, icmp, icmpv6 or a protocol number
        #[arg(long, value_name = "P")]
        proto: Option<String>,
        /// Only flows of this vport
        #[arg(long, value_name = "NAME")]
        vport: Option<String>,
        /// Most flows to list (1..=100000)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: Option<u32>,
    },
    /// Show, load or validate the policy
    Policy {
        #[command(subcommand)]
        op: Option<PolicyCmd>,
    },
    /// Show or set the log level
    LogLevel {
        #[arg(value_enum)]
        level: Option<LevelArg>,
    },
    /// Stop the instance cleanly
    Shutdown,
    /// Test hooks: hot-unplug or hot-plug a virtual device
    Debug {
        #[command(subcommand)]
        op: DebugCmd,
    },
    /// Send one raw JSON request line and print the reply line
    Raw {
        #[arg(value_name = "JSON")]
        line: String,
    },
    /// Refresh per-lcore and per-path rates, like top(1)
    Top {
        /// Seconds between refreshes
        #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
        interval: Duration,
        /// Stop after N refreshes
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Describe the running policy
    Show,
    /// Load a policy file and publish it to the workers
    Load { file: PathBuf },
    /// Check a policy file without loading it
    Validate { file: PathBuf },
}

#[derive(Subcommand)]
enum DebugCmd {
    /// Hot-unplug a vdev (e.g. net_tap0)
    Unplug { device: String },
    /// Hot-plug a vdev, with optional devargs (e.g. iface=tap0)
    Plug { device: String, devargs: Option<String> },
}

#[derive(Clone, Copy, ValueEnum)]
enum PathArg {
    Fast,
    Soft,
    Auto,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum FlowsOpArg {
    List,
    Count,
    Show,
    Flush,
}

#[derive(Clone, Copy, ValueEnum)]
enum LevelArg {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 86_400.0 => Ok(Duration::from_secs_f64(x)),
        _ => Err(format!("expected seconds in (0, 86400], got \"{s}\"")),
    }
}

/// The protocol name of a value-enum argument (`fast`, `count`, ...).
fn wire<T: ValueEnum>(v: T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// An absolute path, so the instance (whose working directory differs)
/// opens the file the operator meant.
fn absolute(file: PathBuf) -> String {
    std::path::absolute(&file)
        .unwrap_or(file)
        .to_string_lossy()
        .into_owned()
}

/// The request for a subcommand (not `raw` or `top`).
fn request(cmd: Cmd) -> (&'static str, Value) {
    match cmd {
        Cmd::Status => ("status", json!({})),
        Cmd::Ports => ("ports", json!({})),
        Cmd::Stats => ("stats", json!({})),
        Cmd::Shutdown => ("shutdown", json!({})),
        Cmd::Switch { vport, path } => ("switch", json!({"vport": vport, "path": wire(path)})),
        Cmd::Flows {
            op,
            id,
            src,
            dst,
            port,
            proto,
            vport,
            limit,
        } => {
            let mut a = Map::new();
            a.insert("op".into(), json!(wire(op)));
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    a.insert(k.into(), v);
                }
            };
            put("id", id.map(Value::from));
            put("src", src.map(|ip| json!(ip.to_string())));
            put("dst", dst.map(|ip| json!(ip.to_string())));
            put("port", port.map(Value::from));
            // Numbers go as numbers; names are resolved by the instance.
            put(
                "proto",
                proto.map(|p| p.parse::<u8>().map_or_else(|_| json!(p), Value::from)),
            );
            put("vport", vport.map(Value::from));
            put("limit", limit.map(Value::from));
            ("flows", Value::Object(a))
        }
        Cmd::Policy { op } => match op.unwrap_or(PolicyCmd::Show) {
            PolicyCmd::Show => ("policy", json!({"op": "show"})),
            PolicyCmd::Load { file } => ("policy", json!({"op": "load", "file": absolute(file)})),
            PolicyCmd::Validate { file } => ("policy", json!({"op": "validate", "file": absolute(file)})),
        },
        Cmd::LogLevel { level } => match level {
            Some(l) => ("log-level", json!({"level": wire(l)})),
            None => ("log-level", json!({})),
        },
        Cmd::Debug { op } => match op {
            DebugCmd::Unplug { device } => ("debug", json!({"op": "unplug", "device": device})),
            DebugCmd::Plug { device, devargs } => {
                let mut a = json!({"op": "plug", "device": device});
                if let Some(d) = devargs {
                    a["devargs"] = json!(d);
                }
                ("debug", a)
            }
        },
        Cmd::Raw { .. } | Cmd::Top { .. } => ("", Value::Null),
    }
}

/// Write to stdout, ignoring a closed pipe (`vfpctl flows | head`).
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Why a run ended unsuccessfully: the exit code, after printing.
enum Failure {
    Client(ClientError),
    Remote,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::Client(e)
    }
}

/// Run one request and print its result.
fn call(client: &mut Client, cmd: &str, args: Value, json_out: bool) -> Result<(), Failure> {
    match client.call(cmd, args)?.result {
        Ok(result) if json_out => out(&pretty(&result)),
        Ok(result) => out(&render::render(cmd, &result)),
        Err(e) => {
            eprintln!("error ({}): {}", e.code, e.message);
            return Err(Failure::Remote);
        }
    }
    Ok(())
}

/// `raw`: one line out, the reply line in, printed as received.
fn raw(client: &mut Client, line: &str) -> Result<(), Failure> {
    // A pretty-printed request would be several lines: compact it if it
    // parses; send it untouched (bar newlines) if not, to test the server.
    let line = match serde_json::from_str::<Value>(line) {
        Ok(v) => v.to_string(),
        Err(_) => line.replace(['\n', '\r'], " "),
    };
    let reply = client.call_raw(&line)?;
    out(&format!("{reply}\n"));
    match reply.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(()),
        Some(false) => Err(Failure::Remote),
        None => Err(Failure::Client(ClientError::Protocol(
            "reply has no boolean \"ok\"".into(),
        ))),
    }
}

/// Refreshes `stats` every `interval`. An instance drops a connection
/// idle for longer than its idle timeout (5 minutes), as a long interval
/// leaves it: a refresh whose connection was closed connects again once,
/// with the same reply `timeout`.
fn top(
    client: &mut Client,
    socket: &std::path::Path,
    timeout: Duration,
    interval: Duration,
    count: Option<u64>,
    json_out: bool,
) -> Result<(), Failure> {
    let tty = std::io::stdout().is_terminal();
    let mut n = 0u64;
    loop {
        let reply = match client.call("stats", json!({})) {
            Err(ClientError::Closed | ClientError::Io(_)) if n > 0 => {
                *client = Client::connect(socket)?;
                client.set_timeout(Some(timeout))?;
                client.call("stats", json!({}))?
            }
            r => r?,
        };
        let stats = match reply.result {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error ({}): {}", e.code, e.message);
                return Err(Failure::Remote);
            }
        };
        n += 1;
        let body = if json_out {
            format!("{stats}\n")
        } else {
            format!(
                "vfpctl top: {}, every {:.1}s, refresh {n}\n{}",
                socket.display(),
                interval.as_secs_f64(),
                render::top(&stats)
            )
        };
        match (tty && !json_out, n) {
            (true, _) => out(&format!("\x1b[H\x1b[2J{body}")),
            (false, 1) => out(&body),
            (false, _) if json_out => out(&body),
            (false, _) => out(&format!("\n{body}")),
        }
        if count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Flows { op, id, .. } = &cli.cmd {
        let usage = match (op, id) {
            (FlowsOpArg::Show, None) => Some("'flows show' needs a flow ID"),
            (FlowsOpArg::Show, Some(_)) | (_, None) => None,
            (_, Some(_)) => Some("a flow ID is only taken by 'flows show'"),
        };
        if let Some(msg) = usage {
            Cli::command()
                .error(clap::error::ErrorKind::ArgumentConflict, msg)
                .exit();
        }
    }
    let socket = cli.socket.clone().unwrap_or_else(|| default_socket_path(&cli.prefix));
    let result = Client::connect(&socket)
        .and_then(|mut c| c.set_timeout(Some(cli.timeout)).map(|()| c))
        .map_err(Failure::Client)
        .and_then(|mut client| match cli.cmd {
            Cmd::Raw { line } => raw(&mut client, &line),
            Cmd::Top { interval, count } => top(&mut client, &socket, cli.timeout, interval, count, cli.json),
            other => {
                let (cmd, args) = request(other);
                call(&mut client, cmd, args, cli.json)
            }
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Remote) => ExitCode::from(1),
        Err(Failure::Client(e)) => {
            eprintln!("vfpctl: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
