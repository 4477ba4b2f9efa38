//! pmd-app: the DPDK poll-mode VFP dataplane, as a library so that the
//! `pmd-app` and `vfpctl` binaries (and the tests) share its modules.
//!
//! Follow one packet: `worker.rs` (rx burst) -> pipeline -> `worker.rs`
//! (tx burst). The control thread (`supervisor.rs`) owns the
//! [`dataplane::Dataplane`] and publishes `plan.rs` plans to workers;
//! `failsafe.rs` decides which of a vport's paths transmits.

pub mod args;
pub mod commands;
pub mod console;
pub mod control;
pub mod dataplane;
pub mod device_drops;
pub mod dpdk;
pub mod failsafe;
pub mod handoff;
pub mod logging;
pub mod pipeline;
pub mod plan;
pub mod policy_ctl;
pub mod report;
pub mod setup;
pub mod spool;
pub mod stats;
pub mod supervisor;
pub mod vport;
pub mod worker;
