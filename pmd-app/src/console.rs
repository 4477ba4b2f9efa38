//! The app's standard output: the counter tables, which an operator may
//! pipe into another program. Whatever that program does, the control
//! thread must not stop (it runs failover and answers the control
//! socket), so the tables are written by a thread of their own:
//!
//! - a program that exits (`pmd-app ... | head`) makes the writes fail:
//!   reported once on stderr, nothing more is printed (`print!` would
//!   panic);
//! - a program that stops reading (a paused pager) fills the pipe and
//!   blocks the writer thread: tables are skipped meanwhile (reported once)
//!   and printing resumes when it reads again; at exit the app waits a
//!   bounded time for its last lines.
//!
//! The control socket and telemetry still have every counter.

use crate::spool::Spool;
use std::io::Write;
use std::time::Duration;

/// Tables queued for the writer thread before the next one is skipped.
const QUEUED: usize = 4;

pub struct Console {
    /// None: no thread could be started, nothing is printed.
    spool: Option<Spool>,
    skipping: bool,
}

impl Console {
    /// Starts the writer thread (or, if no thread can be started, prints
    /// nothing).
    pub fn start() -> Console {
        let write = |text: &[u8]| {
            let mut out = std::io::stdout().lock();
            out.write_all(text).and_then(|()| out.flush())
        };
        let failed = |e| log::warn!("stdout: {e}: counters are no longer printed there");
        let spool = Spool::start("vfp-stdout", QUEUED, write, failed)
            .map_err(|e| log::warn!("cannot start the stdout thread ({e}): counters are not printed"))
            .ok();
        Console { spool, skipping: false }
    }

    /// Queues `text` for stdout; skipped while stdout is not being read.
    pub fn print(&mut self, text: String) {
        let Some(spool) = self.spool.as_ref().filter(|s| !s.is_broken()) else {
            return;
        };
        match spool.offer(text.into_bytes()) {
            Ok(()) => self.skipping = false,
            Err(_) => {
                if !self.skipping {
                    log::warn!("stdout is not being read: counter tables are skipped until it is");
                }
                self.skipping = true;
            }
        }
    }

    /// Waits up to `limit` for what was queued to be written; past it,
    /// the app goes on without (a blocked stdout must not stop its exit).
    pub fn finish(self, limit: Duration) {
        if let Some(spool) = self.spool {
            if !spool.drain(limit) {
                log::warn!("stdout is not being read: the last counters were not all written");
            }
        }
    }
}
