//! Human-readable rendering of control results for `vfpctl`.
//!
//! [`render`] picks a layout by command name; each layout reads fields
//! leniently (a missing or mistyped field prints as `-`), so an instance
//! newer than this `vfpctl` still gets a readable answer. `--json` bypasses
//! all of this and prints the result as received.

mod format;
mod generic;
mod stats;
mod status;
mod table;

use serde_json::Value;

pub use generic::key_values;
pub use stats::top;
pub use table::Table;

/// The text `vfpctl` prints for the result of `cmd`.
pub fn render(cmd: &str, result: &Value) -> String {
    match cmd {
        "status" => status::status(result),
        "ports" => status::ports(result),
        "switch" => status::switch(result),
        "stats" => stats::stats(result),
        "flows" => generic::flows(result),
        "policy" => generic::policy(result),
        "log-level" => format!("log level: {}\n", format::field(result, "level")),
        "shutdown" => "shutting down\n".into(),
        "debug" => format!(
            "{}: {} done\n",
            format::field(result, "device"),
            format::field(result, "op")
        ),
        _ => key_values(result),
    }
}
