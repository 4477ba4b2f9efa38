//! What the slow path decides for the first packet of a connection.
//!
//! `engine::evaluate` walks the policy layers and produces a [`Decision`]
//! for the packet as it arrived (its forward direction). The shard turns an
//! allowed decision into a flow pair: it allocates the SNAT port, compiles
//! the forward transposition and derives the reverse one.

use arrayvec::ArrayVec;

/// Accumulated actions of every layer that allowed the packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions<'p> {
    /// Pop the outer VXLAN headers (the packet must be VXLAN).
    pub decap: bool,
    /// Rewrite the source to an address:port from this pool (borrowed
    /// from the evaluated policy: no allocation, no reference count
    /// touched per new flow).
    pub snat: Option<&'p SnatSpec>,
    /// Rewrite the destination to this backend (address v4-mapped, port;
    /// port 0 keeps the original port).
    pub dnat: Option<([u8; 16], u16)>,
    /// Decrement TTL / hop limit (dropped and counted when it reaches 0).
    pub dec_ttl: bool,
    /// Push VXLAN headers around the (possibly rewritten) frame.
    pub encap: Option<EncapSpec>,
    /// Rewrite the source MAC of the frame that leaves (outer frame when
    /// encapsulating: then `EncapSpec` MACs win).
    pub set_src_mac: Option<[u8; 6]>,
    pub set_dst_mac: Option<[u8; 6]>,
    /// Vport the packet leaves by.
    pub out_vport: u16,
    /// Rules whose `count` action matched (for the operator's counters).
    pub counted: ArrayVec<RuleRef, 8>,
}

/// Source NAT pool: addresses and an inclusive port range. Port ownership
/// is kept app-wide (`action::nat::NatPorts`), so pools with the same
/// address in different policy generations never hand out a port twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnatSpec {
    pub addrs: Vec<[u8; 4]>,
    pub port_lo: u16,
    pub port_hi: u16,
}

impl SnatSpec {
    /// Whether `addr`:`port` is one of the pool's bindings.
    pub fn holds(&self, addr: [u8; 4], port: u16) -> bool {
        self.addrs.contains(&addr) && (self.port_lo..=self.port_hi).contains(&port)
    }
}

/// VXLAN encapsulation parameters (IPv4 underlay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncapSpec {
    pub vni: u32,
    pub outer_src_ip: [u8; 4],
    pub outer_dst_ip: [u8; 4],
    pub outer_src_mac: [u8; 6],
    pub outer_dst_mac: [u8; 6],
}

/// A rule, named by layer index and rule id (as written in the policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleRef {
    pub layer: u16,
    pub rule: u32,
}

/// Why a packet was denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deny {
    /// A rule with action `deny` matched.
    Rule(RuleRef),
    /// No rule of the layer matched and its default is deny.
    LayerDefault { layer: u16 },
    /// An action could not be applied (e.g. decap of a non-VXLAN packet).
    Action(RuleRef),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision<'p> {
    Allow(Actions<'p>),
    Deny(Deny),
}
