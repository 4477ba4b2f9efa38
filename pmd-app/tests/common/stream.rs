//! A TCP stream from namespace A to a server in B through the app
//! (tests/helpers/tcp_stream.py on both ends), and the app's flow of it.

use super::live::{find_flow, App, Proc};
use super::netns::{v4_key, Pair, A_IP, B_IP, SNAT_IP};
use serde_json::Value;
use std::time::Duration;

const START: Duration = Duration::from_secs(30);
/// Bound on any single wait for the stream to make progress.
const PROGRESS: Duration = Duration::from_secs(30);
const END: Duration = Duration::from_secs(90);
/// Progress report granularity of the stream helper.
pub const REPORT: u64 = 128 << 10;

/// One TCP connection A -> B through the app, streaming until finished.
pub struct Stream {
    pub server: Proc,
    pub client: Proc,
    /// The client's address as A knows it (10.1.0.4:PORT).
    pub local: String,
    /// The client's address as B sees it (SNAT address:port).
    pub peer: String,
}

impl Stream {
    pub fn open(topo: &Pair, port: u16, rate_mbps: u32) -> Stream {
        Stream::open_from(topo, 0, port, rate_mbps)
    }

    /// [`Stream::open`] from A's source port `sport` (0: the kernel's
    /// choice).
    pub fn open_from(topo: &Pair, sport: u16, port: u16, rate_mbps: u32) -> Stream {
        let port_s = port.to_string();
        let report = REPORT.to_string();
        let mut server = topo.b.ns.tcp_stream(
            &format!("server :{port}"),
            &["server", "--bind", B_IP, "--port", &port_s, "--progress", &report],
        );
        server.wait_event(START, |e| e["event"] == "listening");
        let mut client = topo.a.ns.tcp_stream(
            &format!("client :{port}"),
            &[
                "client",
                "--connect",
                B_IP,
                "--port",
                &port_s,
                "--until-stdin-eof",
                "--rate-mbps",
                &rate_mbps.to_string(),
                "--sport",
                &sport.to_string(),
            ],
        );
        let c = client.wait_event(START, |e| e["event"] == "connected");
        let s = server.wait_event(START, |e| e["event"] == "accepted");
        let peer = s["peer"].as_str().unwrap().to_string();
        assert!(
            peer.starts_with(&format!("{SNAT_IP}:")),
            "B sees {peer}, not the SNAT address"
        );
        Stream {
            server,
            client,
            local: c["local"].as_str().unwrap().to_string(),
            peer,
        }
    }

    /// Waits until B has received `more` bytes beyond what it had now.
    pub fn advance(&mut self, more: u64) -> u64 {
        let now = self.server.progress();
        self.server.wait_progress_beyond(now + more - 1, PROGRESS)
    }

    /// Ends the stream and checks it: no error on either side, the same
    /// byte count and sha256 at both ends, the same peer address.
    pub fn finish(mut self) -> u64 {
        self.client.close_stdin();
        let c = self.client.wait_success(END);
        let s = self.server.wait_success(END);
        assert_eq!(c["server_sha256"], c["sha256"], "client {c}");
        assert_eq!(c["sha256"], s["sha256"], "payload differs: client {c} server {s}");
        assert_eq!(c["bytes"], s["bytes"], "client {c} server {s}");
        assert_eq!(s["peer"].as_str(), Some(self.peer.as_str()), "{s}");
        c["bytes"].as_u64().unwrap()
    }
}

/// The flow of `s` in the app's table: (id, NAT binding, state).
pub fn flow_of(app: &App, s: &Stream) -> (Value, String, String) {
    let flows = app.ctl(&["flows", "--proto", "tcp", "--limit", "1000"]);
    let f = find_flow(&flows, &s.local);
    let nat = f["nat"].as_str().unwrap_or_default().to_string();
    assert_eq!(nat, s.peer, "the flow's NAT binding is not what B sees: {f:#}");
    (
        f["id"].clone(),
        nat,
        f["state"].as_str().unwrap_or_default().to_string(),
    )
}

/// One stream to B's port `port + i` for each `owners[i]`, from a source
/// port that makes worker `owners[i]` (of `workers`) own its flow. The
/// source ports differ: the tests find a flow by A's address.
pub fn owned_streams(topo: &Pair, port: u16, owners: &[usize], workers: usize) -> Vec<Stream> {
    (0..)
        .zip(owners)
        .map(|(i, &owner)| {
            let (sport, port) = (41000 + 100 * i, port + i);
            let sport = (sport..)
                .find(|&p| v4_key(6, A_IP, p, B_IP, port).owner(workers) == owner)
                .unwrap();
            Stream::open_from(topo, sport, port, 0)
        })
        .collect()
}
