//! A layer: rules in evaluation order, its default verdict, and per-rule
//! hit counters.
//!
//! Rules are stored once, sorted by (group, priority, id); for each
//! direction the layer also keeps the indices of the rules that apply to
//! it, so the engine scans only the relevant half without testing the
//! direction of every rule.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::flow::key::Direction;

use super::group::Group;
use super::rule::{Rule, DIR_IN, DIR_OUT};

/// What a layer does with a packet no terminating rule matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerDefault {
    Allow,
    Deny,
}

impl LayerDefault {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerDefault::Allow => "allow",
            LayerDefault::Deny => "deny",
        }
    }
}

/// Per-rule text for `policy show`, computed at load time.
#[derive(Clone, Debug, Default)]
pub struct RuleText {
    pub description: Option<String>,
    pub conditions: String,
    pub action: String,
}

#[derive(Debug)]
pub struct Layer {
    pub name: String,
    pub default: LayerDefault,
    pub groups: Vec<Group>,
    /// All rules, in evaluation order.
    pub rules: Box<[Rule]>,
    /// `by_dir[dir as usize]`: indices into `rules` of the rules that apply
    /// to that direction, in evaluation order.
    by_dir: [Box<[u32]>; 2],
    /// Slow-path matches per rule (parallel to `rules`).
    hits: Box<[AtomicU64]>,
    pub text: Box<[RuleText]>,
}

impl Layer {
    /// Builds a layer from rules already sorted in evaluation order.
    pub fn new(
        name: String,
        default: LayerDefault,
        groups: Vec<Group>,
        rules: Vec<Rule>,
        text: Vec<RuleText>,
    ) -> Layer {
        let pick = |bit: u8| -> Box<[u32]> {
            (0..rules.len() as u32)
                .filter(|&i| rules[i as usize].dirs & bit != 0)
                .collect()
        };
        // Index order matches `Direction as usize`.
        let by_dir = [pick(DIR_OUT), pick(DIR_IN)];
        let hits = rules.iter().map(|_| AtomicU64::new(0)).collect();
        Layer {
            name,
            default,
            groups,
            rules: rules.into_boxed_slice(),
            by_dir,
            hits,
            text: text.into_boxed_slice(),
        }
    }

    /// Indices of the rules to scan for a packet going `dir`.
    #[inline]
    pub fn rules_for(&self, dir: Direction) -> &[u32] {
        &self.by_dir[dir as usize]
    }

    /// Counts a slow-path match of rule `i`. Relaxed: several shards may
    /// count concurrently and only the total matters.
    #[inline]
    pub fn hit(&self, i: usize) {
        if let Some(h) = self.hits.get(i) {
            h.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn hits(&self, i: usize) -> u64 {
        self.hits.get(i).map_or(0, |h| h.load(Ordering::Relaxed))
    }
}
