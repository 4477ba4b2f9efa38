//! The independent decoder: tshark rows keyed by field name (checksums
//! validated), the tags the traffic helper puts in payloads, and the
//! field comparisons the tests share.

use super::traffic::Exchange;
use crate::common::tshark_with;
use std::collections::HashMap;

/// One tshark row: field name -> every occurrence (outer first).
#[derive(Clone, Debug, Default)]
pub struct Row(pub HashMap<String, Vec<String>>);

impl Row {
    /// All occurrences of `f`.
    pub fn all(&self, f: &str) -> Vec<String> {
        self.0.get(f).cloned().unwrap_or_default()
    }
    /// The first (outermost) occurrence, "" when absent.
    pub fn get(&self, f: &str) -> String {
        self.all(f).into_iter().next().unwrap_or_default()
    }
    /// The last (innermost) occurrence, "" when absent.
    pub fn inner(&self, f: &str) -> String {
        self.all(f).into_iter().last().unwrap_or_default()
    }
    pub fn num(&self, f: &str) -> u64 {
        parse_num(&self.get(f)).unwrap_or_else(|| panic!("field {f} not a number in {self:?}"))
    }
    pub fn inner_num(&self, f: &str) -> u64 {
        parse_num(&self.inner(f)).unwrap_or_else(|| panic!("field {f} not a number in {self:?}"))
    }
}

fn parse_num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// tshark's decoding of every frame of `pcap`, checksums validated
/// (`*.checksum.status`: 1 good, 0 bad, 2 unverified, 3 not present).
pub fn tshark_rows(pcap: &str, fields: &[&str]) -> Vec<Row> {
    // Occurrences are joined with tshark's default aggregator, ",".
    let options = [
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ];
    tshark_with(pcap, fields, &options)
        .into_iter()
        .map(|cols| {
            assert_eq!(cols.len(), fields.len(), "tshark row {cols:?}");
            Row(fields
                .iter()
                .zip(cols)
                .map(|(f, c)| {
                    let v = if c.is_empty() {
                        Vec::new()
                    } else {
                        c.split(',').map(str::to_owned).collect()
                    };
                    (f.to_string(), v)
                })
                .collect())
        })
        .collect()
}

/// Input frames whose fate is `to`, in order.
pub fn expected(frames: &[Vec<u8>], fates: &[String], to: &str) -> Vec<Vec<u8>> {
    frames
        .iter()
        .zip(fates)
        .filter(|(_, f)| *f == to)
        .map(|(b, _)| b.clone())
        .collect()
}

pub fn is_arp(f: &[u8]) -> bool {
    f.len() >= 14 && f[12..14] == [0x08, 0x06]
}

/// Rows of the input frames selected by `keep`, decoded by tshark.
pub fn rows_of(pcap: &str, fields: &[&str], keep: &[bool]) -> Vec<Row> {
    tshark_rows(pcap, fields)
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(r, _)| r)
        .collect()
}

pub const PLAIN_FIELDS: [&str; 14] = [
    "frame.len",
    "eth.src",
    "eth.dst",
    "vlan.id",
    "ip.src",
    "ip.dst",
    "ip.ttl",
    "ipv6.dst",
    "udp.srcport",
    "udp.dstport",
    "tcp.srcport",
    "tcp.flags",
    "icmpv6.echo.identifier",
    "arp.dst.proto_ipv4",
];

pub fn fields_of(rows: &[Row], fields: &[&str]) -> Vec<Vec<Vec<String>>> {
    rows.iter().map(|r| fields.iter().map(|f| r.all(f)).collect()).collect()
}

/// The tag "<Tnnnnn>" the traffic helper puts in every payload.
pub fn tag_of(frame: &[u8]) -> Option<u64> {
    frame.windows(8).find_map(|w| {
        (w[0] == b'<' && w[1] == b'T' && w[7] == b'>' && w[2..7].iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(&w[2..7]).unwrap().parse().unwrap())
    })
}

pub const IP_FIELDS: [&str; 24] = [
    "ip.hdr_len",
    "frame.len",
    "vlan.id",
    "eth.src",
    "eth.dst",
    "ip.src",
    "ip.dst",
    "ip.ttl",
    "ip.id",
    "ip.len",
    "ip.proto",
    "ip.flags.df",
    "ip.checksum.status",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags",
    "tcp.seq_raw",
    "tcp.checksum.status",
    "udp.srcport",
    "udp.dstport",
    "udp.length",
    "udp.checksum",
    "udp.checksum.status",
    "vxlan.vni",
];
pub const ICMP_FIELDS: [&str; 4] = ["icmp.ident", "icmp.checksum.status", "icmp.type", "icmp.mtu"];

/// Decoded rows of every pcap of an exchange.
pub struct Decoded {
    pub sent: HashMap<String, Vec<Row>>,
    pub recv: HashMap<String, Vec<Row>>,
}

pub fn all_fields() -> Vec<&'static str> {
    IP_FIELDS.iter().chain(ICMP_FIELDS.iter()).copied().collect()
}

impl Decoded {
    pub fn new(ex: &Exchange) -> Decoded {
        let f = all_fields();
        let mut sent = HashMap::new();
        let mut recv = HashMap::new();
        for side in ["vm", "wan"] {
            sent.insert(side.to_string(), tshark_rows(&ex.pcap("sent", side), &f));
            recv.insert(side.to_string(), tshark_rows(&ex.pcap("recv", side), &f));
        }
        Decoded { sent, recv }
    }
    /// (as sent, as the app sent it on) for a forwarded tag.
    pub fn pair(&self, ex: &Exchange, tag: u64) -> (Row, Row) {
        let h = ex.hop(tag);
        let s = self.sent[&h.sent_on][h.sent_idx].clone();
        let on = h.got_on.unwrap_or_else(|| panic!("tag {tag} never came out"));
        let g = self.recv[&on][h.got_idx.unwrap()].clone();
        (s, g)
    }
}

/// Field values that must be the same before and after.
pub fn same(s: &Row, g: &Row, fields: &[&str], ctx: &str) {
    for f in fields {
        assert_eq!(g.all(f), s.all(f), "{ctx}: {f} changed");
    }
}

pub fn checksums_good(g: &Row, ctx: &str) {
    for f in ["ip.checksum.status", "tcp.checksum.status", "icmp.checksum.status"] {
        for v in g.all(f) {
            assert_eq!(v, "1", "{ctx}: {f} = {v} in {g:?}");
        }
    }
    // A UDP checksum is good or absent (0 over IPv4).
    for (v, c) in g.all("udp.checksum.status").iter().zip(g.all("udp.checksum")) {
        assert!(
            v == "1" || (v == "3" && c == "0x0000"),
            "{ctx}: udp checksum {c} status {v}"
        );
    }
}

/// The L4 "port" fields of a row: (src, dst) for TCP/UDP, (ident, ident) for ICMP.
pub fn ports(r: &Row) -> (u64, u64) {
    for (s, d) in [("tcp.srcport", "tcp.dstport"), ("udp.srcport", "udp.dstport")] {
        if !r.inner(s).is_empty() {
            return (r.inner_num(s), r.inner_num(d));
        }
    }
    let id = r.inner_num("icmp.ident");
    (id, id)
}

pub fn proto(r: &Row) -> &'static str {
    if !r.inner("tcp.srcport").is_empty() {
        "tcp"
    } else if !r.inner("udp.srcport").is_empty() {
        "udp"
    } else {
        "icmp"
    }
}
