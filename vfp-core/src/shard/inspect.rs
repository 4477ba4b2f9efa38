//! The control plane's view of a shard's flows: a filter and a
//! serialisable description of each pair.

use serde::{Deserialize, Serialize};

use crate::action::encap::fmt_v4;
use crate::flow::key::{as_v4, proto, FlowKey, NO_VNI};
use crate::flow::pair::{FlowPair, Side};

/// Which flows to list; every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowFilter {
    /// Either key arrives on this vport.
    pub vport: Option<u16>,
    pub proto: Option<u8>,
    /// Source or destination of either key (v4-mapped for IPv4).
    pub addr: Option<[u8; 16]>,
    /// Source of the forward key (the connection's initiator).
    #[serde(default)]
    pub src: Option<[u8; 16]>,
    /// Destination of the forward key.
    #[serde(default)]
    pub dst: Option<[u8; 16]>,
    /// Source or destination port of either key.
    pub port: Option<u16>,
}

impl FlowFilter {
    pub fn matches(&self, p: &FlowPair) -> bool {
        let ks = p.keys();
        self.vport.is_none_or(|v| ks.iter().any(|k| k.vport == v))
            && self.proto.is_none_or(|x| ks[0].proto == x)
            && self.addr.is_none_or(|a| ks.iter().any(|k| k.src == a || k.dst == a))
            && self.src.is_none_or(|a| ks[0].src == a)
            && self.dst.is_none_or(|a| ks[0].dst == a)
            && self
                .port
                .is_none_or(|x| ks.iter().any(|k| k.src_port == x || k.dst_port == x))
    }
}

/// One flow pair as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowInfo {
    pub shard: usize,
    /// Slab slot, unique within the shard while the pair lives.
    pub id: u32,
    /// The forward key's parts: the vport it arrives on, its direction
    /// (`out`/`in`), protocol name and endpoints (as in [`fmt_key`]).
    pub vport: u16,
    pub dir: String,
    pub proto: String,
    pub src: String,
    pub dst: String,
    pub forward: String,
    pub reverse: String,
    pub state: String,
    pub packets_fwd: u64,
    pub bytes_fwd: u64,
    pub packets_rev: u64,
    pub bytes_rev: u64,
    pub age_ns: u64,
    pub idle_ns: u64,
    pub generation: u64,
    pub action_fwd: String,
    pub action_rev: String,
    /// The SNAT address:port the pair holds.
    pub nat: Option<String>,
}

impl FlowInfo {
    pub fn new(shard: usize, id: u32, p: &FlowPair, now_ns: u64) -> FlowInfo {
        let (f, r) = (Side::Forward, Side::Reverse);
        let k = p.key(f);
        let ports = has_ports(k);
        FlowInfo {
            shard,
            id,
            vport: k.vport,
            dir: k.dir.as_str().to_string(),
            proto: proto_name(k.proto),
            src: fmt_addr(&k.src, k.src_port, ports),
            dst: fmt_addr(&k.dst, k.dst_port, ports),
            forward: fmt_key(k),
            reverse: fmt_key(p.key(r)),
            state: p.state_str().to_string(),
            packets_fwd: p.counters(f).packets,
            bytes_fwd: p.counters(f).bytes,
            packets_rev: p.counters(r).packets,
            bytes_rev: p.counters(r).bytes,
            age_ns: now_ns.saturating_sub(p.created_ns),
            idle_ns: now_ns.saturating_sub(p.last_seen_ns),
            generation: p.generation,
            action_fwd: p.xpos(f).describe(),
            action_rev: p.xpos(r).describe(),
            nat: p.nat.map(|b| format!("{}:{}", fmt_v4(b.addr), b.port)),
        }
    }
}

fn fmt_addr(a: &[u8; 16], port: u16, with_port: bool) -> String {
    let s = match as_v4(a) {
        Some(v4) => fmt_v4(v4),
        None => format!("[{}]", std::net::Ipv6Addr::from(*a)),
    };
    if with_port {
        format!("{s}:{port}")
    } else {
        s
    }
}

fn proto_name(p: u8) -> String {
    match p {
        proto::TCP => "tcp".to_string(),
        proto::UDP => "udp".to_string(),
        proto::ICMP => "icmp".to_string(),
        proto::ICMPV6 => "icmp6".to_string(),
        p => format!("proto-{p}"),
    }
}

/// Whether the key's ports mean something (ICMP: the echo identifier).
fn has_ports(k: &FlowKey) -> bool {
    matches!(k.proto, proto::TCP | proto::UDP | proto::ICMP | proto::ICMPV6)
}

/// `tcp 10.0.0.1:1234 > 8.8.8.8:53 vni 7 vport 0 out`.
pub fn fmt_key(k: &FlowKey) -> String {
    let name = proto_name(k.proto);
    let ports = has_ports(k);
    let vni = if k.vni == NO_VNI {
        String::new()
    } else {
        format!(" vni {}", k.vni)
    };
    format!(
        "{name} {} > {}{vni} vport {} {}",
        fmt_addr(&k.src, k.src_port, ports),
        fmt_addr(&k.dst, k.dst_port, ports),
        k.vport,
        k.dir.as_str()
    )
}
