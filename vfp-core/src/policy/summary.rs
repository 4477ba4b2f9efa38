//! The operator's view of a policy (`policy show`): plain, serialisable
//! data with conditions and actions rendered as text and hit counts read
//! at the moment the summary is taken.

use serde::{Deserialize, Serialize};

use crate::flow::timeouts::Timeouts;

use super::Policy;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySummary {
    pub origin: String,
    pub generation: u64,
    pub rule_count: usize,
    pub timeouts: TimeoutsSummary,
    /// In file order (outbound order).
    pub layers: Vec<LayerSummary>,
}

/// Idle timeouts in seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutsSummary {
    pub tcp_syn: u64,
    pub tcp_established: u64,
    pub tcp_fin: u64,
    pub tcp_closed: u64,
    pub udp: u64,
    pub icmp: u64,
    pub other: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSummary {
    pub name: String,
    /// "allow" or "deny".
    pub default: String,
    pub groups: Vec<GroupSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub name: String,
    /// In evaluation order.
    pub rules: Vec<RuleSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSummary {
    pub id: u32,
    pub priority: u32,
    /// "out", "in" or "both".
    pub direction: String,
    pub terminating: bool,
    pub description: Option<String>,
    /// e.g. `proto=tcp dst=10.0.0.0/24 dst_ports=80,443`, or `any`.
    pub conditions: String,
    /// e.g. `snat addrs=203.0.113.10 ports=1024-65535; route=wan`.
    pub action: String,
    /// Connections (first packets) that matched the rule.
    pub hits: u64,
}

impl From<&Timeouts> for TimeoutsSummary {
    fn from(t: &Timeouts) -> Self {
        const NS: u64 = 1_000_000_000;
        TimeoutsSummary {
            tcp_syn: t.tcp_syn / NS,
            tcp_established: t.tcp_established / NS,
            tcp_fin: t.tcp_fin / NS,
            tcp_closed: t.tcp_closed / NS,
            udp: t.udp / NS,
            icmp: t.icmp / NS,
            other: t.other / NS,
        }
    }
}

impl Policy {
    pub fn summary(&self) -> PolicySummary {
        use super::rule::{DIR_IN, DIR_OUT};
        let layers = self
            .layers()
            .iter()
            .map(|l| LayerSummary {
                name: l.name.clone(),
                default: l.default.as_str().to_string(),
                groups: l
                    .groups
                    .iter()
                    .map(|g| GroupSummary {
                        name: g.name.clone(),
                        rules: g
                            .rules
                            .clone()
                            .filter_map(|i| Some((i, l.rules.get(i)?, l.text.get(i)?)))
                            .map(|(i, r, t)| RuleSummary {
                                id: r.id,
                                priority: r.priority,
                                direction: match r.dirs {
                                    DIR_OUT => "out",
                                    DIR_IN => "in",
                                    _ => "both",
                                }
                                .to_string(),
                                terminating: r.terminating,
                                description: t.description.clone(),
                                conditions: t.conditions.clone(),
                                action: t.action.clone(),
                                hits: l.hits(i),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        PolicySummary {
            origin: self.origin().to_string(),
            generation: self.generation,
            rule_count: self.rule_count(),
            timeouts: (&self.timeouts).into(),
            layers,
        }
    }
}
