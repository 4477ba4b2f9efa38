//! Messages between shards, carried by the app.
//!
//! A flow pair lives in one shard's table. When one of its keys is owned
//! (by [`FlowKey::owner`]) by another shard — NAT or an encap changed the
//! tuple or VNI the reply carries — that shard must know where to send
//! the packets: the holder emits [`ShardMsg::InstallRedirect`] into its
//! outbox, the app delivers it to shard `to` (`Shard::deliver`), and a
//! packet hitting the redirect gets `Verdict::Redirect`. Removing the pair
//! emits [`ShardMsg::RemoveRedirect`]. Delivery is asynchronous, so the app
//! should deliver a burst's messages before transmitting that burst: a
//! reply that reached the other shard before its redirect would miss there
//! and be treated as a new connection (a SYN+ACK is dropped `no-flow`).

use crate::flow::key::FlowKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardMsg {
    /// Shard `to`: send packets of `key` to shard `owner`.
    InstallRedirect { to: usize, key: FlowKey, owner: usize },
    /// Shard `to`: forget the redirect of `key` to `owner`.
    RemoveRedirect { to: usize, key: FlowKey, owner: usize },
    /// Shard `to`: send the later fragments of the datagram `key` (a
    /// [`crate::flow::fragments::frag_key`]) to shard `owner`. The entry
    /// expires by itself, counted from `at_ns` (the sender's clock: the
    /// receiver's may not have moved for a while).
    InstallFragRedirect {
        to: usize,
        key: FlowKey,
        owner: usize,
        at_ns: u64,
    },
}

impl ShardMsg {
    /// The shard the message is for.
    pub fn to(&self) -> usize {
        match self {
            ShardMsg::InstallRedirect { to, .. }
            | ShardMsg::RemoveRedirect { to, .. }
            | ShardMsg::InstallFragRedirect { to, .. } => *to,
        }
    }
}
