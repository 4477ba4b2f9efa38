//! One client connection: read request lines, answer each in order.
//!
//! Runs on its own thread. Reads time out after the idle limit (the client
//! is disconnected), writes after the write limit (a client that does not
//! read its replies is disconnected), so a slow or vanished client only
//! ever costs its own thread. No lock is held while reading, writing or
//! calling the handler.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::Value;

use super::command::Command;
use super::line_reader::{Line, LineReader};
use super::protocol::{encode_reply, parse_request, CtlError, MAX_REQUEST_LINE};
use super::server::Shared;

/// Serve `stream` until the client leaves, idles out, or the server stops.
pub(crate) fn serve(stream: UnixStream, client: u64, shared: &Shared) {
    let limits = &shared.limits;
    // The read timeout is set before each read (see below).
    let setup = stream
        .set_write_timeout(Some(limits.write_timeout))
        .and_then(|()| stream.try_clone());
    let read_half = match setup {
        Ok(s) => s,
        Err(e) => {
            log::warn!("control client {client}: setup failed: {e}");
            return;
        }
    };
    let mut reader = LineReader::new(read_half, MAX_REQUEST_LINE);
    let mut writer = stream;
    // The idle limit runs from the last answer (or the connection) to the
    // next complete line: a client trickling an unfinished line does not
    // keep its slot by sending a byte now and then.
    let mut since = Instant::now();
    loop {
        let left = limits.idle_timeout.saturating_sub(since.elapsed());
        let read = if left.is_zero() {
            Err(ErrorKind::TimedOut.into())
        } else {
            writer.set_read_timeout(Some(left)).and_then(|()| reader.next_line())
        };
        let reply = match read {
            Ok(Line::Pending) => continue,
            Ok(Line::Eof) => break,
            Ok(Line::TooLong) => encode_reply(
                &Value::Null,
                &Err(CtlError::too_large(format!(
                    "request line longer than {MAX_REQUEST_LINE} bytes; discarded"
                ))),
            ),
            Ok(Line::Complete(line)) => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    since = Instant::now();
                    continue;
                }
                answer(&line, client, shared)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                log::info!(
                    "control client {client}: no complete request for {:?}, disconnecting",
                    limits.idle_timeout
                );
                break;
            }
            Err(e) => {
                log::debug!("control client {client}: read failed: {e}");
                break;
            }
        };
        if let Err(e) = writer.write_all(&reply) {
            log::info!("control client {client}: write failed ({e}), disconnecting");
            break;
        }
        since = Instant::now();
    }
    log::debug!("control client {client}: closed");
}

/// The reply line for one request line.
fn answer(line: &[u8], client: u64, shared: &Shared) -> Vec<u8> {
    let env = match parse_request(line) {
        Ok(env) => env,
        Err(rejected) => return encode_reply(&rejected.id, &Err(rejected.error)),
    };
    let outcome = if shared.stopping.load(Ordering::Acquire) {
        Err(CtlError::unavailable("the instance is shutting down"))
    } else {
        Command::parse(&env.cmd, env.args).and_then(|cmd| {
            log::debug!("control client {client}: {cmd:?}");
            shared.handler.handle(cmd)
        })
    };
    if let Err(e) = &outcome {
        log::debug!("control client {client}: {} -> {e}", env.cmd);
    }
    encode_reply(&env.id, &outcome)
}
