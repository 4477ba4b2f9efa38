//! Output written by a thread of its own, so that the thread producing it
//! never blocks on a reader that stopped reading: the app's stdout (the
//! counter tables, [`crate::console`]) and stderr (the log,
//! [`crate::logging`]).
//!
//! A [`Spool`] is a bounded queue of records and the thread that writes
//! them out in order. Queuing never blocks: a full queue refuses the
//! record and the caller decides what that means (a skipped table, a
//! counted log line). The first write that fails ends the writing (a
//! closed pipe stays closed); what is queued after it is discarded. At
//! exit, [`Spool::drain`] waits a bounded time for the queue to empty.

use crossbeam::channel::{self, Sender};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Spool {
    tx: Sender<Vec<u8>>,
    /// Records queued and not yet written (or discarded).
    pending: Arc<AtomicUsize>,
    /// A write failed: nothing more is written.
    broken: Arc<AtomicBool>,
}

impl Spool {
    /// Starts thread `name`, which hands each record to `write`, at most
    /// `depth` of them waiting. When `write` first fails, `on_error` gets
    /// the error and later records are discarded.
    pub fn start(
        name: &str,
        depth: usize,
        mut write: impl FnMut(&[u8]) -> io::Result<()> + Send + 'static,
        on_error: impl FnOnce(io::Error) + Send + 'static,
    ) -> io::Result<Spool> {
        let (tx, rx) = channel::bounded::<Vec<u8>>(depth);
        let pending = Arc::new(AtomicUsize::new(0));
        let broken = Arc::new(AtomicBool::new(false));
        let (p, b) = (pending.clone(), broken.clone());
        std::thread::Builder::new().name(name.into()).spawn(move || {
            let mut on_error = Some(on_error);
            for record in rx {
                if !b.load(Ordering::Relaxed) {
                    if let Err(e) = write(&record) {
                        b.store(true, Ordering::Relaxed);
                        if let Some(f) = on_error.take() {
                            f(e);
                        }
                    }
                }
                p.fetch_sub(1, Ordering::Release);
            }
        })?;
        Ok(Spool { tx, pending, broken })
    }

    /// Queues `record`; gives it back when the queue is full.
    pub fn offer(&self, record: Vec<u8>) -> Result<(), Vec<u8>> {
        self.pending.fetch_add(1, Ordering::Acquire);
        self.tx.try_send(record).map_err(|e| {
            self.pending.fetch_sub(1, Ordering::Release);
            e.into_inner()
        })
    }

    /// Whether a write failed (nothing is written any more).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// Waits up to `limit` for every queued record to be written; false
    /// when some were still waiting at the deadline.
    pub fn drain(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.pending.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn records_are_written_in_order_refused_when_full_and_dropped_after_a_failure() {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let (gate_tx, gate_rx) = channel::unbounded::<()>();
        let o = out.clone();
        let errors = Arc::new(AtomicUsize::new(0));
        let e = errors.clone();
        let s = Spool::start(
            "spool-test",
            2,
            move |r| {
                // Each write waits for the test's go, so the queue can fill.
                gate_rx.recv().map_err(io::Error::other)?;
                if r == b"fail" {
                    return Err(io::Error::other("closed"));
                }
                o.lock().unwrap().extend_from_slice(r);
                Ok(())
            },
            move |_| {
                e.fetch_add(1, Ordering::Relaxed);
            },
        )
        .unwrap();
        s.offer(b"a".to_vec()).unwrap();
        // The writer holds "a" (blocked on the gate) or has it queued:
        // either way at most two more fit.
        let mut refused = 0;
        for r in [b"b", b"c", b"d"] {
            refused += usize::from(s.offer(r.to_vec()).is_err());
        }
        assert!(refused >= 1, "a queue of 2 took 4 records");
        assert!(!s.drain(Duration::from_millis(20)), "drained while blocked");
        // One go for each record taken.
        for _ in 0..4 - refused {
            gate_tx.send(()).unwrap();
        }
        assert!(s.drain(Duration::from_secs(5)));
        let written = out.lock().unwrap().clone();
        assert!(written.starts_with(b"a") && written.len() == 4 - refused, "{written:?}");
        s.offer(b"fail".to_vec()).unwrap();
        gate_tx.send(()).unwrap();
        s.offer(b"z".to_vec()).unwrap();
        assert!(s.drain(Duration::from_secs(5)));
        assert!(s.is_broken());
        assert_eq!(errors.load(Ordering::Relaxed), 1);
        assert!(!out.lock().unwrap().contains(&b'z'));
    }
}
