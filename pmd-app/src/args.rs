//! The command line: `pmd-app [EAL options] -- [app options]`, testpmd
//! style. The app's options are parsed and validated here, before the EAL
//! starts, into typed values; nothing downstream sees option strings.

use clap::Parser;
use std::path::PathBuf;
use vfp_core::topology::Role;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "pmd-app",
    version,
    about = "DPDK poll-mode VFP dataplane with failsafe fast/soft datapaths per vport",
    override_usage = "pmd-app [EAL options] -- [OPTIONS]",
    after_help = "With no --vport, every port the EAL probed is used and paired for forwarding like \
testpmd (0<->1, 2<->3, an odd last port back to itself).\n\
Example: pmd-app --no-pci --vdev net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap -- --stats-period 1"
)]
pub struct AppArgs {
    /// Declare a vport: name=NAME,fast=DEV[,soft=DEV][,role=vm|net]. DEV is a
    /// DPDK device name as the EAL knows it (net_pcap0, 0000:03:00.1).
    /// Repeatable; vports without a policy forward in declaration order
    /// (first<->second, third<->fourth).
    #[arg(long = "vport", value_name = "SPEC", value_parser = parse_vport)]
    pub vports: Vec<VportSpec>,

    /// Policy file (TOML); without it vports forward to their peer unmodified.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Rx/tx queues per port (clamped to what each device offers).
    /// Default: one per worker lcore.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub queues: Option<u16>,

    /// Descriptors per rx and per tx queue.
    #[arg(long = "nb-desc", value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u16).range(64..=16384))]
    pub nb_desc: u16,

    /// Mbufs in the pool. Default: sized from ports x queues x descriptors.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1024..))]
    pub mbufs: Option<u32>,

    /// Mbuf data room in bytes, headroom included.
    #[arg(long = "mbuf-size", value_name = "BYTES", default_value_t = 2176,
          value_parser = clap::value_parser!(u16).range(512..))]
    pub mbuf_size: u16,

    /// Flow table capacity per worker (flow pairs; 640 bytes each,
    /// committed when the pipeline starts).
    #[arg(long = "max-flows", value_name = "N", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_flows: u32,

    /// Print per-port and per-lcore counters every SECS seconds (0: off).
    #[arg(long = "stats-period", value_name = "SECS", default_value_t = 0)]
    pub stats_period: u64,

    /// Stop by itself after SECS seconds (0: run until SIGINT/SIGTERM).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub duration: u64,

    /// Stop by itself once N packets have been received in total (a test
    /// and benchmark aid: deterministic end of a finite pcap input).
    #[arg(long = "stop-after", value_name = "N")]
    pub stop_after: Option<u64>,

    /// Longest sleep, in microseconds, of an idle worker (0: never sleep,
    /// busy-poll like testpmd). At most 1 s: a sleeping worker takes its
    /// commands (a swap, a policy) only when it wakes, and the control
    /// plane waits 3 s for every worker's acknowledgement.
    #[arg(long = "idle-sleep-us", value_name = "US", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub idle_sleep_us: u32,

    /// Control socket path. Default: /var/run/vfp/<file-prefix>.sock
    #[arg(long = "control-socket", value_name = "PATH")]
    pub control_socket: Option<PathBuf>,

    /// Group allowed to use the control socket (mode 0660 instead of 0600).
    #[arg(long = "control-socket-group", value_name = "GROUP")]
    pub control_socket_group: Option<String>,

    /// Do not open a control socket.
    #[arg(long = "no-control-socket")]
    pub no_control_socket: bool,

    /// At exit, write the final counters as JSON (the control `stats`
    /// result) to FILE (its directory must be writable at start).
    #[arg(long = "final-stats", value_name = "FILE", value_parser = writable_file)]
    pub final_stats: Option<PathBuf>,
}

/// One `--vport` declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VportSpec {
    pub name: String,
    pub fast: Option<String>,
    pub soft: Option<String>,
    pub role: Role,
}

/// A file the app will write at exit: its directory must exist and take
/// a new file now, or the run's counters would be lost at its end. The
/// probe file is removed at once; FILE itself is not touched.
fn writable_file(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if path.is_dir() {
        return Err("is a directory".into());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or("names no file")?.to_string_lossy().into_owned();
    let probe = dir.join(format!(".{name}.{}.probe", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(path)
}

fn parse_vport(s: &str) -> Result<VportSpec, String> {
    let mut spec = VportSpec {
        name: String::new(),
        fast: None,
        soft: None,
        role: Role::Vm,
    };
    let mut role_set = false;
    for part in s.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            format!("`{part}` is not key=value (expected name=NAME,fast=DEV[,soft=DEV][,role=vm|net])")
        })?;
        if v.is_empty() {
            return Err(format!("`{k}` has an empty value"));
        }
        let dup = |x: bool| if x { Err(format!("`{k}` given twice")) } else { Ok(()) };
        match k {
            "name" => {
                dup(!spec.name.is_empty())?;
                if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    return Err(format!("vport name `{v}` may only hold letters, digits, '-' and '_'"));
                }
                spec.name = v.to_string();
            }
            "fast" => {
                dup(spec.fast.is_some())?;
                spec.fast = Some(v.to_string());
            }
            "soft" => {
                dup(spec.soft.is_some())?;
                spec.soft = Some(v.to_string());
            }
            "role" => {
                dup(role_set)?;
                role_set = true;
                spec.role = match v {
                    "vm" => Role::Vm,
                    "net" => Role::Net,
                    _ => return Err(format!("role `{v}` is not vm or net")),
                };
            }
            _ => return Err(format!("unknown vport key `{k}` (expected name, fast, soft, role)")),
        }
    }
    if spec.name.is_empty() {
        return Err("vport needs name=NAME".into());
    }
    if spec.fast.is_none() && spec.soft.is_none() {
        return Err(format!(
            "vport {} has no device: give fast=DEV and/or soft=DEV",
            spec.name
        ));
    }
    if spec.fast.is_some() && spec.fast == spec.soft {
        return Err(format!("vport {}: fast and soft name the same device", spec.name));
    }
    Ok(spec)
}

/// Splits `argv` at the first `--` into (EAL args with `argv[0]`, app args
/// with `argv[0]`).
pub fn split_argv(argv: &[String]) -> (Vec<String>, Vec<String>) {
    let prog = argv.first().cloned().unwrap_or_else(|| "pmd-app".into());
    match argv.iter().position(|a| a == "--") {
        Some(i) => {
            let eal = argv[..i].to_vec();
            let mut app = vec![prog];
            app.extend_from_slice(&argv[i + 1..]);
            (eal, app)
        }
        None => (argv.to_vec(), vec![prog]),
    }
}

/// `--vdev` arguments in the EAL options: (device name, devargs), kept to
/// re-plug a vdev by name later.
pub fn vdev_args(eal: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut it = eal.iter();
    while let Some(a) = it.next() {
        let spec = if a == "--vdev" {
            it.next().cloned()
        } else {
            a.strip_prefix("--vdev=").map(str::to_owned)
        };
        if let Some(spec) = spec {
            let (name, args) = spec.split_once(',').unwrap_or((spec.as_str(), ""));
            out.push((name.to_string(), args.to_string()));
        }
    }
    out
}

/// The EAL `--file-prefix` (default "rte"), which names this instance.
pub fn file_prefix(eal: &[String]) -> String {
    let mut it = eal.iter();
    while let Some(a) = it.next() {
        if a == "--file-prefix" {
            if let Some(v) = it.next() {
                return v.clone();
            }
        } else if let Some(v) = a.strip_prefix("--file-prefix=") {
            return v.to_string();
        }
    }
    "rte".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vport_spec_parses_and_rejects() {
        let v = parse_vport("name=wan,fast=net_pcap0,soft=net_tap0,role=net").unwrap();
        assert_eq!(v.name, "wan");
        assert_eq!(v.fast.as_deref(), Some("net_pcap0"));
        assert_eq!(v.soft.as_deref(), Some("net_tap0"));
        assert_eq!(v.role, Role::Net);
        assert!(parse_vport("name=a").unwrap_err().contains("no device"));
        assert!(parse_vport("fast=x").unwrap_err().contains("name"));
        assert!(parse_vport("name=a,fast=x,soft=x").unwrap_err().contains("same device"));
        assert!(parse_vport("name=a,fast=x,bogus=1")
            .unwrap_err()
            .contains("unknown vport key"));
        assert!(parse_vport("name=a,fast=x,role=router").unwrap_err().contains("role"));
        assert!(parse_vport("name=a b,fast=x").is_err());
    }

    #[test]
    fn argv_splits_at_double_dash() {
        let a: Vec<String> = ["p", "-l", "0", "--", "--stats-period", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (e, app) = split_argv(&a);
        assert_eq!(e, ["p", "-l", "0"]);
        assert_eq!(app, ["p", "--stats-period", "1"]);
    }

    #[test]
    fn vdev_args_and_prefix() {
        let a: Vec<String> = [
            "p",
            "--vdev",
            "net_pcap0,rx_pcap=a",
            "--vdev=net_null0",
            "--file-prefix",
            "t1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            vdev_args(&a),
            vec![
                ("net_pcap0".into(), "rx_pcap=a".into()),
                ("net_null0".into(), "".into())
            ]
        );
        assert_eq!(file_prefix(&a), "t1");
    }
}
