//! The scapy traffic helper (tests/helpers/pipeline.py): finite pcap
//! scenarios with the fate of every packet ([`Fates`]), and driven
//! exchanges with the driver's log of every tagged packet ([`Exchange`]).

use super::wait_child;
use crate::common::{pcap_frames, repo_root};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

fn helper() -> std::path::PathBuf {
    repo_root().join("tests/helpers/pipeline.py")
}

/// `pipeline.py gen SCENARIO DIR`.
pub fn gen(scenario: &str, dir: &str) {
    let o = Command::new("/usr/bin/python3")
        .arg(helper())
        .args(["gen", scenario, dir])
        .output()
        .expect("run pipeline.py");
    assert!(
        o.status.success(),
        "pipeline.py gen {scenario} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `pipeline.py drive SCENARIO DIR --vm VM --wan WAN`, bounded by
/// `limit`; Err carries the driver's diagnosis.
pub fn drive(scenario: &str, dir: &str, vm: &str, wan: &str, limit: Duration) -> Result<(), String> {
    let mut child = Command::new("/usr/bin/python3")
        .arg(helper())
        .args(["drive", scenario, dir, "--vm", vm, "--wan", wan, "--timeout", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pipeline.py");
    let mut err = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let Some(status) = wait_child(&mut child, limit) else {
        return Err(format!("driver did not finish within {limit:?}"));
    };
    let e = errs.join().unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(format!("driver {scenario}: {status}: {e}"))
    }
}

/// Where each input packet must end: per input file, in order.
pub struct Fates {
    pub vm_in: Vec<String>,
    pub wan_in: Vec<String>,
}

impl Fates {
    pub fn read(dir: &str) -> Fates {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/fates.json")).unwrap()).unwrap();
        let list = |k: &str| -> Vec<String> {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        };
        Fates {
            vm_in: list("vm_in"),
            wan_in: list("wan_in"),
        }
    }

    /// Count of packets dropped for each reason, over both inputs.
    pub fn drops(&self) -> Vec<(String, u64)> {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for f in self.vm_in.iter().chain(&self.wan_in) {
            if f != "vm" && f != "wan" {
                *m.entry(f.clone()).or_default() += 1;
            }
        }
        m.into_iter().collect()
    }

    pub fn total(&self) -> usize {
        self.vm_in.len() + self.wan_in.len()
    }
}

/// The driver's log: every tagged packet, where it went in and came out.
pub struct Exchange {
    pub dir: String,
    pub log: Value,
    pub sent: HashMap<String, Vec<Vec<u8>>>,
    pub recv: HashMap<String, Vec<Vec<u8>>>,
}

#[derive(Clone, Debug)]
pub struct Hop {
    pub tag: u64,
    pub sent_on: String,
    pub sent_idx: usize,
    pub got_on: Option<String>,
    pub got_idx: Option<usize>,
}

impl Exchange {
    pub fn read(dir: &str) -> Exchange {
        let log: Value = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/log.json")).unwrap()).unwrap();
        let mut sent = HashMap::new();
        let mut recv = HashMap::new();
        for side in ["vm", "wan"] {
            sent.insert(side.to_string(), pcap_frames(&format!("{dir}/sent_{side}.pcap")));
            recv.insert(side.to_string(), pcap_frames(&format!("{dir}/recv_{side}.pcap")));
        }
        Exchange {
            dir: dir.to_string(),
            log,
            sent,
            recv,
        }
    }

    pub fn hop(&self, tag: u64) -> Hop {
        let e = &self.log["tags"][tag.to_string()];
        assert!(e.is_object(), "no tag {tag} in the driver's log");
        Hop {
            tag,
            sent_on: e["sent_on"].as_str().unwrap().to_string(),
            sent_idx: e["sent_idx"].as_u64().unwrap() as usize,
            got_on: e["got_on"].as_str().map(str::to_owned),
            got_idx: e["got_idx"].as_u64().map(|x| x as usize),
        }
    }

    /// The tags of a group the driver recorded (`extra.NAME`).
    pub fn group(&self, name: &str) -> Vec<u64> {
        self.log["extra"][name]
            .as_array()
            .unwrap_or_else(|| panic!("no group {name} in the driver's log"))
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect()
    }

    fn probes(&self, k: &str) -> u64 {
        ["vm", "wan"].iter().map(|s| self.log[k][s].as_u64().unwrap_or(0)).sum()
    }
    /// Readiness probes (non-IP frames) the driver sent, and received back.
    pub fn probes_sent(&self) -> u64 {
        self.probes("probes_sent")
    }
    pub fn probes_recv(&self) -> u64 {
        self.probes("probes_recv")
    }
    pub fn lost_probes(&self) -> u64 {
        self.probes_sent() - self.probes_recv()
    }

    pub fn pcap(&self, kind: &str, side: &str) -> String {
        format!("{}/{kind}_{side}.pcap", self.dir)
    }

    /// Frames the app sent out on each side, in order.
    pub fn received(&self, side: &str) -> &[Vec<u8>] {
        &self.recv[side]
    }
}
