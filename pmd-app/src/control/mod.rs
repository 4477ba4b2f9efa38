//! Control socket: protocol, server and client.
//!
//! `pmd-app` serves a JSON-lines protocol on a unix socket (see
//! `docs/control-protocol.md`); `vfpctl` is its command-line client. Data
//! flows one way through this module: a request line is framed by
//! [`line_reader`], checked by [`protocol`], turned into a typed
//! [`Command`] by [`command`], executed by the application's [`Handler`],
//! and the result is written back by [`protocol::encode_reply`]. Nothing
//! here depends on DPDK or the rest of the application, so all of it is
//! tested with mock handlers. [`render`] turns results into the tables
//! `vfpctl` prints.

mod args;
pub mod client;
pub mod command;
mod connection;
pub mod handler;
pub mod line_reader;
pub mod protocol;
pub mod render;
pub mod server;
pub mod socket_file;

pub use client::{Client, ClientError, Reply};
pub use command::{Command, DebugOp, FlowFilter, FlowsOp, FlowsQuery, PathChoice, PolicyOp};
pub use handler::Handler;
pub use protocol::{CtlError, ErrorCode, MAX_REQUEST_LINE, PROTOCOL_VERSION};
pub use server::{Limits, Server, ServerHandle};
pub use socket_file::default_socket_path;
