//! A layer: rules in evaluation order, its default verdict, and per-rule
//! hit counters.
//!
//! Rules are stored once, sorted by (group, priority, id). For each
//! (direction, protocol bucket) the layer also keeps the indices of the
//! rules that can apply, in the same order, so the engine skips rules of
//! the other direction or another protocol without looking at them: an
//! ACL of mixed TCP and UDP rules costs each first packet only its half.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::flow::key::Direction;

use super::group::Group;
use super::index::{Candidates, V4Index};
use super::prefix::Addr;
use super::rule::{Rule, DIR_IN, DIR_OUT};

/// Protocol buckets: TCP, UDP, ICMP, ICMPv6, anything else. A rule with
/// a protocol sits in its bucket only (the "other" bucket holds every
/// other protocol's rules, told apart by the full match); a rule without
/// one sits in all.
const BUCKETS: usize = 5;

#[inline]
fn proto_bucket(p: u8) -> usize {
    use crate::flow::key::proto;
    match p {
        proto::TCP => 0,
        proto::UDP => 1,
        proto::ICMP => 2,
        proto::ICMPV6 => 3,
        _ => 4,
    }
}

/// Candidate rule indices of one layer for one packet.
pub enum LayerCandidates<'a> {
    V4(Candidates<'a>),
    All(std::slice::Iter<'a, u32>),
}

impl Iterator for LayerCandidates<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        match self {
            LayerCandidates::V4(c) => c.next(),
            LayerCandidates::All(i) => i.next().copied(),
        }
    }
}

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
    /// `scan[dir as usize][proto_bucket(proto)]`: indices into `rules` of
    /// the rules that may match such a packet, in evaluation order.
    scan: [[Box<[u32]>; BUCKETS]; 2],
    /// The same lists indexed for IPv4 packets (see `index.rs`).
    v4: [[V4Index; BUCKETS]; 2],
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
        let pick = |bit: u8, bucket: usize| -> Box<[u32]> {
            (0..rules.len() as u32)
                .filter(|&i| {
                    let r = &rules[i as usize];
                    r.dirs & bit != 0 && r.matcher.proto.is_none_or(|p| proto_bucket(p) == bucket)
                })
                .collect()
        };
        // Index order matches `Direction as usize`.
        let scan: [[Box<[u32]>; BUCKETS]; 2] = [DIR_OUT, DIR_IN].map(|bit| std::array::from_fn(|b| pick(bit, b)));
        let v4 = std::array::from_fn(|d| std::array::from_fn(|b| V4Index::new(&rules, &scan[d][b])));
        let hits = rules.iter().map(|_| AtomicU64::new(0)).collect();
        Layer {
            name,
            default,
            groups,
            rules: rules.into_boxed_slice(),
            scan,
            v4,
            hits,
            text: text.into_boxed_slice(),
        }
    }

    /// Indices of the rules to scan for a packet going `dir` with IP
    /// protocol `proto`, in evaluation order.
    #[inline]
    pub fn rules_for(&self, dir: Direction, proto: u8) -> &[u32] {
        &self.scan[dir as usize][proto_bucket(proto)]
    }

    /// The rules that may match a packet going `dir` with IP protocol
    /// `proto` and these addresses, in evaluation order (each must still
    /// pass the full match).
    #[inline]
    pub fn candidates(&self, dir: Direction, proto: u8, src: Addr, dst: Addr) -> LayerCandidates<'_> {
        if src.v4 && dst.v4 {
            LayerCandidates::V4(self.v4[dir as usize][proto_bucket(proto)].candidates(src, dst))
        } else {
            LayerCandidates::All(self.rules_for(dir, proto).iter())
        }
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
