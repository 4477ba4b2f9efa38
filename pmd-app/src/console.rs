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

use crossbeam::channel::{self, Sender, TrySendError};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Tables queued for the writer thread before the next one is skipped.
const QUEUED: usize = 4;

pub struct Console {
    tx: Option<Sender<String>>,
    writer: Option<JoinHandle<()>>,
    failed: Arc<AtomicBool>,
    skipping: bool,
}

impl Console {
    /// Starts the writer thread (or, if no thread can be started, prints
    /// nothing).
    pub fn start() -> Console {
        let (tx, rx) = channel::bounded::<String>(QUEUED);
        let failed = Arc::new(AtomicBool::new(false));
        let f = failed.clone();
        let writer = std::thread::Builder::new()
            .name("vfp-stdout".into())
            .spawn(move || {
                for text in rx {
                    if f.load(Ordering::Relaxed) {
                        continue;
                    }
                    let mut out = std::io::stdout().lock();
                    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                        f.store(true, Ordering::Relaxed);
                        log::warn!("stdout: {e}: counters are no longer printed there");
                    }
                }
            })
            .map_err(|e| log::warn!("cannot start the stdout thread ({e}): counters are not printed"))
            .ok();
        Console {
            tx: writer.as_ref().map(|_| tx),
            writer,
            failed,
            skipping: false,
        }
    }

    /// Queues `text` for stdout; skipped while stdout is not being read.
    pub fn print(&mut self, text: String) {
        let Some(tx) = &self.tx else { return };
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        match tx.try_send(text) {
            Ok(()) => self.skipping = false,
            Err(TrySendError::Full(_)) => {
                if !self.skipping {
                    log::warn!("stdout is not being read: counter tables are skipped until it is");
                }
                self.skipping = true;
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Waits up to `limit` for what was queued to be written; past it,
    /// the app goes on without (a blocked stdout must not stop its exit).
    pub fn finish(mut self, limit: Duration) {
        drop(self.tx.take());
        let Some(writer) = self.writer.take() else { return };
        let deadline = Instant::now() + limit;
        while !writer.is_finished() {
            if Instant::now() > deadline {
                log::warn!("stdout is not being read: the last counters were not all written");
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = writer.join();
    }
}
