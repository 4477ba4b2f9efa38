//! pmd-app: the DPDK poll-mode VFP dataplane, as a library so that the
//! `pmd-app` and `vfpctl` binaries (and the tests) share its modules.

pub mod control;
