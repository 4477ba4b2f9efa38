//! The one interface between the control server and the application.
//!
//! The server parses and validates each request into a [`Command`] and
//! calls [`Handler::handle`] on the connection's own thread, without holding
//! any lock; several clients may call it at once. Whatever the handler
//! returns becomes the reply's `result` (or `error`). A call should be
//! bounded in time: a handler that waits for the datapath returns
//! [`ErrorCode::Timeout`](super::ErrorCode::Timeout) rather than blocking
//! forever, since server shutdown joins the connection threads.

use serde_json::Value;

use super::command::Command;
use super::protocol::CtlError;

/// Executes validated control commands.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, cmd: Command) -> Result<Value, CtlError>;
}

/// Closures are handlers too (handy for tests and small tools).
impl<F> Handler for F
where
    F: Fn(Command) -> Result<Value, CtlError> + Send + Sync + 'static,
{
    fn handle(&self, cmd: Command) -> Result<Value, CtlError> {
        self(cmd)
    }
}
