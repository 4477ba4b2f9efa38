//! vfp-core: the policy engine of the VFP-style dataplane, in pure Rust.
//!
//! Packets enter as byte buffers ([`frame::Frame`]), are parsed into a
//! [`parse::Parsed`] descriptor, looked up in a per-shard unified flow
//! table ([`flow`], [`shard`]); on a miss the slow path ([`engine`])
//! evaluates the layered [`policy`] into a [`decision::Decision`] that the
//! shard compiles into a flow pair whose header transpositions
//! ([`action`]) every later packet of the connection gets.
//! Nothing here knows about DPDK.

pub mod action;
pub mod counter;
pub mod decision;
pub mod engine;
pub mod flow;
pub mod frame;
pub mod parse;
pub mod policy;
pub mod shard;
pub mod topology;
pub mod wire;
