//! The app's standard output: the counter tables, which an operator may
//! pipe into another program. Output that fails (`pmd-app ... | head`, a
//! log collector that went away) must not take the dataplane down, as
//! `print!` would (it panics): the failure is reported once, on stderr,
//! and nothing more is printed; the control socket and telemetry still
//! have every counter.

use std::io::Write;

#[derive(Debug, Default)]
pub struct Console {
    failed: bool,
}

impl Console {
    /// Writes `text` to stdout unless an earlier write failed.
    pub fn print(&mut self, text: &str) {
        if self.failed {
            return;
        }
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            self.failed = true;
            log::warn!("stdout: {e}: counters are no longer printed there");
        }
    }
}
