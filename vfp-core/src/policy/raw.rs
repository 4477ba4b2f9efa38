//! The policy file format as serde sees it (documented in docs/policy.md).
//!
//! These types only mirror the TOML: unknown keys are rejected here, every
//! value the loader validates further is `Spanned` so its error can point at
//! it. `loader.rs` turns them into the compiled model.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub timeouts: Option<S<RawTimeouts>>,
    #[serde(default)]
    pub layers: Vec<S<RawLayer>>,
}

/// Idle timeouts in seconds; omitted ones keep their defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub tcp_syn: Option<S<u64>>,
    pub tcp_established: Option<S<u64>>,
    pub tcp_fin: Option<S<u64>>,
    pub tcp_closed: Option<S<u64>>,
    pub udp: Option<S<u64>>,
    pub icmp: Option<S<u64>>,
    pub other: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayer {
    pub name: S<String>,
    /// "allow" or "deny": what happens when no terminating rule matches.
    pub default: S<String>,
    #[serde(default)]
    pub groups: Vec<S<RawGroup>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: Option<S<String>>,
    #[serde(default)]
    pub rules: Vec<S<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: S<u32>,
    pub priority: S<u32>,
    pub description: Option<String>,
    /// The primary action: allow, deny, count, snat, dnat, encap, decap,
    /// route, set_mac, dec_ttl.
    pub action: S<String>,
    pub terminating: Option<S<bool>>,

    // Conditions (all optional, AND-ed; list entries OR-ed).
    pub direction: Option<S<String>>,
    pub vports: Option<Vec<S<String>>>,
    pub src: Option<Vec<S<String>>>,
    pub dst: Option<Vec<S<String>>>,
    pub src_ports: Option<Vec<S<PortItem>>>,
    pub dst_ports: Option<Vec<S<PortItem>>>,
    pub proto: Option<S<ProtoItem>>,
    pub vni: Option<S<i64>>,
    pub tcp_flags: Option<S<String>>,

    // Parameters of the primary action.
    pub snat: Option<S<RawSnat>>,
    pub dnat: Option<S<RawDnat>>,
    pub encap: Option<S<RawEncap>>,

    // Modifiers: allowed on any action that lets the packet through.
    pub route: Option<S<String>>,
    pub set_mac: Option<S<RawSetMac>>,
    pub dec_ttl: Option<S<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnat {
    #[serde(default)]
    pub addrs: Vec<S<String>>,
    pub ports: S<PortItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnat {
    #[serde(default)]
    pub backends: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEncap {
    pub vni: S<i64>,
    pub outer_src_ip: S<String>,
    pub outer_dst_ip: S<String>,
    pub outer_src_mac: S<String>,
    pub outer_dst_mac: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSetMac {
    pub src: Option<S<String>>,
    pub dst: Option<S<String>>,
}

/// A port written as an integer (`80`) or a string (`"80"`, `"8000-8080"`).
pub enum PortItem {
    Num(i64),
    Text(String),
}

/// A protocol written as a name (`"tcp"`) or a number (`6`).
pub enum ProtoItem {
    Num(i64),
    Name(String),
}

/// Deserialises "an integer or a string" with a readable error; serde's
/// untagged enums would hide `Spanned` positions and say "did not match any
/// variant".
struct IntOrStr(&'static str);

enum IntOrString {
    Int(i64),
    Str(String),
}

impl<'de> Visitor<'de> for IntOrStr {
    type Value = IntOrString;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
        Ok(IntOrString::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
        i64::try_from(v)
            .map(IntOrString::Int)
            .map_err(|_| E::custom(format!("{v} is out of range")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
        Ok(IntOrString::Str(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for PortItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(
            match d.deserialize_any(IntOrStr("a port number or a \"lo-hi\" string"))? {
                IntOrString::Int(n) => PortItem::Num(n),
                IntOrString::Str(s) => PortItem::Text(s),
            },
        )
    }
}

impl<'de> Deserialize<'de> for ProtoItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match d.deserialize_any(IntOrStr("a protocol name or number"))? {
            IntOrString::Int(n) => ProtoItem::Num(n),
            IntOrString::Str(s) => ProtoItem::Name(s),
        })
    }
}
