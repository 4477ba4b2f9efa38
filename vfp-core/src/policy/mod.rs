//! Layered policy: layers of groups of rules, loaded from a TOML file.
//!
//! A [`Policy`] is built once, at the edge, by [`load_file`] / [`load_str`]
//! (validate everything, compile to integers and masks) and then only read:
//! the slow path (`engine::evaluate`) walks its layers for the first packet
//! of each connection. The file format is documented in docs/policy.md.

mod compile;
mod error;
mod group;
mod index;
mod layer;
mod loader;
mod prefix;
mod raw;
mod rule;
mod summary;

pub use error::PolicyError;
pub use group::Group;
pub use layer::{Layer, LayerDefault, RuleText};
pub use loader::{load_file, load_str, MAX_POLICY_BYTES};
pub use prefix::{Addr, PortRange, Prefix};
pub use rule::{tcp_flag, Backend, Match, Modifiers, PacketView, Rule, TcpFlags, Verb};
pub use summary::{GroupSummary, LayerSummary, PolicySummary, RuleSummary, TimeoutsSummary};

use crate::flow::timeouts::Timeouts;
use crate::topology::VportInfo;

/// A loaded, validated, compiled policy.
#[derive(Debug)]
pub struct Policy {
    /// Set by whoever loads it; flows remember the generation they were
    /// created under.
    pub generation: u64,
    /// Idle timeouts (the file's `[timeouts]` table, defaults otherwise).
    pub timeouts: Timeouts,
    layers: Vec<Layer>,
    vports: Vec<VportInfo>,
    origin: String,
}

impl Policy {
    /// One layer that allows everything; packets go to their vport's peer.
    pub fn allow_all(vports: &[VportInfo]) -> Policy {
        Policy {
            generation: 0,
            timeouts: Timeouts::default(),
            layers: vec![Layer::new(
                "allow-all".to_string(),
                LayerDefault::Allow,
                Vec::new(),
                Vec::new(),
                Vec::new(),
            )],
            vports: vports.to_vec(),
            origin: "<allow-all>".to_string(),
        }
    }

    /// The vports the policy's names were resolved against.
    pub fn vports(&self) -> &[VportInfo] {
        &self.vports
    }

    /// Layers in file order (outbound traverses them top-down).
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Total number of rules over all layers.
    pub fn rule_count(&self) -> usize {
        self.layers.iter().map(|l| l.rules.len()).sum()
    }

    /// The file the policy came from (or the origin given to `load_str`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Slow-path hits of rule `id` in layer `layer` (0 if there is none).
    pub fn rule_hits(&self, layer: usize, id: u32) -> u64 {
        self.layers
            .get(layer)
            .map_or(0, |l| l.rules.iter().position(|r| r.id == id).map_or(0, |i| l.hits(i)))
    }
}
