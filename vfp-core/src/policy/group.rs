//! A group: a named, ordered slice of a layer's rules.
//!
//! Groups only order rules (a whole group is evaluated before the next
//! one) and name them for the operator; the engine never sees them, because
//! the loader sorts a layer's rules into one array by (group, priority, id)
//! in which each group is a contiguous range.

use std::ops::Range;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// The group's rules: a range of its layer's rule array.
    pub rules: Range<usize>,
}
