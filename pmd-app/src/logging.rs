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

use crate::spool::Spool;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Records queued before the next one is dropped.
const QUEUED: usize = 1024;
/// How long an exit waits for the queue to drain.
pub const AT_EXIT: Duration = Duration::from_secs(2);

/// The queue and its writer thread ("vfp-log"); unset if no thread
/// could be started (records then go to stderr directly).
static SPOOL: OnceLock<Spool> = OnceLock::new();
/// Records dropped since the writer last said so.
static DROPPED: AtomicU64 = AtomicU64::new(0);
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
    if SPOOL.get().is_some() {
        return true;
    }
    let mut pinned = false;
    let write = move |record: &[u8]| {
        if let (false, Some(cpus)) = (pinned, CPUS.get()) {
            // Refused, it stays where it is (as the control threads do).
            let _ = crate::dpdk::eal::pin_thread(cpus);
            pinned = true;
        }
        write_record(record)
    };
    // A closed stderr: there is nowhere to say so.
    match Spool::start("vfp-log", QUEUED, write, |_| {}) {
        Ok(s) => SPOOL.set(s).is_ok(),
        Err(e) => {
            eprintln!("pmd-app: warning: cannot start the log thread ({e}): logging to stderr directly");
            false
        }
    }
}

/// Writes one record, after the count of those dropped before it.
fn write_record(record: &[u8]) -> std::io::Result<()> {
    let mut err = std::io::stderr().lock();
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        writeln!(err, "pmd-app: {dropped} log line(s) dropped: stderr was not being read")?;
    }
    err.write_all(record)?;
    err.flush()
}

/// Queues one record (a log line, or a DPDK message); never blocks.
pub fn push(record: &[u8]) {
    match SPOOL.get() {
        Some(s) => {
            if s.offer(record.to_vec()).is_err() {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            let _ = std::io::stderr().write_all(record);
        }
    }
}

/// Queues `pmd-app: error: MSG`, the form of the app's own error lines
/// (unlike log records, they carry no timestamp: scripts match them).
pub fn error(msg: impl std::fmt::Display) {
    push(format!("pmd-app: error: {msg}\n").as_bytes());
}

/// Waits up to `limit` for every queued record to be written. Past it
/// the app goes on: a stderr nobody reads must not stop its exit.
pub fn flush(limit: Duration) {
    if let Some(s) = SPOOL.get() {
        s.drain(limit);
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
