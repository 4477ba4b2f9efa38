//! A blocking client for the control socket, used by `vfpctl` and tests.
//!
//! [`Client::call`] sends one request with a fresh numeric id and waits for
//! its reply line; [`Client::call_raw`] sends a line verbatim (for
//! `vfpctl raw` and protocol tests). Failures are classified the way
//! `vfpctl` reports them: [`ClientError::Connect`] (exit code 3) versus
//! everything that goes wrong after connecting (exit code 4). An error
//! *reply* is not a [`ClientError`]: it is a [`Reply`] whose `result` is
//! `Err`.

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::protocol::{CtlError, ErrorCode, PROTOCOL_VERSION};

/// A decoded reply.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The id the instance echoed (null for errors it could not attribute).
    pub id: Value,
    /// `result` of an `ok` reply, or its `error`.
    pub result: Result<Value, CtlError>,
}

/// Why a call produced no reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be opened (missing, permission, refused).
    #[error("cannot connect to {}: {}", path.display(), connect_cause(path, source))]
    Connect { path: PathBuf, source: io::Error },
    /// No complete reply within the timeout.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The instance closed the connection without replying.
    #[error("the instance closed the connection without replying")]
    Closed,
    /// Sending or receiving failed.
    #[error("control socket I/O failed: {0}")]
    Io(#[source] io::Error),
    /// The reply is not a valid protocol reply.
    #[error("invalid reply: {0}")]
    Protocol(String),
}

impl ClientError {
    /// `vfpctl`'s exit code for this failure: 3 cannot connect, 4 protocol.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Connect { .. } => 3,
            _ => 4,
        }
    }
}

fn connect_cause(path: &Path, e: &io::Error) -> String {
    use std::os::unix::fs::FileTypeExt;
    // connect(2) on a file that is not a socket says ECONNREFUSED too.
    let not_socket = std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_socket());
    match e.kind() {
        ErrorKind::ConnectionRefused if not_socket => "not a socket (check --socket)".into(),
        ErrorKind::NotFound => "no such socket (is pmd-app running with this --file-prefix?)".into(),
        ErrorKind::PermissionDenied => "permission denied (run as root or as a member of the socket's group)".into(),
        ErrorKind::ConnectionRefused => {
            "connection refused (nothing is listening: a stale socket from a stopped instance?)".into()
        }
        _ => e.to_string(),
    }
}

/// A connection to a control socket.
pub struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    timeout: Option<Duration>,
    next_id: u64,
}

impl Client {
    /// Connect to the control socket at `path`; replies are awaited for at
    /// most 10 s unless changed with [`Client::set_timeout`].
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        let path = path.as_ref();
        let connect_err = |source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        };
        let writer = UnixStream::connect(path).map_err(connect_err)?;
        let reader = writer.try_clone().map_err(connect_err)?;
        let mut client = Client {
            writer,
            reader: BufReader::new(reader),
            timeout: None,
            next_id: 1,
        };
        client.set_timeout(Some(Duration::from_secs(10)))?;
        Ok(client)
    }

    /// How long to wait for each reply (`None`: forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        // A zero duration is an error for set_*_timeout; treat it as tiny.
        let t = timeout.map(|d| d.max(Duration::from_millis(1)));
        self.writer.set_read_timeout(t).map_err(ClientError::Io)?;
        self.writer.set_write_timeout(t).map_err(ClientError::Io)?;
        self.timeout = t;
        Ok(())
    }

    /// Run `cmd` with `args` (an object, or null for none).
    pub fn call(&mut self, cmd: &str, args: Value) -> Result<Reply, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"v": PROTOCOL_VERSION, "id": id, "cmd": cmd, "args": args});
        let reply = self.call_raw(&request.to_string())?;
        let reply = decode_reply(reply)?;
        match &reply.id {
            Value::Null if reply.result.is_err() => {}
            v if v.as_u64() == Some(id) => {}
            other => return Err(ClientError::Protocol(format!("reply is for id {other}, expected {id}"))),
        }
        Ok(reply)
    }

    /// Send `line` as is (a newline is appended; embedded newlines would
    /// make several requests) and return the next reply line as JSON.
    pub fn call_raw(&mut self, line: &str) -> Result<Value, ClientError> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.writer.write_all(&bytes).map_err(|e| self.io_error(e))?;
        let line = self.read_line()?;
        serde_json::from_slice(&line).map_err(|e| ClientError::Protocol(format!("reply is not JSON: {e}")))
    }

    /// The next line from the instance, without its newline.
    pub fn read_line(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut line = Vec::new();
        loop {
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) if line.is_empty() => return Err(ClientError::Closed),
                Ok(_) if line.last() == Some(&b'\n') => {
                    line.pop();
                    return Ok(line);
                }
                Ok(0) => return Err(ClientError::Protocol("reply truncated".into())),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
    }

    fn io_error(&self, e: io::Error) -> ClientError {
        match (e.kind(), self.timeout) {
            (ErrorKind::WouldBlock | ErrorKind::TimedOut, Some(t)) => ClientError::Timeout(t),
            (ErrorKind::BrokenPipe | ErrorKind::ConnectionReset, _) => ClientError::Closed,
            _ => ClientError::Io(e),
        }
    }
}

/// Check a reply object's shape and split it into id and outcome.
pub fn decode_reply(reply: Value) -> Result<Reply, ClientError> {
    let bad = |what: &str| ClientError::Protocol(what.to_string());
    let Value::Object(mut obj) = reply else {
        return Err(bad("reply is not a JSON object"));
    };
    match obj.get("v").and_then(Value::as_u64) {
        Some(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(ClientError::Protocol(format!(
                "instance speaks protocol version {v}, this vfpctl speaks {PROTOCOL_VERSION}"
            )))
        }
        None => return Err(bad("reply has no protocol version \"v\"")),
    }
    let id = obj.remove("id").unwrap_or(Value::Null);
    let result = match obj.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(obj.remove("result").unwrap_or(Value::Null)),
        Some(false) => {
            let error = obj.get("error").ok_or_else(|| bad("error reply without \"error\""))?;
            let code = error.get("code").and_then(Value::as_str).unwrap_or_default();
            let code = ErrorCode::from_wire(code)
                .ok_or_else(|| ClientError::Protocol(format!("unknown error code \"{code}\"")))?;
            let message = error.get("message").and_then(Value::as_str).unwrap_or_default();
            Err(CtlError::new(code, message))
        }
        None => return Err(bad("reply has no boolean \"ok\"")),
    };
    Ok(Reply { id, result })
}
