//! The app's log on stderr: its own records (env_logger, filtered by
//! `RUST_LOG`) and the EAL's and drivers' messages, in one queue that a
//! thread of its own writes out.
//!
//! Logging must never stop the thread that logs. The control thread logs
//! as it runs failover (and DPDK logs from it during a hot-plug); written
//! straight to stderr, a reader that stops reading (`pmd-app ... 2>&1 |
//! less`, paused) would fill the pipe and block it there: the control
//! socket and failover with it. So a record is queued and the caller goes
//! on; while the queue is full, records are dropped and counted, and the
//! count is written when stderr takes lines again. A stderr that is
//! closed ends the writing (there is nowhere to report it).
//!
//! At exit (any exit(3), DPDK's `rte_exit` too, and before a panic's
//! message) the app waits a bounded time for the queue to drain
//! ([`flush`]), so the last messages (an error, the stop) are written
//! before the process ends. An abort(3) from C (DPDK's `rte_panic`) runs
//! nothing: lines queued in its last moments may be lost.

use crossbeam::channel::{self, Sender, TrySendError};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Records queued before the next one is dropped.
const QUEUED: usize = 1024;
/// How long an exit waits for the queue to drain.
pub const AT_EXIT: Duration = Duration::from_secs(2);

struct Queue {
    tx: Sender<Vec<u8>>,
    /// Records queued and not yet written (or given up on).
    pending: AtomicUsize,
    /// Records dropped since the writer last said so.
    dropped: AtomicU64,
}

static QUEUE: OnceLock<Queue> = OnceLock::new();
/// CPUs the writer thread moves to (see [`set_cpus`]).
static CPUS: OnceLock<Vec<usize>> = OnceLock::new();

/// Moves the writer thread to `cpus` (the app's control CPUs), as it
/// writes its next record. It starts before the EAL, with the CPUs the
/// process had, which may include the polling lcores'.
pub fn set_cpus(cpus: Vec<usize>) {
    let _ = CPUS.set(cpus);
}

/// Starts logging: `RUST_LOG` as env_logger reads it (default `info`).
/// A plain level there is applied as log's global maximum over a logger
/// that passes everything, so the control socket's `log-level` can raise
/// it later (env_logger's own filter cannot change after start). Module
/// directives (`RUST_LOG=pmd_app::worker=debug`) are env_logger's to
/// apply; `log-level` then only lowers what they let through.
///
/// Call before the EAL starts, so its messages take the same queue. If
/// the writer thread cannot start, records go to stderr directly.
pub fn init() {
    let env = std::env::var("RUST_LOG").unwrap_or_default();
    let plain = match env.trim() {
        "" => Some(log::LevelFilter::Info),
        l => l.parse::<log::LevelFilter>().ok(),
    };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if start_writer() {
        b.target(env_logger::Target::Pipe(Box::new(QueueWriter)));
        // env_logger colours only a terminal it writes to itself.
        if std::env::var_os("RUST_LOG_STYLE").is_none() && std::io::stderr().is_terminal() {
            b.write_style(env_logger::WriteStyle::Always);
        }
        if let Err(e) = crate::dpdk::eal::set_log_sink(push) {
            eprintln!("pmd-app: warning: DPDK's messages go to stderr directly: {e}");
        }
        // DPDK ends the process itself on some fatal errors (rte_exit):
        // its last message must still be written.
        if let Err(e) = crate::dpdk::eal::run_at_exit(flush_at_exit) {
            eprintln!("pmd-app: warning: log lines queued at exit may be lost: {e}");
        }
    }
    if let Some(level) = plain {
        b.filter_level(log::LevelFilter::Trace).init();
        log::set_max_level(level);
    } else {
        b.init();
    }
}

fn start_writer() -> bool {
    let (tx, rx) = channel::bounded::<Vec<u8>>(QUEUED);
    let q = Queue {
        tx,
        pending: AtomicUsize::new(0),
        dropped: AtomicU64::new(0),
    };
    if QUEUE.set(q).is_err() {
        return true;
    }
    let spawned = std::thread::Builder::new().name("vfp-log".into()).spawn(move || {
        let Some(q) = QUEUE.get() else { return };
        let (mut closed, mut pinned) = (false, false);
        for record in rx {
            if let (false, Some(cpus)) = (pinned, CPUS.get()) {
                // Refused, it stays where it is (as the control threads do).
                let _ = crate::dpdk::eal::pin_thread(cpus);
                pinned = true;
            }
            if !closed {
                closed = write_record(q, &record).is_err();
            }
            q.pending.fetch_sub(1, Ordering::Release);
        }
    });
    match spawned {
        Ok(_) => true,
        Err(e) => {
            eprintln!("pmd-app: warning: cannot start the log thread ({e}): logging to stderr directly");
            false
        }
    }
}

/// Writes one record, after the count of those dropped before it.
fn write_record(q: &Queue, record: &[u8]) -> std::io::Result<()> {
    let mut err = std::io::stderr().lock();
    let dropped = q.dropped.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        writeln!(err, "pmd-app: {dropped} log line(s) dropped: stderr was not being read")?;
    }
    err.write_all(record)?;
    err.flush()
}

/// Queues one record (a log line, or a DPDK message); never blocks.
pub fn push(record: &[u8]) {
    let Some(q) = QUEUE.get() else {
        let _ = std::io::stderr().write_all(record);
        return;
    };
    q.pending.fetch_add(1, Ordering::Acquire);
    match q.tx.try_send(record.to_vec()) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            q.pending.fetch_sub(1, Ordering::Release);
            q.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // No writer thread (it could not be started): as before there was one.
        Err(TrySendError::Disconnected(record)) => {
            q.pending.fetch_sub(1, Ordering::Release);
            let _ = std::io::stderr().write_all(&record);
        }
    }
}

/// Waits up to `limit` for every queued record to be written. Past it
/// the app goes on: a stderr nobody reads must not stop its exit.
pub fn flush(limit: Duration) {
    let Some(q) = QUEUE.get() else { return };
    let deadline = Instant::now() + limit;
    while q.pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

extern "C" fn flush_at_exit() {
    flush(AT_EXIT);
}

/// env_logger's target: each record arrives whole in one `write_all`.
struct QueueWriter;

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        push(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
